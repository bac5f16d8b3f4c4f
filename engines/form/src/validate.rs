//! Record validation: the entity's JSON Schema (compiled once per entity version) plus the checks that
//! JSON Schema cannot express (select options, money, phone numbers, read-only and unknown fields).

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};
use trellis_model::{EntityDefinition, FieldKind};

use crate::Locale;
use crate::messages::{FieldIssue, message, type_name};
use trellis_script::Script;

/// A compiled validator for one version of one entity. Build once, reuse for every record.
pub struct EntityValidator {
    entity: EntityDefinition,
    schema: jsonschema::Validator,
    /// Computed fields in declaration order: (field name, expression).
    computed: Vec<(String, Script)>,
    /// `required_if` / `read_only_if` conditions: (field name, expression).
    required_if: Vec<(String, Script)>,
    read_only_if: Vec<(String, Script)>,
    /// Indexes of fields whose kinds need checks JSON Schema cannot express.
    special_fields: Vec<usize>,
}

/// An expression of an entity that does not compile: pointer into the entity file and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpressionProblem {
    pub pointer: String,
    pub message: String,
}

/// Expressions of an entity, each as (field name, compiled script), and the ones that did not compile.
#[derive(Debug, Default)]
pub struct CompiledExpressions {
    pub computed: Vec<(String, Script)>,
    pub required_if: Vec<(String, Script)>,
    pub read_only_if: Vec<(String, Script)>,
    pub problems: Vec<ExpressionProblem>,
}

