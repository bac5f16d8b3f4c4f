//! In-app notifications and the outbox of actions run after commit (webhooks, e-mail, events on
//! related records): listing, claiming due entries and recording their outcome.

use chrono::{DateTime, Utc};

use super::{NotificationRow, OutboxRow};
use crate::{Store, StoreError};

impl Store {
    pub async fn notifications_for(
        &self,
        user_id: &str,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, NotificationRow>(
                "SELECT id, app_id, record_id, message, created_at FROM notifications WHERE user_id = $1 ORDER BY created_at DESC LIMIT 200",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    pub async fn outbox_of(&self, app: &str) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, OutboxRow>("SELECT seq, app_id, kind, payload, status, attempts, last_error FROM outbox WHERE app_id = $1 ORDER BY seq")
                .bind(app)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Pending outbox entries due at `now`, oldest first.
    pub async fn due_outbox(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, OutboxRow>(
                "SELECT seq, app_id, kind, payload, status, attempts, last_error FROM outbox \
                 WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY seq LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Record attempts, in one transaction: each `done`, `failed` for good, or `pending` again at
    /// its `retry_at`. Only an attempt that still sees its entry at its `attempts` counts (two servers
    /// never both record one); returns which counted.
    pub async fn finish_outbox(&self, attempts: &[OutboxAttempt]) -> Result<Vec<bool>, StoreError> {
        if let crate::connect::Pools::Sqlite { write, .. } = &self.pools {
            // A statement per entry of every pass: through rusqlite on the writer.
            return crate::records::on_writer(write, |connection| {
                let mut finish = connection
                    .prepare_cached(
                        "UPDATE outbox SET status = ?1, attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 \
                         WHERE seq = ?4 AND attempts = ?5 AND status = 'pending'",
                    )
                    .map_err(to_store)?;
                attempts
                    .iter()
                    .map(|attempt| {
                        let done = finish
                            .execute(rusqlite::params![
                                attempt.status,
                                crate::records::sqlite_time(attempt.retry_at),
                                attempt.error,
                                attempt.seq,
                                attempt.attempts
                            ])
                            .map_err(to_store)?;
                        Ok(done > 0)
                    })
                    .collect()
            })
            .await;
        }
        let counted = crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut counted = Vec::with_capacity(attempts.len());
            for attempt in attempts {
                let done = sqlx::query(
                    "UPDATE outbox SET status = $1, attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
                     WHERE seq = $4 AND attempts = $5 AND status = 'pending'",
                )
                .bind(attempt.status)
                .bind(attempt.retry_at)
                .bind(attempt.error.as_deref())
                .bind(attempt.seq)
                .bind(attempt.attempts)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                counted.push(done > 0);
            }
            tx.commit().await?;
            counted
        });
        Ok(counted)
    }

    /// Claim outbox entries, each `(seq, attempts)` as read, for one attempt, in one transaction:
    /// pushes their next attempt out to `lease_until` so others skip them. Returns which were claimed
    /// (another server may have claimed or finished one meanwhile).
    pub async fn claim_outbox(
        &self,
        entries: &[(i64, i64)],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        if let crate::connect::Pools::Sqlite { write, .. } = &self.pools {
            let (now, lease_until) = (
                crate::records::sqlite_time(now),
                crate::records::sqlite_time(lease_until),
            );
            return crate::records::on_writer(write, |connection| {
                let mut claim = connection
                    .prepare_cached(
                        "UPDATE outbox SET next_attempt_at = ?1 WHERE seq = ?2 AND attempts = ?3 \
                         AND status = 'pending' AND next_attempt_at <= ?4",
                    )
                    .map_err(to_store)?;
                entries
                    .iter()
                    .map(|(seq, attempts)| {
                        let done = claim
                            .execute(rusqlite::params![lease_until, seq, attempts, now])
                            .map_err(to_store)?;
                        Ok(done > 0)
                    })
                    .collect()
            })
            .await;
        }
        let claimed = crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let mut claimed = Vec::with_capacity(entries.len());
            for (seq, attempts) in entries {
                let done = sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE seq = $2 AND attempts = $3 AND status = 'pending' AND next_attempt_at <= $4")
                    .bind(lease_until)
                    .bind(seq)
                    .bind(attempts)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                claimed.push(done > 0);
            }
            tx.commit().await?;
            claimed
        });
        Ok(claimed)
    }
}

fn to_store(error: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(format!("outbox: {error}"))
}

/// The outcome of one attempt at an outbox entry ([`Store::finish_outbox`]).
#[derive(Debug, Clone)]
pub struct OutboxAttempt {
    pub seq: i64,
    /// The entry's attempts before this one (as claimed).
    pub attempts: i64,
    /// `done`, `failed` or `pending`.
    pub status: &'static str,
    pub retry_at: DateTime<Utc>,
    pub error: Option<String>,
}
