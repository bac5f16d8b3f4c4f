//! Extractors that turn bad requests into problem+json: JSON bodies with pointers, bearer tokens.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use trellis_runtime::Principal;

use crate::AppState;
use crate::problem::{ApiError, ErrorCode};

/// A JSON body. Unlike axum's `Json`, every rejection is a problem+json with a JSON pointer to the
/// offending place, and a wrong content type says which one to use.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (content_type, essence) = media_type(request.headers());
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "send the body as JSON with 'Content-Type: application/json' (got '{content_type}')"
                ),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                ApiError::new(ErrorCode::for_status(status), rejection.body_text())
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out: an empty body means "use the defaults".
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (content_type, essence) = media_type(request.headers());
        let (content_type, essence) = (content_type.to_owned(), essence);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                ApiError::new(ErrorCode::for_status(status), rejection.body_text())
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "send the body as JSON with 'Content-Type: application/json' (got '{content_type}')"
                ),
            ));
        }
        parse_json(&bytes).map(|value| OptionalJson(Some(value)))
    }
}

/// The `Content-Type` as sent and its lower-cased essence (`text/csv; charset=utf-8` → `text/csv`).
pub fn media_type(headers: &axum::http::HeaderMap) -> (&str, String) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (content_type, essence)
}

/// Parse JSON, reporting where it failed as a JSON pointer.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    match result {
        Ok(value) => Ok(value),
        Err(error) => {
            let pointer = trellis_model::pointer::from_serde_path("", error.path());
            let inner = error.into_inner();
            let code = if inner.is_syntax() || inner.is_eof() {
                "syntax"
            } else {
                "type"
            };
            Err(ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body could not be read: {inner}"),
            )
            .with_error(pointer, code, inner.to_string()))
        }
    }
}

/// The signed-in user behind `Authorization: Bearer <token>`; 401 problem otherwise.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::Unauthorized, "sign in first: send 'Authorization: Bearer <token>' (POST /api/auth/login gives a token)")
            })?;
        match state.runtime.authenticate(token).await? {
            Some(mut principal) => {
                principal.address = client_address(parts);
                tracing::Span::current().record("user", principal.username.as_str());
                Ok(Self(principal))
            }
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the token is invalid, expired or revoked; sign in again",
            )),
        }
    }
}

/// The bearer token itself (for sign-out).
pub fn bearer_token(parts: &axum::http::HeaderMap) -> Option<&str> {
    parts
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The client's address (the socket peer), for the audit log and sign-in limits.
pub fn client_address(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
}

/// The client's address as an extractor (never fails).
pub struct ClientAddress(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(client_address(parts)))
    }
}
