//! The rule-run log (every evaluation of a rule: trigger, outcome, duration) and the schedules of
//! scheduled rules.
//!
//! A bulk write logs each rule's runs (per trigger) in one row (migration 0021): a nightly write-back
//! of 2,000 customers runs ~12,000 rules, and a row per run was most of its transaction. Readers see
//! every run: [`Store::rule_runs`] expands such rows.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::{NewRuleRun, Store, StoreError};

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

    /// Append rule runs (of app version `app_version`) to the run log: the runs of one save (each
    /// after-save rule a record's change triggers), which one at a time cost a transaction each.
    /// Runs of one rule and trigger share a row ([`run_log_rows`]). On SQLite the runs of saves
    /// finishing at the same time share one transaction (group commit).
    pub async fn log_rule_runs(
        &self,
        app: &str,
        app_version: i64,
        runs: &[NewRuleRun],
    ) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        if self.backend() == crate::Backend::Sqlite {
            let sender = self
                .run_log_group
                .get_or_init(|| crate::group_commit::start_run_logs(self.without_group_commit()));
            let (reply, outcome) = tokio::sync::oneshot::channel();
            // If the task is gone (runtime shutting down), write directly below.
            if sender
                .send((app.to_owned(), app_version, runs.to_vec(), reply))
                .is_ok()
            {
                return outcome
                    .await
                    .map_err(|_| StoreError::Corrupt("the run-log task stopped".into()))?;
            }
        }
        self.write_rule_runs(&[(app, app_version, runs)]).await
    }

    /// Write the runs of several saves (app, app version, runs) in one transaction, multi-row
    /// statements ([`run_log_statements`]).
    pub(crate) async fn write_rule_runs(
        &self,
        logs: &[(&str, i64, &[NewRuleRun])],
    ) -> Result<(), StoreError> {
        let now = crate::now();
        let rows: Vec<(&str, i64, Vec<RunLogRow<'_>>)> = logs
            .iter()
            .map(|(app, version, runs)| Ok((*app, *version, run_log_rows(runs)?)))
            .collect::<Result<_, StoreError>>()?;
        if let crate::connect::Pools::Sqlite { write, .. } = &self.pools {
            let at = crate::records::sqlite_time(now);
            return crate::records::on_writer(write, |connection| {
                for (app, app_version, rows) in &rows {
                    sqlite_insert_run_rows(connection, app, *app_version, rows, &at)?;
                }
                Ok(())
            })
            .await;
        }
        crate::with_pool!(self, write, |pool| {
            let mut tx = pool.begin().await?;
            for (app, app_version, rows) in &rows {
                insert_run_rows!(tx, rows, *app, *app_version, now);
            }
            tx.commit().await?;
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

    /// A rule's last `limit` runs, newest first (the runs of a grouped row expanded, last first).
    pub async fn rule_runs(
        &self,
        app: &str,
        rule: &str,
        limit: i64,
    ) -> Result<Vec<RuleRunRow>, StoreError> {
        /// Log rows read per query (a grouped row may hold thousands of runs).
        const ROWS_PER_READ: i64 = 64;
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut runs = Vec::new();
        let mut below = i64::MAX;
        while runs.len() < limit {
            let rows = crate::with_pool!(self, read, |pool| {
                sqlx::query_as::<_, LoggedRow>(
                    "SELECT seq, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at, runs FROM rule_runs \
                     WHERE app_id = $1 AND rule = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
                )
                .bind(app)
                .bind(rule)
                .bind(below)
                .bind(ROWS_PER_READ)
                .fetch_all(pool)
                .await?
            });
            let Some(last) = rows.last() else { break };
            below = last.seq;
            for row in rows {
                row.expand_into(&mut runs)?;
            }
        }
        runs.truncate(limit);
        Ok(runs)
    }
}

/// A row of `rule_runs` as stored: one run, or (`runs` > 1) many runs of one rule and trigger.
#[derive(sqlx::FromRow)]
struct LoggedRow {
    seq: i64,
    rule: String,
    app_version: i64,
    trigger: String,
    record_id: Option<String>,
    matched: bool,
    outcome: String,
    error: Option<String>,
    duration_us: i64,
    at: DateTime<Utc>,
    runs: i64,
}

/// One run inside a grouped row: `[record_id, matched, outcome, error, duration_us]`, its outcome
/// inline (rows written before outcomes were shared) or the position of a shared one.
type GroupedRun = (Option<String>, bool, Value, Option<String>, i64);

/// A grouped row's runs: `{"outcomes": [...], "runs": [...]}` (each distinct outcome once), or
/// (rows written before) a plain list of runs with their outcomes inline.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum GroupedRuns {
    Shared {
        outcomes: Vec<Value>,
        runs: Vec<GroupedRun>,
    },
    Inline(Vec<GroupedRun>),
}

impl LoggedRow {
    /// Append this row's runs to `out`, newest first.
    fn expand_into(self, out: &mut Vec<RuleRunRow>) -> Result<(), StoreError> {
        if self.runs <= 1 {
            out.push(RuleRunRow {
                seq: self.seq,
                rule: self.rule,
                app_version: self.app_version,
                trigger: self.trigger,
                record_id: self.record_id,
                matched: self.matched,
                outcome: self.outcome,
                error: self.error,
                duration_us: self.duration_us,
                at: self.at,
            });
            return Ok(());
        }
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("rule_runs row {}: grouped runs: {e}", self.seq))
        };
        let (outcomes, grouped) =
            match serde_json::from_str(&self.outcome).map_err(|e| corrupt(&e))? {
                GroupedRuns::Shared { outcomes, runs } => (Some(outcomes), runs),
                GroupedRuns::Inline(runs) => (None, runs),
            };
        for (record_id, matched, outcome, error, duration_us) in grouped.into_iter().rev() {
            let outcome = match &outcomes {
                Some(shared) => outcome
                    .as_u64()
                    .and_then(|position| shared.get(position as usize))
                    .ok_or_else(|| corrupt(&format!("no shared outcome {outcome}")))?
                    .to_string(),
                None => outcome.to_string(),
            };
            out.push(RuleRunRow {
                seq: self.seq,
                rule: self.rule.clone(),
                app_version: self.app_version,
                trigger: self.trigger.clone(),
                record_id,
                matched,
                outcome,
                error,
                duration_us,
                at: self.at,
            });
        }
        Ok(())
    }
}

