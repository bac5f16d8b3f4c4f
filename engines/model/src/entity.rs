//! Entities: a JSON Schema 2020-12 document plus `x-trellis` annotations, and its validated form.
//!
//! Fields are keyed by name in `properties`; each also has a stable `uid` (defaulting to its first name)
//! that survives renames, so schema evolution matches fields by uid, never by name.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::field_kind::JsonType;
use crate::pointer::{deserialize_at, join};
use crate::{FORMAT_VERSION, FieldKind, Identifier, LocalizedText, Problems};

/// The JSON Schema dialect every entity uses.
pub const JSON_SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Entity-level `x-trellis` annotations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntityAnnotations {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Stable id that survives renaming the entity; defaults to the entity id.
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub label_plural: Option<LocalizedText>,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// Field shown as the record's title in lists, relations and timelines.
    #[serde(default)]
    pub title_field: Option<Identifier>,
    /// Icon name for the UI.
    #[serde(default)]
    pub icon: Option<String>,
    /// Indexes to build for fast filters and sorts.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
    /// Fields that identify the same real-world thing, in priority order (e.g. email, then phone):
    /// records sharing a normalized value are shown as duplicates and can be merged (reversibly).
    #[serde(default)]
    pub duplicate_keys: Vec<DuplicateKey>,
}

/// One identity key for duplicate detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuplicateKey {
    pub field: Identifier,
    #[serde(default)]
    pub normalize: KeyNormalize,
}

/// How values of a duplicate key are compared.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyNormalize {
    /// Trimmed, case-insensitive (emails, member cards).
    #[default]
    Lowercase,
    /// Digits only; a number equals another that ends with it when at least 7 digits are left
    /// (phones with and without country code).
    Digits,
    /// Exactly as stored.
    Exact,
}

impl KeyNormalize {
    /// The comparable form of `value` (None when nothing is left to compare).
    pub fn apply(self, value: &str) -> Option<String> {
        let out = match self {
            Self::Lowercase => value.trim().to_lowercase(),
            Self::Digits => value.chars().filter(char::is_ascii_digit).collect(),
            Self::Exact => value.to_owned(),
        };
        (!out.is_empty()).then_some(out)
    }

    /// Whether two normalized values name the same thing.
    pub fn same(self, a: &str, b: &str) -> bool {
        match self {
            Self::Digits => {
                let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
                short.len() >= 7 && long.ends_with(short)
            }
            _ => a == b,
        }
    }
}

/// An index over one or more fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    pub fields: Vec<Identifier>,
    #[serde(default)]
    pub unique: bool,
}

/// What happens to referencing records when a referenced record is deleted.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// Refuse to delete a record that is still referenced.
    #[default]
    Restrict,
    /// Delete the referencing records too.
    Cascade,
    /// Clear the reference.
    SetNull,
}

/// The target of a relation field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationSpec {
    /// Id of the target entity in the same app.
    pub entity: Identifier,
    #[serde(default)]
    pub on_delete: OnDelete,
}

/// One option of a single or multi select.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectOption {
    pub value: String,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    /// CSS colour such as `#52c41a` or a palette name.
    #[serde(default)]
    pub color: Option<String>,
}

/// Field-level `x-trellis` annotations, inside each property of the entity schema.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldAnnotations {
    /// Stable id that survives renames; defaults to the field's first name.
    #[serde(default)]
    pub uid: Option<String>,
    /// Field kind; inferred from `type`/`format`/`enum` when absent.
    #[serde(default)]
    pub kind: Option<FieldKind>,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub help: Option<LocalizedText>,
    /// No two live records may share a value.
    #[serde(default)]
    pub unique: bool,
    /// Users can never edit the field (it may still be set by rules and flows).
    #[serde(default)]
    pub read_only: bool,
    /// UI widget hint, e.g. `textarea`, `slider`, `radio`.
    #[serde(default)]
    pub widget: Option<String>,
    /// Target of `relation_one` / `relation_many` fields.
    #[serde(default)]
    pub relation: Option<RelationSpec>,
    /// Options of select fields, with labels and colours.
    #[serde(default)]
    pub options: Vec<SelectOption>,
    /// rhai expression over other fields; makes the field computed (recomputed on save, read-only).
    #[serde(default)]
    pub computed: Option<String>,
    /// rhai expression: the field is shown only when it holds.
    #[serde(default)]
    pub visible_if: Option<String>,
    /// rhai expression: the field is required when it holds.
    #[serde(default)]
    pub required_if: Option<String>,
    /// rhai expression: the field is read-only when it holds.
    #[serde(default)]
    pub read_only_if: Option<String>,
    /// Pattern of an `auto_number` field, e.g. `CUS-{YYYY}-{0000}`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Default currency of a `money` field (ISO 4217), e.g. `CNY`.
    #[serde(default)]
    pub currency: Option<String>,
    /// Include the field in full-text search (`q`); text kinds default to true.
    #[serde(default)]
    pub searchable: Option<bool>,
}

