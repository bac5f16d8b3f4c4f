//! Saved list views: each user names the filter, sort and columns of a list and finds them again;
//! a shared view is offered to everyone who can read the entity. Only its owner or an app manager
//! changes or deletes a view.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use trellis_form::FieldIssue;
use trellis_model::Action;
use trellis_store::SavedViewRecord;

use crate::app_cache::LoadedApp;
use crate::{Principal, Runtime, RuntimeError};

/// A saved view as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SavedView {
    pub id: String,
    pub entity: String,
    pub name: String,
    pub shared: bool,
    /// The caller owns it (and may change or delete it).
    pub mine: bool,
    /// Filter, sort, columns… as the UI saved them.
    pub spec: Value,
    pub updated_at: DateTime<Utc>,
}

impl SavedView {
    fn from_record(record: SavedViewRecord, user: &str) -> Self {
        Self {
            mine: record.owner == user,
            spec: serde_json::from_str(&record.spec).unwrap_or(Value::Null),
            id: record.id,
            entity: record.entity,
            name: record.name,
            shared: record.shared,
            updated_at: record.updated_at,
        }
    }
}

impl Runtime {
    /// The app and the entity's id, once the caller may read the entity (views are for readers).
    async fn readable_entity(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
    ) -> Result<(Arc<LoadedApp>, String), RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        self.check(actor, &loaded, entity)
            .await?
            .require(Action::Read)?;
        let id = entity.id.to_string();
        Ok((loaded, id))
    }

    /// The caller's views of the entity and the shared ones.
    pub async fn list_saved_views(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
    ) -> Result<Vec<SavedView>, RuntimeError> {
        let (loaded, entity) = self.readable_entity(actor, app, entity_id).await?;
        Ok(self
            .store()
            .list_saved_views(&loaded.id, entity.as_str(), &actor.user_id)
            .await?
            .into_iter()
            .map(|r| SavedView::from_record(r, &actor.user_id))
            .collect())
    }

    /// Save (or replace, by name) one of the caller's views. Name: 1–100 characters; spec: an object.
    pub async fn save_view(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        name: &str,
        shared: bool,
        spec: &Value,
    ) -> Result<SavedView, RuntimeError> {
        let (loaded, entity) = self.readable_entity(actor, app, entity_id).await?;
        let name = name.trim();
        let mut issues = Vec::new();
        if name.is_empty() || name.chars().count() > 100 {
            issues.push(FieldIssue {
                pointer: "/name".into(),
                code: "length",
                message: "a view needs a name of 1 to 100 characters".into(),
            });
        }
        if !spec.is_object() || spec.to_string().len() > 64 * 1024 {
            issues.push(FieldIssue {
                pointer: "/spec".into(),
                code: "type",
                message: "the view's spec is a JSON object of at most 64 KiB".into(),
            });
        }
        if !issues.is_empty() {
            return Err(RuntimeError::InvalidRecord(issues));
        }
        let now = Utc::now();
        let stored = self
            .store()
            .upsert_saved_view(&SavedViewRecord {
                id: uuid::Uuid::now_v7().to_string(),
                app_id: loaded.id.clone(),
                entity,
                owner: actor.user_id.clone(),
                name: name.to_owned(),
                shared,
                spec: spec.to_string(),
                created_at: now,
                updated_at: now,
            })
            .await?;
        Ok(SavedView::from_record(stored, &actor.user_id))
    }

    /// Delete a view: its owner, or someone who manages the app.
    pub async fn delete_saved_view(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        id: &str,
    ) -> Result<(), RuntimeError> {
        let (loaded, entity) = self.readable_entity(actor, app, entity_id).await?;
        let view = self
            .store()
            .get_saved_view(&loaded.id, id)
            .await?
            .filter(|v| v.entity == entity.as_str())
            .filter(|v| v.shared || v.owner == actor.user_id)
            .ok_or_else(|| RuntimeError::NotFound(format!("view '{id}'")))?;
        if view.owner != actor.user_id {
            self.require_app_manager(actor, &loaded)
                .await
                .map_err(|_| {
                    RuntimeError::Forbidden(
                        "only its owner or an app admin can delete a shared view".into(),
                    )
                })?;
        }
        self.store().delete_saved_view(&loaded.id, id).await?;
        Ok(())
    }
}
