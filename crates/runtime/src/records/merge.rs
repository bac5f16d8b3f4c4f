//! Duplicate detection and reversible merges.
//!
//! An entity names its identity keys in priority order (`x-trellis.duplicate_keys`: e.g. email
//! compared case-insensitively, then phone by its digits). Two live records sharing a normalized key
//! value are duplicates. Merging folds duplicates into a survivor: every reference to a duplicate
//! (relation fields of any entity of the app) moves to the survivor, the duplicates are soft-deleted,
//! and the survivor's empty fields are filled from them (or set as the caller chose). The merge is
//! logged with everything it changed, so it can be undone: the survivor's values come back, the
//! duplicates are restored and the moved references point to them again. Each step is an ordinary
//! record change (validated, in history), so nothing is lost even if a merge stops halfway.

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use trellis_form::Locale;
use trellis_model::{Action, FieldKind};
use trellis_store::MergeRecord;

use super::{ListRequest, RecordView};
use crate::{Principal, Runtime, RuntimeError};

/// A record that looks like the same real-world thing.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub record: RecordView,
    /// The keys it shares, in priority order.
    pub matched: Vec<String>,
}

/// What to merge into the survivor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// Ids of the records folded into the survivor.
    pub duplicates: Vec<String>,
    /// Values the survivor ends up with, by field (others: its own, or a duplicate's when empty).
    #[serde(default)]
    pub values: Map<String, Value>,
}

/// What a merge (or its undo) did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeOutcome {
    pub merge_id: String,
    pub survivor: String,
    pub merged: Vec<String>,
    /// References moved (to the survivor, or back on undo).
    pub references_moved: usize,
    /// Survivor fields changed.
    pub fields_changed: Vec<String>,
    pub undone: bool,
}

