//! Flows over HTTP: the flows of a record (state, events with `allowed` and the reason when not,
//! history), firing an event, the task inbox and completing tasks, and in-app notifications.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};
use trellis_form::Locale;

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, Problem};

fn locale(headers: &HeaderMap) -> Locale {
    Locale::from_accept_language(
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Each flow on the record: its state, every event with `allowed` (and `reason` when not), history.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/records/{id}/flows", tag = "flows",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn record_flows(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let flows = state
        .runtime
        .record_flows(&principal, &app, &entity, &id)
        .await?;
    Ok(Json(serde_json::json!({"items": flows})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventRequest {
    pub event: String,
    /// The event's data: fields the transition requires, and values its guard reads as `event`.
    #[serde(default)]
    pub data: Map<String, Value>,
}

/// Fire an event: 200 with the new state, or 409 with the reason and nothing changed.
#[utoipa::path(post, path = "/api/apps/{app}/entities/{entity}/records/{id}/flows/{flow}/events", tag = "flows",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path), ("flow" = String, Path)),
    request_body = EventRequest,
    responses((status = 200, body = Object), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn fire_event(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id, flow)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<EventRequest>,
) -> Result<Json<Value>, ApiError> {
    let fired = state
        .runtime
        .fire_event(
            &principal,
            &app,
            &entity,
            &id,
            &flow,
            &body.event,
            &body.data,
            locale(&headers),
        )
        .await?;
    Ok(Json(serde_json::to_value(fired).unwrap_or_default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TaskParams {
    /// `me` (default) or a user id (app managers).
    pub assignee: Option<String>,
    /// `open`, `done` or `cancelled`.
    pub status: Option<String>,
}

/// The task inbox.
#[utoipa::path(get, path = "/api/apps/{app}/tasks", tag = "flows", params(("app" = String, Path), TaskParams),
    responses((status = 200, body = Object)))]
pub async fn list_tasks(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    Query(params): Query<TaskParams>,
) -> Result<Json<Value>, ApiError> {
    let tasks = state
        .runtime
        .list_tasks(
            &principal,
            &app,
            params.assignee.as_deref(),
            params.status.as_deref(),
        )
        .await?;
    Ok(Json(serde_json::json!({"items": tasks})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteTask {
    /// One of the task's outcomes; approvals take `approve` or `reject`.
    pub outcome: String,
}

/// Complete a task; its outcome may fire an event.
#[utoipa::path(post, path = "/api/apps/{app}/tasks/{id}/complete", tag = "flows",
    params(("app" = String, Path), ("id" = String, Path)), request_body = CompleteTask,
    responses((status = 200, body = Object), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn complete_task(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CompleteTask>,
) -> Result<Json<Value>, ApiError> {
    let task = state
        .runtime
        .complete_task(&principal, &app, &id, &body.outcome, locale(&headers))
        .await?;
    Ok(Json(serde_json::to_value(task).unwrap_or_default()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReassignTask {
    /// Username or user id of the new assignee.
    pub to: String,
}

/// Delegate your task, or (app managers) reassign anyone's.
#[utoipa::path(post, path = "/api/apps/{app}/tasks/{id}/reassign", tag = "flows",
    params(("app" = String, Path), ("id" = String, Path)), request_body = ReassignTask,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn reassign_task(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReassignTask>,
) -> Result<Json<Value>, ApiError> {
    let task = state
        .runtime
        .reassign_task(&principal, &app, &id, &body.to)
        .await?;
    Ok(Json(serde_json::to_value(task).unwrap_or_default()))
}

/// Your in-app notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "flows", responses((status = 200, body = Object)))]
pub async fn notifications(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let items = state.runtime.notifications(&principal).await?;
    Ok(Json(serde_json::json!({"items": items})))
}
