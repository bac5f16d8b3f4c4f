//! Access-control data: departments, users' settings, role assignments, the access epoch and the
//! audit log. Every change to who-may-do-what bumps the access epoch in the same transaction, so
//! servers caching permissions (keyed by the epoch, which the per-request token query returns) never
//! serve stale rights.

use chrono::{DateTime, Utc};

use crate::{Store, StoreError};

/// A department as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct DepartmentRecord {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A role given to a user or a department in an app.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct AssignmentRecord {
    pub app_id: String,
    pub role: String,
    /// `user` or `department`.
    pub principal_kind: String,
    pub principal_id: String,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

/// Changes to a user's settings (absent: unchanged).
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub display_name: Option<Option<String>>,
    pub department_id: Option<Option<String>>,
    pub is_admin: Option<bool>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
    pub email: Option<Option<String>>,
    pub locale: Option<Option<String>>,
}

/// An audit entry to append.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    /// `login`, `logout`, `user.create`, `role.assign`, `app.publish`, `records.export`, …
    pub action: String,
    pub app_id: Option<String>,
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// The client's address.
    pub address: Option<String>,
    pub detail: serde_json::Value,
}

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub app_id: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub address: Option<String>,
    pub detail: String,
}

/// Which audit entries to read (newest first).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub app_id: Option<String>,
    /// Only entries older than this sequence number (the next page's cursor).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

