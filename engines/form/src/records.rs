//! Record shapes: the API speaks field **names**, storage keys values by stable field **uid**. That
//! is what makes renames free and keeps the values of removed fields (they stay in storage under their
//! uid, invisible to the API, and come back if the field is restored).

use serde_json::{Map, Value};
use trellis_model::EntityDefinition;

use crate::convert::convert_value;

/// Key under which values that could not convert to a field's new kind are kept, by field uid.
pub const UNCONVERTED_KEY: &str = "$unconverted";

/// The fields of a stored record as the API shows them (current fields only, by name).
pub fn to_api(entity: &EntityDefinition, stored: &Map<String, Value>) -> Map<String, Value> {
    let mut named = Map::with_capacity(stored.len().min(entity.fields.len()));
    for field in &entity.fields {
        if let Some(value) = stored.get(&field.uid) {
            named.insert(field.name.as_str().to_owned(), value.clone());
        }
    }
    named
}

/// Stored form of `named` fields. Keys of `previous` that are not current fields (removed fields,
/// unconverted originals) are carried over untouched, so no write ever drops them.
pub fn to_storage(
    entity: &EntityDefinition,
    named: &Map<String, Value>,
    previous: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut stored = Map::with_capacity(named.len() + previous.map_or(0, Map::len));
    if let Some(previous) = previous {
        for (key, value) in previous {
            if !entity.has_field_uid(key) {
                stored.insert(key.clone(), value.clone());
            }
        }
    }
    for field in &entity.fields {
        if let Some(value) = named.get(field.name.as_str())
            && !value.is_null()
        {
            stored.insert(field.uid.clone(), value.clone());
        }
    }
    stored
}

/// Fill missing fields that declare a JSON Schema `default`.
pub fn apply_defaults(entity: &EntityDefinition, named: &mut Map<String, Value>) {
    for field in &entity.fields {
        if !named.contains_key(field.name.as_str())
            && let Some(default) = field.schema.get("default")
        {
            named.insert(field.name.as_str().to_owned(), default.clone());
        }
    }
}

/// RFC 7396 JSON merge patch.
pub fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let entry = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(existing) = entry {
                    merge_patch(existing, inner);
                } else {
                    *entry = Value::Object(inner.clone());
                    if let Value::Object(replaced) = entry {
                        strip_nulls(replaced);
                    }
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn strip_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for value in map.values_mut() {
        if let Value::Object(inner) = value {
            strip_nulls(inner);
        }
    }
}

/// A value kept aside by an earlier migration comes back when the field can hold it again.
fn restore_unconverted(
    data: &mut Map<String, Value>,
    field: &trellis_model::FieldDefinition,
) -> bool {
    if data.get(&field.uid).is_some_and(|v| !v.is_null()) {
        return false;
    }
    let Some(Value::Object(kept)) = data.get(UNCONVERTED_KEY) else {
        return false;
    };
    let Some(original) = kept.get(&field.uid).cloned() else {
        return false;
    };
    let fits = match &original {
        Value::String(_) => field
            .kind
            .allowed_json_types()
            .contains(&trellis_model::field_kind::JsonType::String),
        _ => convert_value(&original, trellis_model::FieldKind::Json, field.kind)
            .is_ok_and(|v| v == original),
    } || field.kind.allowed_json_types().is_empty();
    if !fits {
        return false;
    }
    if let Some(Value::Object(kept)) = data.get_mut(UNCONVERTED_KEY) {
        kept.remove(&field.uid);
        if kept.is_empty() {
            data.remove(UNCONVERTED_KEY);
        }
    }
    data.insert(field.uid.clone(), original);
    true
}

/// A value that could not convert during a migration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConversionFailure {
    pub field: String,
    pub value: Value,
    pub reason: String,
}

