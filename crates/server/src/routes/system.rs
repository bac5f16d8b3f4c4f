//! Health, the OpenAPI document and the unknown-route problem.

use axum::Json;
use axum::extract::{OriginalUri, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::problem::{ApiError, ErrorCode, Problem};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` when the server and its database answer.
    pub status: String,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, body = Health), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state
        .runtime
        .store()
        .ping()
        .await
        .map_err(trellis_runtime::RuntimeError::from)?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// This document (OpenAPI 3.1). Public, so tools can read it before signing in.
#[utoipa::path(get, path = "/api/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

pub async fn route_not_found(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::new(
        ErrorCode::RouteNotFound,
        format!("no route for '{}'; see /api/openapi.json", uri.path()),
    )
}
