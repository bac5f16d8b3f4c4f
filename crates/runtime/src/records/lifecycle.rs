//! Soft delete with relation integrity (restrict, cascade, set null), restore, and history.

use serde_json::Value;
use trellis_form::records::to_api;
use trellis_model::{
    Action, CheckedFilter, EntityDefinition, FieldKind, FieldPath, FilterLeaf, FilterOp, OnDelete,
};
use trellis_store::{RecordRow, StoreError};

use super::{HistoryEntry, RecordView, record_write, unique_values};
use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

impl Runtime {
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
        let checked = self.check(actor, &loaded, entity).await?;
        self.writable_record(&loaded, &checked, id, Action::Delete, expected_version)
            .await?;
        self.delete_checked_record(actor, app, entity_id, id).await
    }

    /// Delete a record whose deletion is allowed (cascades follow the schema, not the user's roles).
    pub(crate) async fn delete_checked_record(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<(), RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let deleted = self.live_record(&loaded, entity, id).await?;
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
                    Box::pin(self.delete_checked_record(
                        actor,
                        app,
                        reference.entity.id.as_str(),
                        &reference.row.id,
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
        self.after_delete(&loaded, entity, &deleted, &actor.user_id)
            .await?;
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
                // Every referencing record, page by page (a cascade must not miss the 1,001st).
                let mut rows = Vec::new();
                loop {
                    let after = rows.last().map(|row: &RecordRow| trellis_store::Cursor {
                        values: Vec::new(),
                        id: row.id.clone(),
                    });
                    let page = self
                        .store()
                        .list_records(
                            &loaded.id,
                            &other.uid,
                            &trellis_store::ListQuery {
                                filter: &filter,
                                search: None,
                                sort: &[],
                                cursor: after.as_ref(),
                                limit: 1000,
                                include_deleted: false,
                            },
                        )
                        .await?;
                    let full = page.len() == 1000;
                    rows.extend(page);
                    if !full {
                        break;
                    }
                }
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
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Read)?;
        let Some(row) = self.store().get_record(&loaded.id, &entity.uid, id).await? else {
            return Err(RuntimeError::NotFound(format!("record '{id}'")));
        };
        self.require_readable(&loaded, &checked, id, &row.data.0)
            .await?;
        checked.require(Action::Delete)?;
        self.require_write_rows(&loaded, &checked, &row.data.0)
            .await?;
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
        Ok(checked.view(&restored))
    }

    /// Every change of a record (also of a deleted one), oldest first.
    pub async fn record_history(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<Vec<HistoryEntry>, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(Action::Read)?;
        let Some(current) = self.store().get_record(&loaded.id, &entity.uid, id).await? else {
            return Err(RuntimeError::NotFound(format!("record '{id}'")));
        };
        self.require_readable(&loaded, &checked, id, &current.data.0)
            .await?;
        let rows = self
            .store()
            .record_history(&loaded.id, &entity.uid, id)
            .await?;
        if rows.is_empty() {
            return Err(RuntimeError::NotFound(format!("record '{id}'")));
        }
        let shape = |value: &Option<sqlx_json::Json<Value>>| {
            value.as_ref().and_then(|v| v.0.as_object()).map(|m| {
                let mut fields = to_api(entity, m);
                checked.strip(&mut fields);
                fields
            })
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