/// Compile every expression of `entity` (computed, visible_if, required_if, read_only_if).
pub fn compile_expressions(entity: &EntityDefinition) -> CompiledExpressions {
    let (mut computed, mut required_if, mut read_only_if, mut problems) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for field in &entity.fields {
        let annotations = &field.annotations;
        for (key, source, target) in [
            ("computed", &annotations.computed, Some(&mut computed)),
            (
                "required_if",
                &annotations.required_if,
                Some(&mut required_if),
            ),
            (
                "read_only_if",
                &annotations.read_only_if,
                Some(&mut read_only_if),
            ),
            ("visible_if", &annotations.visible_if, None),
        ] {
            let Some(source) = source else { continue };
            match trellis_script::compile(source) {
                Ok(script) => {
                    if let Some(target) = target {
                        target.push((field.name.to_string(), script));
                    }
                }
                Err(error) => problems.push(ExpressionProblem {
                    pointer: format!("/properties/{}/x-trellis/{key}", field.name),
                    message: format!(
                        "{key} does not compile{}: {}",
                        error
                            .line
                            .map(|l| format!(" (line {l}, column {})", error.column.unwrap_or(0)))
                            .unwrap_or_default(),
                        error.message
                    ),
                }),
            }
        }
    }
    CompiledExpressions {
        computed,
        required_if,
        read_only_if,
        problems,
    }
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
        let CompiledExpressions {
            computed,
            required_if,
            read_only_if,
            problems,
        } = compile_expressions(entity);
        if let Some(problem) = problems.first() {
            return Err(format!(
                "entity '{}' {}: {}",
                entity.id, problem.pointer, problem.message
            ));
        }
        let special_fields = entity
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                matches!(f.kind, FieldKind::Money | FieldKind::Phone)
                    || (f.kind.is_select() && !f.annotations.options.is_empty())
            })
            .map(|(i, _)| i)
            .collect();
        Ok(Self {
            entity: entity.clone(),
            schema,
            computed,
            required_if,
            read_only_if,
            special_fields,
        })
    }

    pub fn entity(&self) -> &EntityDefinition {
        &self.entity
    }

    /// Fields of `input` that a user may not write: unknown ones, system-managed, computed and read-only.
    pub fn check_writable(&self, input: &Map<String, Value>, locale: Locale) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        for name in input.keys() {
            let pointer = || format!("/{name}");
            match self.entity.field(name) {
                None => issues.push(FieldIssue {
                    pointer: pointer(),
                    code: "unknown_field",
                    message: message("unknown_field", locale, ""),
                }),
                Some(field)
                    if field.kind.is_system_managed()
                        || field.annotations.computed.is_some()
                        || field.annotations.read_only =>
                {
                    issues.push(FieldIssue {
                        pointer: pointer(),
                        code: "read_only",
                        message: message("read_only", locale, ""),
                    })
                }
                Some(_) => {}
            }
        }
        issues
    }

    /// Recompute every computed field of `record` (in declaration order, so later ones see earlier ones).
    pub fn compute(&self, record: &mut Map<String, Value>, locale: Locale) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        for (name, script) in &self.computed {
            match self.eval_over_fields(script, record) {
                Ok(Value::Null) => {
                    record.remove(name);
                }
                Ok(value) => {
                    record.insert(name.clone(), value);
                }
                Err(error) => {
                    record.remove(name);
                    issues.push(FieldIssue {
                        pointer: format!("/{name}"),
                        code: "computed_failed",
                        message: message("computed_failed", locale, &error.message),
                    });
                }
            }
        }
        issues
    }

    /// Conditional rules: `required_if` fields must have a value when their condition holds;
    /// `read_only_if` fields cannot be changed (`changed` names the fields this write changes).
    pub fn check_conditions(
        &self,
        record: &Map<String, Value>,
        changed: &[&str],
        locale: Locale,
    ) -> Vec<FieldIssue> {
        let mut issues = Vec::new();
        let mut evaluate = |name: &str, script: &Script, code: &'static str, applies: bool| {
            if !applies {
                return;
            }
            match self
                .eval_over_fields(script, record)
                .and_then(trellis_script::condition_value)
            {
                Ok(true) => issues.push(FieldIssue {
                    pointer: format!("/{name}"),
                    code,
                    message: message(code, locale, ""),
                }),
                Ok(false) => {}
                Err(error) => issues.push(FieldIssue {
                    pointer: format!("/{name}"),
                    code: "expression_failed",
                    message: message("expression_failed", locale, &error.message),
                }),
            }
        };
        for (name, script) in &self.required_if {
            let empty = record
                .get(name)
                .is_none_or(|v| v.is_null() || v == "" || v == &Value::Array(Vec::new()));
            evaluate(name, script, "required", empty);
        }
        for (name, script) in &self.read_only_if {
            evaluate(name, script, "read_only", changed.contains(&name.as_str()));
        }
        issues
    }

    /// Whether any `read_only_if` condition looks at which fields a write changes (the `changed` of
    /// [`Self::prepare`]); when none does, callers need not collect them.
    pub fn checks_changed_fields(&self) -> bool {
        !self.read_only_if.is_empty()
    }

    /// Everything a save checks, in order: recompute computed fields, validate the record, then apply
    /// the conditional rules (`changed` names the fields this write changes). A computed field that
    /// fails because its inputs are invalid is not reported twice: the inputs' problems are.
    pub fn prepare(
        &self,
        record: &mut Map<String, Value>,
        changed: &[&str],
        locale: Locale,
    ) -> Vec<FieldIssue> {
        let computing = self.compute(record, locale);
        let instance = Value::Object(std::mem::take(record));
        let mut issues = self.validate_value(&instance, locale);
        if let Value::Object(map) = instance {
            *record = map;
        }
        if issues.is_empty() {
            issues.extend(computing);
            issues.extend(self.check_conditions(record, changed, locale));
        }
        issues
    }

    /// `script` over `record` with every field of the entity visible (missing ones as `()`):
    /// natively when the expression allows, without copying the record; otherwise through rhai over
    /// [`Self::with_every_field`].
    fn eval_over_fields(
        &self,
        script: &Script,
        record: &Map<String, Value>,
    ) -> Result<Value, trellis_script::ScriptError> {
        static EMPTY: Value = Value::Null;
        let native = script.eval_native(|name| {
            record.get(name).or_else(|| {
                self.entity
                    .fields
                    .iter()
                    .any(|f| f.name.as_str() == name)
                    .then_some(&EMPTY)
            })
        });
        match native {
            Some(value) => Ok(value),
            None => script.eval(&self.with_every_field(record), &[]),
        }
    }

    /// The record with every field of the entity present (missing ones as null, i.e. `()` in scripts),
    /// so expressions can test `score == ()` instead of failing on an unknown variable.
    fn with_every_field(&self, record: &Map<String, Value>) -> Map<String, Value> {
        let mut full = record.clone();
        for field in &self.entity.fields {
            full.entry(field.name.to_string()).or_insert(Value::Null);
        }
        full
    }

    /// Validate a complete record (fields by name). Every problem is returned, none stops the others.
    pub fn validate(&self, record: &Map<String, Value>, locale: Locale) -> Vec<FieldIssue> {
        self.validate_value(&Value::Object(record.clone()), locale)
    }

    /// Validate a record given as a JSON object value (no copy). Valid records take the fast path: a
    /// yes/no schema check, then only the fields whose kinds need checks beyond JSON Schema.
    pub fn validate_value(&self, instance: &Value, locale: Locale) -> Vec<FieldIssue> {
        let mut issues: Vec<FieldIssue> = if self.schema.is_valid(instance) {
            Vec::new()
        } else {
            self.schema
                .iter_errors(instance)
                .map(|e| schema_issue(&e, locale))
                .collect()
        };
        let Some(record) = instance.as_object() else {
            return issues;
        };
        for &index in &self.special_fields {
            let field = &self.entity.fields[index];
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
                FieldKind::SingleSelect
                    if !options.is_empty()
                        && value.as_str().is_none_or(|v| !options.contains(&v)) =>
                {
                    issues.push(FieldIssue {
                        pointer,
                        code: "enum",
                        message: message("enum", locale, &options.join(", ")),
                    });
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
        if issues.is_empty() {
            return issues;
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
