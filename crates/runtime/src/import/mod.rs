//! Importing records from CSV or NDJSON: columns are matched to fields by id, uid or label in either
//! language; every row is validated like an API create; bad rows are reported with reasons (never
//! silently dropped); `atomic` inserts nothing unless every row is valid. Good rows go in together.

use serde::Serialize;
use serde_json::{Map, Value};
use trellis_form::{FieldIssue, Locale, message};
use trellis_model::{EntityDefinition, FieldKind};
use trellis_store::{NewRecord, StoreError};

mod in_flight;
mod parse;

use parse::{IMPORT_CHUNK, ParsedRow, bad_file, parse_csv, parse_ndjson, parse_xlsx};

use crate::{Principal, Runtime, RuntimeError};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Csv,
    Ndjson,
    /// The first sheet of an Excel workbook; the first row names the columns.
    Xlsx,
}

impl ImportFormat {
    /// Guess the format from a file name's extension.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Self::Csv)
        } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
            Some(Self::Ndjson)
        } else if lower.ends_with(".xlsx") {
            Some(Self::Xlsx)
        } else {
            None
        }
    }
}

/// A row that was not imported, and why. `row` counts like a spreadsheet for CSV (the header is row 1)
/// and by line for NDJSON (the first line is 1).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RejectedRow {
    pub row: usize,
    pub errors: Vec<FieldIssue>,
    /// The row as read, so it can be written out, fixed and imported again.
    pub values: Value,
}

/// Outcome of an import.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportReport {
    pub inserted: usize,
    pub rejected: Vec<RejectedRow>,
}

/// Where the rows of one import go: one transaction for the whole file (`atomic`), or one per chunk
/// so other writers get their turn during a long import and a crash keeps what was committed.
struct Sink {
    bulk: Option<trellis_store::BulkInsert>,
    atomic: bool,
    committed: usize,
    /// Ids of committed records whose flows have work in their initial state (timers, approvals).
    flow_starts: Vec<String>,
    /// Whether the entity's flows need that work started.
    starts_flows: bool,
}

/// A row that passed validation: its number, the row as read, its fields by name, and (when nothing
/// is left to fill in at insert time) its storage form, computed on the validating thread.
struct AcceptedRow {
    row: usize,
    raw: Value,
    named: Map<String, Value>,
    write: Option<NewRecord>,
}

/// One chunk as the validating thread hands it over.
struct ValidatedChunk {
    read: usize,
    accepted: Vec<AcceptedRow>,
    rejected: Vec<RejectedRow>,
}

/// Chunks validated ahead of the inserts: parsing and validating the next chunk overlaps with
/// inserting this one (two cores do twice the work); more would only hold memory.
const CHUNKS_AHEAD: usize = 2;

/// What the validating thread needs, owned so it can run beside the inserts.
struct ImportJob {
    runtime: Runtime,
    loaded: std::sync::Arc<crate::app_cache::LoadedApp>,
    entity_id: String,
    actor: Principal,
    locale: Locale,
    format: ImportFormat,
    input: bytes::Bytes,
    /// The importing user's access to each field: only editable fields may be given.
    field_access: std::collections::BTreeMap<String, trellis_model::FieldAccess>,
    /// Before-save rule activity over all rows, logged as one run per rule at the end.
    rule_stats: RuleStats,
}

/// Per rule: (rows evaluated, rows matched, rows rejected, microseconds).
type RuleStats = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, [i64; 4]>>>;

impl ImportJob {
    /// Parse and validate every row, sending chunk after chunk; stops when the receiver is gone.
    fn run(self, chunks: tokio::sync::mpsc::Sender<Result<ValidatedChunk, RuntimeError>>) {
        if let Err(error) = self.validate_all(&chunks) {
            let _ = chunks.blocking_send(Err(error));
        }
    }

