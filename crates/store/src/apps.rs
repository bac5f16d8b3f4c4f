//! Apps and their versions. Every published bundle is kept as its own version; the app row points at
//! the current one. Deleting an app is soft (restorable).

use chrono::{DateTime, Utc};

use crate::change_log::append_change;
use crate::{NewChange, Store, StoreError};

/// An app as stored, with its current version's semver.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppRecord {
    pub id: String,
    pub uid: String,
    pub current_version: i64,
    pub semver: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One published version of an app.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppVersionRecord {
    pub app_id: String,
    pub version: i64,
    pub semver: String,
    /// The bundle exactly as published (JSON text).
    pub bundle: String,
    pub published_at: DateTime<Utc>,
    pub published_by: Option<String>,
}

/// A bundle to store as a new version.
#[derive(Debug, Clone)]
pub struct NewAppVersion<'a> {
    pub app_id: &'a str,
    pub semver: &'a str,
    pub bundle: &'a str,
    pub actor: Option<&'a str>,
    /// Extra facts for the change log (e.g. the migration report).
    pub summary: serde_json::Value,
}

/// The `SELECT … FROM` of an [`AppRecord`] (a macro so queries stay literal strings).
macro_rules! select_app {
    () => {
        "SELECT a.id, a.uid, a.current_version, v.semver, a.created_at, a.created_by, a.updated_at, a.deleted_at \
         FROM apps a JOIN app_versions v ON v.app_id = a.id AND v.version = a.current_version"
    };
}

