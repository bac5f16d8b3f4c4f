//! The template gallery (list, publish a package, install as an app) and upgrades of installed apps
//! (three-way merge with dry run, rollback).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use trellis_model::merge::MergeSide;
use trellis_runtime::templates::InstallOptions;
use trellis_runtime::templates::source::read_template_bytes;
use trellis_runtime::templates::upgrade::UpgradeOptions;

use crate::AppState;
use crate::extract::{Authenticated, OptionalJson, media_type, parse_json};
use crate::problem::{ApiError, ErrorCode, Problem};
use crate::routes::apps::{DryRun, expected_version};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PublishQuery {
    /// Accept an unsigned package although this server requires signatures.
    #[serde(default)]
    pub allow_unsigned: bool,
}

/// Body of `POST /api/templates/{id}/install` (all optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// App id (default: the template id).
    pub app: Option<String>,
    /// Template version (default: the newest).
    pub version: Option<String>,
    /// Also import the template's sample data.
    #[serde(default)]
    pub sample_data: bool,
}

/// JSON body of `POST /api/apps/{app}/upgrade` (all optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    /// Template version from the gallery (default: the newest).
    pub version: Option<String>,
    /// Conflict id (`FILE:POINTER`) → `local` or `template`; unresolved conflicts keep local.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub resolutions: BTreeMap<String, MergeSide>,
}

/// The gallery: bundled and published templates with name, version, publisher, description and
/// screenshots.
#[utoipa::path(get, path = "/api/templates", tag = "templates",
    responses((status = 200, body = Vec<Object>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_templates(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
) -> Result<Json<serde_json::Value>, ApiError> {
    let templates = state.runtime.list_templates().await?;
    Ok(Json(serde_json::to_value(templates).unwrap_or_default()))
}

/// A screenshot or other asset of a gallery template (paths under `screenshots/` or `assets/`, as
/// listed in the template's `screenshots`).
#[utoipa::path(get, path = "/api/templates/{id}/files/{folder}/{name}", tag = "templates",
    params(("id" = String, Path), ("folder" = String, Path, description = "screenshots or assets"),
           ("name" = String, Path, description = "e.g. board.svg")),
    responses((status = 200, description = "The file"), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn template_file(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Path((id, folder, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let path = format!("{folder}/{name}");
    let (media_type, bytes) = state.runtime.template_asset(&id, &path).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, media_type),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; sandbox",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Publish a packed template (`application/zip`, from `trellis template pack`): unpacked safely,
/// checksums and signature verified, validated whole. Platform admins only.
#[utoipa::path(post, path = "/api/templates", tag = "templates", params(PublishQuery),
    request_body(content = Vec<u8>, description = "The package", content_type = "application/zip"),
    responses((status = 201, body = Object), (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn publish_template(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(query): Query<PublishQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let published = state
        .runtime
        .publish_template(&principal, &body, query.allow_unsigned)
        .await?;
    Ok((StatusCode::CREATED, Json(published)).into_response())
}

/// JSON body of `POST /api/apps/{app}/publish-template`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishAppRequest {
    /// Template version (semver; default: the app's manifest version).
    #[serde(default)]
    pub version: Option<String>,
}

/// Publish the app's current metadata to the gallery as a template (unsigned), after the same
/// checks as an uploaded package (validation, both languages complete, the template's own tests).
/// Platform admins only → 201 with the gallery entry.
#[utoipa::path(post, path = "/api/apps/{app}/publish-template", tag = "templates", params(("app" = String, Path)),
    request_body(content = PublishAppRequest, content_type = "application/json"),
    responses((status = 201, body = Object), (status = 422, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn publish_app_template(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    OptionalJson(body): OptionalJson<PublishAppRequest>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let published = state
        .runtime
        .publish_app_as_template(&principal, &app, body.version.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(published)).into_response())
}

/// Install a gallery template as an app (optionally with its sample data) → 201.
#[utoipa::path(post, path = "/api/templates/{id}/install", tag = "templates", params(("id" = String, Path)),
    request_body(content = InstallRequest, content_type = "application/json"),
    responses((status = 201, body = Object), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn install_template(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<InstallRequest>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let options = InstallOptions {
        app: body.app,
        sample_data: body.sample_data,
    };
    let installed = state
        .runtime
        .install_template(&principal, &id, body.version.as_deref(), &options)
        .await?;
    Ok((StatusCode::CREATED, Json(installed)).into_response())
}

/// Upgrade an installed app to a newer version of its template, keeping local edits: a three-way
/// merge of the app's base, the app and the new version, published through the ordinary migration.
/// The body is either JSON (a gallery version and conflict resolutions) or a package
/// (`application/zip`). `dry_run=true` returns the diff, conflicts and migration without changing
/// anything. `If-Match` guards against a concurrent publish.
#[utoipa::path(post, path = "/api/apps/{app}/upgrade", tag = "templates", params(("app" = String, Path), DryRun),
    request_body(content = UpgradeRequest, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn upgrade_app(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    Query(query): Query<DryRun>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let expected = expected_version(&headers)?;
    let (_, essence) = media_type(&headers);
    let (template, resolutions) = if essence == "application/zip" {
        let read = read_template_bytes(&body, "package.zip");
        if !read.problems.is_empty() {
            return Err(trellis_runtime::RuntimeError::InvalidBundle(read.problems).into());
        }
        if let Some(package) = &read.package {
            state
                .runtime
                .settings()
                .template_signatures
                .check(package, false)
                .map_err(|p| trellis_runtime::RuntimeError::InvalidBundle(vec![p]))?;
        }
        (read.bundle, BTreeMap::new())
    } else {
        let request: UpgradeRequest = if body.iter().all(u8::is_ascii_whitespace) {
            UpgradeRequest::default()
        } else if essence == "application/json" {
            parse_json(&body)?
        } else {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send JSON ({\"version\", \"resolutions\"}) or a template package (application/zip)",
            ));
        };
        let base = state.runtime.app_template_id(&principal, &app).await?;
        let bundle = state
            .runtime
            .template_bundle(&base, request.version.as_deref())
            .await?;
        (bundle, request.resolutions)
    };
    let options = UpgradeOptions {
        resolutions,
        dry_run: query.dry_run,
        expected_version: expected,
    };
    let report = state
        .runtime
        .upgrade_app(&principal, &app, template, &options)
        .await?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// Roll back the app's last upgrade: the app version before it is published again (records moved
/// out of states it lacks go back where they came from) and the template base is restored.
#[utoipa::path(post, path = "/api/apps/{app}/upgrade/rollback", tag = "templates", params(("app" = String, Path), DryRun),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn rollback_upgrade(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    Query(query): Query<DryRun>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let report = state
        .runtime
        .rollback_upgrade(&principal, &app, query.dry_run)
        .await?;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// The app's upgrades, newest first, each with its merge report.
#[utoipa::path(get, path = "/api/apps/{app}/upgrades", tag = "templates", params(("app" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_upgrades(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let upgrades = state.runtime.app_upgrades(&principal, &app).await?;
    Ok(Json(upgrades))
}
