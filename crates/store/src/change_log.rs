//! The append-only change log: one global sequence over every change, read by triggers and caches.
//!
//! On PostgreSQL, identity values are handed out at insert time but become visible at commit time, so a
//! reader could see sequence 11 before 10 commits and skip 10 for ever. Appends therefore take a
//! transaction-scoped advisory lock, which makes commit order equal sequence order. SQLite has one writer,
//! so it needs nothing.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// Advisory lock key that serializes change-log appends on PostgreSQL.
pub(crate) const CHANGE_LOG_LOCK: i64 = 0x7472_656c_6c69; // "trelli"

/// A change about to be appended.
#[derive(Debug, Clone)]
pub struct NewChange {
    pub app_id: Option<String>,
    /// What kind of thing changed: `app`, `user`, or later `record:<entity>`.
    pub subject: String,
    pub subject_id: String,
    /// `create`, `update`, `delete`, `restore`, `publish`, …
    pub operation: String,
    pub actor: Option<String>,
    pub payload: serde_json::Value,
}

/// A change as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ChangeEntry {
    pub seq: i64,
    pub app_id: Option<String>,
    pub subject: String,
    pub subject_id: String,
    pub operation: String,
    pub actor: Option<String>,
    pub at: DateTime<Utc>,
    pub payload: String,
}

/// Append `$change` inside the open transaction `$tx`.
macro_rules! append_change {
    ($store:expr, $tx:expr, $change:expr) => {{
        let change: &$crate::NewChange = $change;
        if $store.backend() == $crate::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind($crate::change_log::CHANGE_LOG_LOCK)
                .execute(&mut *$tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO change_log (app_id, subject, subject_id, operation, actor, at, payload) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&change.app_id)
        .bind(&change.subject)
        .bind(&change.subject_id)
        .bind(&change.operation)
        .bind(&change.actor)
        .bind(crate::now())
        .bind(change.payload.to_string())
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use append_change;

impl Store {
    /// Append one change in its own transaction.
    pub async fn append_change(&self, change: &NewChange) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            append_change!(self, tx, change);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Changes with a sequence number greater than `after`, oldest first, at most `limit`.
    pub async fn changes_since(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChangeEntry>, StoreError> {
        let sql = "SELECT seq, app_id, subject, subject_id, operation, actor, at, payload \
                   FROM change_log WHERE seq > $1 ORDER BY seq LIMIT $2";
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, ChangeEntry>(sql)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }
}
