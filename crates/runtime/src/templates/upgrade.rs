//! Upgrading an installed app to a newer template version without losing the analyst's edits.
//!
//! The app's base (the template version it stands on), the app as it is now, and the new version
//! are merged three ways ([`trellis_model::merge`]); the merged bundle is published like any other
//! version, so the ordinary schema-evolution migration moves the records (added fields get their
//! defaults, removed flow states move along the new version's `state_mapping`) and nothing is lost.
//! A dry run reports the whole diff, the conflicts and the migration without writing anything.
//! The app version before the upgrade stays stored, so [`Runtime::rollback_upgrade`] can publish it
//! again (mapping records out of states the upgrade added back to where they came from).

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use trellis_model::merge::{Conflict, MergeChange, MergeSide, merge_bundles};
use trellis_model::{Problem, RawBundle};
use trellis_store::{AppTemplateRecord, AppUpgradeRecord};

use super::{parse_version, with_app_id};
use crate::apps::{MigrationReport, check_app_bundle};
use crate::{Principal, Runtime, RuntimeError};

/// How to upgrade.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Conflict id (`FILE:POINTER`) → the side to take; unresolved conflicts keep the local value.
    pub resolutions: BTreeMap<String, MergeSide>,
    pub dry_run: bool,
    /// The app version the caller saw (`If-Match`); a newer one is a 412.
    pub expected_version: Option<i64>,
}

/// What an upgrade did (or would do, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    pub app: String,
    pub template: String,
    pub from_template_version: String,
    pub to_template_version: String,
    pub dry_run: bool,
    /// The template's changes, applied.
    pub template_changes: Vec<MergeChange>,
    /// The analyst's edits, kept.
    pub local_changes: Vec<MergeChange>,
    /// Values both sides changed, with the side taken.
    pub conflicts: Vec<Conflict>,
    /// The publish of the merged bundle: metadata changes and records migrated.
    pub migration: MigrationReport,
    /// Id of the stored upgrade (absent in a dry run); roll back with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_id: Option<String>,
}

/// The result of a rollback.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub app: String,
    pub upgrade_id: String,
    /// The template version the app stands on again.
    pub template_version: String,
    pub migration: MigrationReport,
}

fn problem(file: &str, pointer: &str, code: &'static str, message: String) -> RuntimeError {
    RuntimeError::InvalidBundle(vec![Problem {
        file: file.to_owned(),
        pointer: pointer.to_owned(),
        code,
        message,
        severity: trellis_model::Severity::Error,
    }])
}

fn parse_bundle(text: &str, what: &str) -> Result<RawBundle, RuntimeError> {
    serde_json::from_str(text).map_err(|e| RuntimeError::Internal(format!("{what}: {e}")))
}

impl Runtime {
    /// The id of the template an app was installed from (404 when it was not).
    pub async fn app_template_id(
        &self,
        actor: &Principal,
        app: &str,
    ) -> Result<String, RuntimeError> {
        let record = self.live_app(app).await?;
        let loaded = self.loaded_app(&record.id).await?;
        self.require_app_manager(actor, &loaded).await?;
        self.store()
            .app_template(&record.id)
            .await?
            .map(|t| t.template_id)
            .ok_or_else(|| {
                RuntimeError::NotFound(format!(
                    "the template app '{}' was installed from",
                    record.id
                ))
            })
    }

    /// The app's upgrades, newest first, with their merge reports.
    pub async fn app_upgrades(&self, actor: &Principal, app: &str) -> Result<Value, RuntimeError> {
        let record = self.live_app(app).await?;
        let loaded = self.loaded_app(&record.id).await?;
        self.require_app_manager(actor, &loaded).await?;
        let upgrades = self.store().app_upgrades(&record.id).await?;
        Ok(Value::Array(
            upgrades
                .into_iter()
                .map(|u| {
                    serde_json::json!({
                        "id": u.id,
                        "template": u.template_id,
                        "from_template_version": u.from_template_version,
                        "to_template_version": u.to_template_version,
                        "from_app_version": u.from_app_version,
                        "to_app_version": u.to_app_version,
                        "upgraded_at": u.upgraded_at,
                        "upgraded_by": u.upgraded_by,
                        "rolled_back_at": u.rolled_back_at,
                        "report": serde_json::from_str::<Value>(&u.report).unwrap_or_default(),
                    })
                })
                .collect(),
        ))
    }

