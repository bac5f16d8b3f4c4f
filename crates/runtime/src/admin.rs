//! Administration behind access control: users (platform admins), departments, role assignments
//! (app admins), API tokens (each user their own), the audit log, sign-in brute-force protection and
//! the plain-words explanation of a user's access. Every change here is audited.

use chrono::{Duration, Utc};
use serde::Serialize;
use trellis_form::Locale;
use trellis_store::{
    AuditQuery, AuditRecord, DepartmentRecord, NewAuditEntry, TokenKind, UserChanges,
};

use crate::{Principal, Runtime, RuntimeError};

/// Failed sign-ins allowed per account, and per address, within [`LOCKOUT_WINDOW_MINUTES`].
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
pub const MAX_FAILURES_PER_ADDRESS: i64 = 20;
pub const LOCKOUT_WINDOW_MINUTES: i64 = 15;

/// A user as admins see them (never the password hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub is_admin: bool,
    pub disabled: bool,
    pub department_id: Option<String>,
    /// Where notifications are mailed (when SMTP is configured).
    pub email: Option<String>,
    /// Preferred locale (`en`, `zh-CN`); none: notifications in both.
    pub locale: Option<String>,
}

impl From<trellis_store::UserRecord> for UserView {
    fn from(u: trellis_store::UserRecord) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            is_admin: u.is_admin,
            disabled: u.disabled,
            department_id: u.department_id,
            email: u.email,
            locale: u.locale,
        }
    }
}

/// An API token as listed (the secret is shown once, at creation).
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub created_at: chrono::DateTime<Utc>,
    pub expires_at: Option<chrono::DateTime<Utc>>,
    pub revoked: bool,
}

/// A new API token: its secret (shown once) and its listing.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    pub token: String,
    #[serde(flatten)]
    pub info: TokenView,
}

const SCOPES: [&str; 4] = ["read", "write", "export", "admin"];

impl Runtime {
    /// Append to the audit log. Failing to audit fails the request: nothing unaudited happens.
    pub async fn audit(
        &self,
        actor: Option<&Principal>,
        action: &str,
        app: Option<&str>,
        target: Option<&str>,
        outcome: &str,
        detail: serde_json::Value,
    ) -> Result<(), RuntimeError> {
        self.store()
            .append_audit(&NewAuditEntry {
                actor_id: actor.map(|a| a.user_id.clone()),
                actor_name: actor.map(|a| a.username.clone()),
                action: action.to_owned(),
                app_id: app.map(str::to_owned),
                target: target.map(str::to_owned),
                outcome: outcome.to_owned(),
                address: actor.and_then(|a| a.address.clone()),
                detail,
            })
            .await?;
        Ok(())
    }

    fn require_platform_admin(actor: &Principal) -> Result<(), RuntimeError> {
        let scoped_out = actor
            .scopes
            .as_ref()
            .is_some_and(|s| !s.iter().any(|s| s == "admin"));
        if actor.is_admin && !scoped_out {
            Ok(())
        } else {
            Err(RuntimeError::Forbidden(
                "only platform admins may do this".into(),
            ))
        }
    }

