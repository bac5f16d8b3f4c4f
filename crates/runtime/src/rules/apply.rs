//! Rules that write a report's result back onto records (`apply_report`): the report runs once, as
//! the system, and every row naming a record of the rule's entity patches the fields it maps —
//! nightly RFM scores and segments, P(alive) and CLV — and records without a row get the rule's
//! `otherwise` values (a 12-month spend back to 0). Unchanged records are not touched; each change
//! is written like an ordinary update (validated, before- and after-save rules, history), a page of
//! records per transaction (`Runtime::prepare_system_updates` and `commit_system_updates`), the
//! next page read and planned while the previous one commits.
//!
//! Several such rules over one entity can run **together** (the scheduler does so for rules due at
//! the same time; `POST …/rules/run` on request): every report runs first, then one write-back
//! gives each record all their values at once — one update, one history entry and one round of
//! its rules per record instead of one per rule.

use std::sync::Arc;
use std::time::Instant;

use foldhash::HashMap;
use serde::Serialize;
use serde_json::Value;
use trellis_model::EntityDefinition;
use trellis_report::ReportOutput;
use trellis_rules::{ApplyReportAction, CompiledRule, RuleAction};

use trellis_store::PagedRecord;

use super::BatchOutcome;
use super::report_rows::ReportRows;
use crate::app_cache::LoadedApp;
use crate::records::bulk_update::{Change, PreparedBulk};
use crate::reports::ReportRequest;
use crate::{Principal, Runtime, RuntimeError};

/// Most `apply_report` rules one write-back runs together.
pub const MAX_APPLIED_TOGETHER: usize = 32;

/// Where a write-back reads its next page.
enum PageSource {
    /// Every live record after this id (`None`: from the first), a page in id order.
    After(Option<String>),
    /// These records (the candidates found over the column cache).
    Ids(Vec<String>),
    /// No page left.
    Done,
}

/// A page being read on a task of its own: `None` when no page is left.
type PageRead = tokio::task::JoinHandle<Result<Option<Vec<PagedRecord>>, RuntimeError>>;

/// One `apply_report` rule of a write-back: its report's result and the fields it fills.
pub(crate) struct AppliedReport {
    /// The report's result.
    pub output: Arc<ReportOutput>,
    /// The output column holding the record id.
    pub key: usize,
    /// Field of the entity → output column.
    pub sets: Vec<(String, usize)>,
    /// Field of the entity → value for records the report has no row for.
    pub otherwise: Vec<(String, Value)>,
}

/// A report a write-back ran, as its outcome shows it: which rule, how many rows, how long.
#[derive(Debug, Clone, Serialize)]
pub struct ReportStep {
    pub rule: String,
    pub report: String,
    pub rows: usize,
    pub elapsed_ms: u64,
}

/// The fields an `apply_report` action writes (its `set` and `otherwise`; a field may be in both),
/// in name order.
pub(crate) fn written_fields(apply: &ApplyReportAction) -> std::collections::BTreeSet<&str> {
    apply
        .set
        .keys()
        .chain(apply.otherwise.keys())
        .map(|field| field.as_str())
        .collect()
}

