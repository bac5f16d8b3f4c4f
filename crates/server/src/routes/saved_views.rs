//! Saved list views of an entity: the caller's own and the shared ones.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, Problem};

/// Body of `POST …/views`: a view by name (saving the same name again replaces it).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveViewBody {
    /// 1–100 characters.
    pub name: String,
    /// Offer it to everyone who can read the entity.
    #[serde(default)]
    pub shared: bool,
    /// What the list shows: filter tree, sort, columns… (a JSON object).
    #[schema(value_type = Object)]
    pub spec: Value,
}

/// The caller's saved views of the entity and the shared ones, by name.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/views", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_views(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let views = state
        .runtime
        .list_saved_views(&principal, &app, &entity)
        .await?;
    Ok(Json(serde_json::json!({ "items": views })))
}

/// Save a view (→ 201); the same name again replaces the caller's view.
#[utoipa::path(post, path = "/api/apps/{app}/entities/{entity}/views", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path)), request_body = SaveViewBody,
    responses((status = 201, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn save_view(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity)): Path<(String, String)>,
    ApiJson(body): ApiJson<SaveViewBody>,
) -> Result<Response, ApiError> {
    let view = state
        .runtime
        .save_view(
            &principal,
            &app,
            &entity,
            &body.name,
            body.shared,
            &body.spec,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Delete a view: its owner, or an app admin for a shared one.
#[utoipa::path(delete, path = "/api/apps/{app}/entities/{entity}/views/{id}", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_view(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .delete_saved_view(&principal, &app, &entity, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
