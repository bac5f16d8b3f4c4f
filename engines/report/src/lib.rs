//! The report engine (planned; lands with the report-engine issue).
//!
//! This crate will compile report specs (datasets, dimensions, measures, pivots, funnels, cohorts, RFM)
//! into polars lazy frames over typed columns handed to it by the runtime, and shape results for echarts.
//! polars stays inside this crate and nowhere else.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.
