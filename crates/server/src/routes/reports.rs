//! Reports over HTTP: list, run a report of the app, run an ad-hoc spec, export a result.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use trellis_form::Locale;
use trellis_runtime::export::ExportFormat;
use trellis_runtime::reports::{DashboardRequest, Execution, ReportRequest};

use crate::AppState;
use crate::extract::{ApiJson, Authenticated, OptionalJson};
use crate::problem::{ApiError, ErrorCode, Problem};

fn locale(headers: &HeaderMap) -> &'static str {
    Locale::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
    .tag()
}

/// Page filters and parameter values for a run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// A filter tree narrowing the dataset (page filters of a dashboard).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filters: Option<Value>,
    /// Parameter values by parameter id (`as_of`: `YYYY-MM-DD`).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    /// `memory` (default) or `database`: group in PostgreSQL (aggregate reports over own fields).
    #[serde(default)]
    #[schema(value_type = String)]
    pub execution: Execution,
}

/// An ad-hoc report spec, with optional page filters and parameter values.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// A report spec as in `reports/<id>.report.json` (`id` and `format_version` may be left out).
    #[schema(value_type = Object)]
    pub spec: Value,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filters: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = String)]
    pub execution: Execution,
}

impl From<RunBody> for ReportRequest {
    fn from(body: RunBody) -> Self {
        ReportRequest {
            filters: body.filters,
            parameters: body.parameters,
            execution: body.execution,
            rows_only: false,
        }
    }
}

/// The app's reports the caller can run.
#[utoipa::path(get, path = "/api/apps/{app}/reports", tag = "reports",
    params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_reports(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let reports = state
        .runtime
        .list_reports(&principal, &app, locale(&headers))
        .await?;
    Ok(Json(serde_json::json!({ "items": reports })))
}

/// Run a report → `{columns: [{name, type, label}], rows, chart: {kind, option}, drill, records}`.
/// `drill[i]` is the records filter selecting exactly the records behind row `i`.
#[utoipa::path(post, path = "/api/apps/{app}/reports/{report}/run", tag = "reports",
    params(("app" = String, Path), ("report" = String, Path)), request_body = RunBody,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn run_report(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, report)): Path<(String, String)>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RunBody>,
) -> Result<Json<Value>, ApiError> {
    let request: ReportRequest = body.unwrap_or_default().into();
    let output = state
        .runtime
        .run_report(&principal, &app, &report, &request, locale(&headers))
        .await?;
    Ok(Json(serde_json::to_value(output).unwrap_or_default()))
}

/// Run an ad-hoc report spec → the same shape as a report run; a broken spec is a 422 with pointers
/// into `/spec`.
#[utoipa::path(post, path = "/api/apps/{app}/query", tag = "reports",
    params(("app" = String, Path)), request_body = QueryBody,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn query(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<QueryBody>,
) -> Result<Json<Value>, ApiError> {
    let request = ReportRequest {
        filters: body.filters,
        parameters: body.parameters,
        execution: body.execution,
        rows_only: false,
    };
    let output = state
        .runtime
        .query_report(&principal, &app, &body.spec, &request, locale(&headers))
        .await?;
    Ok(Json(serde_json::to_value(output).unwrap_or_default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
}

/// Run a report and download the result as CSV or XLSX (needs the export right on its entity).
#[utoipa::path(post, path = "/api/apps/{app}/reports/{report}/export", tag = "reports",
    params(("app" = String, Path), ("report" = String, Path), ExportQuery), request_body = RunBody,
    responses((status = 200, description = "CSV or XLSX file", content_type = "text/csv"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn export_report(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, report)): Path<(String, String)>,
    Query(params): Query<ExportQuery>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<RunBody>,
) -> Result<Response, ApiError> {
    let name = params.format.as_deref().unwrap_or("csv");
    let format = ExportFormat::parse(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("format '{name}' is not supported: use csv or xlsx"),
        )
    })?;
    let request: ReportRequest = body.unwrap_or_default().into();
    let bytes = state
        .runtime
        .export_report(
            &principal,
            &app,
            &report,
            &request,
            locale(&headers),
            format,
        )
        .await?;
    let extension = if format == ExportFormat::Csv {
        "csv"
    } else {
        "xlsx"
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{report}.{extension}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Page filter values (by filter id) and parameters for a dashboard run.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DashboardBody {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filters: Map<String, Value>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub parameters: Map<String, Value>,
}

/// The app's dashboards (views of kind `dashboard`): id, label, page filters and widgets.
#[utoipa::path(get, path = "/api/apps/{app}/dashboards", tag = "reports",
    params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_dashboards(
    State(state): State<AppState>,
    Authenticated(_principal): Authenticated,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let items = state
        .runtime
        .list_dashboards(&app, locale(&headers))
        .await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Run every widget of a dashboard with the shared page filters → `{id, label, widgets: [{report,
/// title, x, y, w, h, result | error}]}`. A widget the caller may not see carries its own problem.
#[utoipa::path(post, path = "/api/apps/{app}/dashboards/{dashboard}/run", tag = "reports",
    params(("app" = String, Path), ("dashboard" = String, Path)), request_body = DashboardBody,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn run_dashboard(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, dashboard)): Path<(String, String)>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<DashboardBody>,
) -> Result<Json<Value>, ApiError> {
    let body = body.unwrap_or_default();
    let request = DashboardRequest {
        filters: body.filters,
        parameters: body.parameters,
    };
    let run = state
        .runtime
        .run_dashboard(&principal, &app, &dashboard, &request, locale(&headers))
        .await?;
    let widgets: Vec<Value> = run
        .widgets
        .into_iter()
        .map(|widget| {
            let [x, y, w, h] = widget.position;
            let mut entry = serde_json::json!({
                "report": widget.report, "title": widget.title, "x": x, "y": y, "w": w, "h": h,
            });
            match widget.result {
                Ok(output) => entry["result"] = serde_json::to_value(output).unwrap_or_default(),
                Err(error) => {
                    entry["error"] =
                        serde_json::to_value(ApiError::from(error).to_problem()).unwrap_or_default()
                }
            }
            entry
        })
        .collect();
    Ok(Json(
        serde_json::json!({"id": run.id, "label": run.label, "widgets": widgets}),
    ))
}