    /// Upgrade `app` to the template version `template` by a three-way merge with the app's base.
    pub async fn upgrade_app(
        &self,
        actor: &Principal,
        app: &str,
        template: RawBundle,
        options: &UpgradeOptions,
    ) -> Result<UpgradeReport, RuntimeError> {
        let record = self.live_app(app).await?;
        let loaded = self.loaded_app(&record.id).await?;
        self.require_app_manager(actor, &loaded).await?;
        let Some(base_record) = self.store().app_template(&record.id).await? else {
            return Err(RuntimeError::Conflict(format!(
                "app '{}' was not installed from a template, so there is no base to merge with: publish the new bundle with PUT /api/apps/{}/bundle instead",
                record.id, record.id
            )));
        };
        let checked = check_app_bundle(&template).map_err(RuntimeError::InvalidBundle)?;
        let template_id = checked.id().to_string();
        let new_version = checked.manifest.version.clone();
        if template_id != base_record.template_id {
            return Err(problem(
                "trellis.json",
                "/id",
                "template_mismatch",
                format!(
                    "app '{}' was installed from template '{}', not '{template_id}'",
                    record.id, base_record.template_id
                ),
            ));
        }
        if new_version <= parse_version(&base_record.template_version) {
            return Err(problem(
                "trellis.json",
                "/version",
                "not_newer",
                format!(
                    "version {new_version} is not newer than {}, which app '{}' already stands on",
                    base_record.template_version, record.id
                ),
            ));
        }
        let base = parse_bundle(&base_record.base_bundle, "stored template base")?;
        let (version, local_text) = self.export_bundle(actor, &record.id).await?;
        let local = parse_bundle(&local_text, "stored app bundle")?;
        let theirs = with_app_id(template, &record.id);
        let mut outcome = merge_bundles(&base, &local, &theirs, &options.resolutions);
        // The merged app is the new template version, whatever either side did to the number.
        if let Some(Value::Object(manifest)) = outcome.merged.0.get_mut("trellis.json") {
            manifest.insert("version".into(), Value::String(new_version.to_string()));
        }
        tidy_state_mappings(&mut outcome.merged);
        let expected = options.expected_version.or(Some(version));
        let migration = self
            .publish_bundle(
                actor,
                &record.id,
                &outcome.merged,
                expected,
                options.dry_run,
            )
            .await?;
        let mut report = UpgradeReport {
            app: record.id.clone(),
            template: template_id.clone(),
            from_template_version: base_record.template_version.clone(),
            to_template_version: new_version.to_string(),
            dry_run: options.dry_run,
            template_changes: std::mem::take(&mut outcome.template_changes),
            local_changes: std::mem::take(&mut outcome.local_changes),
            conflicts: std::mem::take(&mut outcome.conflicts),
            migration,
            upgrade_id: None,
        };
        if options.dry_run {
            return Ok(report);
        }
        let upgrade_id = uuid::Uuid::now_v7().to_string();
        let report_text =
            serde_json::to_string(&report).map_err(|e| RuntimeError::Internal(e.to_string()))?;
        self.store()
            .insert_app_upgrade(&AppUpgradeRecord {
                id: upgrade_id.clone(),
                app_id: record.id.clone(),
                template_id: template_id.clone(),
                from_template_version: base_record.template_version.clone(),
                to_template_version: new_version.to_string(),
                from_app_version: version,
                to_app_version: report.migration.to_version,
                previous_base: base_record.base_bundle.clone(),
                report: report_text,
                upgraded_at: Utc::now(),
                upgraded_by: Some(actor.user_id.clone()),
                rolled_back_at: None,
            })
            .await?;
        self.store()
            .set_app_template(&AppTemplateRecord {
                app_id: record.id.clone(),
                template_id: template_id.clone(),
                template_version: new_version.to_string(),
                base_bundle: serde_json::to_string(&theirs)
                    .map_err(|e| RuntimeError::Internal(e.to_string()))?,
                installed_at: Utc::now(),
            })
            .await?;
        self.audit(
            Some(actor),
            "app.upgrade",
            Some(&record.id),
            Some(&template_id),
            "success",
            serde_json::json!({
                "from": base_record.template_version,
                "to": new_version.to_string(),
                "conflicts": report.conflicts.len(),
                "upgrade": upgrade_id,
            }),
        )
        .await?;
        tracing::info!(app = %record.id, template = %template_id, to = %new_version, conflicts = report.conflicts.len(), "app upgraded");
        report.upgrade_id = Some(upgrade_id);
        Ok(report)
    }

