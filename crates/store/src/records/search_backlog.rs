//! The search backlog (SQLite): rows that bulk imports inserted without indexing them for full-text
//! search, as ranges of consecutive rowids per app entity (migration 0026). Indexing a 5,000-row
//! chunk in the import's own transaction cost about a fifth of its time on the write connection
//! (BENCHMARKS.md), so the chunk records its range instead and the rows are indexed later, one
//! `INSERT … SELECT` per range: by the scheduler in the background, and by any search of an entity
//! that still has a backlog before it runs — so a search never misses a record, however recent.
//! PostgreSQL computes its search vectors as it inserts and keeps no backlog.

use super::sqlite_fast::{in_transaction, to_store, with_rusqlite};
use crate::{Store, StoreError};

/// FTS5's `automerge` while a backlog range is indexed: a level of the index is merged once it
/// holds 16 segments instead of FTS5's usual 4, so the rows of an import are rewritten fewer times
/// as their segments grow (indexing 5,000 rows 23–27 → 16 ms here; BENCHMARKS.md). Set back to
/// [`USUAL_AUTOMERGE`] before the indexing transaction ends, so only these writes merge late; the
/// segments they leave are merged bit by bit by later writes.
const BULK_AUTOMERGE: &str = "INSERT INTO records_fts(records_fts, rank) VALUES ('automerge', 16)";
/// FTS5's default `automerge`, for every other write.
const USUAL_AUTOMERGE: &str = "INSERT INTO records_fts(records_fts, rank) VALUES ('automerge', 4)";

/// Rows indexed per transaction of the indexer: other writers get the write connection between
/// steps (a step takes ~25–30 ms here).
const SEARCH_INDEX_STEP: i64 = 5_000;

/// Leave the rowids `first..=last` (a bulk chunk's rows of `app`'s `entity`, just inserted inside
/// the caller's transaction) to the search indexer.
pub(super) fn defer(
    connection: &rusqlite::Connection,
    app: &str,
    entity: &str,
    first: i64,
    last: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO records_search_backlog (first_rowid, last_rowid, app_id, entity) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut insert| insert.execute(rusqlite::params![first, last, app, entity]))
        .map_err(to_store)?;
    Ok(())
}

/// Which rows of a range [`index_rows`] indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeRows {
    /// All of them: a backlog range.
    All,
    /// Those outside the backlog: rows a writer just inserted. One can fall inside a backlog range
    /// when it took the rowid of the range's last row, deleted outright; the indexer indexes it
    /// with its range (indexing it twice would corrupt the index).
    OutsideBacklog,
}

/// Index the rows `first..=last` for search with one statement (they must not be in the index yet:
/// rows the insert trigger skipped), merging FTS5's segments late meanwhile; the rows indexed.
pub(super) fn index_rows(
    connection: &rusqlite::Connection,
    first: i64,
    last: i64,
    rows: RangeRows,
) -> Result<usize, StoreError> {
    connection.execute_batch(BULK_AUTOMERGE).map_err(to_store)?;
    let sql = match rows {
        RangeRows::All => {
            "INSERT INTO records_fts(rowid, search_text) SELECT rowid, search_text FROM records \
             WHERE rowid BETWEEN ?1 AND ?2"
        }
        RangeRows::OutsideBacklog => {
            "INSERT INTO records_fts(rowid, search_text) SELECT r.rowid, r.search_text FROM records r \
             WHERE r.rowid BETWEEN ?1 AND ?2 AND NOT EXISTS (SELECT 1 FROM records_search_backlog b \
             WHERE b.first_rowid <= r.rowid AND b.last_rowid >= r.rowid)"
        }
    };
    let indexed = connection
        .execute(sql, rusqlite::params![first, last])
        .map_err(to_store)?;
    connection
        .execute_batch(USUAL_AUTOMERGE)
        .map_err(to_store)?;
    Ok(indexed)
}

