//! The SQLite bulk-insert fast path: rusqlite prepared statements on the *same* connection (and the
//! same open transaction) as sqlx. sqlx pays a per-statement hop to its worker thread and looks up every
//! parameter's name on each bind, which made multi-row inserts cost ~100 µs per record here; prepared
//! rusqlite statements run at SQLite's own speed (PERF.md: 2–5 µs per row). Values are written exactly
//! as sqlx writes them (RFC 3339 timestamps, JSON text), so sqlx reads them back unchanged.

use chrono::{DateTime, SecondsFormat, Utc};

use super::{InsertGroup, NewRecord};
use crate::StoreError;

pub(super) fn to_store(error: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(format!("sqlite bulk insert: {error}"))
}

/// The first of `records`' unique values that is already held by a stored record or repeated inside
/// `records`, as a [`StoreError::UniqueViolation`]. Checked before anything is written, so a chunk that
/// fails it leaves the transaction untouched — no savepoint needed (a savepoint made SQLite copy every
/// page the chunk touched into its sub-journal first: half the chunk's insert time, BENCHMARKS.md).
/// Race-free because the bulk insert holds the only write connection.
pub(super) fn check_uniques(
    connection: &rusqlite::Connection,
    group: &InsertGroup,
    records: &[NewRecord],
) -> Result<(), StoreError> {
    if records.iter().all(|record| record.uniques.is_empty()) {
        return Ok(());
    }
    let mut held = connection
        .prepare_cached(
            "SELECT 1 FROM record_unique WHERE app_id = ?1 AND entity = ?2 AND field = ?3 AND value = ?4",
        )
        .map_err(to_store)?;
    let mut seen = std::collections::HashSet::new();
    for value in records.iter().flat_map(|record| &record.uniques) {
        let repeated = !seen.insert((value.field_uid.as_str(), value.value.as_str()));
        if repeated
            || held
                .exists(rusqlite::params![
                    group.app,
                    group.entity,
                    value.field_uid,
                    value.value
                ])
                .map_err(to_store)?
        {
            return Err(StoreError::UniqueViolation {
                field_uid: value.field_uid.clone(),
                value: value.value.clone(),
            });
        }
    }
    Ok(())
}

/// When [`insert_rows`] indexes its rows for search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SearchIndexing {
    /// In the same transaction (creates through the API: found by the next search at no extra cost).
    Now,
    /// By the search indexer, after the transaction (bulk imports; `search_backlog.rs`).
    Deferred,
}

