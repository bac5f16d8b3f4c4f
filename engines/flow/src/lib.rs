//! The flow engine (planned; lands with the flow-engine issue).
//!
//! This crate will turn validated flow definitions into petgraph state machines, run design-time checks
//! (unreachable states, dead ends, overlapping guards), and decide — without IO — whether an event may fire
//! on a record and what actions it enqueues. Persistence of instances, timers and tasks lives in `crates/`.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.
