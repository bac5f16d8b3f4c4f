//! The permission engine: one place that decides what a user may do in an app, used by every path
//! that touches records (records API, imports, exports, and later flows, rules' manual triggers,
//! reports, drill-downs and the task inbox).
//!
//! Pure: the runtime gathers the [`Subject`] (user, department tree, role assignments, token scopes)
//! from the store; this crate compiles the app's roles into an [`EntityAccess`] per entity — allowed
//! actions with the roles that grant them, field modes, and the read and write row filters with their
//! variables substituted — and evaluates row filters against a record in memory for writes.
//!
//! Semantics (ARCHITECTURE.md): a user's rights are the union of their roles' rights (roles assigned
//! to the user directly or to their department or any department above it). Rows: a role that grants
//! an action without a row filter reaches every row; otherwise the reachable rows are the OR of the
//! granting roles' filters. Fields: the most permissive mode among the roles that grant `read` wins;
//! fields are read-only for a user who cannot update. A token's scopes can only take rights away.
//! Platform admins have every right in every app.

pub mod evaluate;
pub mod explain;
mod subject;

pub use evaluate::matches;
pub use explain::explain;
pub use subject::{
    Assignment, EntityAccess, Grant, Scopes, Subject, entity_access, manages_app, relative_day,
};
