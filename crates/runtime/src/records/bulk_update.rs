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
use trellis_form::records::{merge_patch, storage_json};
use trellis_form::{FieldIssue, Locale};
use trellis_model::{EntityDefinition, FieldKind};
use trellis_rules::{RuleAction, evaluate};
use trellis_store::flows::TransitionWrites;
use trellis_store::{BulkUpdate, NewRecord, NewRuleRun, RecordRow};

use super::unique_values;
use crate::app_cache::LoadedApp;
use crate::rules::{outcome_text, triggered_rules};
use crate::{Principal, Runtime, RuntimeError};

/// One change of a bulk update: the live record as read (with its document's text, when the read
/// had it; then its `data` may be left empty, see [`super::take_apart`]) and what to change.
pub(crate) type SystemChange = (RecordRow, Option<String>, Change);

/// What a bulk update changes of one record: the values a write-back wants its `fields` (by name)
/// to hold, in the same order. The merge patch is those that differ from the record's current
/// values, found while planning (on every core, where the record's stored text is parsed anyway);
/// a record already holding them all is left alone.
pub(crate) struct Change {
    pub fields: Arc<[String]>,
    pub values: Vec<Value>,
}

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

/// A change ready for the shared transaction. Planning keeps only what the steps after it need,
/// and frees the rest on the planning thread that allocated it (a page's records freed on another
/// thread cost the commit task ~7 µs each).
struct Ready {
    /// The record as read, its values moved out (`current_document` holds them as text).
    row: RecordRow,
    current_document: String,
    patch: Map<String, Value>,
    /// The values before the change (by name): only when the change sets references (the relation
    /// check) or its after-save cascades.
    before: Option<Map<String, Value>>,
    /// The values after the change (by name): only when the change sets references or a matched
    /// rule has follow-up work.
    named: Option<Map<String, Value>>,
    /// Whether the change sets references (relation fields differ): only then are they checked.
    sets_references: bool,
    /// The new stored data, as text only (`data` left empty).
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

pub(crate) fn logged_run(
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
    document: Option<String>,
    change: Change,
    actor: &Principal,
) -> Plan {
    let Ok((_, validator)) = loaded.entity(entity.id.as_str()) else {
        return Plan::Refused {
            id: row.id,
            issues: Vec::new(),
        };
    };
    let locale = Locale::En;
    let mut row = row;
    // The stored values move into the named form (parsed straight into it when the read kept the
    // text); history's `before` keeps them as text (as read, or written when the read parsed).
    let ((before, hidden), document) = match super::take_apart(entity, &mut row, document) {
        Ok(parts) => parts,
        Err(message) => {
            return Plan::Refused {
                issues: vec![FieldIssue {
                    pointer: String::new(),
                    code: "unreadable",
                    message,
                }],
                id: row.id,
            };
        }
    };
    let patch: Map<String, Value> = change
        .fields
        .iter()
        .zip(change.values)
        .filter(|(field, value)| {
            !trellis_form::records::same_value(
                before.get(field.as_str()).unwrap_or(&Value::Null),
                value,
            )
        })
        .map(|(field, value)| (field.clone(), value))
        .collect();
    if patch.is_empty() {
        return Plan::Unchanged;
    }
    let current_document = document.unwrap_or_else(|| storage_json(entity, &before, &hidden));
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
                issues.extend(done.recheck(validator, &mut named, locale));
                runs.extend(
                    done.runs
                        .iter()
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
    let uniques = unique_values(entity, &named);
    if uniques != unique_values(entity, &before) {
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
                // Writing the value a field already holds is no change (`after_save` drops such
                // writes): a tier rule that keeps the tier does not cascade.
                if evaluation.matched && changes_something(&evaluation.writes, &named) {
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
    let (search_text, search_changed) = super::changed_search_text(entity, &named, &before);
    let record = NewRecord {
        data: Map::new(),
        uniques,
        search_text,
        data_json: Some(storage_json(entity, &named, &hidden)),
    };
    let sets_references = entity
        .fields
        .iter()
        .filter(|f| f.kind.is_relation())
        .any(|f| named.get(f.name.as_str()) != before.get(f.name.as_str()));
    Plan::Ready(Box::new(Ready {
        row,
        current_document,
        patch,
        before: (sets_references || cascades).then_some(before),
        named: (sets_references || !actions.is_empty()).then_some(named),
        sets_references,
        record,
        search_changed,
        runs,
        actions,
        cascades,
    }))
}

/// Whether rule `writes` change a value of `record` (numbers compared by value).
pub(crate) fn changes_something(writes: &Map<String, Value>, record: &Map<String, Value>) -> bool {
    writes.iter().any(|(name, value)| {
        !trellis_form::records::same_value(record.get(name).unwrap_or(&Value::Null), value)
    })
}

/// An update's follow-up after the shared commit.
struct AfterCommit {
    id: String,
    patch: Map<String, Value>,
    /// The values before the change, when it cascades.
    before: Option<Map<String, Value>>,
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
            crate::parallel::map_on_every_core(changes, &|(row, document, change)| {
                plan(&shared, entity, row, document, change, &owned_actor)
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
        // Relations of the records whose change sets references, one query per relation field.
        let mut problems = vec![Vec::new(); ready.len()];
        {
            let setting: Vec<usize> = (0..ready.len())
                .filter(|&i| ready[i].sets_references)
                .collect();
            let empty = Map::new();
            let records: Vec<super::RelationCheck<'_>> = setting
                .iter()
                .map(|&i| {
                    let r = &ready[i];
                    (r.named.as_ref().unwrap_or(&empty), r.before.as_ref())
                })
                .collect();
            if !records.is_empty() {
                let found = self
                    .check_relations(loaded, entity, &records, locale)
                    .await?;
                for (i, issues) in setting.into_iter().zip(found) {
                    problems[i] = issues;
                }
            }
        }
        let mut planned = Vec::with_capacity(ready.len());
        let mut updates = Vec::with_capacity(ready.len());
        let mut runs = Vec::new();
        for (change, issues) in ready.into_iter().zip(problems) {
            let Ready {
                row,
                current_document,
                patch,
                before,
                named,
                sets_references: _,
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
            // Follow-up work only for records whose matched rules act (most nightly changes
            // have none).
            let mut side = None;
            for action in &actions {
                let side = side.get_or_insert_with(|| TransitionWrites {
                    app: loaded.id.clone(),
                    entity: entity.id.to_string(),
                    ..TransitionWrites::default()
                });
                self.side_effect(
                    loaded,
                    entity,
                    &row.id,
                    named.as_ref().unwrap_or(&Map::new()),
                    action,
                    &actor.user_id,
                    side,
                )
                .await?;
            }
            let side = side.filter(|side| {
                !side.notifications.is_empty() || !side.outbox.is_empty() || !side.tasks.is_empty()
            });
            planned.push(AfterCommit {
                id: row.id.clone(),
                patch,
                before: before.filter(|_| cascades),
                cascades,
            });
            updates.push(BulkUpdate {
                current: row,
                current_document: Some(current_document),
                record,
                search_changed,
                side,
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
    /// cascading after-saves and the records that go alone. The shared transaction does not wait
    /// for the disk (`Store::write_records_bulk_unsynced`): the caller syncs the log
    /// (`Store::sync_log`) before it reports the write-back done.
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
        let mut cascading = Vec::with_capacity(cascaded);
        if !updates.is_empty() {
            let written = self
                .store()
                .write_records_bulk_unsynced(
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
                if let (true, Some(before)) = (cascades, before) {
                    cascading.push((written.row_of(update, Some(&actor.user_id)), Some(before)));
                }
            }
        }
        // The after-save rules that write fields: every cascading record of the page together.
        self.after_save_bulk(loaded, entity, cascading, &actor.user_id)
            .await?;
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
