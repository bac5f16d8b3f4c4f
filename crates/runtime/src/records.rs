//! Records: create, read, list (filter, sort, keyset pages), merge-patch update with optimistic
//! concurrency, soft delete and restore with relation integrity, and history.

use std::sync::Arc;

use chrono::{Datelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use trellis_form::records::{apply_defaults, merge_patch, to_api, to_storage};
use trellis_form::{EntityValidator, FieldIssue, Locale, check_filter, message};
use trellis_model::{
    CheckedFilter, EntityDefinition, FieldKind, FieldPath, FilterLeaf, FilterOp, OnDelete,
};
use trellis_store::{Cursor, NewRecord, RecordRow, SortKey, StoreError, UniqueValue};

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
    pub async fn loaded_app(&self, id: &str) -> Result<Arc<LoadedApp>, RuntimeError> {
        let app = self.live_app(id).await?;
        if let Some(loaded) = self.cache.get(&app.id, app.current_version) {
            return Ok(loaded);
        }
        let version = self
            .store()
            .get_app_version(&app.id, app.current_version)
            .await?
            .ok_or_else(|| {
                RuntimeError::Internal(format!("app '{}' has no current version", app.id))
            })?;
        Ok(self.cache.put(LoadedApp::load(
            &app.id,
            app.current_version,
            &version.bundle,
        )?))
    }

    /// Fill system-managed fields of `named` for a create (`creating`) or an update.
    fn fill_system_fields(
        &self,
        app: &str,
        entity: &EntityDefinition,
        named: &mut Map<String, Value>,
        actor: &Principal,
        creating: bool,
    ) {
        let now = Value::String(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        for field in &entity.fields {
            let name = field.name.to_string();
            match field.kind {
                FieldKind::CreatedAt if creating => {
                    named.insert(name, now.clone());
                }
                FieldKind::CreatedBy if creating => {
                    named.insert(name, Value::String(actor.user_id.clone()));
                }
                FieldKind::UpdatedAt => {
                    named.insert(name, now.clone());
                }
                FieldKind::UpdatedBy => {
                    named.insert(name, Value::String(actor.user_id.clone()));
                }
                FieldKind::AutoNumber if creating => {
                    let _ = app;
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
    /// query per relation field (and 500 ids), returning each record's problems.
    pub(crate) async fn check_relations(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        records: &[&Map<String, Value>],
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
            let ids_of = |named: &Map<String, Value>| -> Vec<String> {
                match named.get(field.name.as_str()) {
                    Some(Value::String(id)) => vec![id.clone()],
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                }
            };
            let mut wanted: Vec<String> = records.iter().flat_map(|r| ids_of(r)).collect();
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
            for (index, named) in records.iter().enumerate() {
                let is_array = named.get(field.name.as_str()).is_some_and(Value::is_array);
                for (i, id) in ids_of(named).iter().enumerate() {
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
        input: &Value,
        actor: &Principal,
        locale: Locale,
    ) -> Result<Map<String, Value>, Vec<FieldIssue>> {
        let Some(input) = input.as_object() else {
            return Err(vec![FieldIssue {
                pointer: String::new(),
                code: "not_an_object",
                message: message("not_an_object", locale, ""),
            }]);
        };
        let mut issues = validator.check_writable(input, locale);
        let mut named = input.clone();
        named.retain(|_, v| !v.is_null());
        apply_defaults(entity, &mut named);
        self.fill_system_fields(&loaded.id, entity, &mut named, actor, true);
        let given: Vec<&str> = input.keys().map(String::as_str).collect();
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
        let mut named = self
            .prepare_new_record(&loaded, entity, validator, input, actor, locale)
            .map_err(invalid)?;
        let missing = self
            .check_relations(&loaded, entity, &[&named], locale)
            .await?
            .remove(0);
        if !missing.is_empty() {
            return Err(invalid(missing));
        }
        self.assign_auto_numbers(&loaded.id, entity, std::slice::from_mut(&mut named))
            .await?;
        let record = record_write(entity, &named, None);
        let row = self
            .store()
            .insert_record_grouped(&loaded.id, &entity.uid, Some(&actor.user_id), record)
            .await
            .map_err(|e| Self::unique_issue(entity, e, locale))?;
        Ok(view(entity, &row))
    }

    async fn live_record(
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
        _actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<RecordView, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        Ok(view(entity, &self.live_record(&loaded, entity, id).await?))
    }

    /// Apply a JSON merge patch. With `expected_version` (from `If-Match`) a stale version is refused
    /// with 412 and nothing changes; without it the patch applies to the current version, still
    /// atomically (a concurrent writer makes this one fail rather than be overwritten).
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
        let current = self.live_record(&loaded, entity, id).await?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into());
        }
        let Some(patch) = patch.as_object() else {
            return Err(invalid(vec![FieldIssue {
                pointer: String::new(),
                code: "not_an_object",
                message: message("not_an_object", locale, ""),
            }]));
        };
        let mut issues = validator.check_writable(patch, locale);
        let mut named = to_api(entity, &current.data.0);
        merge_patch(&mut named, patch);
        self.fill_system_fields(&loaded.id, entity, &mut named, actor, false);
        let before = to_api(entity, &current.data.0);
        let changed: Vec<&str> = patch
            .keys()
            .filter(|k| before.get(*k) != named.get(*k))
            .map(String::as_str)
            .collect();
        issues.extend(validator.prepare(&mut named, &changed, locale));
        if issues.is_empty() {
            issues.extend(
                self.check_relations(&loaded, entity, &[&named], locale)
                    .await?
                    .remove(0),
            );
        }
        if !issues.is_empty() {
            return Err(invalid(issues));
        }
        let record = record_write(entity, &named, Some(&current.data.0));
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
        Ok(view(entity, &row))
    }

    /// Soft-delete a record. References to it are handled as each relation says: `restrict` refuses
    /// (409, nothing changes), `cascade` deletes the referencing records, `set_null` clears the reference.
    pub async fn delete_record(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> Result<(), RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let current = self.live_record(&loaded, entity, id).await?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(StoreError::VersionMismatch {
                current: current.version,
            }
            .into());
        }
        let references = self.references_to(&loaded, entity, id).await?;
        let blocking: Vec<String> = references
            .iter()
            .filter(|r| r.on_delete == OnDelete::Restrict)
            .map(|r| format!("{} record {} (field {})", r.entity.id, r.row.id, r.field))
            .collect();
        if !blocking.is_empty() {
            return Err(RuntimeError::Conflict(format!(
                "record '{id}' is still referenced by {}; remove those references first",
                blocking.join(", ")
            )));
        }
        for reference in references {
            match reference.on_delete {
                OnDelete::Cascade => {
                    Box::pin(self.delete_record(
                        actor,
                        app,
                        reference.entity.id.as_str(),
                        &reference.row.id,
                        None,
                    ))
                    .await?;
                }
                OnDelete::SetNull => {
                    let mut named = to_api(&reference.entity, &reference.row.data.0);
                    match named.get_mut(&reference.field) {
                        Some(Value::Array(items)) => items.retain(|v| v.as_str() != Some(id)),
                        _ => {
                            named.remove(&reference.field);
                        }
                    }
                    let record =
                        record_write(&reference.entity, &named, Some(&reference.row.data.0));
                    self.store()
                        .update_record(
                            &loaded.id,
                            &reference.entity.uid,
                            &reference.row.id,
                            reference.row.version,
                            &record,
                            Some(&actor.user_id),
                        )
                        .await?;
                }
                OnDelete::Restrict => {}
            }
        }
        self.store()
            .set_record_deleted(&loaded.id, &entity.uid, id, true, &[], Some(&actor.user_id))
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("record '{id}'")))?;
        Ok(())
    }

    /// Live records of the app whose relation fields point at `id` of `entity`.
    async fn references_to(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        id: &str,
    ) -> Result<Vec<Reference>, RuntimeError> {
        let mut found = Vec::new();
        for other in loaded.bundle.entities.values() {
            for field in other.fields.iter().filter(|f| {
                f.annotations
                    .relation
                    .as_ref()
                    .is_some_and(|r| r.entity == entity.id)
            }) {
                let op = if field.kind == FieldKind::RelationMany {
                    FilterOp::Contains
                } else {
                    FilterOp::Eq
                };
                let filter = CheckedFilter::Leaf(FilterLeaf {
                    path: FieldPath::Own {
                        uid: field.uid.clone(),
                    },
                    kind: field.kind,
                    op,
                    values: vec![Value::String(id.to_owned())],
                    empty: false,
                });
                let rows = self
                    .store()
                    .list_records(
                        &loaded.id,
                        &other.uid,
                        &filter,
                        None,
                        &[],
                        None,
                        1000,
                        false,
                    )
                    .await?;
                let on_delete = field
                    .annotations
                    .relation
                    .as_ref()
                    .map(|r| r.on_delete)
                    .unwrap_or_default();
                for row in rows {
                    found.push(Reference {
                        entity: other.clone(),
                        field: field.name.to_string(),
                        on_delete,
                        row,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Restore a soft-deleted record (its unique values must still be free).
    pub async fn restore_record(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<RecordView, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let Some(row) = self.store().get_record(&loaded.id, &entity.uid, id).await? else {
            return Err(RuntimeError::NotFound(format!("record '{id}'")));
        };
        if row.deleted_at.is_none() {
            return Err(RuntimeError::Conflict(format!(
                "record '{id}' is not deleted"
            )));
        }
        let uniques = unique_values(entity, &to_api(entity, &row.data.0));
        let restored = self
            .store()
            .set_record_deleted(
                &loaded.id,
                &entity.uid,
                id,
                false,
                &uniques,
                Some(&actor.user_id),
            )
            .await
            .map_err(|e| match e {
                StoreError::UniqueViolation { field_uid, value } => {
                    RuntimeError::Conflict(format!(
                        "cannot restore: another record now uses '{value}' in field {}",
                        entity
                            .field_by_uid(&field_uid)
                            .map_or(field_uid.clone(), |f| f.name.to_string())
                    ))
                }
                other => other.into(),
            })?
            .ok_or_else(|| RuntimeError::Conflict(format!("record '{id}' is not deleted")))?;
        Ok(view(entity, &restored))
    }

    /// Every change of a record (also of a deleted one), oldest first.
    pub async fn record_history(
        &self,
        _actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<Vec<HistoryEntry>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let rows = self
            .store()
            .record_history(&loaded.id, &entity.uid, id)
            .await?;
        if rows.is_empty() {
            return Err(RuntimeError::NotFound(format!("record '{id}'")));
        }
        let shape = |value: &Option<sqlx_json::Json<Value>>| {
            value
                .as_ref()
                .and_then(|v| v.0.as_object())
                .map(|m| to_api(entity, m))
        };
        Ok(rows
            .iter()
            .map(|row| HistoryEntry {
                version: row.version,
                operation: row.operation.clone(),
                actor: row.actor.clone(),
                at: row.at,
                before: shape(&row.before),
                after: shape(&row.after),
            })
            .collect())
    }

    /// A page of records.
    pub async fn list_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        request: &ListRequest,
    ) -> Result<RecordPage, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let filter = match &request.filter {
            None => CheckedFilter::All,
            Some(text) => {
                let raw: Value =
                    serde_json::from_str(text).map_err(|e| RuntimeError::InvalidQuery {
                        parameter: "filter",
                        issues: vec![FieldIssue {
                            pointer: String::new(),
                            code: "invalid_json",
                            message: format!("filter is not JSON: {e}"),
                        }],
                    })?;
                let user_id = actor.user_id.clone();
                let resolve =
                    move |name: &str| (name == "$user").then(|| Value::String(user_id.clone()));
                check_filter(&loaded.bundle.entities, entity, &raw, "", &resolve).map_err(
                    |issues| RuntimeError::InvalidQuery {
                        parameter: "filter",
                        issues,
                    },
                )?
            }
        };
        let sort = parse_sort(entity, request.sort.as_deref())?;
        let limit = request.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(RuntimeError::InvalidQuery {
                parameter: "limit",
                issues: vec![FieldIssue {
                    pointer: String::new(),
                    code: "out_of_range",
                    message: "limit must be between 1 and 1000".into(),
                }],
            });
        }
        let cursor = match &request.cursor {
            None => None,
            Some(text) => Some(decode_cursor(text, sort.len())?),
        };
        let mut rows = self
            .store()
            .list_records(
                &loaded.id,
                &entity.uid,
                &filter,
                request.q.as_deref(),
                &sort,
                cursor.as_ref(),
                limit + 1,
                request.include_deleted,
            )
            .await?;
        let next_cursor = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|last| encode_cursor(&sort, last))
        } else {
            None
        };
        let total = if request.count {
            Some(
                self.store()
                    .count_records(&loaded.id, &entity.uid, &filter, request.q.as_deref())
                    .await?,
            )
        } else {
            None
        };
        Ok(RecordPage {
            items: rows.iter().map(|row| view(entity, row)).collect(),
            next_cursor,
            total,
        })
    }
}

/// Alias so the history mapping reads clearly without importing sqlx here.
mod sqlx_json {
    pub use trellis_store::Json;
}

struct Reference {
    entity: EntityDefinition,
    field: String,
    on_delete: OnDelete,
    row: RecordRow,
}

fn parse_sort(entity: &EntityDefinition, sort: Option<&str>) -> Result<Vec<SortKey>, RuntimeError> {
    let mut keys = Vec::new();
    for (index, part) in sort
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let (descending, name) = match part.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let field = entity
            .field(name)
            .filter(|f| !matches!(f.kind, FieldKind::Json | FieldKind::Money))
            .ok_or_else(|| RuntimeError::InvalidQuery {
                parameter: "sort",
                issues: vec![FieldIssue {
                    pointer: format!("/{index}"),
                    code: "unknown_field",
                    message: format!(
                        "cannot sort by '{name}': not a sortable field of {}",
                        entity.id
                    ),
                }],
            })?;
        keys.push(SortKey {
            field_uid: field.uid.clone(),
            descending,
        });
    }
    Ok(keys)
}

fn encode_cursor(sort: &[SortKey], last: &RecordRow) -> String {
    let cursor = Cursor {
        values: sort
            .iter()
            .map(|key| {
                last.data
                    .0
                    .get(&key.field_uid)
                    .cloned()
                    .unwrap_or(Value::Null)
            })
            .collect(),
        id: last.id.clone(),
    };
    hex::encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

fn decode_cursor(text: &str, keys: usize) -> Result<Cursor, RuntimeError> {
    let bad = || RuntimeError::InvalidQuery {
        parameter: "cursor",
        issues: vec![FieldIssue {
            pointer: String::new(),
            code: "invalid_cursor",
            message: "cursor is not one this list gave out (use next_cursor with the same sort)"
                .into(),
        }],
    };
    let bytes = hex::decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if cursor.values.len() != keys {
        Err(bad())
    } else {
        Ok(cursor)
    }
}
