//! Rules that write a report's result back onto records (`apply_report`): the report runs once, as
//! the system, and every row naming a record of the rule's entity patches the fields it maps —
//! nightly RFM scores and segments, P(alive) and CLV — and records without a row get the rule's
//! `otherwise` values (a 12-month spend back to 0). Unchanged records are not touched; each change
//! is written like an ordinary update (validated, before- and after-save rules, history), a page of
//! records per transaction (`Runtime::prepare_system_updates` and `commit_system_updates`), the
//! next page read and planned while the previous one commits.

use std::sync::Arc;
use std::time::Instant;

use foldhash::HashMap;
use serde_json::Value;
use trellis_model::EntityDefinition;
use trellis_rules::{ApplyReportAction, CompiledRule};

use trellis_store::PagedRecord;

use super::BatchOutcome;
use crate::app_cache::LoadedApp;
use crate::records::bulk_update::{Change, PreparedBulk};
use crate::reports::ReportRequest;
use crate::{Principal, Runtime, RuntimeError};

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

impl Runtime {
    pub(super) async fn apply_report_rule(
        &self,
        loaded: &LoadedApp,
        rule: &CompiledRule,
        apply: &ApplyReportAction,
        trigger: &str,
    ) -> Result<BatchOutcome, RuntimeError> {
        let started = Instant::now();
        let system = Principal::system("system", "system");
        let output = Arc::new(
            self.run_report(
                &system,
                &loaded.id,
                apply.report.as_str(),
                &ReportRequest {
                    rows_only: true,
                    ..ReportRequest::default()
                },
                "en",
            )
            .await?,
        );
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
        let sets: Vec<(String, usize)> = apply
            .set
            .iter()
            .map(|(field, name)| Ok((field.to_string(), column(name)?)))
            .collect::<Result<_, RuntimeError>>()?;
        let (entity, _) = loaded.entity(rule.definition.entity.as_str())?;
        // The report's row for each record id it names.
        let wanted: HashMap<&str, &Vec<Value>> = output
            .rows
            .iter()
            .filter_map(|row| Some((row.get(key)?.as_str()?, row)))
            .collect();
        let mut outcome = BatchOutcome {
            processed: wanted.len(),
            ..BatchOutcome::default()
        };
        // The records whose stored values may differ, found over the column cache: when few do,
        // only they are read (by id); otherwise every live record, page by page in id order.
        let candidates = self
            .write_back_candidates(loaded, entity, apply, &sets, (output.clone(), key))
            .await?;
        let page_size = self.settings().write_back_page.max(1);
        let mut chunks = candidates.as_ref().map(|c| c.ids.chunks(page_size));
        if let Some(candidates) = &candidates {
            outcome.matched = candidates.matched;
            tracing::debug!(
                rule = rule.id(),
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
                        .spawn_system_commit(&shared, entity, committing.take(), &system)
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
                apply,
                &sets,
                &wanted,
                page,
                read_wait_us,
                &system,
            );
            let commit = self.spawn_system_commit(&shared, entity, committing.take(), &system);
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
        tracing::info!(
            rule = rule.id(),
            trigger,
            report = %apply.report,
            rows = output.rows.len(),
            changed = outcome.changed,
            failed = outcome.failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "report applied"
        );
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

    /// One read page of an `apply_report` write-back, prepared: how many of its records the report
    /// names, and the prepared updates.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_write_back_page(
        &self,
        loaded: &LoadedApp,
        entity: &EntityDefinition,
        apply: &ApplyReportAction,
        sets: &[(String, usize)],
        wanted: &HashMap<&str, &Vec<Value>>,
        page: Vec<PagedRecord>,
        read_wait_us: u128,
        system: &Principal,
    ) -> Result<(usize, PreparedBulk), RuntimeError> {
        let page_started = Instant::now();
        let mut matched = 0;
        let mut changes = Vec::with_capacity(page.len());
        // Each record gets the values it should hold: compared with its current ones while
        // planning (on every core, where its stored text is parsed anyway); a record holding them
        // all is left alone there.
        let set_fields: Arc<[String]> = sets.iter().map(|(field, _)| field.clone()).collect();
        let otherwise_fields: Arc<[String]> = apply
            .otherwise
            .keys()
            .map(|field| field.to_string())
            .collect();
        for PagedRecord {
            row: current,
            document,
        } in page
        {
            let change = match wanted.get(current.id.as_str()) {
                Some(row) => {
                    matched += 1;
                    Change {
                        fields: set_fields.clone(),
                        values: sets
                            .iter()
                            .map(|(_, index)| row.get(*index).cloned().unwrap_or(Value::Null))
                            .collect(),
                    }
                }
                // No row for this record: the `otherwise` values, if any.
                None if apply.otherwise.is_empty() => continue,
                None => Change {
                    fields: otherwise_fields.clone(),
                    values: apply.otherwise.values().cloned().collect(),
                },
            };
            changes.push((current, document, change));
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
