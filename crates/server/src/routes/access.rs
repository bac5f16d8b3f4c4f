//! Access control over HTTP: users and departments (platform admins), role assignments and the
//! access explanation (app managers), API tokens (each user their own) and the audit log.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use trellis_form::Locale;

use crate::AppState;
use crate::extract::{ApiJson, Authenticated};
use crate::problem::{ApiError, Problem};

/// A field that is present (even as `null`) is `Some`, so `null` can clear a value.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn locale(headers: &HeaderMap) -> Locale {
    Locale::from_accept_language(
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// Subset of `read`, `write`, `export`, `admin`, each optionally `APP:SCOPE`; absent: all of yours.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

/// Your API tokens (never their secrets).
#[utoipa::path(get, path = "/api/auth/tokens", tag = "access",
    responses((status = 200, body = Object), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let tokens = state.runtime.list_api_tokens(&principal).await?;
    Ok(Json(serde_json::json!({"items": tokens})))
}

/// Create an API token; the secret is in this response only.
#[utoipa::path(post, path = "/api/auth/tokens", tag = "access", request_body = NewToken,
    responses((status = 201, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = state
        .runtime
        .create_api_token(&principal, &body.name, body.scopes, body.expires_in_days)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(created).unwrap_or_default()),
    ))
}

/// Revoke one of your API tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/auth/tokens/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.runtime.revoke_api_token(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
}

