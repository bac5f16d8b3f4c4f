//! Bulk inserts that span many statements in one transaction (imports): chunks go in one by one, and a
//! chunk that hits a unique value already used changes nothing, so the caller can drop the offending
//! row and retry without aborting the transaction. On SQLite the chunk's unique values are checked
//! before it is written (the bulk insert holds the only write connection); on PostgreSQL, which aborts
//! a transaction on any failed statement, each chunk runs under a savepoint. Any other failure leaves
//! the bulk insert unusable: it can only be rolled back. Memory stays bounded by the chunk, not the file.

use sqlx::{Postgres, Sqlite, Transaction};

use super::{InsertGroup, NewRecord, record_change};
use crate::change_log::append_change;
use crate::{Store, StoreError};

enum BulkTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// An open bulk insert into one entity. Nothing is visible to others until [`BulkInsert::commit`].
pub struct BulkInsert {
    tx: BulkTx,
    store: Store,
    group: InsertGroup,
    ids: Vec<String>,
    /// A chunk failed part-way (not a unique value): only a rollback is left.
    broken: bool,
}

impl std::fmt::Debug for BulkInsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkInsert")
            .field("app", &self.group.app)
            .field("entity", &self.group.entity)
            .field("inserted", &self.ids.len())
            .finish()
    }
}

impl Store {
    /// Open a bulk insert. On SQLite it holds the single write connection until committed or dropped.
    pub async fn begin_bulk_insert(
        &self,
        app: &str,
        entity: &str,
        actor: Option<&str>,
    ) -> Result<BulkInsert, StoreError> {
        self.begin_bulk(app, entity, actor, true).await
    }

    /// [`Store::begin_bulk_insert`] whose commit does not wait for the disk on SQLite
    /// (`synchronous=NORMAL` for this transaction): its records are visible at once and survive a
    /// crash of the process, and [`Store::sync_log`] (or any later ordinary commit) makes them
    /// durable against a power cut. For imports, whose chunks each commit while only the whole
    /// import is reported as done: one sync at the end instead of one per chunk (12–15 ms of each
    /// chunk's ~100 ms here). On PostgreSQL the same as `begin_bulk_insert`.
    pub async fn begin_unsynced_bulk_insert(
        &self,
        app: &str,
        entity: &str,
        actor: Option<&str>,
    ) -> Result<BulkInsert, StoreError> {
        self.begin_bulk(app, entity, actor, false).await
    }

