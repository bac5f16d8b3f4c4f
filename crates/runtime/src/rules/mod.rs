//! Running rules: before-save rules set fields or reject a change (inside the write); after-save rules
//! (`record_created`, `record_updated` with a changed-field filter) run in a deterministic order and
//! commit all their writes and side effects in one transaction, cascading through rules that react to
//! those writes up to [`trellis_rules::MAX_DEPTH`]. Dry runs (`test`) persist nothing; batch runs apply
//! a rule to every matching record; every real run is logged.

use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};
use trellis_form::records::to_api;
use trellis_form::{FieldIssue, Locale};
use trellis_model::{Action, EntityDefinition};
use trellis_rules::{CompiledRule, Evaluation, RuleAction, Trigger, evaluate, in_order};
use trellis_store::flows::TransitionWrites;
use trellis_store::{NewRecord, RecordRow};

mod apply;
pub use apply::{MAX_APPLIED_TOGETHER, ReportStep};
pub(crate) mod apply_candidates;
mod batch;
mod cascade;
mod inbound;
pub(crate) mod prefilter;
mod report_rows;
mod schedule;

use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

/// What a batch run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchOutcome {
    pub processed: usize,
    pub matched: usize,
    pub changed: usize,
    pub failed: usize,
    /// Write-backs (`apply_report`): each report run, with its rows and time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ReportStep>,
    /// Write-backs: the time spent writing the reports' values after they ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_back_ms: Option<u64>,
}

/// What the after-save rules of one record did ([`Runtime::run_after_save_rules`]).
pub(crate) struct AfterSaveRuns {
    /// The fields they change (writes of the value a field holds left out).
    pub writes: Map<String, Value>,
    /// Their follow-up work (notifications, outbox entries, tasks).
    pub side: TransitionWrites,
    /// Each rule that ran, with its duration in microseconds.
    pub evaluated: Vec<(i64, Evaluation)>,
    /// Rules that failed, with why.
    pub failed: Vec<(String, String)>,
}

fn locale_tag(locale: Locale) -> &'static str {
    match locale {
        Locale::ZhCn => "zh-CN",
        Locale::En => "en",
    }
}

/// A run's outcome as logged: what it wrote, rejected and did (each only when there is something),
/// and the trace's values. The trace's sources and the actions' repeated in the trace are left out:
/// the rule's definition at the run's app version holds them, and a nightly run logs millions of
/// runs (a condition that did not hold logs `{"trace":[{"step":"condition","value":false}]}`).
/// Written as JSON text straight from the evaluation (a bulk write-back logs thousands of runs per
/// page; this runs on the planning threads).
pub(crate) fn outcome_text(evaluation: &Evaluation) -> String {
    // Most runs of a nightly: a condition that did not hold, the same text every time (written
    // once, by the same serializer).
    static CONDITION_FALSE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let [step] = evaluation.trace.as_slice()
        && !evaluation.matched
        && step.step == "condition"
        && step.value == Value::Bool(false)
        && evaluation.writes.is_empty()
        && evaluation.reject.is_none()
        && evaluation.actions.is_empty()
    {
        return CONDITION_FALSE
            .get_or_init(|| written_outcome(evaluation))
            .clone();
    }
    written_outcome(evaluation)
}

/// [`outcome_text`], serialized.
fn written_outcome(evaluation: &Evaluation) -> String {
    #[derive(serde::Serialize)]
    struct Step<'a> {
        step: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a Value>,
    }
    #[derive(serde::Serialize)]
    struct Outcome<'a> {
        #[serde(skip_serializing_if = "Map::is_empty")]
        writes: &'a Map<String, Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        reject: Option<&'a trellis_model::LocalizedText>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        actions: &'a [trellis_rules::RuleAction],
        trace: Vec<Step<'a>>,
    }
    let outcome = Outcome {
        writes: &evaluation.writes,
        reject: evaluation.reject.as_ref(),
        actions: &evaluation.actions,
        trace: evaluation
            .trace
            .iter()
            .map(|step| Step {
                step: &step.step,
                value: (!step.step.starts_with("action ")).then_some(&step.value),
            })
            .collect(),
    };
    serde_json::to_string(&outcome).unwrap_or_else(|_| "null".into())
}

