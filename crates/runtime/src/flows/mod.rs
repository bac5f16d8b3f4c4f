//! Running flows: firing events (one transaction: role, state, guard, new state, history, tasks,
//! timers, notifications and outbox — or nothing and 409 with the reason), the events offered on a
//! record, the task inbox with approvals, and the scheduler that fires due timers and escalates overdue
//! tasks. Decisions come from the pure flow engine; this module gathers inputs and persists outcomes.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use trellis_flow::definition::Assignee;
use trellis_flow::{
    ActionDefinition, CompiledFlow, EventOption, FireContext, Firing, parse_duration,
};
use trellis_form::Locale;
use trellis_form::records::to_api;
use trellis_model::{Action, EntityDefinition};
use trellis_store::flows::{NewTask, TransitionWrites};
use trellis_store::{RecordRow, StoreError};

mod bulk_fire;
mod scheduler;

pub(crate) use bulk_fire::SystemEvent;
mod tasks;

use crate::app_cache::LoadedApp;
use crate::records::RecordView;
use crate::{Principal, Runtime, RuntimeError};

/// A flow as seen on one record.
#[derive(Debug, Clone, Serialize)]
pub struct RecordFlow {
    pub flow: String,
    pub state: Option<String>,
    /// The app version whose definition this record's run follows.
    pub app_version: i64,
    pub events: Vec<EventOption>,
    pub history: Vec<trellis_store::flows::FlowHistoryRow>,
}

/// The outcome of a fired event.
#[derive(Debug, Clone, Serialize)]
pub struct Fired {
    pub flow: String,
    pub event: String,
    pub from: Option<String>,
    pub state: String,
    pub record: RecordView,
}

/// Who fires: a user (with their roles), or the system (timers, task outcomes).
enum Firer<'a> {
    User(&'a Principal),
    System,
}

/// What applying a firing writes ([`Runtime::firing_writes`]).
struct FiringWrites {
    /// The record before the firing (field names).
    before: Map<String, Value>,
    /// The record after it, as stored.
    record: trellis_store::NewRecord,
    /// Whether its search text changes.
    search_changed: bool,
    /// Whether its unique values stay (else it is written alone: the unique index changes).
    uniques_kept: bool,
    writes: TransitionWrites,
}

/// A refused event as the error the caller sees: from a state the record is not in (the outbox
/// skips those: the record moved on), or a conflict with the reason.
fn refused(refusal: trellis_flow::Refusal) -> RuntimeError {
    match refusal {
        trellis_flow::Refusal::WrongState { .. } => {
            RuntimeError::EventNotFromState(refusal.message())
        }
        _ => RuntimeError::Conflict(refusal.message()),
    }
}

/// Extra writes that must commit with the transition.
#[derive(Default)]
struct Consumes {
    timer: Option<String>,
    task: Option<(String, String, String)>,
}

pub(crate) fn seconds(text: Option<&str>) -> Option<Duration> {
    text.and_then(parse_duration).map(Duration::seconds)
}

/// Longest a scheduler tick keeps delivering outbox passes before the timers and the rule
/// schedules get their turn (a pass that started finishes).
const OUTBOX_TIME_PER_TICK: std::time::Duration = std::time::Duration::from_secs(10);