/// A row to write to `rule_runs` for a bulk write's runs.
#[derive(Clone)]
pub(crate) struct RunLogRow<'a> {
    pub rule: &'a str,
    pub trigger: &'a str,
    pub record_id: Option<&'a str>,
    pub matched: bool,
    /// JSON text: the run's outcome, or the grouped runs.
    pub outcome: std::borrow::Cow<'a, str>,
    pub error: Option<&'a str>,
    pub duration_us: i64,
    pub runs: i64,
}

/// The log rows of a bulk write's `runs`: the runs of each rule and trigger in one row (in the order
/// the runs happened; rows in the order of each group's first run); a rule that ran once keeps an
/// ordinary row.
pub(crate) fn run_log_rows(runs: &[NewRuleRun]) -> Result<Vec<RunLogRow<'_>>, StoreError> {
    let mut groups: Vec<((&str, &str), Vec<&NewRuleRun>)> = Vec::new();
    for run in runs {
        let key = (run.rule.as_str(), run.trigger.as_str());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(run),
            None => groups.push((key, vec![run])),
        }
    }
    groups
        .into_iter()
        .map(|((rule, trigger), list)| {
            if let [run] = list.as_slice() {
                return Ok(RunLogRow {
                    rule,
                    trigger,
                    record_id: run.record_id.as_deref(),
                    matched: run.matched,
                    outcome: std::borrow::Cow::Borrowed(&run.outcome),
                    error: run.error.as_deref(),
                    duration_us: run.duration_us,
                    runs: 1,
                });
            }
            // `{"outcomes":[…],"runs":[[record_id, matched, outcome, error, duration_us], …]}`:
            // each distinct outcome (already JSON) once, a run naming it by its position — most
            // runs of a night share a few outcomes ("the condition did not hold"). Written into
            // one buffer (a bulk write groups thousands of runs per rule).
            let mut outcomes: foldhash::HashMap<&str, usize> = foldhash::HashMap::default();
            let mut grouped: Vec<u8> = Vec::with_capacity(list.len() * 56 + 64);
            grouped.extend_from_slice(b"{\"outcomes\":[");
            let positions: Vec<usize> = list
                .iter()
                .map(|run| {
                    let next = outcomes.len();
                    *outcomes.entry(run.outcome.as_str()).or_insert_with(|| {
                        if next > 0 {
                            grouped.push(b',');
                        }
                        grouped.extend_from_slice(run.outcome.as_bytes());
                        next
                    })
                })
                .collect();
            grouped.extend_from_slice(b"],\"runs\":[");
            for (n, (run, position)) in list.iter().zip(positions).enumerate() {
                if n > 0 {
                    grouped.push(b',');
                }
                grouped.push(b'[');
                serde_json::to_writer(&mut grouped, &run.record_id)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                grouped.extend_from_slice(if run.matched { b",true," } else { b",false," });
                use std::io::Write;
                let _ = write!(grouped, "{position},");
                serde_json::to_writer(&mut grouped, &run.error)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let _ = write!(grouped, ",{}]", run.duration_us);
            }
            grouped.extend_from_slice(b"]}");
            let grouped =
                String::from_utf8(grouped).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(RunLogRow {
                rule,
                trigger,
                record_id: None,
                matched: list.iter().any(|r| r.matched),
                outcome: std::borrow::Cow::Owned(grouped),
                error: None,
                duration_us: list.iter().map(|r| r.duration_us).sum(),
                runs: list.len() as i64,
            })
        })
        .collect()
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

