//! The rule engine (planned; lands with the rule-engine issue).
//!
//! This crate will evaluate rules (trigger, rhai condition, ordered actions) deterministically, detect
//! cycles of rules firing rules, and produce dry-run traces. It returns the writes a trigger wants; the
//! runtime commits them in one transaction.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.