impl Runtime {
    fn flow<'a>(
        &self,
        loaded: &'a LoadedApp,
        entity: &EntityDefinition,
        id: &str,
    ) -> Result<&'a CompiledFlow, RuntimeError> {
        loaded
            .flows
            .get(id)
            .filter(|f| f.definition.entity == entity.id)
            .ok_or_else(|| RuntimeError::NotFound(format!("flow '{id}' of {}", entity.id)))
    }

    /// Users who hold `role` in the app (directly or through their department or one above it).
    async fn users_with_role(&self, app: &str, role: &str) -> Result<Vec<String>, RuntimeError> {
        let assignments = self.store().list_assignments(app).await?;
        let departments = self.store().list_departments().await?;
        let users = self.store().list_users().await?;
        let mut found = Vec::new();
        for user in users.iter().filter(|u| !u.disabled) {
            let mut chain = Vec::new();
            let mut current = user.department_id.clone();
            while let Some(id) = current {
                if chain.contains(&id) {
                    break;
                }
                current = departments
                    .iter()
                    .find(|d| d.id == id)
                    .and_then(|d| d.parent_id.clone());
                chain.push(id);
            }
            let holds = assignments.iter().any(|a| {
                a.role == role
                    && ((a.principal_kind == "user" && a.principal_id == user.id)
                        || (a.principal_kind == "department" && chain.contains(&a.principal_id)))
            });
            if holds {
                found.push(user.id.clone());
            }
        }
        Ok(found)
    }

    /// Resolve an assignee to user ids (round-robin: the role's user with the fewest open tasks).
    pub(crate) async fn resolve_assignee(
        &self,
        app: &str,
        assignee: &Assignee,
        record: &Map<String, Value>,
    ) -> Result<Vec<String>, RuntimeError> {
        Ok(match assignee {
            Assignee::Role(role) => self.users_with_role(app, role.as_str()).await?,
            Assignee::Field(field) => record
                .get(field.as_str())
                .and_then(Value::as_str)
                .map(|id| vec![id.to_owned()])
                .unwrap_or_default(),
            Assignee::Users(users) => {
                let mut ids = Vec::new();
                for user in users {
                    match self.store().find_user_by_username(user).await? {
                        Some(found) => ids.push(found.id),
                        None => ids.push(user.clone()),
                    }
                }
                ids
            }
            Assignee::RoundRobin(role) => {
                let candidates = self.users_with_role(app, role.as_str()).await?;
                let open = self.store().list_tasks(app, None, Some("open")).await?;
                candidates
                    .into_iter()
                    .min_by_key(|user| {
                        (
                            open.iter().filter(|t| &t.assignee == user).count(),
                            user.clone(),
                        )
                    })
                    .into_iter()
                    .collect()
            }
        })
    }

    /// The writes of entering `firing.to`: history, the new state's approval tasks and timers, and the
    /// transition's tasks, notifications and outbox entries.
    #[allow(clippy::too_many_arguments)] // the flow's place (app, entity, flow, record) plus the firing
    async fn transition_writes(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        flow: &CompiledFlow,
        firing: &Firing,
        record: &Map<String, Value>,
        record_id: &str,
        now: DateTime<Utc>,
    ) -> Result<TransitionWrites, RuntimeError> {
        let app = loaded.id.as_str();
        let target = flow.state(&firing.to);
        let sla = seconds(target.and_then(|s| s.sla.as_deref()));
        let mut writes = TransitionWrites {
            app: app.to_owned(),
            entity: entity.id.to_string(),
            flow: flow.id().to_owned(),
            event: firing.event.clone(),
            from_state: firing.from.clone(),
            to_state: firing.to.clone(),
            inputs: Value::Object(firing.inputs.clone()),
            app_version: flow.app_version,
            leave_state: true,
            ..TransitionWrites::default()
        };
        if let Some(approval) = target.and_then(|s| s.approval.as_ref()) {
            let title = approval.title.as_ref().map_or_else(
                || json!({"en": format!("Approve {} {record_id}", entity.id), "zh-CN": format!("审批 {} {record_id}", entity.id)}),
                |t| json!(t),
            );
            for user in self
                .resolve_assignee(app, &approval.assignees, record)
                .await?
            {
                writes.tasks.push(NewTask {
                    kind: "approval",
                    title: title.clone(),
                    assignee: user,
                    outcomes: json!({"approve": approval.approve_event, "reject": approval.reject_to}),
                    due_at: sla.map(|d| now + d),
                    escalate_to: None,
                });
            }
        }
        for timer in flow
            .definition
            .timers
            .iter()
            .filter(|t| t.state.as_str() == firing.to)
        {
            let due =
                match (&timer.after, &timer.at_field) {
                    _ if timer.cron.is_some() => trellis_flow::definition::next_cron(
                        timer.cron.as_deref().unwrap_or_default(),
                        now,
                    ),
                    (Some(after), _) => seconds(Some(after)).map(|d| now + d),
                    (None, Some(field)) => record
                        .get(field.as_str())
                        .and_then(Value::as_str)
                        .and_then(|text| {
                            DateTime::parse_from_rfc3339(text)
                                .map(|d| d.with_timezone(&Utc))
                                .ok()
                                .or_else(|| {
                                    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                                        .ok()
                                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                                        .map(|d| d.and_utc())
                                })
                        }),
                    (None, None) => None,
                };
            if let Some(due) = due {
                writes.timers.push((timer.event.to_string(), due));
            }
        }
        for action in &firing.actions {
            match action {
                ActionDefinition::CreateTask(task) => {
                    for user in self.resolve_assignee(app, &task.assignee, record).await? {
                        writes.tasks.push(NewTask {
                            kind: "task",
                            title: json!(task.title),
                            assignee: user,
                            outcomes: json!(task.outcomes),
                            due_at: seconds(task.due_in.as_deref()).or(sla).map(|d| now + d),
                            escalate_to: task.escalate_to.as_ref().map(|a| json!(a)),
                        });
                    }
                }
                ActionDefinition::Notify(notify) => {
                    for user in self.resolve_assignee(app, &notify.to, record).await? {
                        let message = json!(notify.message);
                        writes.outbox.extend(self.mail_entry(
                            &user,
                            &message,
                            entity.id.as_str(),
                            record_id,
                        ));
                        writes.notifications.push((user, message));
                    }
                }
                ActionDefinition::Set(_) => {}
                other => {
                    let kind = match other {
                        ActionDefinition::Webhook(_) => "webhook",
                        ActionDefinition::CreateRecord(_) => "create_record",
                        _ => "fire_event",
                    };
                    writes.outbox.push((
                        kind.to_owned(),
                        json!({"action": other, "entity": entity.id, "record_id": record_id, "flow": flow.id(), "event": firing.event}),
                    ));
                }
            }
        }
        Ok(writes)
    }

    /// What applying a decided firing to `row` writes: the record after it (validated, with its
    /// computed fields), the stored form of that record, and the transition's writes; with the
    /// record before it (`before`: `row`'s fields by name) and whether its unique values stay
    /// (then it may share a commit).
    #[allow(clippy::too_many_arguments)]
    async fn firing_writes(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        flow: &CompiledFlow,
        row: &RecordRow,
        before: Map<String, Value>,
        firing: &Firing,
        actor: Option<&str>,
        checked: Option<&crate::access::Checked<'_>>,
        locale: Locale,
    ) -> Result<FiringWrites, RuntimeError> {
        let (_, validator) = loaded.entity(entity.id.as_str())?;
        let mut named = before.clone();
        for (name, value) in &firing.writes {
            named.insert(name.clone(), value.clone());
        }
        let changed: Vec<&str> = firing.writes.keys().map(String::as_str).collect();
        let issues = validator.prepare(&mut named, &changed, locale);
        if !issues.is_empty() {
            return Err(RuntimeError::InvalidRecord(issues));
        }
        let record = crate::records::record_write(entity, &named, Some(&row.data.0));
        if let Some(checked) = checked {
            self.require_write_rows(loaded, checked, &record.data)
                .await?;
        }
        let mut writes = self
            .transition_writes(loaded, entity, flow, firing, &named, &row.id, Utc::now())
            .await?;
        // Webhook payloads are built for the user who fired the event: fields hidden from them
        // are left out at delivery.
        if let Some(actor) = actor {
            for (_, payload) in &mut writes.outbox {
                payload["actor"] = json!(actor);
            }
        }
        // Concurrent transitions share commits (group commit) unless unique values change, which
        // needs the unique index rewritten and may clash.
        let uniques_kept = crate::records::unique_values_of(entity, &named)
            == crate::records::unique_values_of(entity, &before);
        let search_changed =
            record.search_text != trellis_form::records::search_text(entity, &before);
        Ok(FiringWrites {
            before,
            record,
            search_changed,
            uniques_kept,
            writes,
        })
    }

    /// Apply a decided firing to `row` in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn apply_firing(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        flow: &CompiledFlow,
        row: &RecordRow,
        firing: Firing,
        actor: Option<&str>,
        consumes: Consumes,
        checked: Option<&crate::access::Checked<'_>>,
        locale: Locale,
    ) -> Result<(RecordRow, Firing), RuntimeError> {
        let FiringWrites {
            record,
            search_changed,
            uniques_kept,
            mut writes,
            ..
        } = self
            .firing_writes(
                loaded,
                entity,
                flow,
                row,
                to_api(entity, &row.data.0),
                &firing,
                actor,
                checked,
                locale,
            )
            .await?;
        writes.consume_timer = consumes.timer;
        writes.complete_task = consumes.task;
        let written = if uniques_kept {
            let update = trellis_store::BulkUpdate {
                current: row.clone(),
                current_document: None,
                record,
                search_changed,
                side: Some(writes),
            };
            self.store()
                .update_record_grouped(&loaded.id, actor, update)
                .await
        } else {
            self.store()
                .update_record_with(
                    &loaded.id,
                    &entity.uid,
                    &row.id,
                    row.version,
                    &record,
                    actor,
                    Some(&writes),
                )
                .await
        };
        let updated = written
            .map_err(|e| match e {
                StoreError::VersionMismatch { .. } => RuntimeError::Conflict(
                    "the record changed while the event was being applied; nothing was changed — reload and try again".into(),
                ),
                other => other.into(),
            })?;
        tracing::info!(app = %loaded.id, flow = flow.id(), record = %row.id, event = %firing.event, from = ?firing.from, to = %firing.to, "flow event");
        Ok((updated, firing))
    }

    #[allow(clippy::too_many_arguments)] // the flow's place (app, entity, flow, record) plus the firing
    async fn fire_on(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        flow: &CompiledFlow,
        row: &RecordRow,
        event: &str,
        data: &Map<String, Value>,
        firer: Firer<'_>,
        consumes: Consumes,
        locale: Locale,
    ) -> Result<(RecordRow, Firing), RuntimeError> {
        let named = to_api(entity, &row.data.0);
        let now = Utc::now().to_rfc3339();
        let (user_id, roles, privileged, checked) = match firer {
            Firer::System => ("system".to_owned(), Vec::new(), true, None),
            Firer::User(actor) => {
                let checked = self.check(actor, loaded, entity).await?;
                let roles: Vec<String> = checked
                    .subject
                    .grants
                    .iter()
                    .map(|g| g.role.clone())
                    .collect();
                let privileged = checked.subject.platform_admin;
                (actor.user_id.clone(), roles, privileged, Some(checked))
            }
        };
        let context = FireContext {
            user_id: &user_id,
            roles: &roles,
            privileged,
            data,
            now: &now,
        };
        let firing = flow.decide(event, &named, &context).map_err(refused)?;
        let actor = (user_id != "system").then_some(user_id.as_str());
        let (updated, firing) = self
            .apply_firing(
                loaded,
                entity,
                flow,
                row,
                firing,
                actor,
                consumes,
                checked.as_ref(),
                locale,
            )
            .await?;
        if loaded.rules.is_empty() {
            return Ok((updated, firing));
        }
        // The state change (and the transition's writes) trigger record_updated rules.
        let updated = self
            .after_save(loaded, entity, updated, Some(named), &user_id)
            .await?;
        Ok((updated, firing))
    }

    /// Fire `event` of `flow` on a record (`POST …/records/{id}/flows/{flow}/events`).
    #[allow(clippy::too_many_arguments)]
    pub async fn fire_event(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
        flow_id: &str,
        event: &str,
        data: &Map<String, Value>,
        locale: Locale,
    ) -> Result<Fired, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Read)?;
        let (row, pinned) = self
            .live_record_and_run(&loaded, entity, id, flow_id)
            .await?;
        self.require_readable(&loaded, &checked, id, &row.data.0)
            .await?;
        checked.require(Action::Update)?;
        checked.require_editable(data.keys().filter(|k| entity.field(k).is_some()))?;
        let source = self
            .pinned_flow_at(&loaded, entity, flow_id, &row, pinned)
            .await?;
        let flow = self.flow(&source, entity, flow_id)?;
        let (row, firing) = self
            .fire_on(
                &loaded,
                entity,
                flow,
                &row,
                event,
                data,
                Firer::User(actor),
                Consumes::default(),
                locale,
            )
            .await?;
        Ok(Fired {
            flow: flow_id.to_owned(),
            event: firing.event,
            from: firing.from,
            state: firing.to,
            record: checked.view(&row),
        })
    }

    /// The live record `id` and the app version its run of `flow_id` follows, in one read.
    async fn live_record_and_run(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        id: &str,
        flow_id: &str,
    ) -> Result<(RecordRow, Option<i64>), RuntimeError> {
        match self
            .store()
            .get_record_with_flow_version(&loaded.id, &entity.uid, id, flow_id)
            .await?
        {
            Some((row, pinned)) if row.deleted_at.is_none() => Ok((row, pinned)),
            _ => Err(RuntimeError::NotFound(format!("record '{id}'"))),
        }
    }

    /// Fire an event as the system (outbox `fire_event` actions).
    pub(crate) async fn fire_as_system(
        &self,
        app: &str,
        entity_id: &str,
        id: &str,
        flow_id: &str,
        event: &str,
    ) -> Result<(), RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let (row, pinned) = self
            .live_record_and_run(&loaded, entity, id, flow_id)
            .await?;
        let source = self
            .pinned_flow_at(&loaded, entity, flow_id, &row, pinned)
            .await?;
        let flow = self.flow(&source, entity, flow_id)?;
        self.fire_on(
            &loaded,
            entity,
            flow,
            &row,
            event,
            &Map::new(),
            Firer::System,
            Consumes::default(),
            Locale::En,
        )
        .await
        .map(|_| ())
    }

    /// Every flow of a record's entity: the state, each event with whether the user may fire it and
    /// why not, and the history (`GET …/records/{id}/flows`).
    pub async fn record_flows(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<Vec<RecordFlow>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        let row = self.readable_record(&loaded, &checked, id).await?;
        let named = to_api(entity, &row.data.0);
        let roles: Vec<String> = checked
            .subject
            .grants
            .iter()
            .map(|g| g.role.clone())
            .collect();
        let now = Utc::now().to_rfc3339();
        let data = Map::new();
        let context = FireContext {
            user_id: &actor.user_id,
            roles: &roles,
            privileged: checked.subject.platform_admin,
            data: &data,
            now: &now,
        };
        let history = self.store().flow_history(id).await?;
        let may_update = checked.access.allows(Action::Update);
        let mut flows = Vec::new();
        for id in loaded
            .flows_of(entity.id.as_str())
            .map(|f| f.id().to_owned())
        {
            // Offer the events of the definition this record's run follows.
            let source = self.pinned_flow(&loaded, entity, &id, &row).await?;
            let flow = self.flow(&source, entity, &id)?;
            let mut events = flow.options(&named, &context);
            if !may_update {
                for option in &mut events {
                    option.allowed = false;
                    option.reason =
                        Some(format!("none of your roles allows update on {}", entity.id));
                }
            }
            flows.push(RecordFlow {
                flow: id.clone(),
                state: flow.state_of(&named).map(str::to_owned),
                app_version: flow.app_version,
                events,
                history: history.iter().filter(|h| h.flow == id).cloned().collect(),
            });
        }
        Ok(flows)
    }

    /// The app version whose flow definition a record's run follows: the one it started with while
    /// the run goes on and its state still exists there (publishing never changes the rules of a run
    /// under way), else the current one.
    async fn pinned_flow(
        &self,
        loaded: &std::sync::Arc<LoadedApp>,
        entity: &EntityDefinition,
        flow_id: &str,
        row: &RecordRow,
    ) -> Result<std::sync::Arc<LoadedApp>, RuntimeError> {
        let pinned = self.store().latest_flow_version(&row.id, flow_id).await?;
        self.pinned_flow_at(loaded, entity, flow_id, row, pinned)
            .await
    }

    /// [`Runtime::pinned_flow`] with the version of the run's latest history entry already read.
    async fn pinned_flow_at(
        &self,
        loaded: &std::sync::Arc<LoadedApp>,
        entity: &EntityDefinition,
        flow_id: &str,
        row: &RecordRow,
        pinned: Option<i64>,
    ) -> Result<std::sync::Arc<LoadedApp>, RuntimeError> {
        let Some(pinned) = pinned.filter(|v| *v != loaded.version) else {
            return Ok(loaded.clone());
        };
        let source = self.loaded_app_version(&loaded.id, pinned).await?;
        let named = to_api(entity, &row.data.0);
        // A newer version that removed or renamed states migrated the runs (state_mapping at
        // publish): those follow the current definition from then on.
        let current = loaded.flows.get(flow_id);
        let ongoing = source.flows.get(flow_id).is_some_and(|old| {
            let compatible = current.is_some_and(|current| {
                old.definition
                    .states
                    .iter()
                    .all(|s| current.state(s.id.as_str()).is_some())
            });
            compatible
                && old
                    .state_of(&named)
                    .and_then(|state| old.state(state))
                    .is_some_and(|state| !state.terminal)
        });
        Ok(if ongoing { source } else { loaded.clone() })
    }

    /// Start a newly created record's flow runs: the initial state's history entry (pinning this app
    /// version) and its work (timers, approval tasks).
    pub(crate) async fn start_flows(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        row: &RecordRow,
        actor: Option<&str>,
    ) -> Result<(), RuntimeError> {
        self.start_flows_of_many(loaded, entity, std::slice::from_ref(row), actor, &[])
            .await
    }

    /// [`Runtime::start_flows`] for many new records, with rule runs to log: their runs start and
    /// the runs are logged in one transaction.
    pub(crate) async fn start_flows_of_many(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        rows: &[RecordRow],
        actor: Option<&str>,
        runs: &[trellis_store::NewRuleRun],
    ) -> Result<(), RuntimeError> {
        let starts = self.flow_starts(loaded, entity, rows).await?;
        let work: Vec<(&str, &TransitionWrites)> =
            starts.iter().map(|(id, writes)| (*id, writes)).collect();
        self.store()
            .start_flow_states_logged(actor, &work, &loaded.id, loaded.version, runs)
            .await?;
        Ok(())
    }

    /// The start of each flow run of each new record in `rows`: its id and the initial state's
    /// writes.
    async fn flow_starts<'r>(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        rows: &'r [RecordRow],
    ) -> Result<Vec<(&'r str, TransitionWrites)>, RuntimeError> {
        let mut starts = Vec::new();
        for row in rows {
            let named = to_api(entity, &row.data.0);
            for flow in loaded.flows_of(entity.id.as_str()) {
                let Some(state) = flow.state_of(&named) else {
                    continue;
                };
                let firing = Firing {
                    event: "create".into(),
                    from: None,
                    to: state.to_owned(),
                    writes: Map::new(),
                    inputs: Map::new(),
                    actions: Vec::new(),
                };
                let writes = self
                    .transition_writes(loaded, entity, flow, &firing, &named, &row.id, Utc::now())
                    .await?;
                starts.push((row.id.as_str(), writes));
            }
        }
        Ok(starts)
    }

    /// The caller's in-app notifications, newest first.
    pub async fn notifications(
        &self,
        actor: &Principal,
    ) -> Result<Vec<trellis_store::flows::NotificationRow>, RuntimeError> {
        Ok(self.store().notifications_for(&actor.user_id).await?)
    }
}
