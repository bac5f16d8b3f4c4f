//! Running rules: before-save rules set fields or reject a change (inside the write); after-save rules
//! (`record_created`, `record_updated` with a changed-field filter) run in a deterministic order and
//! commit all their writes and side effects in one transaction, cascading through rules that react to
//! those writes up to [`trellis_rules::MAX_DEPTH`]. Dry runs (`test`) persist nothing; batch runs apply
//! a rule to every matching record; every real run is logged.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Map, Value, json};
use trellis_form::records::to_api;
use trellis_form::{FieldIssue, Locale};
use trellis_model::{Action, EntityDefinition};
use trellis_rules::{CompiledRule, Evaluation, RuleAction, Trigger, evaluate, in_order};
use trellis_store::RecordRow;
use trellis_store::flows::TransitionWrites;

use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

/// What a batch run did.
#[derive(Debug, Clone, Serialize)]
pub struct BatchOutcome {
    pub processed: usize,
    pub matched: usize,
    pub changed: usize,
    pub failed: usize,
}

/// Records per batch page (evaluated together, then the position is saved).
const BATCH_PAGE: i64 = 2000;

fn locale_tag(locale: Locale) -> &'static str {
    match locale {
        Locale::ZhCn => "zh-CN",
        Locale::En => "en",
    }
}