/// Multi-row `INSERT`s of `rows` into `rule_runs`, at most 500 rows (11 parameters each) per
/// statement, each with the rows it binds ([`bind_run_rows`]). Only placeholders are formatted in.
pub(crate) fn run_log_statements<'r, 'a>(
    rows: &'r [RunLogRow<'a>],
) -> Vec<(String, &'r [RunLogRow<'a>])> {
    /// Rows per statement (SQLite allows 32,766 parameters).
    const ROWS_PER_STATEMENT: usize = 500;
    rows.chunks(ROWS_PER_STATEMENT)
        .map(|chunk| {
            let values: Vec<String> = (0..chunk.len())
                .map(|n| {
                    let placeholders: Vec<String> =
                        (1..=11).map(|k| format!("${}", n * 11 + k)).collect();
                    format!("({})", placeholders.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO rule_runs (app_id, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at, runs) VALUES {}",
                values.join(", ")
            );
            (sql, chunk)
        })
        .collect()
}

/// Insert `rows` (of `app` at `version`, logged at `at`, see [`crate::records::sqlite_time`])
/// through rusqlite, inside the caller's transaction: a prepared row statement (~5 µs a row).
pub(crate) fn sqlite_insert_run_rows(
    connection: &rusqlite::Connection,
    app: &str,
    app_version: i64,
    rows: &[RunLogRow<'_>],
    at: &str,
) -> Result<(), StoreError> {
    let to_store = |e: rusqlite::Error| StoreError::Corrupt(format!("logging rule runs: {e}"));
    let mut log = connection
        .prepare_cached(
            "INSERT INTO rule_runs (app_id, rule, app_version, trigger, record_id, matched, outcome, error, duration_us, at, runs) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(to_store)?;
    for row in rows {
        log.execute(rusqlite::params![
            app,
            row.rule,
            app_version,
            row.trigger,
            row.record_id,
            row.matched,
            row.outcome,
            row.error,
            row.duration_us,
            at,
            row.runs
        ])
        .map_err(to_store)?;
    }
    Ok(())
}

/// Bind the values of `rows` (of `app` at `version`, logged at `now`) to a query from
/// [`run_log_statements`].
macro_rules! bind_run_rows {
    ($query:expr, $app:expr, $version:expr, $rows:expr, $now:expr) => {{
        let mut query = $query;
        for row in $rows {
            query = query
                .bind($app)
                .bind(row.rule)
                .bind($version)
                .bind(row.trigger)
                .bind(row.record_id)
                .bind(row.matched)
                .bind(row.outcome.as_ref())
                .bind(row.error)
                .bind(row.duration_us)
                .bind($now)
                .bind(row.runs);
        }
        query
    }};
}
pub(crate) use bind_run_rows;

/// Insert the run-log `rows` (of `app` at `version`, logged at `now`) in transaction `tx`: the
/// statements of [`run_log_statements`] with their values bound.
macro_rules! insert_run_rows {
    ($tx:expr, $rows:expr, $app:expr, $version:expr, $now:expr) => {{
        for (sql, chunk) in $crate::flows::run_log_statements($rows) {
            $crate::flows::bind_run_rows!(
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str())),
                $app,
                $version,
                chunk,
                $now
            )
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use insert_run_rows;
