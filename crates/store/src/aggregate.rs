//! Grouping in the database — the report engine's scale path for data that does not fit one machine's
//! memory. PostgreSQL runs the same grouping the engine runs on columns (calendar buckets with
//! `date_trunc`, numeric bins, count / distinct / sum / avg / min / max / `percentile_cont`) over the
//! same filtered rows (the filter goes through the records API's SQL), and returns one row per group.
//! Field paths, bucket units and percentiles are bound parameters like every other value.

use trellis_model::CheckedFilter;

use crate::query::{Arg, Sql, push_filter};
use crate::{Backend, ColumnKind, Store, StoreError};

/// How a group key is computed from a field.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupKey {
    /// The field's value.
    Value { uid: String, kind: ColumnKind },
    /// The first day of the field's calendar bucket (`day`, `week`, `month`, `quarter`, `year`), as
    /// days since 1970-01-01.
    Bucket {
        uid: String,
        kind: ColumnKind,
        unit: &'static str,
    },
    /// `floor(value / width)`.
    Bin { uid: String, width: f64 },
}

/// Aggregations the database computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GroupOp {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    Percentile(f64),
}

/// One aggregated value per group; `field` absent only for `Count` (every row).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupMeasure {
    pub op: GroupOp,
    pub field: Option<(String, ColumnKind)>,
}

/// One group: its keys as text (`None` for a missing value) and its values (money in ten-thousandths,
/// dates in days, datetimes in milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub keys: Vec<Option<String>>,
    pub values: Vec<Option<f64>>,
}

/// A field of `r` as a number in the engine's units.
fn number(sql: &mut Sql, uid: &str, kind: ColumnKind) -> String {
    let key = sql.arg(Arg::Text(uid.to_owned()));
    match kind {
        ColumnKind::Money => format!("((r.data -> {key} ->> 'amount')::numeric * 10000)"),
        ColumnKind::Date => format!("((r.data ->> {key})::date - DATE '1970-01-01')"),
        ColumnKind::DateTime => {
            format!("(extract(epoch FROM (r.data ->> {key})::timestamptz) * 1000)")
        }
        _ => format!("(r.data ->> {key})::float8"),
    }
}

impl Store {
    /// Group the live records of `entity` matching `filter` (PostgreSQL only).
    pub async fn aggregate(
        &self,
        app: &str,
        entity: &str,
        filter: &CheckedFilter,
        keys: &[GroupKey],
        measures: &[GroupMeasure],
    ) -> Result<Vec<GroupRow>, StoreError> {
        let crate::connect::Pools::Postgres(pool) = &self.pools else {
            return Err(StoreError::Unsupported(
                "grouping in the database runs on PostgreSQL; SQLite reports group in memory"
                    .into(),
            ));
        };
        let mut sql = Sql::default();
        let mut select = Vec::new();
        for key in keys {
            let expression = match key {
                GroupKey::Value { uid, .. } => {
                    let k = sql.arg(Arg::Text(uid.clone()));
                    format!("(r.data ->> {k})")
                }
                GroupKey::Bucket { uid, kind, unit } => {
                    let k = sql.arg(Arg::Text(uid.clone()));
                    let unit = sql.arg(Arg::Text((*unit).to_owned()));
                    let day = if *kind == ColumnKind::DateTime {
                        format!("((r.data ->> {k})::timestamptz AT TIME ZONE 'UTC')")
                    } else {
                        format!("(r.data ->> {k})::date::timestamp")
                    };
                    format!("((date_trunc({unit}, {day})::date - DATE '1970-01-01')::text)")
                }
                GroupKey::Bin { uid, width } => {
                    let k = sql.arg(Arg::Text(uid.clone()));
                    let w = sql.arg(Arg::Float(*width));
                    format!("(floor((r.data ->> {k})::float8 / {w})::bigint::text)")
                }
            };
            select.push(expression);
        }
        for measure in measures {
            let expression = match (measure.op, &measure.field) {
                (GroupOp::Count, None) => "count(*)::float8".to_owned(),
                (_, None) => "NULL::float8".to_owned(),
                (GroupOp::Count, Some((uid, _))) => {
                    let k = sql.arg(Arg::Text(uid.clone()));
                    format!("count(r.data ->> {k})::float8")
                }
                (GroupOp::CountDistinct, Some((uid, _))) => {
                    let k = sql.arg(Arg::Text(uid.clone()));
                    format!("count(DISTINCT r.data ->> {k})::float8")
                }
                (op, Some((uid, kind))) => {
                    let value = number(&mut sql, uid, *kind);
                    match op {
                        GroupOp::Sum => format!("sum({value})::float8"),
                        GroupOp::Avg => format!("avg({value})::float8"),
                        GroupOp::Min => format!("min({value})::float8"),
                        GroupOp::Max => format!("max({value})::float8"),
                        GroupOp::Percentile(p) => {
                            let p = sql.arg(Arg::Float(p));
                            format!(
                                "(percentile_cont({p}) WITHIN GROUP (ORDER BY {value}))::float8"
                            )
                        }
                        GroupOp::Count | GroupOp::CountDistinct => unreachable!("handled above"),
                    }
                }
            };
            select.push(expression);
        }
        let app_arg = sql.arg(Arg::Text(app.to_owned()));
        let entity_arg = sql.arg(Arg::Text(entity.to_owned()));
        sql.text = format!(
            "SELECT {} FROM records r WHERE r.app_id = {app_arg} AND r.entity = {entity_arg} \
             AND r.deleted_at IS NULL AND ",
            if select.is_empty() {
                "count(*)::float8".to_owned()
            } else {
                select.join(", ")
            }
        );
        push_filter(&mut sql, Backend::Postgres, app, filter);
        if !keys.is_empty() {
            let positions: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
            sql.push(&format!(" GROUP BY {}", positions.join(", ")));
        }
        let Sql { text, args } = sql;
        let rows = crate::records::bind_args!(sqlx::query(sqlx::AssertSqlSafe(text)), &args)
            .fetch_all(pool)
            .await?;
        use sqlx::Row;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut group = GroupRow {
                keys: Vec::with_capacity(keys.len()),
                values: Vec::with_capacity(measures.len()),
            };
            for index in 0..keys.len() {
                group.keys.push(row.try_get::<Option<String>, _>(index)?);
            }
            for index in 0..measures.len() {
                group
                    .values
                    .push(row.try_get::<Option<f64>, _>(keys.len() + index)?);
            }
            out.push(group);
        }
        Ok(out)
    }
}
