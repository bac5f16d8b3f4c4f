//! Trellis integration tests: the whole system, against real parts.
//!
//! One test binary (linking is the slow part of a build here) with a module per area. Storage and API
//! suites run against both backends: a SQLite file in a temp dir, and a real PostgreSQL server — the one
//! in `TRELLIS_TEST_PG_URL`, or a throw-away cluster started with the system's `initdb`/`pg_ctl`. With
//! `CI=true` a missing PostgreSQL fails the suite instead of skipping it.

mod support;

mod access;
mod api;
mod architecture;
mod cli;
mod column_snapshots;
mod customer_base;
mod flows;
mod merges;
mod outbox_events;
mod outgoing;
mod records;
mod report_grouping;
mod reports;
mod rule_counters;
mod rule_prefilter;
mod rules;
mod saved_views;
mod schemas;
mod search_backlog;
mod storage;
mod template_cli;
mod templates;
mod ui;
mod webhook_privacy;
mod write_back;
