//! Reading import files (CSV, XLSX, NDJSON) lazily into rows of field values: columns matched to fields
//! by id, uid or label, cells converted to the field's kind, problems kept per row.

use serde_json::{Map, Value};
use trellis_form::{FieldIssue, convert_value};
use trellis_model::{EntityDefinition, FieldKind};

use crate::RuntimeError;

/// Map a column header to a field: by id, uid, or label in any language (case-insensitive).
pub(super) fn match_column<'a>(
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
pub(super) fn cell_value(kind: FieldKind, cell: &str) -> Result<Option<Value>, String> {
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

pub(super) struct ParsedRow {
    pub(super) row: usize,
    pub(super) fields: Map<String, Value>,
    pub(super) raw: Value,
    pub(super) errors: Vec<FieldIssue>,
}

/// Rows of a file, read lazily so memory stays bounded by a chunk, not the file.
pub(super) type Rows<'a> = Box<dyn Iterator<Item = ParsedRow> + Send + 'a>;

/// Rows processed (validated and inserted) together.
pub(super) const IMPORT_CHUNK: usize = 5_000;

pub(super) fn bad_file(message: String) -> RuntimeError {
    RuntimeError::InvalidRecord(vec![FieldIssue {
        pointer: String::new(),
        code: "invalid_file",
        message,
    }])
}

pub(super) fn parse_csv<'a>(
    entity: &'a EntityDefinition,
    text: &'a str,
) -> Result<Rows<'a>, RuntimeError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| bad_file(format!("cannot read the CSV header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    let records = reader.into_records().map(|r| {
        r.map(|r| r.iter().map(str::to_owned).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    });
    table_rows(entity, &headers, records)
}

/// The first sheet of a workbook as a header and rows of text cells.
pub(super) fn parse_xlsx<'a>(
    entity: &'a EntityDefinition,
    bytes: &[u8],
) -> Result<Rows<'a>, RuntimeError> {
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
    table_rows(entity, &headers, records.into_iter())
}

/// Match the header to fields (every unknown column is an error), then read rows lazily.
pub(super) fn table_rows<'a>(
    entity: &'a EntityDefinition,
    headers: &[String],
    records: impl Iterator<Item = Result<Vec<String>, String>> + Send + 'a,
) -> Result<Rows<'a>, RuntimeError> {
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
    Ok(Box::new(records.enumerate().filter_map(
        move |(index, record)| {
            let mut parsed = ParsedRow {
                row: index + 2,
                fields: Map::new(),
                raw: Value::Null,
                errors: Vec::new(),
            };
            match record {
                Ok(record) => {
                    if record.iter().all(|cell| cell.trim().is_empty()) {
                        return None;
                    }
                    let mut raw = Map::new();
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
                    code: "invalid_row",
                    message: error,
                }),
            }
            Some(parsed)
        },
    )))
}

/// One NDJSON line parsed as an object whose map is sized for `fields` entries up front (a map grown
/// key by key reallocated and copied its entries three times for a 20-field row). Anything but an
/// object is an error; [`serde_json::from_str`] then tells which.
fn parse_object(line: &str, fields: usize) -> serde_json::Result<Map<String, Value>> {
    struct SizedObject(usize);
    impl<'de> serde::de::Visitor<'de> for SizedObject {
        type Value = Map<String, Value>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut object = Map::with_capacity(self.0);
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                object.insert(key, value);
            }
            Ok(object)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let object = serde::Deserializer::deserialize_map(&mut deserializer, SizedObject(fields))?;
    deserializer.end()?;
    Ok(object)
}

pub(super) fn parse_ndjson<'a>(entity: &'a EntityDefinition, text: &'a str) -> Rows<'a> {
    // Keys repeat on every line: resolve each distinct key to a field once.
    let mut resolved: foldhash::HashMap<String, Option<String>> = foldhash::HashMap::default();
    Box::new(
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(move |(index, line)| {
                let mut parsed = ParsedRow {
                    row: index + 1,
                    fields: Map::new(),
                    raw: Value::Null,
                    errors: Vec::new(),
                };
                let parsed_line = parse_object(line, entity.fields.len())
                    .map(Value::Object)
                    .or_else(|_| serde_json::from_str::<Value>(line));
                match parsed_line {
                    // Every key already the name of its field (the usual file): the object as it is.
                    Ok(Value::Object(object))
                        if object.keys().all(|key| {
                            resolved
                                .get(key)
                                .is_some_and(|field| field.as_deref() == Some(key.as_str()))
                        }) =>
                    {
                        parsed.fields = object;
                    }
                    Ok(Value::Object(object)) => {
                        for (key, value) in object {
                            if !resolved.contains_key(&key) {
                                let field = match_column(entity, &key).map(|f| f.name.to_string());
                                resolved.insert(key.clone(), field);
                            }
                            let field = &resolved[&key];
                            match field {
                                // Keys already named as their field (the usual case) move as they are.
                                Some(name) if *name == key => {
                                    parsed.fields.insert(key, value);
                                }
                                Some(name) => {
                                    parsed.fields.insert(name.clone(), value);
                                }
                                None => parsed.errors.push(FieldIssue {
                                    pointer: format!("/{key}"),
                                    code: "unknown_field",
                                    message: format!("'{key}' matches no field of {}", entity.id),
                                }),
                            }
                        }
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
                // The line as written: what a rejected row reports, cheaper to keep than a copy of the fields.
                parsed.raw = Value::String(line.to_owned());
                parsed
            }),
    )
}
