//! Bulk updates: many records of one entity updated in one transaction, with their history rows, the
//! rule runs logged for them, their follow-up work (tasks, notifications, outbox entries) and one
//! change-log entry — the write-back of nightly batches (`apply_report`, batch rule runs), where one
//! transaction per record cost ~2 ms each (PERF.md: ~120 µs per sqlx statement on SQLite). On SQLite
//! the per-record statements run as prepared rusqlite statements on the sqlx connection.
//!
//! History rows of these updates keep only `before`: the document after is the next row's `before`
//! or the record itself, and [`Store::record_history`] fills it in from there (as for creates). A
//! nightly write-back of a million customers writes a million documents less.
//!
//! Each update is a compare-and-set on the record's version: an update whose record changed or was
//! deleted meanwhile is skipped (reported as `None`) and the others still apply. Unique values are not
//! touched: callers send records whose unique values change through [`Store::update_record`].

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::OptionalExtension;
use serde_json::{Map, Value};
use sqlx::types::Json;

use super::{NewRecord, RecordRow, record_change};
use crate::change_log::append_change;
use crate::flows::{RunLogRow, TransitionWrites, run_log_rows};
use crate::{Store, StoreError};

/// The condition that leaves rows of the search backlog (`search_backlog.rs`) out of a re-index
/// over `json_each` rows whose `$[0]` is a rowid: such rows are not in the index yet (forgetting
/// their text would corrupt it), and the search indexer indexes their text as it is then.
macro_rules! not_in_search_backlog {
    () => {
        " WHERE NOT EXISTS (SELECT 1 FROM records_search_backlog \
         WHERE first_rowid <= json_extract(value, '$[0]') AND last_rowid >= json_extract(value, '$[0]'))"
    };
}

/// One record's update in a bulk write.
#[derive(Debug, Clone)]
pub struct BulkUpdate {
    /// The record as it was read (its version is the expected one; its data becomes history's
    /// `before`).
    pub current: RecordRow,
    /// `current`'s data as JSON text, when the caller has it: history's `before` is written from
    /// it, and `current.data` is then not read (a write-back moves its values out while planning).
    /// `None`: serialized from `current.data`.
    pub current_document: Option<String>,
    /// The new data and search text; its unique values must equal the current ones. When its
    /// `data_json` is set, `data` may be left empty: the text is written, and the rows a bulk
    /// write returns are rebuilt from it.
    pub record: NewRecord,
    /// Whether the search text differs from the stored one (re-indexing only then).
    pub search_changed: bool,
    /// Follow-up work committed with the update (rule side effects).
    pub side: Option<TransitionWrites>,
}

/// A rule run to log with a bulk write (`rule_runs`).
#[derive(Debug, Clone)]
pub struct NewRuleRun {
    pub rule: String,
    pub trigger: String,
    pub record_id: Option<String>,
    pub matched: bool,
    /// What the run saw and did, as JSON text.
    pub outcome: String,
    pub error: Option<String>,
    pub duration_us: i64,
}

fn to_store(error: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(format!("sqlite bulk update: {error}"))
}

fn json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl BulkUpdate {
    /// History's `before`: the current document as given, or serialized now.
    fn before_text(&self) -> Result<std::borrow::Cow<'_, str>, StoreError> {
        match &self.current_document {
            Some(text) => Ok(std::borrow::Cow::Borrowed(text)),
            None => json_text(&self.current.data.0).map(std::borrow::Cow::Owned),
        }
    }

    /// The data written, when `record` carries it only as text (its `data` left empty): parsed.
    /// `None`: `record.data` is the data.
    fn text_only_data(record: &NewRecord) -> Option<Map<String, Value>> {
        match &record.data_json {
            Some(text) if record.data.is_empty() => serde_json::from_str(text).ok(),
            _ => None,
        }
    }
}