/// A rule's `writes` applied to a record (`named`, stored as `stored`), validated: the record to store
/// and whether its unique values change — or why the writes are refused.
pub(crate) fn rule_write(
    loaded: &LoadedApp,
    entity: &trellis_model::EntityDefinition,
    named: &Map<String, Value>,
    writes: &Map<String, Value>,
    stored: &Map<String, Value>,
) -> Result<Result<(NewRecord, bool), String>, RuntimeError> {
    let next = match rule_next(loaded, entity, named, writes)? {
        Ok(next) => next,
        Err(reason) => return Ok(Err(reason)),
    };
    let uniques_change = crate::records::unique_values_of(entity, &next)
        != crate::records::unique_values_of(entity, named);
    Ok(Ok((
        crate::records::record_write(entity, &next, Some(stored)),
        uniques_change,
    )))
}

/// The record (fields by name) after a rule's `writes`, validated with its computed fields
/// recomputed — or why the writes are not valid.
pub(crate) fn rule_next(
    loaded: &LoadedApp,
    entity: &trellis_model::EntityDefinition,
    named: &Map<String, Value>,
    writes: &Map<String, Value>,
) -> Result<Result<Map<String, Value>, String>, RuntimeError> {
    let (_, validator) = loaded.entity(entity.id.as_str())?;
    let mut next = named.clone();
    for (name, value) in writes {
        next.insert(name.clone(), value.clone());
    }
    let keys: Vec<&str> = writes.keys().map(String::as_str).collect();
    let issues = validator.prepare(&mut next, &keys, trellis_form::Locale::En);
    if !issues.is_empty() {
        let message = issues
            .iter()
            .map(|i| format!("{}: {}", i.pointer, i.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Ok(Err(format!("its writes are not valid: {message}")));
    }
    Ok(Ok(next))
}

/// The after-save rules of `entity` that a save triggers, in execution order: `record_created` for a
/// new record (`before` is `None`), `record_updated` when one of its fields changed, and the flow
/// state entered and left.
pub(crate) fn triggered_rules<'a>(
    loaded: &'a LoadedApp,
    entity: &EntityDefinition,
    named: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Vec<&'a CompiledRule> {
    let created = before.is_none();
    // Whether `field` changed: asked only for the fields rules watch (not a set of every field).
    let changed = |field: &str| before.is_none_or(|b| b.get(field) != named.get(field));
    // The state a flow's record is in now and was in before this change.
    fn state_in<'r>(
        loaded: &LoadedApp,
        flow: &str,
        record: Option<&'r Map<String, Value>>,
    ) -> Option<&'r str> {
        let field = loaded.flows.get(flow)?.definition.state_field.as_str();
        record?.get(field)?.as_str()
    }
    let state_of = |flow: &str, record| state_in(loaded, flow, record);
    in_order(loaded.rules.values(), entity.id.as_str(), |t| match t {
        Trigger::RecordCreated {} => created,
        Trigger::RecordUpdated { fields } => {
            !created && (fields.is_empty() || fields.iter().any(|f| changed(f.as_str())))
        }
        Trigger::StateEntered { flow, state } => {
            let now = state_of(flow.as_str(), Some(named));
            let was = state_of(flow.as_str(), before);
            now == Some(state.as_str()) && now != was
        }
        Trigger::StateLeft { flow, state } => {
            let now = state_of(flow.as_str(), Some(named));
            let was = state_of(flow.as_str(), before);
            !created && was == Some(state.as_str()) && now != was
        }
        _ => false,
    })
}

/// What the before-save rules of a save did.
pub(crate) struct BeforeSaveDone {
    /// Each rule's run: how long it took (µs) and what it saw and did.
    pub runs: Vec<(i64, Evaluation)>,
    /// The fields whose values a rule changed (writing the value a field already holds is no
    /// change).
    pub changed: Vec<String>,
}

impl BeforeSaveDone {
    /// The save's checks again — computed fields, validation, conditions — when a rule changed a
    /// field; when none did, the record is the one the save already checked, and nothing is
    /// re-checked.
    pub(crate) fn recheck(
        &self,
        validator: &trellis_form::EntityValidator,
        named: &mut Map<String, Value>,
        locale: Locale,
    ) -> Vec<FieldIssue> {
        if self.changed.is_empty() {
            return Vec::new();
        }
        let changed: Vec<&str> = self.changed.iter().map(String::as_str).collect();
        validator.prepare(named, &changed, locale)
    }
}

