//! Tasks and approvals (inboxes, completion, escalation, reassignment) and flow timers (due scans,
//! claims that let one of several servers fire a timer, cancellation).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{TaskRow, TimerRow};
use crate::{Store, StoreError};

/// In the open transaction `$tx`: tell the task's new assignee (an in-app notification, and `$mail`,
/// an outbox `(kind, payload)`, queued when given).
macro_rules! notify_new_assignee {
    ($tx:expr, $task:expr, $user:expr, $message:expr, $mail:expr, $now:expr) => {{
        sqlx::query("INSERT INTO notifications (id, app_id, user_id, record_id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(uuid::Uuid::now_v7().to_string()).bind(&$task.app_id).bind($user).bind(&$task.record_id)
            .bind($message.to_string()).bind($now)
            .execute(&mut *$tx).await?;
        if let Some((kind, payload)) = $mail {
            sqlx::query("INSERT INTO outbox (app_id, kind, payload, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)")
                .bind(&$task.app_id).bind(kind).bind(payload.to_string()).bind($now)
                .execute(&mut *$tx).await?;
        }
    }};
}

impl Store {
    /// Tasks of an app, optionally of one assignee and status, oldest due first.
    pub async fn list_tasks(
        &self,
        app: &str,
        assignee: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<TaskRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TaskRow>(
                "SELECT * FROM tasks WHERE app_id = $1 AND ($2 IS NULL OR assignee = $2) AND ($3 IS NULL OR status = $3) \
                 ORDER BY due_at IS NULL, due_at, created_at LIMIT 1000",
            )
            .bind(app)
            .bind(assignee)
            .bind(status)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    pub async fn get_task(&self, id: &str) -> Result<Option<TaskRow>, StoreError> {
        let row = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TaskRow>("SELECT * FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row)
    }

    /// Tasks of a record and flow in a state (e.g. the votes of an approval).
    pub async fn tasks_of(
        &self,
        record_id: &str,
        flow: &str,
        state: &str,
    ) -> Result<Vec<TaskRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TaskRow>("SELECT * FROM tasks WHERE record_id = $1 AND flow = $2 AND state = $3 AND status <> 'cancelled' ORDER BY created_at")
                .bind(record_id)
                .bind(flow)
                .bind(state)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// The open tasks of a record (any flow, or none), oldest first.
    pub async fn open_tasks_of_record(
        &self,
        app: &str,
        record_id: &str,
    ) -> Result<Vec<TaskRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TaskRow>("SELECT * FROM tasks WHERE app_id = $1 AND record_id = $2 AND status = 'open' ORDER BY created_at")
                .bind(app)
                .bind(record_id)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Complete a task without a transition (e.g. one vote of several); false when it was not open.
    pub async fn complete_task(
        &self,
        id: &str,
        outcome: &str,
        by: &str,
    ) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query("UPDATE tasks SET status = 'done', outcome = $1, completed_at = $2, completed_by = $3 WHERE id = $4 AND status = 'open'")
                .bind(outcome)
                .bind(crate::now())
                .bind(by)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// Open tasks past their due time that have an escalation and were not escalated yet.
    pub async fn overdue_tasks(&self, now: DateTime<Utc>) -> Result<Vec<TaskRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TaskRow>(
                "SELECT * FROM tasks WHERE status = 'open' AND due_at IS NOT NULL AND due_at <= $1 AND escalate_to IS NOT NULL AND escalated_at IS NULL LIMIT 500",
            )
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Hand an overdue task to `assignee` (once), notifying them (and queueing `mail`, an outbox
    /// `(kind, payload)`, when given).
    pub async fn escalate_task(
        &self,
        task: &TaskRow,
        assignee: &str,
        message: &Value,
        mail: Option<&(String, Value)>,
    ) -> Result<bool, StoreError> {
        let now = crate::now();
        let done = crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE tasks SET assignee = $1, escalated_at = $2 WHERE id = $3 AND status = 'open' AND escalated_at IS NULL")
                .bind(assignee)
                .bind(now)
                .bind(&task.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done > 0 {
                notify_new_assignee!(tx, task, assignee, message, mail, now);
            }
            tx.commit().await?;
            done
        });
        Ok(done > 0)
    }

    /// Give an open task from `from` to `to` (with a notification, and `mail` queued when given); false
    /// when it moved meanwhile.
    pub async fn reassign_task(
        &self,
        task: &TaskRow,
        from: &str,
        to: &str,
        message: &Value,
        mail: Option<&(String, Value)>,
    ) -> Result<bool, StoreError> {
        let now = crate::now();
        let done = crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE tasks SET assignee = $1 WHERE id = $2 AND assignee = $3 AND status = 'open'")
                .bind(to)
                .bind(&task.id)
                .bind(from)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done > 0 {
                notify_new_assignee!(tx, task, to, message, mail, now);
            }
            tx.commit().await?;
            done
        });
        Ok(done > 0)
    }

    /// Pending timers due at `now`, oldest first.
    pub async fn due_timers(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TimerRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TimerRow>(
                "SELECT id, app_id, flow, entity, record_id, state, event, due_at FROM flow_timers \
                 WHERE status = 'pending' AND due_at <= $1 ORDER BY due_at LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Claim up to `limit` timers due at `now` until `now + lease`, oldest first: other servers skip a
    /// claimed timer until its lease ends (a server that dies mid-way only delays its timers). On
    /// PostgreSQL concurrent claims take disjoint timers (`FOR UPDATE SKIP LOCKED`) instead of
    /// queueing behind each other; SQLite has one writer. A claim is not the firing: the transition
    /// consumes the timer in its own transaction, so it fires once even if a lease runs out.
    pub async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: i64,
        lease: chrono::Duration,
    ) -> Result<Vec<TimerRow>, StoreError> {
        let mut rows: Vec<TimerRow> = match &self.pools {
            crate::connect::Pools::Sqlite { write, .. } => {
                sqlx::query_as(
                    "UPDATE flow_timers SET claimed_until = $2 WHERE id IN (SELECT id FROM flow_timers \
                     WHERE status = 'pending' AND due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
                     ORDER BY due_at LIMIT $3) \
                     RETURNING id, app_id, flow, entity, record_id, state, event, due_at",
                )
                .bind(now)
                .bind(now + lease)
                .bind(limit)
                .fetch_all(write)
                .await?
            }
            crate::connect::Pools::Postgres(pool) => {
                sqlx::query_as(
                    "UPDATE flow_timers SET claimed_until = $2 WHERE id IN (SELECT id FROM flow_timers \
                     WHERE status = 'pending' AND due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
                     ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, app_id, flow, entity, record_id, state, event, due_at",
                )
                .bind(now)
                .bind(now + lease)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
        };
        rows.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
        Ok(rows)
    }

    /// Whether the timer is still pending (not fired, not cancelled).
    pub async fn timer_pending(&self, id: &str) -> Result<bool, StoreError> {
        let status: Option<String> = crate::with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT status FROM flow_timers WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(status.as_deref() == Some("pending"))
    }

    /// Give a claimed timer back (its firing failed for a passing reason): due again at once.
    pub async fn release_timer(&self, id: &str) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE flow_timers SET claimed_until = NULL WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Mark a timer that can no longer fire (its record moved on or is gone).
    pub async fn cancel_timer(&self, id: &str) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE flow_timers SET status = 'cancelled' WHERE id = $1 AND status = 'pending'",
            )
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Pending timers of a record (for the API and tests).
    pub async fn timers_of(&self, record_id: &str) -> Result<Vec<TimerRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TimerRow>(
                "SELECT id, app_id, flow, entity, record_id, state, event, due_at FROM flow_timers WHERE record_id = $1 AND status = 'pending' ORDER BY due_at",
            )
            .bind(record_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}
