//! The scheduler: each tick claims and fires due timers (exactly once, also with several servers),
//! escalates overdue tasks, drains the outbox, runs the rules' schedules and indexes for search what
//! bulk imports left to the search indexer.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use trellis_flow::FireContext;
use trellis_flow::definition::Assignee;
use trellis_form::Locale;
use trellis_form::records::to_api;

use super::{Consumes, Firer, OUTBOX_TIME_PER_TICK};
use crate::{Runtime, RuntimeError};

/// Longest a scheduler tick keeps indexing what bulk imports left for search (a step of 5,000
/// rows takes ~25–30 ms here; a search of an entity indexes its own backlog first anyway).
const SEARCH_INDEX_TIME_PER_TICK: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a server keeps the due timers it claimed before others may take them.
const TIMER_LEASE: chrono::Duration = chrono::Duration::seconds(60);

impl Runtime {
    /// One scheduler pass: fire due timers (each exactly once) and escalate overdue tasks. Returns
    /// (timers fired, tasks escalated).
    pub async fn run_scheduler_once(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(usize, usize), RuntimeError> {
        let mut fired = 0;
        for timer in self.store().claim_due_timers(now, 200, TIMER_LEASE).await? {
            let outcome = async {
                let loaded = self.loaded_app(&timer.app_id).await?;
                let (entity, _) = loaded.entity(&timer.entity)?;
                let row = self.live_record(&loaded, entity, &timer.record_id).await?;
                let source = self.pinned_flow(&loaded, entity, &timer.flow, &row).await?;
                let flow = self.flow(&source, entity, &timer.flow)?;
                let consumes = Consumes {
                    timer: Some(timer.id.clone()),
                    task: None,
                };
                self.fire_on(
                    &loaded,
                    entity,
                    flow,
                    &row,
                    &timer.event,
                    &Map::new(),
                    Firer::System,
                    consumes,
                    Locale::En,
                )
                .await
            }
            .await;
            match outcome {
                Ok(_) => fired += 1,
                // Another server fired it first: nothing to do.
                Err(_) if !self.store().timer_pending(&timer.id).await? => {}
                Err(error) if self.timer_still_applies(&timer, now).await => {
                    // A passing failure (the record changed meanwhile, the database): try again on
                    // the next tick.
                    tracing::info!(timer = %timer.id, error = %error, "timer will be retried");
                    self.store().release_timer(&timer.id).await?;
                }
                Err(error) => {
                    // The record moved on, was deleted, or the guard said no: this timer is done.
                    tracing::info!(timer = %timer.id, error = %error, "timer did not fire");
                    self.store().cancel_timer(&timer.id).await?;
                }
            }
        }
        let mut escalated = 0;
        for task in self.store().overdue_tasks(now).await? {
            let Some(target) = task
                .escalate_to
                .as_deref()
                .and_then(|t| serde_json::from_str::<Assignee>(t).ok())
            else {
                continue;
            };
            let loaded = self.loaded_app(&task.app_id).await?;
            let Ok((entity, _)) = loaded.entity(&task.entity) else {
                continue;
            };
            let Ok(row) = self.live_record(&loaded, entity, &task.record_id).await else {
                continue;
            };
            let named = to_api(entity, &row.data.0);
            if let Some(user) = self
                .resolve_assignee(&loaded.id, &target, &named)
                .await?
                .into_iter()
                .next()
            {
                let message = json!({"en": "An overdue task was escalated to you", "zh-CN": "一项逾期任务已升级给您"});
                let mail = self.mail_entry(&user, &message, &task.entity, &task.record_id);
                if self
                    .store()
                    .escalate_task(&task, &user, &message, mail.as_ref())
                    .await?
                {
                    escalated += 1;
                }
            }
        }
        Ok((fired, escalated))
    }

    /// Whether `timer`'s event may still fire from its record's current state (as the system).
    async fn timer_still_applies(
        &self,
        timer: &trellis_store::flows::TimerRow,
        now: DateTime<Utc>,
    ) -> bool {
        let check = async {
            let loaded = self.loaded_app(&timer.app_id).await?;
            let (entity, _) = loaded.entity(&timer.entity)?;
            let row = self.live_record(&loaded, entity, &timer.record_id).await?;
            let source = self.pinned_flow(&loaded, entity, &timer.flow, &row).await?;
            let flow = self.flow(&source, entity, &timer.flow)?;
            let named = to_api(entity, &row.data.0);
            let now = now.to_rfc3339();
            let context = FireContext {
                user_id: "system",
                roles: &[],
                privileged: true,
                data: &Map::new(),
                now: &now,
            };
            Ok::<bool, RuntimeError>(
                named.get(flow.state_field()).and_then(Value::as_str) == Some(timer.state.as_str())
                    && flow.decide(&timer.event, &named, &context).is_ok(),
            )
        };
        check.await.unwrap_or(false)
    }

    /// Index what bulk imports left for search (`Store::index_search_backlog_step`), step after
    /// step, for at most `budget` (a step that started finishes). Returns the steps taken.
    pub async fn index_search_backlog(
        &self,
        budget: std::time::Duration,
    ) -> Result<usize, RuntimeError> {
        let started = std::time::Instant::now();
        let mut steps = 0;
        while started.elapsed() < budget && self.store().index_search_backlog_step().await? {
            steps += 1;
        }
        if steps > 0 {
            tracing::debug!(
                steps,
                ms = started.elapsed().as_millis() as u64,
                "search backlog indexed"
            );
        }
        Ok(steps)
    }

    /// Run the scheduler every `interval` until the process ends.
    pub fn start_scheduler(&self, interval: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let runtime = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            loop {
                ticker.tick().await;
                if let Err(error) = runtime.run_scheduler_once(Utc::now()).await {
                    tracing::warn!(error = %error, "scheduler pass failed");
                }
                // Drain a backlog (a nightly run queues one event per moved customer) pass after
                // pass instead of one pass per tick, for a bounded time so the timers and the rule
                // schedules still get their turn.
                if let Err(error) = runtime.drain_outbox(OUTBOX_TIME_PER_TICK).await {
                    tracing::warn!(error = %error, "outbox pass failed");
                }
                if let Err(error) = runtime.run_rule_schedules(Utc::now()).await {
                    tracing::warn!(error = %error, "scheduled rules pass failed");
                }
                if let Err(error) = runtime
                    .index_search_backlog(SEARCH_INDEX_TIME_PER_TICK)
                    .await
                {
                    tracing::warn!(error = %error, "search indexing pass failed");
                }
            }
        })
    }
}