impl Runtime {
    /// Run the before-save rules of `entity` on `named` (fields by name), applying their writes.
    /// A rejection or a failing rule is a field issue naming the rule. Pure: no IO.
    pub(crate) fn before_save(
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        named: &mut Map<String, Value>,
        before: Option<&Map<String, Value>>,
        creating: bool,
        locale: Locale,
    ) -> Result<BeforeSaveDone, Vec<FieldIssue>> {
        let kind = if creating {
            trellis_rules::SaveKind::Create
        } else {
            trellis_rules::SaveKind::Update
        };
        let rules = in_order(
            loaded.rules.values(),
            entity.id.as_str(),
            |t| matches!(t, Trigger::BeforeSave { on } if on.is_empty() || on.contains(&kind)),
        );
        let mut done = BeforeSaveDone {
            runs: Vec::new(),
            changed: Vec::new(),
        };
        for rule in rules {
            let started = Instant::now();
            let evaluation = evaluate(rule, named, before).map_err(|failure| {
                vec![FieldIssue {
                    pointer: String::new(),
                    code: "rule_failed",
                    message: failure.to_string(),
                }]
            })?;
            if let Some(message) = &evaluation.reject {
                let text = message
                    .get(locale_tag(locale))
                    .unwrap_or("the change was refused");
                return Err(vec![FieldIssue {
                    pointer: String::new(),
                    code: "rule_rejected",
                    message: format!("{text} (rule '{}')", rule.id()),
                }]);
            }
            for (name, value) in &evaluation.writes {
                if named.get(name) != Some(value) {
                    named.insert(name.clone(), value.clone());
                    if !done.changed.contains(name) {
                        done.changed.push(name.clone());
                    }
                }
            }
            done.runs
                .push((started.elapsed().as_micros() as i64, evaluation));
        }
        Ok(done)
    }

    /// Log rule runs (matched or not) of one trigger.
    pub(crate) async fn log_runs(
        &self,
        loaded: &LoadedApp,
        trigger: &str,
        record_id: Option<&str>,
        runs: &[(i64, Evaluation)],
    ) -> Result<(), RuntimeError> {
        let runs: Vec<trellis_store::NewRuleRun> = runs
            .iter()
            .map(|(duration_us, evaluation)| trellis_store::NewRuleRun {
                rule: evaluation.rule.clone(),
                trigger: trigger.to_owned(),
                record_id: record_id.map(str::to_owned),
                matched: evaluation.matched,
                outcome: outcome_text(evaluation),
                error: None,
                duration_us: *duration_us,
            })
            .collect();
        self.store()
            .log_rule_runs(&loaded.id, loaded.version, &runs)
            .await?;
        Ok(())
    }

    async fn log_failure(
        &self,
        loaded: &LoadedApp,
        rule: &str,
        trigger: &str,
        record_id: &str,
        error: &str,
    ) -> Result<(), RuntimeError> {
        tracing::warn!(app = %loaded.id, rule, trigger, record = record_id, error, "rule failed");
        self.store()
            .log_rule_run(
                &loaded.id,
                rule,
                loaded.version,
                trigger,
                Some(record_id),
                false,
                &Value::Null,
                Some(error),
                0,
            )
            .await?;
        Ok(())
    }

    /// Run after-save rules for `row` (just created, or updated from `before`), cascading through
    /// rules that react to their writes. Failures are logged with the rule's id; committed data stays.
    pub(crate) async fn after_save(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        mut row: RecordRow,
        mut before: Option<Map<String, Value>>,
        actor: &str,
    ) -> Result<RecordRow, RuntimeError> {
        for depth in 0..=trellis_rules::MAX_DEPTH {
            let named = to_api(entity, &row.data.0);
            let created = before.is_none();
            let rules = triggered_rules(loaded, entity, &named, before.as_ref());
            if rules.is_empty() {
                return Ok(row);
            }
            let trigger = if created {
                "record_created"
            } else {
                "record_updated"
            };
            if depth == trellis_rules::MAX_DEPTH {
                for rule in rules {
                    self.log_failure(
                        loaded,
                        rule.id(),
                        trigger,
                        &row.id,
                        &format!(
                            "stopped: rules triggered rules {depth} times in a row (a cycle?)"
                        ),
                    )
                    .await?;
                }
                return Ok(row);
            }
            let AfterSaveRuns {
                writes,
                side,
                evaluated: runs,
                failed,
            } = self
                .run_after_save_rules(
                    loaded,
                    entity,
                    &row.id,
                    rules,
                    &named,
                    before.as_ref(),
                    actor,
                )
                .await?;
            for (rule, failure) in failed {
                self.log_failure(loaded, &rule, trigger, &row.id, &failure)
                    .await?;
            }
            self.log_runs(loaded, trigger, Some(&row.id), &runs).await?;
            if writes.is_empty() {
                if !side.notifications.is_empty()
                    || !side.outbox.is_empty()
                    || !side.tasks.is_empty()
                {
                    self.store()
                        .start_flow_state(&row.id, Some(actor), &side)
                        .await?;
                }
                return Ok(row);
            }
            // All writes and side effects of this trigger commit together (or none of them).
            match self
                .commit_rule_writes(loaded, entity, &row, &named, &writes, &side, actor)
                .await?
            {
                Ok(updated) => {
                    before = Some(named);
                    row = updated;
                }
                Err(reason) => {
                    for (_, evaluation) in runs.iter().filter(|(_, e)| !e.writes.is_empty()) {
                        self.log_failure(loaded, &evaluation.rule, trigger, &row.id, &reason)
                            .await?;
                    }
                    return Ok(row);
                }
            }
        }
        Ok(row)
    }

