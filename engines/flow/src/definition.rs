//! Flow files (`flows/<id>.flow.json`) as written: a state machine bound to an entity and one of its
//! fields. Closed enums for actions and assignees; durations are compact (`30d`, `12h`, `45m`, `10s`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use trellis_model::{Identifier, LocalizedText};

/// A flow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowDefinition {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Must equal the file name's stem (`flows/<id>.flow.json`).
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// The entity whose records move through this flow.
    pub entity: Identifier,
    /// The field that holds the record's state (text or single select).
    pub state_field: Identifier,
    pub states: Vec<StateDefinition>,
    #[serde(default)]
    pub transitions: Vec<TransitionDefinition>,
    #[serde(default)]
    pub timers: Vec<TimerDefinition>,
    /// When a new version removes or renames states: where records in each old state go
    /// (`{"old_state": "new_state"}`). Publishing refuses to strand records without it.
    #[serde(default)]
    pub state_mapping: BTreeMap<Identifier, Identifier>,
}

/// One state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateDefinition {
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    /// New records start here (exactly one state is initial).
    #[serde(default)]
    pub initial: bool,
    /// No way out (churned, won, rejected…).
    #[serde(default)]
    pub terminal: bool,
    /// Display colour, e.g. `#2f9e44`.
    #[serde(default)]
    pub color: Option<String>,
    /// How long a record should stay here at most; tasks created in this state are due then.
    #[serde(default)]
    pub sla: Option<String>,
    /// Makes this an approval state: entering it asks the assignees to approve or reject.
    #[serde(default)]
    pub approval: Option<ApprovalDefinition>,
}

/// Who is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Assignee {
    /// Everyone holding this role in the app.
    Role(Identifier),
    /// The user in this field of the record (e.g. the account manager).
    Field(Identifier),
    /// These users (ids or usernames).
    Users(Vec<String>),
    /// One user of this role, in turn (round-robin).
    RoundRobin(Identifier),
}

/// How many approvers must agree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// The first approval decides.
    Any,
    /// Every approver must approve.
    All,
    /// At least this share (1–100) of the approvers.
    Percent(u8),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDefinition {
    pub assignees: Assignee,
    pub mode: ApprovalMode,
    /// The event fired when the approval is granted (a transition from this state must use it).
    pub approve_event: Identifier,
    /// Where a rejection sends the record.
    pub reject_to: Identifier,
    #[serde(default)]
    pub title: Option<LocalizedText>,
}

/// One transition: `event` moves a record from any state in `from` to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionDefinition {
    pub event: Identifier,
    pub from: Vec<Identifier>,
    pub to: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    /// A rhai condition over the record's fields and `event` (the event's data).
    #[serde(default)]
    pub guard: Option<String>,
    /// Roles that may fire it (absent: anyone who may update the record).
    #[serde(default)]
    pub roles: Vec<Identifier>,
    /// Fields the event's data must fill (they are written to the record).
    #[serde(default)]
    pub required: Vec<Identifier>,
    #[serde(default)]
    pub actions: Vec<ActionDefinition>,
}

/// What a transition does besides moving the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionDefinition {
    /// Set fields of the record (values, or `"$event.x"` / `"$now"` / `"$user"`).
    Set(Map<String, Value>),
    /// Create a task in someone's inbox.
    CreateTask(TaskAction),
    /// An in-app notification (and e-mail when SMTP is configured).
    Notify(NotifyAction),
    /// POST the record to a URL (from the outbox, retried with backoff).
    Webhook(WebhookAction),
    /// Create a record of an entity of the app (from the outbox).
    CreateRecord(CreateRecordAction),
    /// Fire an event on the flow of the record a relation points at (from the outbox).
    FireEvent(FireEventAction),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskAction {
    pub title: LocalizedText,
    pub assignee: Assignee,
    /// Due after this long (default: the target state's SLA).
    #[serde(default)]
    pub due_in: Option<String>,
    /// Completing the task with an outcome fires the mapped event (`{"done": "finish"}`).
    #[serde(default)]
    pub outcomes: BTreeMap<String, Identifier>,
    /// When overdue, reassign to (escalation).
    #[serde(default)]
    pub escalate_to: Option<Assignee>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyAction {
    pub to: Assignee,
    pub message: LocalizedText,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookAction {
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRecordAction {
    pub entity: Identifier,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FireEventAction {
    /// A relation field of this record naming the records whose flow gets the event; absent: this
    /// record itself (after commit, e.g. a rule moving a lead to MQL through its flow).
    #[serde(default)]
    pub relation: Option<Identifier>,
    pub flow: Identifier,
    pub event: Identifier,
}

/// Fires an event when a record has been in a state for a while, or at a date field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimerDefinition {
    pub state: Identifier,
    pub event: Identifier,
    /// After this long in the state (`30d`).
    #[serde(default)]
    pub after: Option<String>,
    /// At the date or date-time in this field.
    #[serde(default)]
    pub at_field: Option<Identifier>,
    /// On a cron schedule (`minute hour day month weekday`, UTC), while the record is in the state;
    /// a transition back into the same state schedules the next run.
    #[serde(default)]
    pub cron: Option<String>,
}

/// The first time after `after` that the cron expression `expression` (5 fields, or 6–7 with
/// seconds and year) names; `None` when it never does or does not parse.
pub fn next_cron(
    expression: &str,
    after: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use std::str::FromStr;
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expression}")
    } else {
        expression.to_owned()
    };
    cron::Schedule::from_str(&full).ok()?.after(&after).next()
}

/// Parse a compact duration: `30d`, `12h`, `45m`, `10s` (whole numbers) into seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().checked_sub(1)?);
    let number: i64 = number.parse().ok().filter(|n| *n >= 0)?;
    let factor = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return None,
    };
    number.checked_mul(factor)
}

/// The JSON Schema of flow files (`schemas/flow.schema.json`), generated from [`FlowDefinition`].
pub fn schema() -> Value {
    trellis_model::schemas::schema_for::<FlowDefinition>(
        "flow",
        "Trellis flow (flows/<id>.flow.json)",
    )
}
