//! Records of an app's entities: CRUD with ETag/If-Match, lists, history, restore and import.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use trellis_form::Locale;
use trellis_runtime::export::ExportFormat;
use trellis_runtime::import::ImportFormat;
use trellis_runtime::records::{ListRequest, RecordView};

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, ErrorCode, Problem};

fn locale(headers: &HeaderMap) -> Locale {
    Locale::from_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// `If-Match: "3"` (or `W/"3"`) → 3.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidInput,
                format!("If-Match '{text}' is not an ETag of this record (like \"3\")"),
            )
        })
}

fn with_etag(status: StatusCode, record: RecordView) -> Response {
    let etag = format!("\"{}\"", record.version);
    let mut response = (status, Json(record)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// JSON filter tree (CONTRACT.md §2), URL-encoded.
    pub filter: Option<String>,
    /// Comma-separated fields, `-` for descending: `-score,name`.
    pub sort: Option<String>,
    /// Page size, 1–1000 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Full-text search over the searchable fields: every word must match, from a word's beginning
    /// (an e-mail address or code typed in part works); substrings work in Chinese.
    pub q: Option<String>,
    /// Also return the total number of matching records (costs a count).
    #[serde(default)]
    pub count: bool,
    /// Include soft-deleted records.
    #[serde(default)]
    pub include_deleted: bool,
}

type RecordPath = Path<(String, String)>;
type RecordIdPath = Path<(String, String, String)>;

/// List records: filter, sort, keyset pages.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/records", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ListParams),
    responses((status = 200, description = "{items, next_cursor, total?}", body = Object),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn list_records(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity)): RecordPath,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let request = ListRequest {
        filter: params.filter,
        sort: params.sort,
        limit: params.limit,
        cursor: params.cursor,
        q: params.q,
        count: params.count,
        include_deleted: params.include_deleted,
    };
    let page = state
        .runtime
        .list_records(&principal, &app, &entity, &request)
        .await?;
    Ok(Json(page).into_response())
}

/// Create a record from its fields; 422 lists every field problem (messages follow `Accept-Language`).
#[utoipa::path(post, path = "/api/apps/{app}/entities/{entity}/records", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path)),
    request_body(content = Object, description = "The record's fields by name", content_type = "application/json"),
    responses((status = 201, description = "{id, version, created_at, updated_at, data}", body = Object),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_record(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity)): RecordPath,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let record = state
        .runtime
        .create_record(&principal, &app, &entity, &body, locale(&headers))
        .await?;
    Ok(with_etag(StatusCode::CREATED, record))
}

/// Read a record; the `ETag` is its version.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/records/{id}", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_record(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): RecordIdPath,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state
            .runtime
            .get_record(&principal, &app, &entity, &id)
            .await?,
    ))
}

/// Update a record with a JSON merge patch. A stale `If-Match` gets 412 and changes nothing.
#[utoipa::path(patch, path = "/api/apps/{app}/entities/{entity}/records/{id}", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    request_body(content = Object, description = "JSON merge patch of fields", content_type = "application/merge-patch+json"),
    responses((status = 200, body = Object), (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_record(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): RecordIdPath,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let expected = if_match(&headers)?;
    let record = state
        .runtime
        .update_record(
            &principal,
            &app,
            &entity,
            &id,
            &patch,
            expected,
            locale(&headers),
        )
        .await?;
    Ok(with_etag(StatusCode::OK, record))
}

/// Delete a record (soft: restorable). References follow each relation's `on_delete`.
#[utoipa::path(delete, path = "/api/apps/{app}/entities/{entity}/records/{id}", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_record(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): RecordIdPath,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .delete_record(&principal, &app, &entity, &id, if_match(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a deleted record.
#[utoipa::path(post, path = "/api/apps/{app}/entities/{entity}/records/{id}/restore", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Object), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn restore_record(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): RecordIdPath,
) -> Result<Response, ApiError> {
    Ok(with_etag(
        StatusCode::OK,
        state
            .runtime
            .restore_record(&principal, &app, &entity, &id)
            .await?,
    ))
}

/// Every change of a record: who, when, before and after.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/records/{id}/history", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn record_history(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity, id)): RecordIdPath,
) -> Result<Response, ApiError> {
    Ok(Json(
        state
            .runtime
            .record_history(&principal, &app, &entity, &id)
            .await?,
    )
    .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// Insert nothing unless every row is valid.
    #[serde(default)]
    pub atomic: bool,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExportParams {
    /// `csv` (default) or `xlsx`.
    pub format: Option<String>,
    /// JSON filter tree, as for lists.
    pub filter: Option<String>,
    /// Sort, as for lists.
    pub sort: Option<String>,
    /// Full-text search, as for lists.
    pub q: Option<String>,
}

/// Export every record matching `filter` (in `sort` order) as CSV or XLSX.
#[utoipa::path(get, path = "/api/apps/{app}/entities/{entity}/export", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ExportParams),
    responses((status = 200, description = "CSV or XLSX file", content_type = "text/csv"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn export_records(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity)): RecordPath,
    Query(params): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let name = params.format.as_deref().unwrap_or("csv");
    let format = ExportFormat::parse(name).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("format '{name}' is not supported: use csv or xlsx"),
        )
    })?;
    let request = ListRequest {
        filter: params.filter,
        sort: params.sort,
        q: params.q,
        ..Default::default()
    };
    let bytes = state
        .runtime
        .export_records(&principal, &app, &entity, &request, format)
        .await?;
    let extension = if format == ExportFormat::Csv {
        "csv"
    } else {
        "xlsx"
    };
    let disposition = format!("attachment; filename=\"{entity}.{extension}\"");
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// Import CSV (`text/csv`) or NDJSON (`application/x-ndjson`). Columns match fields by id or label.
#[utoipa::path(post, path = "/api/apps/{app}/entities/{entity}/import", tag = "records",
    params(("app" = String, Path), ("entity" = String, Path), ImportParams),
    request_body(content = String, description = "CSV with a header row, or NDJSON", content_type = "text/csv"),
    responses((status = 200, description = "{inserted, rejected: [{row, errors}]}", body = Object),
              (status = 415, body = Problem, content_type = "application/problem+json")))]
pub async fn import_records(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, entity)): RecordPath,
    Query(params): Query<ImportParams>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = axum::body::to_bytes(body, state.max_import_bytes).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the file is larger than {} bytes; use `trellis import` or raise --max-import-bytes", state.max_import_bytes),
        )
    })?;
    let (content_type, essence) = crate::extract::media_type(&headers);
    let format = match essence.as_str() {
        "text/csv" => ImportFormat::Csv,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" => ImportFormat::Ndjson,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => ImportFormat::Xlsx,
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "send CSV as 'text/csv', NDJSON as 'application/x-ndjson' or Excel as \
                     'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet' (got '{content_type}')"
                ),
            ));
        }
    };
    let report = state
        .runtime
        .import_records(
            &principal,
            &app,
            &entity,
            format,
            body,
            params.atomic,
            locale(&headers),
            &|_, _| {},
        )
        .await?;
    Ok(Json(report).into_response())
}