    /// Run the after-save `rules` triggered on record `record_id` (fields `named`) in order, as
    /// [`Runtime::after_save`] does: each sees the writes of those before it; matched rules'
    /// actions become side effects. Writes of the value a field already holds are left out (no
    /// change: no new version, no history entry, nothing triggered — a tier rule keeping the tier).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn run_after_save_rules(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        record_id: &str,
        rules: Vec<&CompiledRule>,
        named: &Map<String, Value>,
        before: Option<&Map<String, Value>>,
        actor: &str,
    ) -> Result<AfterSaveRuns, RuntimeError> {
        let mut working = named.clone();
        let mut done = AfterSaveRuns {
            writes: Map::new(),
            side: TransitionWrites {
                app: loaded.id.clone(),
                entity: entity.id.to_string(),
                ..TransitionWrites::default()
            },
            evaluated: Vec::new(),
            failed: Vec::new(),
        };
        for rule in rules {
            let started = Instant::now();
            match evaluate(rule, &working, before) {
                Ok(evaluation) => {
                    if evaluation.matched {
                        for (name, value) in &evaluation.writes {
                            working.insert(name.clone(), value.clone());
                            done.writes.insert(name.clone(), value.clone());
                        }
                        for action in &evaluation.actions {
                            self.side_effect(
                                loaded,
                                entity,
                                record_id,
                                &working,
                                action,
                                actor,
                                &mut done.side,
                            )
                            .await?;
                        }
                    }
                    done.evaluated
                        .push((started.elapsed().as_micros() as i64, evaluation));
                }
                Err(failure) => done
                    .failed
                    .push((rule.id().to_owned(), failure.to_string())),
            }
        }
        done.writes.retain(|name, value| {
            !trellis_form::records::same_value(named.get(name).unwrap_or(&Value::Null), value)
        });
        Ok(done)
    }

    /// Validate rule `writes` on top of `named` and store them with the side effects `side` in one
    /// transaction. The inner error says why the writes could not be stored (logged by the caller).
    #[allow(clippy::too_many_arguments)]
    async fn commit_rule_writes(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        row: &RecordRow,
        named: &Map<String, Value>,
        writes: &Map<String, Value>,
        side: &TransitionWrites,
        actor: &str,
    ) -> Result<Result<RecordRow, String>, RuntimeError> {
        let record = match rule_write(loaded, entity, named, writes, &row.data.0)? {
            Ok((record, _)) => record,
            Err(reason) => return Ok(Err(reason)),
        };
        Ok(self
            .store()
            .update_record_with(
                &loaded.id,
                &entity.uid,
                &row.id,
                row.version,
                &record,
                Some(actor),
                Some(side),
            )
            .await
            .map_err(|error| format!("could not commit: {error}")))
    }

    /// Run `record_deleted` rules for a record just deleted: their condition sees the record as it
    /// was; their follow-up actions (notifications, tasks, outbox entries) commit together.
    pub(crate) async fn after_delete(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        row: &RecordRow,
        actor: &str,
    ) -> Result<(), RuntimeError> {
        let rules: Vec<&CompiledRule> = in_order(loaded.rules.values(), entity.id.as_str(), |t| {
            matches!(t, Trigger::RecordDeleted {})
        });
        if rules.is_empty() {
            return Ok(());
        }
        let named = to_api(entity, &row.data.0);
        let mut side = TransitionWrites {
            app: loaded.id.clone(),
            entity: entity.id.to_string(),
            ..TransitionWrites::default()
        };
        let mut runs = Vec::new();
        for rule in rules {
            let started = Instant::now();
            match evaluate(rule, &named, None) {
                Ok(evaluation) => {
                    if evaluation.matched {
                        for action in &evaluation.actions {
                            self.side_effect(
                                loaded, entity, &row.id, &named, action, actor, &mut side,
                            )
                            .await?;
                        }
                    }
                    runs.push((started.elapsed().as_micros() as i64, evaluation));
                }
                Err(failure) => {
                    self.log_failure(
                        loaded,
                        rule.id(),
                        "record_deleted",
                        &row.id,
                        &failure.to_string(),
                    )
                    .await?
                }
            }
        }
        self.log_runs(loaded, "record_deleted", Some(&row.id), &runs)
            .await?;
        if !side.notifications.is_empty() || !side.outbox.is_empty() || !side.tasks.is_empty() {
            self.store()
                .start_flow_state(&row.id, Some(actor), &side)
                .await?;
        }
        Ok(())
    }

    /// Turn a follow-up action into a notification or an outbox entry of `side`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn side_effect(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        record_id: &str,
        record: &Map<String, Value>,
        action: &RuleAction,
        actor: &str,
        side: &mut TransitionWrites,
    ) -> Result<(), RuntimeError> {
        match action {
            RuleAction::Notify { to, message } => {
                for user in self.resolve_assignee(&loaded.id, to, record).await? {
                    let message = json!(message);
                    side.outbox.extend(self.mail_entry(
                        &user,
                        &message,
                        entity.id.as_str(),
                        record_id,
                    ));
                    side.notifications.push((user, message));
                }
            }
            RuleAction::CreateTask(task) => {
                let now = chrono::Utc::now();
                for user in self
                    .resolve_assignee(&loaded.id, &task.assignee, record)
                    .await?
                {
                    side.tasks.push(trellis_store::flows::NewTask {
                        kind: "task",
                        title: json!(task.title),
                        assignee: user,
                        outcomes: json!(task.outcomes),
                        due_at: crate::flows::seconds(task.due_in.as_deref()).map(|d| now + d),
                        escalate_to: task.escalate_to.as_ref().map(|a| json!(a)),
                    });
                }
            }
            RuleAction::Webhook(_)
            | RuleAction::CreateRecord(_)
            | RuleAction::FireEvent(_)
            | RuleAction::UpdateRecords(_) => {
                side.outbox.push((
                    action.name().to_owned(),
                    json!({"action": action, "entity": entity.id, "record_id": record_id, "flow": Value::Null, "event": Value::Null, "actor": actor}),
                ));
            }
            RuleAction::Set(_) | RuleAction::Reject(_) | RuleAction::ApplyReport(_) => {}
        }
        Ok(())
    }

    fn rule<'a>(loaded: &'a LoadedApp, id: &str) -> Result<&'a CompiledRule, RuntimeError> {
        loaded
            .rules
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound(format!("rule '{id}' in app '{}'", loaded.id)))
    }

    /// Dry run (`POST …/rules/{rule}/test`): what the rule would do with `record`, with a trace of
    /// every value. Nothing is persisted.
    pub async fn test_rule(
        &self,
        actor: &Principal,
        app: &str,
        rule_id: &str,
        record: &Map<String, Value>,
        before: Option<&Map<String, Value>>,
    ) -> Result<Evaluation, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let rule = Self::rule(&loaded, rule_id)?;
        let (entity, _) = loaded.entity(rule.definition.entity.as_str())?;
        self.check(actor, &loaded, entity)
            .await?
            .require(Action::Read)?;
        evaluate(rule, record, before).map_err(|failure| {
            RuntimeError::InvalidRecord(vec![FieldIssue {
                pointer: "/record".into(),
                code: "rule_failed",
                message: failure.to_string(),
            }])
        })
    }

    /// A rule's run log, newest first (app managers).
    pub async fn rule_runs(
        &self,
        actor: &Principal,
        app: &str,
        rule_id: &str,
    ) -> Result<Vec<trellis_store::flows::RuleRunRow>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_app_manager(actor, &loaded).await?;
        Self::rule(&loaded, rule_id)?;
        Ok(self.store().rule_runs(&loaded.id, rule_id, 500).await?)
    }
}
