//! Batch runs: a rule over every record of its entity, page by page on all cores, with progress saved
//! per page so an interrupted run resumes where it stopped.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde_json::{Map, Value, json};
use trellis_model::EntityDefinition;
use trellis_rules::{CompiledRule, Evaluation, evaluate};
use trellis_store::flows::TransitionWrites;
use trellis_store::{BatchCounts, BulkUpdate, NewRecord, PagedRecord, RecordRow};

use super::BatchOutcome;
use super::prefilter::{BatchSelect, Prefiltered};
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

    /// Run `apply_report` rules over one entity together (`POST …/rules/run`): every report first,
    /// then one write-back in which each record gets all their values in one update (one history
    /// entry, one round of its rules). Refused when a rule applies no report, the rules write
    /// different entities, or two write the same field.
    pub async fn run_rules_together(
        &self,
        actor: &Principal,
        app: &str,
        rule_ids: &[String],
    ) -> Result<BatchOutcome, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_app_manager(actor, &loaded).await?;
        // Every problem at once, each at its place in the request (`/rules/2`).
        let mut problems = Vec::new();
        let mut problem = |index: Option<usize>, code: &'static str, message: String| {
            problems.push(trellis_form::FieldIssue {
                pointer: index.map_or("/rules".into(), |index| format!("/rules/{index}")),
                code,
                message,
            })
        };
        if rule_ids.is_empty() || rule_ids.len() > super::MAX_APPLIED_TOGETHER {
            problem(
                None,
                "rule_count",
                format!(
                    "name 1 to {} rules to run together",
                    super::MAX_APPLIED_TOGETHER
                ),
            );
        }
        let mut rules: Vec<&CompiledRule> = Vec::with_capacity(rule_ids.len());
        let mut written: Vec<(String, &str)> = Vec::new();
        for (index, id) in rule_ids.iter().enumerate() {
            if rule_ids[..index].contains(id) {
                problem(
                    Some(index),
                    "duplicate_rule",
                    format!("rule '{id}' is named twice"),
                );
                continue;
            }
            let Some(rule) = loaded.rules.get(id.as_str()) else {
                problem(
                    Some(index),
                    "unknown_rule",
                    format!("the app has no rule '{id}'"),
                );
                continue;
            };
            let Some(trellis_rules::RuleAction::ApplyReport(apply)) =
                rule.definition.actions.first()
            else {
                problem(
                    Some(index),
                    "not_a_write_back",
                    format!("rule '{id}' applies no report: only apply_report rules run together"),
                );
                continue;
            };
            if let Some(first) = rules.first()
                && first.definition.entity != rule.definition.entity
            {
                problem(
                    Some(index),
                    "other_entity",
                    format!(
                        "rule '{id}' writes '{}', rule '{}' writes '{}': rules run together write one entity",
                        rule.definition.entity,
                        first.id(),
                        first.definition.entity
                    ),
                );
                continue;
            }
            for field in super::apply::written_fields(apply) {
                if let Some((_, other)) = written.iter().find(|(f, _)| f == field) {
                    problem(
                        Some(index),
                        "field_written_twice",
                        format!(
                            "rules '{other}' and '{id}' both write '{field}': run them one after the other"
                        ),
                    );
                } else {
                    written.push((field.to_string(), rule.id()));
                }
            }
            rules.push(rule);
        }
        if !problems.is_empty() {
            return Err(RuntimeError::InvalidRecord(problems));
        }
        self.apply_reports(&loaded, &rules, "manual").await
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
        if let Some(trellis_rules::RuleAction::ApplyReport(_)) = rule.definition.actions.first() {
            return self.apply_reports(loaded, &[rule], trigger).await;
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
        let after = batch.after_id.clone();
        if let Some(prefiltered) = &prefiltered {
            tracing::debug!(
                rule = rule.id(),
                candidates = prefiltered.candidates.len(),
                ruled_out = prefiltered.ruled_out.iter().sum::<i64>(),
                "batch run pre-filtered over the column cache"
            );
        }
        let mut pages = BatchPages {
            prefiltered: prefiltered.as_ref(),
            chunks: prefiltered
                .as_ref()
                .map(|p| p.candidates.chunks(BATCH_PAGE as usize).enumerate()),
            after,
        };
        let shared = self.loaded_app_version(&loaded.id, loaded.version).await?;
        let run = BatchRun {
            loaded: &shared,
            entity,
            rule,
            trigger,
            actor,
            select,
        };
        // While a page commits (its own task: the SQLite transaction runs on the thread polling it),
        // the next one is read, evaluated and its follow-up resolved. A page's position is saved
        // once its writes committed.
        let mut committing: Option<PreparedPage> = None;
        loop {
            let next = self.prepare_batch_page(&run, &mut pages);
            let commit = self.spawn_batch_commit(&run, committing.take());
            let (next, committed) = tokio::join!(next, commit);
            if let Some((last_id, page_counts)) = committed? {
                add_counts(&mut counts, page_counts);
                self.store()
                    .advance_rule_batch(&batch.id, &last_id, counts)
                    .await?;
            }
            match next? {
                NextPage::Page(page) => committing = Some(page),
                NextPage::End { processed } => {
                    counts.processed += processed;
                    break;
                }
            }
        }
        self.store()
            .finish_rule_batch(&batch.id, "done", counts)
            .await?;
        let outcome = BatchOutcome {
            processed: counts.processed as usize,
            matched: counts.matched as usize,
            changed: counts.changed as usize,
            failed: counts.failed as usize,
            ..BatchOutcome::default()
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

/// What a batch run works with, for its page steps.
struct BatchRun<'a> {
    loaded: &'a Arc<LoadedApp>,
    entity: &'a EntityDefinition,
    rule: &'a CompiledRule,
    trigger: &'a str,
    actor: &'a str,
    select: &'a BatchSelect,
}

/// Where a batch run reads its next page: the pre-filter's candidates page by page, or every live
/// record after `after` in id order.
struct BatchPages<'a> {
    prefiltered: Option<&'a Prefiltered>,
    chunks: Option<std::iter::Enumerate<std::slice::Chunks<'a, String>>>,
    after: Option<String>,
}

