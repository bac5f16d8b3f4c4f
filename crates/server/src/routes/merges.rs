//! Duplicate detection and reversible merges of records.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use trellis_runtime::records::merge::MergeRequest;

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, Problem};

/// Body of a merge.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeBody {
    /// Ids of the records folded into this one.
    pub duplicates: Vec<String>,
    /// Values the survivor ends up with, by field (others: its own, or a duplicate's when empty).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub values: serde_json::Map<String, serde_json::Value>,
}

/// Records that share an identity key (the entity's `duplicate_keys`) with this one, most
/// important key first.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/records/{id}/duplicates", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn duplicates(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let found = state
        .runtime
        .find_duplicates(&principal, &app, &entity, &id)
        .await?;
    Ok(Json(serde_json::json!({"items": found})))
}

/// Merge duplicates into this record: references move to it, the duplicates are soft-deleted, its
/// empty fields are filled from them. Undo with `POST /api/apps/{app}/merges/{merge}/undo`.
#[utoipa::path(post, path = "/api/apps/{app}/entities/{entity}/records/{id}/merge", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    request_body(content = MergeBody, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn merge(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = MergeRequest {
        duplicates: body.duplicates,
        values: body.values,
    };
    let outcome = state
        .runtime
        .merge_records(&principal, &app, &entity, &id, &request)
        .await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

/// Undo a merge: the survivor's values, the merged records and the moved references come back.
#[utoipa::path(post, path = "/api/apps/{app}/merges/{merge}/undo", tag = "records",
    params(("app" = String, Path), ("merge" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn undo_merge(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, merge)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let outcome = state.runtime.undo_merge(&principal, &app, &merge).await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}