    /// Sign in with brute-force protection: too many recent failures for the account or from the
    /// address refuse the attempt before the password is checked. Every attempt is audited.
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        address: Option<&str>,
    ) -> Result<String, RuntimeError> {
        let since = Utc::now() - Duration::minutes(LOCKOUT_WINDOW_MINUTES);
        let (by_account, by_address) = self
            .store()
            .failed_logins_since(username, address, since)
            .await?;
        let entry = |outcome: &str, detail: serde_json::Value| NewAuditEntry {
            action: "login".into(),
            target: Some(username.to_owned()),
            outcome: outcome.into(),
            address: address.map(str::to_owned),
            detail,
            ..NewAuditEntry::default()
        };
        if by_account >= MAX_FAILURES_PER_ACCOUNT || by_address >= MAX_FAILURES_PER_ADDRESS {
            self.store()
                .append_audit(&entry(
                    "denied",
                    serde_json::json!({"reason": "too many failed sign-ins"}),
                ))
                .await?;
            return Err(RuntimeError::TooManyAttempts(LOCKOUT_WINDOW_MINUTES));
        }
        match self.login(username, password).await {
            Ok(token) => {
                let mut success = entry("success", serde_json::json!({}));
                if let Some(user) = self.store().find_user_by_username(username).await? {
                    success.actor_id = Some(user.id);
                    success.actor_name = Some(user.username);
                }
                self.store().append_audit(&success).await?;
                Ok(token)
            }
            Err(error) => {
                self.store()
                    .append_audit(&entry("failure", serde_json::json!({})))
                    .await?;
                Err(error)
            }
        }
    }

    pub async fn list_users(&self, actor: &Principal) -> Result<Vec<UserView>, RuntimeError> {
        Self::require_platform_admin(actor)?;
        Ok(self
            .store()
            .list_users()
            .await?
            .into_iter()
            .map(UserView::from)
            .collect())
    }

    /// Change a user (platform admins): display name, department, admin flag, disabled, password.
    /// Check (and normalise) `changes` before anything is written: the contact fields, and that the
    /// department exists. Every problem names its field by pointer.
    pub async fn check_user_changes(&self, changes: &mut UserChanges) -> Result<(), RuntimeError> {
        let mut issues = match check_contact(changes) {
            Ok(()) => Vec::new(),
            Err(RuntimeError::InvalidRecord(issues)) => issues,
            Err(other) => return Err(other),
        };
        if let Some(Some(department)) = &changes.department_id
            && !self
                .store()
                .list_departments()
                .await?
                .iter()
                .any(|d| &d.id == department)
        {
            issues.push(trellis_form::FieldIssue {
                pointer: "/department_id".into(),
                code: "relation_missing",
                message: format!(
                    "no department '{department}': pick one from GET /api/departments"
                ),
            });
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::InvalidRecord(issues))
        }
    }

    pub async fn update_user(
        &self,
        actor: &Principal,
        id: &str,
        mut changes: UserChanges,
        new_password: Option<&str>,
    ) -> Result<UserView, RuntimeError> {
        Self::require_platform_admin(actor)?;
        self.check_user_changes(&mut changes).await?;
        if actor.user_id == id
            && (changes.disabled == Some(true) || changes.is_admin == Some(false))
        {
            return Err(RuntimeError::InvalidInput(
                "you cannot disable yourself or take away your own admin right".into(),
            ));
        }
        if let Some(password) = new_password {
            check_password(password)?;
            changes.password_hash = Some(crate::auth::hash_password(password)?);
        }
        let user = self.store().update_user(id, &changes).await?;
        if new_password.is_some() {
            self.store().revoke_sessions(id, None).await?;
        }
        self.audit(
            Some(actor),
            "user.update",
            None,
            Some(id),
            "success",
            serde_json::json!({
                "department_id": changes.department_id,
                "email": changes.email,
                "locale": changes.locale,
                "is_admin": changes.is_admin,
                "disabled": changes.disabled,
                "password_reset": new_password.is_some(),
            }),
        )
        .await?;
        Ok(user.into())
    }

    /// A user changes their own password; their other sessions end.
    pub async fn change_own_password(
        &self,
        actor: &Principal,
        current: &str,
        new_password: &str,
    ) -> Result<(), RuntimeError> {
        let user = self
            .store()
            .get_user(&actor.user_id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound("user".into()))?;
        let (hash, given) = (user.password_hash.clone(), current.to_owned());
        let valid =
            tokio::task::spawn_blocking(move || crate::auth::verify_password(&given, &hash))
                .await
                .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        if !valid {
            self.audit(
                Some(actor),
                "user.password",
                None,
                Some(&actor.user_id),
                "failure",
                serde_json::json!({}),
            )
            .await?;
            return Err(RuntimeError::BadCredentials);
        }
        check_password(new_password)?;
        let changes = UserChanges {
            password_hash: Some(crate::auth::hash_password(new_password)?),
            ..UserChanges::default()
        };
        self.store().update_user(&actor.user_id, &changes).await?;
        self.store()
            .revoke_sessions(&actor.user_id, actor.token_hash.as_deref())
            .await?;
        self.audit(
            Some(actor),
            "user.password",
            None,
            Some(&actor.user_id),
            "success",
            serde_json::json!({}),
        )
        .await
    }

    pub async fn list_departments(
        &self,
        _actor: &Principal,
    ) -> Result<Vec<DepartmentRecord>, RuntimeError> {
        Ok(self.store().list_departments().await?)
    }

    /// Create (`id` None) or change a department; a parent must exist and may not be the department
    /// itself or below it.
    pub async fn save_department(
        &self,
        actor: &Principal,
        id: Option<&str>,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<DepartmentRecord, RuntimeError> {
        Self::require_platform_admin(actor)?;
        if name.trim().is_empty() || name.chars().count() > 100 {
            return Err(RuntimeError::InvalidInput(
                "a department name has 1–100 characters".into(),
            ));
        }
        let departments = self.store().list_departments().await?;
        if let Some(parent) = parent_id {
            if !departments.iter().any(|d| d.id == parent) {
                return Err(RuntimeError::InvalidInput(format!(
                    "no department '{parent}'"
                )));
            }
            // Walk up from the parent: meeting `id` would make a cycle.
            let mut current = Some(parent.to_owned());
            while let Some(at) = current {
                if Some(at.as_str()) == id {
                    return Err(RuntimeError::InvalidInput(
                        "a department cannot be placed below itself".into(),
                    ));
                }
                current = departments
                    .iter()
                    .find(|d| d.id == at)
                    .and_then(|d| d.parent_id.clone());
            }
        }
        let saved = self
            .store()
            .save_department(id, name.trim(), parent_id)
            .await?;
        self.audit(
            Some(actor),
            if id.is_some() {
                "department.update"
            } else {
                "department.create"
            },
            None,
            Some(&saved.id),
            "success",
            serde_json::json!({"name": saved.name, "parent_id": saved.parent_id}),
        )
        .await?;
        Ok(saved)
    }

    pub async fn delete_department(&self, actor: &Principal, id: &str) -> Result<(), RuntimeError> {
        Self::require_platform_admin(actor)?;
        self.store().delete_department(id).await?;
        self.audit(
            Some(actor),
            "department.delete",
            None,
            Some(id),
            "success",
            serde_json::json!({}),
        )
        .await
    }

    /// Refuse unless `actor` manages the app (platform admin or a role with `manage_app`).
    pub(crate) async fn require_app_manager(
        &self,
        actor: &Principal,
        loaded: &crate::app_cache::LoadedApp,
    ) -> Result<(), RuntimeError> {
        let subject = self.subject(actor, loaded).await?;
        if trellis_access::manages_app(&loaded.bundle, &subject) {
            Ok(())
        } else if subject.grants.is_empty() && !subject.platform_admin {
            Err(RuntimeError::NotFound(format!("app '{}'", loaded.id)))
        } else {
            Err(RuntimeError::Forbidden(format!(
                "managing app '{}' needs the app_admin role (or a role with manage_app)",
                loaded.id
            )))
        }
    }

    /// The app's roles (built-in and the bundle's) and who holds them.
    pub async fn app_roles(
        &self,
        actor: &Principal,
        app: &str,
    ) -> Result<serde_json::Value, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_app_manager(actor, &loaded).await?;
        let assignments = self.store().list_assignments(&loaded.id).await?;
        Ok(serde_json::json!({
            "roles": loaded.bundle.roles(),
            "assignments": assignments,
        }))
    }

    /// Give or take away a role (`principal_kind` is `user` or `department`).
    pub async fn set_role_assignment(
        &self,
        actor: &Principal,
        app: &str,
        role: &str,
        principal_kind: &str,
        principal_id: &str,
        assign: bool,
    ) -> Result<(), RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        self.require_app_manager(actor, &loaded).await?;
        if !loaded.bundle.roles().iter().any(|r| r.id.as_str() == role) {
            return Err(RuntimeError::InvalidInput(format!(
                "app '{app}' has no role '{role}'"
            )));
        }
        let exists = match principal_kind {
            "user" => self.store().get_user(principal_id).await?.is_some(),
            "department" => self
                .store()
                .list_departments()
                .await?
                .iter()
                .any(|d| d.id == principal_id),
            _ => {
                return Err(RuntimeError::InvalidInput(
                    "principal_kind is 'user' or 'department'".into(),
                ));
            }
        };
        if !exists {
            return Err(RuntimeError::InvalidInput(format!(
                "no {principal_kind} '{principal_id}'"
            )));
        }
        if assign {
            self.store()
                .assign_role(
                    &loaded.id,
                    role,
                    principal_kind,
                    principal_id,
                    Some(&actor.user_id),
                )
                .await?;
        } else if !self
            .store()
            .unassign_role(&loaded.id, role, principal_kind, principal_id)
            .await?
        {
            return Err(RuntimeError::NotFound(format!(
                "assignment of '{role}' to {principal_kind} '{principal_id}'"
            )));
        }
        self.audit(
            Some(actor),
            if assign {
                "role.assign"
            } else {
                "role.unassign"
            },
            Some(&loaded.id),
            Some(principal_id),
            "success",
            serde_json::json!({"role": role, "principal_kind": principal_kind}),
        )
        .await
    }

    /// Create an API token for the caller, limited to `scopes` (a subset of `read`, `write`,
    /// `export`, `admin`, each optionally as `APP:SCOPE`), expiring after `expires_in_days`.
    pub async fn create_api_token(
        &self,
        actor: &Principal,
        name: &str,
        scopes: Option<Vec<String>>,
        expires_in_days: Option<i64>,
    ) -> Result<CreatedToken, RuntimeError> {
        if let Some(scopes) = &scopes {
            for scope in scopes {
                let bare = scope.rsplit(':').next().unwrap_or(scope);
                if !SCOPES.contains(&bare) {
                    return Err(RuntimeError::InvalidInput(format!(
                        "unknown scope '{scope}': use read, write, export or admin, optionally as APP:SCOPE"
                    )));
                }
            }
            // A token never holds more than the token that creates it.
            if let Some(mine) = &actor.scopes
                && let Some(extra) = scopes.iter().find(|s| !mine.contains(s))
            {
                return Err(RuntimeError::Forbidden(format!(
                    "scope '{extra}' is beyond the scopes of the token you are using"
                )));
            }
        }
        let scopes = scopes.or_else(|| actor.scopes.clone());
        if let Some(days) = expires_in_days
            && !(1..=3650).contains(&days)
        {
            return Err(RuntimeError::InvalidInput(
                "expires_in_days is between 1 and 3650".into(),
            ));
        }
        let token = crate::auth::new_token();
        let expires_at = expires_in_days.map(|d| Utc::now() + Duration::days(d));
        let id = self
            .store()
            .insert_token(
                &crate::auth::token_hash(&token),
                &actor.user_id,
                TokenKind::Api,
                Some(name),
                expires_at,
                scopes.as_deref(),
            )
            .await?
            .unwrap_or_default();
        self.audit(
            Some(actor),
            "token.create",
            None,
            Some(&id),
            "success",
            serde_json::json!({"name": name, "scopes": scopes}),
        )
        .await?;
        Ok(CreatedToken {
            token,
            info: TokenView {
                id,
                name: Some(name.to_owned()),
                scopes,
                created_at: Utc::now(),
                expires_at,
                revoked: false,
            },
        })
    }

    pub async fn list_api_tokens(&self, actor: &Principal) -> Result<Vec<TokenView>, RuntimeError> {
        Ok(self
            .store()
            .list_api_tokens(&actor.user_id)
            .await?
            .into_iter()
            .map(|t| TokenView {
                id: t.id.unwrap_or_default(),
                name: t.name,
                scopes: t
                    .scopes
                    .as_deref()
                    .map(|s| serde_json::from_str(s).unwrap_or_default()),
                created_at: t.created_at,
                expires_at: t.expires_at,
                revoked: t.revoked_at.is_some(),
            })
            .collect())
    }

    /// Revoke one of the caller's API tokens; it stops working at once.
    pub async fn revoke_api_token(&self, actor: &Principal, id: &str) -> Result<(), RuntimeError> {
        if !self.store().revoke_api_token(&actor.user_id, id).await? {
            return Err(RuntimeError::NotFound(format!("token '{id}'")));
        }
        self.audit(
            Some(actor),
            "token.revoke",
            None,
            Some(id),
            "success",
            serde_json::json!({}),
        )
        .await
    }

    /// Read the audit log (platform admins), newest first.
    pub async fn audit_log(
        &self,
        actor: &Principal,
        mut query: AuditQuery,
    ) -> Result<Vec<AuditRecord>, RuntimeError> {
        Self::require_platform_admin(actor)?;
        if !(1..=1000).contains(&query.limit) {
            query.limit = 100;
        }
        Ok(self.store().list_audit(&query).await?)
    }

    /// Explain in plain words what `user` may do with `entity` (and one record) of `app`. App managers
    /// may ask about anyone; everybody may ask about themselves.
    pub async fn explain_access(
        &self,
        actor: &Principal,
        app: &str,
        user: &str,
        entity_id: &str,
        record: Option<&str>,
        locale: Locale,
    ) -> Result<trellis_access::explain::Explanation, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let target = match self.store().find_user_by_username(user).await? {
            Some(found) => found,
            None => self
                .store()
                .get_user(user)
                .await?
                .ok_or_else(|| RuntimeError::NotFound(format!("user '{user}'")))?,
        };
        if target.id != actor.user_id {
            self.require_app_manager(actor, &loaded).await?;
        }
        let (entity, _) = loaded.entity(entity_id)?;
        let mut subject = self.load_subject(&target.id, &loaded.id).await?;
        if target.id == actor.user_id {
            subject.scopes =
                trellis_access::Scopes(actor.scopes.as_ref().map(|s| s.iter().cloned().collect()));
        }
        let access = trellis_access::entity_access(&loaded.bundle, entity, &subject);
        let record_line = match record {
            None => None,
            Some(id) => {
                let row = self
                    .store()
                    .get_record(&loaded.id, &entity.uid, id)
                    .await?
                    .ok_or_else(|| RuntimeError::NotFound(format!("record '{id}'")))?;
                let inside = |filter: &Option<trellis_model::CheckedFilter>| {
                    let filter = filter.clone();
                    let data = row.data.0.clone();
                    let loaded = loaded.clone();
                    async move {
                        match filter {
                            None => Ok::<bool, RuntimeError>(false),
                            Some(filter) => self.document_matches(&loaded, &filter, &data).await,
                        }
                    }
                };
                let readable =
                    access.allows(trellis_model::Action::Read) && inside(&access.read_rows).await?;
                let writable = readable
                    && [trellis_model::Action::Update, trellis_model::Action::Delete]
                        .into_iter()
                        .any(|a| access.allows(a))
                    && inside(&access.write_rows).await?;
                Some((id.to_owned(), readable, writable))
            }
        };
        Ok(trellis_access::explain(
            &loaded.bundle,
            entity,
            &subject,
            &access,
            record_line,
            locale,
        ))
    }
}

