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

/// A stored record taken apart: its current fields by name, and its keys that are no current field.
pub type NamedParts = (Map<String, Value>, Map<String, Value>);

/// A stored record taken apart without copying a value: its current fields by name (in the entity's
/// field order, as [`to_api`] gives them) and the keys that are no current field (removed fields,
/// unconverted originals) as stored, for [`storage_json`] to carry over.
pub fn into_named(
    entity: &EntityDefinition,
    stored: Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut slots: Vec<Option<Value>> = vec![None; entity.fields.len()];
    let mut hidden = Map::new();
    for (key, value) in stored {
        match entity.field_position_by_uid(&key) {
            Some(position) => slots[position] = Some(value),
            None => {
                hidden.insert(key, value);
            }
        }
    }
    (named_in_field_order(entity, slots), hidden)
}

/// Fields by name from values by field position (`slots`), in the entity's field order.
fn named_in_field_order(
    entity: &EntityDefinition,
    slots: Vec<Option<Value>>,
) -> Map<String, Value> {
    let mut named = Map::with_capacity(slots.iter().flatten().count());
    for (field, value) in entity.fields.iter().zip(slots) {
        if let Some(value) = value {
            named.insert(field.name.as_str().to_owned(), value);
        }
    }
    named
}

/// [`into_named`] of a stored record's JSON text, parsed straight into the two maps (no map by
/// uid is built first): the same fields, order and hidden keys as
/// `into_named(entity, serde_json::from_str(text)?)`. Nightly write-backs read every record of an
/// entity as text and take each apart once, on the planning threads.
pub fn parse_named(entity: &EntityDefinition, text: &str) -> Result<NamedParts, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parts = NamedSeed(entity).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(parts)
}

/// Deserializes a stored document into its fields by name and its other keys ([`parse_named`]).
struct NamedSeed<'a>(&'a EntityDefinition);

/// A key as parsed: borrowed from the text unless it had escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> serde::de::Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(key.to_owned())))
            }
            fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for NamedSeed<'_> {
    type Value = NamedParts;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for NamedSeed<'_> {
    type Value = NamedParts;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a stored record (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut access: A,
    ) -> Result<Self::Value, A::Error> {
        let entity = self.0;
        let mut slots: Vec<Option<Value>> = vec![None; entity.fields.len()];
        let mut hidden = Map::new();
        while let Some(Key(key)) = access.next_key::<Key<'de>>()? {
            let value: Value = access.next_value()?;
            match entity.field_position_by_uid(&key) {
                Some(position) => slots[position] = Some(value),
                None => {
                    hidden.insert(key.into_owned(), value);
                }
            }
        }
        Ok((named_in_field_order(entity, slots), hidden))
    }
}

/// The stored form of `named` fields as JSON text, written straight from the fields (no stored map
/// is built): exactly `serde_json::to_string(&to_storage(entity, named, Some(previous)))` for a
/// `previous` whose non-field keys are `hidden` ([`into_named`]).
/// The value `named` holds for each of `entity`'s fields, by the field's position in
/// `entity.fields` (`None`: not given), found by walking `named` once. Looking each field up in
/// `named` instead hashed its name with serde_json's SipHash per field and per pass — a fifth of an
/// import's validating thread in a profile (BENCHMARKS.md); the entity's own index uses foldhash.
fn values_by_position<'a>(
    entity: &EntityDefinition,
    named: &'a Map<String, Value>,
) -> Vec<Option<&'a Value>> {
    let mut values = vec![None; entity.fields.len()];
    for (name, value) in named {
        if let Some(position) = entity.field_position(name) {
            values[position] = Some(value);
        }
    }
    values
}

