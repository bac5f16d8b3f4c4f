//! The form engine: what entities mean for records.
//!
//! Today it holds the schema-evolution planner ([`plan_migration`]): given the published and the new
//! version of an app, it lists what changes for every entity and field, matching by stable uid so that a
//! rename is a rename and not a drop plus an add. Coming with the form-engine and records issue:
//! compiled validators cached per (entity, version), localized pointer-carrying validation errors,
//! computed fields, typed value converters for kind changes, and per-record migration reports.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.

mod migration;

pub use migration::{MigrationChange, MigrationPlan, plan_migration};