impl Runtime {
    /// Run `rules` — `apply_report` rules over one entity, no field written by two of them — as one
    /// write-back: every report first (as the system), then each record gets the values of all of
    /// them in one update. The outcome lists each report's rows and time.
    pub(super) async fn apply_reports(
        &self,
        loaded: &LoadedApp,
        rules: &[&CompiledRule],
        trigger: &str,
    ) -> Result<BatchOutcome, RuntimeError> {
        let started = Instant::now();
        let Some(first) = rules.first() else {
            return Err(RuntimeError::InvalidInput(
                "name at least one rule to run".into(),
            ));
        };
        if rules.len() > MAX_APPLIED_TOGETHER {
            return Err(RuntimeError::InvalidInput(format!(
                "at most {MAX_APPLIED_TOGETHER} rules run together"
            )));
        }
        let entity_name = first.definition.entity.as_str();
        let (entity, _) = loaded.entity(entity_name)?;
        let mut written: std::collections::BTreeMap<&str, &str> = Default::default();
        for rule in rules {
            if rule.definition.entity.as_str() != entity_name {
                return Err(RuntimeError::InvalidInput(format!(
                    "rule '{}' is over entity '{}', rule '{}' over '{}': rules run together write one entity",
                    rule.id(),
                    rule.definition.entity,
                    first.id(),
                    entity_name
                )));
            }
            let Some(RuleAction::ApplyReport(apply)) = rule.definition.actions.first() else {
                return Err(RuntimeError::InvalidInput(format!(
                    "rule '{}' does not apply a report: only apply_report rules run together",
                    rule.id()
                )));
            };
            for field in written_fields(apply) {
                if let Some(other) = written.insert(field, rule.id()) {
                    return Err(RuntimeError::InvalidInput(format!(
                        "rules '{other}' and '{}' both write '{field}': run them one after the other",
                        rule.id()
                    )));
                }
            }
        }
        let system = Principal::system("system", "system");
        // The reports run side by side (each on a task of its own): their single-threaded parts
        // — building the result rows — overlap.
        let runs: Vec<_> = rules
            .iter()
            .map(|rule| {
                let Some(RuleAction::ApplyReport(apply)) = rule.definition.actions.first() else {
                    unreachable!("checked above");
                };
                let (runtime, system) = (self.clone(), system.clone());
                let (app, report) = (loaded.id.clone(), apply.report.to_string());
                tokio::spawn(async move {
                    let report_started = Instant::now();
                    let request = ReportRequest {
                        rows_only: true,
                        ..ReportRequest::default()
                    };
                    let output = runtime
                        .run_report(&system, &app, &report, &request, "en")
                        .await?;
                    Ok::<_, RuntimeError>((output, report_started.elapsed()))
                })
            })
            .collect();
        let mut parts = Vec::with_capacity(rules.len());
        let mut steps = Vec::with_capacity(rules.len());
        for (rule, run) in rules.iter().zip(runs) {
            let Some(RuleAction::ApplyReport(apply)) = rule.definition.actions.first() else {
                unreachable!("checked above");
            };
            let (output, report_elapsed) = run
                .await
                .map_err(|e| RuntimeError::Internal(format!("running a report: {e}")))??;
            let output = Arc::new(output);
            let column = |name: &str| {
                output
                    .columns
                    .iter()
                    .position(|c| c.name == name)
                    .ok_or_else(|| {
                        RuntimeError::InvalidInput(format!(
                            "rule '{}': report '{}' has no column '{name}'",
                            rule.id(),
                            apply.report
                        ))
                    })
            };
            let key = column(&apply.key)?;
            let sets = apply
                .set
                .iter()
                .map(|(field, name)| Ok((field.to_string(), column(name)?)))
                .collect::<Result<_, RuntimeError>>()?;
            steps.push(ReportStep {
                rule: rule.id().to_string(),
                report: apply.report.to_string(),
                rows: output.rows.len(),
                elapsed_ms: report_elapsed.as_millis() as u64,
            });
            parts.push(AppliedReport {
                output,
                key,
                sets,
                otherwise: apply
                    .otherwise
                    .iter()
                    .map(|(field, value)| (field.to_string(), value.clone()))
                    .collect(),
            });
        }
        let parts: Arc<[AppliedReport]> = parts.into();
        let write_started = Instant::now();
        let mut outcome = self
            .write_back(loaded, entity, parts.clone(), &system)
            .await?;
        outcome.write_back_ms = Some(write_started.elapsed().as_millis() as u64);
        tracing::info!(
            rules = ?rules.iter().map(|r| r.id()).collect::<Vec<_>>(),
            trigger,
            rows = ?steps.iter().map(|s| s.rows).collect::<Vec<_>>(),
            changed = outcome.changed,
            failed = outcome.failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "reports applied"
        );
        outcome.reports = steps;
        Ok(outcome)
    }
}

