//! Checking a client's filter tree against an entity: fields exist, operators fit the field kinds,
//! values are normalized, variables such as `$user` are substituted. Every problem has a pointer into
//! the filter JSON.

use std::collections::BTreeMap;

use serde_json::Value;
use trellis_model::{
    CheckedFilter, EntityDefinition, FieldKind, FieldPath, FilterLeaf, FilterOp, Identifier,
};

use crate::messages::FieldIssue;

/// Looks up the value of a filter variable such as `$user`.
pub type VariableResolver<'a> = &'a dyn Fn(&str) -> Option<Value>;

/// Check `raw` (pointer base `base`) against `entity`; `entities` holds the app's other entities for
/// `relation.field` paths.
pub fn check_filter(
    entities: &BTreeMap<Identifier, EntityDefinition>,
    entity: &EntityDefinition,
    raw: &Value,
    base: &str,
    variables: VariableResolver<'_>,
) -> Result<CheckedFilter, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let checked = check_node(entities, entity, raw, base, variables, &mut issues, 0);
    if issues.is_empty() {
        Ok(checked)
    } else {
        Err(issues)
    }
}

fn issue(
    issues: &mut Vec<FieldIssue>,
    pointer: String,
    code: &'static str,
    message: String,
) -> CheckedFilter {
    issues.push(FieldIssue {
        pointer,
        code,
        message,
    });
    CheckedFilter::All
}

fn check_node(
    entities: &BTreeMap<Identifier, EntityDefinition>,
    entity: &EntityDefinition,
    raw: &Value,
    at: &str,
    variables: VariableResolver<'_>,
    issues: &mut Vec<FieldIssue>,
    depth: usize,
) -> CheckedFilter {
    if depth > 32 {
        return issue(
            issues,
            at.into(),
            "too_deep",
            "the filter is nested more than 32 levels".into(),
        );
    }
    let Some(object) = raw.as_object() else {
        return issue(issues, at.into(), "invalid_filter", "a filter is an object: {\"field\", \"op\", \"value\"} or {\"and\"|\"or\": [...]} or {\"not\": …}".into());
    };
    let mut children = |key: &str, list: &Value| -> Vec<CheckedFilter> {
        match list.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    check_node(
                        entities,
                        entity,
                        item,
                        &format!("{at}/{key}/{i}"),
                        variables,
                        issues,
                        depth + 1,
                    )
                })
                .collect(),
            None => {
                issue(
                    issues,
                    format!("{at}/{key}"),
                    "invalid_filter",
                    format!("\"{key}\" takes an array of filters"),
                );
                Vec::new()
            }
        }
    };
    if let Some(list) = object.get("and") {
        return CheckedFilter::And(children("and", list));
    }
    if let Some(list) = object.get("or") {
        return CheckedFilter::Or(children("or", list));
    }
    if let Some(inner) = object.get("not") {
        return CheckedFilter::Not(Box::new(check_node(
            entities,
            entity,
            inner,
            &format!("{at}/not"),
            variables,
            issues,
            depth + 1,
        )));
    }
    check_leaf(entities, entity, object, at, variables, issues)
}

fn check_leaf(
    entities: &BTreeMap<Identifier, EntityDefinition>,
    entity: &EntityDefinition,
    object: &serde_json::Map<String, Value>,
    at: &str,
    variables: VariableResolver<'_>,
    issues: &mut Vec<FieldIssue>,
) -> CheckedFilter {
    let Some(field_name) = object.get("field").and_then(Value::as_str) else {
        return issue(
            issues,
            format!("{at}/field"),
            "invalid_filter",
            "a filter leaf needs \"field\"".into(),
        );
    };
    let op: FilterOp = match object
        .get("op")
        .map(|op| serde_json::from_value(op.clone()))
    {
        Some(Ok(op)) => op,
        _ => {
            return issue(
                issues,
                format!("{at}/op"),
                "unknown_operator",
                "\"op\" must be one of eq ne lt lte gt gte in contains starts_with is_empty between".into(),
            );
        }
    };
    let (path, kind) = match resolve_field(entities, entity, field_name) {
        Ok(found) => found,
        Err(message) => return issue(issues, format!("{at}/field"), "unknown_field", message),
    };
    if !op_fits(op, kind) {
        return issue(
            issues,
            format!("{at}/op"),
            "operator_mismatch",
            format!(
                "'{}' does not apply to '{field_name}', a field of kind {}",
                op.name(),
                kind.name()
            ),
        );
    }
    let raw_value = object.get("value").cloned().unwrap_or(Value::Null);
    let value = substitute(&raw_value, variables);
    let value_at = format!("{at}/value");
    let mut leaf = FilterLeaf {
        path,
        kind,
        op,
        values: Vec::new(),
        empty: true,
    };
    match op {
        FilterOp::IsEmpty => match value {
            Value::Bool(empty) => leaf.empty = empty,
            Value::Null => leaf.empty = true,
            _ => {
                return issue(
                    issues,
                    value_at,
                    "invalid_value",
                    "is_empty takes true or false".into(),
                );
            }
        },
        FilterOp::In | FilterOp::Between => {
            let Some(items) = value.as_array() else {
                return issue(
                    issues,
                    value_at,
                    "invalid_value",
                    format!("'{}' takes an array", op.name()),
                );
            };
            if op == FilterOp::Between && items.len() != 2 {
                return issue(
                    issues,
                    value_at,
                    "invalid_value",
                    "between takes [low, high]".into(),
                );
            }
            for (i, item) in items.iter().enumerate() {
                match normalize(item, kind, op) {
                    Ok(v) => leaf.values.push(v),
                    Err(message) => {
                        issue(issues, format!("{value_at}/{i}"), "invalid_value", message);
                    }
                }
            }
        }
        _ => match normalize(&value, kind, op) {
            Ok(v) => leaf.values.push(v),
            Err(message) => return issue(issues, value_at, "invalid_value", message),
        },
    }
    CheckedFilter::Leaf(leaf)
}

