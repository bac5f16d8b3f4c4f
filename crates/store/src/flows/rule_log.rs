//! The rule-run log (every evaluation of a rule: trigger, outcome, duration) and the schedules of
//! scheduled rules.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{Store, StoreError};

impl Store {
    /// Append a rule run to the run log.
    #[allow(clippy::too_many_arguments)]
    pub async fn log_rule_run(
        &self,
        app: &str,
        rule: &str,
        app_version: i64,
        trigger: &str,
        record_id: Option<&str>,
        matched: bool,
        outcome: &Value,
        error: Option<&str>,
        duration_us: i64,
    ) -> Result<(), StoreError> {
        crate::with_pool!(self, write, |pool| {
            sqlx::query(
                "INSERT INTO rule_runs (app_id, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(app)
            .bind(rule)
            .bind(app_version)
            .bind(trigger)
            .bind(record_id)
            .bind(matched)
            .bind(outcome.to_string())
            .bind(error)
            .bind(duration_us)
            .bind(crate::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// When a scheduled rule runs next (created at `first` if the rule has no schedule yet).
    pub async fn rule_schedule(
        &self,
        app: &str,
        rule: &str,
        first: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError> {
        let next: DateTime<Utc> = crate::with_pool!(self, write, |pool| {
            sqlx::query("INSERT INTO rule_schedules (app_id, rule, next_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(app)
                .bind(rule)
                .bind(first)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT next_at FROM rule_schedules WHERE app_id = $1 AND rule = $2")
                .bind(app)
                .bind(rule)
                .fetch_one(pool)
                .await?
        });
        Ok(next)
    }

    /// Claim the occurrence at `due` by moving the schedule to `next`; false when another server did.
    pub async fn advance_rule_schedule(
        &self,
        app: &str,
        rule: &str,
        due: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = crate::with_pool!(self, write, |pool| {
            sqlx::query("UPDATE rule_schedules SET next_at = $1 WHERE app_id = $2 AND rule = $3 AND next_at = $4")
                .bind(next)
                .bind(app)
                .bind(rule)
                .bind(due)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done > 0)
    }

    /// A rule's runs, newest first.
    pub async fn rule_runs(
        &self,
        app: &str,
        rule: &str,
        limit: i64,
    ) -> Result<Vec<RuleRunRow>, StoreError> {
        let rows = crate::with_pool!(self, read, |pool| {
            sqlx::query_as::<_, RuleRunRow>(
                "SELECT seq, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at FROM rule_runs \
                 WHERE app_id = $1 AND rule = $2 ORDER BY seq DESC LIMIT $3",
            )
            .bind(app)
            .bind(rule)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

/// One logged rule run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct RuleRunRow {
    pub seq: i64,
    pub rule: String,
    pub app_version: i64,
    pub trigger: String,
    pub record_id: Option<String>,
    pub matched: bool,
    pub outcome: String,
    pub error: Option<String>,
    pub duration_us: i64,
    pub at: DateTime<Utc>,
}
