//! The shared rhai sandbox (planned; lands with the form-engine and rule-engine issues).
//!
//! This crate will hold the one constructor that builds a rhai `Engine` with limits on operations, call
//! depth, expression depth and string/array/map sizes, with no file, network or `eval` access, plus the
//! business function library (date arithmetic, decimal money math, string helpers, safe field access).
//! Computed fields, flow guards and rules all compile their scripts through it.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.
