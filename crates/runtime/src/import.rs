//! Importing records from CSV or NDJSON: columns are matched to fields by id, uid or label in either
//! language; every row is validated like an API create; bad rows are reported with reasons (never
//! silently dropped); `atomic` inserts nothing unless every row is valid. Good rows go in together.

use serde::Serialize;
use serde_json::{Map, Value};
use trellis_form::{FieldIssue, Locale, convert_value, message};
use trellis_model::{EntityDefinition, FieldKind};
use trellis_store::{NewRecord, StoreError};

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

/// Map a column header to a field: by id, uid, or label in any language (case-insensitive).
fn match_column<'a>(
    entity: &'a EntityDefinition,
    header: &str,
) -> Option<&'a trellis_model::FieldDefinition> {
    let wanted = header.trim().to_lowercase();
    entity.fields.iter().find(|f| {
        f.name.as_str() == wanted
            || f.uid.to_lowercase() == wanted
            || f.annotations.label.as_ref().is_some_and(|l| {
                l.0.values()
                    .any(|text| text.trim().to_lowercase() == wanted)
            })
    })
}

/// Turn a CSV cell into a value of the field's kind.
fn cell_value(kind: FieldKind, cell: &str) -> Result<Option<Value>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    let text = Value::String(cell.to_owned());
    let value = match kind {
        FieldKind::Json => serde_json::from_str(cell).map_err(|e| format!("not JSON: {e}"))?,
        FieldKind::RelationMany => Value::Array(
            cell.split([',', '，'])
                .map(|s| Value::String(s.trim().to_owned()))
                .collect(),
        ),
        FieldKind::Money => {
            let mut parts = cell.split_whitespace();
            let amount = parts.next().unwrap_or_default();
            let currency = parts.next().unwrap_or("CNY");
            serde_json::json!({"amount": amount, "currency": currency})
        }
        other => convert_value(&text, FieldKind::Text, other)?,
    };
    Ok(Some(value))
}

struct ParsedRow {
    row: usize,
    fields: Map<String, Value>,
    raw: Value,
    errors: Vec<FieldIssue>,
}

fn parse_csv(entity: &EntityDefinition, text: &str) -> Result<Vec<ParsedRow>, RuntimeError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad_file(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let records = reader.records().map(|r| {
        r.map(|r| r.iter().map(str::to_owned).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    });
    parse_table(entity, &headers, records)
}

/// Read the first sheet of a workbook as header + rows of text cells.
fn parse_xlsx(entity: &EntityDefinition, bytes: &[u8]) -> Result<Vec<ParsedRow>, RuntimeError> {
    use calamine::{Data, Reader};
    let mut workbook = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec()))
        .map_err(|e| bad_file(format!("not an .xlsx workbook: {e}")))?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| bad_file("the workbook has no sheet".into()))?
        .map_err(|e| bad_file(format!("cannot read the first sheet: {e}")))?;
    let text = |cell: &Data| match cell {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 9e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => d
            .as_datetime()
            .map(|dt| {
                if dt.time() == chrono::NaiveTime::MIN {
                    dt.date().to_string()
                } else {
                    dt.format("%Y-%m-%dT%H:%M:%S").to_string()
                }
            })
            .unwrap_or_default(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    };
    let mut rows = range.rows();
    let headers: Vec<String> = rows
        .next()
        .map(|r| r.iter().map(text).collect())
        .unwrap_or_default();
    let records: Vec<Result<Vec<String>, String>> =
        rows.map(|r| Ok(r.iter().map(text).collect())).collect();
    parse_table(entity, &headers, records.into_iter())
}