/// A record's follow-up work (what `apply_transition_writes!` writes, except consuming a timer or
/// completing a task) through cached rusqlite statements.
fn sqlite_side_work(
    connection: &rusqlite::Connection,
    w: &TransitionWrites,
    record_id: &str,
    actor: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    if w.leave_state {
        connection
            .prepare_cached("UPDATE tasks SET status = 'cancelled', completed_at = ?1 WHERE record_id = ?2 AND flow = ?3 AND status = 'open'")
            .and_then(|mut s| s.execute(rusqlite::params![at, record_id, w.flow]))
            .map_err(to_store)?;
        connection
            .prepare_cached("UPDATE flow_timers SET status = 'cancelled' WHERE record_id = ?1 AND flow = ?2 AND status = 'pending'")
            .and_then(|mut s| s.execute(rusqlite::params![record_id, w.flow]))
            .map_err(to_store)?;
    }
    sqlite_state_work(connection, w, record_id, actor, at)
}

/// The flow history entry and the new state's work of `w` (what `insert_flow_history!` and
/// `insert_state_work!` write) through cached rusqlite statements.
pub(crate) fn sqlite_state_work(
    connection: &rusqlite::Connection,
    w: &TransitionWrites,
    record_id: &str,
    actor: Option<&str>,
    at: &str,
) -> Result<(), StoreError> {
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    let new_id = || uuid::Uuid::now_v7().to_string();
    if !w.flow.is_empty() {
        connection
            .prepare_cached(concat!("INSERT INTO flow_history (app_id, flow, record_id, event, from_state, to_state, actor, at, inputs, app_version, history_seq) \
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ", crate::history_chain::latest_history_seq!("?3"), ")"))
            .and_then(|mut s| s.execute(rusqlite::params![w.app, w.flow, record_id, w.event, w.from_state, w.to_state, actor, at, w.inputs.to_string(), w.app_version]))
            .map_err(to_store)?;
    }
    for task in &w.tasks {
        connection
            .prepare_cached("INSERT INTO tasks (id, app_id, flow, entity, record_id, state, kind, title, assignee, status, outcomes, due_at, escalate_to, created_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10, ?11, ?12, ?13)")
            .and_then(|mut s| s.execute(rusqlite::params![new_id(), w.app, w.flow, w.entity, record_id, w.to_state, task.kind, task.title.to_string(), task.assignee,
                task.outcomes.to_string(), task.due_at.as_ref().map(time), task.escalate_to.as_ref().map(|v| v.to_string()), at]))
            .map_err(to_store)?;
    }
    for (event, due) in &w.timers {
        connection
            .prepare_cached("INSERT INTO flow_timers (id, app_id, flow, entity, record_id, state, event, due_at, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')")
            .and_then(|mut s| s.execute(rusqlite::params![new_id(), w.app, w.flow, w.entity, record_id, w.to_state, event, time(due)]))
            .map_err(to_store)?;
    }
    for (user, message) in &w.notifications {
        connection
            .prepare_cached("INSERT INTO notifications (id, app_id, user_id, record_id, message, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .and_then(|mut s| s.execute(rusqlite::params![new_id(), w.app, user, record_id, message.to_string(), at]))
            .map_err(to_store)?;
    }
    for (kind, payload) in &w.outbox {
        connection
            .prepare_cached("INSERT INTO outbox (app_id, kind, payload, status, attempts, next_attempt_at, created_at) VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)")
            .and_then(|mut s| s.execute(rusqlite::params![w.app, kind, payload.to_string(), at]))
            .map_err(to_store)?;
    }
    Ok(())
}

/// Append `changes` to the change log (what `append_change!` writes on SQLite).
pub(super) fn sqlite_changes(
    connection: &rusqlite::Connection,
    changes: &[crate::NewChange],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = now.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    for change in changes {
        connection
            .prepare_cached(
                "INSERT INTO change_log (app_id, subject, subject_id, operation, actor, at, payload) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.execute(rusqlite::params![
                    change.app_id,
                    change.subject,
                    change.subject_id,
                    change.operation,
                    change.actor,
                    at,
                    change.payload.to_string()
                ])
            })
            .map_err(to_store)?;
    }
    Ok(())
}

