//! The flow engine: state machines bound to an entity's state field, checked at design time with
//! petgraph and decided without IO.
//!
//! [`definition`] is the file format (`flows/<id>.flow.json`, schema in `schemas/flow.schema.json`);
//! [`check_flows`] validates every flow of a bundle and reports every problem at once (unreachable
//! states, dead ends, overlapping transitions as warnings, guards that do not compile, …);
//! [`CompiledFlow::decide`] says whether an event may fire on a record — role, state, required fields,
//! guard — and what it writes and enqueues, or why not. Persisting instances, history, timers, tasks
//! and the outbox is the runtime's job (`crates/runtime/src/flows`).
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.

pub mod check;
pub mod decide;
pub mod definition;

pub use check::check_flows;
pub use decide::{CompiledFlow, EventOption, FireContext, Firing, Refusal};
pub use definition::{ActionDefinition, Assignee, FlowDefinition, parse_duration, schema};
