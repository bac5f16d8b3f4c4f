//! Deciding, without IO, whether an event may fire on a record and what it does: the state it moves
//! to, the fields it writes (required fields from the event's data, `set` actions), the values the guard
//! saw, and the actions to enqueue — or why not, in plain words.

use serde::Serialize;
use serde_json::{Map, Value};
use trellis_model::EntityDefinition;
use trellis_script::Script;

use crate::definition::{ActionDefinition, FlowDefinition, StateDefinition, TransitionDefinition};

/// A checked flow with its guards compiled.
#[derive(Debug, Clone)]
pub struct CompiledFlow {
    pub definition: FlowDefinition,
    guards: Vec<Option<Script>>,
    /// The app version this definition belongs to (runs are pinned to it).
    pub app_version: i64,
}

/// Who fires, with what, and when.
#[derive(Debug, Clone)]
pub struct FireContext<'a> {
    pub user_id: &'a str,
    /// The roles the user holds in the app.
    pub roles: &'a [String],
    /// Platform admins and the system (timers, task outcomes) pass every role check.
    pub privileged: bool,
    /// The event's data (`event` in guards).
    pub data: &'a Map<String, Value>,
    /// Now, RFC 3339 (for `"$now"`).
    pub now: &'a str,
}

/// Why an event cannot fire.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Refusal {
    UnknownEvent {
        event: String,
    },
    WrongState {
        state: Option<String>,
        from: Vec<String>,
    },
    WrongRole {
        roles: Vec<String>,
    },
    MissingFields {
        fields: Vec<String>,
    },
    GuardFalse {
        guard: String,
        inputs: Map<String, Value>,
    },
    GuardFailed {
        guard: String,
        error: String,
    },
}

impl Refusal {
    /// The reason in plain words.
    pub fn message(&self) -> String {
        match self {
            Self::UnknownEvent { event } => format!("the flow has no event '{event}'"),
            Self::WrongState { state, from } => format!(
                "the record is in state '{}', and this event only leaves {}",
                state.as_deref().unwrap_or("(none)"),
                from.iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::WrongRole { roles } => format!("only {} may fire this event", roles.join(", ")),
            Self::MissingFields { fields } => {
                format!("fill {} to fire this event", fields.join(", "))
            }
            Self::GuardFalse { guard, inputs } => {
                format!(
                    "the condition `{guard}` is false for {}",
                    Value::Object(inputs.clone())
                )
            }
            Self::GuardFailed { guard, error } => {
                format!("the condition `{guard}` failed: {error}")
            }
        }
    }
}

/// An event that may fire.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    pub event: String,
    pub from: Option<String>,
    pub to: String,
    /// Fields to write with the state change (by name).
    pub writes: Map<String, Value>,
    /// The values the guard saw.
    pub inputs: Map<String, Value>,
    /// Actions other than `set`, to run in the transaction or enqueue.
    pub actions: Vec<ActionDefinition>,
}

/// One event as offered on a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventOption {
    pub event: String,
    pub to: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Identifiers a guard reads: record fields named in its source.
