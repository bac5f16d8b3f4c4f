//! Users and their tokens (sign-in sessions and API tokens). Password hashing happens in the runtime;
//! this module only stores hashes.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A user as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserRecord {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub department_id: Option<String>,
    /// Where notifications are mailed (when SMTP is configured).
    pub email: Option<String>,
    /// Preferred locale (`en`, `zh-CN`); none: messages come in both.
    pub locale: Option<String>,
}

/// A token joined with its user (one row of the per-request authentication query).
#[derive(sqlx::FromRow)]
struct TokenWithUser {
    token_hash: String,
    token_id: Option<String>,
    scopes: Option<String>,
    access_epoch: i64,
    user_id: String,
    kind: String,
    name: Option<String>,
    token_created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    username: String,
    display_name: Option<String>,
    password_hash: String,
    is_admin: bool,
    disabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    department_id: Option<String>,
    email: Option<String>,
    locale: Option<String>,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub is_admin: bool,
}

/// Sign-in session or long-lived API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    Api,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Api => "api",
        }
    }
}

/// A token as stored (the hash, never the token).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TokenRecord {
    pub token_hash: String,
    /// Public id of an API token (to list and revoke it); sessions have none.
    pub id: Option<String>,
    /// Scopes an API token is limited to (JSON array); `None`: the user's full rights.
    pub scopes: Option<String>,
    pub user_id: String,
    pub kind: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The `SELECT … FROM users` of a [`UserRecord`] (a macro so queries stay literal strings).
macro_rules! select_user {
    () => {
        "SELECT id, username, display_name, password_hash, is_admin, disabled, created_at, updated_at, department_id, email, locale FROM users"
    };
}

impl Store {
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        let count: i64 = crate::with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        });
        Ok(count)
    }

    /// Create a user; a taken username is a [`StoreError::Conflict`].
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        let now = crate::now();
        let record = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            password_hash: user.password_hash.clone(),
            is_admin: user.is_admin,
            disabled: false,
            created_at: now,
            updated_at: now,
            department_id: None,
            email: None,
            locale: None,
        };
        let change = crate::NewChange {
            app_id: None,
            subject: "user".into(),
            subject_id: record.id.clone(),
            operation: "create".into(),
            actor: None,
            payload: serde_json::json!({"username": record.username, "is_admin": record.is_admin}),
        };
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO users (id, username, display_name, password_hash, is_admin, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&record.id)
            .bind(&record.username)
            .bind(&record.display_name)
            .bind(&record.password_hash)
            .bind(record.is_admin)
            .bind(record.disabled)
            .bind(record.created_at)
            .bind(record.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("username '{}' is taken", user.username)),
                other => other,
            })?;
            crate::change_log::append_change!(self, tx, &change);
            tx.commit().await?;
        });
        Ok(record)
    }

    pub async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql = concat!(select_user!(), " WHERE username = $1");
        let user = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, UserRecord>(sql)
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
        Ok(user)
    }

    pub async fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = concat!(select_user!(), " WHERE id = $1");
        let user = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, UserRecord>(sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(user)
    }

    /// Store a token's hash; API tokens get a public id (returned) to list and revoke them by.
    pub async fn insert_token(
        &self,
        token_hash: &str,
        user_id: &str,
        kind: TokenKind,
        name: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        scopes: Option<&[String]>,
    ) -> Result<Option<String>, StoreError> {
        let id = (kind == TokenKind::Api).then(|| uuid::Uuid::now_v7().to_string());
        let scopes = scopes.map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO auth_tokens (token_hash, user_id, kind, name, created_at, expires_at, scopes, id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(kind.as_str())
            .bind(name)
            .bind(crate::now())
            .bind(expires_at)
            .bind(&scopes)
            .bind(&id)
            .execute(pool)
            .await?;
        });
        Ok(id)
    }

    /// A user's API tokens (never the secrets), newest first.
    pub async fn list_api_tokens(&self, user_id: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let tokens = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TokenRecord>(
                "SELECT token_hash, id, scopes, user_id, kind, name, created_at, expires_at, revoked_at \
                 FROM auth_tokens WHERE user_id = $1 AND kind = 'api' ORDER BY created_at DESC",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?
        });
        Ok(tokens)
    }

    /// Revoke a user's API token by its public id; false when the user has no such token.
    pub async fn revoke_api_token(&self, user_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE auth_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE user_id = $2 AND id = $3",
            )
            .bind(crate::now())
            .bind(user_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done > 0)
    }

    /// Revoke every session of a user (after a password change or when disabled), but `keep`.
    pub async fn revoke_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "UPDATE auth_tokens SET revoked_at = $1 WHERE user_id = $2 AND kind = 'session' \
                 AND revoked_at IS NULL AND token_hash <> $3",
            )
            .bind(crate::now())
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The live token with this hash and its enabled user: not revoked, not expired at `now`.
    pub async fn find_live_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(TokenRecord, UserRecord, i64)>, StoreError> {
        // One statement: this runs on every request.
        let found = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TokenWithUser>(
                "SELECT t.token_hash, t.id AS token_id, t.scopes, t.user_id, t.kind, t.name, t.created_at AS token_created_at, \
                        t.expires_at, t.revoked_at, (SELECT value FROM access_epoch WHERE id = 1) AS access_epoch, \
                        u.username, u.display_name, u.password_hash, u.is_admin, u.disabled, u.created_at, u.updated_at, \
                        u.department_id, u.email, u.locale \
                 FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
        });
        let Some(found) = found else { return Ok(None) };
        if found.revoked_at.is_some()
            || found.expires_at.is_some_and(|at| at <= now)
            || found.disabled
        {
            return Ok(None);
        }
        let token = TokenRecord {
            token_hash: found.token_hash,
            id: found.token_id,
            scopes: found.scopes,
            user_id: found.user_id.clone(),
            kind: found.kind,
            name: found.name,
            created_at: found.token_created_at,
            expires_at: found.expires_at,
            revoked_at: found.revoked_at,
        };
        let user = UserRecord {
            id: found.user_id,
            username: found.username,
            display_name: found.display_name,
            password_hash: found.password_hash,
            is_admin: found.is_admin,
            disabled: found.disabled,
            created_at: found.created_at,
            updated_at: found.updated_at,
            department_id: found.department_id,
            email: found.email,
            locale: found.locale,
        };
        Ok(Some((token, user, found.access_epoch)))
    }

    /// Revoke a token; revoking twice is fine.
    pub async fn revoke_token(&self, token_hash: &str) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query("UPDATE auth_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL")
                .bind(crate::now())
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