/// Insert `records` with ids `ids` into `group`'s app and entity through `connection` (already inside
/// the caller's transaction). Call [`check_uniques`] first: a failure here leaves part of the chunk
/// written, and the caller must roll the transaction back.
pub(super) fn insert_rows(
    connection: &rusqlite::Connection,
    group: &InsertGroup,
    records: &[NewRecord],
    ids: &[String],
    now: DateTime<Utc>,
    search: SearchIndexing,
) -> Result<(), StoreError> {
    let at = now.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO records (id, app_id, entity, version, data, created_at, created_by, updated_at, updated_by, search_text, indexed_by_writer) \
             VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?5, ?6, ?7, 1)",
        )
        .map_err(to_store)?;
    let mut history = connection
        .prepare_cached(
            "INSERT INTO record_history (record_id, app_id, entity, version, operation, actor, at, before, after) \
             VALUES (?1, ?2, ?3, 1, 'create', ?4, ?5, NULL, NULL)",
        )
        .map_err(to_store)?;
    let mut unique = connection
        .prepare_cached(
            "INSERT INTO record_unique (app_id, entity, field, value, record_id) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )
        .map_err(to_store)?;
    // One table at a time: each statement's B-tree pages stay in cache for the whole chunk.
    let started = std::time::Instant::now();
    let mut rowids = None;
    for (id, record) in ids.iter().zip(records) {
        let data = record.document()?;
        insert
            .execute(rusqlite::params![
                id,
                group.app,
                group.entity,
                data,
                at,
                group.actor,
                record.search_text
            ])
            .map_err(to_store)?;
        let rowid = connection.last_insert_rowid();
        rowids = Some(rowids.map_or((rowid, rowid), |(first, _)| (first, rowid)));
    }
    let records_done = std::time::Instant::now();
    for id in ids {
        history
            .execute(rusqlite::params![
                id,
                group.app,
                group.entity,
                group.actor,
                at
            ])
            .map_err(to_store)?;
    }
    let history_done = std::time::Instant::now();
    for (id, record) in ids.iter().zip(records) {
        for value in &record.uniques {
            let inserted = unique
                .execute(rusqlite::params![
                    group.app,
                    group.entity,
                    value.field_uid,
                    value.value,
                    id
                ])
                .map_err(to_store)?;
            if inserted == 0 {
                // Only when `check_uniques` was skipped: the transaction holds part of the chunk now.
                return Err(StoreError::UniqueViolation {
                    field_uid: value.field_uid.clone(),
                    value: value.value.clone(),
                });
            }
        }
    }
    let uniques_done = std::time::Instant::now();
    // The chunk's rows skipped the per-row index trigger (migration 0004): indexed here in one
    // statement, or later by the search indexer (`search_backlog.rs`). Nobody else writes meanwhile
    // (we hold the write connection), so the rowid range is exactly ours.
    if let Some((first, last)) = rowids {
        match search {
            SearchIndexing::Now => {
                super::search_backlog::index_rows(
                    connection,
                    first,
                    last,
                    super::search_backlog::RangeRows::OutsideBacklog,
                )?;
            }
            SearchIndexing::Deferred => {
                super::search_backlog::defer(connection, &group.app, &group.entity, first, last)?;
            }
        }
    }
    let micros = |from: std::time::Instant, to: std::time::Instant| (to - from).as_micros() as u64;
    tracing::debug!(
        rows = records.len(),
        records_us = micros(started, records_done),
        history_us = micros(records_done, history_done),
        uniques_us = micros(history_done, uniques_done),
        backlog_us = uniques_done.elapsed().as_micros() as u64,
        "bulk chunk written"
    );
    Ok(())
}

/// Run `work` in an immediate transaction on `connection` (a rusqlite view of the write
/// connection): committed when it succeeds, rolled back when it fails.
pub(crate) fn in_transaction<T>(
    connection: &rusqlite::Connection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(to_store)?;
    match work(connection) {
        Ok(value) => {
            connection.execute_batch("COMMIT").map_err(to_store)?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

/// Run `work` in a transaction on the SQLite write connection `write`, through rusqlite: a few
/// µs per statement instead of sqlx's hop to its worker thread (~120 µs, PERF.md) — for the small
/// writes of every outbox delivery (claims, outcomes, rule-run logs).
pub(crate) async fn on_writer<T>(
    write: &sqlx::SqlitePool,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut connection = write.acquire().await?;
    with_rusqlite(&mut connection, |connection| {
        in_transaction(connection, work)
    })
    .await
}

/// A timestamp as sqlx writes one on SQLite (RFC 3339, `+00:00`): compared as text with the
/// values sqlx binds.
pub(crate) fn sqlite_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// Run `work` with a rusqlite view of the sqlx connection `connection`.
#[allow(unsafe_code)]
pub(crate) async fn with_rusqlite<T>(
    connection: &mut sqlx::SqliteConnection,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut handle = connection.lock_handle().await?;
    let raw = handle.as_raw_handle();
    // SAFETY: `raw` is the open sqlite3 handle of `connection`, locked for us by `lock_handle` for the
    // whole scope (no other statement of sqlx runs on it meanwhile). `from_handle` borrows it without
    // taking ownership: dropping the rusqlite `Connection` does not close it. Both crates link the same
    // libsqlite3-sys, so the handle is the same C library's type. The rusqlite connection does not
    // outlive `handle`.
    let view = unsafe { rusqlite::Connection::from_handle(raw.as_ptr()) }.map_err(to_store)?;
    // Every statement `work` prepares is finalized when it returns, before sqlx uses the handle again.
    let result = work(&view);
    drop(view);
    drop(handle);
    result
}
