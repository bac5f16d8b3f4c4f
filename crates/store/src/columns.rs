//! Loading typed columns for reports: one statement returns, for every live record matching a checked
//! filter, the record id and the requested fields already converted (numbers, exact money, days,
//! milliseconds) — reports never re-parse whole JSON records. On SQLite the rows are read through
//! rusqlite on a pooled read connection (sqlx's per-row cost dominates otherwise, PERF.md); on
//! PostgreSQL each field arrives as text (`data ->> uid`).

use chrono::{DateTime, Datelike, NaiveDate};
use trellis_model::CheckedFilter;

use crate::document_scan::{Extracted, FieldPath, extract};
use crate::query::{Arg, Sql, push_filter};
use crate::{Backend, Store, StoreError};

/// How a field is held in memory (mirrors the report engine's column types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Int,
    Float,
    /// Exact amounts in ten-thousandths, read from `{"amount": "12.50", …}`.
    Money,
    Bool,
    Text,
    /// Days since 1970-01-01.
    Date,
    /// Milliseconds since the epoch (UTC).
    DateTime,
}

/// A field to load: its stable uid and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRequest {
    pub uid: String,
    pub kind: ColumnKind,
}

/// One loaded column.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Money(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    /// Text, each distinct value stored once: `codes[i]` indexes `values`.
    Dict {
        codes: Vec<Option<u32>>,
        values: Vec<String>,
    },
    Date(Vec<Option<i32>>),
    DateTime(Vec<Option<i64>>),
}

/// Which rows a column load reads.
enum Rows<'a> {
    Matching(&'a CheckedFilter),
    Ids(&'a [String]),
}

/// Where a reader of one entity's record changes has got to: the last sequence number seen and, on
/// PostgreSQL, the oldest transaction that was still running then (its changes are read again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCursor {
    pub seq: i64,
    pub xmin: Option<i64>,
}

/// Record ids and one column per request, in request order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedColumns {
    pub ids: Vec<String>,
    pub columns: Vec<ColumnValues>,
}

const MONEY_SCALE: i64 = 10_000;

/// `NaiveDate::num_days_from_ce` of 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A decimal text in ten-thousandths, exactly.
fn money_from_text(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if fraction.len() > 4
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut value = whole.checked_mul(MONEY_SCALE)?;
    let mut unit = MONEY_SCALE / 10;
    for digit in fraction.bytes() {
        value += i64::from(digit - b'0') * unit;
        unit /= 10;
    }
    Some(if negative { -value } else { value })
}

fn days_from_text(text: &str) -> Option<i32> {
    // The common `YYYY-MM-DD` without chrono's format interpreter; anything else takes the long way.
    if let [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, ..] = *text.as_bytes() {
        let digits = [y0, y1, y2, y3, m0, m1, d0, d1];
        if digits.iter().all(u8::is_ascii_digit) {
            let number = |part: &[u8]| part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
            let date = NaiveDate::from_ymd_opt(
                number(&digits[..4]) as i32,
                number(&digits[4..6]),
                number(&digits[6..]),
            )?;
            return Some(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE);
        }
    }
    let date = NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days() as i32)
}

fn millis_from_text(text: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
        .or_else(|| days_from_text(text).map(|d| i64::from(d) * 86_400_000))
}