/// Counts a running write-back while it lives (the outbox takes smaller passes meanwhile).
struct WriteBackRunning(Arc<std::sync::atomic::AtomicUsize>);

impl WriteBackRunning {
    fn new(running: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(running.clone())
    }
}

impl Drop for WriteBackRunning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Runtime {
    /// Write `parts`' values onto the records of `entity`, a page per transaction.
    async fn write_back(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        parts: Arc<[AppliedReport]>,
        system: &Principal,
    ) -> Result<BatchOutcome, RuntimeError> {
        let _running = WriteBackRunning::new(&self.write_backs_running);
        // The reports' rows of each record id they name.
        let indexed = Instant::now();
        let wanted = {
            let parts = parts.clone();
            tokio::task::spawn_blocking(move || Arc::new(ReportRows::new(parts)))
                .await
                .map_err(|e| RuntimeError::Internal(format!("indexing report rows: {e}")))?
        };
        let mut outcome = BatchOutcome {
            processed: wanted.len(),
            ..BatchOutcome::default()
        };
        let indexed_ms = indexed.elapsed().as_millis() as u64;
        // The records whose stored values may differ, found over the column cache: when few do,
        // only they are read (by id); otherwise every live record, page by page in id order.
        let candidates = self
            .write_back_candidates(loaded, entity, parts.clone(), wanted.clone())
            .await?;
        tracing::debug!(
            named = wanted.len(),
            indexed_ms,
            candidates_ms = indexed.elapsed().as_millis() as u64 - indexed_ms,
            "write-back rows indexed and candidates looked for"
        );
        let page_size = self.settings().write_back_page.max(1);
        let mut chunks = candidates.as_ref().map(|c| c.ids.chunks(page_size));
        if let Some(candidates) = &candidates {
            outcome.matched = candidates.matched;
            tracing::debug!(
                candidates = candidates.ids.len(),
                "write-back candidates found over the column cache"
            );
        }
        // The changed records of each page are written together (one transaction per page). While
        // a page commits (the SQLite writer) the next one is planned and the one after it read:
        // the pages hold different records, and a record changed meanwhile fails its version check
        // and is updated alone.
        let mut source_after = |after: Option<String>| match chunks.as_mut() {
            Some(chunks) => chunks
                .next()
                .map_or(PageSource::Done, |ids| PageSource::Ids(ids.to_vec())),
            None => PageSource::After(after),
        };
        let mut committing: Option<PreparedBulk> = None;
        let shared = self.loaded_app_version(&loaded.id, loaded.version).await?;
        let mut reading = self.spawn_page_read(loaded, entity, source_after(None));
        loop {
            let read_started = Instant::now();
            let page = reading
                .await
                .map_err(|e| RuntimeError::Internal(format!("reading a write-back page: {e}")))??;
            let read_wait_us = read_started.elapsed().as_micros();
            // The next page is read while this one is planned: its first id follows this page's
            // last (candidates: the next chunk).
            let page = match page {
                Some(page) if !page.is_empty() || candidates.is_some() => page,
                _ => {
                    let committed = self
                        .spawn_system_commit(&shared, entity, committing.take(), system)
                        .await?;
                    outcome.changed += committed.changed;
                    outcome.failed += committed.failed;
                    break;
                }
            };
            let last = page.last().map(|record| record.row.id.clone());
            reading = self.spawn_page_read(loaded, entity, source_after(last));
            let next = self.prepare_write_back_page(
                loaded,
                entity,
                (&parts, &wanted),
                page,
                read_wait_us,
                system,
            );
            let commit = self.spawn_system_commit(&shared, entity, committing.take(), system);
            let joined = Instant::now();
            let (next, committed) = tokio::join!(next, commit);
            tracing::debug!(page_us = joined.elapsed().as_micros(), "write-back page");
            let committed = committed?;
            outcome.changed += committed.changed;
            outcome.failed += committed.failed;
            let (matched, prepared) = next?;
            if candidates.is_none() {
                outcome.matched += matched;
            }
            committing = Some(prepared);
        }
        // The pages committed without waiting for the disk: one sync makes them all durable.
        self.store().sync_log().await?;
        Ok(outcome)
    }

