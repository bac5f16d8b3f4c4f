//! Evaluating a checked filter tree over typed columns in memory, with the records API's SQL semantics
//! (a comparison with a missing value is false; `ne` is true against a missing value; `contains` and
//! `starts_with` ignore case; `is_empty` holds for missing values and empty text). Used by the runtime's
//! column cache so repeated reports filter without going back to the database. Filters this cannot
//! evaluate (paths through relations, list fields) are reported by [`columns_needed`] returning `None`,
//! and the caller falls back to SQL.

use std::cmp::Ordering;

use serde_json::Value;
use trellis_model::{CheckedFilter, FieldPath, FilterLeaf, FilterOp};

use crate::buckets::days_of;
use crate::data::{ColumnData, ColumnType, MONEY_SCALE, parse_money};

/// The `(field uid, column type)` a filter reads, or `None` when it cannot be evaluated in memory.
pub fn columns_needed(filter: &CheckedFilter) -> Option<Vec<(String, ColumnType)>> {
    let mut needed = Vec::new();
    collect(filter, &mut needed)?;
    needed.sort_by(|a, b| a.0.cmp(&b.0));
    needed.dedup();
    Some(needed)
}

fn collect(filter: &CheckedFilter, needed: &mut Vec<(String, ColumnType)>) -> Option<()> {
    match filter {
        CheckedFilter::All => Some(()),
        CheckedFilter::And(items) | CheckedFilter::Or(items) => {
            items.iter().try_for_each(|f| collect(f, needed))
        }
        CheckedFilter::Not(inner) => collect(inner, needed),
        CheckedFilter::Leaf(leaf) => {
            // Relation paths and record ids are left to SQL.
            let FieldPath::Own { uid } = &leaf.path else {
                return None;
            };
            let column = ColumnType::of(leaf.kind)?;
            if column == ColumnType::Money && leaf.op != FilterOp::IsEmpty {
                return None;
            }
            needed.push((uid.clone(), column));
            Some(())
        }
    }
}

/// Which of `len` rows match `filter`; `column(uid)` gives the column of a field uid named by
/// [`columns_needed`].
pub fn mask<'a>(
    filter: &CheckedFilter,
    column: &dyn Fn(&str) -> Option<&'a ColumnData>,
    len: usize,
) -> Vec<bool> {
    match filter {
        CheckedFilter::All => vec![true; len],
        CheckedFilter::And(items) => {
            let mut result = vec![true; len];
            for item in items {
                let other = mask(item, column, len);
                result.iter_mut().zip(other).for_each(|(r, o)| *r &= o);
            }
            result
        }
        CheckedFilter::Or(items) => {
            let mut result = vec![false; len];
            for item in items {
                let other = mask(item, column, len);
                result.iter_mut().zip(other).for_each(|(r, o)| *r |= o);
            }
            result
        }
        CheckedFilter::Not(inner) => mask(inner, column, len).into_iter().map(|m| !m).collect(),
        CheckedFilter::Leaf(leaf) => {
            let FieldPath::Own { uid } = &leaf.path else {
                return vec![false; len];
            };
            match column(uid) {
                Some(data) => leaf_mask(leaf, data),
                None => vec![false; len],
            }
        }
    }
}

/// A filter value in a column's terms.
#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Number(f64),
    Text(String),
    Bool(bool),
    /// A value that fits no row (e.g. an unparsable date): comparisons are false.
    Never,
}

