//! Flow state that lives beside records: transition history, tasks and approvals, timers, in-app
//! notifications and the outbox. A transition's writes ([`TransitionWrites`]) commit in the same
//! transaction as the record's new state (`Store::update_record_with`), so a crash never leaves half a
//! transition; a timer is consumed in that transaction too, so it fires exactly once even when two
//! servers race for it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Store, StoreError};

/// One history entry of a flow.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct FlowHistoryRow {
    pub seq: i64,
    pub flow: String,
    pub event: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: Option<String>,
    pub at: DateTime<Utc>,
    pub inputs: String,
    /// The app version whose flow definition this run follows.
    pub app_version: Option<i64>,
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub kind: &'static str,
    pub title: Value,
    pub assignee: String,
    pub outcomes: Value,
    pub due_at: Option<DateTime<Utc>>,
    pub escalate_to: Option<Value>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub app_id: String,
    pub flow: String,
    pub entity: String,
    pub record_id: String,
    pub state: String,
    pub kind: String,
    pub title: String,
    pub assignee: String,
    pub status: String,
    pub outcome: Option<String>,
    pub outcomes: String,
    pub due_at: Option<DateTime<Utc>>,
    pub escalate_to: Option<String>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub completed_by: Option<String>,
}

/// A due timer.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TimerRow {
    pub id: String,
    pub app_id: String,
    pub flow: String,
    pub entity: String,
    pub record_id: String,
    pub state: String,
    pub event: String,
    pub due_at: DateTime<Utc>,
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: String,
    pub app_id: String,
    pub record_id: Option<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// An outbox entry as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct OutboxRow {
    pub seq: i64,
    pub app_id: String,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Everything a transition writes besides the record.
#[derive(Debug, Clone, Default)]
pub struct TransitionWrites {
    pub app: String,
    pub entity: String,
    pub flow: String,
    pub event: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub inputs: Value,
    /// The app version whose definition the run follows (pinned until the run ends).
    pub app_version: i64,
    /// Cancel the record's open tasks and pending timers of this flow (the state changed).
    pub leave_state: bool,
    pub tasks: Vec<NewTask>,
    /// (event, due) timers of the new state.
    pub timers: Vec<(String, DateTime<Utc>)>,
    /// (user, message) in-app notifications.
    pub notifications: Vec<(String, Value)>,
    /// (kind, payload) actions run after commit.
    pub outbox: Vec<(String, Value)>,
    /// The timer this transition consumes; the transition fails if it was consumed already.
    pub consume_timer: Option<String>,
    /// The task this transition completes (`outcome`, by whom); fails if it is no longer open.
    pub complete_task: Option<(String, String, String)>,
}

/// Write `$writes` for record `$record_id` in the open transaction `$tx`.
macro_rules! apply_transition_writes {
    ($tx:expr, $writes:expr, $record_id:expr, $actor:expr, $now:expr) => {{
        let w: &$crate::flows::TransitionWrites = $writes;
        if let Some(timer) = &w.consume_timer {
            let consumed = sqlx::query("UPDATE flow_timers SET status = 'fired', fired_at = $1 WHERE id = $2 AND status = 'pending'")
                .bind($now).bind(timer).execute(&mut *$tx).await?.rows_affected();
            if consumed == 0 {
                return Err(StoreError::Conflict(format!("timer '{timer}' has fired already")));
            }
        }
        if let Some((task, outcome, by)) = &w.complete_task {
            let done = sqlx::query("UPDATE tasks SET status = 'done', outcome = $1, completed_at = $2, completed_by = $3 WHERE id = $4 AND status = 'open'")
                .bind(outcome).bind($now).bind(by).bind(task).execute(&mut *$tx).await?.rows_affected();
            if done == 0 {
                return Err(StoreError::Conflict(format!("task '{task}' is no longer open")));
            }
        }
        $crate::flows::insert_flow_history!($tx, w, $record_id, $actor, $now);
        if w.leave_state {
            sqlx::query("UPDATE tasks SET status = 'cancelled', completed_at = $1 WHERE record_id = $2 AND flow = $3 AND status = 'open'")
                .bind($now).bind($record_id).bind(&w.flow).execute(&mut *$tx).await?;
            sqlx::query("UPDATE flow_timers SET status = 'cancelled' WHERE record_id = $1 AND flow = $2 AND status = 'pending'")
                .bind($record_id).bind(&w.flow).execute(&mut *$tx).await?;
        }
        $crate::flows::insert_state_work!($tx, w, $record_id, $now);
    }};
}
pub(crate) use apply_transition_writes;

