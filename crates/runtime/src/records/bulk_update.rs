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
//!   `update_record`;
//! - unlike `update_record`, a change that the before-save rules turn back into the current values
//!   (a score over a cap, capped again) writes nothing: nightly runs do not grow the history with
//!   no-op versions.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use trellis_form::records::{merge_patch, to_api};
use trellis_form::{FieldIssue, Locale};
use trellis_model::{EntityDefinition, FieldKind};
use trellis_rules::{RuleAction, evaluate};
use trellis_store::flows::TransitionWrites;
use trellis_store::{BulkUpdate, NewRecord, NewRuleRun, RecordRow};

use super::{unique_values, update_write};
use crate::app_cache::LoadedApp;
use crate::rules::{outcome_text, triggered_rules};
use crate::{Principal, Runtime, RuntimeError};

/// One change of a bulk update: the live record as read and a merge patch of fields by name.
pub(crate) type SystemChange = (RecordRow, Map<String, Value>);

/// What a bulk update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BulkCounts {
    pub changed: usize,
    pub failed: usize,
}

/// A record's change, planned without IO (on any thread).
enum Plan {
    /// Refused: invalid, or a before-save rule rejected it.
    Refused {
        id: String,
        issues: Vec<FieldIssue>,
    },
    /// The before-save rules turned the change back into the current values: nothing to write.
    Unchanged,
    /// Its unique values change: through `update_record`, alone.
    Alone {
        id: String,
        patch: Map<String, Value>,
    },
    Ready(Box<Ready>),
}

/// A change ready for the shared transaction.
struct Ready {
    row: RecordRow,
    patch: Map<String, Value>,
    before: Map<String, Value>,
    named: Map<String, Value>,
    record: NewRecord,
    search_changed: bool,
    runs: Vec<NewRuleRun>,
    /// Actions of the matched after-save rules, for their follow-up work.
    actions: Vec<RuleAction>,
    /// Whether an after-save rule writes fields: then the record's after-save runs after the commit
    /// (and `runs` and `actions` hold only the before-save part).
    cascades: bool,
}

/// Field issues as one line: `pointer: message; …`.
fn describe(issues: &[FieldIssue]) -> String {
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
        outcome: outcome_text(evaluation),
        error: None,
        duration_us,
    }
}

/// Plan one record's change: the merge patch validated as `update_record` validates it, the
/// before-save rules applied, and the after-save rules the change triggers evaluated.
fn plan(
    loaded: &LoadedApp,
    entity: &EntityDefinition,
    row: RecordRow,
    patch: Map<String, Value>,
    actor: &Principal,
) -> Plan {
    let Ok((_, validator)) = loaded.entity(entity.id.as_str()) else {
        return Plan::Refused {
            id: row.id,
            issues: Vec::new(),
        };
    };
    let locale = Locale::En;
    let before = to_api(entity, &row.data.0);
    let mut named = before.clone();
    merge_patch(&mut named, &patch);
    Runtime::fill_system_fields(entity, &mut named, actor, false);
    let changed: Vec<&str> = patch
        .keys()
        .filter(|k| before.get(*k) != named.get(*k))
        .map(String::as_str)
        .collect();
    let mut issues = validator.check_writable(&patch, locale);
    issues.extend(validator.prepare(&mut named, &changed, locale));
    let mut runs = Vec::new();
    if issues.is_empty() {
        match Runtime::before_save(loaded, entity, &mut named, Some(&before), false, locale) {
            Ok(done) => {
                let written: Vec<String> = done
                    .iter()
                    .flat_map(|(_, e)| e.writes.keys().cloned())
                    .collect();
                let written: Vec<&str> = written.iter().map(String::as_str).collect();
                issues.extend(validator.prepare(&mut named, &written, locale));
                runs.extend(
                    done.iter()
                        .map(|(us, e)| logged_run("before_save", &row.id, *us, e)),
                );
            }
            Err(refused) => issues = refused,
        }
    }
    if !issues.is_empty() {
        return Plan::Refused { id: row.id, issues };
    }
    let same = |field: &trellis_model::FieldDefinition| {
        matches!(field.kind, FieldKind::UpdatedAt | FieldKind::UpdatedBy)
            || match (
                named.get(field.name.as_str()),
                before.get(field.name.as_str()),
            ) {
                (Some(now), Some(was)) => trellis_form::records::same_value(now, was),
                (now, was) => now == was,
            }
    };
    if entity.fields.iter().all(same) {
        return Plan::Unchanged;
    }
    if unique_values(entity, &named) != unique_values(entity, &before) {
        return Plan::Alone { id: row.id, patch };
    }
    // The after-save rules this change triggers: committed with it unless one writes fields.
    let mut after_runs = Vec::new();
    let mut actions = Vec::new();
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
                    actions.extend(evaluation.actions.iter().cloned());
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
                    outcome: "null".into(),
                    error: Some(failure.to_string()),
                    duration_us: 0,
                });
            }
        }
    }
    if cascades {
        actions.clear();
    } else {
        runs.extend(after_runs);
    }
    // The search text only when a searchable field changed (a nightly write-back changes scores):
    // an update whose text does not change never writes it.
    let (record, search_changed) = update_write(entity, &named, &before, &row.data.0);
    Plan::Ready(Box::new(Ready {
        row,
        patch,
        before,
        named,
        record,
        search_changed,
        runs,
        actions,
        cascades,
    }))
}