/// Index up to `step` rows of the oldest backlog range (of `app`'s `entity` when given, else of any),
/// in the caller's transaction; the rows indexed, or `None` when there was no range left.
fn index_step(
    connection: &rusqlite::Connection,
    only: Option<(&str, &str)>,
    step: i64,
) -> Result<Option<usize>, StoreError> {
    let oldest = match only {
        Some((app, entity)) => connection.query_row(
            "SELECT first_rowid, last_rowid FROM records_search_backlog WHERE app_id = ?1 AND entity = ?2 \
             ORDER BY first_rowid LIMIT 1",
            rusqlite::params![app, entity],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        ),
        None => connection.query_row(
            "SELECT first_rowid, last_rowid FROM records_search_backlog ORDER BY first_rowid LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
        ),
    };
    let (first, last) = match oldest {
        Ok(range) => range,
        Err(rusqlite::Error::QueryReturnedNoRows) => return Ok(None),
        Err(error) => return Err(to_store(error)),
    };
    let end = last.min(first + step.max(1) - 1);
    // Every row of the range as it is now: the triggers left its updates alone (and a row deleted
    // meanwhile is simply not there).
    let indexed = index_rows(connection, first, end, RangeRows::All)?;
    if end == last {
        connection
            .execute(
                "DELETE FROM records_search_backlog WHERE first_rowid = ?1",
                [first],
            )
            .map_err(to_store)?;
    } else {
        connection
            .execute(
                "UPDATE records_search_backlog SET first_rowid = ?2 WHERE first_rowid = ?1",
                rusqlite::params![first, end + 1],
            )
            .map_err(to_store)?;
    }
    Ok(Some(indexed))
}

impl Store {
    /// Run one indexing step on the write connection, committed without waiting for the disk
    /// (`synchronous=NORMAL`, put back when the pool takes the connection back): the index is
    /// derived from the records, and a step lost to a power cut is lost whole — its range is still
    /// in the backlog, its rows not in the index — so the next step simply does it again.
    async fn index_step_on_writer(
        &self,
        only: Option<(&str, &str)>,
    ) -> Result<Option<usize>, StoreError> {
        let crate::connect::Pools::Sqlite {
            write,
            relaxed_sync,
            ..
        } = &self.pools
        else {
            return Ok(None);
        };
        let mut connection = write.acquire().await?;
        // Marked first: the pool puts `synchronous=FULL` back on release, whatever happens.
        relaxed_sync.store(true, std::sync::atomic::Ordering::SeqCst);
        with_rusqlite(&mut connection, |connection| {
            connection
                .execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(to_store)?;
            in_transaction(connection, |connection| {
                index_step(connection, only, SEARCH_INDEX_STEP)
            })
        })
        .await
    }

    /// Index one step (up to [`SEARCH_INDEX_STEP`] rows) of the search backlog, oldest first, in a
    /// transaction of its own. Returns whether anything was left to do (`false`: the backlog is
    /// empty; always on PostgreSQL, which keeps none).
    pub async fn index_search_backlog_step(&self) -> Result<bool, StoreError> {
        Ok(self.index_step_on_writer(None).await?.is_some())
    }

    /// Rows of `app`'s `entity` waiting for the search indexer (SQLite; 0 on PostgreSQL).
    pub async fn search_backlog(&self, app: &str, entity: &str) -> Result<i64, StoreError> {
        let crate::connect::Pools::Sqlite { read, .. } = &self.pools else {
            return Ok(0);
        };
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(last_rowid - first_rowid + 1), 0) FROM records_search_backlog \
             WHERE app_id = $1 AND entity = $2",
        )
        .bind(app)
        .bind(entity)
        .fetch_one(read)
        .await?;
        Ok(waiting)
    }

    /// Before a search of `app`'s `entity`: index whatever of it is still in the backlog, a step
    /// per transaction, so the search sees every record (SQLite; nothing to do on PostgreSQL).
    pub(crate) async fn index_search_backlog_of(
        &self,
        app: &str,
        entity: &str,
    ) -> Result<(), StoreError> {
        if self.search_backlog(app, entity).await? == 0 {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let mut rows = 0;
        loop {
            let Some(indexed) = self.index_step_on_writer(Some((app, entity))).await? else {
                break;
            };
            rows += indexed;
        }
        tracing::debug!(
            app,
            entity,
            rows,
            ms = started.elapsed().as_millis() as u64,
            "search backlog indexed before a search"
        );
        Ok(())
    }
}
