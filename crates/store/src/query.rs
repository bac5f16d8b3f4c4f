//! Dynamic SQL for record lists: a checked filter tree, sort keys and a keyset cursor become one
//! statement. Only fixed SQL text and `$n` placeholders are ever concatenated; every value — including
//! the JSON path of a field (built from a validated uid) — is a bound parameter.

use serde_json::Value;
use trellis_model::{CheckedFilter, FieldPath, FilterLeaf, FilterOp};

use crate::Backend;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Time(chrono::DateTime<chrono::Utc>),
    Int(i64),
    Float(f64),
    Json(Value),
}

/// SQL text with its arguments, numbered `$1…` in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Add an argument and return its placeholder.
    pub fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }
}

/// One sort key: a field uid (or `None` for creation order) and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field_uid: String,
    pub descending: bool,
}

/// Dialect-specific fragments.
struct Dialect {
    backend: Backend,
}

impl Dialect {
    /// The JSON value of field `uid` of the record aliased `alias`, comparable with [`Self::value`].
    fn field(&self, sql: &mut Sql, alias: &str, uid: &str) -> String {
        match self.backend {
            Backend::Sqlite => {
                let path = sql.arg(Arg::Text(format!("$.\"{uid}\"")));
                format!("json_extract({alias}.data, {path})")
            }
            Backend::Postgres => {
                let key = sql.arg(Arg::Text(uid.to_owned()));
                format!("({alias}.data -> {key})")
            }
        }
    }

    /// The field as plain text (for LIKE and for relation ids).
    fn field_text(&self, sql: &mut Sql, alias: &str, uid: &str) -> String {
        match self.backend {
            Backend::Sqlite => self.field(sql, alias, uid),
            Backend::Postgres => {
                let key = sql.arg(Arg::Text(uid.to_owned()));
                format!("({alias}.data ->> {key})")
            }
        }
    }

    /// A bound value comparable with [`Self::field`].
    fn value(&self, sql: &mut Sql, value: &Value) -> String {
        match self.backend {
            Backend::Sqlite => {
                let arg = match value {
                    Value::Bool(b) => Arg::Int(i64::from(*b)),
                    Value::Number(n) => n
                        .as_i64()
                        .map(Arg::Int)
                        .unwrap_or_else(|| Arg::Float(n.as_f64().unwrap_or(0.0))),
                    Value::String(s) => Arg::Text(s.clone()),
                    other => Arg::Text(other.to_string()),
                };
                sql.arg(arg)
            }
            Backend::Postgres => sql.arg(Arg::Json(value.clone())),
        }
    }

    fn not_equal(&self, left: &str, right: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("{left} IS NOT {right}"),
            Backend::Postgres => format!("{left} IS DISTINCT FROM {right}"),
        }
    }

    fn like(&self, left: &str, pattern: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("{left} LIKE {pattern} ESCAPE '\\'"),
            Backend::Postgres => format!("{left} ILIKE {pattern} ESCAPE '\\'"),
        }
    }
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Append `filter` over alias `r` as a boolean SQL expression.
pub(crate) fn push_filter(sql: &mut Sql, backend: Backend, app_id: &str, filter: &CheckedFilter) {
    let dialect = Dialect { backend };
    let expression = filter_expression(sql, &dialect, app_id, filter);
    sql.push(&expression);
}