/// A column being filled.
enum Builder {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Money(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Text {
        codes: Vec<Option<u32>>,
        values: Vec<String>,
        index: std::collections::HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    },
    Date(Vec<Option<i32>>),
    DateTime(Vec<Option<i64>>),
}

/// A SQL value as both drivers hand it over.
enum Cell<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(&'a str),
}

impl Builder {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Int => Self::Int(Vec::new()),
            ColumnKind::Float => Self::Float(Vec::new()),
            ColumnKind::Money => Self::Money(Vec::new()),
            ColumnKind::Bool => Self::Bool(Vec::new()),
            ColumnKind::Text => Self::Text {
                codes: Vec::new(),
                values: Vec::new(),
                index: Default::default(),
            },
            ColumnKind::Date => Self::Date(Vec::new()),
            ColumnKind::DateTime => Self::DateTime(Vec::new()),
        }
    }

    fn push(&mut self, cell: Cell<'_>) {
        match self {
            Self::Int(v) => v.push(match cell {
                Cell::Int(i) => Some(i),
                Cell::Float(f) => Some(f as i64),
                Cell::Text(t) => t.trim().parse().ok(),
                Cell::Null => None,
            }),
            Self::Float(v) => v.push(match cell {
                Cell::Int(i) => Some(i as f64),
                Cell::Float(f) => Some(f),
                Cell::Text(t) => t.trim().parse().ok(),
                Cell::Null => None,
            }),
            Self::Money(v) => v.push(match cell {
                Cell::Int(i) => i.checked_mul(MONEY_SCALE),
                Cell::Float(f) => Some((f * MONEY_SCALE as f64).round() as i64),
                Cell::Text(t) => money_from_text(t),
                Cell::Null => None,
            }),
            Self::Bool(v) => v.push(match cell {
                Cell::Int(i) => Some(i != 0),
                Cell::Text(t) => match t {
                    "true" => Some(true),
                    "false" => Some(false),
                    _ => None,
                },
                _ => None,
            }),
            Self::Text {
                codes,
                values,
                index,
            } => {
                let owned;
                let text = match cell {
                    Cell::Int(i) => {
                        owned = i.to_string();
                        owned.as_str()
                    }
                    Cell::Float(f) => {
                        owned = f.to_string();
                        owned.as_str()
                    }
                    Cell::Text(t) => t,
                    Cell::Null => {
                        codes.push(None);
                        return;
                    }
                };
                let code = match index.get(text) {
                    Some(code) => *code,
                    None => {
                        let code = values.len() as u32;
                        values.push(text.to_owned());
                        index.insert(text.into(), code);
                        code
                    }
                };
                codes.push(Some(code));
            }
            Self::Date(v) => v.push(match cell {
                Cell::Text(t) => days_from_text(t),
                _ => None,
            }),
            Self::DateTime(v) => v.push(match cell {
                Cell::Text(t) => millis_from_text(t),
                _ => None,
            }),
        }
    }

    /// Add `other`'s rows after this column's (a text column's codes are translated to this
    /// column's dictionary).
    fn append(&mut self, other: Builder) {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) | (Self::Money(a), Self::Money(b)) => a.extend(b),
            (Self::DateTime(a), Self::DateTime(b)) => a.extend(b),
            (Self::Float(a), Self::Float(b)) => a.extend(b),
            (Self::Bool(a), Self::Bool(b)) => a.extend(b),
            (Self::Date(a), Self::Date(b)) => a.extend(b),
            (
                Self::Text {
                    codes,
                    values,
                    index,
                },
                Self::Text {
                    codes: other_codes,
                    values: other_values,
                    ..
                },
            ) => {
                let translated: Vec<u32> = other_values
                    .into_iter()
                    .map(|value| match index.get(value.as_str()) {
                        Some(code) => *code,
                        None => {
                            let code = values.len() as u32;
                            index.insert(value.as_str().into(), code);
                            values.push(value);
                            code
                        }
                    })
                    .collect();
                codes.extend(
                    other_codes
                        .into_iter()
                        .map(|code| code.map(|c| translated[c as usize])),
                );
            }
            // Both halves are built from the same requests, so kinds always agree.
            (_, _) => unreachable!("column halves of different kinds"),
        }
    }

    fn finish(self) -> ColumnValues {
        match self {
            Self::Int(v) => ColumnValues::Int(v),
            Self::Float(v) => ColumnValues::Float(v),
            Self::Money(v) => ColumnValues::Money(v),
            Self::Bool(v) => ColumnValues::Bool(v),
            Self::Text { codes, values, .. } => ColumnValues::Dict { codes, values },
            Self::Date(v) => ColumnValues::Date(v),
            Self::DateTime(v) => ColumnValues::DateTime(v),
        }
    }
}

impl Store {
    /// The ids and the requested fields of every live record of `entity` matching `filter`.
    pub async fn load_columns(
        &self,
        app: &str,
        entity: &str,
        requests: &[ColumnRequest],
        filter: &CheckedFilter,
    ) -> Result<LoadedColumns, StoreError> {
        self.load_columns_where(app, entity, requests, Rows::Matching(filter))
            .await
    }

    /// The requested fields of those of `ids` that are live records of `entity` (deleted or unknown
    /// ids are simply absent from the result).
    pub async fn load_columns_of(
        &self,
        app: &str,
        entity: &str,
        requests: &[ColumnRequest],
        ids: &[String],
    ) -> Result<LoadedColumns, StoreError> {
        self.load_columns_where(app, entity, requests, Rows::Ids(ids))
            .await
    }

