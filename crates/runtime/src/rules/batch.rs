//! Batch runs: a rule over every record of its entity, page by page on all cores, with progress saved
//! per page so an interrupted run resumes where it stopped.

use std::time::Instant;

use chrono::Utc;
use serde_json::{Map, Value, json};
use trellis_form::records::to_api;
use trellis_rules::{CompiledRule, Evaluation, evaluate};
use trellis_store::flows::TransitionWrites;
use trellis_store::{BulkUpdate, RecordRow};

use super::BatchOutcome;
use super::prefilter::BatchSelect;
use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

/// Records per batch page (evaluated together, written in one transaction, then the position is
/// saved).
const BATCH_PAGE: i64 = 2000;

impl Runtime {
    /// Batch run (`POST …/rules/{rule}/run`): apply the rule to every record of its entity that it
    /// matches, a page of records per transaction (a crash keeps the pages done; running again only
    /// changes records that still match).
    pub async fn run_rule(
        &self,
        actor: &Principal,
        app: &str,
        rule_id: &str,
    ) -> Result<BatchOutcome, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_app_manager(actor, &loaded).await?;
        let rule = Self::rule(&loaded, rule_id)?;
        self.batch(&loaded, rule, "manual", &actor.user_id, &BatchSelect::All)
            .await
    }

    /// Apply `rule` to every live record of its entity that `select` keeps and the rule matches —
    /// page by page in id order, each page evaluated on all cores, the position and counts saved after
    /// every page. When the condition runs natively, a pre-filter over the column cache first rules
    /// out the records it surely does not match (`prefilter`): only the others are read. A run cut short (crash, restart) is resumed by the next run of the rule once its
    /// heartbeat is older than `RuntimeSettings::batch_stale_after`; records of the interrupted page are evaluated
    /// again (their writes are then no-ops; follow-up actions may repeat).
    pub(super) async fn batch(
        &self,
        loaded: &LoadedApp,
        rule: &CompiledRule,
        trigger: &str,
        actor: &str,
        select: &BatchSelect,
    ) -> Result<BatchOutcome, RuntimeError> {
        if let Some(trellis_rules::RuleAction::ApplyReport(apply)) = rule.definition.actions.first()
        {
            return self.apply_report_rule(loaded, rule, apply, trigger).await;
        }
        let (entity, _) = loaded.entity(rule.definition.entity.as_str())?;
        let started = Instant::now();
        let stale_before = Utc::now() - self.settings.batch_stale_after;
        let (batch, prefiltered) = match self
            .store()
            .running_rule_batch(&loaded.id, rule.id())
            .await?
        {
            Some(running) => {
                if !self
                    .store()
                    .resume_rule_batch(&running.id, stale_before)
                    .await?
                {
                    return Err(RuntimeError::Conflict(format!(
                        "rule '{}' is already running over its records ({} of {} done); see …/rules/{}/batches",
                        rule.id(),
                        running.processed,
                        running.total,
                        rule.id()
                    )));
                }
                tracing::info!(rule = rule.id(), batch = %running.id, after = ?running.after_id, "resuming an interrupted batch run");
                let prefiltered = self
                    .prefilter(
                        loaded,
                        entity,
                        rule,
                        select,
                        (running.after_id.as_deref(), BATCH_PAGE),
                    )
                    .await?;
                (running, prefiltered)
            }
            None => {
                let prefiltered = self
                    .prefilter(loaded, entity, rule, select, (None, BATCH_PAGE))
                    .await?;
                // The pre-filter counted the live records; otherwise count them.
                let total = match &prefiltered {
                    Some(prefiltered) => prefiltered.live,
                    None => {
                        self.store()
                            .count_records(
                                &loaded.id,
                                &entity.uid,
                                &trellis_model::CheckedFilter::All,
                                None,
                            )
                            .await?
                    }
                };
                let batch = self
                    .store()
                    .start_rule_batch(&loaded.id, rule.id(), trigger, loaded.version, total)
                    .await?;
                (batch, prefiltered)
            }
        };
        let mut counts = trellis_store::BatchCounts {
            processed: batch.processed,
            matched: batch.matched,
            changed: batch.changed,
            failed: batch.failed,
        };
        let mut after = batch.after_id.clone();
        if let Some(prefiltered) = &prefiltered {
            tracing::debug!(
                rule = rule.id(),
                candidates = prefiltered.candidates.len(),
                ruled_out = prefiltered.ruled_out.iter().sum::<i64>(),
                "batch run pre-filtered over the column cache"
            );
        }
        let mut pages = prefiltered
            .as_ref()
            .map(|p| p.candidates.chunks(BATCH_PAGE as usize).enumerate());
        loop {
            let (page, last_id) = match (&prefiltered, pages.as_mut()) {
                (Some(prefiltered), Some(pages)) => {
                    let (number, chunk) = pages
                        .next()
                        .unwrap_or((prefiltered.ruled_out.len() - 1, &[]));
                    // Records ruled out up to this page's end (after the last page: to the end)
                    // count as processed.
                    counts.processed += prefiltered.ruled_out[number];
                    let page = if chunk.is_empty() {
                        Vec::new()
                    } else {
                        self.store()
                            .records_by_ids(&loaded.id, &entity.uid, chunk)
                            .await?
                    };
                    (page, chunk.last().cloned())
                }
                _ => {
                    let page = self
                        .store()
                        .record_page(&loaded.id, &entity.uid, after.as_deref(), BATCH_PAGE)
                        .await?;
                    let last = page.last().map(|row| row.id.clone());
                    (page, last)
                }
            };
            let Some(last_id) = last_id else {
                break;
            };
            let selected: Vec<(RecordRow, Map<String, Value>)> = page
                .into_iter()
                .map(|row| {
                    let named = to_api(entity, &row.data.0);
                    (row, named)
                })
                .filter(|(_, named)| select.keeps(named))
                .collect();
            // The rule is pure: evaluate the page on every core.
            let owned_rule = rule.clone();
            let (selected, results) = tokio::task::spawn_blocking(move || {
                let results: Vec<Result<Evaluation, trellis_rules::RuleFailure>> =
                    crate::parallel::map_on_every_core(selected.iter().collect(), &|(_, named)| {
                        evaluate(&owned_rule, named, None)
                    });
                (selected, results)
            })
            .await
            .map_err(|e| RuntimeError::Internal(format!("rule evaluation: {e}")))?;
            if results.len() != selected.len() {
                return Err(RuntimeError::Internal(format!(
                    "rule '{}' stopped while evaluating a page",
                    rule.id()
                )));
            }
            let mut shared: Vec<BulkUpdate> = Vec::new();
            for ((row, named), result) in selected.iter().zip(results) {
                counts.processed += 1;
                let evaluation = match result {
                    Ok(evaluation) => evaluation,
                    Err(failure) => {
                        counts.failed += 1;
                        self.log_failure(loaded, rule.id(), trigger, &row.id, &failure.to_string())
                            .await?;
                        continue;
                    }
                };
                if !evaluation.matched {
                    continue;
                }
                counts.matched += 1;
                let mut side = TransitionWrites {
                    app: loaded.id.clone(),
                    entity: entity.id.to_string(),
                    ..TransitionWrites::default()
                };
                for action in &evaluation.actions {
                    self.side_effect(loaded, entity, &row.id, named, action, actor, &mut side)
                        .await?;
                }
                let differs = evaluation.writes.iter().any(|(k, v)| {
                    !named
                        .get(k)
                        .is_some_and(|now| trellis_form::records::same_value(now, v))
                });
                if !differs {
                    if !side.notifications.is_empty()
                        || !side.outbox.is_empty()
                        || !side.tasks.is_empty()
                    {
                        self.store()
                            .start_flow_state(&row.id, Some(actor), &side)
                            .await?;
                    }
                    continue;
                }
                match super::rule_write(loaded, entity, named, &evaluation.writes, &row.data.0)? {
                    Err(reason) => {
                        counts.failed += 1;
                        self.log_failure(loaded, rule.id(), trigger, &row.id, &reason)
                            .await?;
                    }
                    // Unique values change: alone, so a clash fails only this record.
                    Ok((_, true)) => match self
                        .commit_rule_writes(
                            loaded,
                            entity,
                            row,
                            named,
                            &evaluation.writes,
                            &side,
                            actor,
                        )
                        .await?
                    {
                        Ok(_) => counts.changed += 1,
                        Err(reason) => {
                            counts.failed += 1;
                            self.log_failure(loaded, rule.id(), trigger, &row.id, &reason)
                                .await?;
                        }
                    },
                    Ok((record, false)) => {
                        let has_work = !side.notifications.is_empty()
                            || !side.outbox.is_empty()
                            || !side.tasks.is_empty();
                        shared.push(BulkUpdate {
                            search_changed: record.search_text
                                != trellis_form::records::search_text(entity, named),
                            current: row.clone(),
                            record,
                            side: has_work.then_some(side),
                        });
                    }
                }
            }
            // The page's writes commit together (a crash keeps whole pages).
            if !shared.is_empty() {
                let written = self
                    .store()
                    .write_records_bulk(&loaded.id, loaded.version, Some(actor), &shared, &[])
                    .await?;
                for (update, applied) in shared.iter().zip(written.applied) {
                    if applied {
                        counts.changed += 1;
                    } else {
                        counts.failed += 1;
                        let reason =
                            "the record changed while the rule ran over it; run the rule again";
                        self.log_failure(loaded, rule.id(), trigger, &update.current.id, reason)
                            .await?;
                    }
                }
            }
            self.store()
                .advance_rule_batch(&batch.id, &last_id, counts)
                .await?;
            after = Some(last_id);
        }
        self.store()
            .finish_rule_batch(&batch.id, "done", counts)
            .await?;
        let outcome = BatchOutcome {
            processed: counts.processed as usize,
            matched: counts.matched as usize,
            changed: counts.changed as usize,
            failed: counts.failed as usize,
        };
        self.store()
            .log_rule_run(
                &loaded.id,
                rule.id(),
                loaded.version,
                trigger,
                None,
                outcome.matched > 0,
                &json!(outcome),
                None,
                started.elapsed().as_micros() as i64,
            )
            .await?;
        Ok(outcome)
    }

    /// The batch runs of a rule, newest first: status, position and counts (progress while running).
    pub async fn rule_batches(
        &self,
        actor: &Principal,
        app: &str,
        rule_id: &str,
    ) -> Result<Vec<trellis_store::RuleBatch>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_app_manager(actor, &loaded).await?;
        Self::rule(&loaded, rule_id)?;
        Ok(self.store().rule_batches(&loaded.id, rule_id).await?)
    }
}