/// The next page of a batch run, evaluated with its follow-up resolved — or the end of the run
/// (with the records the pre-filter ruled out after the last page, which count as processed).
enum NextPage {
    Page(PreparedPage),
    End { processed: i64 },
}

/// A page ready to commit: its last record id, the updates of its shared transaction, and its
/// counts so far (the shared updates count once committed).
struct PreparedPage {
    last_id: String,
    shared: Vec<BulkUpdate>,
    counts: BatchCounts,
}

/// A record of a page after the rule ran on it (on every core). What the async side does not need
/// is freed there, on the thread that allocated it.
struct Evaluated {
    /// The record as read; its `data` holds only the keys that are no current field (all a later
    /// write carries over), its fields having moved into `named`.
    row: RecordRow,
    /// The record's fields by name: only when a match has follow-up actions or writes alone.
    named: Option<Map<String, Value>>,
    result: Result<Evaluation, String>,
    /// For a match whose writes change the record: how it is written.
    write: Option<BatchWrite>,
}

/// How a match's writes are committed.
enum BatchWrite {
    /// With the page: the new data as text only, the current document (history's `before`) and
    /// whether the search text changes.
    Shared {
        record: NewRecord,
        current_document: String,
        search_changed: bool,
    },
    /// Alone, so a clash fails only this record: its unique values change.
    Alone,
    /// Refused: why the writes are not valid.
    Refused(String),
}

fn add_counts(total: &mut BatchCounts, page: BatchCounts) {
    total.processed += page.processed;
    total.matched += page.matched;
    total.changed += page.changed;
    total.failed += page.failed;
}