    async fn load_columns_where(
        &self,
        app: &str,
        entity: &str,
        requests: &[ColumnRequest],
        rows: Rows<'_>,
    ) -> Result<LoadedColumns, StoreError> {
        let backend = self.backend();
        let mut sql = Sql::default();
        let mut select = vec!["r.id".to_owned()];
        if backend == Backend::Sqlite {
            // The document itself: one pass in Rust finds every requested field
            // (`document_scan`), instead of one `json_extract` parse per field.
            select.push("r.data".to_owned());
        }
        for request in requests.iter().filter(|_| backend == Backend::Postgres) {
            let expression = match request.kind {
                ColumnKind::Money => {
                    let key = sql.arg(Arg::Text(request.uid.clone()));
                    format!("(r.data -> {key} ->> 'amount')")
                }
                _ => {
                    let key = sql.arg(Arg::Text(request.uid.clone()));
                    format!("(r.data ->> {key})")
                }
            };
            select.push(expression);
        }
        let app_arg = sql.arg(Arg::Text(app.to_owned()));
        let entity_arg = sql.arg(Arg::Text(entity.to_owned()));
        let head = format!(
            "SELECT {} FROM records r WHERE r.app_id = {app_arg} AND r.entity = {entity_arg} \
             AND r.deleted_at IS NULL AND ",
            select.join(", ")
        );
        let mut statement = Sql::default();
        statement.push(&head);
        statement.args = std::mem::take(&mut sql.args);
        match rows {
            Rows::Matching(filter) => push_filter(&mut statement, backend, app, filter),
            Rows::Ids(ids) => {
                let list = serde_json::Value::from(ids.to_vec());
                let condition = match backend {
                    Backend::Sqlite => {
                        let arg = statement.arg(Arg::Text(list.to_string()));
                        format!("r.id IN (SELECT value FROM json_each({arg}))")
                    }
                    Backend::Postgres => {
                        let arg = statement.arg(Arg::Json(list));
                        format!("r.id IN (SELECT jsonb_array_elements_text({arg}))")
                    }
                };
                statement.push(&condition);
            }
        }
        let mut builders: Vec<Builder> = requests.iter().map(|r| Builder::new(r.kind)).collect();
        let mut ids = Vec::new();
        match &self.pools {
            crate::connect::Pools::Sqlite { read, native, .. } => {
                let mut connection = read.acquire().await?;
                let split = match (native, &rows) {
                    (Some(native), Rows::Matching(_)) => {
                        split_point(native, app, entity, self.parallel_loads_from)?
                    }
                    _ => None,
                };
                match (native, split) {
                    (Some(native), Some(split)) => {
                        // Two halves by id, each on its own thread and connection.
                        drop(connection);
                        let (first, second) = halves(&statement, split);
                        let load = |half: Sql| {
                            let native = native.clone();
                            let requests = requests.to_vec();
                            tokio::task::spawn_blocking(move || {
                                native
                                    .with(|db| Ok(scan_documents(db, &half, &requests)))
                                    .map_err(|e| {
                                        StoreError::Corrupt(format!("loading columns: {e}"))
                                    })?
                            })
                        };
                        let (first, second) = tokio::join!(load(first), load(second));
                        let join = |e: tokio::task::JoinError| {
                            StoreError::Corrupt(format!("loading columns: {e}"))
                        };
                        let (first_ids, first_columns) = first.map_err(join)??;
                        let (second_ids, second_columns) = second.map_err(join)??;
                        ids = first_ids;
                        ids.extend(second_ids);
                        builders = first_columns;
                        for (builder, other) in builders.iter_mut().zip(second_columns) {
                            builder.append(other);
                        }
                    }
                    _ => {
                        statement.push(" ORDER BY r.id");
                        let (loaded_ids, loaded_columns) =
                            crate::records::with_rusqlite(&mut connection, |db| {
                                scan_documents(db, &statement, requests)
                            })
                            .await?;
                        ids = loaded_ids;
                        builders = loaded_columns;
                    }
                }
            }
            crate::connect::Pools::Postgres(pool) => {
                use sqlx::Row;
                statement.push(" ORDER BY r.id");
                let Sql { text, args } = statement;
                let rows =
                    crate::records::bind_args!(sqlx::query(sqlx::AssertSqlSafe(text)), &args)
                        .fetch_all(pool)
                        .await?;
                for row in &rows {
                    ids.push(row.try_get::<String, _>(0)?);
                    for (index, builder) in builders.iter_mut().enumerate() {
                        let text: Option<&str> = row.try_get(index + 1)?;
                        builder.push(text.map_or(Cell::Null, Cell::Text));
                    }
                }
            }
        }
        Ok(LoadedColumns {
            ids,
            columns: builders.into_iter().map(Builder::finish).collect(),
        })
    }

