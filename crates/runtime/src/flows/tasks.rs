//! The task inbox: listing tasks, completing them (approval votes decide transitions; a rule's task
//! just records its outcome) and reassigning them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use trellis_flow::definition::ApprovalMode;
use trellis_form::Locale;
use trellis_form::records::to_api;
use trellis_store::flows::TaskRow;

use super::{Consumes, Firer, Firing};
use crate::{Principal, Runtime, RuntimeError};

impl Runtime {
    /// The task inbox: `assignee` is `me`, a user id, or absent (app managers: everyone's).
    pub async fn list_tasks(
        &self,
        actor: &Principal,
        app: &str,
        assignee: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<TaskRow>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let assignee = match assignee {
            Some("me") | None => Some(actor.user_id.clone()),
            Some(other) => Some(other.to_owned()),
        };
        if assignee.as_deref() != Some(actor.user_id.as_str()) {
            self.require_app_manager(actor, &loaded).await?;
        }
        // Tasks on records the user can no longer read stay hidden.
        let tasks = self
            .store()
            .list_tasks(&loaded.id, assignee.as_deref(), status)
            .await?;
        let mut visible = Vec::with_capacity(tasks.len());
        for task in tasks {
            let Ok((entity, _)) = loaded.entity(&task.entity) else {
                continue;
            };
            let checked = self.check(actor, &loaded, entity).await?;
            if self
                .readable_record(&loaded, &checked, &task.record_id)
                .await
                .is_ok()
            {
                visible.push(task);
            }
        }
        Ok(visible)
    }

