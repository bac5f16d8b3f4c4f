//! Record validation: the entity's JSON Schema (compiled once per entity version) plus the checks that
//! JSON Schema cannot express (select options, money, phone numbers, read-only and unknown fields).

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};
use trellis_model::{EntityDefinition, FieldKind};

use crate::Locale;
use crate::messages::{FieldIssue, message, type_name};

/// A compiled validator for one version of one entity. Build once, reuse for every record.
pub struct EntityValidator {
    entity: EntityDefinition,
    schema: jsonschema::Validator,
}

impl std::fmt::Debug for EntityValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityValidator")
            .field("entity", &self.entity.id)
            .finish()
    }
}

impl EntityValidator {
    /// Compile the entity's schema (formats such as email and date are asserted, not just annotated).
    pub fn compile(entity: &EntityDefinition) -> Result<Self, String> {
        let schema = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&entity.schema)
            .map_err(|e| format!("entity '{}' does not compile: {e}", entity.id))?;
        Ok(Self {
            entity: entity.clone(),
            schema,
        })
    }

    pub fn entity(&self) -> &EntityDefinition {
        &self.entity
    }

    /// Fields of `input` that a user may not write: unknown ones, system-managed, computed and read-only.
    pub fn check_writable(&self, input: &Map<String, Value>, locale: Locale) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        for name in input.keys() {
            let pointer = format!("/{name}");
            match self.entity.field(name) {
                None => issues.push(FieldIssue {
                    pointer,
                    code: "unknown_field",
                    message: message("unknown_field", locale, ""),
                }),
                Some(field)
                    if field.kind.is_system_managed()
                        || field.annotations.computed.is_some()
                        || field.annotations.read_only =>
                {
                    issues.push(FieldIssue {
                        pointer,
                        code: "read_only",
                        message: message("read_only", locale, ""),
                    })
                }
                Some(_) => {}
            }
        }
        issues
    }

    /// Validate a complete record (fields by name). Every problem is returned, none stops the others.
    pub fn validate(&self, record: &Map<String, Value>, locale: Locale) -> Vec<FieldIssue> {
        let instance = Value::Object(record.clone());
        let mut issues: Vec<FieldIssue> = self
            .schema
            .iter_errors(&instance)
            .map(|e| schema_issue(&e, locale))
            .collect();
        for field in &self.entity.fields {
            let Some(value) = record.get(field.name.as_str()) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let pointer = format!("/{}", field.name);
            let options: Vec<&str> = field
                .annotations
                .options
                .iter()
                .map(|o| o.value.as_str())
                .collect();
            match field.kind {
                FieldKind::SingleSelect if !options.is_empty() => {
                    if value.as_str().is_none_or(|v| !options.contains(&v)) {
                        issues.push(FieldIssue {
                            pointer,
                            code: "enum",
                            message: message("enum", locale, &options.join(", ")),
                        });
                    }
                }
                FieldKind::MultiSelect if !options.is_empty() => {
                    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                        if item.as_str().is_none_or(|v| !options.contains(&v)) {
                            issues.push(FieldIssue {
                                pointer: format!("{pointer}/{i}"),
                                code: "enum",
                                message: message("enum", locale, &options.join(", ")),
                            });
                        }
                    }
                }
                FieldKind::Money if !is_money(value) => {
                    issues.push(FieldIssue {
                        pointer,
                        code: "invalid_money",
                        message: message("invalid_money", locale, ""),
                    });
                }
                FieldKind::Phone if !value.as_str().is_some_and(is_phone) => {
                    issues.push(FieldIssue {
                        pointer,
                        code: "invalid_phone",
                        message: message("invalid_phone", locale, ""),
                    });
                }
                _ => {}
            }
        }
        issues.sort_by(|a, b| a.pointer.cmp(&b.pointer));
        issues.dedup();
        issues
    }
}

fn schema_issue(error: &jsonschema::ValidationError<'_>, locale: Locale) -> FieldIssue {
    let mut pointer = error.instance_path().to_string();
    let (code, arg) = match error.kind() {
        ValidationErrorKind::Required { property } => {
            pointer = format!("{pointer}/{}", property.as_str().unwrap_or_default());
            ("required", String::new())
        }
        ValidationErrorKind::Type { kind } => {
            let name = match kind {
                jsonschema::error::TypeKind::Single(t) => {
                    type_name(&t.to_string(), locale).to_owned()
                }
                jsonschema::error::TypeKind::Multiple(_) => type_name("", locale).to_owned(),
            };
            ("type", name)
        }
        ValidationErrorKind::MinLength { limit } => ("min_length", limit.to_string()),
        ValidationErrorKind::MaxLength { limit } => ("max_length", limit.to_string()),
        ValidationErrorKind::Minimum { limit } => ("minimum", limit.to_string()),
        ValidationErrorKind::Maximum { limit } => ("maximum", limit.to_string()),
        ValidationErrorKind::ExclusiveMinimum { limit } => ("exclusive_minimum", limit.to_string()),
        ValidationErrorKind::ExclusiveMaximum { limit } => ("exclusive_maximum", limit.to_string()),
        ValidationErrorKind::Pattern { pattern } => ("pattern", pattern.clone()),
        ValidationErrorKind::Enum { options } => {
            let list: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
                .collect();
            ("enum", list.join(", "))
        }
        ValidationErrorKind::Format { format } => (
            "format",
            crate::messages::format_name(format, locale).to_owned(),
        ),
        ValidationErrorKind::MinItems { limit } => ("min_items", limit.to_string()),
        ValidationErrorKind::MaxItems { limit } => ("max_items", limit.to_string()),
        ValidationErrorKind::UniqueItems => ("unique_items", String::new()),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            if let Some(first) = unexpected.first() {
                pointer = format!("{pointer}/{first}");
            }
            ("unknown_field", String::new())
        }
        _ => ("invalid", error.to_string()),
    };
    FieldIssue {
        pointer,
        code,
        message: message(code, locale, &arg),
    }
}

/// `{"amount": "12.50", "currency": "CNY"}` with an exact decimal amount (string or integer-like number).
fn is_money(value: &Value) -> bool {
    let Some(object) = value.as_object() else {
        return false;
    };
    let amount_ok = match object.get("amount") {
        Some(Value::String(s)) => is_decimal(s),
        Some(Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    };
    let currency_ok = object
        .get("currency")
        .and_then(Value::as_str)
        .is_some_and(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()));
    amount_ok && currency_ok && object.len() == 2
}

pub(crate) fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

fn is_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()".contains(c))
}