    /// Undo the app's last upgrade: publish the app version it replaced again (as a new version),
    /// moving records out of flow states that version does not have back to where they came from,
    /// and restore the template base. Refused when the app was published again since the upgrade.
    pub async fn rollback_upgrade(
        &self,
        actor: &Principal,
        app: &str,
        dry_run: bool,
    ) -> Result<RollbackReport, RuntimeError> {
        let record = self.live_app(app).await?;
        let loaded = self.loaded_app(&record.id).await?;
        self.require_app_manager(actor, &loaded).await?;
        let Some(upgrade) = self
            .store()
            .app_upgrades(&record.id)
            .await?
            .into_iter()
            .find(|u| u.rolled_back_at.is_none())
        else {
            return Err(RuntimeError::NotFound(format!(
                "an upgrade of app '{}' to roll back",
                record.id
            )));
        };
        if record.current_version != upgrade.to_app_version {
            return Err(RuntimeError::Conflict(format!(
                "app '{}' was published again after the upgrade (version {} → now {}); rolling back would discard those edits — publish the version you want with PUT /api/apps/{}/bundle",
                record.id, upgrade.to_app_version, record.current_version, record.id
            )));
        }
        let previous = self
            .store()
            .get_app_version(&record.id, upgrade.from_app_version)
            .await?
            .ok_or_else(|| {
                RuntimeError::Internal(format!(
                    "version {} of app '{}' is missing",
                    upgrade.from_app_version, record.id
                ))
            })?;
        let current = self.current_version(&record).await?;
        let mut target = parse_bundle(&previous.bundle, "stored app bundle")?;
        let now = parse_bundle(&current.bundle, "stored app bundle")?;
        map_states_back(&now, &mut target);
        let migration = self
            .publish_bundle(
                actor,
                &record.id,
                &target,
                Some(record.current_version),
                dry_run,
            )
            .await?;
        if !dry_run {
            self.store().mark_upgrade_rolled_back(&upgrade.id).await?;
            self.store()
                .set_app_template(&AppTemplateRecord {
                    app_id: record.id.clone(),
                    template_id: upgrade.template_id.clone(),
                    template_version: upgrade.from_template_version.clone(),
                    base_bundle: upgrade.previous_base.clone(),
                    installed_at: Utc::now(),
                })
                .await?;
            self.audit(
                Some(actor),
                "app.upgrade_rollback",
                Some(&record.id),
                Some(&upgrade.template_id),
                "success",
                serde_json::json!({"upgrade": upgrade.id, "to": upgrade.from_template_version}),
            )
            .await?;
        }
        Ok(RollbackReport {
            app: record.id,
            upgrade_id: upgrade.id,
            template_version: upgrade.from_template_version,
            migration,
        })
    }
}

/// For every flow of `target` that lacks states `now` has, add a `state_mapping` sending them back:
/// through the inverse of `now`'s own mapping (a rename goes back to the old name), else to the
/// target's initial state.
fn map_states_back(now: &RawBundle, target: &mut RawBundle) {
    for (path, flow_now) in &now.0 {
        if !path.starts_with("flows/") || !path.ends_with(".flow.json") {
            continue;
        }
        let Some(Value::Object(flow_target)) = target.0.get_mut(path) else {
            continue;
        };
        let state_ids = |flow: &Value| -> Vec<String> {
            flow.get("states")
                .and_then(Value::as_array)
                .map(|states| {
                    states
                        .iter()
                        .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let target_value = Value::Object(flow_target.clone());
        let target_states = state_ids(&target_value);
        let initial = target_value
            .get("states")
            .and_then(Value::as_array)
            .and_then(|states| {
                states
                    .iter()
                    .find(|s| s.get("initial").and_then(Value::as_bool) == Some(true))
            })
            .and_then(|s| s.get("id").and_then(Value::as_str))
            .map(str::to_owned);
        let forward = flow_now
            .get("state_mapping")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut mapping = flow_target
            .get("state_mapping")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for state in state_ids(flow_now) {
            if target_states.contains(&state) {
                continue;
            }
            let back = forward
                .iter()
                .find(|(old, new)| new.as_str() == Some(&state) && target_states.contains(old))
                .map(|(old, _)| old.clone())
                .or_else(|| initial.clone());
            if let Some(back) = back {
                mapping.insert(state, Value::String(back));
            }
        }
        if !mapping.is_empty() {
            flow_target.insert("state_mapping".into(), Value::Object(mapping));
        }
    }
}

/// State mappings only instruct one publish. After a merge, drop entries that no longer make sense:
/// those from a state the merged flow still has (nothing to move) or to a state it lacks (e.g. a
/// rollback's mapping back to a state the new version renamed). Records left in a removed state
/// without a mapping are then reported by the publish, never stranded silently.
fn tidy_state_mappings(bundle: &mut RawBundle) {
    for (path, flow) in bundle.0.iter_mut() {
        if !path.starts_with("flows/") || !path.ends_with(".flow.json") {
            continue;
        }
        let states: Vec<String> = flow
            .get("states")
            .and_then(Value::as_array)
            .map(|states| {
                states
                    .iter()
                    .filter_map(|s| s.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let Some(Value::Object(flow)) = Some(flow) else {
            continue;
        };
        let Some(Value::Object(mapping)) = flow.get_mut("state_mapping") else {
            continue;
        };
        mapping.retain(|old, new| {
            !states.contains(old) && new.as_str().is_some_and(|n| states.iter().any(|s| s == n))
        });
        if mapping.is_empty() {
            flow.remove("state_mapping");
        }
    }
}
