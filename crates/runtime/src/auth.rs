//! Sign-in: argon2 password hashes, opaque bearer tokens (only their SHA-256 is stored), and the
//! bootstrap admin created when the database has no users.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use trellis_store::{NewUser, TokenKind};

use crate::{Principal, Runtime, RuntimeError};

/// Prefix of every token, so leaked tokens are easy to recognise in logs and scanners.
const TOKEN_PREFIX: &str = "trl_";

/// Hash a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, RuntimeError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| RuntimeError::Internal(format!("hashing a password: {e}")))
}

pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A random password for the bootstrap admin: 20 characters from an unambiguous alphabet.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// What happened when the bootstrap admin was checked at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// Users exist; nothing was done.
    UsersExist,
    /// `admin` was created with the password from the environment.
    CreatedWithGivenPassword,
    /// `admin` was created with this generated password (print it once).
    CreatedWithGeneratedPassword(String),
}

impl Runtime {
    /// Create the `admin` user when the database has no users (CONTRACT.md §1).
    pub async fn bootstrap_admin(
        &self,
        password: Option<&str>,
    ) -> Result<BootstrapOutcome, RuntimeError> {
        if self.store().count_users().await? > 0 {
            return Ok(BootstrapOutcome::UsersExist);
        }
        let (password, outcome) = match password.filter(|p| !p.is_empty()) {
            Some(given) => (given.to_owned(), BootstrapOutcome::CreatedWithGivenPassword),
            None => {
                let generated = generate_password();
                (
                    generated.clone(),
                    BootstrapOutcome::CreatedWithGeneratedPassword(generated),
                )
            }
        };
        let user = NewUser {
            username: "admin".into(),
            display_name: Some("Administrator".into()),
            password_hash: hash_password(&password)?,
            is_admin: true,
        };
        match self.store().create_user(&user).await {
            Ok(_) => Ok(outcome),
            // Another server created it at the same moment: fine.
            Err(trellis_store::StoreError::Conflict(_)) => Ok(BootstrapOutcome::UsersExist),
            Err(error) => Err(error.into()),
        }
    }

    /// Create a user (platform admins only; the bootstrap admin is created by [`Self::bootstrap_admin`]).
    pub async fn create_user(
        &self,
        actor: &Principal,
        username: &str,
        password: &str,
        is_admin: bool,
    ) -> Result<Principal, RuntimeError> {
        if !actor.is_admin {
            return Err(RuntimeError::Forbidden(
                "only platform admins can create users".into(),
            ));
        }
        if username.trim().is_empty() || username.len() > 64 {
            return Err(RuntimeError::InvalidInput(
                "username must be 1–64 characters".into(),
            ));
        }
        if password.chars().count() < 8 {
            return Err(RuntimeError::InvalidInput(
                "password must have at least 8 characters".into(),
            ));
        }
        let user = self
            .store()
            .create_user(&NewUser {
                username: username.to_owned(),
                display_name: None,
                password_hash: hash_password(password)?,
                is_admin,
            })
            .await?;
        self.audit(
            Some(actor),
            "user.create",
            None,
            Some(&user.id),
            "success",
            serde_json::json!({"username": user.username, "is_admin": user.is_admin}),
        )
        .await?;
        let mut principal = Principal::system(&user.id, &user.username);
        principal.is_admin = user.is_admin;
        Ok(principal)
    }

    /// Check a username and password; on success issue a session token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, RuntimeError> {
        let user = self.store().find_user_by_username(username).await?;
        // Verify against a dummy hash when the user is unknown, so timing does not reveal which
        // usernames exist.
        let (hash, user) = match user {
            Some(user) => (user.password_hash.clone(), Some(user)),
            None => (DUMMY_HASH.to_owned(), None),
        };
        let password = password.to_owned();
        let valid = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| RuntimeError::Internal(e.to_string()))?;
        let user = match user {
            Some(user) if valid && !user.disabled => user,
            _ => {
                tracing::info!(username, "sign-in refused");
                return Err(RuntimeError::BadCredentials);
            }
        };
        let token = new_token();
        let expires_at = Utc::now() + self.settings.session_ttl;
        self.store()
            .insert_token(
                &token_hash(&token),
                &user.id,
                TokenKind::Session,
                None,
                Some(expires_at),
                None,
            )
            .await?;
        tracing::info!(username, user_id = %user.id, "signed in");
        Ok(token)
    }

    /// The principal behind a bearer token, if the token is live.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, RuntimeError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let found = self
            .store()
            .find_live_token(&token_hash(token), Utc::now())
            .await?;
        Ok(found.map(|(token, user, access_epoch)| Principal {
            user_id: user.id,
            username: user.username,
            is_admin: user.is_admin,
            scopes: token
                .scopes
                .as_deref()
                .map(|s| serde_json::from_str(s).unwrap_or_default()),
            access_epoch,
            token_hash: Some(token.token_hash),
            address: None,
        }))
    }

    /// Revoke a token (sign-out). It stops working at once.
    pub async fn revoke(&self, token: &str) -> Result<(), RuntimeError> {
        Ok(self.store().revoke_token(&token_hash(token)).await?)
    }
}

/// argon2id hash of a random password nobody knows; used to keep sign-in timing uniform.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5B7gq5dc5jJCf3bLr9Ywq0W8M2ZqgHkV4kYkYzQ4Qyk";
