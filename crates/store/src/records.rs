//! Records: JSON documents keyed by stable field uid, with versions (optimistic concurrency), soft
//! delete, full history, unique values and auto-number counters. Every write is one transaction that
//! also appends to the history and the change log.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;
use trellis_model::CheckedFilter;

use crate::change_log::append_change;
use crate::history_chain::insert_history;
use crate::query::{Arg, Cursor, SortKey, Sql};
use crate::{NewChange, Store, StoreError};
use insert_statements::{insert_statements, new_rows};

/// What a list asks for: a checked filter, optional full-text words, sort keys, the cursor to continue
/// after, a page size, and whether soft-deleted records count.
#[derive(Debug, Clone, Copy)]
pub struct ListQuery<'a> {
    pub filter: &'a CheckedFilter,
    pub search: Option<&'a str>,
    pub sort: &'a [SortKey],
    pub cursor: Option<&'a Cursor>,
    pub limit: i64,
    pub include_deleted: bool,
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RecordRow {
    pub id: String,
    pub app_id: String,
    pub entity: String,
    pub version: i64,
    /// Field values keyed by field uid (plus hidden values of removed fields).
    pub data: Json<Map<String, Value>>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One entry of a record's history.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HistoryRow {
    pub seq: i64,
    pub record_id: String,
    pub version: i64,
    /// `create`, `update`, `delete`, `restore`, `migrate`.
    pub operation: String,
    pub actor: Option<String>,
    pub at: DateTime<Utc>,
    pub before: Option<Json<Value>>,
    pub after: Option<Json<Value>>,
}

/// A value of a unique field, as it is indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueValue {
    pub field_uid: String,
    pub value: String,
}

/// Records of one app entity inserted together by one actor.
#[derive(Debug, Clone)]
pub(crate) struct InsertGroup {
    pub app: String,
    pub entity: String,
    pub actor: Option<String>,
    pub records: Vec<NewRecord>,
}

/// A record to insert.
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub data: Map<String, Value>,
    pub uniques: Vec<UniqueValue>,
    /// Lower-cased text of the searchable fields, for `q`.
    pub search_text: String,
    /// `data` as JSON text when it was serialized ahead (a bulk import writes it on its validating
    /// thread, so the single writer only binds the text); `None`: the insert serializes `data`.
    /// Bulk inserts ([`crate::BulkInsert`]) read only this text when it is given, so their records
    /// may leave `data` empty; every other insert path needs `data`.
    pub data_json: Option<String>,
}

impl NewRecord {
    /// Serialize `data` now, off the writer (see [`NewRecord::data_json`]).
    pub fn serialize_ahead(&mut self) {
        self.data_json = serde_json::to_string(&self.data).ok();
    }

    /// `data` as JSON text: the text serialized ahead, or serialized now.
    pub(crate) fn document(&self) -> Result<std::borrow::Cow<'_, str>, StoreError> {
        match &self.data_json {
            Some(text) => Ok(std::borrow::Cow::Borrowed(text)),
            None => serde_json::to_string(&self.data)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }
}

/// A change of stored data made by a schema migration. `version` is the version the data was read
/// at: if the record changed since, the publish fails instead of overwriting the change.
#[derive(Debug, Clone)]
pub struct MigratedRecord {
    pub entity: String,
    pub id: String,
    pub version: i64,
    pub before: Map<String, Value>,
    pub data: Map<String, Value>,
    pub search_text: String,
}

/// What publishing a version does to one stored record.
#[derive(Debug, Clone)]
pub enum RecordMigration {
    /// Its stored data changes: a new version, with a `migrate` history entry.
    Rewritten(MigratedRecord),
    /// Only its search text changes (the entity's searchable fields changed): its data, version and
    /// history stay as they are. `version` is the version it was read at, as for a rewrite.
    Reindexed {
        id: String,
        version: i64,
        search_text: String,
    },
}

/// Bind every argument of a dynamic statement.
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(text) => query.bind(text.clone()),
                Arg::OptText(text) => query.bind(text.clone()),
                Arg::Time(time) => query.bind(*time),
                Arg::Int(int) => query.bind(*int),
                Arg::Float(float) => query.bind(*float),
                Arg::Json(value) => query.bind(sqlx::types::Json(value.clone())),
            };
        }
        query
    }};
}

/// Rows per multi-row INSERT (SQLite allows 32,766 bound values per statement).
const INSERT_CHUNK: usize = 100;

