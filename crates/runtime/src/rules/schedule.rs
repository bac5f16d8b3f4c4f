//! Scheduled rules: which are due (cron, date reached) — each occurrence once, also with several
//! servers — and running them. `apply_report` rules due together over one entity run as one
//! write-back; the runs of different entities go side by side, each entity's in rule-id order.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use trellis_rules::{CompiledRule, RuleAction, Trigger};

use super::{MAX_APPLIED_TOGETHER, apply, prefilter};
use crate::app_cache::LoadedApp;
use crate::{Runtime, RuntimeError};

/// One run of a scheduled pass.
enum ScheduledRun {
    /// A batch run of one rule.
    Batch {
        rule: String,
        trigger: &'static str,
        select: prefilter::BatchSelect,
    },
    /// `apply_report` rules over one entity, run together.
    WriteBack(Vec<String>),
}

/// Add the due `apply_report` rule `rule` to the first group of `groups` it can run together with
/// (same entity, no field written twice, room left), or start a group.
fn join_write_back<'a>(groups: &mut Vec<Vec<&'a CompiledRule>>, rule: &'a CompiledRule) {
    fn written(rule: &CompiledRule) -> std::collections::BTreeSet<&str> {
        match rule.definition.actions.first() {
            Some(RuleAction::ApplyReport(apply)) => apply::written_fields(apply),
            _ => Default::default(),
        }
    }
    let fields = written(rule);
    let fits = |group: &Vec<&'a CompiledRule>| {
        group.len() < MAX_APPLIED_TOGETHER
            && group.iter().all(|other| {
                other.definition.entity == rule.definition.entity
                    && written(other).iter().all(|field| !fields.contains(field))
            })
    };
    match groups.iter_mut().find(|group| fits(group)) {
        Some(group) => group.push(rule),
        None => groups.push(vec![rule]),
    }
}

impl Runtime {
    /// Run the scheduled rules (cron, date reached) whose time has come; each occurrence once, also
    /// with several servers (the schedule advances by compare-and-set before the run). Scheduled
    /// `apply_report` rules due together over one entity run together (one write-back giving each
    /// record all their values), unless they write the same field. The runs over different
    /// entities go side by side (a nightly write-back of customers while leads decay and points
    /// expire): their records differ, and whatever follows from them (the outbox) comes after.
    pub async fn run_rule_schedules(&self, now: DateTime<Utc>) -> Result<usize, RuntimeError> {
        let mut ran = 0;
        for app in self.store().list_apps(false).await? {
            let loaded = self.loaded_app(&app.id).await?;
            let mut runs: BTreeMap<String, Vec<ScheduledRun>> = BTreeMap::new();
            let mut write_backs: Vec<Vec<&CompiledRule>> = Vec::new();
            // In id order: the same order on every pass and server.
            let mut rules: Vec<&CompiledRule> = loaded
                .rules
                .values()
                .filter(|r| r.definition.enabled)
                .collect();
            rules.sort_unstable_by(|a, b| a.id().cmp(b.id()));
            for rule in rules {
                let next_after = |at: DateTime<Utc>| match &rule.definition.trigger {
                    Trigger::Schedule { cron } => trellis_flow::definition::next_cron(cron, at),
                    Trigger::DateReached { .. } => (at.date_naive() + chrono::Days::new(1))
                        .and_hms_opt(0, 0, 0)
                        .map(|d| d.and_utc()),
                    _ => None,
                };
                let Some(first) = next_after(now) else {
                    continue;
                };
                let due = self
                    .store()
                    .rule_schedule(&loaded.id, rule.id(), first)
                    .await?;
                if due > now {
                    continue;
                }
                let Some(next) = next_after(now) else {
                    continue;
                };
                if !self
                    .store()
                    .advance_rule_schedule(&loaded.id, rule.id(), due, next)
                    .await?
                {
                    continue;
                }
                ran += 1;
                let batch = |trigger, select| ScheduledRun::Batch {
                    rule: rule.id().to_owned(),
                    trigger,
                    select,
                };
                let entity = rule.definition.entity.to_string();
                match &rule.definition.trigger {
                    Trigger::DateReached {
                        field,
                        days_before,
                        every_year,
                    } => {
                        let select = prefilter::BatchSelect::DateReached {
                            field: field.to_string(),
                            day: (now + chrono::Duration::days(*days_before)).date_naive(),
                            every_year: *every_year,
                        };
                        runs.entry(entity)
                            .or_default()
                            .push(batch("date_reached", select));
                    }
                    _ if matches!(
                        rule.definition.actions.first(),
                        Some(RuleAction::ApplyReport(_))
                    ) =>
                    {
                        join_write_back(&mut write_backs, rule);
                    }
                    _ => runs
                        .entry(entity)
                        .or_default()
                        .push(batch("schedule", prefilter::BatchSelect::All)),
                }
            }
            for group in write_backs {
                let ids = group.iter().map(|rule| rule.id().to_owned()).collect();
                runs.entry(group[0].definition.entity.to_string())
                    .or_default()
                    .push(ScheduledRun::WriteBack(ids));
            }
            self.run_side_by_side(&loaded, runs).await?;
        }
        Ok(ran)
    }

    /// Run each entity's `runs` in order, the entities side by side (each on a task of its own).
    /// A failed run does not stop the others (their schedules advanced already); the first error
    /// is returned once all have ended.
    async fn run_side_by_side(
        &self,
        loaded: &Arc<LoadedApp>,
        runs: BTreeMap<String, Vec<ScheduledRun>>,
    ) -> Result<(), RuntimeError> {
        let mut running = tokio::task::JoinSet::new();
        for (entity, runs) in runs {
            let (runtime, loaded) = (self.clone(), loaded.clone());
            running.spawn(async move {
                let mut first_error = None;
                for run in runs {
                    if let Err(error) = runtime.run_scheduled(&loaded, run).await {
                        tracing::warn!(app = %loaded.id, %entity, %error, "scheduled rule run failed");
                        first_error.get_or_insert(error);
                    }
                }
                first_error.map_or(Ok(()), Err)
            });
        }
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            let outcome = joined
                .map_err(|e| RuntimeError::Internal(format!("a scheduled rule run stopped: {e}")))
                .and_then(|outcome| outcome);
            if let Err(error) = outcome {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn run_scheduled(
        &self,
        loaded: &LoadedApp,
        run: ScheduledRun,
    ) -> Result<(), RuntimeError> {
        match run {
            ScheduledRun::Batch {
                rule,
                trigger,
                select,
            } => {
                let rule = Self::rule(loaded, &rule)?;
                self.batch(loaded, rule, trigger, "system", &select).await?;
            }
            ScheduledRun::WriteBack(ids) => {
                let rules = ids
                    .iter()
                    .map(|id| Self::rule(loaded, id))
                    .collect::<Result<Vec<_>, _>>()?;
                self.apply_reports(loaded, &rules, "schedule").await?;
            }
        }
        Ok(())
    }
}
