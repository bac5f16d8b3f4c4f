//! Bulk updates by the system (nightly write-backs: `apply_report`, batch rule runs): many records
//! patched with the same guarantees as [`Runtime::update_record`] — validation, before-save rules,
//! relation checks, history, after-save rules — but committed in one transaction per call instead of
//! one per record (`Store::update_records_bulk`).
//!
//! Equivalence with the one-by-one path, record by record:
//! - a record whose patch is invalid (or a before-save rule rejects) is not written and counts as
//!   failed, as `update_record` would refuse it;
//! - after-save rules run against the same before/after values; when none of the triggered rules
//!   writes fields, their runs and follow-up work (tasks, notifications, outbox entries) commit with
//!   the update; when one does, the record goes through the ordinary cascading
//!   [`Runtime::after_save`] right after the bulk commit (as `update_record` runs it after its commit);
//! - a record whose unique values change, or that changed since it was read, is updated alone through
//!   `update_record`.

use std::time::Instant;

use serde_json::{Map, Value};
use trellis_form::Locale;
use trellis_form::records::{merge_patch, search_text, to_api};
use trellis_model::EntityDefinition;
use trellis_rules::evaluate;
use trellis_store::flows::TransitionWrites;
use trellis_store::{BulkUpdate, NewRuleRun, RecordRow};

use super::{record_write, unique_values};
use crate::app_cache::LoadedApp;
use crate::rules::{outcome_of, triggered_rules};
use crate::{Principal, Runtime, RuntimeError};

/// What a bulk update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BulkCounts {
    pub changed: usize,
    pub failed: usize,
}

/// One record ready to write in the shared transaction.
struct Planned {
    id: String,
    patch: Map<String, Value>,
    before: Map<String, Value>,
    /// Whether an after-save rule writes fields: then the record's after-save runs after the commit.
    cascades: bool,
}

