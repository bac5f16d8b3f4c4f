//! Saved list views: a user's named filter, sort and columns for one entity, private or shared.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A saved view as stored; `spec` is JSON text.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SavedViewRecord {
    pub id: String,
    pub app_id: String,
    /// The entity id (not uid).
    pub entity: String,
    /// User id of the owner.
    pub owner: String,
    pub name: String,
    /// Visible to everyone who can read the entity.
    pub shared: bool,
    pub spec: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The columns of a saved view, in `SavedViewRecord` order (a literal, so queries stay constant).
macro_rules! columns {
    () => {
        "id, app_id, entity, owner, name, shared, spec, created_at, updated_at"
    };
}

impl Store {
    /// Save a view; a view of the same owner, entity and name is replaced (its id kept).
    pub async fn upsert_saved_view(
        &self,
        view: &SavedViewRecord,
    ) -> Result<SavedViewRecord, StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO saved_views (id, app_id, entity, owner, name, shared, spec, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (app_id, entity, owner, name) DO UPDATE SET shared = excluded.shared, \
                 spec = excluded.spec, updated_at = excluded.updated_at",
            )
            .bind(&view.id)
            .bind(&view.app_id)
            .bind(&view.entity)
            .bind(&view.owner)
            .bind(&view.name)
            .bind(view.shared)
            .bind(&view.spec)
            .bind(view.created_at)
            .bind(view.updated_at)
            .execute(pool)
            .await?;
        });
        let stored = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, SavedViewRecord>(concat!(
                "SELECT ",
                columns!(),
                " FROM saved_views WHERE app_id = $1 AND entity = $2 AND owner = $3 AND name = $4"
            ))
            .bind(&view.app_id)
            .bind(&view.entity)
            .bind(&view.owner)
            .bind(&view.name)
            .fetch_one(pool)
            .await?
        });
        Ok(stored)
    }

    /// The views `user` may use on an entity: their own and the shared ones, by name.
    pub async fn list_saved_views(
        &self,
        app: &str,
        entity: &str,
        user: &str,
    ) -> Result<Vec<SavedViewRecord>, StoreError> {
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, SavedViewRecord>(concat!(
                "SELECT ",
                columns!(),
                " FROM saved_views WHERE app_id = $1 AND entity = $2 \
                 AND (owner = $3 OR shared = $4) ORDER BY name, id"
            ))
            .bind(app)
            .bind(entity)
            .bind(user)
            .bind(true)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn get_saved_view(
        &self,
        app: &str,
        id: &str,
    ) -> Result<Option<SavedViewRecord>, StoreError> {
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, SavedViewRecord>(concat!(
                "SELECT ",
                columns!(),
                " FROM saved_views WHERE app_id = $1 AND id = $2"
            ))
            .bind(app)
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn delete_saved_view(&self, app: &str, id: &str) -> Result<bool, StoreError> {
        let gone = crate::with_pool!(self, write, |pool| {
            sqlx::query("DELETE FROM saved_views WHERE app_id = $1 AND id = $2")
                .bind(app)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(gone == 1)
    }
}
