//! The shared rhai sandbox: the one place a script engine is built.
//!
//! [`engine`] returns the process-wide engine, built by [`build_engine`] with limits on operations,
//! call depth, expression depth and string/array/map sizes; there is no file or network access (rhai is
//! compiled without modules or time), `eval` is disabled and `print`/`debug` go nowhere. On top sits a
//! small business library ([`functions`]): date arithmetic, exact money math, string helpers, `in_list`.
//! Computed fields, conditional field rules, flow guards and rules all compile through [`compile`] and
//! run through [`Script::eval`], which evaluates plain expressions natively ([`native`]) and
//! everything else with rhai.
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.

pub mod functions;
pub mod native;

use std::sync::OnceLock;

use rhai::{AST, Dynamic, Engine, Scope};
use serde_json::{Map, Value};

/// Limits every script runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub max_call_levels: usize,
    pub max_expr_depth: usize,
    pub max_string_size: usize,
    pub max_array_size: usize,
    pub max_map_size: usize,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self {
            max_operations: 100_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 64 * 1024,
            max_array_size: 10_000,
            max_map_size: 10_000,
        }
    }
}

/// A script that did not compile or failed while running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScriptError {
    pub message: String,
    /// 1-based line and column in the source, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl ScriptError {
    fn at(message: String, position: rhai::Position) -> Self {
        Self {
            message,
            line: position.line(),
            column: position.position(),
        }
    }
}

/// Build a sandboxed engine with `limits` and the business library.
pub fn build_engine(limits: ScriptLimits) -> Engine {
    let mut engine = Engine::new();
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.disable_symbol("eval");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.set_fail_on_invalid_map_property(false);
    functions::register(&mut engine);
    engine
}

/// The process-wide engine with the default limits.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| build_engine(ScriptLimits::default()))
}

/// A compiled expression or script.
#[derive(Debug, Clone)]
pub struct Script {
    ast: AST,
    /// The same expression compiled natively, when it is a plain expression over fields.
    native: Option<native::NativeExpr>,
    /// Every word of the source (names, and words inside strings and comments): only the record's
    /// fields named here go into rhai's scope — a script reads variables by name only. `None`
    /// (every field) when the source asks for variables by computed names (`is_def_var`).
    mentioned: Option<std::collections::HashSet<String>>,
}

/// The words of `source` (runs of letters, digits and `_`): a superset of the variables it reads.
fn words_of(source: &str) -> std::collections::HashSet<String> {
    source
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Compile `source` with the shared engine (and natively when it is a plain expression).
pub fn compile(source: &str) -> Result<Script, ScriptError> {
    engine()
        .compile_expression(source)
        .or_else(|_| engine().compile(source))
        .map(|ast| {
            let words = words_of(source);
            Script {
                ast,
                native: native::NativeExpr::compile(source),
                mentioned: (!words.contains("is_def_var")).then_some(words),
            }
        })
        .map_err(|error| ScriptError::at(error.err_type().to_string(), error.position()))
}

impl Script {
    /// Whether the script also runs natively (a plain expression over fields).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// Run with `record` visible as `record` and each field as a variable of its own name; plus `extra`
    /// variables (e.g. `event`). Returns the result as JSON. A plain expression runs natively when
    /// its values allow; otherwise, and for every other script, rhai runs it.
    pub fn eval(
        &self,
        record: &Map<String, Value>,
        extra: &[(&str, &Value)],
    ) -> Result<Value, ScriptError> {
        if let Some(native) = &self.native
            // An extra variable shadows a field of the same name in rhai's scope: rhai decides then.
            && !extra.iter().any(|(name, _)| native.fields().iter().any(|f| f == name))
            && let Some(value) = native.eval(record)
        {
            return Ok(value);
        }
        self.eval_with_rhai(record, extra)
    }

    /// The variables the expression reads, when it runs natively (`None`: only rhai runs it).
    pub fn native_fields(&self) -> Option<&[String]> {
        self.native.as_ref().map(native::NativeExpr::fields)
    }

    /// The expression over `rows` records held as typed columns (see
    /// [`native::NativeExpr::eval_columns`]): per row rhai's result, or `None` where rhai must run;
    /// `None` altogether when the expression does not run natively or a column is missing.
    pub fn eval_columns<'a>(
        &'a self,
        column: impl Fn(&str) -> Option<native::ColumnRef<'a>>,
        rows: usize,
    ) -> Option<Vec<Option<Value>>> {
        self.native.as_ref()?.eval_columns(column, rows)
    }

    /// Per row of [`Script::eval_columns`]: whether the result is decided and is not `true` (see
    /// [`native::NativeExpr::surely_not_true`]).
    pub fn surely_not_true<'a>(
        &'a self,
        column: impl Fn(&str) -> Option<native::ColumnRef<'a>>,
        rows: usize,
    ) -> Option<Vec<bool>> {
        self.native.as_ref()?.surely_not_true(column, rows)
    }

    /// The native result with each variable's value from `lookup`, when the expression runs natively
    /// and its values allow; `None`: run [`Script::eval_with_rhai`] (with the same variables).
    pub fn eval_native<'a>(&self, lookup: impl Fn(&str) -> Option<&'a Value>) -> Option<Value> {
        self.native.as_ref()?.eval_by(lookup)
    }

    /// [`Script::eval`] always through rhai (what the native path is checked against).
    pub fn eval_with_rhai(
        &self,
        record: &Map<String, Value>,
        extra: &[(&str, &Value)],
    ) -> Result<Value, ScriptError> {
        let mut scope = Scope::new();
        let to_dynamic = |value: &Value| rhai::serde::to_dynamic(value).unwrap_or(Dynamic::UNIT);
        let read = |name: &str| self.mentioned.as_ref().is_none_or(|m| m.contains(name));
        for (name, value) in record {
            if read(name) {
                scope.push_dynamic(name.clone(), to_dynamic(value));
            }
        }
        if read("record") {
            scope.push_dynamic("record", to_dynamic(&Value::Object(record.clone())));
        }
        for (name, value) in extra {
            scope.push_dynamic(*name, to_dynamic(value));
        }
        let result: Dynamic = engine()
            .eval_ast_with_scope(&mut scope, &self.ast)
            .map_err(|error| ScriptError::at(error.to_string(), error.position()))?;
        rhai::serde::from_dynamic::<Value>(&result).map_err(|e| ScriptError {
            message: e.to_string(),
            line: None,
            column: None,
        })
    }

    /// Evaluate as a condition: `true` only for boolean true.
    pub fn holds(
        &self,
        record: &Map<String, Value>,
        extra: &[(&str, &Value)],
    ) -> Result<bool, ScriptError> {
        condition_value(self.eval(record, extra)?)
    }
}

