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
}

/// A token joined with its user (one row of the per-request authentication query).
#[derive(sqlx::FromRow)]
struct TokenWithUser {
    token_hash: String,
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
        "SELECT id, username, display_name, password_hash, is_admin, disabled, created_at, updated_at FROM users"
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

    pub async fn insert_token(
        &self,
        token_hash: &str,
        user_id: &str,
        kind: TokenKind,
        name: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO auth_tokens (token_hash, user_id, kind, name, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(kind.as_str())
            .bind(name)
            .bind(crate::now())
            .bind(expires_at)
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
    ) -> Result<Option<(TokenRecord, UserRecord)>, StoreError> {
        // One statement: this runs on every request.
        let found = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, TokenWithUser>(
                "SELECT t.token_hash, t.user_id, t.kind, t.name, t.created_at AS token_created_at, t.expires_at, t.revoked_at, \
                        u.username, u.display_name, u.password_hash, u.is_admin, u.disabled, u.created_at, u.updated_at \
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
        };
        Ok(Some((token, user)))
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