    /// Read a write-back's page from `source` on a task of its own (`None`: no page left).
    fn spawn_page_read(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        source: PageSource,
    ) -> PageRead {
        let (store, app, entity) = (self.store().clone(), loaded.id.clone(), entity.uid.clone());
        let limit = self.settings().write_back_page.max(1) as i64;
        tokio::spawn(async move {
            Ok(match source {
                PageSource::After(after) => Some(
                    store
                        .record_page_as_read(&app, &entity, after.as_deref(), limit)
                        .await?,
                ),
                // Candidates deleted since they were found make an empty page, not the end.
                PageSource::Ids(ids) => Some(
                    store
                        .records_by_ids(&app, &entity, &ids)
                        .await?
                        .into_iter()
                        .map(|row| PagedRecord {
                            row,
                            document: None,
                        })
                        .collect(),
                ),
                PageSource::Done => None,
            })
        })
    }

    /// One read page of a write-back, prepared: how many of its records a report names, and the
    /// prepared updates.
    async fn prepare_write_back_page(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        (parts, wanted): (&[AppliedReport], &ReportRows),
        page: Vec<PagedRecord>,
        read_wait_us: u128,
        system: &Principal,
    ) -> Result<(usize, PreparedBulk), RuntimeError> {
        let page_started = Instant::now();
        let mut matched = 0;
        let mut changes = Vec::with_capacity(page.len());
        // The fields a record gets depend on which reports name it (their `set`) and which do not
        // (their `otherwise`, if any): one shared list per combination, two bits per report.
        let mut field_lists: HashMap<u64, Arc<[String]>> = HashMap::default();
        let fields_of = |combination: u64| -> Arc<[String]> {
            let mut fields = Vec::new();
            for (index, part) in parts.iter().enumerate() {
                match (combination >> (2 * index)) & 3 {
                    1 => fields.extend(part.sets.iter().map(|(field, _)| field.clone())),
                    2 => fields.extend(part.otherwise.iter().map(|(field, _)| field.clone())),
                    _ => {}
                }
            }
            fields.into()
        };
        // Each record gets the values it should hold: compared with its current ones while
        // planning (on every core, where its stored text is parsed anyway); a record holding them
        // all is left alone there.
        for PagedRecord {
            row: current,
            document,
        } in page
        {
            let (mut combination, mut named) = (0u64, false);
            let mut values = Vec::new();
            let rows = wanted.get(current.id.as_str());
            for (index, part) in parts.iter().enumerate() {
                match rows.and_then(|rows| rows.row(index)) {
                    Some(row) => {
                        named = true;
                        combination |= 1 << (2 * index);
                        values.extend(
                            part.sets.iter().map(|(_, column)| {
                                row.get(*column).cloned().unwrap_or(Value::Null)
                            }),
                        );
                    }
                    // No row for this record: the `otherwise` values, if any.
                    None if part.otherwise.is_empty() => {}
                    None => {
                        combination |= 2 << (2 * index);
                        values.extend(part.otherwise.iter().map(|(_, value)| value.clone()));
                    }
                }
            }
            matched += usize::from(named);
            if combination == 0 {
                continue;
            }
            let fields = field_lists
                .entry(combination)
                .or_insert_with(|| fields_of(combination))
                .clone();
            changes.push((current, document, Change { fields, values }));
        }
        let compared_us = page_started.elapsed().as_micros();
        let prepared = self
            .prepare_system_updates(loaded, entity, changes, system)
            .await?;
        tracing::debug!(
            read_wait_us,
            compared_us,
            prepared_us = page_started.elapsed().as_micros(),
            "write-back page prepared"
        );
        Ok((matched, prepared))
    }
}