macro_rules! bump_epoch {
    ($tx:expr) => {
        sqlx::query("UPDATE access_epoch SET value = value + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await?
    };
}

impl Store {
    /// The current access epoch.
    pub async fn access_epoch(&self) -> Result<i64, StoreError> {
        let value = crate::with_pool!(self, read, |pool| {
            sqlx::query_scalar("SELECT value FROM access_epoch WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(value)
    }

    /// Bump the access epoch (e.g. after publishing an app version, whose roles may have changed).
    pub async fn bump_access_epoch(&self) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            bump_epoch!(tx);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn list_departments(&self) -> Result<Vec<DepartmentRecord>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, DepartmentRecord>(
                "SELECT id, name, parent_id, created_at FROM departments ORDER BY name, id",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Create or change a department (the runtime has checked the parent exists and makes no cycle).
    pub async fn save_department(
        &self,
        id: Option<&str>,
        name: &str,
        parent_id: Option<&str>,
    ) -> Result<DepartmentRecord, StoreError> {
        let record = DepartmentRecord {
            id: id.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned),
            name: name.to_owned(),
            parent_id: parent_id.map(str::to_owned),
            created_at: crate::now(),
        };
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let changed = if id.is_some() {
                sqlx::query("UPDATE departments SET name = $1, parent_id = $2 WHERE id = $3")
                    .bind(&record.name)
                    .bind(&record.parent_id)
                    .bind(&record.id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
            } else {
                sqlx::query(
                    "INSERT INTO departments (id, name, parent_id, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&record.id)
                .bind(&record.name)
                .bind(&record.parent_id)
                .bind(record.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            };
            if changed == 0 {
                return Err(StoreError::NotFound(format!("department '{}'", record.id)));
            }
            bump_epoch!(tx);
            tx.commit().await?;
        });
        Ok(record)
    }

    /// Delete a department that has no sub-departments and no users.
    pub async fn delete_department(&self, id: &str) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let used: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM departments WHERE parent_id = $1) + (SELECT COUNT(*) FROM users WHERE department_id = $1)",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if used > 0 {
                return Err(StoreError::Conflict(format!(
                    "department '{id}' still has sub-departments or users; move them first"
                )));
            }
            sqlx::query("DELETE FROM role_assignments WHERE principal_kind = 'department' AND principal_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let deleted = sqlx::query("DELETE FROM departments WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(StoreError::NotFound(format!("department '{id}'")));
            }
            bump_epoch!(tx);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn list_users(&self) -> Result<Vec<crate::UserRecord>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, crate::UserRecord>(
                "SELECT id, username, display_name, password_hash, is_admin, disabled, created_at, updated_at, department_id, email, locale \
                 FROM users ORDER BY username",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Users whose department is one of `departments`.
    pub async fn users_in_departments(
        &self,
        departments: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if departments.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, Option<String>)> = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT id, department_id FROM users WHERE department_id IS NOT NULL ORDER BY id",
            )
            .fetch_all(pool)
            .await?
        });
        let ids = rows
            .into_iter()
            .filter(|(_, department)| department.as_ref().is_some_and(|d| departments.contains(d)))
            .map(|(id, _)| id)
            .collect();
        Ok(ids)
    }

    /// Change a user's settings; disabling also revokes every token of the user.
    pub async fn update_user(
        &self,
        id: &str,
        changes: &UserChanges,
    ) -> Result<crate::UserRecord, StoreError> {
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let now = crate::now();
            let mut found = 0;
            if let Some(name) = &changes.display_name {
                found += sqlx::query(
                    "UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(name)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if let Some(email) = &changes.email {
                found += sqlx::query("UPDATE users SET email = $1, updated_at = $2 WHERE id = $3")
                    .bind(email)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            if let Some(locale) = &changes.locale {
                found += sqlx::query("UPDATE users SET locale = $1, updated_at = $2 WHERE id = $3")
                    .bind(locale)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            if let Some(department) = &changes.department_id {
                found += sqlx::query(
                    "UPDATE users SET department_id = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(department)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if let Some(admin) = changes.is_admin {
                found +=
                    sqlx::query("UPDATE users SET is_admin = $1, updated_at = $2 WHERE id = $3")
                        .bind(admin)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
            }
            if let Some(disabled) = changes.disabled {
                found +=
                    sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
                        .bind(disabled)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                if disabled {
                    sqlx::query("UPDATE auth_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                        .bind(now).bind(id).execute(&mut *tx).await?;
                }
            }
            if let Some(hash) = &changes.password_hash {
                found += sqlx::query(
                    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(hash)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("user '{id}'")));
            }
            if found > 0 {
                bump_epoch!(tx);
            }
            tx.commit().await?;
        });
        self.get_user(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user '{id}'")))
    }

    pub async fn list_assignments(
        &self,
        app_id: &str,
    ) -> Result<Vec<AssignmentRecord>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AssignmentRecord>(
                "SELECT app_id, role, principal_kind, principal_id, created_at, created_by FROM role_assignments \
                 WHERE app_id = $1 ORDER BY role, principal_kind, principal_id",
            )
            .bind(app_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Give `role` to a user or department (idempotent).
    pub async fn assign_role(
        &self,
        app_id: &str,
        role: &str,
        principal_kind: &str,
        principal_id: &str,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO role_assignments (app_id, role, principal_kind, principal_id, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(app_id)
            .bind(role)
            .bind(principal_kind)
            .bind(principal_id)
            .bind(crate::now())
            .bind(actor)
            .execute(&mut *tx)
            .await?;
            bump_epoch!(tx);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Take `role` away from a user or department; false when it was not given.
    pub async fn unassign_role(
        &self,
        app_id: &str,
        role: &str,
        principal_kind: &str,
        principal_id: &str,
    ) -> Result<bool, StoreError> {
        let removed = crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            let removed = sqlx::query(
                "DELETE FROM role_assignments WHERE app_id = $1 AND role = $2 AND principal_kind = $3 AND principal_id = $4",
            )
            .bind(app_id)
            .bind(role)
            .bind(principal_kind)
            .bind(principal_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            bump_epoch!(tx);
            tx.commit().await?;
            removed
        });
        Ok(removed > 0)
    }

    /// Roles given in `app_id` to the user or to any of `departments`.
    pub async fn assignments_for(
        &self,
        app_id: &str,
        user_id: &str,
        departments: &[String],
    ) -> Result<Vec<AssignmentRecord>, StoreError> {
        let all = self.list_assignments(app_id).await?;
        Ok(all
            .into_iter()
            .filter(|a| match a.principal_kind.as_str() {
                "user" => a.principal_id == user_id,
                _ => departments.contains(&a.principal_id),
            })
            .collect())
    }

    /// Apps in which the user or one of `departments` holds a role.
    pub async fn apps_with_roles(
        &self,
        user_id: &str,
        departments: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String, String, String)> = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT DISTINCT app_id, principal_kind, principal_id FROM role_assignments",
            )
            .fetch_all(pool)
            .await?
        });
        let mut apps: Vec<String> = rows
            .into_iter()
            .filter(|(_, kind, id)| match kind.as_str() {
                "user" => id == user_id,
                _ => departments.contains(id),
            })
            .map(|(app, _, _)| app)
            .collect();
        apps.sort();
        apps.dedup();
        Ok(apps)
    }

    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO audit_log (at, actor_id, actor_name, action, app_id, target, outcome, address, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(crate::now())
            .bind(&entry.actor_id)
            .bind(&entry.actor_name)
            .bind(&entry.action)
            .bind(&entry.app_id)
            .bind(&entry.target)
            .bind(&entry.outcome)
            .bind(&entry.address)
            .bind(entry.detail.to_string())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, AuditRecord>(
                "SELECT seq, at, actor_id, actor_name, action, app_id, target, outcome, address, detail FROM audit_log \
                 WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR app_id = $3) \
                 AND ($4 IS NULL OR seq < $4) ORDER BY seq DESC LIMIT $5",
            )
            .bind(&query.action)
            .bind(&query.actor_id)
            .bind(&query.app_id)
            .bind(query.before_seq)
            .bind(query.limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Failed sign-ins since `since`: (for this username, from this address).
    pub async fn failed_logins_since(
        &self,
        username: &str,
        address: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<(i64, i64), StoreError> {
        let counts: (i64, i64) = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM audit_log WHERE action = 'login' AND outcome = 'failure' AND target = $1 AND at > $3), \
                        (SELECT COUNT(*) FROM audit_log WHERE action = 'login' AND outcome = 'failure' AND address = $2 AND at > $3)",
            )
            .bind(username)
            .bind(address.unwrap_or(""))
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(counts)
    }
}
