//! Batch runs of rules: one row per run with its position and counts, advanced after every page, so
//! a run cut short (a crash, a restart) resumes where it stopped instead of starting over.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A batch run as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RuleBatch {
    pub id: String,
    pub app_id: String,
    pub rule: String,
    pub trigger_kind: String,
    pub app_version: i64,
    /// `running`, `done` or `failed`.
    pub status: String,
    /// Live records of the entity when the run started.
    pub total: i64,
    /// The last record id done (pages go in id order).
    pub after_id: Option<String>,
    pub processed: i64,
    pub matched: i64,
    pub changed: i64,
    pub failed: i64,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Counts of a batch so far.
/// A record of a page as read ([`Store::record_page_as_read`]).
#[derive(Debug, Clone)]
pub struct PagedRecord {
    /// The record; its `data` is left empty when `document` holds it.
    pub row: crate::RecordRow,
    /// The record's data as stored (JSON text, not parsed), when the read had it as text.
    pub document: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub processed: i64,
    pub matched: i64,
    pub changed: i64,
    pub failed: i64,
}

const COLUMNS: &str = "id, app_id, rule, trigger_kind, app_version, status, total, after_id, processed, \
                       matched, changed, failed, started_at, heartbeat_at, finished_at";

impl Store {
    /// The running batch of `rule`, if any.
    pub async fn running_rule_batch(
        &self,
        app: &str,
        rule: &str,
    ) -> Result<Option<RuleBatch>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rule_batches WHERE app_id = $1 AND rule = $2 AND status = 'running' \
             ORDER BY started_at DESC LIMIT 1"
        );
        let row = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, RuleBatch>(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .bind(rule)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    /// Start a batch run.
    pub async fn start_rule_batch(
        &self,
        app: &str,
        rule: &str,
        trigger: &str,
        app_version: i64,
        total: i64,
    ) -> Result<RuleBatch, StoreError> {
        let now = crate::now();
        let id = uuid::Uuid::now_v7().to_string();
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO rule_batches (id, app_id, rule, trigger_kind, app_version, status, total, started_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $7)",
            )
            .bind(&id)
            .bind(app)
            .bind(rule)
            .bind(trigger)
            .bind(app_version)
            .bind(total)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(RuleBatch {
            id,
            app_id: app.to_owned(),
            rule: rule.to_owned(),
            trigger_kind: trigger.to_owned(),
            app_version,
            status: "running".into(),
            total,
            after_id: None,
            processed: 0,
            matched: 0,
            changed: 0,
            failed: 0,
            started_at: now,
            heartbeat_at: now,
            finished_at: None,
        })
    }

    /// Take over a running batch whose heartbeat is older than `stale_before` (compare-and-set, so
    /// one server resumes it); false when another server is still running it.
    pub async fn resume_rule_batch(
        &self,
        id: &str,
        stale_before: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let taken = crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE rule_batches SET heartbeat_at = $1 WHERE id = $2 AND status = 'running' AND heartbeat_at < $3",
            )
            .bind(crate::now())
            .bind(id)
            .bind(stale_before)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(taken == 1)
    }

    /// Record a finished page: the position and counts so far.
    pub async fn advance_rule_batch(
        &self,
        id: &str,
        after_id: &str,
        counts: BatchCounts,
    ) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE rule_batches SET after_id = $1, processed = $2, matched = $3, changed = $4, failed = $5, heartbeat_at = $6 WHERE id = $7",
            )
            .bind(after_id)
            .bind(counts.processed)
            .bind(counts.matched)
            .bind(counts.changed)
            .bind(counts.failed)
            .bind(crate::now())
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Close a batch run as `done` or `failed`.
    pub async fn finish_rule_batch(
        &self,
        id: &str,
        status: &str,
        counts: BatchCounts,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE rule_batches SET status = $1, processed = $2, matched = $3, changed = $4, failed = $5, heartbeat_at = $6, finished_at = $6 WHERE id = $7",
            )
            .bind(status)
            .bind(counts.processed)
            .bind(counts.matched)
            .bind(counts.changed)
            .bind(counts.failed)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The batch runs of `rule`, newest first.
    pub async fn rule_batches(&self, app: &str, rule: &str) -> Result<Vec<RuleBatch>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rule_batches WHERE app_id = $1 AND rule = $2 ORDER BY started_at DESC LIMIT 50"
        );
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, RuleBatch>(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .bind(rule)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Live records of `entity` after `after` in id order, at most `limit` (batch pages).
    pub async fn record_page(
        &self,
        app: &str,
        entity: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<crate::RecordRow>, StoreError> {
        let page = self
            .record_page_read(app, entity, after, limit, false)
            .await?;
        Ok(page.into_iter().map(|record| record.row).collect())
    }

    /// [`Store::record_page`] with each record's document as stored, where the read had it as text
    /// (SQLite's native read), **not parsed** (the record's `data` left empty): the caller parses
    /// it on its own threads, straight into the form it needs, and a write-back writes that text to
    /// history as it is instead of serializing the parsed values again.
    pub async fn record_page_as_read(
        &self,
        app: &str,
        entity: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<PagedRecord>, StoreError> {
        self.record_page_read(app, entity, after, limit, true).await
    }

    async fn record_page_read(
        &self,
        app: &str,
        entity: &str,
        after: Option<&str>,
        limit: i64,
        as_text: bool,
    ) -> Result<Vec<PagedRecord>, StoreError> {
        let sql = "SELECT r.id, r.app_id, r.entity, r.version, r.data, r.created_at, r.created_by, \
                   r.updated_at, r.updated_by, r.deleted_at FROM records r WHERE r.app_id = $1 \
                   AND r.entity = $2 AND r.deleted_at IS NULL AND r.id > $3 ORDER BY r.id LIMIT $4";
        if let crate::connect::Pools::Sqlite {
            native: Some(native),
            ..
        } = &self.pools
        {
            // A page of thousands of documents (nightly write-backs read every customer): read and
            // decoded on a blocking thread through a native connection (see `native_read`), not
            // row by row through sqlx's connection thread.
            let native = native.clone();
            let (app, entity) = (app.to_owned(), entity.to_owned());
            let after = after.unwrap_or("").to_owned();
            let read = tokio::task::spawn_blocking(move || {
                native
                    .with(|connection| {
                        let mut statement = connection.prepare_cached(sql)?;
                        let rows = statement.query_map(
                            rusqlite::named_params! {"$1": app, "$2": entity, "$3": after, "$4": limit},
                            crate::native_read::NativeRecord::from_row,
                        )?;
                        rows.collect::<Result<Vec<_>, _>>()
                    })
                    .map(|rows| {
                        rows.into_iter()
                            .map(|record| {
                                Ok(if as_text {
                                    let (row, document) = record.into_unparsed_row()?;
                                    PagedRecord {
                                        row,
                                        document: Some(document),
                                    }
                                } else {
                                    PagedRecord {
                                        row: record.into_row()?,
                                        document: None,
                                    }
                                })
                            })
                            .collect::<Result<Vec<_>, StoreError>>()
                    })
            })
            .await;
            match read {
                Ok(Ok(rows)) => return rows,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "native page read failed; reading through sqlx");
                }
                Err(error) => {
                    tracing::debug!(%error, "native page read stopped; reading through sqlx");
                }
            }
        }
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, crate::RecordRow>(sql)
                .bind(app)
                .bind(entity)
                .bind(after.unwrap_or(""))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|row| PagedRecord {
                row,
                document: None,
            })
            .collect())
    }

    /// Those of `ids` that are live records of `entity`, in id order (a batch run's page when a
    /// pre-filter chose the records to read).
    pub async fn records_by_ids(
        &self,
        app: &str,
        entity: &str,
        ids: &[String],
    ) -> Result<Vec<crate::RecordRow>, StoreError> {
        let list = serde_json::Value::from(ids.to_vec());
        let columns = "r.id, r.app_id, r.entity, r.version, r.data, r.created_at, r.created_by, \
                       r.updated_at, r.updated_by, r.deleted_at";
        let rows = match &self.pools {
            crate::connect::Pools::Sqlite { read, .. } => {
                let sql = format!(
                    "SELECT {columns} FROM records r WHERE r.app_id = $1 AND r.entity = $2 \
                     AND r.deleted_at IS NULL AND r.id IN (SELECT value FROM json_each($3)) ORDER BY r.id"
                );
                sqlx::query_as::<_, crate::RecordRow>(sqlx::AssertSqlSafe(sql))
                    .bind(app)
                    .bind(entity)
                    .bind(list.to_string())
                    .fetch_all(read)
                    .await?
            }
            crate::connect::Pools::Postgres(pool) => {
                let sql = format!(
                    "SELECT {columns} FROM records r WHERE r.app_id = $1 AND r.entity = $2 \
                     AND r.deleted_at IS NULL AND r.id IN (SELECT jsonb_array_elements_text($3)) ORDER BY r.id"
                );
                sqlx::query_as::<_, crate::RecordRow>(sqlx::AssertSqlSafe(sql))
                    .bind(app)
                    .bind(entity)
                    .bind(sqlx::types::Json(list))
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows)
    }
}