    fn validate_all(
        &self,
        chunks: &tokio::sync::mpsc::Sender<Result<ValidatedChunk, RuntimeError>>,
    ) -> Result<(), RuntimeError> {
        let (entity, validator) = self.loaded.entity(&self.entity_id)?;
        let text = || {
            std::str::from_utf8(&self.input)
                .map_err(|_| bad_file("the file is not UTF-8 text".into()))
        };
        let mut rows = match self.format {
            ImportFormat::Csv => parse_csv(entity, text()?)?,
            ImportFormat::Ndjson => parse_ndjson(entity, text()?),
            ImportFormat::Xlsx => parse_xlsx(entity, &self.input)?,
        };
        // Whether the importing user may set every field: then no row needs its columns checked
        // one by one against the user's field access (a sorted-map lookup per value).
        let every_field_editable = entity.fields.iter().all(|field| {
            self.field_access.get(field.name.as_str())
                == Some(&trellis_model::FieldAccess::Editable)
        });
        // Auto-numbers are drawn inside the insert transaction, so such records get their storage form there.
        let complete_here = !entity
            .fields
            .iter()
            .any(|f| f.kind == FieldKind::AutoNumber);
        loop {
            let started = std::time::Instant::now();
            let chunk: Vec<ParsedRow> = rows.by_ref().take(IMPORT_CHUNK).collect();
            if chunk.is_empty() {
                return Ok(());
            }
            let parsed_us = started.elapsed().as_micros() as u64;
            let mut validated = ValidatedChunk {
                read: chunk.len(),
                accepted: Vec::with_capacity(chunk.len()),
                rejected: Vec::new(),
            };
            for mut parsed in chunk {
                // Rows hold only the entity's fields (the parse reports any other name).
                let checked_names = if every_field_editable {
                    None
                } else {
                    Some(parsed.fields.keys())
                };
                for name in checked_names.into_iter().flatten() {
                    if self.field_access.get(name) != Some(&trellis_model::FieldAccess::Editable) {
                        parsed.errors.push(FieldIssue {
                            pointer: format!("/{name}"),
                            code: "forbidden_field",
                            message: format!("your roles do not allow setting '{name}'"),
                        });
                    }
                }
                if !parsed.errors.is_empty() {
                    validated.rejected.push(RejectedRow {
                        row: parsed.row,
                        errors: parsed.errors,
                        values: parsed.raw,
                    });
                    continue;
                }
                let prepared = self
                    .runtime
                    .prepare_new_record(
                        &self.loaded,
                        entity,
                        validator,
                        parsed.fields,
                        &self.actor,
                        self.locale,
                    )
                    .and_then(|mut named| {
                        // Before-save rules apply to imported rows as to API creates.
                        let outcome = Runtime::before_save(
                            &self.loaded,
                            entity,
                            &mut named,
                            None,
                            true,
                            self.locale,
                        );
                        if let Ok(mut stats) = self.rule_stats.lock() {
                            match &outcome {
                                Ok(done) => {
                                    for (micros, evaluation) in &done.runs {
                                        let entry =
                                            stats.entry(evaluation.rule.clone()).or_default();
                                        entry[0] += 1;
                                        entry[1] += i64::from(evaluation.matched);
                                        entry[3] += micros;
                                    }
                                }
                                Err(issues) => {
                                    for issue in issues.iter().filter(|i| i.code == "rule_rejected")
                                    {
                                        // The message ends with "(rule '<id>')".
                                        if let Some(rule) = issue
                                            .message
                                            .rsplit("(rule '")
                                            .next()
                                            .and_then(|r| r.strip_suffix("')"))
                                        {
                                            let entry = stats.entry(rule.to_owned()).or_default();
                                            entry[0] += 1;
                                            entry[1] += 1;
                                            entry[2] += 1;
                                        }
                                    }
                                }
                            }
                        }
                        let issues = outcome?.recheck(validator, &mut named, self.locale);
                        if !issues.is_empty() {
                            return Err(issues);
                        }
                        Ok(named)
                    });
                match prepared {
                    Ok(named) => validated.accepted.push(AcceptedRow {
                        row: parsed.row,
                        raw: parsed.raw,
                        write: complete_here
                            .then(|| super::records::new_record_serialized(entity, &named)),
                        named,
                    }),
                    Err(errors) => validated.rejected.push(RejectedRow {
                        row: parsed.row,
                        errors,
                        values: parsed.raw,
                    }),
                }
            }
            tracing::debug!(
                parsed_us,
                validated_us = started.elapsed().as_micros() as u64 - parsed_us,
                "import: validated a chunk"
            );
            if chunks.blocking_send(Ok(validated)).is_err() {
                return Ok(());
            }
        }
    }
}

impl Runtime {
    /// Import into `entity`, streaming the file in chunks: one thread parses and validates while the
    /// caller's task checks relations and inserts. `progress(done, total)` reports rows read (total is
    /// 0 while unknown).
    #[allow(clippy::too_many_arguments)]
    pub async fn import_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        format: ImportFormat,
        input: bytes::Bytes,
        atomic: bool,
        locale: Locale,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<ImportReport, RuntimeError> {
        let outcome = self
            .import_chunks(
                actor, app, entity_id, format, input, atomic, locale, progress,
            )
            .await;
        // A non-atomic import's chunks commit without waiting for the disk; one sync of the log
        // makes all of them durable before the import reports — whether it finished or failed.
        let synced = self.store().sync_log().await;
        let report = outcome?;
        synced?;
        if report.inserted > 0 {
            // Searches over what came in use the index at once (PostgreSQL; see the store).
            self.store()
                .settle_after_bulk_insert(report.inserted)
                .await?;
        }
        Ok(report)
    }

