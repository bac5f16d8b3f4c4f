//! Records: create, read and merge-patch update with optimistic concurrency; shared helpers.
//! Deleting, restoring and history live in [`lifecycle`], lists in [`list`].

pub(crate) mod bulk_update;
mod lifecycle;
pub(crate) mod list;
pub mod merge;
pub mod saved_views;
mod system_create;

use std::sync::Arc;

use chrono::{Datelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use trellis_form::records::{apply_defaults, merge_patch, to_api, to_storage};
use trellis_form::{EntityValidator, FieldIssue, Locale, message};
use trellis_model::{Action, EntityDefinition, FieldKind};
use trellis_store::{NewRecord, RecordRow, StoreError, UniqueValue};

use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

/// A record as the API returns it (CONTRACT.md §2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordView {
    pub id: String,
    pub version: i64,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub data: Map<String, Value>,
}

/// A page of a list.
#[derive(Debug, Clone, Serialize)]
pub struct RecordPage {
    pub items: Vec<RecordView>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Only when asked for with `count=true`: lists never count by themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// Parameters of a list request, as received.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
    /// Full-text search over the searchable fields.
    pub q: Option<String>,
    pub count: bool,
    pub include_deleted: bool,
}

/// One entry of a record's history, with fields by their current names.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    pub operation: String,
    pub actor: Option<String>,
    pub at: chrono::DateTime<Utc>,
    pub before: Option<Map<String, Value>>,
    pub after: Option<Map<String, Value>>,
}

pub(crate) fn view(entity: &EntityDefinition, row: &RecordRow) -> RecordView {
    RecordView {
        id: row.id.clone(),
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
        deleted: row.deleted_at.is_some(),
        data: to_api(entity, &row.data.0),
    }
}

fn invalid(issues: Vec<FieldIssue>) -> RuntimeError {
    RuntimeError::InvalidRecord(issues)
}

/// Everything the store writes for a record: data by uid (keeping hidden values of `previous`), unique
/// values and search text.
pub(crate) fn record_write(
    entity: &EntityDefinition,
    named: &Map<String, Value>,
    previous: Option<&Map<String, Value>>,
) -> NewRecord {
    NewRecord {
        data: to_storage(entity, named, previous),
        uniques: unique_values(entity, named),
        search_text: trellis_form::records::search_text(entity, named),
        data_json: None,
    }
}

/// A new record to insert in bulk, its document written as JSON text straight from `named` (fields
/// by name; `storage_json`, no stored map built and serialized after — a fifth of an import's
/// validating time): `data` stays empty, the bulk insert reads only `data_json`.
pub(crate) fn new_record_serialized(
    entity: &EntityDefinition,
    named: &Map<String, Value>,
) -> NewRecord {
    NewRecord {
        data: Map::new(),
        uniques: unique_values(entity, named),
        search_text: trellis_form::records::search_text(entity, named),
        data_json: Some(trellis_form::records::storage_json(
            entity,
            named,
            &Map::new(),
        )),
    }
}

/// A record whose relations to check (fields by name) and its values before the write (`None`: a
/// new record).
pub(crate) type RelationCheck<'a> = (&'a Map<String, Value>, Option<&'a Map<String, Value>>);

/// A record as a page read gave it, taken apart: its fields by name, its keys that are no current
/// field (removed fields, unconverted originals) and its document's text, when the read had it.
/// The text is parsed straight into the two maps when the read kept it unparsed
/// (`Store::record_page_as_read`); otherwise the parsed data moves over.
pub(crate) fn take_apart(
    entity: &EntityDefinition,
    row: &mut RecordRow,
    document: Option<String>,
) -> Result<(trellis_form::records::NamedParts, Option<String>), String> {
    let stored = std::mem::take(&mut row.data.0);
    match document {
        Some(text) if stored.is_empty() => {
            let (named, hidden) = trellis_form::records::parse_named(entity, &text)
                .map_err(|e| format!("record '{}': unreadable stored data: {e}", row.id))?;
            Ok(((named, hidden), Some(text)))
        }
        document => Ok((trellis_form::records::into_named(entity, stored), document)),
    }
}

