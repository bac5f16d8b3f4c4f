//! problem+json (RFC 9457) errors and the one table that maps errors to codes and statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use trellis_runtime::RuntimeError;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One problem with one place in the input.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer into the request body, or into the metadata file named by `file`.
    pub pointer: String,
    /// Stable machine-readable code.
    pub code: String,
    pub message: String,
    /// For metadata problems: the file of the bundle the pointer is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// For query problems: the query parameter the pointer is in (e.g. `filter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable code of the problem kind (also the last segment of `type`).
    pub code: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Every kind of error the API returns: one row each, with its status and title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidBundle,
    InvalidRecord,
    InvalidQuery,
    InvalidJson,
    InvalidInput,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    BadCredentials,
    TooManyAttempts,
    Forbidden,
    NotFound,
    RouteNotFound,
    MethodNotAllowed,
    Conflict,
    PreconditionFailed,
    Timeout,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// (slug, status, title) — the single source of truth for error codes.
    pub fn describe(self) -> (&'static str, StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::InvalidBundle => (
                "invalid-bundle",
                S::UNPROCESSABLE_ENTITY,
                "The app bundle is not valid",
            ),
            Self::InvalidRecord => (
                "validation-failed",
                S::UNPROCESSABLE_ENTITY,
                "The record is not valid",
            ),
            Self::InvalidQuery => (
                "invalid-query",
                S::UNPROCESSABLE_ENTITY,
                "The query is not valid",
            ),
            Self::InvalidJson => (
                "invalid-json",
                S::BAD_REQUEST,
                "The request body is not valid JSON for this route",
            ),
            Self::InvalidInput => (
                "invalid-input",
                S::UNPROCESSABLE_ENTITY,
                "The request is not valid",
            ),
            Self::UnsupportedMediaType => (
                "unsupported-media-type",
                S::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
            ),
            Self::PayloadTooLarge => (
                "payload-too-large",
                S::PAYLOAD_TOO_LARGE,
                "The request body is too large",
            ),
            Self::Unauthorized => ("unauthorized", S::UNAUTHORIZED, "Authentication required"),
            Self::BadCredentials => (
                "bad-credentials",
                S::UNAUTHORIZED,
                "Wrong username or password",
            ),
            Self::Forbidden => ("forbidden", S::FORBIDDEN, "Not allowed"),
            Self::TooManyAttempts => (
                "too-many-attempts",
                S::TOO_MANY_REQUESTS,
                "Too many failed sign-ins",
            ),
            Self::NotFound => ("not-found", S::NOT_FOUND, "Not found"),
            Self::RouteNotFound => ("route-not-found", S::NOT_FOUND, "No such route"),
            Self::MethodNotAllowed => (
                "method-not-allowed",
                S::METHOD_NOT_ALLOWED,
                "Method not allowed",
            ),
            Self::Conflict => ("conflict", S::CONFLICT, "Conflict"),
            Self::PreconditionFailed => (
                "precondition-failed",
                S::PRECONDITION_FAILED,
                "The resource changed",
            ),
            Self::Timeout => (
                "timeout",
                S::SERVICE_UNAVAILABLE,
                "The request took too long",
            ),
            Self::Unavailable => ("unavailable", S::SERVICE_UNAVAILABLE, "Service unavailable"),
            Self::Internal => (
                "internal",
                S::INTERNAL_SERVER_ERROR,
                "Internal server error",
            ),
        }
    }

    /// The code for a bare status produced outside our handlers (framework rejections, timeouts).
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::RouteNotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => Self::Timeout,
            s if s.is_client_error() => Self::InvalidInput,
            _ => Self::Internal,
        }
    }
}

/// An error on its way to becoming a problem+json response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn with_error(
        mut self,
        pointer: impl Into<String>,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        self.errors.push(FieldError {
            pointer: pointer.into(),
            code: code.into(),
            message: message.into(),
            file: None,
            severity: None,
            parameter: None,
        });
        self
    }

    pub fn to_problem(&self) -> Problem {
        let (slug, status, title) = self.code.describe();
        Problem {
            type_uri: format!("https://trellis.dev/problems/{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            code: slug.into(),
            errors: self.errors.clone(),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(error: RuntimeError) -> Self {
        match error {
            RuntimeError::InvalidBundle(problems) => {
                let errors = problems
                    .iter()
                    .map(|p| FieldError {
                        pointer: p.pointer.clone(),
                        code: p.code.into(),
                        message: p.message.clone(),
                        file: Some(p.file.clone()),
                        severity: Some(format!("{:?}", p.severity).to_lowercase()),
                        parameter: None,
                    })
                    .collect();
                let count = problems
                    .iter()
                    .filter(|p| p.severity == trellis_model::Severity::Error)
                    .count();
                Self {
                    code: ErrorCode::InvalidBundle,
                    detail: format!("the bundle has {count} error(s); nothing was changed"),
                    errors,
                }
            }
            RuntimeError::InvalidRecord(issues) => {
                let errors = issues.iter().map(|i| field_error(i, None)).collect();
                Self {
                    code: ErrorCode::InvalidRecord,
                    detail: format!("{} field problem(s); nothing was changed", issues.len()),
                    errors,
                }
            }
            RuntimeError::InvalidQuery { parameter, issues } => {
                let errors = issues
                    .iter()
                    .map(|i| field_error(i, Some(parameter)))
                    .collect();
                Self {
                    code: ErrorCode::InvalidQuery,
                    detail: format!("the '{parameter}' parameter is not valid"),
                    errors,
                }
            }
            RuntimeError::NotFound(what) => {
                Self::new(ErrorCode::NotFound, format!("{what} not found"))
            }
            RuntimeError::Conflict(message) | RuntimeError::EventNotFromState(message) => {
                Self::new(ErrorCode::Conflict, message)
            }
            RuntimeError::PreconditionFailed(message) => {
                Self::new(ErrorCode::PreconditionFailed, message)
            }
            RuntimeError::BadCredentials => {
                Self::new(ErrorCode::BadCredentials, "wrong username or password")
            }
            RuntimeError::Forbidden(message) => Self::new(ErrorCode::Forbidden, message),
            RuntimeError::TooManyAttempts(minutes) => Self::new(
                ErrorCode::TooManyAttempts,
                format!("too many failed sign-ins; try again in {minutes} minutes"),
            ),
            RuntimeError::InvalidInput(message) => Self::new(ErrorCode::InvalidInput, message),
            RuntimeError::Store(error) => {
                // Never leak SQL or driver text to clients; log it with the request's span instead.
                tracing::error!(error = %error, "storage error");
                Self::new(
                    ErrorCode::Unavailable,
                    "the database could not complete the request; try again",
                )
            }
            RuntimeError::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                Self::new(
                    ErrorCode::Internal,
                    "something went wrong on the server; the error was logged",
                )
            }
        }
    }
}

fn field_error(issue: &trellis_form::FieldIssue, parameter: Option<&str>) -> FieldError {
    FieldError {
        pointer: issue.pointer.clone(),
        code: issue.code.into(),
        message: issue.message.clone(),
        file: None,
        severity: None,
        parameter: parameter.map(str::to_owned),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.to_problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