    /// [`Runtime::import_records`] up to the final sync of the log.
    #[allow(clippy::too_many_arguments)]
    async fn import_chunks(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        format: ImportFormat,
        input: bytes::Bytes,
        atomic: bool,
        locale: Locale,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<ImportReport, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, _) = loaded.entity(entity_id)?;
        let checked = self.check(actor, &loaded, entity).await?;
        checked.require(trellis_model::Action::Read)?;
        checked.require(trellis_model::Action::Import)?;
        let total = match format {
            ImportFormat::Ndjson | ImportFormat::Csv => {
                let text = std::str::from_utf8(&input)
                    .map_err(|_| bad_file("the file is not UTF-8 text".into()))?;
                let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
                if format == ImportFormat::Csv {
                    lines.saturating_sub(1)
                } else {
                    lines
                }
            }
            ImportFormat::Xlsx => 0,
        };
        let (sender, mut chunks) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
        let rule_stats = RuleStats::default();
        let job = ImportJob {
            runtime: self.clone(),
            loaded: loaded.clone(),
            entity_id: entity_id.to_owned(),
            actor: actor.clone(),
            locale,
            format,
            input,
            field_access: checked.access.fields.clone(),
            rule_stats: rule_stats.clone(),
        };
        let validating = tokio::task::spawn_blocking(move || job.run(sender));
        let mut rejected = Vec::new();
        let mut seen_uniques = std::collections::HashSet::new();
        let mut sink = Sink {
            bulk: None,
            atomic,
            committed: 0,
            flow_starts: Vec::new(),
            starts_flows: loaded.flows_of(entity.id.as_str()).any(|flow| {
                flow.initial().is_some_and(|initial| {
                    initial.approval.is_some()
                        || flow.definition.timers.iter().any(|t| t.state == initial.id)
                })
            }),
        };
        let in_flight_limit = self.chunks_in_flight(entity, atomic);
        let mut in_flight = in_flight::InFlight::default();
        let mut done = 0usize;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            done += chunk.read;
            rejected.extend(chunk.rejected);
            let chunk_started = std::time::Instant::now();
            let mut accepted = self
                .check_chunk(
                    &loaded,
                    entity,
                    locale,
                    chunk.accepted,
                    &mut seen_uniques,
                    &mut rejected,
                )
                .await?;
            self.keep_writable_rows(&loaded, &checked, &mut accepted, &mut rejected)
                .await?;
            if in_flight_limit > 1 {
                if !accepted.is_empty() {
                    // Numbers drawn here, in file order, outside the chunks' transactions (which
                    // would otherwise hold the counter's row lock until they commit).
                    self.number_rows(&loaded.id, entity, &mut accepted).await?;
                    let (runtime, loaded, actor) = (self.clone(), loaded.clone(), actor.clone());
                    let (entity_id, starts_flows) = (entity.id.to_string(), sink.starts_flows);
                    in_flight.0.spawn(async move {
                        let (entity, _) = loaded.entity(&entity_id)?;
                        runtime
                            .insert_chunk_alone(
                                &loaded.id,
                                entity,
                                &actor,
                                locale,
                                accepted,
                                starts_flows,
                            )
                            .await
                    });
                }
                if in_flight.0.len() >= in_flight_limit {
                    Self::absorb_first_done(&mut in_flight, &mut sink, &mut rejected).await?;
                }
            } else if (!atomic || rejected.is_empty()) && !accepted.is_empty() {
                self.insert_chunk(
                    &loaded.id,
                    entity,
                    actor,
                    locale,
                    accepted,
                    &mut sink,
                    &mut rejected,
                )
                .await?;
            }
            tracing::debug!(
                done,
                stored_ms = chunk_started.elapsed().as_millis() as u64,
                "import: chunk"
            );
            progress(done, total.max(done));
        }
        while !in_flight.0.is_empty() {
            Self::absorb_first_done(&mut in_flight, &mut sink, &mut rejected).await?;
        }
        validating
            .await
            .map_err(|e| RuntimeError::Internal(format!("the validating thread failed: {e}")))?;
        let inserted = match sink.bulk.take() {
            Some(bulk) if atomic && !rejected.is_empty() => {
                bulk.rollback().await?;
                0
            }
            Some(bulk) => {
                if sink.starts_flows {
                    sink.flow_starts.extend_from_slice(bulk.ids());
                }
                sink.committed + bulk.commit().await?
            }
            None if atomic && !rejected.is_empty() => 0,
            None => sink.committed,
        };
        // Imported records start their flows' initial-state work like created ones do.
        for id in &sink.flow_starts {
            if let Some(row) = self.store().get_record(&loaded.id, &entity.uid, id).await? {
                self.start_flows(&loaded, entity, &row, Some(&actor.user_id))
                    .await?;
            }
        }
        // One run-log entry per before-save rule for the whole import (not one per row).
        let stats = rule_stats.lock().map(|s| s.clone()).unwrap_or_default();
        for (rule, [rows, matched, refused, micros]) in stats {
            self.store()
                .log_rule_run(
                    &loaded.id,
                    &rule,
                    loaded.version,
                    "import",
                    None,
                    matched > 0,
                    &serde_json::json!({"import": true, "rows": rows, "matched": matched, "rejected": refused, "inserted": inserted}),
                    None,
                    micros,
                )
                .await?;
        }
        rejected.sort_by_key(|r| r.row);
        if inserted >= self.settings().column_snapshots.min_rows {
            // Large imports prepare the columns of the entity's reports (and their snapshot)
            // in the background, so the next dashboard does not read every document.
            let (runtime, app, entity) = (self.clone(), loaded.id.clone(), entity.id.to_string());
            self.columns.track(async move {
                if let Err(error) = runtime.warm_report_columns(&app, Some(&entity)).await {
                    tracing::warn!(%error, app, entity, "report columns not prepared after the import");
                }
            });
        }
        tracing::info!(
            app,
            entity = entity_id,
            inserted,
            rejected = rejected.len(),
            "import finished"
        );
        Ok(ImportReport { inserted, rejected })
    }

    /// Reject rows that would land outside the rows the user may write.
    async fn keep_writable_rows(
        &self,
        loaded: &crate::app_cache::LoadedApp,
        checked: &crate::access::Checked<'_>,
        accepted: &mut Vec<AcceptedRow>,
        rejected: &mut Vec<RejectedRow>,
    ) -> Result<(), RuntimeError> {
        if matches!(
            checked.access.write_rows,
            Some(trellis_model::CheckedFilter::All)
        ) {
            return Ok(());
        }
        let mut kept = Vec::with_capacity(accepted.len());
        for row in accepted.drain(..) {
            let data = trellis_form::records::to_storage(checked.entity, &row.named, None);
            match self.require_write_rows(loaded, checked, &data).await {
                Ok(()) => kept.push(row),
                Err(RuntimeError::Forbidden(reason)) => rejected.push(RejectedRow {
                    row: row.row,
                    errors: vec![FieldIssue {
                        pointer: String::new(),
                        code: "forbidden_row",
                        message: reason,
                    }],
                    values: row.raw,
                }),
                Err(other) => return Err(other),
            }
        }
        *accepted = kept;
        Ok(())
    }

    /// Check a validated chunk's relations in one go and drop values repeated inside the file (the
    /// first occurrence wins). Returns the good rows; bad ones go to `rejected`.
    async fn check_chunk(
        &self,
        loaded: &crate::app_cache::LoadedApp,
        entity: &EntityDefinition,
        locale: Locale,
        mut accepted: Vec<AcceptedRow>,
        seen_uniques: &mut std::collections::HashSet<(String, String)>,
        rejected: &mut Vec<RejectedRow>,
    ) -> Result<Vec<AcceptedRow>, RuntimeError> {
        let named: Vec<crate::records::RelationCheck<'_>> =
            accepted.iter().map(|a| (&a.named, None)).collect();
        let mut missing = self
            .check_relations(loaded, entity, &named, locale)
            .await?
            .into_iter();
        accepted.retain(|accepted| {
            let mut issues = missing.next().unwrap_or_default();
            if issues.is_empty() {
                let uniques = match &accepted.write {
                    Some(write) => write.uniques.clone(),
                    None => super::records::unique_values_of(entity, &accepted.named),
                };
                issues = uniques
                    .into_iter()
                    .filter(|u| !seen_uniques.insert((u.field_uid.clone(), u.value.clone())))
                    .map(|u| FieldIssue {
                        pointer: format!(
                            "/{}",
                            entity
                                .field_by_uid(&u.field_uid)
                                .map_or(u.field_uid.clone(), |f| f.name.to_string())
                        ),
                        code: "unique",
                        message: message("unique", locale, &u.value),
                    })
                    .collect();
            }
            if issues.is_empty() {
                true
            } else {
                rejected.push(RejectedRow {
                    row: accepted.row,
                    errors: issues,
                    values: accepted.raw.clone(),
                });
                false
            }
        });
        Ok(accepted)
    }

    /// Number and insert a chunk of good rows. A value already used by a stored record rejects that row
    /// and the chunk is retried without it.
    #[allow(clippy::too_many_arguments)]
    async fn insert_chunk(
        &self,
        app: &str,
        entity: &EntityDefinition,
        actor: &Principal,
        locale: Locale,
        mut accepted: Vec<AcceptedRow>,
        sink: &mut Sink,
        rejected: &mut Vec<RejectedRow>,
    ) -> Result<(), RuntimeError> {
        let chunk_started = std::time::Instant::now();
        let mut bulk = match sink.bulk.take() {
            Some(bulk) => bulk,
            None => {
                // A non-atomic import's chunks commit without waiting for the disk; the import
                // syncs the log once at its end (`import_records`).
                let store = self.store();
                if sink.atomic {
                    store
                        .begin_bulk_insert(app, &entity.uid, Some(&actor.user_id))
                        .await?
                } else {
                    store
                        .begin_unsynced_bulk_insert(app, &entity.uid, Some(&actor.user_id))
                        .await?
                }
            }
        };
        for field in entity
            .fields
            .iter()
            .filter(|f| f.kind == FieldKind::AutoNumber)
        {
            let waiting: Vec<usize> = (0..accepted.len())
                .filter(|&i| {
                    accepted[i]
                        .named
                        .get(field.name.as_str())
                        .and_then(Value::as_str)
                        == Some(super::records::AUTO_NUMBER_PLACEHOLDER)
                })
                .collect();
            if waiting.is_empty() {
                continue;
            }
            let pattern = field
                .annotations
                .pattern
                .clone()
                .unwrap_or_else(|| "{0000}".into());
            let first = bulk
                .reserve_counter(
                    &field.uid,
                    &super::records::auto_number_period(&pattern),
                    waiting.len() as i64,
                )
                .await?;
            for (offset, index) in waiting.into_iter().enumerate() {
                accepted[index].named.insert(
                    field.name.to_string(),
                    Value::String(super::records::auto_number(&pattern, first + offset as i64)),
                );
            }
        }
        let mut batch: Vec<NewRecord> = accepted
            .iter_mut()
            .map(|accepted| {
                accepted.write.take().unwrap_or_else(|| {
                    super::records::new_record_serialized(entity, &accepted.named)
                })
            })
            .collect();
        tracing::debug!(
            prepared_us = chunk_started.elapsed().as_micros() as u64,
            "import: storage form"
        );
        loop {
            match bulk.insert(&batch).await {
                Ok(_) => break,
                Err(StoreError::UniqueViolation { field_uid, value }) => {
                    let position = batch.iter().position(|record| {
                        record
                            .uniques
                            .iter()
                            .any(|u| u.field_uid == field_uid && u.value == value)
                    });
                    let Some(position) = position else {
                        return Err(RuntimeError::Conflict(format!(
                            "value '{value}' is already used"
                        )));
                    };
                    batch.remove(position);
                    let AcceptedRow { row, raw, .. } = accepted.remove(position);
                    let name = entity
                        .field_by_uid(&field_uid)
                        .map_or(field_uid.clone(), |f| f.name.to_string());
                    rejected.push(RejectedRow {
                        row,
                        errors: vec![FieldIssue {
                            pointer: format!("/{name}"),
                            code: "unique",
                            message: message("unique", locale, &value),
                        }],
                        values: raw,
                    });
                    if sink.atomic || accepted.is_empty() {
                        break;
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
        tracing::debug!(
            inserted_us = chunk_started.elapsed().as_micros() as u64,
            "import: inserted"
        );
        // Freeing the chunk's rows (two maps of every field per row) need not hold up the inserts.
        let written = (accepted, batch);
        tokio::task::spawn_blocking(move || drop(written));
        if sink.atomic {
            sink.bulk = Some(bulk);
        } else {
            if sink.starts_flows {
                sink.flow_starts.extend_from_slice(bulk.ids());
            }
            sink.committed += bulk.commit().await?;
        }
        Ok(())
    }
}
