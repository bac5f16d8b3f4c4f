//! Trellis storage: the only crate that speaks SQL.
//!
//! [`Store`] wraps either an embedded SQLite database (the default, a file in the data dir, WAL mode) or
//! a PostgreSQL server (the scale path: several stateless Trellis servers share one database). Both run
//! the same operations; where the dialects differ the SQL is written per backend, and every value is a
//! bound parameter. Migrations are embedded, append-only and applied at connect time — on PostgreSQL
//! under an advisory lock so that servers starting together do not run them twice.
//!
//! Architecture invariant: no HTTP and no engine logic here; identifiers put into SQL come only from
//! validated metadata ids (`trellis_model::Identifier`).

mod access;
mod aggregate;
mod apps;
mod batches;
mod change_log;
mod checkpoint;
mod column_snapshots;
mod columns;
mod connect;
mod document_scan;
mod error;
pub mod flows;
mod group_commit;
mod history_chain;
mod merges;
mod native_read;
mod query;
mod records;
mod saved_views;
mod templates;
mod users;

pub use access::{
    AssignmentRecord, AuditQuery, AuditRecord, DepartmentRecord, NewAuditEntry, UserChanges,
};
pub use aggregate::{GroupKey, GroupMeasure, GroupOp, GroupRow};
pub use apps::{AppRecord, AppVersionRecord, NewAppVersion};
pub use batches::{BatchCounts, PagedRecord, RuleBatch};
pub use change_log::{ChangeEntry, NewChange};
pub use column_snapshots::{ColumnSnapshot, SnapshotHead};
pub use columns::{ChangeCursor, ColumnKind, ColumnRequest, ColumnValues, LoadedColumns};
pub use connect::{Backend, Store, redact};
pub use error::StoreError;
pub use merges::MergeRecord;
pub use query::{Cursor, SortKey};
pub use records::{
    BulkInsert, BulkUpdate, BulkWritten, HistoryRow, ListQuery, MigratedRecord, NewRecord,
    NewRuleRun, RecordMigration, RecordRow, UniqueValue,
};
pub use saved_views::SavedViewRecord;
pub use sqlx::types::Json;
pub use templates::{AppTemplateRecord, AppUpgradeRecord, TemplateRecord};
pub use users::{NewUser, TokenKind, TokenRecord, UserRecord};

/// The current time at the precision both backends store (microseconds), so a value read back equals
/// the value written.
pub(crate) fn now() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// Run `$body` with `$pool` bound to the backend's pool for reads or writes; both backends share the
/// source text of `$body`, so the SQL is written once (with `$n` placeholders, which both accept).
macro_rules! with_pool {
    ($store:expr, read, |$pool:ident| $body:expr) => {
        match &$store.pools {
            $crate::connect::Pools::Sqlite { read: $pool, .. } => $body,
            $crate::connect::Pools::Postgres($pool) => $body,
        }
    };
    ($store:expr, write, |$pool:ident| $body:expr) => {
        match &$store.pools {
            $crate::connect::Pools::Sqlite { write: $pool, .. } => $body,
            $crate::connect::Pools::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;