/// Run the statements of insert chunks on `$conn`; a unique value already held makes the enclosing
/// function (or async block) return [`StoreError::UniqueViolation`].
macro_rules! execute_insert_chunks {
    ($conn:expr, $statements:expr) => {
        for chunk in $statements {
            bind_args!(sqlx::query(sqlx::AssertSqlSafe(chunk.insert.text.clone())), &chunk.insert.args).execute($conn).await?;
            bind_args!(sqlx::query(sqlx::AssertSqlSafe(chunk.history.text.clone())), &chunk.history.args).execute($conn).await?;
            let Some((uniques, expected)) = &chunk.uniques else { continue };
            let inserted = bind_args!(sqlx::query(sqlx::AssertSqlSafe(uniques.text.clone())), &uniques.args)
                .execute($conn)
                .await?
                .rows_affected();
            if inserted as usize != *expected {
                // Find the value another record (or an earlier row of this batch) holds.
                for (record_id, unique) in &chunk.unique_owners {
                    let owner: Option<String> = sqlx::query_scalar(
                        "SELECT record_id FROM record_unique WHERE app_id = $1 AND entity = $2 AND field = $3 AND value = $4",
                    )
                    .bind(&chunk.app)
                    .bind(&chunk.entity)
                    .bind(&unique.field_uid)
                    .bind(&unique.value)
                    .fetch_optional($conn)
                    .await?;
                    if owner.as_deref() != Some(record_id.as_str()) {
                        return Err(StoreError::UniqueViolation { field_uid: unique.field_uid.clone(), value: unique.value.clone() });
                    }
                }
            }
        }
    };
}

macro_rules! select_record {
    () => {
        "SELECT r.id, r.app_id, r.entity, r.version, r.data, r.created_at, r.created_by, r.updated_at, \
         r.updated_by, r.deleted_at FROM records r"
    };
}

/// Insert `$uniques` for `$record_id`, mapping a duplicate to [`StoreError::UniqueViolation`].
macro_rules! insert_uniques {
    ($tx:expr, $app:expr, $entity:expr, $record_id:expr, $uniques:expr) => {
        for unique in $uniques {
            let inserted = sqlx::query(
                "INSERT INTO record_unique (app_id, entity, field, value, record_id) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT DO NOTHING",
            )
            .bind($app)
            .bind($entity)
            .bind(&unique.field_uid)
            .bind(&unique.value)
            .bind($record_id)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::UniqueViolation { field_uid: unique.field_uid.clone(), value: unique.value.clone() });
            }
        }
    };
}

fn record_change(
    app: &str,
    entity: &str,
    id: &str,
    operation: &str,
    actor: Option<&str>,
    version: i64,
) -> NewChange {
    NewChange {
        app_id: Some(app.to_owned()),
        subject: format!("record:{entity}"),
        subject_id: id.to_owned(),
        operation: operation.to_owned(),
        actor: actor.map(str::to_owned),
        payload: serde_json::json!({"version": version}),
    }
}

impl Store {
    /// Insert records in one transaction (all or nothing). Returns them as stored, in order.
    pub async fn insert_records(
        &self,
        app: &str,
        entity: &str,
        actor: Option<&str>,
        records: &[NewRecord],
    ) -> Result<Vec<RecordRow>, StoreError> {
        let group = InsertGroup {
            app: app.to_owned(),
            entity: entity.to_owned(),
            actor: actor.map(str::to_owned),
            records: records.to_vec(),
        };
        Ok(self
            .insert_groups(std::slice::from_ref(&group))
            .await?
            .remove(0))
    }