impl Store {
    /// Create an app with its first version. An existing app id (even a deleted one) is a conflict.
    pub async fn create_app(&self, new: &NewAppVersion<'_>) -> Result<AppRecord, StoreError> {
        let now = crate::now();
        let uid = uuid::Uuid::now_v7().to_string();
        let change = NewChange {
            app_id: Some(new.app_id.to_owned()),
            subject: "app".into(),
            subject_id: new.app_id.to_owned(),
            operation: "create".into(),
            actor: new.actor.map(str::to_owned),
            payload: serde_json::json!({"version": 1, "semver": new.semver, "summary": new.summary}),
        };
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO apps (id, uid, current_version, created_at, created_by, updated_at) \
                 VALUES ($1, $2, 1, $3, $4, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(new.app_id)
            .bind(&uid)
            .bind(now)
            .bind(new.actor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "an app with id '{}' already exists",
                    new.app_id
                )));
            }
            sqlx::query(
                "INSERT INTO app_versions (app_id, version, semver, bundle, published_at, published_by) \
                 VALUES ($1, 1, $2, $3, $4, $5)",
            )
            .bind(new.app_id)
            .bind(new.semver)
            .bind(new.bundle)
            .bind(now)
            .bind(new.actor)
            .execute(&mut *tx)
            .await?;
            append_change!(self, tx, &change);
            tx.commit().await?;
        });
        self.get_app(new.app_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("app '{}'", new.app_id)))
    }

    /// Every app, newest first; deleted ones only when asked.
    pub async fn list_apps(&self, include_deleted: bool) -> Result<Vec<AppRecord>, StoreError> {
        let sql = concat!(
            select_app!(),
            " WHERE ($1 OR a.deleted_at IS NULL) ORDER BY a.created_at DESC, a.id"
        );
        let apps = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AppRecord>(sql)
                .bind(include_deleted)
                .fetch_all(pool)
                .await?
        });
        Ok(apps)
    }

    /// The app, deleted or not.
    pub async fn get_app(&self, id: &str) -> Result<Option<AppRecord>, StoreError> {
        let sql = concat!(select_app!(), " WHERE a.id = $1");
        // Read on every request that names an app (is its cached definition current?): natively on
        // SQLite, without a hand-off to sqlx's connection thread (see `native_read`).
        if let Some(native) = self.native_reads() {
            let found = native.with(|connection| {
                use rusqlite::OptionalExtension;
                connection
                    .prepare_cached(sql)?
                    .query_row([id], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                            row.get::<_, String>(3)?,
                            row.get::<_, String>(4)?,
                            row.get::<_, Option<String>>(5)?,
                            row.get::<_, String>(6)?,
                            row.get::<_, Option<String>>(7)?,
                        ))
                    })
                    .optional()
            });
            match found {
                Ok(found) => {
                    return found
                        .map(
                            |(
                                id,
                                uid,
                                current_version,
                                semver,
                                created,
                                created_by,
                                updated,
                                deleted,
                            )| {
                                use crate::native_read::parse_time;
                                Ok(AppRecord {
                                    id,
                                    uid,
                                    current_version,
                                    semver,
                                    created_at: parse_time(&created)?,
                                    created_by,
                                    updated_at: parse_time(&updated)?,
                                    deleted_at: deleted.as_deref().map(parse_time).transpose()?,
                                })
                            },
                        )
                        .transpose();
                }
                Err(error) => tracing::debug!(%error, "native read failed; reading through sqlx"),
            }
        }
        let app = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AppRecord>(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(app)
    }

    pub async fn get_app_version(
        &self,
        id: &str,
        version: i64,
    ) -> Result<Option<AppVersionRecord>, StoreError> {
        let version = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AppVersionRecord>(
                "SELECT app_id, version, semver, bundle, published_at, published_by \
                 FROM app_versions WHERE app_id = $1 AND version = $2",
            )
            .bind(id)
            .bind(version)
            .fetch_optional(pool)
            .await?
        });
        Ok(version)
    }

    /// Every version of an app, oldest first.
    pub async fn list_app_versions(&self, id: &str) -> Result<Vec<AppVersionRecord>, StoreError> {
        let versions = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AppVersionRecord>(
                "SELECT app_id, version, semver, bundle, published_at, published_by \
                 FROM app_versions WHERE app_id = $1 ORDER BY version",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
        });
        Ok(versions)
    }

    /// Publish a new version, provided the current one is still `expected_current` (optimistic
    /// concurrency: two analysts publishing at once cannot silently overwrite each other).
    ///
    /// `migrated` records are rewritten or re-indexed in the same transaction (all or nothing; each
    /// rewrite with history).
    pub async fn publish_app_version(
        &self,
        new: &NewAppVersion<'_>,
        expected_current: i64,
        migrated: &[crate::RecordMigration],
    ) -> Result<i64, StoreError> {
        let now = crate::now();
        let next = expected_current + 1;
        let change = NewChange {
            app_id: Some(new.app_id.to_owned()),
            subject: "app".into(),
            subject_id: new.app_id.to_owned(),
            operation: "publish".into(),
            actor: new.actor.map(str::to_owned),
            payload: serde_json::json!({"version": next, "semver": new.semver, "summary": new.summary}),
        };
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE apps SET current_version = $1, updated_at = $2 \
                 WHERE id = $3 AND current_version = $4 AND deleted_at IS NULL",
            )
            .bind(next)
            .bind(now)
            .bind(new.app_id)
            .bind(expected_current)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::Conflict(format!(
                    "app '{}' is no longer at version {expected_current}; reload it and publish again",
                    new.app_id
                )));
            }
            sqlx::query(
                "INSERT INTO app_versions (app_id, version, semver, bundle, published_at, published_by) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new.app_id)
            .bind(next)
            .bind(new.semver)
            .bind(new.bundle)
            .bind(now)
            .bind(new.actor)
            .execute(&mut *tx)
            .await?;
            for migration in migrated {
                let record = match migration {
                    crate::RecordMigration::Rewritten(record) => record,
                    crate::RecordMigration::Reindexed {
                        id,
                        version,
                        search_text,
                    } => {
                        // The full-text index follows `search_text` (SQLite: its trigger;
                        // PostgreSQL: the generated tsvector).
                        let updated = sqlx::query(
                            "UPDATE records SET search_text = $1 WHERE id = $2 AND version = $3",
                        )
                        .bind(search_text)
                        .bind(id)
                        .bind(version)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if updated == 0 {
                            return Err(StoreError::Conflict(format!(
                                "record '{id}' changed while the migration ran; publish again"
                            )));
                        }
                        continue;
                    }
                };
                let updated = sqlx::query(
                    "UPDATE records SET data = $1, version = version + 1, updated_at = $2, search_text = $5 WHERE id = $3 AND version = $4",
                )
                .bind(sqlx::types::Json(&record.data))
                .bind(now)
                .bind(&record.id)
                .bind(record.version)
                .bind(&record.search_text)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Err(StoreError::Conflict(format!(
                        "record '{}' changed while the migration ran; publish again",
                        record.id
                    )));
                }
                crate::history_chain::insert_history!(
                    tx,
                    new.app_id,
                    &record.entity,
                    &record.id,
                    record.version + 1,
                    "migrate",
                    new.actor,
                    now,
                    sqlx::types::Json(&record.before),
                    sqlx::types::Json(&record.data)
                );
            }
            append_change!(self, tx, &change);
            tx.commit().await?;
        });
        Ok(next)
    }

    /// Soft-delete (`deleted = true`) or restore an app. Returns false when nothing changed.
    pub async fn set_app_deleted(
        &self,
        id: &str,
        deleted: bool,
        actor: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = crate::now();
        let change = NewChange {
            app_id: Some(id.to_owned()),
            subject: "app".into(),
            subject_id: id.to_owned(),
            operation: if deleted { "delete" } else { "restore" }.into(),
            actor: actor.map(str::to_owned),
            payload: serde_json::json!({}),
        };
        let changed = crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let sql = if deleted {
                "UPDATE apps SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL"
            } else {
                "UPDATE apps SET deleted_at = NULL, updated_at = $1 WHERE id = $2 AND deleted_at IS NOT NULL"
            };
            let changed = sqlx::query(sql)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if changed {
                append_change!(self, tx, &change);
            }
            tx.commit().await?;
            changed
        });
        Ok(changed)
    }
}