/// Append the transition to the flow history.
macro_rules! insert_flow_history {
    ($tx:expr, $w:expr, $record_id:expr, $actor:expr, $now:expr) => {{
        let w: &$crate::flows::TransitionWrites = $w;
        // Rule side effects reuse these writes without a flow: no history entry then.
        if !w.flow.is_empty() {
        sqlx::query(concat!("INSERT INTO flow_history (app_id, flow, record_id, event, from_state, to_state, actor, at, inputs, app_version, history_seq) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ", $crate::history_chain::latest_history_seq!("$3"), ")"))
            .bind(&w.app).bind(&w.flow).bind($record_id).bind(&w.event).bind(&w.from_state).bind(&w.to_state)
            .bind($actor).bind($now).bind(w.inputs.to_string()).bind(w.app_version)
            .execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use insert_flow_history;

/// Insert the new state's tasks, timers, notifications and outbox entries.
macro_rules! insert_state_work {
    ($tx:expr, $w:expr, $record_id:expr, $now:expr) => {{
        let w: &$crate::flows::TransitionWrites = $w;
        for task in &w.tasks {
            sqlx::query("INSERT INTO tasks (id, app_id, flow, entity, record_id, state, kind, title, assignee, status, outcomes, due_at, escalate_to, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'open', $10, $11, $12, $13)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(&w.app).bind(&w.flow).bind(&w.entity).bind($record_id)
                .bind(&w.to_state).bind(task.kind).bind(task.title.to_string()).bind(&task.assignee)
                .bind(task.outcomes.to_string()).bind(task.due_at).bind(task.escalate_to.as_ref().map(|v| v.to_string())).bind($now)
                .execute(&mut *$tx).await?;
        }
        for (event, due) in &w.timers {
            sqlx::query("INSERT INTO flow_timers (id, app_id, flow, entity, record_id, state, event, due_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')")
                .bind(uuid::Uuid::now_v7().to_string()).bind(&w.app).bind(&w.flow).bind(&w.entity).bind($record_id)
                .bind(&w.to_state).bind(event).bind(*due)
                .execute(&mut *$tx).await?;
        }
        for (user, message) in &w.notifications {
            sqlx::query("INSERT INTO notifications (id, app_id, user_id, record_id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(uuid::Uuid::now_v7().to_string()).bind(&w.app).bind(user).bind($record_id).bind(message.to_string()).bind($now)
                .execute(&mut *$tx).await?;
        }
        for (kind, payload) in &w.outbox {
            sqlx::query("INSERT INTO outbox (app_id, kind, payload, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)")
                .bind(&w.app).bind(kind).bind(payload.to_string()).bind($now)
                .execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use insert_state_work;

impl Store {
    /// Start a record's flow run after its creation: the history entry of its initial state (pinning
    /// the app version) and that state's work (timers, approval tasks).
    pub async fn start_flow_state(
        &self,
        record_id: &str,
        actor: Option<&str>,
        writes: &TransitionWrites,
    ) -> Result<(), StoreError> {
        let now = crate::now();
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            insert_flow_history!(tx, writes, record_id, actor, now);
            insert_state_work!(tx, writes, record_id, now);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The app version recorded by the latest history entry of `flow` for a record (the version its
    /// run follows), if any: one indexed row, however long the history.
    pub async fn latest_flow_version(
        &self,
        record_id: &str,
        flow: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row: Option<(Option<i64>,)> = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(concat!(
                crate::history_chain::flow_run!("$1", "$2"),
                "SELECT f.app_version FROM run JOIN flow_history f ON f.seq = run.flow_seq LIMIT 1"
            ))
            .bind(record_id)
            .bind(flow)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(version,)| version))
    }

    /// [`Store::get_record`] and, in the same statement, the app version of the latest history entry
    /// of `flow` for it ([`Store::latest_flow_version`]): what firing an event reads, in one round
    /// trip.
    pub async fn get_record_with_flow_version(
        &self,
        app: &str,
        entity: &str,
        id: &str,
        flow: &str,
    ) -> Result<Option<(crate::RecordRow, Option<i64>)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct WithVersion {
            #[sqlx(flatten)]
            row: crate::RecordRow,
            flow_version: Option<i64>,
        }
        let sql = concat!(
            crate::history_chain::flow_run!("$1", "$4"),
            "SELECT r.id, r.app_id, r.entity, r.version, r.data, r.created_at, r.created_by, r.updated_at, \
             r.updated_by, r.deleted_at, (SELECT f.app_version FROM run JOIN flow_history f ON f.seq = run.flow_seq \
             LIMIT 1) AS flow_version FROM records r WHERE r.id = $1 AND r.app_id = $2 AND r.entity = $3"
        );
        if let Some(native) = self.native_reads() {
            // The hot read of every transition: on the calling thread (see `native_read`).
            match native.with(|connection| {
                use rusqlite::OptionalExtension;
                connection
                    .prepare_cached(sql)?
                    .query_row(
                        rusqlite::named_params! {"$1": id, "$2": app, "$3": entity, "$4": flow},
                        |row| {
                            Ok((
                                crate::native_read::NativeRecord::from_row(row)?,
                                row.get::<_, Option<i64>>(10)?,
                            ))
                        },
                    )
                    .optional()
            }) {
                Ok(found) => {
                    return found
                        .map(|(record, version)| Ok((record.into_row()?, version)))
                        .transpose();
                }
                Err(error) => {
                    tracing::debug!(%error, "native read failed; reading through sqlx");
                }
            }
        }
        let found = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, WithVersion>(sql)
                .bind(id)
                .bind(app)
                .bind(entity)
                .bind(flow)
                .fetch_optional(pool)
                .await?
        });
        Ok(found.map(|f| (f.row, f.flow_version)))
    }

    pub async fn flow_history(&self, record_id: &str) -> Result<Vec<FlowHistoryRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, FlowHistoryRow>(
                concat!(
                    crate::history_chain::history_chain!("$1"),
                    "SELECT seq, flow, event, from_state, to_state, actor, at, inputs, app_version FROM flow_history \
                     WHERE history_seq IN (SELECT seq FROM chain) AND record_id = $1 ORDER BY seq"
                ),
            )
            .bind(record_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

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
                sqlx::query("INSERT INTO notifications (id, app_id, user_id, record_id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(uuid::Uuid::now_v7().to_string()).bind(&task.app_id).bind(assignee).bind(&task.record_id)
                    .bind(message.to_string()).bind(now)
                    .execute(&mut *tx).await?;
                if let Some((kind, payload)) = mail {
                    sqlx::query("INSERT INTO outbox (app_id, kind, payload, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)")
                        .bind(&task.app_id).bind(kind).bind(payload.to_string()).bind(now)
                        .execute(&mut *tx).await?;
                }
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
                sqlx::query("INSERT INTO notifications (id, app_id, user_id, record_id, message, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(uuid::Uuid::now_v7().to_string()).bind(&task.app_id).bind(to).bind(&task.record_id)
                    .bind(message.to_string()).bind(now)
                    .execute(&mut *tx).await?;
                if let Some((kind, payload)) = mail {
                    sqlx::query("INSERT INTO outbox (app_id, kind, payload, status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)")
                        .bind(&task.app_id).bind(kind).bind(payload.to_string()).bind(now)
                        .execute(&mut *tx).await?;
                }
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

    /// Append a rule run to the run log.
    #[allow(clippy::too_many_arguments)]
    pub async fn log_rule_run(
        &self,
        app: &str,
        rule: &str,
        app_version: i64,
        trigger: &str,
        record_id: Option<&str>,
        matched: bool,
        outcome: &Value,
        error: Option<&str>,
        duration_us: i64,
    ) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO rule_runs (app_id, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(app)
            .bind(rule)
            .bind(app_version)
            .bind(trigger)
            .bind(record_id)
            .bind(matched)
            .bind(outcome.to_string())
            .bind(error)
            .bind(duration_us)
            .bind(crate::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// When a scheduled rule runs next (created at `first` if the rule has no schedule yet).
    pub async fn rule_schedule(
        &self,
        app: &str,
        rule: &str,
        first: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let next: DateTime<Utc> = crate::with_pool!(self, write, |pool| {
            sqlx::query("INSERT INTO rule_schedules (app_id, rule, next_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(app)
                .bind(rule)
                .bind(first)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT next_at FROM rule_schedules WHERE app_id = $1 AND rule = $2")
                .bind(app)
                .bind(rule)
                .fetch_one(pool)
                .await?
        });
        Ok(next)
    }

    /// Claim the occurrence at `due` by moving the schedule to `next`; false when another server did.
    pub async fn advance_rule_schedule(
        &self,
        app: &str,
        rule: &str,
        due: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query("UPDATE rule_schedules SET next_at = $1 WHERE app_id = $2 AND rule = $3 AND next_at = $4")
                .bind(next)
                .bind(app)
                .bind(rule)
                .bind(due)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// A rule's runs, newest first.
    pub async fn rule_runs(
        &self,
        app: &str,
        rule: &str,
        limit: i64,
    ) -> Result<Vec<RuleRunRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, RuleRunRow>(
                "SELECT seq, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at FROM rule_runs \
                 WHERE app_id = $1 AND rule = $2 ORDER BY seq DESC LIMIT $3",
            )
            .bind(app)
            .bind(rule)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

/// One logged rule run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RuleRunRow {
    pub seq: i64,
    pub rule: String,
    pub app_version: i64,
    pub trigger: String,
    pub record_id: Option<String>,
    pub matched: bool,
    pub outcome: String,
    pub error: Option<String>,
    pub duration_us: i64,
    pub at: DateTime<Utc>,
}
