//! JSON Schemas of every metadata file kind, generated from the Rust types.
//!
//! The files in the repository's `schemas/` folder are these values, pretty-printed; a test fails when
//! they are stale, and `TRELLIS_UPDATE_SCHEMAS=1 cargo test` rewrites them.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

use crate::Manifest;
use crate::document::{DocumentEnvelope, DocumentKind};
use crate::entity::{EntityAnnotations, FieldAnnotations, JSON_SCHEMA_2020_12};
use crate::i18n::TranslationFile;

const BASE_URL: &str = "https://trellis.dev/schemas";

fn root_schema<T: JsonSchema>(name: &str) -> Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.insert(
            "$id".into(),
            json!(format!("{BASE_URL}/{name}.schema.json")),
        );
    }
    schema
}

/// The generated schema of a metadata file kind owned by an engine (flows, rules), with its `$id`
/// and title, in the same form as the model's own.
pub fn schema_for<T: JsonSchema>(name: &str, title: &str) -> Value {
    let mut schema = root_schema::<T>(name);
    if let Some(object) = schema.as_object_mut() {
        object.insert("title".into(), json!(title));
    }
    schema
}

/// The schema of an entity file: a JSON Schema 2020-12 document with Trellis annotations.
fn entity_schema() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let entity = generator.subschema_for::<EntityAnnotations>().to_value();
    let field = generator.subschema_for::<FieldAnnotations>().to_value();
    let definitions = Value::Object(generator.take_definitions(true).into_iter().collect());
    json!({
        "$schema": JSON_SCHEMA_2020_12,
        "$id": format!("{BASE_URL}/entity.schema.json"),
        "title": "Trellis entity (entities/<id>.schema.json)",
        "description": "A JSON Schema 2020-12 document of type object whose properties are the entity's fields, annotated with x-trellis.",
        "allOf": [{"$ref": JSON_SCHEMA_2020_12}],
        "type": "object",
        "required": ["type", "properties", "x-trellis"],
        "properties": {
            "$schema": {"const": JSON_SCHEMA_2020_12},
            "type": {"const": "object"},
            "x-trellis": entity,
            "properties": {
                "type": "object",
                "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,62}$"},
                "additionalProperties": {
                    "type": "object",
                    "properties": {"x-trellis": field}
                }
            }
        },
        "$defs": definitions
    })
}

/// Every generated schema as (file name without `.schema.json`, schema).
pub fn all() -> Vec<(&'static str, Value)> {
    let mut schemas = vec![
        ("manifest", root_schema::<Manifest>("manifest")),
        ("entity", entity_schema()),
        ("i18n", root_schema::<TranslationFile>("i18n")),
        ("role", root_schema::<crate::RoleDefinition>("role")),
    ];
    for kind in DocumentKind::all() {
        let name = kind.schema_name();
        let mut schema = root_schema::<DocumentEnvelope>(name);
        if let Some(object) = schema.as_object_mut() {
            let (folder, suffix) = kind.layout();
            object.insert(
                "title".into(),
                json!(format!("Trellis {name} ({folder}/<id>{suffix})")),
            );
        }
        schemas.push((name, schema));
    }
    schemas
}

/// Validate `value` against the generated schema `name`; every violation as (pointer, message).
pub fn validate_against(name: &str, value: &Value) -> Vec<(String, String)> {
    static VALIDATORS: std::sync::LazyLock<Vec<(&'static str, jsonschema::Validator)>> =
        std::sync::LazyLock::new(|| {
            all()
                .into_iter()
                .filter(|(name, _)| *name != "entity")
                .filter_map(|(name, schema)| {
                    jsonschema::draft202012::new(&schema)
                        .ok()
                        .map(|v| (name, v))
                })
                .collect()
        });
    let Some((_, validator)) = VALIDATORS.iter().find(|(n, _)| *n == name) else {
        return Vec::new();
    };
    validator
        .iter_errors(value)
        .map(|error| (error.instance_path().to_string(), error.to_string()))
        .collect()
}