fn parse_table(
    entity: &EntityDefinition,
    headers: &[String],
    records: impl Iterator<Item = Result<Vec<String>, String>>,
) -> Result<Vec<ParsedRow>, RuntimeError> {
    let mut columns = Vec::new();
    let mut unknown = Vec::new();
    for (index, header) in headers.iter().enumerate() {
        if header.trim().is_empty() {
            columns.push((String::new(), FieldKind::Json));
            continue;
        }
        match match_column(entity, header) {
            Some(field) => columns.push((field.name.to_string(), field.kind)),
            None => unknown.push(FieldIssue {
                pointer: format!("/columns/{index}"),
                code: "unknown_column",
                message: format!(
                    "column '{header}' matches no field of {} (by id or label)",
                    entity.id
                ),
            }),
        }
    }
    if !unknown.is_empty() {
        return Err(RuntimeError::InvalidRecord(unknown));
    }
    let mut rows = Vec::new();
    for (index, record) in records.enumerate() {
        let row = index + 2;
        let mut parsed = ParsedRow {
            row,
            fields: Map::new(),
            raw: Value::Null,
            errors: Vec::new(),
        };
        match record {
            Ok(record) => {
                let mut raw = Map::new();
                if record.iter().all(|cell| cell.trim().is_empty()) {
                    continue;
                }
                for ((name, kind), cell) in columns.iter().zip(record.iter()) {
                    if name.is_empty() {
                        continue;
                    }
                    raw.insert(name.clone(), Value::String(cell.to_owned()));
                    match cell_value(*kind, cell) {
                        Ok(Some(value)) => {
                            parsed.fields.insert(name.clone(), value);
                        }
                        Ok(None) => {}
                        Err(reason) => parsed.errors.push(FieldIssue {
                            pointer: format!("/{name}"),
                            code: "type",
                            message: reason,
                        }),
                    }
                }
                parsed.raw = Value::Object(raw);
            }
            Err(error) => parsed.errors.push(FieldIssue {
                pointer: String::new(),
                code: "invalid_csv",
                message: error.to_string(),
            }),
        }
        rows.push(parsed);
    }
    Ok(rows)
}

fn parse_ndjson(entity: &EntityDefinition, text: &str) -> Vec<ParsedRow> {
    let mut rows = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut parsed = ParsedRow {
            row: index + 1,
            fields: Map::new(),
            raw: Value::String(line.to_owned()),
            errors: Vec::new(),
        };
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => {
                for (key, value) in &object {
                    match match_column(entity, key) {
                        Some(field) => {
                            parsed.fields.insert(field.name.to_string(), value.clone());
                        }
                        None => parsed.errors.push(FieldIssue {
                            pointer: format!("/{key}"),
                            code: "unknown_field",
                            message: format!("'{key}' matches no field of {}", entity.id),
                        }),
                    }
                }
                parsed.raw = Value::Object(object);
            }
            Ok(_) => parsed.errors.push(FieldIssue {
                pointer: String::new(),
                code: "not_an_object",
                message: "the line is not a JSON object".into(),
            }),
            Err(error) => parsed.errors.push(FieldIssue {
                pointer: String::new(),
                code: "invalid_json",
                message: error.to_string(),
            }),
        }
        rows.push(parsed);
    }
    rows
}

fn bad_file(message: String) -> RuntimeError {
    RuntimeError::InvalidRecord(vec![FieldIssue {
        pointer: String::new(),
        code: "invalid_file",
        message,
    }])
}