/// An update's follow-up after the shared commit.
struct AfterCommit {
    id: String,
    patch: Map<String, Value>,
    before: Map<String, Value>,
    /// Whether its after-save rules write fields (the cascading `after_save` runs).
    cascades: bool,
}

/// A bulk update planned and checked, ready to commit ([`Runtime::commit_system_updates`]).
pub(crate) struct PreparedBulk {
    counts: BulkCounts,
    /// Records to update one at a time through `update_record` (after the bulk commit).
    alone: Vec<(String, Map<String, Value>)>,
    /// Per update, what happens after the commit.
    planned: Vec<AfterCommit>,
    updates: Vec<BulkUpdate>,
    runs: Vec<NewRuleRun>,
    /// Microseconds spent planning, and checking relations and side effects.
    plan_us: u128,
    check_us: u128,
}

impl Runtime {
    /// Prepare `changes` (each a live record as read and a merge patch of fields by name) as
    /// `actor`, a system principal (no access checks; see the module docs for the guarantees): plan
    /// every change (on every core), check relations and resolve the side effects — reads only,
    /// nothing written. A caller writing page after page prepares the next page while the previous
    /// one commits (on a task of its own: [`Runtime::spawn_system_commit`]).
    pub(crate) async fn prepare_system_updates(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        changes: Vec<SystemChange>,
        actor: &Principal,
    ) -> Result<PreparedBulk, RuntimeError> {
        let locale = Locale::En;
        let mut counts = BulkCounts::default();
        let started = Instant::now();
        let expected = changes.len();
        // Validation and rules are pure: plan on every core, off the async workers.
        let shared: Arc<LoadedApp> = self.loaded_app_version(&loaded.id, loaded.version).await?;
        let entity_id = entity.id.to_string();
        let owned_actor = actor.clone();
        let plans = tokio::task::spawn_blocking(move || {
            let Ok((entity, _)) = shared.entity(&entity_id) else {
                return Vec::new();
            };
            crate::parallel::map_on_every_core(changes, &|(row, patch)| {
                plan(&shared, entity, row, patch, &owned_actor)
            })
        })
        .await
        .map_err(|e| RuntimeError::Internal(format!("planning a bulk update: {e}")))?;
        if plans.len() != expected {
            return Err(RuntimeError::Internal(
                "a bulk update stopped while planning".into(),
            ));
        }
        let plan_us = started.elapsed().as_micros();
        let mut alone: Vec<(String, Map<String, Value>)> = Vec::new();
        let mut ready = Vec::with_capacity(plans.len());
        for plan in plans {
            match plan {
                Plan::Refused { id, issues } => {
                    counts.failed += 1;
                    tracing::warn!(record = %id, error = %describe(&issues), "bulk update refused a record");
                }
                Plan::Alone { id, patch } => alone.push((id, patch)),
                Plan::Unchanged => {}
                Plan::Ready(change) => ready.push(change),
            }
        }
        // Relations of every record, one query per relation field.
        let problems = {
            let records: Vec<super::RelationCheck<'_>> =
                ready.iter().map(|r| (&r.named, Some(&r.before))).collect();
            self.check_relations(loaded, entity, &records, locale)
                .await?
        };
        let mut planned = Vec::with_capacity(ready.len());
        let mut updates = Vec::with_capacity(ready.len());
        let mut runs = Vec::new();
        for (change, issues) in ready.into_iter().zip(problems) {
            let Ready {
                row,
                patch,
                before,
                named,
                record,
                search_changed,
                runs: record_runs,
                actions,
                cascades,
            } = *change;
            if !issues.is_empty() {
                counts.failed += 1;
                tracing::warn!(record = %row.id, error = %describe(&issues), "bulk update refused a record");
                continue;
            }
            runs.extend(record_runs);
            let mut side = TransitionWrites {
                app: loaded.id.clone(),
                entity: entity.id.to_string(),
                ..TransitionWrites::default()
            };
            for action in &actions {
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
            let has_work =
                !side.notifications.is_empty() || !side.outbox.is_empty() || !side.tasks.is_empty();
            planned.push(AfterCommit {
                id: row.id.clone(),
                patch,
                before,
                cascades,
            });
            updates.push(BulkUpdate {
                current: row,
                record,
                search_changed,
                side: has_work.then_some(side),
            });
        }
        Ok(PreparedBulk {
            counts,
            alone,
            planned,
            updates,
            runs,
            plan_us,
            check_us: started.elapsed().as_micros() - plan_us,
        })
    }

    /// Commit `prepared` (if any) on a task of its own, for a caller that prepares the next page
    /// meanwhile: the SQLite transaction runs synchronously on the thread polling it, so polled in
    /// the caller's task it would hold up the next page's read and planning until it finished.
    pub(crate) fn spawn_system_commit(
        &self,
        loaded: &Arc<LoadedApp>,
        entity: &EntityDefinition,
        prepared: Option<PreparedBulk>,
        actor: &Principal,
    ) -> impl Future<Output = Result<BulkCounts, RuntimeError>> + use<> {
        let task = prepared.map(|prepared| {
            let (runtime, loaded, actor) = (self.clone(), loaded.clone(), actor.clone());
            let entity_id = entity.id.to_string();
            tokio::spawn(async move {
                let (entity, _) = loaded.entity(&entity_id)?;
                runtime
                    .commit_system_updates(&loaded, entity, prepared, &actor)
                    .await
            })
        });
        async move {
            match task {
                Some(task) => task.await.map_err(|e| {
                    RuntimeError::Internal(format!("committing a bulk update: {e}"))
                })?,
                None => Ok(BulkCounts::default()),
            }
        }
    }

    /// Commit what [`Runtime::prepare_system_updates`] prepared: the shared transaction, then the
    /// cascading after-saves and the records that go alone.
    pub(crate) async fn commit_system_updates(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        prepared: PreparedBulk,
        actor: &Principal,
    ) -> Result<BulkCounts, RuntimeError> {
        let locale = Locale::En;
        let started = Instant::now();
        let mut phases = [0u128; 2];
        let PreparedBulk {
            mut counts,
            mut alone,
            planned,
            updates,
            runs,
            plan_us,
            check_us,
        } = prepared;
        let cascaded = planned.iter().filter(|after| after.cascades).count();
        if !updates.is_empty() {
            let written = self
                .store()
                .write_records_bulk(
                    &loaded.id,
                    loaded.version,
                    Some(&actor.user_id),
                    &updates,
                    &runs,
                )
                .await?;
            phases[0] = started.elapsed().as_micros();
            for ((after, applied), update) in planned
                .into_iter()
                .zip(written.applied.iter().copied())
                .zip(updates)
            {
                let AfterCommit {
                    id,
                    patch,
                    before,
                    cascades,
                } = after;
                if !applied {
                    alone.push((id, patch));
                    continue;
                }
                counts.changed += 1;
                if cascades {
                    let row = written.row_of(update, Some(&actor.user_id));
                    self.after_save(loaded, entity, row, Some(before), &actor.user_id)
                        .await?;
                }
            }
        }
        phases[1] = started.elapsed().as_micros();
        let singles = alone.len();
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
        tracing::debug!(
            entity = %entity.id,
            changed = counts.changed,
            failed = counts.failed,
            cascaded,
            singles,
            plan_us,
            check_us,
            store_us = phases[0],
            cascade_us = phases[1].saturating_sub(phases[0]),
            commit_us = started.elapsed().as_micros(),
            "bulk update"
        );
        Ok(counts)
    }
}