    /// A cursor at "now" for following record changes (take it *before* loading what it guards).
    pub async fn change_cursor(&self) -> Result<ChangeCursor, StoreError> {
        match &self.pools {
            crate::connect::Pools::Sqlite { read, .. } => {
                let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM change_log")
                    .fetch_one(read)
                    .await?;
                Ok(ChangeCursor {
                    seq: seq.unwrap_or(0),
                    xmin: None,
                })
            }
            crate::connect::Pools::Postgres(pool) => {
                let (xmin, seq): (String, Option<i64>) = sqlx::query_as(
                    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text, (SELECT MAX(seq) FROM change_log)",
                )
                .fetch_one(pool)
                .await?;
                Ok(ChangeCursor {
                    seq: seq.unwrap_or(0),
                    xmin: xmin.parse().ok(),
                })
            }
        }
    }

    /// Ids of `entity`'s records changed (created, updated, deleted, restored) after `cursor`, and the
    /// cursor to use next time. Ids may repeat changes already seen; readers reload them idempotently.
    pub async fn record_changes(
        &self,
        app: &str,
        entity: &str,
        cursor: ChangeCursor,
    ) -> Result<(Vec<String>, ChangeCursor), StoreError> {
        let subject = format!("record:{entity}");
        let next = self.change_cursor().await?;
        let rows: Vec<(String, String)> = match (&self.pools, cursor.xmin) {
            (crate::connect::Pools::Postgres(pool), Some(xmin)) => {
                sqlx::query_as(
                    "SELECT subject_id, payload FROM change_log WHERE app_id = $1 AND subject = $2 \
                     AND (seq > $3 OR xid >= $4::text::xid8)",
                )
                .bind(app)
                .bind(&subject)
                .bind(cursor.seq)
                .bind(xmin.to_string())
                .fetch_all(pool)
                .await?
            }
            _ => crate::with_pool!(self, read, |pool| {
                sqlx::query_as(
                    "SELECT subject_id, payload FROM change_log WHERE app_id = $1 AND subject = $2 AND seq > $3",
                )
                .bind(app)
                .bind(&subject)
                .bind(cursor.seq)
                .fetch_all(pool)
                .await?
            }),
        };
        let mut ids = Vec::new();
        for (id, payload) in rows {
            // Group and bulk creates list every id in the payload.
            let listed = serde_json::from_str::<serde_json::Value>(&payload)
                .ok()
                .and_then(|p| p.get("ids").and_then(|v| v.as_array()).cloned());
            match listed {
                Some(list) => ids.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned))),
                None => ids.push(id),
            }
        }
        ids.sort();
        ids.dedup();
        Ok((ids, next))
    }

    /// `(record id, state)` for every state records were ever in on `flow` (current states are in
    /// the records themselves).
    /// Every move of a flow: `(record id, from state, to state)`.
    pub async fn flow_moves(
        &self,
        app: &str,
        flow: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows: Vec<(String, String, String)> = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT record_id, from_state, to_state FROM flow_history \
                 WHERE app_id = $1 AND flow = $2 AND from_state IS NOT NULL",
            )
            .bind(app)
            .bind(flow)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    pub async fn flow_visits(
        &self,
        app: &str,
        flow: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows: Vec<(String, String)> = crate::with_pool!(self, read, |pool| {
            sqlx::query_as(
                "SELECT record_id, to_state FROM flow_history WHERE app_id = $1 AND flow = $2 \
                 UNION SELECT record_id, from_state FROM flow_history \
                 WHERE app_id = $1 AND flow = $2 AND from_state IS NOT NULL",
            )
            .bind(app)
            .bind(flow)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }
}

/// The id that splits `entity`'s records in two halves, when there are at least `at_least` of them
/// and more than one core (`None`: load in one piece). Each half then loads on its own thread and
/// read connection, and the halves are concatenated in id order. (The halves are two read
/// transactions: the column cache re-reads whatever changed after its cursor, taken before the load.)
fn split_point(
    native: &crate::native_read::NativeReads,
    app: &str,
    entity: &str,
    at_least: i64,
) -> Result<Option<String>, StoreError> {
    use rusqlite::OptionalExtension;
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return Ok(None);
    }
    let split = native.with(|db| {
        // Both statements read only the `records_by_entity` index.
        let count: i64 = db.query_row(
            "SELECT COUNT(*) FROM records WHERE app_id = ?1 AND entity = ?2",
            (app, entity),
            |row| row.get(0),
        )?;
        if count < at_least {
            return Ok(None);
        }
        db.query_row(
            "SELECT id FROM records WHERE app_id = ?1 AND entity = ?2 ORDER BY id LIMIT 1 OFFSET ?3",
            (app, entity, count / 2),
            |row| row.get(0),
        )
        .optional()
    });
    // Splitting is only an optimisation: on any trouble, load in one piece.
    Ok(split.unwrap_or_else(|error| {
        tracing::debug!(%error, "column load not split");
        None
    }))
}