impl Runtime {
    /// Import `text` into `entity`. `progress(done, total)` is called as rows are validated.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_records(
        &self,
        actor: &Principal,
        app: &str,
        entity_id: &str,
        format: ImportFormat,
        input: &[u8],
        atomic: bool,
        locale: Locale,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> Result<ImportReport, RuntimeError> {
        let loaded = self.loaded_app(app).await?;
        let (entity, validator) = loaded.entity(entity_id)?;
        let text = || {
            std::str::from_utf8(input).map_err(|_| bad_file("the file is not UTF-8 text".into()))
        };
        let rows = match format {
            ImportFormat::Csv => parse_csv(entity, text()?)?,
            ImportFormat::Ndjson => parse_ndjson(entity, text()?),
            ImportFormat::Xlsx => parse_xlsx(entity, input)?,
        };
        let total = rows.len();
        let started = std::time::Instant::now();
        tracing::debug!(
            rows = total,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "import: parsed"
        );
        let mut rejected = Vec::new();
        let mut accepted: Vec<(usize, Value, Map<String, Value>)> = Vec::new();
        for (done, parsed) in rows.into_iter().enumerate() {
            if !parsed.errors.is_empty() {
                rejected.push(RejectedRow {
                    row: parsed.row,
                    errors: parsed.errors,
                    values: parsed.raw,
                });
            } else {
                match self.prepare_new_record(
                    &loaded,
                    entity,
                    validator,
                    &Value::Object(parsed.fields),
                    actor,
                    locale,
                ) {
                    Ok(named) => accepted.push((parsed.row, parsed.raw, named)),
                    Err(errors) => rejected.push(RejectedRow {
                        row: parsed.row,
                        errors,
                        values: parsed.raw,
                    }),
                }
            }
            if done % 256 == 0 || done + 1 == total {
                progress(done + 1, total);
            }
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "import: validated"
        );
        // Relations, checked for all rows at once.
        let named: Vec<&Map<String, Value>> = accepted.iter().map(|(_, _, named)| named).collect();
        let mut missing = self
            .check_relations(&loaded, entity, &named, locale)
            .await?
            .into_iter();
        accepted.retain(|(row, raw, _)| {
            let issues = missing.next().unwrap_or_default();
            if issues.is_empty() {
                true
            } else {
                rejected.push(RejectedRow {
                    row: *row,
                    errors: issues,
                    values: raw.clone(),
                });
                false
            }
        });
        // Unique values repeated inside the file: the first occurrence wins.
        let mut seen = std::collections::HashSet::new();
        accepted.retain(|(row, raw, named)| {
            let duplicates: Vec<FieldIssue> = super::records::unique_values_of(entity, named)
                .into_iter()
                .filter(|u| !seen.insert((u.field_uid.clone(), u.value.clone())))
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
            if duplicates.is_empty() {
                true
            } else {
                rejected.push(RejectedRow {
                    row: *row,
                    errors: duplicates,
                    values: raw.clone(),
                });
                false
            }
        });
        if atomic && !rejected.is_empty() {
            rejected.sort_by_key(|r| r.row);
            return Ok(ImportReport {
                inserted: 0,
                rejected,
            });
        }
        let mut records: Vec<Map<String, Value>> =
            accepted.iter().map(|(_, _, named)| named.clone()).collect();
        self.assign_auto_numbers(&loaded.id, entity, &mut records)
            .await?;
        for ((_, _, named), numbered) in accepted.iter_mut().zip(records) {
            *named = numbered;
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "import: numbered"
        );
        // Insert; a value already used by a stored record rejects that row and the rest is retried.
        loop {
            let batch: Vec<NewRecord> = accepted
                .iter()
                .map(|(_, _, named)| super::records::record_write(entity, named, None))
                .collect();
            match self
                .store()
                .insert_records(&loaded.id, &entity.uid, Some(&actor.user_id), &batch)
                .await
            {
                Ok(rows) => {
                    rejected.sort_by_key(|r| r.row);
                    return Ok(ImportReport {
                        inserted: rows.len(),
                        rejected,
                    });
                }
                Err(StoreError::UniqueViolation { field_uid, value }) => {
                    let position = accepted.iter().position(|(_, _, named)| {
                        super::records::unique_values_of(entity, named)
                            .iter()
                            .any(|u| u.field_uid == field_uid && u.value == value)
                    });
                    let Some(position) = position else {
                        return Err(RuntimeError::Conflict(format!(
                            "value '{value}' is already used"
                        )));
                    };
                    let (row, raw, _) = accepted.remove(position);
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
                    if atomic {
                        rejected.sort_by_key(|r| r.row);
                        return Ok(ImportReport {
                            inserted: 0,
                            rejected,
                        });
                    }
                }
                Err(other) => return Err(other.into()),
            }
        }
    }
}
