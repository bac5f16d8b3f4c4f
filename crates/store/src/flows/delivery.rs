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

    /// Record an attempt: `done`, `failed` for good, or `pending` again at `retry_at`. Only the
    /// attempt that still sees the entry at `attempts` counts (two servers never both record one).
    pub async fn finish_outbox(
        &self,
        seq: i64,
        attempts: i64,
        status: &str,
        retry_at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE outbox SET status = $1, attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
                 WHERE seq = $4 AND attempts = $5 AND status = 'pending'",
            )
            .bind(status)
            .bind(retry_at)
            .bind(error)
            .bind(seq)
            .bind(attempts)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Claim an outbox entry for one attempt (pushes its next attempt out so others skip it).
    pub async fn claim_outbox(
        &self,
        seq: i64,
        attempts: i64,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE seq = $2 AND attempts = $3 AND status = 'pending' AND next_attempt_at <= $4")
                .bind(lease_until)
                .bind(seq)
                .bind(attempts)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }
}