/// The statement (without its `ORDER BY`) as two: ids before `split`, and from `split` on.
fn halves(statement: &Sql, split: String) -> (Sql, Sql) {
    let mut first = statement.clone();
    let arg = first.arg(Arg::Text(split.clone()));
    first.push(&format!(" AND r.id < {arg} ORDER BY r.id"));
    let mut second = statement.clone();
    let arg = second.arg(Arg::Text(split));
    second.push(&format!(" AND r.id >= {arg} ORDER BY r.id"));
    (first, second)
}

/// Run a column-load statement (`SELECT r.id, r.data …`) on `db` and build the requested columns from
/// each document in one pass (`document_scan`).
fn scan_documents(
    db: &rusqlite::Connection,
    statement: &Sql,
    requests: &[ColumnRequest],
) -> Result<(Vec<String>, Vec<Builder>), StoreError> {
    let fail = |e: rusqlite::Error| StoreError::Corrupt(format!("loading columns: {e}"));
    let mut prepared = db.prepare(&statement.text).map_err(fail)?;
    for (index, arg) in statement.args.iter().enumerate() {
        let name = format!("${}", index + 1);
        let Some(position) = prepared.parameter_index(&name).map_err(fail)? else {
            continue;
        };
        match arg {
            Arg::Text(t) => prepared.raw_bind_parameter(position, t),
            Arg::OptText(t) => prepared.raw_bind_parameter(position, t),
            Arg::Time(t) => prepared.raw_bind_parameter(position, t.to_rfc3339()),
            Arg::Int(i) => prepared.raw_bind_parameter(position, i),
            Arg::Float(f) => prepared.raw_bind_parameter(position, f),
            Arg::Json(v) => prepared.raw_bind_parameter(position, v.to_string()),
        }
        .map_err(fail)?;
    }
    let paths: Vec<FieldPath> = requests
        .iter()
        .map(|r| FieldPath {
            key: r.uid.clone().into(),
            amount: r.kind == ColumnKind::Money,
        })
        .collect();
    let mut ids = Vec::new();
    let mut builders: Vec<Builder> = requests.iter().map(|r| Builder::new(r.kind)).collect();
    let mut spare = Vec::with_capacity(paths.len());
    let mut rows = prepared.raw_query();
    while let Some(row) = rows.next().map_err(fail)? {
        ids.push(row.get::<_, String>(0).map_err(fail)?);
        let document = row
            .get_ref(1)
            .map_err(fail)?
            .as_bytes()
            .map_err(|e| StoreError::Corrupt(format!("loading columns: {e}")))?;
        let mut values = recycle(std::mem::take(&mut spare));
        extract(document, &paths, &mut values);
        for (builder, value) in builders.iter_mut().zip(&values) {
            builder.push(match value {
                Extracted::Null => Cell::Null,
                Extracted::Int(i) => Cell::Int(*i),
                Extracted::Float(f) => Cell::Float(*f),
                Extracted::Text(t) => Cell::Text(t),
            });
        }
        spare = recycle(values);
    }
    Ok((ids, builders))
}

/// An emptied vector of extracted values, its allocation kept for the next row's borrows.
fn recycle<'b>(mut values: Vec<Extracted<'_>>) -> Vec<Extracted<'b>> {
    values.clear();
    values.into_iter().map(|_| Extracted::Null).collect()
}