fn check_password(password: &str) -> Result<(), RuntimeError> {
    if password.chars().count() < 8 {
        return Err(RuntimeError::InvalidInput(
            "password must have at least 8 characters".into(),
        ));
    }
    Ok(())
}

/// Normalise and check the contact fields of `changes`: an empty value clears the field; an address
/// needs one `@` with text on both sides and a dot in the domain; the locale is one Trellis speaks.
/// Problems name the field by pointer.
fn check_contact(changes: &mut UserChanges) -> Result<(), RuntimeError> {
    let mut issues = Vec::new();
    for value in [&mut changes.email, &mut changes.locale]
        .into_iter()
        .flatten()
    {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *value = None;
        } else if let Some(text) = value {
            *text = text.trim().to_owned();
        }
    }
    if let Some(Some(email)) = &changes.email {
        let well_formed = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        }) && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            issues.push(trellis_form::FieldIssue {
                pointer: "/email".into(),
                code: "format",
                message: format!("'{email}' is not an e-mail address (like name@example.com)"),
            });
        }
    }
    if let Some(Some(locale)) = &changes.locale
        && !["en", "zh-CN"].contains(&locale.as_str())
    {
        issues.push(trellis_form::FieldIssue {
            pointer: "/locale".into(),
            code: "enum",
            message: format!("'{locale}' is not a supported locale: use \"en\" or \"zh-CN\""),
        });
    }
    if issues.is_empty() {
        Ok(())
    } else {
        Err(RuntimeError::InvalidRecord(issues))
    }
}
