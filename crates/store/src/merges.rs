//! Merges of duplicate records, kept so a merge can be undone.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A merge as stored; the JSON columns are text.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MergeRecord {
    pub id: String,
    pub app_id: String,
    /// The entity id (not uid) of the merged records.
    pub entity: String,
    pub survivor_id: String,
    /// JSON array of the merged (soft-deleted) record ids.
    pub merged_ids: String,
    /// JSON object: the survivor's fields the merge changed, as they were.
    pub survivor_before: String,
    /// JSON object: those fields as the merge set them.
    pub survivor_changes: String,
    /// JSON array of `{entity, record_id, field, from}`: references moved to the survivor.
    pub moved: String,
    pub merged_at: DateTime<Utc>,
    pub merged_by: Option<String>,
    pub undone_at: Option<DateTime<Utc>>,
}

impl Store {
    pub async fn insert_merge(&self, merge: &MergeRecord) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO record_merges (id, app_id, entity, survivor_id, merged_ids, survivor_before, \
                 survivor_changes, moved, merged_at, merged_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&merge.id)
            .bind(&merge.app_id)
            .bind(&merge.entity)
            .bind(&merge.survivor_id)
            .bind(&merge.merged_ids)
            .bind(&merge.survivor_before)
            .bind(&merge.survivor_changes)
            .bind(&merge.moved)
            .bind(merge.merged_at)
            .bind(&merge.merged_by)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn get_merge(&self, app: &str, id: &str) -> Result<Option<MergeRecord>, StoreError> {
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, MergeRecord>(
                "SELECT id, app_id, entity, survivor_id, merged_ids, survivor_before, survivor_changes, moved, \
                 merged_at, merged_by, undone_at FROM record_merges WHERE app_id = $1 AND id = $2",
            )
            .bind(app)
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Mark a merge undone (compare-and-set: false when it already was).
    pub async fn mark_merge_undone(&self, id: &str) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE record_merges SET undone_at = $1 WHERE id = $2 AND undone_at IS NULL",
            )
            .bind(crate::now())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }
}