/// A validated field of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDefinition {
    pub name: Identifier,
    pub uid: String,
    pub kind: FieldKind,
    pub required: bool,
    pub annotations: FieldAnnotations,
    /// The property's JSON Schema (including its `x-trellis`).
    pub schema: Map<String, Value>,
}

/// A validated entity.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityDefinition {
    pub id: Identifier,
    pub uid: String,
    pub annotations: EntityAnnotations,
    /// Fields in the order of `properties` (read-only after validation: `field` and
    /// `field_by_uid` look them up through indexes built with them).
    pub fields: Vec<FieldDefinition>,
    /// The whole entity document as written.
    pub schema: Value,
    /// Position in `fields` by field name and by uid (records are converted between the two forms
    /// on every read and write).
    /// (foldhash: the keys are validated metadata ids, and SipHash showed in every record's
    /// conversion.)
    by_name: foldhash::HashMap<String, usize>,
    by_uid: foldhash::HashMap<String, usize>,
}

impl EntityDefinition {
    /// An entity of checked parts (see [`check_entity`]); indexes its fields.
    fn new(
        id: Identifier,
        uid: String,
        annotations: EntityAnnotations,
        fields: Vec<FieldDefinition>,
        schema: Value,
    ) -> Self {
        let by_name = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_string(), i))
            .collect();
        let by_uid = fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.uid.clone(), i))
            .collect();
        EntityDefinition {
            id,
            uid,
            annotations,
            fields,
            schema,
            by_name,
            by_uid,
        }
    }

    pub fn field(&self, name: &str) -> Option<&FieldDefinition> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    pub fn field_by_uid(&self, uid: &str) -> Option<&FieldDefinition> {
        self.by_uid.get(uid).map(|&i| &self.fields[i])
    }

    /// The position in `fields` of the field named `name`.
    pub fn field_position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The position in `fields` of the field with `uid`.
    pub fn field_position_by_uid(&self, uid: &str) -> Option<usize> {
        self.by_uid.get(uid).copied()
    }

    /// Whether `uid` is the uid of one of the entity's fields.
    pub fn has_field_uid(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }
}