fn is_empty(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

fn system() -> Principal {
    Principal::system("system", "system")
}

impl Runtime {
    /// Live records that share an identity key with record `id` (those the user may read).
    pub async fn find_duplicates(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<Vec<Duplicate>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let record = self.get_record(actor, app, entity_id, id).await?;
        let keys = entity.annotations.duplicate_keys.clone();
        let mut found: BTreeMap<String, Duplicate> = BTreeMap::new();
        for key in &keys {
            let Some(raw) = record.data.get(key.field.as_str()).and_then(Value::as_str) else {
                continue;
            };
            let Some(normalized) = key.normalize.apply(raw) else {
                continue;
            };
            // Candidates by a case-insensitive substring the database can find, then compared
            // exactly in their normalized form.
            let probe: String = match key.normalize {
                trellis_model::entity::KeyNormalize::Digits => {
                    normalized[normalized.len().saturating_sub(7)..].to_owned()
                }
                _ => raw.trim().to_owned(),
            };
            let probe = match key.normalize {
                trellis_model::entity::KeyNormalize::Digits => {
                    // Formatting may split the digits ("138 0000 0001"): probe the last four.
                    probe[probe.len().saturating_sub(4)..].to_owned()
                }
                _ => probe,
            };
            let filter = json!({"and": [
                {"field": key.field, "op": "contains", "value": probe},
                {"field": "id", "op": "ne", "value": id}
            ]});
            for candidate in self
                .all_records(actor, app, entity_id, Some(filter))
                .await?
            {
                let Some(other) = candidate
                    .data
                    .get(key.field.as_str())
                    .and_then(Value::as_str)
                    .and_then(|v| key.normalize.apply(v))
                else {
                    continue;
                };
                if key.normalize.same(&normalized, &other) {
                    found
                        .entry(candidate.id.clone())
                        .or_insert_with(|| Duplicate {
                            record: candidate,
                            matched: Vec::new(),
                        })
                        .matched
                        .push(key.field.to_string());
                }
            }
        }
        let mut out: Vec<Duplicate> = found.into_values().collect();
        // The most important key first, then the most keys.
        let rank = |d: &Duplicate| {
            keys.iter()
                .position(|k| d.matched.iter().any(|m| m == k.field.as_str()))
                .unwrap_or(usize::MAX)
        };
        out.sort_by(|a, b| {
            rank(a)
                .cmp(&rank(b))
                .then(b.matched.len().cmp(&a.matched.len()))
        });
        Ok(out)
    }

    /// Every record of `entity_id` the actor reads that matches `filter`.
    async fn all_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        filter: Option<Value>,
    ) -> Result<Vec<RecordView>, RuntimeError> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .list_records(
                    actor,
                    app,
                    entity_id,
                    &ListRequest {
                        filter: filter.as_ref().map(Value::to_string),
                        limit: Some(1000),
                        cursor: cursor.clone(),
                        ..Default::default()
                    },
                )
                .await?;
            out.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Merge `request.duplicates` into `survivor`. Needs read, update and delete on the entity.
    pub async fn merge_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        survivor: &str,
        request: &MergeRequest,
    ) -> Result<MergeOutcome, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Read)?;
        checked.require(Action::Update)?;
        checked.require(Action::Delete)?;
        if request.duplicates.is_empty() {
            return Err(RuntimeError::InvalidInput(
                "name the duplicates to merge into this record".into(),
            ));
        }
        if request.duplicates.iter().any(|d| d == survivor) {
            return Err(RuntimeError::InvalidInput(
                "a record cannot be merged into itself".into(),
            ));
        }
        // Everything the actor may see and change, checked before anything changes.
        let kept = self.get_record(actor, app, entity_id, survivor).await?;
        let mut duplicates = Vec::new();
        for id in &request.duplicates {
            duplicates.push(self.get_record(actor, app, entity_id, id).await?);
        }
        checked.require_editable(request.values.keys())?;
        let system = system();
        // 1. Move references from the duplicates to the survivor.
        let mut moved = Vec::new();
        for other in loaded.bundle.entities.values() {
            for field in &other.fields {
                let targets_us = field
                    .annotations
                    .relation
                    .as_ref()
                    .is_some_and(|r| r.entity == entity.id);
                if !targets_us {
                    continue;
                }
                let many = field.kind == FieldKind::RelationMany;
                let filter = (!many)
                    .then(|| json!({"field": field.name, "op": "in", "value": request.duplicates}));
                for record in self
                    .all_records(&system, app, other.id.as_str(), filter)
                    .await?
                {
                    let Some(from) = record.data.get(field.name.as_str()).cloned() else {
                        continue;
                    };
                    let to = match &from {
                        Value::String(id) if request.duplicates.contains(id) => {
                            Value::String(survivor.to_owned())
                        }
                        Value::Array(ids)
                            if ids.iter().any(|v| {
                                v.as_str()
                                    .is_some_and(|id| request.duplicates.iter().any(|d| d == id))
                            }) =>
                        {
                            let mut out: Vec<Value> = Vec::new();
                            for v in ids {
                                let v = match v.as_str() {
                                    Some(id) if request.duplicates.iter().any(|d| d == id) => {
                                        Value::String(survivor.to_owned())
                                    }
                                    _ => v.clone(),
                                };
                                if !out.contains(&v) {
                                    out.push(v);
                                }
                            }
                            Value::Array(out)
                        }
                        _ => continue,
                    };
                    let mut patch = Map::new();
                    patch.insert(field.name.to_string(), to);
                    self.update_record(
                        &system,
                        app,
                        other.id.as_str(),
                        &record.id,
                        &Value::Object(patch),
                        None,
                        Locale::En,
                    )
                    .await?;
                    moved.push(json!({"entity": other.id, "record_id": record.id, "field": field.name, "from": from}));
                }
            }
        }
        // 2. Soft-delete the duplicates (nothing references them any more).
        for duplicate in &duplicates {
            self.delete_checked_record(&system, app, entity_id, &duplicate.id)
                .await?;
        }
        // 3. The survivor: the chosen values, and its empty fields filled from the duplicates.
        let mut changes = Map::new();
        for field in &entity.fields {
            let name = field.name.as_str();
            if field.kind.is_system_managed()
                || field.annotations.computed.is_some()
                || field.kind == FieldKind::AutoNumber
            {
                continue;
            }
            if let Some(value) = request.values.get(name) {
                if kept.data.get(name) != Some(value) {
                    changes.insert(name.to_owned(), value.clone());
                }
                continue;
            }
            if is_empty(kept.data.get(name))
                && let Some(value) = duplicates
                    .iter()
                    .map(|d| d.data.get(name))
                    .find(|v| !is_empty(*v))
                    .flatten()
            {
                changes.insert(name.to_owned(), value.clone());
            }
        }
        let before: Map<String, Value> = changes
            .keys()
            .map(|k| (k.clone(), kept.data.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
        if !changes.is_empty() {
            self.update_record(
                &system,
                app,
                entity_id,
                survivor,
                &Value::Object(changes.clone()),
                None,
                Locale::En,
            )
            .await?;
        }
        let merge_id = uuid::Uuid::now_v7().to_string();
        let text = |v: &Value| v.to_string();
        self.store()
            .insert_merge(&MergeRecord {
                id: merge_id.clone(),
                app_id: loaded.id.clone(),
                entity: entity.id.to_string(),
                survivor_id: survivor.to_owned(),
                merged_ids: text(&json!(request.duplicates)),
                survivor_before: text(&Value::Object(before)),
                survivor_changes: text(&Value::Object(changes.clone())),
                moved: text(&Value::Array(moved.clone())),
                merged_at: Utc::now(),
                merged_by: Some(actor.user_id.clone()),
                undone_at: None,
            })
            .await?;
        self.audit(
            Some(actor),
            "records.merge",
            Some(&loaded.id),
            Some(survivor),
            "success",
            json!({"entity": entity.id, "merged": request.duplicates, "merge": merge_id, "references": moved.len()}),
        )
        .await?;
        Ok(MergeOutcome {
            merge_id,
            survivor: survivor.to_owned(),
            merged: request.duplicates.clone(),
            references_moved: moved.len(),
            fields_changed: changes.keys().cloned().collect(),
            undone: false,
        })
    }

    /// Undo a merge: the survivor's values back, the duplicates restored, references moved back
    /// (those still pointing at the survivor).
    pub async fn undo_merge(
        &self,
        actor: &Principal,
        app: &str,
        merge_id: &str,
    ) -> Result<MergeOutcome, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let merge = self
            .store()
            .get_merge(&loaded.id, merge_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound(format!("merge '{merge_id}'")))?;
        let (entity, _) = loaded.entity(&merge.entity)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Read)?;
        checked.require(Action::Update)?;
        checked.require(Action::Delete)?;
        if merge.undone_at.is_some() {
            return Err(RuntimeError::Conflict(format!(
                "merge '{merge_id}' was already undone"
            )));
        }
        let parse = |text: &str| -> Value { serde_json::from_str(text).unwrap_or(Value::Null) };
        let merged: Vec<String> = serde_json::from_str(&merge.merged_ids).unwrap_or_default();
        let before = parse(&merge.survivor_before);
        let moved = parse(&merge.moved);
        let system = system();
        // 1. The survivor's values as they were (so unique values can go back to the duplicates).
        if before.as_object().is_some_and(|b| !b.is_empty()) {
            self.update_record(
                &system,
                app,
                entity.id.as_str(),
                &merge.survivor_id,
                &before,
                None,
                Locale::En,
            )
            .await?;
        }
        // 2. The duplicates back.
        for id in &merged {
            self.restore_record(&system, app, entity.id.as_str(), id)
                .await?;
        }
        // 3. References back, where they still point at the survivor.
        let mut references = 0;
        for reference in moved.as_array().into_iter().flatten() {
            let (Some(other), Some(record_id), Some(field)) = (
                reference["entity"].as_str(),
                reference["record_id"].as_str(),
                reference["field"].as_str(),
            ) else {
                continue;
            };
            let Ok(current) = self.get_record(&system, app, other, record_id).await else {
                continue;
            };
            let now = current.data.get(field).cloned().unwrap_or(Value::Null);
            let points_at_survivor = match &now {
                Value::String(id) => *id == merge.survivor_id,
                Value::Array(ids) => ids.iter().any(|v| v.as_str() == Some(&merge.survivor_id)),
                _ => false,
            };
            if !points_at_survivor {
                continue;
            }
            let mut patch = Map::new();
            patch.insert(field.to_owned(), reference["from"].clone());
            self.update_record(
                &system,
                app,
                other,
                record_id,
                &Value::Object(patch),
                None,
                Locale::En,
            )
            .await?;
            references += 1;
        }
        self.store().mark_merge_undone(&merge.id).await?;
        self.audit(
            Some(actor),
            "records.merge_undo",
            Some(&loaded.id),
            Some(&merge.survivor_id),
            "success",
            json!({"entity": entity.id, "merge": merge.id}),
        )
        .await?;
        Ok(MergeOutcome {
            merge_id: merge.id,
            survivor: merge.survivor_id,
            merged,
            references_moved: references,
            fields_changed: before
                .as_object()
                .map(|b| b.keys().cloned().collect())
                .unwrap_or_default(),
            undone: true,
        })
    }
}