fn resolve_field(
    entities: &BTreeMap<Identifier, EntityDefinition>,
    entity: &EntityDefinition,
    name: &str,
) -> Result<(FieldPath, FieldKind), String> {
    if name == "id" && entity.field("id").is_none() {
        return Ok((FieldPath::RecordId, FieldKind::Text));
    }
    match name.split_once('.') {
        None => {
            let field = entity
                .field(name)
                .ok_or_else(|| format!("'{name}' is not a field of {}", entity.id))?;
            Ok((
                FieldPath::Own {
                    uid: field.uid.clone(),
                },
                field.kind,
            ))
        }
        Some((relation, target_field)) => {
            let field = entity
                .field(relation)
                .ok_or_else(|| format!("'{relation}' is not a field of {}", entity.id))?;
            let spec = field.annotations.relation.as_ref().ok_or_else(|| {
                format!("'{relation}' is not a relation, so '{name}' cannot look into it")
            })?;
            let target = entities
                .get(&spec.entity)
                .ok_or_else(|| format!("entity '{}' does not exist", spec.entity))?;
            if target_field.contains('.') {
                return Err(format!("'{name}': filters reach one relation deep"));
            }
            let inner = target
                .field(target_field)
                .ok_or_else(|| format!("'{target_field}' is not a field of {}", target.id))?;
            Ok((
                FieldPath::Related {
                    relation_uid: field.uid.clone(),
                    many: field.kind == FieldKind::RelationMany,
                    target_entity_uid: target.uid.clone(),
                    field_uid: inner.uid.clone(),
                },
                inner.kind,
            ))
        }
    }
}

fn is_array_kind(kind: FieldKind) -> bool {
    matches!(
        kind,
        FieldKind::MultiSelect | FieldKind::Tags | FieldKind::RelationMany
    )
}

fn is_text_kind(kind: FieldKind) -> bool {
    matches!(
        kind,
        FieldKind::Text
            | FieldKind::LongText
            | FieldKind::RichText
            | FieldKind::Email
            | FieldKind::Phone
            | FieldKind::Url
            | FieldKind::AutoNumber
    )
}

fn is_ordered_kind(kind: FieldKind) -> bool {
    matches!(
        kind,
        FieldKind::Integer
            | FieldKind::Decimal
            | FieldKind::Percent
            | FieldKind::Rating
            | FieldKind::Date
            | FieldKind::Datetime
            | FieldKind::CreatedAt
            | FieldKind::UpdatedAt
            | FieldKind::AutoNumber
            | FieldKind::Text
            | FieldKind::Email
    )
}

fn op_fits(op: FilterOp, kind: FieldKind) -> bool {
    use FilterOp as O;
    match op {
        O::IsEmpty => true,
        _ if matches!(kind, FieldKind::Json | FieldKind::Money | FieldKind::File) => false,
        O::Eq | O::Ne | O::In => !is_array_kind(kind),
        O::Lt | O::Lte | O::Gt | O::Gte | O::Between => is_ordered_kind(kind),
        O::Contains => is_text_kind(kind) || is_array_kind(kind),
        O::StartsWith => is_text_kind(kind),
    }
}

/// Replace `"$user"`-style variables with their values.
fn substitute(value: &Value, variables: VariableResolver<'_>) -> Value {
    match value {
        Value::String(s) if s.starts_with('$') => variables(s).unwrap_or_else(|| value.clone()),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute(v, variables)).collect())
        }
        other => other.clone(),
    }
}

/// Bring a filter value into the field's stored JSON form.
fn normalize(value: &Value, kind: FieldKind, op: FilterOp) -> Result<Value, String> {
    use FieldKind as K;
    if let Value::String(s) = value
        && s.starts_with('$')
    {
        return Err(format!("unknown variable '{s}'"));
    }
    match kind {
        K::Integer | K::Rating => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("'{s}' is not a whole number")),
            _ => Err("expected a whole number".into()),
        },
        K::Decimal | K::Percent => match value {
            Value::Number(_) => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("'{s}' is not a number")),
            _ => Err("expected a number".into()),
        },
        K::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err("expected true or false".into()),
        },
        K::MultiSelect | K::Tags | K::RelationMany => match (op, value) {
            (FilterOp::Contains, Value::String(_)) => Ok(value.clone()),
            _ => Err("expected one item (text) to look for in the list".into()),
        },
        _ => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            _ => Err("expected text".into()),
        },
    }
}
