//! Evaluating a checked filter against one record in memory: the write-row check of creates and
//! updates (the record as it would be stored must stay inside the rows the user may write). Lists use
//! the same filters compiled to SQL by the store; the two agree on the operators' meaning.

use serde_json::{Map, Value};
use trellis_model::{CheckedFilter, FieldPath, FilterLeaf, FilterOp};

/// Values of a related record's field: `related(relation_uid, field_uid)` (several for to-many).
pub type RelatedValues<'a> = &'a dyn Fn(&str, &str) -> Vec<Value>;

/// Whether `data` (a record's stored document, keyed by field uid) matches `filter`.
pub fn matches(
    filter: &CheckedFilter,
    data: &Map<String, Value>,
    related: RelatedValues<'_>,
) -> bool {
    match filter {
        CheckedFilter::All => true,
        CheckedFilter::And(items) => items.iter().all(|f| matches(f, data, related)),
        CheckedFilter::Or(items) => items.iter().any(|f| matches(f, data, related)),
        CheckedFilter::Not(inner) => !matches(inner, data, related),
        CheckedFilter::Leaf(leaf) => match &leaf.path {
            FieldPath::Own { uid } => leaf_matches(leaf, data.get(uid).unwrap_or(&Value::Null)),
            // A stored document does not carry its id; rows chosen by id are never writable rows.
            FieldPath::RecordId => false,
            FieldPath::Related {
                relation_uid,
                field_uid,
                ..
            } => {
                let values = related(relation_uid, field_uid);
                if values.is_empty() {
                    leaf_matches(leaf, &Value::Null)
                } else {
                    values.iter().any(|v| leaf_matches(leaf, v))
                }
            }
        },
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (number(a), number(b)) {
        (Some(x), Some(y)) if !matches!((a, b), (Value::String(_), Value::String(_))) => {
            x.partial_cmp(&y)
        }
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    a == b || compare(a, b) == Some(std::cmp::Ordering::Equal)
}

fn leaf_matches(leaf: &FilterLeaf, value: &Value) -> bool {
    use std::cmp::Ordering as O;
    let first = leaf.values.first().unwrap_or(&Value::Null);
    if leaf.op == FilterOp::IsEmpty {
        return is_empty(value) == leaf.empty;
    }
    if value.is_null() {
        // SQL semantics: comparisons with a missing value are not true (ne included).
        return false;
    }
    let lower = |v: &Value| v.as_str().map(str::to_lowercase);
    match leaf.op {
        FilterOp::Eq => equal(value, first),
        FilterOp::Ne => !equal(value, first),
        FilterOp::Lt => compare(value, first) == Some(O::Less),
        FilterOp::Lte => matches!(compare(value, first), Some(O::Less | O::Equal)),
        FilterOp::Gt => compare(value, first) == Some(O::Greater),
        FilterOp::Gte => matches!(compare(value, first), Some(O::Greater | O::Equal)),
        FilterOp::In => leaf.values.iter().any(|v| equal(value, v)),
        FilterOp::Between => {
            let high = leaf.values.get(1).unwrap_or(&Value::Null);
            matches!(compare(value, first), Some(O::Greater | O::Equal))
                && matches!(compare(value, high), Some(O::Less | O::Equal))
        }
        FilterOp::Contains => match value {
            Value::Array(items) => items.iter().any(|item| equal(item, first)),
            _ => match (lower(value), lower(first)) {
                (Some(text), Some(part)) => text.contains(&part),
                _ => false,
            },
        },
        FilterOp::StartsWith => match (lower(value), lower(first)) {
            (Some(text), Some(prefix)) => text.starts_with(&prefix),
            _ => false,
        },
        FilterOp::IsEmpty => unreachable!("handled above"),
    }
}