/// The rule on one record and, when it matches and its writes change the record, the write —
/// pure, for every core.
fn evaluate_record(
    loaded: &LoadedApp,
    entity: &EntityDefinition,
    rule: &CompiledRule,
    row: RecordRow,
    document: Option<String>,
    named: Map<String, Value>,
) -> Evaluated {
    let result = evaluate(rule, &named, None).map_err(|failure| failure.to_string());
    let write = match &result {
        Ok(evaluation)
            if evaluation.matched
                && evaluation.writes.iter().any(|(k, v)| {
                    !named
                        .get(k)
                        .is_some_and(|now| trellis_form::records::same_value(now, v))
                }) =>
        {
            Some(
                match super::rule_next(loaded, entity, &named, &evaluation.writes) {
                    Ok(Ok(next)) => {
                        let uniques = crate::records::unique_values_of(entity, &next);
                        if uniques != crate::records::unique_values_of(entity, &named) {
                            BatchWrite::Alone
                        } else {
                            let (search_text, search_changed) =
                                crate::records::changed_search_text(entity, &next, &named);
                            // `row.data` holds the non-field keys: the write carries them over.
                            let record = NewRecord {
                                data: Map::new(),
                                uniques,
                                search_text,
                                data_json: Some(trellis_form::records::storage_json(
                                    entity,
                                    &next,
                                    &row.data.0,
                                )),
                            };
                            let current_document = document.unwrap_or_else(|| {
                                trellis_form::records::storage_json(entity, &named, &row.data.0)
                            });
                            BatchWrite::Shared {
                                record,
                                current_document,
                                search_changed,
                            }
                        }
                    }
                    Ok(Err(reason)) => BatchWrite::Refused(reason),
                    Err(error) => BatchWrite::Refused(error.to_string()),
                },
            )
        }
        _ => None,
    };
    let keep_named = matches!(write, Some(BatchWrite::Alone))
        || result
            .as_ref()
            .is_ok_and(|e| e.matched && !e.actions.is_empty());
    Evaluated {
        row,
        named: keep_named.then_some(named),
        result,
        write,
    }
}