pub fn storage_json(
    entity: &EntityDefinition,
    named: &Map<String, Value>,
    hidden: &Map<String, Value>,
) -> String {
    use serde::Serialize;
    let mut out = Vec::with_capacity(64 * (named.len() + hidden.len()) + 2);
    out.push(b'{');
    let mut entry = |key: &str, value: &Value| {
        if out.len() > 1 {
            out.push(b',');
        }
        let mut serializer = serde_json::Serializer::new(&mut out);
        // Writing into a Vec cannot fail; a string key and a JSON value always serialize.
        let _ = key.serialize(&mut serializer);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, value);
    };
    for (key, value) in hidden {
        if !entity.has_field_uid(key) {
            entry(key, value);
        }
    }
    let values = values_by_position(entity, named);
    for (field, value) in entity.fields.iter().zip(values) {
        if let Some(value) = value
            && !value.is_null()
        {
            entry(&field.uid, value);
        }
    }
    out.push(b'}');
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_default()
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
    let mut given = vec![false; entity.fields.len()];
    for name in named.keys() {
        if let Some(position) = entity.field_position(name) {
            given[position] = true;
        }
    }
    for (field, given) in entity.fields.iter().zip(given) {
        if !given && let Some(default) = field.schema.get("default") {
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

/// Whether [`migrate_stored`] can change any stored record of an entity going from `old` to `new`:
/// a field's kind changed, or a field is new to `old` (a default to add, or a restored field whose
/// kept values may come back). When not, a publish need not read the entity's records.
pub fn migration_may_change(old: &EntityDefinition, new: &EntityDefinition) -> bool {
    new.fields
        .iter()
        .any(|field| match old.field_by_uid(&field.uid) {
            Some(before) => before.kind != field.kind,
            None => true,
        })
}

/// The ids of an entity's searchable fields, in the order their values make its search text: when
/// they differ between two versions of the entity, its records' search texts do.
pub fn search_fields(entity: &EntityDefinition) -> Vec<&str> {
    entity
        .fields
        .iter()
        .filter(|f| is_searchable(f))
        .map(|f| f.uid.as_str())
        .collect()
}

/// Lower-cased text of a record's searchable fields (text kinds unless `searchable: false`, plus any
/// field marked `searchable: true`), for full-text search.
pub fn search_text(entity: &EntityDefinition, named: &Map<String, Value>) -> String {
    use trellis_model::search::normalize_into;
    let mut text = String::new();
    let values = values_by_position(entity, named);
    for (field, value) in entity.fields.iter().zip(values) {
        if !is_searchable(field) {
            continue;
        }
        match value {
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
    use serde_json::{Map, Value, json};
    use trellis_model::{RawBundle, check_bundle};

    use super::{
        into_named, migration_may_change, parse_named, same_value, search_fields, storage_json,
        to_api, to_storage,
    };

    /// The customer entity of a bundle whose customer has `properties`.
    fn customer(properties: Value) -> trellis_model::EntityDefinition {
        let raw = json!({
            "trellis.json": {"format_version": 1, "id": "crm", "version": "1.0.0", "name": {"en": "CRM", "zh-CN": "客户"}},
            "entities/customer.schema.json": {
                "type": "object", "x-trellis": {"format_version": 1}, "properties": properties
            }
        });
        let bundle = check_bundle(&serde_json::from_value::<RawBundle>(raw).unwrap()).unwrap();
        bundle.entities.values().next().unwrap().clone()
    }

    #[test]
    fn a_publish_reads_an_entitys_records_only_when_they_can_change() {
        let v1 = customer(json!({
            "name": {"type": "string"}, "score": {"type": "number"}, "code": {"type": "string"}
        }));
        let same = |props| !migration_may_change(&v1, &customer(props));
        // Renamed (same uid), removed, or its search flag changed: no stored value changes.
        assert!(same(json!({
            "full_name": {"type": "string", "x-trellis": {"uid": "name"}},
            "score": {"type": "number"},
            "code": {"type": "string", "x-trellis": {"searchable": false}}
        })));
        assert!(same(json!({"name": {"type": "string"}})));
        // A kind changed, or a field new to the old version (a default, a restored value).
        assert!(!same(json!({
            "name": {"type": "string"}, "score": {"type": "number"}, "code": {"type": "integer"}
        })));
        assert!(!same(json!({
            "name": {"type": "string"}, "score": {"type": "number"}, "code": {"type": "string"},
            "tier": {"type": "string", "default": "basic"}
        })));
        // The search text's fields, in order: what a publish compares to rewrite search texts.
        assert_eq!(search_fields(&v1), vec!["name", "code"]);
        let unsearched = customer(json!({
            "name": {"type": "string"}, "score": {"type": "number"},
            "code": {"type": "string", "x-trellis": {"searchable": false}}
        }));
        assert_eq!(search_fields(&unsearched), vec!["name"]);
    }

    #[test]
    fn stored_records_taken_apart_and_written_as_text_match_the_map_forms() {
        let raw = json!({
            "trellis.json": {"format_version": 1, "id": "crm", "version": "1.0.0", "name": {"en": "CRM", "zh-CN": "客户"}},
            "entities/customer.schema.json": {
                "type": "object",
                "x-trellis": {"format_version": 1},
                "properties": {
                    "full_name": {"type": "string", "x-trellis": {"uid": "name"}},
                    "score": {"type": "number"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "note": {"type": "string"}
                }
            }
        });
        let bundle = check_bundle(&serde_json::from_value::<RawBundle>(raw).unwrap()).unwrap();
        let entity = bundle.entities.values().next().unwrap();
        // Stored out of field order, with a removed field's value and an unconverted original.
        let stored: Map<String, Value> = serde_json::from_value(json!({
            "score": 0.1,
            "old_field": "kept \"quoted\" \u{1F600} 客户",
            "name": "Wang \\ Li\n",
            "$unconverted": {"score": "n/a"},
            "tags": ["a", "b"],
            "note": null
        }))
        .unwrap();
        let (named, hidden) = into_named(entity, stored.clone());
        assert_eq!(named, to_api(entity, &stored));
        // Parsed straight from the stored text (escaped keys too): the same two maps, in order.
        for text in [
            serde_json::to_string(&stored).unwrap(),
            r#"{"n\u0061me":"Li","score":1,"gone\n":[{"x":1}],"name":"Wang","tags":[]}"#.to_owned(),
            "{}".to_owned(),
        ] {
            let parsed = serde_json::from_str::<Map<String, Value>>(&text).unwrap();
            let (expected_named, expected_hidden) = into_named(entity, parsed);
            let (named, hidden) = parse_named(entity, &text).unwrap();
            assert_eq!(named, expected_named, "{text}");
            assert_eq!(hidden, expected_hidden, "{text}");
            assert_eq!(
                (
                    named.keys().collect::<Vec<_>>(),
                    hidden.keys().collect::<Vec<_>>()
                ),
                (
                    expected_named.keys().collect::<Vec<_>>(),
                    expected_hidden.keys().collect::<Vec<_>>()
                ),
                "{text}"
            );
        }
        for bad in ["[1]", "{\"name\":", "{} x", "null"] {
            assert!(parse_named(entity, bad).is_err(), "{bad}");
        }
        assert_eq!(
            named.keys().collect::<Vec<_>>(),
            to_api(entity, &stored).keys().collect::<Vec<_>>(),
            "the entity's field order"
        );
        assert_eq!(
            hidden.keys().collect::<Vec<_>>(),
            vec!["old_field", "$unconverted"]
        );
        let mut changed = named.clone();
        changed.insert("score".into(), json!(42));
        changed.insert("note".into(), Value::Null);
        let expected = serde_json::to_string(&to_storage(entity, &changed, Some(&stored))).unwrap();
        assert_eq!(storage_json(entity, &changed, &hidden), expected);
        assert_eq!(
            storage_json(entity, &Map::new(), &Map::new()),
            "{}",
            "an empty record"
        );
    }

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