/// The search text of an update from `before` to `named` (fields by name), for a bulk write: built
/// only when a searchable field changed, with whether it changed (a nightly write-back or batch run
/// changes scores, not names: no text to build; an empty text is then never written).
pub(crate) fn changed_search_text(
    entity: &EntityDefinition,
    named: &Map<String, Value>,
    before: &Map<String, Value>,
) -> (String, bool) {
    if trellis_form::records::search_text_may_differ(entity, named, before) {
        let text = trellis_form::records::search_text(entity, named);
        let changed = text != trellis_form::records::search_text(entity, before);
        (text, changed)
    } else {
        (String::new(), false)
    }
}

/// The values under which a record's unique fields are indexed (emails compare case-insensitively).
pub(crate) fn unique_values_of(
    entity: &EntityDefinition,
    named: &Map<String, Value>,
) -> Vec<UniqueValue> {
    unique_values(entity, named)
}

fn unique_values(entity: &EntityDefinition, named: &Map<String, Value>) -> Vec<UniqueValue> {
    entity
        .fields
        .iter()
        .filter(|f| f.annotations.unique)
        .filter_map(|f| {
            let value = named.get(f.name.as_str()).filter(|v| !v.is_null())?;
            let text = match value {
                Value::String(s) if f.kind == FieldKind::Email => s.to_lowercase(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(UniqueValue {
                field_uid: f.uid.clone(),
                value: text,
            })
        })
        .collect()
}

/// Render an auto-number pattern such as `CUS-{YYYY}-{0000}`; the period is the date part, so
/// counters restart each year (or month) when the pattern says so.
pub(crate) fn auto_number(pattern: &str, counter: i64) -> String {
    let now = Utc::now();
    let mut out = pattern
        .replace("{YYYY}", &format!("{:04}", now.year()))
        .replace("{MM}", &format!("{:02}", now.month()));
    if let (Some(start), Some(end)) = (out.find("{0"), out.find("0}")) {
        let width = end + 1 - start - 1;
        out.replace_range(start..=end + 1, &format!("{counter:0width$}"));
    }
    out
}

pub(crate) fn auto_number_period(pattern: &str) -> String {
    let now = Utc::now();
    match (pattern.contains("{YYYY}"), pattern.contains("{MM}")) {
        (true, true) => format!("{:04}-{:02}", now.year(), now.month()),
        (true, false) => format!("{:04}", now.year()),
        _ => String::new(),
    }
}

pub(crate) const AUTO_NUMBER_PLACEHOLDER: &str = "\u{2026}";

impl Runtime {
    /// The current version of a live app, loaded and cached.
    /// A published version of an app (for flow runs pinned to the version they started with).
    pub(crate) async fn loaded_app_version(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Arc<LoadedApp>, RuntimeError> {
        if let Some(loaded) = self.cache.get(id, version) {
            return Ok(loaded);
        }
        let stored = self
            .store()
            .get_app_version(id, version)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("version {version} of app '{id}'")))?;
        Ok(self
            .cache
            .put(LoadedApp::load(id, version, &stored.bundle)?))
    }

    pub async fn loaded_app(&self, id: &str) -> Result<Arc<LoadedApp>, RuntimeError> {
        let app = self.live_app(id).await?;
        if let Some(loaded) = self.cache.get(&app.id, app.current_version) {
            return Ok(loaded);
        }
        let version = self.current_version(&app).await?;
        Ok(self.cache.put(LoadedApp::load(
            &app.id,
            app.current_version,
            &version.bundle,
        )?))
    }

    /// Fill system-managed fields of `named` for a create (`creating`) or an update.
    pub(crate) fn fill_system_fields(
        entity: &EntityDefinition,
        named: &mut Map<String, Value>,
        actor: &Principal,
        creating: bool,
    ) {
        let mut now = None;
        let mut now = || {
            now.get_or_insert_with(|| {
                Value::String(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            })
            .clone()
        };
        for field in entity.fields.iter().filter(|f| {
            matches!(
                f.kind,
                FieldKind::CreatedAt
                    | FieldKind::CreatedBy
                    | FieldKind::UpdatedAt
                    | FieldKind::UpdatedBy
                    | FieldKind::AutoNumber
            )
        }) {
            let name = field.name.to_string();
            match field.kind {
                FieldKind::CreatedAt if creating => {
                    named.insert(name, now());
                }
                FieldKind::CreatedBy if creating => {
                    named.insert(name, Value::String(actor.user_id.clone()));
                }
                FieldKind::UpdatedAt => {
                    named.insert(name, now());
                }
                FieldKind::UpdatedBy => {
                    named.insert(name, Value::String(actor.user_id.clone()));
                }
                FieldKind::AutoNumber if creating => {
                    named.insert(name, Value::String(AUTO_NUMBER_PLACEHOLDER.into()));
                }
                _ => {}
            }
        }
    }

    /// Replace auto-number placeholders with the next numbers (after validation passed); one counter
    /// reservation per field for the whole batch.
    pub(crate) async fn assign_auto_numbers(
        &self,
        app: &str,
        entity: &EntityDefinition,
        records: &mut [Map<String, Value>],
    ) -> Result<(), RuntimeError> {
        for field in entity
            .fields
            .iter()
            .filter(|f| f.kind == FieldKind::AutoNumber)
        {
            let waiting: Vec<usize> = (0..records.len())
                .filter(|&i| {
                    records[i].get(field.name.as_str()).and_then(Value::as_str)
                        == Some(AUTO_NUMBER_PLACEHOLDER)
                })
                .collect();
            if waiting.is_empty() {
                continue;
            }
            let pattern = field
                .annotations
                .pattern
                .clone()
                .unwrap_or_else(|| "{0000}".into());
            let period = auto_number_period(&pattern);
            let first = self
                .store()
                .reserve_counter(app, &entity.uid, &field.uid, &period, waiting.len() as i64)
                .await?;
            for (offset, index) in waiting.into_iter().enumerate() {
                records[index].insert(
                    field.name.to_string(),
                    Value::String(auto_number(&pattern, first + offset as i64)),
                );
            }
        }
        Ok(())
    }

    /// Relation fields must point at live records of their target entity. Checks many records with one
    /// query per relation field (and 500 ids), returning each record's problems. Each record comes
    /// with its values before the write (`None` for a new record): only the references the write
    /// sets are checked — one it keeps was checked when it was set, and deleting its target is
    /// refused, cascades or clears it (`OnDelete`), so it cannot dangle.
    pub(crate) async fn check_relations(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        records: &[RelationCheck<'_>],
        locale: Locale,
    ) -> Result<Vec<Vec<FieldIssue>>, RuntimeError> {
        let mut issues = vec![Vec::new(); records.len()];
        for field in entity.fields.iter().filter(|f| f.kind.is_relation()) {
            let Some(target) = field
                .annotations
                .relation
                .as_ref()
                .and_then(|spec| loaded.bundle.entities.get(&spec.entity))
            else {
                continue;
            };
            let all_ids = |record: &Map<String, Value>| -> Vec<(usize, String)> {
                match record.get(field.name.as_str()) {
                    Some(Value::String(id)) => vec![(0, id.clone())],
                    Some(Value::Array(items)) => items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| Some((i, v.as_str()?.to_owned())))
                        .collect(),
                    _ => Vec::new(),
                }
            };
            // The references a write sets: those the record did not hold before.
            let ids_of = |(named, before): &RelationCheck<'_>| {
                let kept: Vec<String> = before
                    .map(|before| all_ids(before).into_iter().map(|(_, id)| id).collect())
                    .unwrap_or_default();
                let mut ids = all_ids(named);
                ids.retain(|(_, id)| !kept.contains(id));
                ids
            };
            let mut wanted: Vec<String> = records
                .iter()
                .flat_map(|r| ids_of(r).into_iter().map(|(_, id)| id))
                .collect();
            if wanted.is_empty() {
                continue;
            }
            wanted.sort();
            wanted.dedup();
            let live: std::collections::HashSet<String> = self
                .store()
                .live_record_ids(&loaded.id, &target.uid, &wanted)
                .await?
                .into_iter()
                .collect();
            for (index, record) in records.iter().enumerate() {
                let is_array = record
                    .0
                    .get(field.name.as_str())
                    .is_some_and(Value::is_array);
                for (i, id) in &ids_of(record) {
                    if !live.contains(id) {
                        let pointer = if is_array {
                            format!("/{}/{i}", field.name)
                        } else {
                            format!("/{}", field.name)
                        };
                        issues[index].push(FieldIssue {
                            pointer,
                            code: "relation_missing",
                            message: message("relation_missing", locale, id),
                        });
                    }
                }
            }
        }
        Ok(issues)
    }

    fn unique_issue(entity: &EntityDefinition, error: StoreError, locale: Locale) -> RuntimeError {
        match error {
            StoreError::UniqueViolation { field_uid, value } => {
                let name = entity
                    .field_by_uid(&field_uid)
                    .map_or(field_uid.clone(), |f| f.name.to_string());
                invalid(vec![FieldIssue {
                    pointer: format!("/{name}"),
                    code: "unique",
                    message: message("unique", locale, &value),
                }])
            }
            other => other.into(),
        }
    }

    /// Validate `input` (fields by name) for a new record and return it ready to store (relations are
    /// checked by the caller, in batches).
    pub(crate) fn prepare_new_record(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        validator: &EntityValidator,
        input: Map<String, Value>,
        actor: &Principal,
        locale: Locale,
    ) -> Result<Map<String, Value>, Vec<FieldIssue>> {
        let mut issues = validator.check_writable(&input, locale);
        // The fields given, for `read_only_if` (a copy of every key of every imported row
        // otherwise).
        let given: Vec<String> = if validator.checks_changed_fields() {
            input.keys().cloned().collect()
        } else {
            Vec::new()
        };
        let mut named = input;
        named.retain(|_, v| !v.is_null());
        apply_defaults(entity, &mut named);
        // Records start in their flows' initial states.
        for flow in loaded.flows_of(entity.id.as_str()) {
            if let Some(initial) = flow.initial() {
                named
                    .entry(flow.state_field().to_owned())
                    .or_insert_with(|| Value::String(initial.id.to_string()));
            }
        }
        Self::fill_system_fields(entity, &mut named, actor, true);
        let given: Vec<&str> = given.iter().map(String::as_str).collect();
        issues.extend(validator.prepare(&mut named, &given, locale));
        if issues.is_empty() {
            Ok(named)
        } else {
            Err(issues)
        }
    }

    /// Create a record from its fields (by name).
    pub async fn create_record(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        input: &Value,
        locale: Locale,
    ) -> Result<RecordView, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, validator) = loaded.entity(entity_id)?;
        let Some(input) = input.as_object() else {
            return Err(invalid(vec![FieldIssue {
                pointer: String::new(),
                code: "not_an_object",
                message: message("not_an_object", locale, ""),
            }]));
        };
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Create)?;
        checked.require_editable(input.keys())?;
        let mut named = self
            .prepare_new_record(&loaded, entity, validator, input.clone(), actor, locale)
            .map_err(invalid)?;
        let done =
            Self::before_save(&loaded, entity, &mut named, None, true, locale).map_err(invalid)?;
        let issues = done.recheck(validator, &mut named, locale);
        if !issues.is_empty() {
            return Err(invalid(issues));
        }
        let runs = done.runs;
        let missing = self
            .check_relations(&loaded, entity, &[(&named, None)], locale)
            .await?
            .remove(0);
        if !missing.is_empty() {
            return Err(invalid(missing));
        }
        self.assign_auto_numbers(&loaded.id, entity, std::slice::from_mut(&mut named))
            .await?;
        let record = record_write(entity, &named, None);
        self.require_write_rows(&loaded, &checked, &record.data)
            .await?;
        let row = self
            .store()
            .insert_record_grouped(&loaded.id, &entity.uid, Some(&actor.user_id), record)
            .await
            .map_err(|e| Self::unique_issue(entity, e, locale))?;
        if loaded.flows_of(entity.id.as_str()).next().is_some() {
            self.start_flows(&loaded, entity, &row, Some(&actor.user_id))
                .await?;
        }
        if loaded.rules.is_empty() {
            return Ok(checked.view(&row));
        }
        self.log_runs(&loaded, "before_save", Some(&row.id), &runs)
            .await?;
        let row = self
            .after_save(&loaded, entity, row, None, &actor.user_id)
            .await?;
        Ok(checked.view(&row))
    }

    pub(crate) async fn live_record(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        id: &str,
    ) -> Result<RecordRow, RuntimeError> {
        match self.store().get_record(&loaded.id, &entity.uid, id).await? {
            Some(row) if row.deleted_at.is_none() => Ok(row),
            _ => Err(RuntimeError::NotFound(format!("record '{id}'"))),
        }
    }

    pub async fn get_record(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<RecordView, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        let row = self.readable_record(&loaded, &checked, id).await?;
        Ok(checked.view(&row))
    }

    /// The live record `id`, provided the user may read it (else it does not exist for them).
    pub(crate) async fn readable_record(
        &self,
        loaded: &LoadedApp,
        checked: &crate::access::Checked<'_>,
        id: &str,
    ) -> Result<RecordRow, RuntimeError> {
        checked.require(Action::Read)?;
        let row = self.live_record(loaded, checked.entity, id).await?;
        self.require_readable(loaded, checked, id, &row.data.0)
            .await?;
        Ok(row)
    }

    /// The record `id` for a write: readable (else 404), the action allowed and the record inside the
    /// user's write rows (else 403), and still at `expected_version` (else 412).
    pub(crate) async fn writable_record(
        &self,
        loaded: &LoadedApp,
        checked: &crate::access::Checked<'_>,
        id: &str,
        action: Action,
        expected_version: Option<i64>,
    ) -> Result<RecordRow, RuntimeError> {
        let current = self.readable_record(loaded, checked, id).await?;
        checked.require(action)?;
        self.require_write_rows(loaded, checked, &current.data.0)
            .await?;
        match expected_version {
            Some(expected) if expected != current.version => Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into()),
            _ => Ok(current),
        }
    }

    /// Apply a JSON merge patch. With `expected_version` (from `If-Match`) a stale version is refused
    /// with 412 and nothing changes; without it the patch applies to the current version, still
    /// atomically (a concurrent writer makes this one fail rather than be overwritten).
    #[allow(clippy::too_many_arguments)] // one per request part; a struct would only rename them
    pub async fn update_record(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
        patch: &Value,
        expected_version: Option<i64>,
        locale: Locale,
    ) -> Result<RecordView, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, validator) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        let current = self
            .writable_record(&loaded, &checked, id, Action::Update, expected_version)
            .await?;
        let Some(patch) = patch.as_object() else {
            return Err(invalid(vec![FieldIssue {
                pointer: String::new(),
                code: "not_an_object",
                message: message("not_an_object", locale, ""),
            }]));
        };
        checked.require_editable(patch.keys())?;
        let mut issues = validator.check_writable(patch, locale);
        let mut named = to_api(entity, &current.data.0);
        merge_patch(&mut named, patch);
        Self::fill_system_fields(entity, &mut named, actor, false);
        let before = to_api(entity, &current.data.0);
        let changed: Vec<&str> = patch
            .keys()
            .filter(|k| before.get(*k) != named.get(*k))
            .map(String::as_str)
            .collect();
        issues.extend(validator.prepare(&mut named, &changed, locale));
        if issues.is_empty() {
            issues.extend(
                self.check_relations(&loaded, entity, &[(&named, Some(&before))], locale)
                    .await?
                    .remove(0),
            );
        }
        if !issues.is_empty() {
            return Err(invalid(issues));
        }
        let done = Self::before_save(&loaded, entity, &mut named, Some(&before), false, locale)
            .map_err(invalid)?;
        let issues = done.recheck(validator, &mut named, locale);
        if !issues.is_empty() {
            return Err(invalid(issues));
        }
        let runs = done.runs;
        let record = record_write(entity, &named, Some(&current.data.0));
        self.require_write_rows(&loaded, &checked, &record.data)
            .await?;
        let row = self
            .store()
            .update_record(
                &loaded.id,
                &entity.uid,
                id,
                current.version,
                &record,
                Some(&actor.user_id),
            )
            .await
            .map_err(|e| Self::unique_issue(entity, e, locale))?;
        if loaded.rules.is_empty() {
            return Ok(checked.view(&row));
        }
        self.log_runs(&loaded, "before_save", Some(&row.id), &runs)
            .await?;
        let row = self
            .after_save(&loaded, entity, row, Some(before), &actor.user_id)
            .await?;
        Ok(checked.view(&row))
    }
}
