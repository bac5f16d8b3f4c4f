//! Rules over HTTP: dry runs with a trace, batch runs, and the run log.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, Problem};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// The record's fields by name.
    pub record: Map<String, Value>,
    /// The record before the change (for conditions over `before`).
    #[serde(default)]
    pub before: Option<Map<String, Value>>,
}

/// Dry run: what the rule would do with the record, with a trace of every value. Persists nothing.
#[utoipa::path(post, path = "/api/apps/{app}/rules/{rule}/test", tag = "rules",
    params(("app" = String, Path), ("rule" = String, Path)), request_body = RuleTest,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn test_rule(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, rule)): Path<(String, String)>,
    ApiJson(body): ApiJson<RuleTest>,
) -> Result<Json<Value>, ApiError> {
    let evaluation = state
        .runtime
        .test_rule(&principal, &app, &rule, &body.record, body.before.as_ref())
        .await?;
    let mut value = serde_json::to_value(evaluation).unwrap_or_default();
    value["persisted"] = Value::Bool(false);
    Ok(Json(value))
}

/// Run the rule over every record of its entity that it matches → `{processed, matched, changed, failed}`.
#[utoipa::path(post, path = "/api/apps/{app}/rules/{rule}/run", tag = "rules",
    params(("app" = String, Path), ("rule" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn run_rule(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, rule)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let outcome = state.runtime.run_rule(&principal, &app, &rule).await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunTogether {
    /// Ids of `apply_report` rules over one entity, no field written by two of them.
    pub rules: Vec<String>,
}

/// Run `apply_report` rules together: every report first, then one write-back that gives each
/// record all their values in one update (one history entry and one round of its rules per
/// record) → `{processed, matched, changed, failed, reports: [{rule, report, rows, elapsed_ms}],
/// write_back_ms}`. What the scheduler does for such rules due at the same time.
#[utoipa::path(post, path = "/api/apps/{app}/rules/run", tag = "rules",
    params(("app" = String, Path)), request_body = RunTogether,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn run_rules_together(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<RunTogether>,
) -> Result<Json<Value>, ApiError> {
    let outcome = state
        .runtime
        .run_rules_together(&principal, &app, &body.rules)
        .await?;
    Ok(Json(serde_json::to_value(outcome).unwrap_or_default()))
}

/// The rule's run log, newest first: trigger, record, matched, outcome, error, duration.
#[utoipa::path(get, path = "/api/apps/{app}/rules/{rule}/runs", tag = "rules",
    params(("app" = String, Path), ("rule" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn rule_runs(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, rule)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let runs = state.runtime.rule_runs(&principal, &app, &rule).await?;
    Ok(Json(serde_json::json!({"items": runs})))
}

/// Inbound webhook of a rule with the `webhook` trigger (e.g. a website form). No bearer token: the
/// body must be signed with the server's webhook secret, `x-trellis-signature: sha256=<hex HMAC-SHA256
/// of the body>`. When the rule's condition holds, its `set`s apply and the record is created → 201
/// `{"created": true, "record"}`; otherwise 200 `{"created": false}`.
#[utoipa::path(post, path = "/api/apps/{app}/rules/{rule}/webhook", tag = "rules",
    params(("app" = String, Path), ("rule" = String, Path)),
    request_body(content = Object, description = "the new record's fields", content_type = "application/json"),
    security(()),
    responses((status = 201, body = Object), (status = 200, body = Object),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn inbound_webhook(
    State(state): State<AppState>,
    Path((app, rule)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let signature = headers
        .get("x-trellis-signature")
        .and_then(|v| v.to_str().ok());
    let locale = trellis_form::Locale::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let created = state
        .runtime
        .inbound_webhook(&app, &rule, &body, signature, locale)
        .await?;
    Ok(match created {
        Some(record) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"created": true, "record": record})),
        ),
        None => (StatusCode::OK, Json(serde_json::json!({"created": false}))),
    })
}

/// The rule's batch runs, newest first: status (`running`, `done`), `total` records when it started,
/// `processed` so far (progress), `matched`, `changed`, `failed`, and the position it resumes from.
#[utoipa::path(get, path = "/api/apps/{app}/rules/{rule}/batches", tag = "rules",
    params(("app" = String, Path), ("rule" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn rule_batches(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, rule)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let batches = state.runtime.rule_batches(&principal, &app, &rule).await?;
    Ok(Json(serde_json::json!({"items": batches})))
}