/// A condition's result as a yes/no: `()` is no; anything but a boolean is an error.
pub fn condition_value(value: Value) -> Result<bool, ScriptError> {
    match value {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        other => Err(ScriptError {
            message: format!("the condition gave {other}, not true or false"),
            line: None,
            column: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn evaluates_over_fields() {
        let script = compile("score * 2 + record.bonus").unwrap();
        assert_eq!(
            script
                .eval(&record(json!({"score": 20, "bonus": 1})), &[])
                .unwrap(),
            json!(41)
        );
        let condition =
            compile("stage == \"customer\" && in_list(region, [\"north\", \"east\"])").unwrap();
        assert!(
            condition
                .holds(&record(json!({"stage": "customer", "region": "east"})), &[])
                .unwrap()
        );
    }

    #[test]
    fn rhai_sees_every_variable_a_script_names() {
        let fields = record(json!({"score": 7.5, "bonus": 2, "stage": "lead", "other": [1, 2]}));
        // Methods outside the native subset: rhai runs these.
        for (source, expected) in [
            ("score.to_string().len() + bonus", json!(5)),
            ("record.keys().len()", json!(4)),
            ("record[\"bonus\"] + bonus", json!(4)),
            (
                "is_def_var(\"sc\" + \"ore\") && is_def_var(\"other\")",
                json!(true),
            ),
            (
                "if stage.len() > 3 { \"score\" } else { missing }",
                json!("score"),
            ),
        ] {
            let script = compile(source).unwrap();
            assert!(!script.is_native(), "{source}");
            assert_eq!(script.eval(&fields, &[]), Ok(expected), "{source}");
        }
        // A variable the script does not name is not in its scope: a typo still fails.
        let typo = compile("scroe.to_string()").unwrap();
        assert!(typo.eval(&fields, &[]).is_err());
    }

    #[test]
    fn runaway_and_forbidden_scripts_stop() {
        let forever = compile("let x = 0; loop { x += 1; }").unwrap();
        let error = forever.eval(&Map::new(), &[]).unwrap_err();
        assert!(
            error.message.to_lowercase().contains("operations"),
            "{error}"
        );
        assert!(
            compile("eval(\"1\")").is_err()
                || compile("eval(\"1\")")
                    .unwrap()
                    .eval(&Map::new(), &[])
                    .is_err()
        );
        let big = compile("let s = \"x\"; loop { s += s; }").unwrap();
        assert!(big.eval(&Map::new(), &[]).is_err());
        assert!(compile("1 +").is_err());
        let deep = compile("fn f(n) { f(n + 1) } f(0)").unwrap();
        assert!(deep.eval(&Map::new(), &[]).is_err());
    }
}