    /// Complete a task with an outcome. A task's outcome fires its mapped event; an approval vote
    /// counts toward the state's mode (any, all, percent) and fires the approval event once satisfied;
    /// a rejection sends the record to the state's `reject_to`.
    pub async fn complete_task(
        &self,
        actor: &Principal,
        app: &str,
        task_id: &str,
        outcome: &str,
        locale: Locale,
    ) -> Result<TaskRow, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let task = self
            .store()
            .get_task(task_id)
            .await?
            .filter(|t| t.app_id == loaded.id && (t.assignee == actor.user_id || actor.is_admin))
            .ok_or_else(|| RuntimeError::NotFound(format!("task '{task_id}'")))?;
        if task.status != "open" {
            return Err(RuntimeError::Conflict(format!(
                "task '{task_id}' is {}",
                task.status
            )));
        }
        if task.flow.is_empty() {
            // A task a rule created: completing it records the outcome; an outcome the rule
            // mapped to an event fires it on the record's flow that has the event (as the person
            // completing the task, so their role must allow it).
            let outcomes: BTreeMap<String, String> =
                serde_json::from_str(&task.outcomes).unwrap_or_default();
            let event = outcomes.get(outcome).and_then(|event| {
                loaded
                    .flows_of(&task.entity)
                    .find(|f| {
                        f.definition
                            .transitions
                            .iter()
                            .any(|t| t.event.as_str() == event)
                    })
                    .map(|f| (f.id().to_owned(), event.clone()))
            });
            if let Some((flow, event)) = &event {
                self.fire_event(
                    actor,
                    app,
                    &task.entity,
                    &task.record_id,
                    flow,
                    event,
                    &Map::new(),
                    locale,
                )
                .await?;
            }
            if !self
                .store()
                .complete_task(&task.id, outcome, &actor.user_id)
                .await?
            {
                return Err(RuntimeError::Conflict(format!(
                    "task '{task_id}' is no longer open"
                )));
            }
            return self
                .store()
                .get_task(&task.id)
                .await?
                .ok_or_else(|| RuntimeError::NotFound(format!("task '{task_id}'")));
        }
        let (entity, _) = loaded.entity(&task.entity)?;
        let row = self.live_record(&loaded, entity, &task.record_id).await?;
        let source = self.pinned_flow(&loaded, entity, &task.flow, &row).await?;
        let flow = self.flow(&source, entity, &task.flow)?;
        let outcomes: BTreeMap<String, String> =
            serde_json::from_str(&task.outcomes).unwrap_or_default();
        let consumes = Consumes {
            timer: None,
            task: Some((task.id.clone(), outcome.to_owned(), actor.user_id.clone())),
        };
        let no_data = Map::new();
        if task.kind == "approval" {
            let approval = flow
                .state(&task.state)
                .and_then(|s| s.approval.clone())
                .ok_or_else(|| {
                    RuntimeError::Internal("approval task of a state without approval".into())
                })?;
            match outcome {
                "reject" => {
                    let named = to_api(entity, &row.data.0);
                    let mut writes = Map::new();
                    writes.insert(
                        flow.state_field().to_owned(),
                        Value::String(approval.reject_to.to_string()),
                    );
                    let firing = Firing {
                        event: "reject".into(),
                        from: flow.state_of(&named).map(str::to_owned),
                        to: approval.reject_to.to_string(),
                        writes,
                        inputs: Map::new(),
                        actions: Vec::new(),
                    };
                    self.apply_firing(
                        &loaded,
                        entity,
                        flow,
                        &row,
                        firing,
                        Some(&actor.user_id),
                        consumes,
                        None,
                        locale,
                    )
                    .await?;
                }
                "approve" => {
                    let votes = self
                        .store()
                        .tasks_of(&row.id, flow.id(), &task.state)
                        .await?;
                    let total = votes.iter().filter(|t| t.kind == "approval").count().max(1);
                    let approved = 1 + votes
                        .iter()
                        .filter(|t| t.id != task.id && t.outcome.as_deref() == Some("approve"))
                        .count();
                    let satisfied = match approval.mode {
                        ApprovalMode::Any => true,
                        ApprovalMode::All => approved >= total,
                        ApprovalMode::Percent(p) => approved * 100 >= usize::from(p) * total,
                    };
                    if satisfied {
                        self.fire_on(
                            &loaded,
                            entity,
                            flow,
                            &row,
                            approval.approve_event.as_str(),
                            &no_data,
                            Firer::System,
                            consumes,
                            locale,
                        )
                        .await?;
                    } else if !self
                        .store()
                        .complete_task(&task.id, outcome, &actor.user_id)
                        .await?
                    {
                        return Err(RuntimeError::Conflict(format!(
                            "task '{task_id}' is no longer open"
                        )));
                    }
                }
                _ => {
                    return Err(RuntimeError::InvalidInput(
                        "an approval's outcome is 'approve' or 'reject'".into(),
                    ));
                }
            }
        } else if let Some(event) = outcomes.get(outcome) {
            self.fire_on(
                &loaded,
                entity,
                flow,
                &row,
                event,
                &no_data,
                Firer::System,
                consumes,
                locale,
            )
            .await?;
        } else if outcomes.is_empty() || outcome == "done" {
            if !self
                .store()
                .complete_task(&task.id, outcome, &actor.user_id)
                .await?
            {
                return Err(RuntimeError::Conflict(format!(
                    "task '{task_id}' is no longer open"
                )));
            }
        } else {
            return Err(RuntimeError::InvalidInput(format!(
                "unknown outcome '{outcome}': use one of {}",
                outcomes.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        self.store()
            .get_task(task_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("task '{task_id}'")))
    }

    /// Hand an open task to another user: its assignee delegates it, an app manager reassigns it.
    pub async fn reassign_task(
        &self,
        actor: &Principal,
        app: &str,
        task_id: &str,
        to: &str,
    ) -> Result<TaskRow, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let task = self
            .store()
            .get_task(task_id)
            .await?
            .filter(|t| t.app_id == loaded.id)
            .ok_or_else(|| RuntimeError::NotFound(format!("task '{task_id}'")))?;
        if task.assignee != actor.user_id {
            self.require_app_manager(actor, &loaded).await?;
        }
        if task.status != "open" {
            return Err(RuntimeError::Conflict(format!(
                "task '{task_id}' is {}",
                task.status
            )));
        }
        let target = match self.store().find_user_by_username(to).await? {
            Some(user) => user,
            None => self
                .store()
                .get_user(to)
                .await?
                .ok_or_else(|| RuntimeError::InvalidInput(format!("no user '{to}'")))?,
        };
        if target.disabled {
            return Err(RuntimeError::InvalidInput(format!(
                "user '{to}' is disabled"
            )));
        }
        let how = if task.assignee == actor.user_id {
            "delegated"
        } else {
            "reassigned"
        };
        let message = json!({
            "en": format!("{} {how} a task to you", actor.username),
            "zh-CN": format!("{} 将一项任务{}给您", actor.username, if how == "delegated" { "委托" } else { "转派" }),
        });
        if !self
            .store()
            .reassign_task(
                &task,
                &task.assignee,
                &target.id,
                &message,
                self.mail_entry(&target.id, &message, &task.entity, &task.record_id)
                    .as_ref(),
            )
            .await?
        {
            return Err(RuntimeError::Conflict(format!(
                "task '{task_id}' changed meanwhile; reload it"
            )));
        }
        self.audit(
            Some(actor),
            &format!("task.{how}"),
            Some(&loaded.id),
            Some(task_id),
            "success",
            json!({"from": task.assignee, "to": target.id}),
        )
        .await?;
        self.store()
            .get_task(task_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("task '{task_id}'")))
    }
}
