//! Evaluating a rule on a record without IO: whether it matches, what it writes, whether it rejects
//! the change, which actions follow — and a trace of every value it computed, for dry runs and the run
//! log. A runaway script stops at the sandbox's limits with an error naming the rule.

use serde::Serialize;
use serde_json::{Map, Value};
use trellis_model::LocalizedText;

use crate::compile::CompiledRule;
use crate::definition::RuleAction;

/// One step of a rule's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStep {
    /// `condition`, `set <field>`, `action <name>`.
    pub step: String,
    pub source: Option<String>,
    pub value: Value,
}

/// What a rule does with a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub rule: String,
    pub matched: bool,
    /// Fields the rule sets, by name.
    pub writes: Map<String, Value>,
    /// Set when the rule refuses the change (before-save rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject: Option<LocalizedText>,
    /// Actions that run after the save (notifications, webhooks, records, events).
    pub actions: Vec<RuleAction>,
    pub trace: Vec<TraceStep>,
}

/// A rule that failed while evaluating (e.g. stopped by the sandbox).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFailure {
    pub rule: String,
    pub message: String,
}

impl std::fmt::Display for RuleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rule '{}' failed: {}", self.rule, self.message)
    }
}

/// Evaluate `rule` on `record` (fields by name); `before` is the record before the change, if any.
pub fn evaluate(
    rule: &CompiledRule,
    record: &Map<String, Value>,
    before: Option<&Map<String, Value>>,
) -> Result<Evaluation, RuleFailure> {
    let fail = |message: String| RuleFailure {
        rule: rule.id().to_owned(),
        message,
    };
    // Scripts see exactly the fields the rule reads (static analysis), `()` when empty: cheaper than
    // turning every field into a rhai value, and the same result. Later sets see earlier ones: a
    // field's value is the rule's own write, else the record's.
    static EMPTY: Value = Value::Null;
    let value_of = |writes: &Map<String, Value>, name: &str| -> Option<Value> {
        writes.get(name).or_else(|| record.get(name)).cloned()
    };
    // `before` as a rhai variable, built only when rhai runs.
    let before_value = std::cell::OnceCell::new();
    let run = |script: &trellis_script::Script,
               writes: &Map<String, Value>|
     -> Result<Value, trellis_script::ScriptError> {
        // Natively when the expression and its values allow (a variable named `before` is rhai's).
        let native = script.eval_native(|name| {
            if name == "before" || !rule.reads.iter().any(|r| r == name) {
                return None;
            }
            Some(
                writes
                    .get(name)
                    .or_else(|| record.get(name))
                    .unwrap_or(&EMPTY),
            )
        });
        if let Some(value) = native {
            return Ok(value);
        }
        let visible: Map<String, Value> = rule
            .reads
            .iter()
            .map(|name| (name.clone(), value_of(writes, name).unwrap_or(Value::Null)))
            .collect();
        let before =
            before_value.get_or_init(|| before.map_or(Value::Null, |b| Value::Object(b.clone())));
        script.eval_with_rhai(&visible, &[("before", before)])
    };
    let mut evaluation = Evaluation {
        rule: rule.id().to_owned(),
        matched: true,
        writes: Map::new(),
        reject: None,
        actions: Vec::new(),
        trace: Vec::new(),
    };
    if let Some((source, script)) = &rule.condition {
        let value = run(script, &Map::new()).map_err(|e| fail(e.to_string()))?;
        evaluation.matched = value == Value::Bool(true);
        evaluation.trace.push(TraceStep {
            step: "condition".into(),
            source: Some(source.clone()),
            value,
        });
        if !evaluation.matched {
            return Ok(evaluation);
        }
    }
    for action in &rule.definition.actions {
        match action {
            RuleAction::Set(fields) => {
                for (name, literal) in fields {
                    let (value, source) = match rule.expressions.get(name) {
                        Some(script) => (
                            run(script, &evaluation.writes)
                                .map_err(|e| fail(format!("setting '{name}': {e}")))?,
                            literal
                                .as_str()
                                .map(|s| s.trim_start_matches('=').to_owned()),
                        ),
                        None => (literal.clone(), None),
                    };
                    evaluation.trace.push(TraceStep {
                        step: format!("set {name}"),
                        source,
                        value: value.clone(),
                    });
                    evaluation.writes.insert(name.clone(), value);
                }
            }
            RuleAction::Reject(message) => {
                evaluation.trace.push(TraceStep {
                    step: "action reject".into(),
                    source: None,
                    value: serde_json::json!(message),
                });
                evaluation.reject = Some(message.clone());
            }
            other => {
                evaluation.trace.push(TraceStep {
                    step: format!("action {}", other.name()),
                    source: None,
                    value: serde_json::json!(other),
                });
                evaluation.actions.push(other.clone());
            }
        }
    }
    Ok(evaluation)
}
