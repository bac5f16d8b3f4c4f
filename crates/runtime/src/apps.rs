//! Apps: create from a bundle, read, export, publish new versions with a migration report, soft delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use trellis_form::{MigrationPlan, plan_migration};
use trellis_model::{AppBundle, Identifier, Problem, RawBundle, check_bundle};
use trellis_store::{AppRecord, NewAppVersion, RecordMigration};

use crate::{Principal, Runtime, RuntimeError};

/// An app as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AppSummary {
    pub id: String,
    /// Number of the current published version (1, 2, …).
    pub version: i64,
    /// The manifest's semantic version of the current version.
    pub semver: String,
    pub name: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted: bool,
}

/// Result of creating an app (or of its dry run).
#[derive(Debug, Clone, Serialize)]
pub struct CreatedApp {
    pub id: String,
    pub version: i64,
    pub semver: String,
    pub dry_run: bool,
    /// Problems that do not block (e.g. missing translations).
    pub warnings: Vec<Problem>,
}

/// What publishing a new version does (or would do, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    pub app: String,
    pub dry_run: bool,
    pub from_version: i64,
    /// The version that was (or would be) created.
    pub to_version: i64,
    pub semver: String,
    /// Metadata changes, matched by stable uid.
    #[serde(flatten)]
    pub plan: MigrationPlan,
    /// Records whose stored data the migration rewrites (kind conversions, defaults of added fields).
    pub records_migrated: u64,
    /// Every value that cannot convert to its field's new kind. It is not lost: the record keeps it
    /// beside the field, and the history keeps the record as it was.
    pub unconverted: Vec<UnconvertedValue>,
    pub warnings: Vec<Problem>,
    /// Records moved out of flow states the new version removes, per `flow: old → new`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub states_moved: std::collections::BTreeMap<String, u64>,
}

/// A stored value that a kind change cannot convert.
#[derive(Debug, Clone, Serialize)]
pub struct UnconvertedValue {
    pub entity: String,
    pub record_id: String,
    pub field: String,
    pub value: serde_json::Value,
    pub reason: String,
}

fn require_admin(principal: &Principal, action: &str) -> Result<(), RuntimeError> {
    if principal.is_admin {
        Ok(())
    } else {
        Err(RuntimeError::Forbidden(format!(
            "only platform admins can {action}"
        )))
    }
}

fn parse_app_id(id: &str) -> Result<Identifier, RuntimeError> {
    // An id that can never exist is simply not found (no reason to reveal the id rules here).
    Identifier::parse(id).map_err(|_| RuntimeError::NotFound(format!("app '{id}'")))
}