fn operand(value: &Value, column: ColumnType) -> Operand {
    match (column, value) {
        (ColumnType::Int | ColumnType::Float, Value::Number(n)) => {
            n.as_f64().map_or(Operand::Never, Operand::Number)
        }
        (ColumnType::Int | ColumnType::Float, Value::String(s)) => {
            s.trim().parse().map_or(Operand::Never, Operand::Number)
        }
        (ColumnType::Money, Value::String(s)) => parse_money(s).map_or(Operand::Never, |m| {
            Operand::Number(m as f64 / MONEY_SCALE as f64)
        }),
        (ColumnType::Bool, Value::Bool(b)) => Operand::Bool(*b),
        (ColumnType::Text, Value::String(s)) => Operand::Text(s.clone()),
        (ColumnType::Text, Value::Number(n)) => Operand::Text(n.to_string()),
        (ColumnType::Date, Value::String(s)) => s
            .get(..10)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map_or(Operand::Never, |d| Operand::Number(days_of(d).into())),
        (ColumnType::DateTime, Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .ok()
            .or_else(|| {
                chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d")
                    .ok()
                    .map(|d| i64::from(days_of(d)) * 86_400_000)
            })
            .map_or(Operand::Never, |ms| Operand::Number(ms as f64)),
        _ => Operand::Never,
    }
}

/// A cell in the same terms.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Missing,
    Number(f64),
    Text(&'a str),
    Bool(bool),
}

fn compare(cell: Cell<'_>, operand: &Operand) -> Option<Ordering> {
    match (cell, operand) {
        (Cell::Number(a), Operand::Number(b)) => a.partial_cmp(b),
        (Cell::Text(a), Operand::Text(b)) => Some(a.cmp(b.as_str())),
        (Cell::Bool(a), Operand::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn holds(cell: Cell<'_>, leaf: &FilterLeaf, operands: &[Operand]) -> bool {
    let first = operands.first();
    match leaf.op {
        FilterOp::IsEmpty => {
            let empty = matches!(cell, Cell::Missing) || cell == Cell::Text("");
            empty == leaf.empty
        }
        FilterOp::Eq => first.is_some_and(|o| compare(cell, o) == Some(Ordering::Equal)),
        // `IS NOT` / `IS DISTINCT FROM`: a missing value differs from any value.
        FilterOp::Ne => first.is_none_or(|o| compare(cell, o) != Some(Ordering::Equal)),
        FilterOp::Lt => first.is_some_and(|o| compare(cell, o) == Some(Ordering::Less)),
        FilterOp::Lte => first
            .is_some_and(|o| matches!(compare(cell, o), Some(Ordering::Less | Ordering::Equal))),
        FilterOp::Gt => first.is_some_and(|o| compare(cell, o) == Some(Ordering::Greater)),
        FilterOp::Gte => first
            .is_some_and(|o| matches!(compare(cell, o), Some(Ordering::Greater | Ordering::Equal))),
        FilterOp::In => operands
            .iter()
            .any(|o| compare(cell, o) == Some(Ordering::Equal)),
        FilterOp::Between => match (operands.first(), operands.get(1)) {
            (Some(low), Some(high)) => {
                matches!(
                    compare(cell, low),
                    Some(Ordering::Greater | Ordering::Equal)
                ) && matches!(compare(cell, high), Some(Ordering::Less | Ordering::Equal))
            }
            _ => false,
        },
        FilterOp::Contains | FilterOp::StartsWith => match (cell, first) {
            (Cell::Text(text), Some(Operand::Text(needle))) => {
                let (text, needle) = (text.to_lowercase(), needle.to_lowercase());
                if leaf.op == FilterOp::Contains {
                    text.contains(&needle)
                } else {
                    text.starts_with(&needle)
                }
            }
            _ => false,
        },
    }
}

fn leaf_mask(leaf: &FilterLeaf, data: &ColumnData) -> Vec<bool> {
    let column = data.column_type();
    let operands: Vec<Operand> = leaf.values.iter().map(|v| operand(v, column)).collect();
    let test = |cell: Cell<'_>| holds(cell, leaf, &operands);
    match data {
        ColumnData::Int(v) | ColumnData::DateTime(v) => v
            .iter()
            .map(|x| test(x.map_or(Cell::Missing, |x| Cell::Number(x as f64))))
            .collect(),
        ColumnData::Money(v) => v
            .iter()
            .map(|x| {
                test(x.map_or(Cell::Missing, |x| {
                    Cell::Number(x as f64 / MONEY_SCALE as f64)
                }))
            })
            .collect(),
        ColumnData::Float(v) => v
            .iter()
            .map(|x| test(x.map_or(Cell::Missing, Cell::Number)))
            .collect(),
        ColumnData::Bool(v) => v
            .iter()
            .map(|x| test(x.map_or(Cell::Missing, Cell::Bool)))
            .collect(),
        ColumnData::Date(v) => v
            .iter()
            .map(|x| test(x.map_or(Cell::Missing, |d| Cell::Number(d.into()))))
            .collect(),
        ColumnData::Text(v) => v
            .iter()
            .map(|x| test(x.as_deref().map_or(Cell::Missing, Cell::Text)))
            .collect(),
        ColumnData::Dict { codes, values } => {
            // Decide once per distinct value.
            let per_value: Vec<bool> = values.iter().map(|v| test(Cell::Text(v))).collect();
            let missing = test(Cell::Missing);
            codes
                .iter()
                .map(|c| c.map_or(missing, |c| per_value[c as usize]))
                .collect()
        }
    }
}