    /// Insert a single record, sharing one transaction with other single inserts that arrive at the same
    /// time (group commit): concurrent API creates cost one commit instead of one each. If the shared
    /// transaction fails, each record is retried alone so that every caller gets its own outcome.
    pub async fn insert_record_grouped(
        &self,
        app: &str,
        entity: &str,
        actor: Option<&str>,
        record: NewRecord,
    ) -> Result<RecordRow, StoreError> {
        let group = InsertGroup {
            app: app.to_owned(),
            entity: entity.to_owned(),
            actor: actor.map(str::to_owned),
            records: vec![record],
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let sender = self
            .group_commit
            .get_or_init(|| crate::group_commit::start(self.without_group_commit()));
        if sender.send((group.clone(), reply)).is_err() {
            return Ok(self
                .insert_groups(std::slice::from_ref(&group))
                .await?
                .remove(0)
                .remove(0));
        }
        match outcome.await {
            Ok(result) => result,
            Err(_) => Ok(self
                .insert_groups(std::slice::from_ref(&group))
                .await?
                .remove(0)
                .remove(0)),
        }
    }

    /// Insert several groups of records in one transaction. Returns the rows of each group.
    pub(crate) async fn insert_groups(
        &self,
        groups: &[InsertGroup],
    ) -> Result<Vec<Vec<RecordRow>>, StoreError> {
        let now = crate::now();
        let all_rows: Vec<Vec<RecordRow>> =
            groups.iter().map(|group| new_rows(group, now)).collect();
        let changes: Vec<NewChange> = groups
            .iter()
            .zip(&all_rows)
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(group, rows)| {
                let mut change = record_change(&group.app, &group.entity, &rows[0].id, "create", group.actor.as_deref(), 1);
                change.payload = serde_json::json!({"ids": rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>()});
                change
            })
            .collect();
        if let crate::connect::Pools::Sqlite { write, .. } = &self.pools {
            // The creates of group commit (the records an outbox pass creates): prepared rusqlite
            // statements on the writer, as a bulk import's chunks.
            on_writer(write, |connection| {
                for (group, rows) in groups.iter().zip(&all_rows) {
                    sqlite_fast::check_uniques(connection, group, &group.records)?;
                    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
                    sqlite_fast::insert_rows(
                        connection,
                        group,
                        &group.records,
                        &ids,
                        now,
                        sqlite_fast::SearchIndexing::Now,
                    )?;
                }
                bulk_update::sqlite_changes(connection, &changes, now)
            })
            .await?;
            return Ok(all_rows);
        }
        let statements: Vec<_> = groups
            .iter()
            .zip(&all_rows)
            .flat_map(|(group, rows)| insert_statements(group, rows, now))
            .collect();
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            execute_insert_chunks!(&mut *tx, &statements);
            for change in &changes {
                append_change!(self, tx, change);
            }
            tx.commit().await?;
        });
        Ok(all_rows)
    }

    /// The record (live or deleted), if it exists in this app and entity.
    pub async fn get_record(
        &self,
        app: &str,
        entity: &str,
        id: &str,
    ) -> Result<Option<RecordRow>, StoreError> {
        let sql = concat!(
            select_record!(),
            " WHERE r.id = $1 AND r.app_id = $2 AND r.entity = $3"
        );
        if let Some(native) = self.native_reads() {
            // Read by every delivery of the outbox and every change of one record: on the calling
            // thread (see `native_read`).
            match native.with(|connection| {
                use rusqlite::OptionalExtension;
                connection
                    .prepare_cached(sql)?
                    .query_row(
                        rusqlite::named_params! {"$1": id, "$2": app, "$3": entity},
                        crate::native_read::NativeRecord::from_row,
                    )
                    .optional()
            }) {
                Ok(found) => return found.map(|record| record.into_row()).transpose(),
                Err(error) => {
                    tracing::debug!(%error, "native read failed; reading through sqlx");
                }
            }
        }
        let row = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, RecordRow>(sql)
                .bind(id)
                .bind(app)
                .bind(entity)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    /// Replace a live record's data if it is still at `expected_version`; returns the new row.
    pub async fn update_record(
        &self,
        app: &str,
        entity: &str,
        id: &str,
        expected_version: i64,
        record: &NewRecord,
        actor: Option<&str>,
    ) -> Result<RecordRow, StoreError> {
        self.update_record_with(app, entity, id, expected_version, record, actor, None)
            .await
    }

    /// [`Store::update_record`], plus a flow transition's writes in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_record_with(
        &self,
        app: &str,
        entity: &str,
        id: &str,
        expected_version: i64,
        record: &NewRecord,
        actor: Option<&str>,
        transition: Option<&crate::flows::TransitionWrites>,
    ) -> Result<RecordRow, StoreError> {
        let (data, uniques) = (&record.data, &record.uniques);
        let now = crate::now();
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let current = sqlx::query_as::<_, RecordRow>(concat!(
                select_record!(),
                " WHERE r.id = $1 AND r.app_id = $2 AND r.entity = $3"
            ))
            .bind(id)
            .bind(app)
            .bind(entity)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current.filter(|r| r.deleted_at.is_none()) else {
                return Err(StoreError::NotFound(format!("record '{id}'")));
            };
            let updated = sqlx::query(
                "UPDATE records SET data = $1, version = version + 1, updated_at = $2, updated_by = $3, search_text = $6 \
                 WHERE id = $4 AND version = $5 AND deleted_at IS NULL",
            )
            .bind(Json(data))
            .bind(now)
            .bind(actor)
            .bind(id)
            .bind(expected_version)
            .bind(&record.search_text)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::VersionMismatch {
                    current: current.version,
                });
            }
            sqlx::query("DELETE FROM record_unique WHERE record_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_uniques!(tx, app, entity, id, uniques);
            let version = expected_version + 1;
            insert_history!(
                tx,
                app,
                entity,
                id,
                version,
                "update",
                actor,
                now,
                Some(Json(Value::Object(current.data.0.clone()))),
                Some(Json(Value::Object(data.clone())))
            );
            if let Some(writes) = transition {
                crate::flows::apply_transition_writes!(tx, writes, id, actor, now);
            }
            append_change!(
                self,
                tx,
                &record_change(app, entity, id, "update", actor, version)
            );
            tx.commit().await?;
            Ok(RecordRow {
                version,
                data: Json(data.clone()),
                updated_at: now,
                updated_by: actor.map(str::to_owned),
                ..current
            })
        })
    }

    /// Soft-delete (`deleted = true`) or restore a record. Restoring re-claims its unique values.
    /// Returns `None` when the record is not in the expected state.
    pub async fn set_record_deleted(
        &self,
        app: &str,
        entity: &str,
        id: &str,
        deleted: bool,
        uniques: &[UniqueValue],
        actor: Option<&str>,
    ) -> Result<Option<RecordRow>, StoreError> {
        let now = crate::now();
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let current = sqlx::query_as::<_, RecordRow>(concat!(
                select_record!(),
                " WHERE r.id = $1 AND r.app_id = $2 AND r.entity = $3"
            ))
            .bind(id)
            .bind(app)
            .bind(entity)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(current) = current.filter(|r| r.deleted_at.is_some() != deleted) else {
                return Ok(None);
            };
            let version = current.version + 1;
            let deleted_at = deleted.then_some(now);
            sqlx::query("UPDATE records SET deleted_at = $1, version = $2, updated_at = $3, updated_by = $4 WHERE id = $5")
                .bind(deleted_at)
                .bind(version)
                .bind(now)
                .bind(actor)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if deleted {
                sqlx::query("DELETE FROM record_unique WHERE record_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            } else {
                insert_uniques!(tx, app, entity, id, uniques);
            }
            let operation = if deleted { "delete" } else { "restore" };
            let snapshot = Some(Json(Value::Object(current.data.0.clone())));
            insert_history!(
                tx,
                app,
                entity,
                id,
                version,
                operation,
                actor,
                now,
                snapshot.clone(),
                snapshot
            );
            append_change!(
                self,
                tx,
                &record_change(app, entity, id, operation, actor, version)
            );
            tx.commit().await?;
            Ok(Some(RecordRow {
                version,
                deleted_at,
                updated_at: now,
                updated_by: actor.map(str::to_owned),
                ..current
            }))
        })
    }

    /// Every change of a record, oldest first.
    pub async fn record_history(
        &self,
        app: &str,
        entity: &str,
        id: &str,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let mut rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, HistoryRow>(
                concat!(
                    crate::history_chain::history_chain!("$1"),
                    "SELECT seq, record_id, version, operation, actor, at, before, after FROM record_history \
                     WHERE seq IN (SELECT seq FROM chain) AND record_id = $1 AND app_id = $2 AND entity = $3 ORDER BY seq"
                ),
            )
            .bind(id)
            .bind(app)
            .bind(entity)
            .fetch_all(pool)
            .await?
        });
        // Creates and bulk write-backs are written without the document after, which would repeat
        // what follows: every later change of the data (update, migration, merge) keeps it as its
        // `before`, and when nothing followed it is the record.
        for at in 0..rows.len() {
            if rows[at].after.is_some() {
                continue;
            }
            rows[at].after = match rows.get(at + 1) {
                Some(next) => next.before.clone(),
                None => crate::with_pool!(self, read, |pool| {
                    sqlx::query_as::<_, (Json<Value>,)>("SELECT data FROM records WHERE id = $1")
                        .bind(id)
                        .fetch_optional(pool)
                        .await?
                })
                .map(|(data,)| data),
            };
        }
        Ok(rows)
    }

    /// Which of `ids` are live records of `entity`.
    pub async fn live_record_ids(
        &self,
        app: &str,
        entity: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        // A few ids (the relations of one record being created): natively on SQLite.
        if ids.len() <= 64
            && let Some(native) = self.native_reads()
        {
            let list = serde_json::Value::from(ids.to_vec()).to_string();
            match native.with(|connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT id FROM records WHERE app_id = ?1 AND entity = ?2 AND deleted_at IS NULL \
                     AND id IN (SELECT value FROM json_each(?3))",
                )?;
                let rows = statement.query_map(rusqlite::params![app, entity, list], |row| row.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()
            }) {
                Ok(found) => return Ok(found),
                Err(error) => tracing::debug!(%error, "native read failed; reading through sqlx"),
            }
        }
        let mut found = Vec::new();
        for chunk in ids.chunks(500) {
            let mut sql = Sql::default();
            let app_arg = sql.arg(Arg::Text(app.to_owned()));
            let entity_arg = sql.arg(Arg::Text(entity.to_owned()));
            let placeholders: Vec<String> = chunk
                .iter()
                .map(|id| sql.arg(Arg::Text(id.clone())))
                .collect();
            sql.push(&format!(
                "SELECT id FROM records WHERE app_id = {app_arg} AND entity = {entity_arg} AND deleted_at IS NULL AND id IN ({})",
                placeholders.join(", ")
            ));
            let Sql { text, args } = sql;
            let ids: Vec<String> = crate::with_pool!(self, read, |pool| {
                bind_args!(sqlx::query_scalar(sqlx::AssertSqlSafe(text.clone())), &args)
                    .fetch_all(pool)
                    .await?
            });
            found.extend(ids);
        }
        Ok(found)
    }

    /// Reserve `count` consecutive values of an auto-number counter and return the first (its own
    /// transaction: numbers may have gaps, like every database sequence, but never repeat).
    pub async fn reserve_counter(
        &self,
        app: &str,
        entity: &str,
        field: &str,
        period: &str,
        count: i64,
    ) -> Result<i64, StoreError> {
        if let crate::connect::Pools::Sqlite { write, .. } = &self.pools {
            // Every created record with an auto-number: through rusqlite on the writer.
            let last: i64 = on_writer(write, |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO record_counters (app_id, entity, field, period, value) VALUES (?1, ?2, ?3, ?4, ?5) \
                         ON CONFLICT (app_id, entity, field, period) DO UPDATE SET value = record_counters.value + ?5 \
                         RETURNING value",
                    )
                    .and_then(|mut statement| {
                        statement.query_row(rusqlite::params![app, entity, field, period, count], |row| {
                            row.get(0)
                        })
                    })
                    .map_err(|e| StoreError::Corrupt(format!("auto-number counter: {e}")))
            })
            .await?;
            return Ok(last - count + 1);
        }
        let last: i64 = crate::with_pool!(self, write, |pool| {
            sqlx::query_scalar(
                "INSERT INTO record_counters (app_id, entity, field, period, value) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (app_id, entity, field, period) DO UPDATE SET value = record_counters.value + $5 \
                 RETURNING value",
            )
            .bind(app)
            .bind(entity)
            .bind(field)
            .bind(period)
            .bind(count)
            .fetch_one(pool)
            .await?
        });
        Ok(last - count + 1)
    }

    /// Every record of an entity, live or deleted (for migrations), in id order.
    pub async fn all_records(&self, app: &str, entity: &str) -> Result<Vec<RecordRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, RecordRow>(concat!(
                select_record!(),
                " WHERE r.app_id = $1 AND r.entity = $2 ORDER BY r.id"
            ))
            .bind(app)
            .bind(entity)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

mod bulk;
pub(crate) mod bulk_update;
mod insert_statements;
mod list;
mod postgres_copy;
mod search_backlog;
mod sqlite_fast;

pub(crate) use bind_args;
pub use bulk::BulkInsert;
pub(crate) use bulk_update::sqlite_state_work;
pub use bulk_update::{BulkUpdate, BulkWritten, NewRuleRun};
pub(crate) use sqlite_fast::{on_writer, sqlite_time, with_rusqlite};
