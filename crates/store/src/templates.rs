//! The template gallery (published template versions) and each app's template base and upgrades.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A published template version as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TemplateRecord {
    pub id: String,
    pub version: String,
    /// `trellis.json` as JSON text.
    pub manifest: String,
    /// The whole bundle as JSON text.
    pub bundle: String,
    /// sha256 of the package's file list (its checksum manifest).
    pub sha256: String,
    /// Hex public key that signed the package, when signed.
    pub signed_by: Option<String>,
    pub published_at: DateTime<Utc>,
    pub published_by: Option<String>,
}

/// The template version an app stands on.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppTemplateRecord {
    pub app_id: String,
    pub template_id: String,
    pub template_version: String,
    pub base_bundle: String,
    pub installed_at: DateTime<Utc>,
}

/// One upgrade of an app to a newer template version.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AppUpgradeRecord {
    pub id: String,
    pub app_id: String,
    pub template_id: String,
    pub from_template_version: String,
    pub to_template_version: String,
    pub from_app_version: i64,
    pub to_app_version: i64,
    /// The base bundle before the upgrade (restored by a rollback).
    pub previous_base: String,
    /// The merge report as JSON text.
    pub report: String,
    pub upgraded_at: DateTime<Utc>,
    pub upgraded_by: Option<String>,
    pub rolled_back_at: Option<DateTime<Utc>>,
}

const TEMPLATE_COLUMNS: &str =
    "id, version, manifest, bundle, sha256, signed_by, published_at, published_by";
const UPGRADE_COLUMNS: &str = "id, app_id, template_id, from_template_version, to_template_version, \
     from_app_version, to_app_version, previous_base, report, upgraded_at, upgraded_by, rolled_back_at";

impl Store {
    /// Store a published template version. Publishing the same id and version twice is a conflict.
    pub async fn insert_template(&self, record: &TemplateRecord) -> Result<(), StoreError> {
        let result = crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO templates (id, version, manifest, bundle, sha256, signed_by, published_at, published_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&record.id)
            .bind(&record.version)
            .bind(&record.manifest)
            .bind(&record.bundle)
            .bind(&record.sha256)
            .bind(&record.signed_by)
            .bind(record.published_at)
            .bind(&record.published_by)
            .execute(pool)
            .await
            .map(|_| ())
        });
        match result {
            Ok(_) => Ok(()),
            Err(error) => match StoreError::from(error) {
                StoreError::Conflict(_) => Err(StoreError::Conflict(format!(
                    "template '{}' version {} is already published; raise the version in trellis.json",
                    record.id, record.version
                ))),
                other => Err(other),
            },
        }
    }

    /// Every published template version, newest publication first.
    pub async fn list_templates(&self) -> Result<Vec<TemplateRecord>, StoreError> {
        let sql =
            format!("SELECT {TEMPLATE_COLUMNS} FROM templates ORDER BY id, published_at DESC");
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TemplateRecord>(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
        }))
    }

    /// The published versions of one template.
    pub async fn template_versions(&self, id: &str) -> Result<Vec<TemplateRecord>, StoreError> {
        let sql = format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1 ORDER BY published_at DESC"
        );
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TemplateRecord>(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Record (or replace) the template base of an app.
    pub async fn set_app_template(&self, record: &AppTemplateRecord) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO app_templates (app_id, template_id, template_version, base_bundle, installed_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (app_id) DO UPDATE SET template_id = excluded.template_id, \
                 template_version = excluded.template_version, base_bundle = excluded.base_bundle, \
                 installed_at = excluded.installed_at",
            )
            .bind(&record.app_id)
            .bind(&record.template_id)
            .bind(&record.template_version)
            .bind(&record.base_bundle)
            .bind(record.installed_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The template base of an app, if it came from a template.
    pub async fn app_template(&self, app: &str) -> Result<Option<AppTemplateRecord>, StoreError> {
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AppTemplateRecord>(
                "SELECT app_id, template_id, template_version, base_bundle, installed_at \
                 FROM app_templates WHERE app_id = $1",
            )
            .bind(app)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Record an upgrade.
    pub async fn insert_app_upgrade(&self, record: &AppUpgradeRecord) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO app_upgrades (id, app_id, template_id, from_template_version, to_template_version, \
                 from_app_version, to_app_version, previous_base, report, upgraded_at, upgraded_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&record.id)
            .bind(&record.app_id)
            .bind(&record.template_id)
            .bind(&record.from_template_version)
            .bind(&record.to_template_version)
            .bind(record.from_app_version)
            .bind(record.to_app_version)
            .bind(&record.previous_base)
            .bind(&record.report)
            .bind(record.upgraded_at)
            .bind(&record.upgraded_by)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Upgrades of an app, newest first.
    pub async fn app_upgrades(&self, app: &str) -> Result<Vec<AppUpgradeRecord>, StoreError> {
        let sql = format!(
            "SELECT {UPGRADE_COLUMNS} FROM app_upgrades WHERE app_id = $1 ORDER BY upgraded_at DESC, id DESC"
        );
        Ok(crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AppUpgradeRecord>(sqlx::AssertSqlSafe(sql))
                .bind(app)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Mark an upgrade rolled back (compare-and-set: false when it already was).
    pub async fn mark_upgrade_rolled_back(&self, id: &str) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query("UPDATE app_upgrades SET rolled_back_at = $1 WHERE id = $2 AND rolled_back_at IS NULL")
                .bind(crate::now())
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}
