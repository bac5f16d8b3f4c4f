//! Rules that write a report's result back onto records (`apply_report`): the report runs once, as
//! the system, and every row naming a record of the rule's entity patches the fields it maps —
//! nightly RFM scores and segments, P(alive) and CLV. Unchanged records are not touched; each change
//! is an ordinary update (validated, its own transaction, after-save rules and history included).

use std::time::Instant;

use serde_json::{Map, Value};
use trellis_form::records::to_api;
use trellis_rules::{ApplyReportAction, CompiledRule};

use super::BatchOutcome;
use crate::app_cache::LoadedApp;
use crate::reports::ReportRequest;
use crate::{Principal, Runtime, RuntimeError};

/// One finished update: the record id and how it went.
type UpdateDone = (String, Result<(), RuntimeError>);

impl Runtime {
    pub(super) async fn apply_report_rule(
        &self,
        loaded: &LoadedApp,
        rule: &CompiledRule,
        apply: &ApplyReportAction,
        trigger: &str,
    ) -> Result<BatchOutcome, RuntimeError> {
        let started = Instant::now();
        let system = Principal::system("system", "system");
        let output = self
            .run_report(
                &system,
                &loaded.id,
                apply.report.as_str(),
                &ReportRequest::default(),
                "en",
            )
            .await?;
        let column = |name: &str| {
            output
                .columns
                .iter()
                .position(|c| c.name == name)
                .ok_or_else(|| {
                    RuntimeError::InvalidInput(format!(
                        "rule '{}': report '{}' has no column '{name}'",
                        rule.id(),
                        apply.report
                    ))
                })
        };
        let key = column(&apply.key)?;
        let sets: Vec<(String, usize)> = apply
            .set
            .iter()
            .map(|(field, name)| Ok((field.to_string(), column(name)?)))
            .collect::<Result<_, RuntimeError>>()?;
        let (entity, _) = loaded.entity(rule.definition.entity.as_str())?;
        let mut outcome = BatchOutcome::default();
        // Updates run a few at a time: validation and rules use both cores while the store commits.
        let mut running = tokio::task::JoinSet::new();
        let limit = std::thread::available_parallelism().map_or(2, |n| n.get()) * 4;
        for row in &output.rows {
            let Some(id) = row.get(key).and_then(Value::as_str) else {
                continue;
            };
            outcome.processed += 1;
            let Some(current) = self.store().get_record(&loaded.id, &entity.uid, id).await? else {
                continue;
            };
            if current.deleted_at.is_some() {
                continue;
            }
            outcome.matched += 1;
            let named = to_api(entity, &current.data.0);
            let patch: Map<String, Value> = sets
                .iter()
                .filter_map(|(field, index)| {
                    let value = row.get(*index).cloned().unwrap_or(Value::Null);
                    let now = named.get(field).cloned().unwrap_or(Value::Null);
                    (now != value).then(|| (field.clone(), value))
                })
                .collect();
            if patch.is_empty() {
                continue;
            }
            while running.len() >= limit {
                Self::count_update(running.join_next().await, rule.id(), &mut outcome);
            }
            let (runtime, system, app, entity_id, id) = (
                self.clone(),
                system.clone(),
                loaded.id.clone(),
                entity.id.to_string(),
                id.to_owned(),
            );
            running.spawn(async move {
                let result = runtime
                    .update_record(
                        &system,
                        &app,
                        &entity_id,
                        &id,
                        &Value::Object(patch),
                        None,
                        trellis_form::Locale::En,
                    )
                    .await
                    .map(|_| ());
                (id, result)
            });
        }
        while let Some(done) = running.join_next().await {
            Self::count_update(Some(done), rule.id(), &mut outcome);
        }
        tracing::info!(
            rule = rule.id(),
            trigger,
            report = %apply.report,
            rows = output.rows.len(),
            changed = outcome.changed,
            failed = outcome.failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "report applied"
        );
        Ok(outcome)
    }

    fn count_update(
        done: Option<Result<UpdateDone, tokio::task::JoinError>>,
        rule: &str,
        outcome: &mut BatchOutcome,
    ) {
        match done {
            Some(Ok((_, Ok(())))) => outcome.changed += 1,
            Some(Ok((id, Err(error)))) => {
                outcome.failed += 1;
                tracing::warn!(rule, record = %id, %error, "apply_report could not update a record");
            }
            Some(Err(error)) => {
                outcome.failed += 1;
                tracing::warn!(rule, %error, "apply_report update task failed");
            }
            None => {}
        }
    }
}