fn filter_expression(
    sql: &mut Sql,
    dialect: &Dialect,
    app_id: &str,
    filter: &CheckedFilter,
) -> String {
    match filter {
        CheckedFilter::All => "(1 = 1)".into(),
        CheckedFilter::And(items) if items.is_empty() => "(1 = 1)".into(),
        CheckedFilter::Or(items) if items.is_empty() => "(1 = 0)".into(),
        CheckedFilter::And(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|f| filter_expression(sql, dialect, app_id, f))
                .collect();
            format!("({})", parts.join(" AND "))
        }
        CheckedFilter::Or(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|f| filter_expression(sql, dialect, app_id, f))
                .collect();
            format!("({})", parts.join(" OR "))
        }
        CheckedFilter::Not(inner) => {
            format!("(NOT {})", filter_expression(sql, dialect, app_id, inner))
        }
        CheckedFilter::Leaf(leaf) => match &leaf.path {
            FieldPath::RecordId => record_id_expression(sql, leaf),
            FieldPath::Own { uid } => format!(
                "COALESCE({}, FALSE)",
                leaf_expression(sql, dialect, "r", uid, leaf)
            ),
            FieldPath::Related {
                relation_uid,
                many,
                target_entity_uid,
                field_uid,
            } => {
                let app = sql.arg(Arg::Text(app_id.to_owned()));
                let entity = sql.arg(Arg::Text(target_entity_uid.clone()));
                let link = if *many {
                    match dialect.backend {
                        Backend::Sqlite => {
                            let path = sql.arg(Arg::Text(format!("$.\"{relation_uid}\"")));
                            format!("t.id IN (SELECT value FROM json_each(r.data, {path}))")
                        }
                        Backend::Postgres => {
                            let key = sql.arg(Arg::Text(relation_uid.clone()));
                            format!("COALESCE((r.data -> {key}) ? t.id, FALSE)")
                        }
                    }
                } else {
                    format!("t.id = {}", dialect.field_text(sql, "r", relation_uid))
                };
                let condition = leaf_expression(sql, dialect, "t", field_uid, leaf);
                format!(
                    "EXISTS (SELECT 1 FROM records t WHERE t.app_id = {app} AND t.entity = {entity} \
                     AND t.deleted_at IS NULL AND {link} AND COALESCE({condition}, FALSE))"
                )
            }
        },
    }
}

/// A condition on the record's id column (`r.id`), compared as text.
fn record_id_expression(sql: &mut Sql, leaf: &FilterLeaf) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match leaf.op {
        FilterOp::IsEmpty => if leaf.empty { "(1 = 0)" } else { "(1 = 1)" }.into(),
        FilterOp::In => {
            if leaf.values.is_empty() {
                return "(1 = 0)".into();
            }
            let values: Vec<String> = leaf
                .values
                .iter()
                .map(|v| sql.arg(Arg::Text(text(v))))
                .collect();
            format!("(r.id IN ({}))", values.join(", "))
        }
        FilterOp::Between => {
            let low = sql.arg(Arg::Text(text(&leaf.values[0])));
            let high = sql.arg(Arg::Text(text(&leaf.values[1])));
            format!("(r.id >= {low} AND r.id <= {high})")
        }
        FilterOp::Contains | FilterOp::StartsWith => {
            let needle = escape_like(&text(&leaf.values[0]));
            let pattern = if leaf.op == FilterOp::Contains {
                format!("%{needle}%")
            } else {
                format!("{needle}%")
            };
            let pattern = sql.arg(Arg::Text(pattern));
            format!("(r.id LIKE {pattern} ESCAPE '\\')")
        }
        op => {
            let operator = match op {
                FilterOp::Eq => "=",
                FilterOp::Ne => "<>",
                FilterOp::Lt => "<",
                FilterOp::Lte => "<=",
                FilterOp::Gt => ">",
                _ => ">=",
            };
            let value = sql.arg(Arg::Text(text(&leaf.values[0])));
            format!("(r.id {operator} {value})")
        }
    }
}

