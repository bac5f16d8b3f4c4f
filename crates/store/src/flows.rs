//! Flow state that lives beside records: transition history, tasks and approvals, timers, in-app
//! notifications and the outbox. A transition's writes ([`TransitionWrites`]) commit in the same
//! transaction as the record's new state (`Store::update_record_with`), so a crash never leaves half a
//! transition; a timer is consumed in that transaction too, so it fires exactly once even when two
//! servers race for it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Store, StoreError};

mod delivery;
pub use delivery::OutboxAttempt;
mod rule_log;
mod tasks;

pub use rule_log::RuleRunRow;
pub(crate) use rule_log::{
    RunLogRow, bind_run_rows, insert_run_rows, run_log_rows, run_log_statements,
    sqlite_insert_run_rows,
};

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
        self.start_flow_states(actor, &[(record_id, writes)]).await
    }

    /// [`Store::start_flow_state`] for many records in one transaction: the follow-up work of
    /// rules that acted on many records at once (a wave of lifecycle moves queueing the next).
    pub async fn start_flow_states(
        &self,
        actor: Option<&str>,
        work: &[(&str, &TransitionWrites)],
    ) -> Result<(), StoreError> {
        self.start_flow_states_logged(actor, work, "", 0, &[]).await
    }

    /// [`Store::start_flow_states`] and `runs` — the rule runs (of `app` at `app_version`) that
    /// asked for that work — in one transaction: a round of after-save rules over many records
    /// that only act commits once.
    pub async fn start_flow_states_logged(
        &self,
        actor: Option<&str>,
        work: &[(&str, &TransitionWrites)],
        app: &str,
        app_version: i64,
        runs: &[crate::NewRuleRun],
    ) -> Result<(), StoreError> {
        if work.is_empty() && runs.is_empty() {
            return Ok(());
        }
        let now = crate::now();
        let rows = run_log_rows(runs)?;
        if let crate::connect::Pools::Sqlite { write, .. } = &self.pools {
            // The follow-up work of a rule on every record it acts on: through rusqlite.
            let at = crate::records::sqlite_time(now);
            return crate::records::on_writer(write, |connection| {
                for (record_id, writes) in work {
                    crate::records::sqlite_state_work(connection, writes, record_id, actor, &at)?;
                }
                if !rows.is_empty() {
                    sqlite_insert_run_rows(connection, app, app_version, &rows, &at)?;
                }
                Ok(())
            })
            .await;
        }
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for (record_id, writes) in work {
                insert_flow_history!(tx, *writes, *record_id, actor, now);
                insert_state_work!(tx, *writes, *record_id, now);
            }
            insert_run_rows!(tx, &rows, app, app_version, now);
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
}