/// Migrate one stored record from `old` to `new` (same entity uid): convert values of fields whose kind
/// changed, keeping what cannot convert under [`UNCONVERTED_KEY`], and give added fields their default.
/// Returns the new stored data when anything changed, and the failures.
pub fn migrate_stored(
    old: &EntityDefinition,
    new: &EntityDefinition,
    stored: &Map<String, Value>,
) -> (Option<Map<String, Value>>, Vec<ConversionFailure>) {
    let mut data = stored.clone();
    let mut failures = Vec::new();
    let mut changed = false;
    for field in &new.fields {
        if restore_unconverted(&mut data, field) {
            changed = true;
            continue;
        }
        match old.field_by_uid(&field.uid) {
            Some(before) if before.kind != field.kind => {
                let Some(value) = data.get(&field.uid).cloned() else {
                    continue;
                };
                match convert_value(&value, before.kind, field.kind) {
                    Ok(converted) => {
                        if converted != value {
                            data.insert(field.uid.clone(), converted);
                            changed = true;
                        }
                    }
                    Err(reason) => {
                        data.remove(&field.uid);
                        let kept = data
                            .entry(UNCONVERTED_KEY)
                            .or_insert_with(|| Value::Object(Map::new()));
                        if let Value::Object(kept) = kept {
                            kept.insert(field.uid.clone(), value.clone());
                        }
                        failures.push(ConversionFailure {
                            field: field.name.to_string(),
                            value,
                            reason,
                        });
                        changed = true;
                    }
                }
            }
            Some(_) => {}
            None => {
                // A restored field finds its old value still stored under its uid; a new one gets its default.
                if !data.contains_key(&field.uid)
                    && let Some(default) = field.schema.get("default")
                {
                    data.insert(field.uid.clone(), default.clone());
                    changed = true;
                }
            }
        }
    }
    (changed.then_some(data), failures)
}

/// Whether a field's values go into the search text (text-like kinds unless the field says
/// otherwise with `"searchable"`).
pub fn is_searchable(field: &trellis_model::FieldDefinition) -> bool {
    use trellis_model::FieldKind as K;
    let by_kind = matches!(
        field.kind,
        K::Text
            | K::LongText
            | K::RichText
            | K::Email
            | K::Phone
            | K::Url
            | K::AutoNumber
            | K::SingleSelect
            | K::MultiSelect
            | K::Tags
    );
    field.annotations.searchable.unwrap_or(by_kind)
}

/// Whether `search_text` of `now` can differ from that of `before`: some searchable field's value
/// differs (when none does, the texts are equal without computing them).
pub fn search_text_may_differ(
    entity: &EntityDefinition,
    now: &Map<String, Value>,
    before: &Map<String, Value>,
) -> bool {
    entity
        .fields
        .iter()
        .filter(|f| is_searchable(f))
        .any(|f| now.get(f.name.as_str()) != before.get(f.name.as_str()))
}

/// Lower-cased text of a record's searchable fields (text kinds unless `searchable: false`, plus any
/// field marked `searchable: true`), for full-text search.
pub fn search_text(entity: &EntityDefinition, named: &Map<String, Value>) -> String {
    use trellis_model::search::normalize_into;
    let mut text = String::new();
    for field in entity.fields.iter().filter(|f| is_searchable(f)) {
        match named.get(field.name.as_str()) {
            Some(Value::String(value)) => normalize_into(&mut text, value),
            Some(Value::Array(items)) => {
                for item in items.iter().filter_map(Value::as_str) {
                    normalize_into(&mut text, item);
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => normalize_into(&mut text, &other.to_string()),
        }
    }
    text
}

/// Whether two field values are the same value: equal JSON, or numbers of equal value (`0` and
/// `0.0` — a report's float and a stored integer are no change).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::same_value;

    #[test]
    fn numbers_of_equal_value_are_the_same_value() {
        assert!(same_value(&json!(0), &json!(0.0)));
        assert!(same_value(&json!(-0.0), &json!(0)));
        assert!(same_value(&json!(12.5), &json!(12.5)));
        assert!(!same_value(&json!(12), &json!(12.5)));
        assert!(!same_value(&json!(0), &json!("0")));
        assert!(!same_value(&json!(null), &json!(0)));
        assert!(same_value(&json!("a"), &json!("a")));
    }
}