fn outcome_of(evaluation: &Evaluation) -> Value {
    json!({"writes": evaluation.writes, "reject": evaluation.reject, "actions": evaluation.actions, "trace": evaluation.trace})
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
    ) -> Result<Vec<(i64, Evaluation)>, Vec<FieldIssue>> {
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
        let mut done = Vec::new();
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
                named.insert(name.clone(), value.clone());
            }
            done.push((started.elapsed().as_micros() as i64, evaluation));
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
        for (duration_us, evaluation) in runs {
            self.store()
                .log_rule_run(
                    &loaded.id,
                    &evaluation.rule,
                    loaded.version,
                    trigger,
                    record_id,
                    evaluation.matched,
                    &outcome_of(evaluation),
                    None,
                    *duration_us,
                )
                .await?;
        }
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
            let changed: BTreeSet<String> = named
                .keys()
                .chain(before.iter().flat_map(|b| b.keys()))
                .filter(|k| before.as_ref().is_none_or(|b| b.get(*k) != named.get(*k)))
                .cloned()
                .collect();
            // The state a flow's record is in now and was in before this change.
            let state_of = |flow: &str, record: Option<&Map<String, Value>>| {
                let field = loaded.flows.get(flow)?.definition.state_field.as_str();
                record?.get(field)?.as_str().map(str::to_owned)
            };
            let rules: Vec<&CompiledRule> =
                in_order(loaded.rules.values(), entity.id.as_str(), |t| match t {
                    Trigger::RecordCreated {} => created,
                    Trigger::RecordUpdated { fields } => {
                        !created
                            && (fields.is_empty()
                                || fields.iter().any(|f| changed.contains(f.as_str())))
                    }
                    Trigger::StateEntered { flow, state } => {
                        let now = state_of(flow.as_str(), Some(&named));
                        let was = state_of(flow.as_str(), before.as_ref());
                        now.as_deref() == Some(state.as_str()) && now != was
                    }
                    Trigger::StateLeft { flow, state } => {
                        let now = state_of(flow.as_str(), Some(&named));
                        let was = state_of(flow.as_str(), before.as_ref());
                        !created && was.as_deref() == Some(state.as_str()) && now != was
                    }
                    _ => false,
                });
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
            let mut working = named.clone();
            let mut writes = Map::new();
            let mut side = TransitionWrites {
                app: loaded.id.clone(),
                entity: entity.id.to_string(),
                ..TransitionWrites::default()
            };
            let mut runs = Vec::new();
            for rule in rules {
                let started = Instant::now();
                match evaluate(rule, &working, before.as_ref()) {
                    Ok(evaluation) => {
                        if evaluation.matched {
                            for (name, value) in &evaluation.writes {
                                working.insert(name.clone(), value.clone());
                                writes.insert(name.clone(), value.clone());
                            }
                            for action in &evaluation.actions {
                                self.side_effect(
                                    loaded, entity, &row.id, &working, action, &mut side,
                                )
                                .await?;
                            }
                        }
                        runs.push((started.elapsed().as_micros() as i64, evaluation));
                    }
                    Err(failure) => {
                        self.log_failure(loaded, rule.id(), trigger, &row.id, &failure.to_string())
                            .await?
                    }
                }
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
        let (_, validator) = loaded.entity(entity.id.as_str())?;
        let mut next = named.clone();
        for (name, value) in writes {
            next.insert(name.clone(), value.clone());
        }
        let keys: Vec<&str> = writes.keys().map(String::as_str).collect();
        let issues = validator.prepare(&mut next, &keys, Locale::En);
        if !issues.is_empty() {
            let message = issues
                .iter()
                .map(|i| format!("{}: {}", i.pointer, i.message))
                .collect::<Vec<_>>()
                .join("; ");
            return Ok(Err(format!("its writes are not valid: {message}")));
        }
        let record = crate::records::record_write(entity, &next, Some(&row.data.0));
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
                            self.side_effect(loaded, entity, &row.id, &named, action, &mut side)
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

    /// An inbound webhook for rule `rule_id` (trigger `webhook`): check the signature, evaluate the
    /// condition over the body's fields and, when it holds, apply the rule's `set`s and create the
    /// record as the system user. `None` when the condition does not hold.
    pub async fn inbound_webhook(
        &self,
        app: &str,
        rule_id: &str,
        body: &[u8],
        signature: Option<&str>,
        locale: Locale,
    ) -> Result<Option<crate::records::RecordView>, RuntimeError> {
        use hmac::{KeyInit, Mac};
        let loaded = self.loaded_app(app).await?;
        let rule = Self::rule(&loaded, rule_id)?;
        if !matches!(rule.definition.trigger, Trigger::Webhook {}) {
            return Err(RuntimeError::NotFound(format!("webhook '{rule_id}'")));
        }
        let Some(secret) = &self.settings.webhook_secret else {
            return Err(RuntimeError::Forbidden(
                "inbound webhooks are off: set TRELLIS_WEBHOOK_SECRET on the server and sign requests with it".into(),
            ));
        };
        let given = signature
            .and_then(|s| s.strip_prefix("sha256="))
            .and_then(|hex_text| hex::decode(hex_text.trim()).ok())
            .ok_or_else(|| {
                RuntimeError::Forbidden(
                    "missing signature: send x-trellis-signature: sha256=<hex HMAC-SHA256 of the body>".into(),
                )
            })?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        mac.update(body);
        mac.verify_slice(&given)
            .map_err(|_| RuntimeError::Forbidden("the signature does not match the body".into()))?;
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
            return Err(RuntimeError::InvalidInput(
                "the body must be a JSON object of the record's fields".into(),
            ));
        };
        let started = Instant::now();
        let evaluation = evaluate(rule, &fields, None).map_err(|failure| {
            RuntimeError::InvalidRecord(vec![FieldIssue {
                pointer: String::new(),
                code: "rule_failed",
                message: failure.to_string(),
            }])
        })?;
        let elapsed = started.elapsed().as_micros() as i64;
        if let Some(message) = &evaluation.reject {
            let text = message
                .get(locale_tag(locale))
                .unwrap_or("the change was refused");
            self.log_runs(&loaded, "webhook", None, &[(elapsed, evaluation.clone())])
                .await?;
            return Err(RuntimeError::InvalidRecord(vec![FieldIssue {
                pointer: String::new(),
                code: "rule_rejected",
                message: format!("{text} (rule '{rule_id}')"),
            }]));
        }
        if !evaluation.matched {
            self.log_runs(&loaded, "webhook", None, &[(elapsed, evaluation)])
                .await?;
            return Ok(None);
        }
        for (name, value) in &evaluation.writes {
            fields.insert(name.clone(), value.clone());
        }
        let system = Principal::system("system", "webhook");
        let created = match self
            .create_record(
                &system,
                &loaded.id,
                rule.definition.entity.as_str(),
                &Value::Object(fields),
                locale,
            )
            .await
        {
            Ok(created) => created,
            Err(error) => {
                let reason = match &error {
                    RuntimeError::InvalidRecord(issues) => issues
                        .iter()
                        .map(|i| format!("{}: {}", i.pointer, i.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                };
                self.store()
                    .log_rule_run(
                        &loaded.id,
                        rule_id,
                        loaded.version,
                        "webhook",
                        None,
                        true,
                        &outcome_of(&evaluation),
                        Some(&format!("the record was not created: {reason}")),
                        elapsed,
                    )
                    .await?;
                return Err(error);
            }
        };
        self.log_runs(
            &loaded,
            "webhook",
            Some(&created.id),
            &[(elapsed, evaluation)],
        )
        .await?;
        Ok(Some(created))
    }

    /// Turn a follow-up action into a notification or an outbox entry of `side`.
    async fn side_effect(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        record_id: &str,
        record: &Map<String, Value>,
        action: &RuleAction,
        side: &mut TransitionWrites,
    ) -> Result<(), RuntimeError> {
        match action {
            RuleAction::Notify { to, message } => {
                for user in self.resolve_assignee(&loaded.id, to, record).await? {
                    side.notifications.push((user, json!(message)));
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
                    json!({"action": action, "entity": entity.id, "record_id": record_id, "flow": Value::Null, "event": Value::Null}),
                ));
            }
            RuleAction::Set(_) | RuleAction::Reject(_) => {}
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

    /// Batch run (`POST …/rules/{rule}/run`): apply the rule to every record of its entity that it
    /// matches, each record in its own transaction (a crash keeps what was done; running again only
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
        self.batch(&loaded, rule, "manual", &actor.user_id, &|_| true)
            .await
    }

    /// Apply `rule` to every live record of its entity that `select` keeps and the rule matches —
    /// page by page in id order, each page evaluated on all cores, the position and counts saved after
    /// every page. A run cut short (crash, restart) is resumed by the next run of the rule once its
    /// heartbeat is older than `RuntimeSettings::batch_stale_after`; records of the interrupted page are evaluated
    /// again (their writes are then no-ops; follow-up actions may repeat).
    async fn batch(
        &self,
        loaded: &LoadedApp,
        rule: &CompiledRule,
        trigger: &str,
        actor: &str,
        select: &(dyn Fn(&Map<String, Value>) -> bool + Send + Sync),
    ) -> Result<BatchOutcome, RuntimeError> {
        let (entity, _) = loaded.entity(rule.definition.entity.as_str())?;
        let started = Instant::now();
        let stale_before = Utc::now() - self.settings.batch_stale_after;
        let batch = match self
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
                running
            }
            None => {
                let total = self
                    .store()
                    .count_records(
                        &loaded.id,
                        &entity.uid,
                        &trellis_model::CheckedFilter::All,
                        None,
                    )
                    .await?;
                self.store()
                    .start_rule_batch(&loaded.id, rule.id(), trigger, loaded.version, total)
                    .await?
            }
        };
        let mut counts = trellis_store::BatchCounts {
            processed: batch.processed,
            matched: batch.matched,
            changed: batch.changed,
            failed: batch.failed,
        };
        let mut after = batch.after_id.clone();
        loop {
            let page = self
                .store()
                .record_page(&loaded.id, &entity.uid, after.as_deref(), BATCH_PAGE)
                .await?;
            let Some(last_id) = page.last().map(|row| row.id.clone()) else {
                break;
            };
            let selected: Vec<(RecordRow, Map<String, Value>)> = page
                .into_iter()
                .map(|row| {
                    let named = to_api(entity, &row.data.0);
                    (row, named)
                })
                .filter(|(_, named)| select(named))
                .collect();
            // The rule is pure: evaluate the page on every core.
            let owned_rule = rule.clone();
            let (selected, results) = tokio::task::spawn_blocking(move || {
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                let per_thread = selected.len().div_ceil(threads).max(1);
                let results: Vec<Result<Evaluation, trellis_rules::RuleFailure>> =
                    std::thread::scope(|scope| {
                        let handles: Vec<_> = selected
                            .chunks(per_thread)
                            .map(|part| {
                                let rule = &owned_rule;
                                scope.spawn(move || {
                                    part.iter()
                                        .map(|(_, named)| evaluate(rule, named, None))
                                        .collect::<Vec<_>>()
                                })
                            })
                            .collect();
                        handles
                            .into_iter()
                            .flat_map(|handle| handle.join().unwrap_or_default())
                            .collect()
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
                    self.side_effect(loaded, entity, &row.id, named, action, &mut side)
                        .await?;
                }
                let differs = evaluation
                    .writes
                    .iter()
                    .any(|(k, v)| named.get(k) != Some(v));
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
                match self
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

    /// Run the scheduled rules (cron, date reached) whose time has come; each occurrence once, also
    /// with several servers (the schedule advances by compare-and-set before the run).
    pub async fn run_rule_schedules(&self, now: DateTime<Utc>) -> Result<usize, RuntimeError> {
        let mut ran = 0;
        for app in self.store().list_apps(false).await? {
            let loaded = self.loaded_app(&app.id).await?;
            for rule in loaded.rules.values().filter(|r| r.definition.enabled) {
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
                match &rule.definition.trigger {
                    Trigger::DateReached {
                        field,
                        days_before,
                        every_year,
                    } => {
                        let day = (now + chrono::Duration::days(*days_before)).date_naive();
                        let (field, every_year) = (field.to_string(), *every_year);
                        let select = move |record: &Map<String, Value>| {
                            record
                                .get(&field)
                                .and_then(Value::as_str)
                                .and_then(|text| {
                                    chrono::NaiveDate::parse_from_str(
                                        text.get(..10).unwrap_or(text),
                                        "%Y-%m-%d",
                                    )
                                    .ok()
                                })
                                .is_some_and(|date| {
                                    use chrono::Datelike;
                                    if every_year {
                                        (date.month(), date.day()) == (day.month(), day.day())
                                    } else {
                                        date == day
                                    }
                                })
                        };
                        self.batch(&loaded, rule, "date_reached", "system", &select)
                            .await?;
                    }
                    _ => {
                        self.batch(&loaded, rule, "schedule", "system", &|_| true)
                            .await?;
                    }
                }
            }
        }
        Ok(ran)
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