fn leaf_expression(
    sql: &mut Sql,
    dialect: &Dialect,
    alias: &str,
    uid: &str,
    leaf: &FilterLeaf,
) -> String {
    let array_kind = matches!(
        leaf.kind,
        trellis_model::FieldKind::MultiSelect
            | trellis_model::FieldKind::Tags
            | trellis_model::FieldKind::RelationMany
    );
    match leaf.op {
        FilterOp::IsEmpty => {
            let empty = match dialect.backend {
                Backend::Sqlite => {
                    let field = dialect.field(sql, alias, uid);
                    format!("(COALESCE({field}, '') IN ('', '[]'))")
                }
                Backend::Postgres => {
                    let field = dialect.field(sql, alias, uid);
                    format!(
                        "(COALESCE({field}, 'null'::jsonb) IN ('null'::jsonb, '\"\"'::jsonb, '[]'::jsonb))"
                    )
                }
            };
            if leaf.empty {
                empty
            } else {
                format!("(NOT {empty})")
            }
        }
        FilterOp::Contains if array_kind => {
            let item = &leaf.values[0];
            match dialect.backend {
                Backend::Sqlite => {
                    let path = sql.arg(Arg::Text(format!("$.\"{uid}\"")));
                    let value = dialect.value(sql, item);
                    format!(
                        "EXISTS (SELECT 1 FROM json_each({alias}.data, {path}) WHERE json_each.value = {value})"
                    )
                }
                Backend::Postgres => {
                    let field = dialect.field(sql, alias, uid);
                    let value = sql.arg(Arg::Json(Value::Array(vec![item.clone()])));
                    format!("({field} @> {value})")
                }
            }
        }
        FilterOp::Contains | FilterOp::StartsWith => {
            let text = leaf.values[0].as_str().unwrap_or_default();
            let pattern = if leaf.op == FilterOp::Contains {
                format!("%{}%", escape_like(text))
            } else {
                format!("{}%", escape_like(text))
            };
            let field = dialect.field_text(sql, alias, uid);
            let pattern = sql.arg(Arg::Text(pattern));
            dialect.like(&field, &pattern)
        }
        FilterOp::In => {
            if leaf.values.is_empty() {
                return "(1 = 0)".into();
            }
            let field = dialect.field(sql, alias, uid);
            let values: Vec<String> = leaf.values.iter().map(|v| dialect.value(sql, v)).collect();
            format!("({field} IN ({}))", values.join(", "))
        }
        FilterOp::Between => {
            let field = dialect.field(sql, alias, uid);
            let low = dialect.value(sql, &leaf.values[0]);
            let high = dialect.value(sql, &leaf.values[1]);
            format!("({field} >= {low} AND {field} <= {high})")
        }
        FilterOp::Ne => {
            let field = dialect.field(sql, alias, uid);
            let value = dialect.value(sql, &leaf.values[0]);
            format!("({})", dialect.not_equal(&field, &value))
        }
        FilterOp::Eq | FilterOp::Lt | FilterOp::Lte | FilterOp::Gt | FilterOp::Gte => {
            let operator = match leaf.op {
                FilterOp::Eq => "=",
                FilterOp::Lt => "<",
                FilterOp::Lte => "<=",
                FilterOp::Gt => ">",
                _ => ">=",
            };
            let field = dialect.field(sql, alias, uid);
            let value = dialect.value(sql, &leaf.values[0]);
            format!("({field} {operator} {value})")
        }
    }
}

/// Position after which the next page starts: the last row's sort values and id.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub values: Vec<Value>,
    pub id: String,
}

/// `ORDER BY` for `sort` (nulls last in both directions, then id ascending).
pub(crate) fn push_order(sql: &mut Sql, backend: Backend, sort: &[SortKey]) {
    let dialect = Dialect { backend };
    let mut parts = Vec::new();
    for key in sort {
        let field = dialect.field(sql, "r", &key.field_uid);
        let direction = if key.descending { "DESC" } else { "ASC" };
        parts.push(format!("({field} IS NULL) ASC, {field} {direction}"));
    }
    parts.push("r.id ASC".into());
    sql.push(" ORDER BY ").push(&parts.join(", "));
}