    /// After a bulk import of `inserted` records has committed: on PostgreSQL, merge what the
    /// import left in the search index's pending list and, when the import is large for the table,
    /// refresh the planner's statistics of the records. Until then a search reads the whole
    /// pending list (up to the 64 MB a bulk transaction allows: ~15 ms a query after 200,000 rows,
    /// against ~0.3 ms merged), and the statistics of a table that was empty steer searches away
    /// from the index altogether. "Large" is autovacuum's own analyze threshold (50 rows + 10 % of
    /// the table), so a small import pays no `ANALYZE`. SQLite: nothing to do (FTS5 merges its
    /// segments as it goes; its planner needs no statistics for these queries).
    pub async fn settle_after_bulk_insert(&self, inserted: usize) -> Result<(), StoreError> {
        if let crate::connect::Pools::Postgres(pool) = &self.pools {
            sqlx::query("SELECT gin_clean_pending_list('records_search'::regclass)")
                .execute(pool)
                .await?;
            // -1 (never analyzed) counts as empty.
            let known_rows: f32 = sqlx::query_scalar(
                "SELECT reltuples FROM pg_class WHERE oid = 'records'::regclass",
            )
            .fetch_one(pool)
            .await?;
            if inserted as f64 > 50.0 + 0.1 * f64::from(known_rows.max(0.0)) {
                // The columns a list or search plans by (the table's size comes with any of
                // them); all columns, the documents too, take ~2.5 times as long, and
                // autovacuum gets to them later anyway.
                sqlx::query("ANALYZE records (id, app_id, entity, deleted_at, search_vector)")
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn begin_bulk(
        &self,
        app: &str,
        entity: &str,
        actor: Option<&str>,
        durable: bool,
    ) -> Result<BulkInsert, StoreError> {
        let tx = match &self.pools {
            crate::connect::Pools::Sqlite {
                write,
                relaxed_sync,
                ..
            } => {
                let mut tx = write.begin().await?;
                if !durable {
                    // SQLite changes the setting only outside a transaction: end the (empty) one
                    // just begun, relax, and begin again; sqlx's commit or rollback ends that one.
                    // Marked first, so the pool restores the setting on release whatever happens.
                    relaxed_sync.store(true, std::sync::atomic::Ordering::SeqCst);
                    super::sqlite_fast::with_rusqlite(&mut tx, |connection| {
                        connection
                            .execute_batch("COMMIT; PRAGMA synchronous = NORMAL; BEGIN")
                            .map_err(|error| {
                                StoreError::Corrupt(format!("sqlite bulk insert: {error}"))
                            })
                    })
                    .await?;
                }
                BulkTx::Sqlite(tx)
            }
            crate::connect::Pools::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // The search vectors' GIN index takes new entries into its pending list and merges
                // them in bulk; a larger list for this transaction saved ~6 µs per imported row.
                sqlx::query("SET LOCAL gin_pending_list_limit = 65536")
                    .execute(&mut *tx)
                    .await?;
                BulkTx::Postgres(tx)
            }
        };
        let group = InsertGroup {
            app: app.to_owned(),
            entity: entity.to_owned(),
            actor: actor.map(str::to_owned),
            records: Vec::new(),
        };
        Ok(BulkInsert {
            tx,
            store: self.clone(),
            group,
            ids: Vec::new(),
            broken: false,
        })
    }
}

impl BulkInsert {
    /// Insert `records` (all or none of them). A unique value already used (or repeated in `records`)
    /// returns [`StoreError::UniqueViolation`] with nothing of this chunk written and the bulk insert
    /// still usable; any other error leaves it fit only for [`BulkInsert::rollback`].
    pub async fn insert(&mut self, records: &[NewRecord]) -> Result<usize, StoreError> {
        if self.broken {
            return Err(broken());
        }
        let now = crate::now();
        let ids: Vec<String> = records
            .iter()
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        match &mut self.tx {
            BulkTx::Sqlite(tx) => {
                let (group, ids, broken) = (&self.group, &ids, &mut self.broken);
                super::sqlite_fast::with_rusqlite(&mut *tx, |connection| {
                    super::sqlite_fast::check_uniques(connection, group, records)?;
                    let written = super::sqlite_fast::insert_rows(
                        connection,
                        group,
                        records,
                        ids,
                        now,
                        super::sqlite_fast::SearchIndexing::Deferred,
                    );
                    *broken = written.is_err();
                    written
                })
                .await?;
            }
            BulkTx::Postgres(tx) => {
                sqlx::query("SAVEPOINT trellis_bulk_chunk")
                    .execute(&mut **tx)
                    .await?;
                let outcome =
                    super::postgres_copy::insert_rows(tx, &self.group, records, &ids, now).await;
                if let Err(error) = outcome {
                    sqlx::query("ROLLBACK TO SAVEPOINT trellis_bulk_chunk")
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT trellis_bulk_chunk")
                        .execute(&mut **tx)
                        .await?;
                    return Err(error);
                }
                sqlx::query("RELEASE SAVEPOINT trellis_bulk_chunk")
                    .execute(&mut **tx)
                    .await?;
            }
        }
        self.ids.extend(ids);
        Ok(records.len())
    }

    /// Reserve `count` auto-number values inside this transaction; returns the first.
    pub async fn reserve_counter(
        &mut self,
        field: &str,
        period: &str,
        count: i64,
    ) -> Result<i64, StoreError> {
        let sql = "INSERT INTO record_counters (app_id, entity, field, period, value) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (app_id, entity, field, period) DO UPDATE SET value = record_counters.value + $5 \
                   RETURNING value";
        let (app, entity) = (&self.group.app, &self.group.entity);
        let last: i64 = match &mut self.tx {
            BulkTx::Sqlite(tx) => {
                sqlx::query_scalar(sql)
                    .bind(app)
                    .bind(entity)
                    .bind(field)
                    .bind(period)
                    .bind(count)
                    .fetch_one(&mut **tx)
                    .await?
            }
            BulkTx::Postgres(tx) => {
                sqlx::query_scalar(sql)
                    .bind(app)
                    .bind(entity)
                    .bind(field)
                    .bind(period)
                    .bind(count)
                    .fetch_one(&mut **tx)
                    .await?
            }
        };
        Ok(last - count + 1)
    }

    /// Ids of the records inserted so far.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Records inserted so far.
    pub fn inserted(&self) -> usize {
        self.ids.len()
    }

    /// Make every inserted record visible (with one change-log entry).
    pub async fn commit(self) -> Result<usize, StoreError> {
        if self.broken {
            self.rollback().await?;
            return Err(broken());
        }
        let count = self.ids.len();
        let store = self.store;
        let mut change = record_change(
            &self.group.app,
            &self.group.entity,
            self.ids.first().map_or("", String::as_str),
            "create",
            self.group.actor.as_deref(),
            1,
        );
        change.payload = serde_json::json!({"ids": self.ids, "bulk": true});
        let started = std::time::Instant::now();
        match self.tx {
            BulkTx::Sqlite(mut tx) => {
                if count > 0 {
                    append_change!(store, tx, &change);
                }
                tx.commit().await?;
            }
            BulkTx::Postgres(mut tx) => {
                if count > 0 {
                    append_change!(store, tx, &change);
                }
                tx.commit().await?;
            }
        }
        tracing::debug!(
            rows = count,
            commit_us = started.elapsed().as_micros() as u64,
            "bulk insert committed"
        );
        Ok(count)
    }

    /// Discard everything inserted.
    pub async fn rollback(self) -> Result<(), StoreError> {
        match self.tx {
            BulkTx::Sqlite(tx) => tx.rollback().await?,
            BulkTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

fn broken() -> StoreError {
    StoreError::Corrupt(
        "a bulk insert chunk failed part-way; the bulk insert was rolled back".into(),
    )
}