/// Field issues as one line: `pointer: message; …`.
fn describe(issues: &[trellis_form::FieldIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("{}: {}", i.pointer, i.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn logged_run(
    trigger: &str,
    record_id: &str,
    duration_us: i64,
    evaluation: &trellis_rules::Evaluation,
) -> NewRuleRun {
    NewRuleRun {
        rule: evaluation.rule.clone(),
        trigger: trigger.to_owned(),
        record_id: Some(record_id.to_owned()),
        matched: evaluation.matched,
        outcome: outcome_of(evaluation),
        error: None,
        duration_us,
    }
}

impl Runtime {
    /// Apply `changes` (each a live record as read and a merge patch of fields by name) as `actor`, a
    /// system principal (no access checks). See the module docs for the guarantees.
    pub(crate) async fn update_records_as_system(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        changes: Vec<(RecordRow, Map<String, Value>)>,
        actor: &Principal,
    ) -> Result<BulkCounts, RuntimeError> {
        let (_, validator) = loaded.entity(entity.id.as_str())?;
        let locale = Locale::En;
        let mut counts = BulkCounts::default();
        let mut alone: Vec<(String, Map<String, Value>)> = Vec::new();
        // Validate and run the before-save rules (pure).
        let mut prepared = Vec::with_capacity(changes.len());
        for (row, patch) in changes {
            let before = to_api(entity, &row.data.0);
            let mut named = before.clone();
            merge_patch(&mut named, &patch);
            self.fill_system_fields(&loaded.id, entity, &mut named, actor, false);
            let changed: Vec<&str> = patch
                .keys()
                .filter(|k| before.get(*k) != named.get(*k))
                .map(String::as_str)
                .collect();
            let mut issues = validator.check_writable(&patch, locale);
            issues.extend(validator.prepare(&mut named, &changed, locale));
            let mut runs = Vec::new();
            if issues.is_empty() {
                match Self::before_save(loaded, entity, &mut named, Some(&before), false, locale) {
                    Ok(done) => {
                        let written: Vec<String> = done
                            .iter()
                            .flat_map(|(_, e)| e.writes.keys().cloned())
                            .collect();
                        let written: Vec<&str> = written.iter().map(String::as_str).collect();
                        issues.extend(validator.prepare(&mut named, &written, locale));
                        runs = done;
                    }
                    Err(refused) => issues = refused,
                }
            }
            if !issues.is_empty() {
                counts.failed += 1;
                tracing::warn!(record = %row.id, error = %describe(&issues), "bulk update refused a record");
                continue;
            }
            if unique_values(entity, &named) != unique_values(entity, &before) {
                alone.push((row.id.clone(), patch));
                continue;
            }
            prepared.push((row, patch, before, named, runs));
        }
        // Relations of every record, one query per relation field.
        let problems = {
            let records: Vec<&Map<String, Value>> =
                prepared.iter().map(|(_, _, _, named, _)| named).collect();
            self.check_relations(loaded, entity, &records, locale)
                .await?
        };
        let mut planned = Vec::with_capacity(prepared.len());
        let mut updates = Vec::with_capacity(prepared.len());
        let mut runs = Vec::new();
        for ((row, patch, before, named, before_runs), issues) in prepared.into_iter().zip(problems)
        {
            if !issues.is_empty() {
                counts.failed += 1;
                tracing::warn!(record = %row.id, error = %describe(&issues), "bulk update refused a record");
                continue;
            }
            runs.extend(
                before_runs
                    .iter()
                    .map(|(us, evaluation)| logged_run("before_save", &row.id, *us, evaluation)),
            );
            // The after-save rules this change triggers: committed here unless one writes fields.
            let mut side = TransitionWrites {
                app: loaded.id.clone(),
                entity: entity.id.to_string(),
                ..TransitionWrites::default()
            };
            let mut after_runs = Vec::new();
            let mut cascades = false;
            for rule in triggered_rules(loaded, entity, &named, Some(&before)) {
                let started = Instant::now();
                match evaluate(rule, &named, Some(&before)) {
                    Ok(evaluation) => {
                        if evaluation.matched && !evaluation.writes.is_empty() {
                            cascades = true;
                            break;
                        }
                        if evaluation.matched {
                            for action in &evaluation.actions {
                                self.side_effect(
                                    loaded,
                                    entity,
                                    &row.id,
                                    &named,
                                    action,
                                    &actor.user_id,
                                    &mut side,
                                )
                                .await?;
                            }
                        }
                        let us = started.elapsed().as_micros() as i64;
                        after_runs.push(logged_run("record_updated", &row.id, us, &evaluation));
                    }
                    Err(failure) => {
                        tracing::warn!(app = %loaded.id, rule = rule.id(), record = %row.id, error = %failure, "rule failed");
                        after_runs.push(NewRuleRun {
                            rule: rule.id().to_owned(),
                            trigger: "record_updated".into(),
                            record_id: Some(row.id.clone()),
                            matched: false,
                            outcome: Value::Null,
                            error: Some(failure.to_string()),
                            duration_us: 0,
                        });
                    }
                }
            }
            let side = if cascades {
                None
            } else {
                runs.extend(after_runs);
                let has_work = !side.notifications.is_empty()
                    || !side.outbox.is_empty()
                    || !side.tasks.is_empty();
                has_work.then_some(side)
            };
            let record = record_write(entity, &named, Some(&row.data.0));
            let search_changed = record.search_text != search_text(entity, &before);
            planned.push(Planned {
                id: row.id.clone(),
                patch,
                before,
                cascades,
            });
            updates.push(BulkUpdate {
                current: row,
                record,
                search_changed,
                side,
            });
        }
        if !updates.is_empty() {
            let written = self
                .store()
                .update_records_bulk(
                    &loaded.id,
                    loaded.version,
                    Some(&actor.user_id),
                    &updates,
                    &runs,
                )
                .await?;
            drop(updates);
            for (plan, row) in planned.into_iter().zip(written) {
                match row {
                    Some(row) => {
                        counts.changed += 1;
                        if plan.cascades {
                            self.after_save(loaded, entity, row, Some(plan.before), &actor.user_id)
                                .await?;
                        }
                    }
                    None => alone.push((plan.id, plan.patch)),
                }
            }
        }
        for (id, patch) in alone {
            match self
                .update_record(
                    actor,
                    &loaded.id,
                    entity.id.as_str(),
                    &id,
                    &Value::Object(patch),
                    None,
                    locale,
                )
                .await
            {
                Ok(_) => counts.changed += 1,
                Err(error) => {
                    counts.failed += 1;
                    tracing::warn!(record = %id, %error, "bulk update could not update a record");
                }
            }
        }
        Ok(counts)
    }
}