/// The keyset condition "comes after `cursor` in the order of `sort`".
pub(crate) fn push_after(sql: &mut Sql, backend: Backend, sort: &[SortKey], cursor: &Cursor) {
    let dialect = Dialect { backend };
    let mut alternatives = Vec::new();
    let mut equal_so_far: Vec<String> = Vec::new();
    for (key, value) in sort.iter().zip(&cursor.values) {
        let field = dialect.field(sql, "r", &key.field_uid);
        if value.is_null() {
            // Nulls sort last: nothing but nulls comes after a null; continue on the next key.
            equal_so_far.push(format!("({field} IS NULL)"));
            continue;
        }
        let bound = dialect.value(sql, value);
        let operator = if key.descending { "<" } else { ">" };
        let after = format!("(({field} {operator} {bound}) OR {field} IS NULL)");
        alternatives.push(conjunction(&equal_so_far, &after));
        equal_so_far.push(format!("({field} = {bound})"));
    }
    let id = sql.arg(Arg::Text(cursor.id.clone()));
    alternatives.push(conjunction(&equal_so_far, &format!("(r.id > {id})")));
    sql.push(" AND (")
        .push(&alternatives.join(" OR "))
        .push(")");
}

fn conjunction(prefix: &[String], last: &str) -> String {
    let mut parts = prefix.to_vec();
    parts.push(last.to_owned());
    format!("({})", parts.join(" AND "))
}

/// The `tsquery` text for one normalized search word, as FTS5 reads `"word"*` (or `"word"` for
/// Chinese): its parts between punctuation and spaces, as a phrase (`<->`), the last part a prefix
/// (`:*`) unless the word is Chinese. Parts are letters and digits only, so quoting them is safe.
/// `None` when the word is only punctuation.
fn word_tsquery(word: &str) -> Option<String> {
    let parts: Vec<&str> = trellis_model::search::parts(word).collect();
    let last = parts.len().checked_sub(1)?;
    let prefix = !word.chars().any(trellis_model::search::is_cjk);
    let lexemes: Vec<String> = parts
        .iter()
        .enumerate()
        .map(|(i, part)| {
            if prefix && i == last {
                format!("'{part}':*")
            } else {
                format!("'{part}'")
            }
        })
        .collect();
    Some(lexemes.join(" <-> "))
}

/// Append the full-text condition for the search words of `q` (all must match).
/// The query is normalized like the indexed text (`trellis_model::search::normalize`): a Chinese
/// word becomes a phrase of characters, other words match as prefixes (a word with punctuation,
/// such as an e-mail address, as a phrase of its parts whose last part is a prefix). SQLite: one
/// FTS5 `MATCH`. PostgreSQL: per word, the same phrase as a `tsquery` over the search vector, which
/// the GIN index serves (migration 0025 builds the vector from the text split as FTS5 splits it).
pub(crate) fn push_search(sql: &mut Sql, backend: Backend, q: &str) {
    let words: Vec<String> = q
        .split_whitespace()
        .map(trellis_model::search::normalize)
        .filter(|w| !w.is_empty())
        .take(16)
        .collect();
    if words.is_empty() {
        return;
    }
    match backend {
        Backend::Sqlite => {
            let terms: Vec<String> = words
                .iter()
                .map(|word| {
                    let phrase = format!("\"{}\"", word.replace('"', "\"\""));
                    if word.chars().any(trellis_model::search::is_cjk) {
                        phrase
                    } else {
                        format!("{phrase}*")
                    }
                })
                .collect();
            let arg = sql.arg(Arg::Text(terms.join(" ")));
            sql.push(&format!(
                " AND r.rowid IN (SELECT rowid FROM records_fts WHERE records_fts MATCH {arg})"
            ));
        }
        Backend::Postgres => {
            for word in &words {
                match word_tsquery(word) {
                    Some(query) => {
                        let query = sql.arg(Arg::Text(query));
                        sql.push(&format!(
                            " AND r.search_vector @@ to_tsquery('simple', {query})"
                        ));
                    }
                    // Only punctuation: no word to find, as in FTS5.
                    None => {
                        sql.push(" AND FALSE");
                    }
                }
            }
        }
    }
}