/// The SQLite statements of a bulk update on a rusqlite view of the transaction's connection. Returns
/// which updates applied.
fn sqlite_updates(
    connection: &rusqlite::Connection,
    app: &str,
    app_version: i64,
    actor: Option<&str>,
    updates: &[BulkUpdate],
    runs: &[RunLogRow<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    let at = now.to_rfc3339_opts(SecondsFormat::AutoSi, false);
    // Whether the record is still as read (its version), and its latest history row until now; the
    // history row goes next, and the record's UPDATE then makes it the latest (`history_seq`, no
    // trigger on SQLite: migration 0023) in the same statement that writes its data. (Single-row
    // statements: an `INSERT … SELECT` would make SQLite keep a statement journal.)
    // With it, when the search text changes: the record's rowid and the text indexed until now,
    // which the index must be told to forget (an external-content FTS5 table).
    let mut latest = connection
        .prepare_cached(
            "SELECT history_seq, rowid, CASE WHEN ?5 THEN search_text END FROM records \
             WHERE id = ?1 AND app_id = ?2 AND entity = ?3 AND version = ?4 AND deleted_at IS NULL",
        )
        .map_err(to_store)?;
    let mut history = connection
        .prepare_cached(
            "INSERT INTO record_history (record_id, app_id, entity, version, operation, actor, at, before, after, prev_seq) \
             VALUES (?1, ?2, ?3, ?4, 'update', ?5, ?6, ?7, NULL, ?8)",
        )
        .map_err(to_store)?;
    let mut update = connection
        .prepare_cached(
            "UPDATE records SET data = ?1, version = version + 1, updated_at = ?2, updated_by = ?3, history_seq = ?6 \
             WHERE id = ?4 AND version = ?5",
        )
        .map_err(to_store)?;
    // A changed search text is re-indexed below, for all rows at once: flipping `indexed_by_writer`
    // keeps the per-row full-text trigger out (migration 0017).
    let mut update_searchable = connection
        .prepare_cached(
            "UPDATE records SET data = ?1, version = version + 1, updated_at = ?2, updated_by = ?3, history_seq = ?6, \
             search_text = ?7, indexed_by_writer = 1 - indexed_by_writer WHERE id = ?4 AND version = ?5",
        )
        .map_err(to_store)?;
    // (rowid, text indexed until now, new text) of every applied update whose text changed.
    let mut reindex: Vec<(i64, String, &str)> = Vec::new();
    let mut applied = Vec::with_capacity(updates.len());
    let mut parts = BulkParts::default();
    let _ = page_cache_counts(connection);
    let started = std::time::Instant::now();
    for item in updates {
        let row = &item.current;
        let part = std::time::Instant::now();
        let before = item.before_text()?;
        parts.serialize_us += part.elapsed().as_micros() as u64;
        let part = std::time::Instant::now();
        type Latest = (Option<i64>, i64, Option<String>);
        let found: Option<Latest> = latest
            .query_row(
                rusqlite::params![row.id, app, row.entity, row.version, item.search_changed],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(to_store)?;
        let Some((previous, rowid, indexed_text)) = found else {
            // Changed or deleted since it was read: nothing written for it.
            applied.push(false);
            continue;
        };
        history
            .execute(rusqlite::params![
                row.id,
                app,
                row.entity,
                row.version + 1,
                actor,
                at,
                before,
                previous
            ])
            .map_err(to_store)?;
        parts.history_us += part.elapsed().as_micros() as u64;
        let seq = connection.last_insert_rowid();
        let part = std::time::Instant::now();
        let data = item.record.document()?;
        parts.serialize_us += part.elapsed().as_micros() as u64;
        let part = std::time::Instant::now();
        let changed = if let Some(indexed_text) = indexed_text {
            reindex.push((rowid, indexed_text, &item.record.search_text));
            update_searchable.execute(rusqlite::params![
                data,
                at,
                actor,
                row.id,
                row.version,
                seq,
                item.record.search_text
            ])
        } else {
            update.execute(rusqlite::params![data, at, actor, row.id, row.version, seq])
        }
        .map_err(to_store)?;
        parts.records_us += part.elapsed().as_micros() as u64;
        if changed != 1 {
            // The history insert just found the record as read, and nobody else writes here.
            return Err(StoreError::Corrupt(format!(
                "record '{}' changed inside a bulk update's transaction",
                row.id
            )));
        }
        applied.push(true);
    }
    let part = std::time::Instant::now();
    if !reindex.is_empty() {
        let rows = json_text(&reindex)?;
        connection
            .prepare_cached(
                concat!(
                    "INSERT INTO records_fts(records_fts, rowid, search_text) \
                     SELECT 'delete', json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?1)",
                    not_in_search_backlog!()
                ),
            )
            .and_then(|mut s| s.execute([&rows]))
            .map_err(to_store)?;
        connection
            .prepare_cached(
                concat!(
                    "INSERT INTO records_fts(rowid, search_text) \
                     SELECT json_extract(value, '$[0]'), json_extract(value, '$[2]') FROM json_each(?1)",
                    not_in_search_backlog!()
                ),
            )
            .and_then(|mut s| s.execute([&rows]))
            .map_err(to_store)?;
    }
    parts.search_us = part.elapsed().as_micros() as u64;
    let part = std::time::Instant::now();
    for (item, applied) in updates.iter().zip(&applied) {
        if let (Some(side), true) = (&item.side, applied) {
            sqlite_side_work(connection, side, &item.current.id, actor, &at)?;
        }
    }
    parts.side_us = part.elapsed().as_micros() as u64;
    let part = std::time::Instant::now();
    // Rule runs outnumber the updates (every triggered rule of every record): a row per rule.
    crate::flows::sqlite_insert_run_rows(connection, app, app_version, runs, &at)?;
    parts.runs_us = part.elapsed().as_micros() as u64;
    tracing::debug!(
        updates = updates.len(),
        run_rows = runs.len(),
        serialize_us = parts.serialize_us,
        records_us = parts.records_us,
        history_us = parts.history_us,
        search_us = parts.search_us,
        side_us = parts.side_us,
        runs_us = parts.runs_us,
        total_us = started.elapsed().as_micros() as u64,
        cache = ?page_cache_counts(connection),
        "sqlite bulk update statements"
    );
    Ok(applied)
}

/// The connection's page-cache hits, misses and pages written since the last call (the debug log).
#[allow(unsafe_code)]
fn page_cache_counts(connection: &rusqlite::Connection) -> [i32; 3] {
    use rusqlite::ffi;
    let mut counts = [0; 3];
    for (count, op) in counts.iter_mut().zip([
        ffi::SQLITE_DBSTATUS_CACHE_HIT,
        ffi::SQLITE_DBSTATUS_CACHE_MISS,
        ffi::SQLITE_DBSTATUS_CACHE_WRITE,
    ]) {
        let mut highest = 0;
        // SAFETY: the handle is open for the connection's lifetime; the call only reads counters.
        unsafe { ffi::sqlite3_db_status(connection.handle(), op, count, &mut highest, 1) };
    }
    counts
}

/// Where a SQLite bulk update's statements spent their time (the debug log).
#[derive(Default)]
struct BulkParts {
    serialize_us: u64,
    records_us: u64,
    history_us: u64,
    search_us: u64,
    side_us: u64,
    runs_us: u64,
}

/// The whole SQLite transaction of a bulk update — BEGIN IMMEDIATE, the updates with their history,
/// side work and rule runs, the change log, COMMIT (or ROLLBACK on error) — on a rusqlite view of
/// the write connection. Which updates applied.
pub(crate) fn sqlite_bulk_transaction(
    connection: &rusqlite::Connection,
    app: &str,
    app_version: i64,
    actor: Option<&str>,
    updates: &[BulkUpdate],
    runs: &[RunLogRow<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    let sql = |statement: &str| connection.execute_batch(statement).map_err(to_store);
    sql("BEGIN IMMEDIATE")?;
    let written = sqlite_updates(connection, app, app_version, actor, updates, runs, now).and_then(
        |applied| {
            sqlite_changes(
                connection,
                &bulk_changes(app, actor, updates, &applied),
                now,
            )?;
            Ok(applied)
        },
    );
    match written {
        Ok(applied) => {
            let started = std::time::Instant::now();
            sql("COMMIT")?;
            tracing::debug!(
                commit_us = started.elapsed().as_micros() as u64,
                "sqlite bulk update committed"
            );
            Ok(applied)
        }
        Err(error) => {
            let _ = sql("ROLLBACK");
            Err(error)
        }
    }
}

/// Each update's new row (`None` where it did not apply).
pub(crate) fn rows_after(
    updates: &[BulkUpdate],
    applied: &[bool],
    actor: Option<&str>,
    now: DateTime<Utc>,
) -> Vec<Option<RecordRow>> {
    updates
        .iter()
        .zip(applied)
        .map(|(item, applied)| {
            applied.then(|| RecordRow {
                version: item.current.version + 1,
                data: Json(
                    BulkUpdate::text_only_data(&item.record)
                        .unwrap_or_else(|| item.record.data.clone()),
                ),
                updated_at: now,
                updated_by: actor.map(str::to_owned),
                ..item.current.clone()
            })
        })
        .collect()
}

/// The change-log entries of a bulk update: one per entity, listing every applied update's id.
fn bulk_changes(
    app: &str,
    actor: Option<&str>,
    updates: &[BulkUpdate],
    applied: &[bool],
) -> Vec<crate::NewChange> {
    let mut ids: Vec<(&str, Vec<&str>)> = Vec::new();
    for (item, _) in updates.iter().zip(applied).filter(|(_, applied)| **applied) {
        let row = &item.current;
        match ids
            .iter_mut()
            .find(|(entity, _)| *entity == row.entity.as_str())
        {
            Some((_, list)) => list.push(row.id.as_str()),
            None => ids.push((row.entity.as_str(), vec![row.id.as_str()])),
        }
    }
    ids.into_iter()
        .map(|(entity, list)| {
            let mut change = record_change(app, entity, list[0], "update", actor, 0);
            change.payload = serde_json::json!({"ids": list, "bulk": true});
            change
        })
        .collect()
}

/// What a bulk write did: which updates applied, and when.
#[derive(Debug, Clone)]
pub struct BulkWritten {
    /// Per update, whether it applied (`false`: its record changed or was deleted since it was
    /// read, and nothing was written for it).
    pub applied: Vec<bool>,
    /// The updated records' `updated_at`.
    pub at: DateTime<Utc>,
}

impl BulkWritten {
    /// The stored row of an applied `update` (by `actor`), built from the update without copying its
    /// data.
    pub fn row_of(&self, update: BulkUpdate, actor: Option<&str>) -> RecordRow {
        RecordRow {
            version: update.current.version + 1,
            data: Json(BulkUpdate::text_only_data(&update.record).unwrap_or(update.record.data)),
            updated_at: self.at,
            updated_by: actor.map(str::to_owned),
            ..update.current
        }
    }
}

impl Store {
    /// Update many records of one entity of `app` in one transaction (see the module docs), logging
    /// `runs` (of app version `app_version`) with them. Returns each update's new row, or `None` when
    /// its record was changed or deleted since it was read (nothing was written for it).
    pub async fn update_records_bulk(
        &self,
        app: &str,
        app_version: i64,
        actor: Option<&str>,
        updates: &[BulkUpdate],
        runs: &[NewRuleRun],
    ) -> Result<Vec<Option<RecordRow>>, StoreError> {
        let written = self
            .write_bulk(app, app_version, actor, updates, runs, true)
            .await?;
        Ok(rows_after(updates, &written.applied, actor, written.at))
    }

    /// [`Store::update_records_bulk`] without building the new rows (which updates applied, and
    /// when: callers that need a row build it with [`BulkWritten::row_of`]), and whose commit
    /// does not wait for the disk on SQLite (`synchronous=NORMAL` for this transaction), as
    /// [`Store::begin_unsynced_bulk_insert`]: the updates are visible at once and survive a crash
    /// of the process; [`Store::sync_log`] (or any later ordinary commit) makes them durable
    /// against a power cut. For the pages of a nightly write-back, which is reported done only
    /// after that sync. On PostgreSQL an ordinary commit.
    pub async fn write_records_bulk_unsynced(
        &self,
        app: &str,
        app_version: i64,
        actor: Option<&str>,
        updates: &[BulkUpdate],
        runs: &[NewRuleRun],
    ) -> Result<BulkWritten, StoreError> {
        self.write_bulk(app, app_version, actor, updates, runs, false)
            .await
    }

    async fn write_bulk(
        &self,
        app: &str,
        app_version: i64,
        actor: Option<&str>,
        updates: &[BulkUpdate],
        runs: &[NewRuleRun],
        durable: bool,
    ) -> Result<BulkWritten, StoreError> {
        if updates.iter().any(|u| {
            u.side
                .as_ref()
                .is_some_and(|s| s.consume_timer.is_some() || s.complete_task.is_some())
        }) {
            return Err(StoreError::Corrupt(
                "a bulk update cannot consume a timer or complete a task (use update_record_with)"
                    .into(),
            ));
        }
        let now = crate::now();
        // Built before the transaction: serializing thousands of runs should not hold the writer.
        let grouping = std::time::Instant::now();
        let runs = run_log_rows(runs)?;
        let group_us = grouping.elapsed().as_micros() as u64;
        let runs = runs.as_slice();
        let applied: Vec<bool> = match &self.pools {
            crate::connect::Pools::Sqlite {
                write,
                relaxed_sync,
                ..
            } => {
                // The whole transaction in one visit to the connection: each sqlx statement would cost
                // a hop to its worker thread (~120 µs, PERF.md), more than the updates themselves.
                let started = std::time::Instant::now();
                let mut connection = write.acquire().await?;
                let acquired = started.elapsed();
                if !durable {
                    // Marked first: the pool puts `synchronous=FULL` back when the connection is
                    // released, whatever happens.
                    relaxed_sync.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                let applied = super::with_rusqlite(&mut connection, |connection| {
                    if !durable {
                        connection
                            .execute_batch("PRAGMA synchronous = NORMAL")
                            .map_err(to_store)?;
                    }
                    sqlite_bulk_transaction(connection, app, app_version, actor, updates, runs, now)
                })
                .await?;
                tracing::debug!(
                    updates = updates.len(),
                    run_rows = runs.len(),
                    group_us,
                    wait_us = acquired.as_micros() as u64,
                    write_us = (started.elapsed() - acquired).as_micros() as u64,
                    "sqlite bulk update"
                );
                applied
            }
            crate::connect::Pools::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let mut applied = Vec::with_capacity(updates.len());
                for item in updates {
                    let row = &item.current;
                    // Both documents go as text (given or serialized now) and become JSONB here.
                    let data = item.record.document()?;
                    let changed = sqlx::query(
                        "UPDATE records SET data = $1::jsonb, version = version + 1, updated_at = $2, updated_by = $3, \
                         search_text = CASE WHEN $8 THEN $9 ELSE search_text END \
                         WHERE id = $4 AND app_id = $5 AND entity = $6 AND version = $7 AND deleted_at IS NULL",
                    )
                    .bind(data.as_ref())
                    .bind(now)
                    .bind(actor)
                    .bind(&row.id)
                    .bind(app)
                    .bind(&row.entity)
                    .bind(row.version)
                    .bind(item.search_changed)
                    .bind(&item.record.search_text)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if changed == 1 {
                        let before = item.before_text()?;
                        sqlx::query(
                            "INSERT INTO record_history (record_id, app_id, entity, version, operation, actor, at, before, after, prev_seq) \
                             VALUES ($1, $2, $3, $4, 'update', $5, $6, $7::jsonb, NULL, (SELECT history_seq FROM records WHERE id = $1))",
                        )
                        .bind(&row.id)
                        .bind(app)
                        .bind(&row.entity)
                        .bind(row.version + 1)
                        .bind(actor)
                        .bind(now)
                        .bind(before.as_ref())
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let (Some(side), 1) = (&item.side, changed) {
                        if side.leave_state {
                            sqlx::query("UPDATE tasks SET status = 'cancelled', completed_at = $1 WHERE record_id = $2 AND flow = $3 AND status = 'open'")
                                .bind(now).bind(&row.id).bind(&side.flow).execute(&mut *tx).await?;
                            sqlx::query("UPDATE flow_timers SET status = 'cancelled' WHERE record_id = $1 AND flow = $2 AND status = 'pending'")
                                .bind(&row.id).bind(&side.flow).execute(&mut *tx).await?;
                        }
                        crate::flows::insert_flow_history!(tx, side, &row.id, actor, now);
                        crate::flows::insert_state_work!(tx, side, &row.id, now);
                    }
                    applied.push(changed == 1);
                }
                crate::flows::insert_run_rows!(tx, runs, app, app_version, now);
                for change in bulk_changes(app, actor, updates, &applied) {
                    append_change!(self, tx, &change);
                }
                tx.commit().await?;
                applied
            }
        };
        Ok(BulkWritten { applied, at: now })
    }

    /// Update one record (with a flow transition's writes). On SQLite (one writer) it shares one
    /// transaction with the other updates that arrive at the same time (group commit): concurrent
    /// transitions cost one commit instead of one each; on PostgreSQL it commits on its own connection. The record's unique values must be unchanged. A transition that consumes a
    /// timer or completes a task has a check that can refuse it inside the transaction and commits
    /// alone ([`Store::update_record_with`]).
    pub async fn update_record_grouped(
        &self,
        app: &str,
        actor: Option<&str>,
        update: BulkUpdate,
    ) -> Result<RecordRow, StoreError> {
        let alone = update
            .side
            .as_ref()
            .is_some_and(|s| s.consume_timer.is_some() || s.complete_task.is_some());
        let (id, entity, version) = (
            update.current.id.clone(),
            update.current.entity.clone(),
            update.current.version,
        );
        let update = if alone {
            update
        } else if self.backend() == crate::Backend::Postgres {
            // PostgreSQL commits concurrent transactions on many connections and flushes their WAL
            // together by itself; funnelling them through one connection only serialises them.
            let written = self
                .update_records_bulk(app, 0, actor, std::slice::from_ref(&update), &[])
                .await?
                .remove(0);
            return self.grouped_outcome(app, &entity, &id, written).await;
        } else {
            let sender = self
                .update_group
                .get_or_init(|| crate::group_commit::start_updates(self.without_group_commit()));
            let (reply, outcome) = tokio::sync::oneshot::channel();
            match sender.send((app.to_owned(), actor.map(str::to_owned), update, reply)) {
                Ok(()) => {
                    let written = outcome.await.map_err(|_| {
                        StoreError::Corrupt("the group-commit task stopped".into())
                    })??;
                    return self.grouped_outcome(app, &entity, &id, written).await;
                }
                // The task is gone (runtime shutting down): commit alone.
                Err(tokio::sync::mpsc::error::SendError((_, _, update, _))) => update,
            }
        };
        self.update_record_with(
            app,
            &entity,
            &id,
            version,
            &update.record,
            actor,
            update.side.as_ref(),
        )
        .await
    }

    /// A grouped update's row, or why it was not applied: the record changed meanwhile (with its
    /// current version) or is gone.
    async fn grouped_outcome(
        &self,
        app: &str,
        entity: &str,
        id: &str,
        written: Option<RecordRow>,
    ) -> Result<RecordRow, StoreError> {
        match written {
            Some(row) => Ok(row),
            None => match self.get_record(app, entity, id).await? {
                Some(row) if row.deleted_at.is_none() => Err(StoreError::VersionMismatch {
                    current: row.version,
                }),
                _ => Err(StoreError::NotFound(format!("record '{id}'"))),
            },
        }
    }
}