fn guard_inputs(
    source: &str,
    record: &Map<String, Value>,
    data: &Map<String, Value>,
) -> Map<String, Value> {
    let words: std::collections::BTreeSet<&str> = source
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    let mut inputs: Map<String, Value> = record
        .iter()
        .filter(|(name, _)| words.contains(name.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if words.contains("event") {
        inputs.insert("event".into(), Value::Object(data.clone()));
    }
    inputs
}

impl CompiledFlow {
    /// Compile the guards of a checked flow.
    pub fn compile(definition: FlowDefinition, _entity: &EntityDefinition) -> Result<Self, String> {
        let guards = definition
            .transitions
            .iter()
            .map(|t| t.guard.as_deref().map(trellis_script::compile).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            definition,
            guards,
            app_version: 0,
        })
    }

    pub fn id(&self) -> &str {
        self.definition.id.as_str()
    }

    pub fn state_field(&self) -> &str {
        self.definition.state_field.as_str()
    }

    pub fn initial(&self) -> Option<&StateDefinition> {
        self.definition.states.iter().find(|s| s.initial)
    }

    pub fn state(&self, id: &str) -> Option<&StateDefinition> {
        self.definition.states.iter().find(|s| s.id.as_str() == id)
    }

    /// The record's current state (its state field's value).
    pub fn state_of<'r>(&self, record: &'r Map<String, Value>) -> Option<&'r str> {
        record.get(self.state_field()).and_then(Value::as_str)
    }

    /// Decide `event` on `record` (fields by name).
    pub fn decide(
        &self,
        event: &str,
        record: &Map<String, Value>,
        context: &FireContext<'_>,
    ) -> Result<Firing, Refusal> {
        let state = self.state_of(record);
        let candidates: Vec<(usize, &TransitionDefinition)> = self
            .definition
            .transitions
            .iter()
            .enumerate()
            .filter(|(_, t)| t.event.as_str() == event)
            .collect();
        if candidates.is_empty() {
            return Err(Refusal::UnknownEvent {
                event: event.to_owned(),
            });
        }
        let from_here: Vec<(usize, &TransitionDefinition)> = candidates
            .iter()
            .copied()
            .filter(|(_, t)| state.is_some_and(|s| t.from.iter().any(|f| f.as_str() == s)))
            .collect();
        if from_here.is_empty() {
            let mut from: Vec<String> = candidates
                .iter()
                .flat_map(|(_, t)| t.from.iter().map(|f| f.to_string()))
                .collect();
            from.dedup();
            return Err(Refusal::WrongState {
                state: state.map(str::to_owned),
                from,
            });
        }
        // The first transition (in file order) that passes wins; otherwise the first refusal explains.
        let mut first_refusal = None;
        for (index, transition) in from_here {
            match self.try_transition(index, transition, state, record, context) {
                Ok(firing) => return Ok(firing),
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        Err(first_refusal.expect("at least one candidate"))
    }

    fn try_transition(
        &self,
        index: usize,
        transition: &TransitionDefinition,
        state: Option<&str>,
        record: &Map<String, Value>,
        context: &FireContext<'_>,
    ) -> Result<Firing, Refusal> {
        if !context.privileged
            && !transition.roles.is_empty()
            && !transition
                .roles
                .iter()
                .any(|r| context.roles.iter().any(|held| held == r.as_str()))
        {
            return Err(Refusal::WrongRole {
                roles: transition.roles.iter().map(|r| r.to_string()).collect(),
            });
        }
        let missing: Vec<String> = transition
            .required
            .iter()
            .filter(|name| {
                let given = context
                    .data
                    .get(name.as_str())
                    .or_else(|| record.get(name.as_str()));
                given.is_none_or(|v| v.is_null() || v.as_str() == Some(""))
            })
            .map(|n| n.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(Refusal::MissingFields { fields: missing });
        }
        let mut inputs = Map::new();
        if let (Some(guard), Some(source)) = (&self.guards[index], &transition.guard) {
            let event = Value::Object(context.data.clone());
            inputs = guard_inputs(source, record, context.data);
            match guard.holds(record, &[("event", &event)]) {
                Ok(true) => {}
                Ok(false) => {
                    return Err(Refusal::GuardFalse {
                        guard: source.clone(),
                        inputs,
                    });
                }
                Err(error) => {
                    return Err(Refusal::GuardFailed {
                        guard: source.clone(),
                        error: error.to_string(),
                    });
                }
            }
        }
        let mut writes = Map::new();
        for name in &transition.required {
            if let Some(value) = context.data.get(name.as_str()) {
                writes.insert(name.to_string(), value.clone());
            }
        }
        let mut actions = Vec::new();
        for action in &transition.actions {
            match action {
                ActionDefinition::Set(fields) => {
                    for (name, value) in fields {
                        writes.insert(name.clone(), self.resolve(value, context));
                    }
                }
                other => actions.push(other.clone()),
            }
        }
        writes.insert(
            self.state_field().to_owned(),
            Value::String(transition.to.to_string()),
        );
        Ok(Firing {
            event: transition.event.to_string(),
            from: state.map(str::to_owned),
            to: transition.to.to_string(),
            writes,
            inputs,
            actions,
        })
    }

    fn resolve(&self, value: &Value, context: &FireContext<'_>) -> Value {
        match value.as_str() {
            Some("$now") => Value::String(context.now.to_owned()),
            Some("$user") => Value::String(context.user_id.to_owned()),
            Some(text) if text.starts_with("$event.") => context
                .data
                .get(&text["$event.".len()..])
                .cloned()
                .unwrap_or(Value::Null),
            _ => value.clone(),
        }
    }

    /// Every event of the flow, as offered on `record`: allowed or not, and why not.
    pub fn options(
        &self,
        record: &Map<String, Value>,
        context: &FireContext<'_>,
    ) -> Vec<EventOption> {
        let mut events: Vec<&str> = Vec::new();
        for transition in &self.definition.transitions {
            if !events.contains(&transition.event.as_str()) {
                events.push(transition.event.as_str());
            }
        }
        events
            .into_iter()
            .map(|event| match self.decide(event, record, context) {
                Ok(firing) => EventOption {
                    event: event.to_owned(),
                    to: firing.to,
                    allowed: true,
                    reason: None,
                },
                Err(refusal) => EventOption {
                    event: event.to_owned(),
                    to: self
                        .definition
                        .transitions
                        .iter()
                        .find(|t| t.event.as_str() == event)
                        .map(|t| t.to.to_string())
                        .unwrap_or_default(),
                    allowed: false,
                    reason: Some(refusal.message()),
                },
            })
            .collect()
    }
}