impl Runtime {
    /// Read the next page of a batch run, evaluate the rule on it (on every core) and resolve the
    /// follow-up of its matches: side effects, records that go alone (their unique values change),
    /// failures logged. The page's other writes are left for [`Runtime::spawn_batch_commit`].
    async fn prepare_batch_page(
        &self,
        run: &BatchRun<'_>,
        pages: &mut BatchPages<'_>,
    ) -> Result<NextPage, RuntimeError> {
        let BatchRun {
            loaded,
            entity,
            rule,
            trigger,
            actor,
            select,
        } = *run;
        let mut counts = BatchCounts::default();
        let (page, last_id) = match (pages.prefiltered, pages.chunks.as_mut()) {
            (Some(prefiltered), Some(chunks)) => {
                let (number, chunk) = chunks
                    .next()
                    .unwrap_or((prefiltered.ruled_out.len() - 1, &[]));
                // Records ruled out up to this page's end (after the last page: to the end) count
                // as processed.
                counts.processed += prefiltered.ruled_out[number];
                let page = if chunk.is_empty() {
                    Vec::new()
                } else {
                    self.store()
                        .records_by_ids(&loaded.id, &entity.uid, chunk)
                        .await?
                        .into_iter()
                        .map(|row| PagedRecord {
                            row,
                            document: None,
                        })
                        .collect()
                };
                (page, chunk.last().cloned())
            }
            _ => {
                let page = self
                    .store()
                    .record_page_as_read(
                        &loaded.id,
                        &entity.uid,
                        pages.after.as_deref(),
                        BATCH_PAGE,
                    )
                    .await?;
                let last = page.last().map(|record| record.row.id.clone());
                (page, last)
            }
        };
        let Some(last_id) = last_id else {
            return Ok(NextPage::End {
                processed: counts.processed,
            });
        };
        pages.after = Some(last_id.clone());
        // The rule and the writes it makes are pure: on every core, off the async workers.
        let (owned_loaded, owned_rule, owned_select) =
            (Arc::clone(loaded), rule.clone(), select.clone());
        let entity_id = entity.id.to_string();
        let expected = page.len();
        let evaluated = tokio::task::spawn_blocking(move || {
            let Ok((entity, _)) = owned_loaded.entity(&entity_id) else {
                return None;
            };
            Some(crate::parallel::map_on_every_core(
                page,
                &|PagedRecord { mut row, document }| {
                    // The fields move to the named form (parsed straight into it from the text
                    // the read kept); only the non-field keys stay stored.
                    let ((named, hidden), document) =
                        match crate::records::take_apart(entity, &mut row, document) {
                            Ok(parts) => parts,
                            Err(message) => {
                                return Some(Evaluated {
                                    row,
                                    named: None,
                                    result: Err(message),
                                    write: None,
                                });
                            }
                        };
                    row.data.0 = hidden;
                    owned_select.keeps(&named).then(|| {
                        evaluate_record(&owned_loaded, entity, &owned_rule, row, document, named)
                    })
                },
            ))
        })
        .await
        .map_err(|e| RuntimeError::Internal(format!("rule evaluation: {e}")))?;
        let evaluated = evaluated
            .filter(|all| all.len() == expected)
            .ok_or_else(|| {
                RuntimeError::Internal(format!(
                    "rule '{}' stopped while evaluating a page",
                    rule.id()
                ))
            })?;
        let mut shared: Vec<BulkUpdate> = Vec::new();
        for Evaluated {
            row,
            named,
            result,
            write,
        } in evaluated.into_iter().flatten()
        {
            counts.processed += 1;
            let evaluation = match result {
                Ok(evaluation) => evaluation,
                Err(failure) => {
                    counts.failed += 1;
                    self.log_failure(loaded, rule.id(), trigger, &row.id, &failure)
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
            let empty = Map::new();
            let named = named.unwrap_or(empty);
            for action in &evaluation.actions {
                self.side_effect(loaded, entity, &row.id, &named, action, actor, &mut side)
                    .await?;
            }
            let has_work =
                !side.notifications.is_empty() || !side.outbox.is_empty() || !side.tasks.is_empty();
            match write {
                // The writes change nothing: only the follow-up work.
                None => {
                    if has_work {
                        self.store()
                            .start_flow_state(&row.id, Some(actor), &side)
                            .await?;
                    }
                }
                Some(BatchWrite::Refused(reason)) => {
                    counts.failed += 1;
                    self.log_failure(loaded, rule.id(), trigger, &row.id, &reason)
                        .await?;
                }
                // Unique values change: alone, so a clash fails only this record.
                Some(BatchWrite::Alone) => match self
                    .commit_rule_writes(
                        loaded,
                        entity,
                        &row,
                        &named,
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
                Some(BatchWrite::Shared {
                    record,
                    current_document,
                    search_changed,
                }) => shared.push(BulkUpdate {
                    search_changed,
                    current: row,
                    current_document: Some(current_document),
                    record,
                    side: has_work.then_some(side),
                }),
            }
        }
        Ok(NextPage::Page(PreparedPage {
            last_id,
            shared,
            counts,
        }))
    }

    /// Commit a prepared page's shared writes (a crash keeps whole pages) on a task of its own;
    /// its last id and counts once committed (`None`: no page).
    fn spawn_batch_commit(
        &self,
        run: &BatchRun<'_>,
        page: Option<PreparedPage>,
    ) -> impl Future<Output = Result<Option<(String, BatchCounts)>, RuntimeError>> + use<> {
        let task = page.map(|page| {
            let runtime = self.clone();
            let loaded = Arc::clone(run.loaded);
            let (rule, trigger, actor) = (
                run.rule.id().to_owned(),
                run.trigger.to_owned(),
                run.actor.to_owned(),
            );
            tokio::spawn(async move {
                let PreparedPage {
                    last_id,
                    shared,
                    mut counts,
                } = page;
                if shared.is_empty() {
                    return Ok((last_id, counts));
                }
                // Not waiting for the disk: the batch's position, saved right after in an ordinary
                // (synced) commit, makes the page durable with it.
                let written = runtime
                    .store()
                    .write_records_bulk_unsynced(
                        &loaded.id,
                        loaded.version,
                        Some(&actor),
                        &shared,
                        &[],
                    )
                    .await?;
                for (update, applied) in shared.iter().zip(written.applied) {
                    if applied {
                        counts.changed += 1;
                    } else {
                        counts.failed += 1;
                        let reason =
                            "the record changed while the rule ran over it; run the rule again";
                        runtime
                            .log_failure(&loaded, &rule, &trigger, &update.current.id, reason)
                            .await?;
                    }
                }
                Ok((last_id, counts))
            })
        });
        async move {
            match task {
                Some(task) => task
                    .await
                    .map_err(|e| RuntimeError::Internal(format!("committing a batch page: {e}")))?
                    .map(Some),
                None => Ok(None),
            }
        }
    }
}