/// Validate a bundle completely: structure (model) and expressions (form engine).
pub fn check_app_bundle(raw: &RawBundle) -> Result<AppBundle, Vec<Problem>> {
    let mut bundle = check_bundle(raw)?;
    let mut problems = trellis_form::check_expressions(&bundle);
    problems.extend(check_role_filters(&bundle));
    let flow_problems = trellis_flow::check_flows(&bundle).1;
    let rule_problems = trellis_rules::check_rules(&bundle).1;
    let (reports, report_problems) = trellis_report::check_reports(&bundle);
    problems.extend(report_problems);
    problems.extend(check_report_filters(&bundle, &reports));
    problems.extend(trellis_report::check_dashboards(&bundle, &reports).1);
    problems.extend(
        trellis_model::template_test::check_template_tests(&bundle)
            .1
            .into_vec(),
    );
    for problem in flow_problems.into_iter().chain(rule_problems) {
        if problem.severity == trellis_model::Severity::Error {
            problems.push(problem);
        } else {
            bundle.warnings.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(bundle)
    } else {
        Err(problems)
    }
}

/// A flow whose new version removes states: where its records' states live and where they go.
struct StateMove {
    flow: String,
    entity_uid: String,
    field_uid: String,
    removed: Vec<String>,
    mapping: std::collections::BTreeMap<String, String>,
}

fn state_moves(old: &AppBundle, new: &AppBundle) -> Vec<StateMove> {
    let (old_flows, new_flows) = (
        trellis_flow::check_flows(old).0,
        trellis_flow::check_flows(new).0,
    );
    let mut moves = Vec::new();
    for (id, old_flow) in &old_flows {
        let Some(new_flow) = new_flows.get(id) else {
            continue;
        };
        let Some(entity) = new.entities.get(&new_flow.definition.entity) else {
            continue;
        };
        let Some(field) = entity.field(new_flow.state_field()) else {
            continue;
        };
        let removed: Vec<String> = old_flow
            .definition
            .states
            .iter()
            .filter(|s| new_flow.state(s.id.as_str()).is_none())
            .map(|s| s.id.to_string())
            .collect();
        if removed.is_empty() {
            continue;
        }
        moves.push(StateMove {
            flow: id.clone(),
            entity_uid: entity.uid.clone(),
            field_uid: field.uid.clone(),
            removed,
            mapping: new_flow
                .definition
                .state_mapping
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }
    moves
}

/// Every metadata file's JSON Schema, as committed in `schemas/`: the model's, with the flow schema
/// from the flow engine (which owns that file kind).
pub fn metadata_schemas() -> Vec<(&'static str, serde_json::Value)> {
    let mut schemas: Vec<(&'static str, serde_json::Value)> = trellis_model::schemas::all()
        .into_iter()
        .map(|(name, schema)| match name {
            "flow" => (name, trellis_flow::schema()),
            "rule" => (name, trellis_rules::schema()),
            "report" => (name, trellis_report::schema()),
            "test" => (
                name,
                trellis_model::schemas::schema_for::<trellis_model::template_test::TemplateTest>(
                    "test",
                    "Trellis template test (tests/<name>.test.json)",
                ),
            ),
            _ => (name, schema),
        })
        .collect();
    schemas.push(("dashboard", trellis_report::dashboard_schema()));
    schemas
}

/// Report dataset filters must fit their entity; variables stand for any user.
fn check_report_filters(
    bundle: &AppBundle,
    reports: &std::collections::BTreeMap<String, trellis_report::CompiledReport>,
) -> Vec<Problem> {
    let mut problems = trellis_model::Problems::default();
    let sample = |name: &str| match name {
        "$user" | "$user.username" | "$user.department" => Some(serde_json::json!("someone")),
        "$user.department.descendants" | "$user.department.members" => {
            Some(serde_json::json!(["someone"]))
        }
        other => trellis_access::relative_day(other, chrono::Utc::now().date_naive()),
    };
    for (id, report) in reports {
        let Some(raw) = &report.definition.dataset.filter else {
            continue;
        };
        let Some(entity) = bundle.entities.get(report.entity()) else {
            continue;
        };
        if let Err(issues) =
            trellis_form::check_filter(&bundle.entities, entity, raw, "/dataset/filter", &sample)
        {
            for issue in issues {
                problems.error(
                    &format!("reports/{id}.report.json"),
                    issue.pointer,
                    issue.code,
                    issue.message,
                );
            }
        }
    }
    problems.into_vec()
}

/// Row filters of the bundle's roles must fit their entity; variables stand for any user.
fn check_role_filters(bundle: &AppBundle) -> Vec<Problem> {
    let mut problems = trellis_model::Problems::default();
    let sample = |name: &str| match name {
        "$user" | "$user.username" | "$user.department" => Some(serde_json::json!("someone")),
        "$user.department.descendants" | "$user.department.members" => {
            Some(serde_json::json!(["someone"]))
        }
        other => trellis_access::relative_day(other, chrono::Utc::now().date_naive()),
    };
    for (id, role) in &bundle.role_files {
        let file = format!("roles/{id}.role.json");
        for (entity_id, rights) in &role.entities {
            let Some(entity) = bundle.entities.get(entity_id) else {
                continue;
            };
            for (key, filter) in [("rows", &rights.rows), ("write_rows", &rights.write_rows)] {
                let Some(filter) = filter else { continue };
                let raw = serde_json::to_value(filter).unwrap_or_default();
                let base = format!("/entities/{entity_id}/{key}");
                if let Err(issues) =
                    trellis_form::check_filter(&bundle.entities, entity, &raw, &base, &sample)
                {
                    for issue in issues {
                        problems.error(&file, issue.pointer, issue.code, issue.message);
                    }
                }
            }
        }
    }
    problems.into_vec()
}

fn check(raw: &RawBundle) -> Result<AppBundle, RuntimeError> {
    check_app_bundle(raw).map_err(RuntimeError::InvalidBundle)
}

fn serialize_bundle(raw: &RawBundle) -> Result<String, RuntimeError> {
    serde_json::to_string(raw).map_err(|e| RuntimeError::Internal(e.to_string()))
}

fn parse_stored_bundle(app: &str, text: &str) -> Result<AppBundle, RuntimeError> {
    let raw: RawBundle = serde_json::from_str(text).map_err(|e| {
        RuntimeError::Internal(format!("stored bundle of app '{app}' is not JSON: {e}"))
    })?;
    check_bundle(&raw).map_err(|problems| {
        RuntimeError::Internal(format!(
            "stored bundle of app '{app}' no longer validates ({} problems)",
            problems.len()
        ))
    })
}

impl Runtime {
    /// Create an app from a bundle. With `dry_run` only validate (and check the id is free).
    pub async fn create_app(
        &self,
        actor: &Principal,
        raw: &RawBundle,
        dry_run: bool,
    ) -> Result<CreatedApp, RuntimeError> {
        require_admin(actor, "create apps")?;
        let bundle = check(raw)?;
        let id = bundle.id().to_string();
        let semver = bundle.manifest.version.to_string();
        if dry_run {
            if self.store().get_app(&id).await?.is_some() {
                return Err(RuntimeError::Conflict(format!(
                    "an app with id '{id}' already exists"
                )));
            }
            return Ok(CreatedApp {
                id,
                version: 1,
                semver,
                dry_run,
                warnings: bundle.warnings,
            });
        }
        let text = serialize_bundle(raw)?;
        let record = self
            .store()
            .create_app(&NewAppVersion {
                app_id: &id,
                semver: &semver,
                bundle: &text,
                actor: Some(&actor.user_id),
                summary: serde_json::json!({"entities": bundle.entities.len()}),
            })
            .await?;
        self.audit(
            Some(actor),
            "app.create",
            Some(&id),
            Some(&id),
            "success",
            serde_json::json!({"version": semver, "publisher": bundle.manifest.publisher}),
        )
        .await?;
        tracing::info!(app = %id, version = record.current_version, "app created");
        Ok(CreatedApp {
            id,
            version: record.current_version,
            semver,
            dry_run,
            warnings: bundle.warnings,
        })
    }

    /// Every live app (and deleted ones for admins who ask).
    pub async fn list_apps(
        &self,
        actor: &Principal,
        include_deleted: bool,
    ) -> Result<Vec<AppSummary>, RuntimeError> {
        let records = self
            .store()
            .list_apps(include_deleted && actor.is_admin)
            .await?;
        // Others see the apps in which they (or their department) hold a role.
        let visible = if actor.is_admin {
            None
        } else {
            let user = self.store().get_user(&actor.user_id).await?;
            let departments = self.store().list_departments().await?;
            let mut up = Vec::new();
            let mut current = user.and_then(|u| u.department_id);
            while let Some(id) = current {
                if up.contains(&id) {
                    break;
                }
                current = departments
                    .iter()
                    .find(|d| d.id == id)
                    .and_then(|d| d.parent_id.clone());
                up.push(id);
            }
            Some(self.store().apps_with_roles(&actor.user_id, &up).await?)
        };
        let mut apps = Vec::with_capacity(records.len());
        for record in records {
            if visible.as_ref().is_none_or(|ids| ids.contains(&record.id)) {
                apps.push(self.summarize(record).await?);
            }
        }
        Ok(apps)
    }

    pub(crate) async fn live_app(&self, id: &str) -> Result<AppRecord, RuntimeError> {
        let id = parse_app_id(id)?;
        match self.store().get_app(id.as_str()).await? {
            Some(app) if app.deleted_at.is_none() => Ok(app),
            _ => Err(RuntimeError::NotFound(format!("app '{id}'"))),
        }
    }

    /// The published version an app currently serves.
    pub(crate) async fn current_version(
        &self,
        app: &AppRecord,
    ) -> Result<trellis_store::AppVersionRecord, RuntimeError> {
        self.store()
            .get_app_version(&app.id, app.current_version)
            .await?
            .ok_or_else(|| {
                RuntimeError::Internal(format!("app '{}' has no current version", app.id))
            })
    }

    async fn summarize(&self, record: AppRecord) -> Result<AppSummary, RuntimeError> {
        let version = self.current_version(&record).await?;
        let raw: RawBundle = serde_json::from_str(&version.bundle)
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        let name = raw
            .0
            .get("trellis.json")
            .and_then(|m| m.get("name"))
            .cloned()
            .unwrap_or_default();
        Ok(AppSummary {
            id: record.id,
            version: record.current_version,
            semver: record.semver,
            name,
            created_at: record.created_at,
            updated_at: record.updated_at,
            deleted: record.deleted_at.is_some(),
        })
    }

    pub async fn get_app(&self, actor: &Principal, id: &str) -> Result<AppSummary, RuntimeError> {
        let record = self.live_app(id).await?;
        self.require_member(actor, &record.id).await?;
        self.summarize(record).await
    }

    /// Refuse (404: the app does not exist for them) users who hold no role in the app.
    pub(crate) async fn require_member(
        &self,
        actor: &Principal,
        app: &str,
    ) -> Result<(), RuntimeError> {
        if actor.is_admin {
            return Ok(());
        }
        let loaded = self.loaded_app(app).await?;
        if self.subject(actor, &loaded).await?.grants.is_empty() {
            return Err(RuntimeError::NotFound(format!("app '{app}'")));
        }
        Ok(())
    }

    /// The current bundle of an app as JSON text, exactly as it was published, with its version number.
    pub async fn export_bundle(
        &self,
        actor: &Principal,
        id: &str,
    ) -> Result<(i64, String), RuntimeError> {
        let app = self.live_app(id).await?;
        self.require_member(actor, &app.id).await?;
        let version = self.current_version(&app).await?;
        Ok((version.version, version.bundle))
    }

    /// Publish a new version of an app. `expected_version` (from `If-Match`) guards against publishing
    /// over someone else's newer version. With `dry_run` nothing changes.
    pub async fn publish_bundle(
        &self,
        actor: &Principal,
        id: &str,
        raw: &RawBundle,
        expected_version: Option<i64>,
        dry_run: bool,
    ) -> Result<MigrationReport, RuntimeError> {
        let app = self.live_app(id).await?;
        let loaded = self.loaded_app(&app.id).await?;
        self.require_app_manager(actor, &loaded).await?;
        if let Some(expected) = expected_version
            && expected != app.current_version
        {
            return Err(RuntimeError::PreconditionFailed(format!(
                "app '{id}' is at version {}, not {expected}; reload it and publish again",
                app.current_version
            )));
        }
        let new = check(raw)?;
        if new.id().as_str() != app.id {
            return Err(RuntimeError::InvalidBundle(vec![Problem {
                file: "trellis.json".into(),
                pointer: "/id".into(),
                code: "app_id_mismatch",
                message: format!(
                    "the manifest id '{}' must stay '{}' when publishing to this app",
                    new.id(),
                    app.id
                ),
                severity: trellis_model::Severity::Error,
            }]));
        }
        let current = self.current_version(&app).await?;
        let old = parse_stored_bundle(&app.id, &current.bundle)?;
        let plan = plan_migration(&old, &new);
        let semver = new.manifest.version.to_string();
        let mut report = MigrationReport {
            app: app.id.clone(),
            dry_run,
            from_version: app.current_version,
            to_version: app.current_version + 1,
            semver: semver.clone(),
            plan,
            records_migrated: 0,
            unconverted: Vec::new(),
            warnings: new.warnings.clone(),
            states_moved: Default::default(),
        };
        let mut migrated = Vec::new();
        let mut reindexed = 0u64;
        let moves = state_moves(&old, &new);
        let mut stranded: std::collections::BTreeMap<(String, String), usize> = Default::default();
        for new_entity in new.entities.values() {
            let Some(old_entity) = old.entities.values().find(|e| e.uid == new_entity.uid) else {
                continue;
            };
            // Fields made searchable or not: every record's search text is written anew (no new
            // version: its data stays as it is).
            let search_changed = trellis_form::records::search_fields(old_entity)
                != trellis_form::records::search_fields(new_entity);
            // Nothing stored can change: its records are not read (a million customers' orders).
            if !search_changed
                && !trellis_form::records::migration_may_change(old_entity, new_entity)
                && !moves.iter().any(|m| m.entity_uid == new_entity.uid)
            {
                continue;
            }
            for row in self.store().all_records(&app.id, &new_entity.uid).await? {
                // Records in states the new flow version removes move as its state_mapping says.
                let mut source = row.data.0.clone();
                let mut remapped = false;
                for m in moves.iter().filter(|m| m.entity_uid == new_entity.uid) {
                    let Some(state) = source.get(&m.field_uid).and_then(|v| v.as_str()) else {
                        continue;
                    };
                    if !m.removed.iter().any(|s| s == state) {
                        continue;
                    }
                    match m.mapping.get(state) {
                        Some(target) => {
                            *report
                                .states_moved
                                .entry(format!("{}: {state} → {target}", m.flow))
                                .or_default() += 1;
                            source.insert(
                                m.field_uid.clone(),
                                serde_json::Value::String(target.clone()),
                            );
                            remapped = true;
                        }
                        None => {
                            *stranded
                                .entry((m.flow.clone(), state.to_owned()))
                                .or_default() += 1
                        }
                    }
                }
                let (data, failures) =
                    trellis_form::records::migrate_stored(old_entity, new_entity, &source);
                let data = data.or_else(|| remapped.then(|| source.clone()));
                report
                    .unconverted
                    .extend(failures.into_iter().map(|f| UnconvertedValue {
                        entity: new_entity.id.to_string(),
                        record_id: row.id.clone(),
                        field: f.field,
                        value: f.value,
                        reason: f.reason,
                    }));
                if let Some(data) = data {
                    migrated.push(RecordMigration::Rewritten(trellis_store::MigratedRecord {
                        entity: new_entity.uid.clone(),
                        id: row.id.clone(),
                        version: row.version,
                        before: row.data.0.clone(),
                        search_text: trellis_form::records::search_text(
                            new_entity,
                            &trellis_form::records::to_api(new_entity, &data),
                        ),
                        data,
                    }));
                } else if search_changed {
                    reindexed += 1;
                    migrated.push(RecordMigration::Reindexed {
                        id: row.id.clone(),
                        version: row.version,
                        search_text: trellis_form::records::search_text(
                            new_entity,
                            &trellis_form::records::to_api(new_entity, &row.data.0),
                        ),
                    });
                }
            }
        }
        if !stranded.is_empty() {
            return Err(RuntimeError::InvalidBundle(
                stranded
                    .into_iter()
                    .map(|((flow, state), count)| Problem {
                        file: format!("flows/{flow}.flow.json"),
                        pointer: format!("/state_mapping/{state}"),
                        code: "stranded_records",
                        message: format!(
                            "{count} record(s) are in state '{state}', which this version removes: map it to a state of the new version in state_mapping"
                        ),
                        severity: trellis_model::Severity::Error,
                    })
                    .collect(),
            ));
        }
        report.records_migrated = migrated.len() as u64 - reindexed;
        if dry_run {
            return Ok(report);
        }
        let text = serialize_bundle(raw)?;
        let summary = serde_json::to_value(&report.plan)
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        let version = self
            .store()
            .publish_app_version(
                &NewAppVersion {
                    app_id: &app.id,
                    semver: &semver,
                    bundle: &text,
                    actor: Some(&actor.user_id),
                    summary,
                },
                app.current_version,
                &migrated,
            )
            .await
            .map_err(|e| match e {
                trellis_store::StoreError::Conflict(message) => {
                    RuntimeError::PreconditionFailed(message)
                }
                other => other.into(),
            })?;
        report.to_version = version;
        // The new version may define other roles: cached permissions must be rebuilt.
        self.store().bump_access_epoch().await?;
        self.audit(
            Some(actor),
            "app.publish",
            Some(&app.id),
            Some(&app.id),
            "success",
            serde_json::json!({"version": version, "changes": report.plan.changes.len()}),
        )
        .await?;
        tracing::info!(app = %app.id, version, changes = report.plan.changes.len(), records_migrated = report.records_migrated, search_texts_rewritten = reindexed, "app published");
        Ok(report)
    }

    /// Soft-delete an app; it can be restored with [`Self::restore_app`].
    pub async fn delete_app(&self, actor: &Principal, id: &str) -> Result<(), RuntimeError> {
        require_admin(actor, "delete apps")?;
        let app = self.live_app(id).await?;
        self.store()
            .set_app_deleted(&app.id, true, Some(&actor.user_id))
            .await?;
        self.audit(
            Some(actor),
            "app.delete",
            Some(&app.id),
            Some(&app.id),
            "success",
            serde_json::json!({}),
        )
        .await?;
        tracing::info!(app = %app.id, "app deleted (soft)");
        Ok(())
    }

    /// Restore a soft-deleted app.
    pub async fn restore_app(
        &self,
        actor: &Principal,
        id: &str,
    ) -> Result<AppSummary, RuntimeError> {
        require_admin(actor, "restore apps")?;
        let id = parse_app_id(id)?;
        if !self
            .store()
            .set_app_deleted(id.as_str(), false, Some(&actor.user_id))
            .await?
        {
            return match self.store().get_app(id.as_str()).await? {
                Some(_) => Err(RuntimeError::Conflict(format!("app '{id}' is not deleted"))),
                None => Err(RuntimeError::NotFound(format!("app '{id}'"))),
            };
        }
        self.get_app(actor, id.as_str()).await
    }
}
