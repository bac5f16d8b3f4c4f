//! Apps: create from a bundle (with dry run), read, export and publish bundles, delete and restore.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use trellis_model::RawBundle;
use trellis_runtime::apps::{AppSummary, CreatedApp, MigrationReport};

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, ErrorCode, Problem};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DryRun {
    /// Validate and report only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Include soft-deleted apps (platform admins only).
    #[serde(default)]
    pub include_deleted: bool,
}

/// An app as listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = App)]
pub struct AppView {
    pub id: String,
    /// Number of the current published version.
    pub version: i64,
    /// Semantic version from the manifest.
    pub semver: String,
    /// Display name per language.
    #[schema(value_type = Object)]
    pub name: serde_json::Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub deleted: bool,
}

impl From<AppSummary> for AppView {
    fn from(app: AppSummary) -> Self {
        Self {
            id: app.id,
            version: app.version,
            semver: app.semver,
            name: app.name,
            created_at: app.created_at,
            updated_at: app.updated_at,
            deleted: app.deleted,
        }
    }
}

/// Result of `POST /api/apps`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedAppView {
    pub id: String,
    pub version: i64,
    pub semver: String,
    pub dry_run: bool,
    /// Non-blocking problems such as missing translations.
    #[schema(value_type = Vec<Object>)]
    pub warnings: serde_json::Value,
}

impl From<CreatedApp> for CreatedAppView {
    fn from(app: CreatedApp) -> Self {
        Self {
            id: app.id,
            version: app.version,
            semver: app.semver,
            dry_run: app.dry_run,
            warnings: serde_json::to_value(app.warnings).unwrap_or_default(),
        }
    }
}

/// The migration report of `PUT /api/apps/{app}/bundle`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MigrationReportView {
    pub app: String,
    pub dry_run: bool,
    pub from_version: i64,
    pub to_version: i64,
    pub semver: String,
    /// What changes, matched by stable uid: entity/field added, removed, renamed, kind changed.
    #[schema(value_type = Vec<Object>)]
    pub changes: serde_json::Value,
    pub records_migrated: u64,
    /// Every stored value that cannot convert to its field's new kind (kept beside the field).
    #[schema(value_type = Vec<Object>)]
    pub unconverted: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub warnings: serde_json::Value,
    /// Records moved out of flow states the new version removes, per `flow: old → new`.
    #[schema(value_type = Object)]
    pub states_moved: serde_json::Value,
}

impl From<MigrationReport> for MigrationReportView {
    fn from(report: MigrationReport) -> Self {
        Self {
            app: report.app,
            dry_run: report.dry_run,
            from_version: report.from_version,
            to_version: report.to_version,
            semver: report.semver,
            changes: serde_json::to_value(report.plan.changes).unwrap_or_default(),
            records_migrated: report.records_migrated,
            unconverted: serde_json::to_value(report.unconverted).unwrap_or_default(),
            warnings: serde_json::to_value(report.warnings).unwrap_or_default(),
            states_moved: serde_json::to_value(report.states_moved).unwrap_or_default(),
        }
    }
}

/// One published version.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub semver: String,
    pub published_at: chrono::DateTime<chrono::Utc>,
    pub published_by: Option<String>,
}

/// List apps.
#[utoipa::path(get, path = "/api/apps", tag = "apps", params(ListQuery),
    responses((status = 200, body = Vec<AppView>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_apps(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<AppView>>, ApiError> {
    let apps = state
        .runtime
        .list_apps(&principal, query.include_deleted)
        .await?;
    Ok(Json(apps.into_iter().map(AppView::from).collect()))
}

/// Create an app from a bundle (the JSON form of a template directory). With `dry_run=true` only
/// validate. An invalid bundle gets 422 listing every problem, each with its file and pointer.
#[utoipa::path(post, path = "/api/apps", tag = "apps", params(DryRun),
    request_body(content = Object, description = "Bundle: relative path → file content", content_type = "application/json"),
    responses((status = 201, body = CreatedAppView), (status = 200, body = CreatedAppView, description = "dry run"),
              (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_app(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<DryRun>,
    ApiJson(bundle): ApiJson<RawBundle>,
) -> Result<Response, ApiError> {
    let created = state
        .runtime
        .create_app(&principal, &bundle, query.dry_run)
        .await?;
    let status = if created.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let location = format!("/api/apps/{}", created.id);
    let mut response = (status, Json(CreatedAppView::from(created))).into_response();
    if status == StatusCode::CREATED
        && let Ok(value) = HeaderValue::from_str(&location)
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Read an app.
#[utoipa::path(get, path = "/api/apps/{app}", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_app(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(state.runtime.get_app(&principal, &app).await?.into()))
}

/// Delete an app (soft: `POST /api/apps/{app}/restore` brings it back with every version).
#[utoipa::path(delete, path = "/api/apps/{app}", tag = "apps", params(("app" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_app(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.runtime.delete_app(&principal, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a deleted app.
#[utoipa::path(post, path = "/api/apps/{app}/restore", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = AppView), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn restore_app(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Json<AppView>, ApiError> {
    Ok(Json(
        state.runtime.restore_app(&principal, &app).await?.into(),
    ))
}

/// Export the app's current metadata as a bundle, exactly as published. The `ETag` names the version;
/// send it back as `If-Match` when publishing.
#[utoipa::path(get, path = "/api/apps/{app}/bundle", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = Object, description = "Bundle: relative path → file content"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn export_bundle(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Response, ApiError> {
    let (version, text) = state.runtime.export_bundle(&principal, &app).await?;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], text).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"v{version}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Parse `If-Match: "v3"` (or `3`, or `W/"v3"`) into a version number.
pub(crate) fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let cleaned = text
        .trim_start_matches("W/")
        .trim_matches('"')
        .trim_start_matches('v');
    cleaned.parse::<i64>().map(Some).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("If-Match '{text}' is not an ETag of this app (like \"v3\")"),
        )
    })
}

/// Publish a new version of the app from a bundle. Returns the migration report: what changed and what
/// data moved. With `dry_run=true` nothing changes. A stale `If-Match` gets 412.
#[utoipa::path(put, path = "/api/apps/{app}/bundle", tag = "apps", params(("app" = String, Path), DryRun),
    request_body(content = Object, description = "Bundle: relative path → file content", content_type = "application/json"),
    responses((status = 200, body = MigrationReportView),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn publish_bundle(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    Query(query): Query<DryRun>,
    headers: HeaderMap,
    ApiJson(bundle): ApiJson<RawBundle>,
) -> Result<Response, ApiError> {
    let expected = expected_version(&headers)?;
    let report = state
        .runtime
        .publish_bundle(&principal, &app, &bundle, expected, query.dry_run)
        .await?;
    let version = report.to_version;
    let dry_run = report.dry_run;
    let mut response = Json(MigrationReportView::from(report)).into_response();
    if !dry_run && let Ok(etag) = HeaderValue::from_str(&format!("\"v{version}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// Every published version of the app, oldest first.
#[utoipa::path(get, path = "/api/apps/{app}/versions", tag = "apps", params(("app" = String, Path)),
    responses((status = 200, body = Vec<VersionView>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_versions(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    state.runtime.get_app(&principal, &app).await?;
    let versions = state
        .runtime
        .store()
        .list_app_versions(&app)
        .await
        .map_err(trellis_runtime::RuntimeError::from)?;
    Ok(Json(
        versions
            .into_iter()
            .map(|v| VersionView {
                version: v.version,
                semver: v.semver,
                published_at: v.published_at,
                published_by: v.published_by,
            })
            .collect(),
    ))
}