/// Change your password; your other sessions end.
#[utoipa::path(post, path = "/api/auth/password", tag = "access", request_body = PasswordChange,
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .change_own_password(&principal, &body.current, &body.new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every user (platform admins).
#[utoipa::path(get, path = "/api/users", tag = "access",
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_users(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let users = state.runtime.list_users(&principal).await?;
    Ok(Json(serde_json::json!({"items": users})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub department_id: Option<String>,
    /// Where notifications are mailed (when SMTP is configured).
    #[serde(default)]
    pub email: Option<String>,
    /// Preferred locale: `en` or `zh-CN` (none: notifications in both).
    #[serde(default)]
    pub locale: Option<String>,
}

/// Create a user (platform admins).
#[utoipa::path(post, path = "/api/users", tag = "access", request_body = NewUser,
    responses((status = 201, body = Object), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_user(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut changes = trellis_runtime::UserChanges {
        display_name: body.display_name.map(Some),
        department_id: body.department_id.map(Some),
        email: body.email.map(Some),
        locale: body.locale.map(Some),
        ..Default::default()
    };
    // Checked before the user exists: a bad address or department creates nobody.
    state.runtime.check_user_changes(&mut changes).await?;
    let created = state
        .runtime
        .create_user(&principal, &body.username, &body.password, body.is_admin)
        .await?;
    let user = state
        .runtime
        .update_user(&principal, &created.user_id, changes, None)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(user).unwrap_or_default()),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[serde(default, deserialize_with = "present")]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub department_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub locale: Option<Option<String>>,
    #[serde(default)]
    pub is_admin: Option<bool>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password (their sessions end).
    #[serde(default)]
    pub password: Option<String>,
}

/// Change a user: department, admin right, disabled, display name, e-mail, locale, password
/// (platform admins).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "access", params(("id" = String, Path)), request_body = UserPatch,
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn update_user(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> Result<Json<Value>, ApiError> {
    let changes = trellis_runtime::UserChanges {
        display_name: body.display_name,
        department_id: body.department_id,
        is_admin: body.is_admin,
        disabled: body.disabled,
        password_hash: None,
        email: body.email,
        locale: body.locale,
    };
    let user = state
        .runtime
        .update_user(&principal, &id, changes, body.password.as_deref())
        .await?;
    Ok(Json(serde_json::to_value(user).unwrap_or_default()))
}

/// The department tree, flat (each with its parent).
#[utoipa::path(get, path = "/api/departments", tag = "access", responses((status = 200, body = Object)))]
pub async fn list_departments(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let departments = state.runtime.list_departments(&principal).await?;
    Ok(Json(serde_json::json!({"items": departments})))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentBody {
    pub name: String,
    #[serde(default)]
    pub parent_id: Option<String>,
}

/// Create a department (platform admins).
#[utoipa::path(post, path = "/api/departments", tag = "access", request_body = DepartmentBody,
    responses((status = 201, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_department(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    ApiJson(body): ApiJson<DepartmentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let saved = state
        .runtime
        .save_department(&principal, None, &body.name, body.parent_id.as_deref())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(saved).unwrap_or_default()),
    ))
}

/// Rename or move a department (platform admins).
#[utoipa::path(put, path = "/api/departments/{id}", tag = "access", params(("id" = String, Path)), request_body = DepartmentBody,
    responses((status = 200, body = Object), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn update_department(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DepartmentBody>,
) -> Result<Json<Value>, ApiError> {
    let saved = state
        .runtime
        .save_department(&principal, Some(&id), &body.name, body.parent_id.as_deref())
        .await?;
    Ok(Json(serde_json::to_value(saved).unwrap_or_default()))
}

/// Delete an empty department (platform admins).
#[utoipa::path(delete, path = "/api/departments/{id}", tag = "access", params(("id" = String, Path)),
    responses((status = 204), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_department(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.runtime.delete_department(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's roles and who holds them (app managers).
#[utoipa::path(get, path = "/api/apps/{app}/roles", tag = "access", params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn app_roles(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.runtime.app_roles(&principal, &app).await?))
}

type AssignmentPath = Path<(String, String, String, String)>;

/// Give a role to a user or department (`kind` is `user` or `department`).
#[utoipa::path(put, path = "/api/apps/{app}/roles/{role}/{kind}/{id}", tag = "access",
    params(("app" = String, Path), ("role" = String, Path), ("kind" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn assign_role(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, role, kind, id)): AssignmentPath,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .set_role_assignment(&principal, &app, &role, &kind, &id, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Take a role away from a user or department.
#[utoipa::path(delete, path = "/api/apps/{app}/roles/{role}/{kind}/{id}", tag = "access",
    params(("app" = String, Path), ("role" = String, Path), ("kind" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn unassign_role(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path((app, role, kind, id)): AssignmentPath,
) -> Result<StatusCode, ApiError> {
    state
        .runtime
        .set_role_assignment(&principal, &app, &role, &kind, &id, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExplainParams {
    /// Username or user id.
    pub user: String,
    pub entity: String,
    #[serde(default)]
    pub record: Option<String>,
}

/// Why a user can or cannot do something with an entity (and a record), in plain words.
#[utoipa::path(get, path = "/api/apps/{app}/access/explain", tag = "access", params(("app" = String, Path), ExplainParams),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn explain(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
    Query(params): Query<ExplainParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let explanation = state
        .runtime
        .explain_access(
            &principal,
            &app,
            &params.user,
            &params.entity,
            params.record.as_deref(),
            locale(&headers),
        )
        .await?;
    Ok(Json(serde_json::to_value(explanation).unwrap_or_default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AuditParams {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub app: Option<String>,
    /// Entries older than this sequence number (the previous page's last `seq`).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// The audit log, newest first (platform admins).
#[utoipa::path(get, path = "/api/audit", tag = "access", params(AuditParams),
    responses((status = 200, body = Object), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn audit_log(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Query(params): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let entries = state
        .runtime
        .audit_log(
            &principal,
            trellis_runtime::AuditQuery {
                action: params.action,
                actor_id: params.actor,
                app_id: params.app,
                before_seq: params.before,
                limit: params.limit.unwrap_or(100),
            },
        )
        .await?;
    Ok(Json(serde_json::json!({"items": entries})))
}

/// The people of an app, for user pickers (owners, assignees): users holding a role in it (directly
/// or through their department) and the platform admins — names only. Any member may read it.
#[utoipa::path(get, path = "/api/apps/{app}/people", tag = "access", params(("app" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn app_people(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    Path(app): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let people = state.runtime.app_people(&principal, &app).await?;
    Ok(Json(serde_json::json!({ "items": people })))
}