fn is_valid_uid(uid: &str) -> bool {
    (1..=64).contains(&uid.len())
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Check one entity document (`file` is its path in the bundle, `id` the stem of the file name).
/// Cross-entity checks (relation targets, unique uids across entities) happen in the bundle check.
///
/// Returns the entity as far as it could be read (its valid fields), and whether it had no errors;
/// the partial entity lets the bundle check still report cross-references of a broken entity.
pub fn check_entity(
    file: &str,
    id: &Identifier,
    document: &Value,
    problems: &mut Problems,
) -> (Option<EntityDefinition>, bool) {
    let Some(object) = document.as_object() else {
        problems.error(
            file,
            "",
            "not_an_object",
            "an entity must be a JSON object (a JSON Schema)",
        );
        return (None, false);
    };
    let before = problems
        .iter()
        .filter(|p| p.severity == crate::Severity::Error)
        .count();

    let annotations = match object.get("x-trellis") {
        None => {
            problems.error(
                file,
                "",
                "missing_annotations",
                format!("missing \"x-trellis\": add {{\"x-trellis\": {{\"format_version\": {FORMAT_VERSION}}}}}"),
            );
            None
        }
        Some(value) => match deserialize_at::<EntityAnnotations>(value, "/x-trellis") {
            Ok(annotations) => {
                check_format_version(
                    file,
                    "/x-trellis/format_version",
                    annotations.format_version,
                    problems,
                );
                Some(annotations)
            }
            Err((pointer, message)) => {
                problems.error(file, pointer, "invalid_annotation", message);
                None
            }
        },
    };

    match object.get("$schema") {
        None => {}
        Some(Value::String(s)) if s == JSON_SCHEMA_2020_12 => {}
        Some(_) => problems.error(
            file,
            "/$schema",
            "unsupported_dialect",
            format!("entities use JSON Schema 2020-12: set \"$schema\" to \"{JSON_SCHEMA_2020_12}\" or leave it out"),
        ),
    }
    if object.get("type").and_then(Value::as_str) != Some("object") {
        problems.error(
            file,
            "/type",
            "entity_not_object",
            "an entity schema must have \"type\": \"object\"",
        );
    }
    if let Err(error) = jsonschema::draft202012::options().build(document) {
        problems.error(
            file,
            error.instance_path().to_string(),
            "invalid_json_schema",
            format!("not a valid JSON Schema 2020-12: {error}"),
        );
    }

    let required: Vec<&str> = match object.get("required") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => Vec::new(), // reported by the JSON Schema meta-validation above
    };

    let mut fields = Vec::new();
    match object.get("properties") {
        Some(Value::Object(properties)) => {
            for (name, property) in properties {
                let pointer = join("/properties", name);
                if let Some(field) =
                    check_field(file, &pointer, name, property, &required, problems)
                {
                    fields.push(field);
                }
            }
        }
        Some(_) => problems.error(
            file,
            "/properties",
            "invalid_properties",
            "\"properties\" must be an object",
        ),
        None => problems.error(
            file,
            "",
            "no_properties",
            "an entity needs \"properties\" with at least one field",
        ),
    }

    for (index, name) in required.iter().enumerate() {
        if !fields.iter().any(|f| f.name.as_str() == *name)
            && object
                .get("properties")
                .is_some_and(|p| p.get(*name).is_none())
        {
            problems.error(
                file,
                format!("/required/{index}"),
                "unknown_required_field",
                format!("'{name}' is listed as required but is not a property"),
            );
        }
    }

    let mut seen_uids = std::collections::BTreeMap::new();
    for field in &fields {
        if let Some(other) = seen_uids.insert(field.uid.clone(), field.name.clone()) {
            problems.error(
                file,
                join(&join("/properties", field.name.as_str()), "x-trellis") + "/uid",
                "duplicate_field_uid",
                format!(
                    "fields '{other}' and '{}' share the uid '{}': every field needs its own",
                    field.name, field.uid
                ),
            );
        }
    }

    let Some(annotations) = annotations else {
        return (None, false);
    };
    if let Some(uid) = &annotations.uid
        && !is_valid_uid(uid)
    {
        problems.error(
            file,
            "/x-trellis/uid",
            "invalid_uid",
            format!("uid '{uid}' must be 1–64 letters, digits, '_' or '-'"),
        );
    }
    if let Some(label) = &annotations.label {
        warn_missing_locales(file, "/x-trellis/label", label, problems);
    }
    if let Some(title) = &annotations.title_field
        && !fields.iter().any(|f| &f.name == title)
    {
        problems.error(
            file,
            "/x-trellis/title_field",
            "unknown_field",
            format!("title_field '{title}' is not a property of this entity"),
        );
    }
    for (i, key) in annotations.duplicate_keys.iter().enumerate() {
        if !fields
            .iter()
            .any(|f| f.name == key.field && !f.kind.is_relation())
        {
            problems.error(
                file,
                format!("/x-trellis/duplicate_keys/{i}/field"),
                "unknown_field",
                format!(
                    "duplicate key '{}' is not a scalar property of this entity",
                    key.field
                ),
            );
        }
    }
    for (i, index) in annotations.indexes.iter().enumerate() {
        for (j, name) in index.fields.iter().enumerate() {
            if !fields.iter().any(|f| &f.name == name) {
                problems.error(
                    file,
                    format!("/x-trellis/indexes/{i}/fields/{j}"),
                    "unknown_field",
                    format!("index field '{name}' is not a property of this entity"),
                );
            }
        }
    }

    let after = problems
        .iter()
        .filter(|p| p.severity == crate::Severity::Error)
        .count();
    let entity = EntityDefinition::new(
        id.clone(),
        annotations.uid.clone().unwrap_or_else(|| id.to_string()),
        annotations,
        fields,
        document.clone(),
    );
    (Some(entity), after == before)
}

fn check_field(
    file: &str,
    pointer: &str,
    name: &str,
    property: &Value,
    required: &[&str],
    problems: &mut Problems,
) -> Option<FieldDefinition> {
    let name = match Identifier::parse(name) {
        Ok(name) => name,
        Err(error) => {
            problems.error(file, pointer, "invalid_field_id", format!("field {error}"));
            return None;
        }
    };
    let Some(schema) = property.as_object() else {
        problems.error(
            file,
            pointer,
            "invalid_field",
            "a field must be a JSON Schema object",
        );
        return None;
    };
    let annotations = match schema.get("x-trellis") {
        None => FieldAnnotations::default(),
        Some(value) => match deserialize_at::<FieldAnnotations>(value, &join(pointer, "x-trellis"))
        {
            Ok(annotations) => annotations,
            Err((at, message)) => {
                problems.error(file, at, "invalid_annotation", message);
                return None;
            }
        },
    };
    let at = |key: &str| format!("{}/{key}", join(pointer, "x-trellis"));
    let kind = annotations.kind.unwrap_or_else(|| FieldKind::infer(schema));
    let mut ok = true;

    if let Some(Value::String(ty)) = schema.get("type") {
        let allowed = kind.allowed_json_types();
        if let Some(json_type) = JsonType::parse(ty)
            && !allowed.is_empty()
            && !allowed.contains(&json_type)
        {
            problems.error(
                file,
                join(pointer, "type"),
                "kind_type_mismatch",
                format!(
                    "a field of kind {} cannot have \"type\": \"{ty}\"",
                    kind.name()
                ),
            );
            ok = false;
        }
    }
    if let Some(uid) = &annotations.uid
        && !is_valid_uid(uid)
    {
        problems.error(
            file,
            at("uid"),
            "invalid_uid",
            format!("uid '{uid}' must be 1–64 letters, digits, '_' or '-'"),
        );
        ok = false;
    }
    match (kind.is_relation(), &annotations.relation) {
        (true, None) => {
            problems.error(
                file,
                join(pointer, "x-trellis"),
                "missing_relation",
                format!(
                    "a {} field needs \"relation\": {{\"entity\": \"<target entity id>\"}}",
                    kind.name()
                ),
            );
            ok = false;
        }
        (false, Some(_)) => {
            problems.error(
                file,
                at("relation"),
                "unexpected_relation",
                format!(
                    "a {} field cannot have a relation; use kind relation_one or relation_many",
                    kind.name()
                ),
            );
            ok = false;
        }
        _ => {}
    }
    if kind.is_select() {
        let enum_values = select_enum(schema, kind);
        if annotations.options.is_empty() && enum_values.is_none() {
            problems.error(
                file,
                join(pointer, "x-trellis"),
                "missing_options",
                format!(
                    "a {} field needs options: \"enum\" in the schema or \"options\" in x-trellis",
                    kind.name()
                ),
            );
            ok = false;
        }
        if let Some(values) = enum_values {
            for (i, option) in annotations.options.iter().enumerate() {
                if !values.iter().any(|v| v == &option.value) {
                    problems.error(
                        file,
                        format!("{}/{i}/value", at("options")),
                        "option_not_in_enum",
                        format!(
                            "option '{}' is not one of the schema's enum values",
                            option.value
                        ),
                    );
                    ok = false;
                }
            }
        }
        for (i, option) in annotations.options.iter().enumerate() {
            if let Some(label) = &option.label {
                warn_missing_locales(
                    file,
                    &format!("{}/{i}/label", at("options")),
                    label,
                    problems,
                );
            }
        }
    } else if !annotations.options.is_empty() {
        problems.error(
            file,
            at("options"),
            "unexpected_options",
            format!("a {} field cannot have options", kind.name()),
        );
        ok = false;
    }
    if kind == FieldKind::AutoNumber
        && annotations
            .pattern
            .as_deref()
            .is_none_or(|p| !p.contains('{'))
    {
        problems.error(
            file,
            join(pointer, "x-trellis"),
            "missing_pattern",
            "an auto_number field needs a \"pattern\" with a counter, e.g. \"CUS-{YYYY}-{0000}\"",
        );
        ok = false;
    }
    for (key, expression) in [
        ("computed", &annotations.computed),
        ("visible_if", &annotations.visible_if),
        ("required_if", &annotations.required_if),
        ("read_only_if", &annotations.read_only_if),
    ] {
        if expression.as_deref().is_some_and(|e| e.trim().is_empty()) {
            problems.error(
                file,
                at(key),
                "empty_expression",
                format!("\"{key}\" is empty: write an expression or remove it"),
            );
            ok = false;
        }
    }
    if let Some(label) = &annotations.label {
        warn_missing_locales(file, &at("label"), label, problems);
    }
    ok.then(|| FieldDefinition {
        uid: annotations.uid.clone().unwrap_or_else(|| name.to_string()),
        required: required.contains(&name.as_str()),
        name,
        kind,
        annotations,
        schema: schema.clone(),
    })
}

fn select_enum(schema: &Map<String, Value>, kind: FieldKind) -> Option<Vec<String>> {
    let holder = if kind == FieldKind::MultiSelect {
        schema.get("items")?.as_object()?
    } else {
        schema
    };
    let values = holder.get("enum")?.as_array()?;
    Some(
        values
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
    )
}

/// Report an unsupported `format_version`.
pub(crate) fn check_format_version(
    file: &str,
    pointer: &str,
    version: u32,
    problems: &mut Problems,
) {
    if version != FORMAT_VERSION {
        problems.error(
            file,
            pointer,
            "unsupported_format_version",
            format!("format_version {version} is not supported by this Trellis (it reads {FORMAT_VERSION})"),
        );
    }
}

pub(crate) fn warn_missing_locales(
    file: &str,
    pointer: &str,
    text: &LocalizedText,
    problems: &mut Problems,
) {
    let missing = text.missing_locales();
    if !missing.is_empty() {
        problems.warning(
            file,
            pointer,
            "missing_translation",
            format!("label lacks {}", missing.join(" and ")),
        );
    }
}
