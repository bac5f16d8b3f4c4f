//! Rule files (`rules/<id>.rule.json`, optionally with `rules/<id>.rhai` as the condition): a trigger,
//! a rhai condition, ordered actions, an order number. Set values are JSON literals, or rhai expressions
//! when written as strings starting with `=` (`"=score + 10"`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use trellis_flow::definition::{Assignee, CreateRecordAction, FireEventAction, WebhookAction};
use trellis_model::{Identifier, LocalizedText};

/// A rule file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Must equal the file name's stem (`rules/<id>.rule.json`).
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// The entity whose records the rule watches.
    pub entity: Identifier,
    pub trigger: Trigger,
    /// A rhai condition over the record's fields (and `before`, the record before the change); absent:
    /// always. `rules/<id>.rhai`, when present, is the condition.
    #[serde(default)]
    pub condition: Option<String>,
    pub actions: Vec<RuleAction>,
    /// Rules of one trigger run in ascending order, then by id (deterministic).
    #[serde(default)]
    pub order: i32,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

/// When a rule runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// Before a create or update is stored: may set fields or reject the change.
    BeforeSave {
        #[serde(default)]
        on: Vec<SaveKind>,
    },
    RecordCreated {},
    /// After an update; with `fields`, only when one of them changed.
    RecordUpdated {
        #[serde(default)]
        fields: Vec<Identifier>,
    },
    /// After a record is deleted (soft delete); the condition sees the record as it was. Follow-up
    /// actions only (notify, webhook, create a record or task, fire an event).
    RecordDeleted {},
    /// When a record enters `state` of `flow` (created in it, or moved into it).
    StateEntered {
        flow: Identifier,
        state: Identifier,
    },
    /// When a record leaves `state` of `flow`.
    StateLeft {
        flow: Identifier,
        state: Identifier,
    },
    /// Only from `POST …/rules/{rule}/run` (and batch runs).
    Manual {},
    /// Inbound: a POST to `/api/apps/{app}/rules/{rule}/webhook` signed with the webhook secret
    /// (`x-trellis-signature: sha256=<hex HMAC of the body>`), its JSON body the new record's fields
    /// (e.g. a website form). When the condition holds, the rule's `set`s apply and the record is
    /// created — validated like any other, then `record_created` rules follow.
    Webhook {},
    /// On a cron schedule (`minute hour day month weekday`, UTC), over every matching record.
    Schedule {
        cron: String,
    },
    /// Once a day (00:00 UTC), over the records whose date `field` is today plus `days_before`;
    /// `every_year` compares month and day only (birthdays, anniversaries).
    DateReached {
        field: Identifier,
        #[serde(default)]
        days_before: i64,
        #[serde(default = "enabled")]
        every_year: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaveKind {
    Create,
    Update,
}

/// What a matching rule does, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// Set fields of the record (`"=expr"` values are rhai expressions).
    Set(Map<String, Value>),
    /// Refuse the change (before-save rules only), with a message per language.
    Reject(LocalizedText),
    /// An in-app notification.
    Notify {
        to: Assignee,
        message: LocalizedText,
    },
    /// POST the record to a URL (signed, retried from the outbox).
    Webhook(WebhookAction),
    /// Create a record (`$record.field`, `$record_id` refer to this record; `"=expr"` values are
    /// rhai expressions over its fields).
    CreateRecord(CreateRecordAction),
    /// Fire an event on the flow of a related record.
    FireEvent(FireEventAction),
    /// A task in someone's inbox (assignee by user field, role, round-robin …), with a due time.
    CreateTask(trellis_flow::definition::TaskAction),
    /// Change other records (after commit, from the outbox): the record(s) a `relation` of this
    /// record points at, or those of `entity` matching `filter`, get the `set` values.
    /// `"$record.field"` and `"$record_id"` in the filter and the values refer to this record;
    /// `"=expr"` values are rhai expressions over each target record's fields, with this record as
    /// `source` — e.g. `"=orders_count + 1"`, `"=total_spent + source.total"` (applied with the
    /// target's version checked, retried on a concurrent change, so no increment is lost).
    UpdateRecords(UpdateRecordsAction),
    /// Write a report's result back onto this entity's records (`schedule` and `manual` rules
    /// only): every result row whose `key` column holds the id of a record gets `set` — field →
    /// output column — e.g. nightly RFM scores, segments, P(alive) and CLV. Records whose values
    /// already match are not touched; writes go through validation and rules like any update.
    ApplyReport(ApplyReportAction),
}

/// See [`RuleAction::ApplyReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyReportAction {
    pub report: Identifier,
    /// The output column holding the record id (e.g. `customer` of a per-customer report).
    pub key: String,
    /// Field of this entity → output column of the report.
    pub set: std::collections::BTreeMap<Identifier, String>,
    /// Field of this entity → the value for records the report has **no** row for (e.g. a 12-month
    /// spend of 0 for a customer who bought nothing in 12 months, an engagement score of 0 for a lead
    /// with no activity in the window). Without it such records keep their values.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub otherwise: std::collections::BTreeMap<Identifier, serde_json::Value>,
}

/// See [`RuleAction::UpdateRecords`]: give `relation`, or `entity` and `filter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRecordsAction {
    #[serde(default)]
    pub relation: Option<Identifier>,
    #[serde(default)]
    pub entity: Option<Identifier>,
    #[serde(default)]
    #[schemars(with = "Option<trellis_model::Filter>")]
    pub filter: Option<Value>,
    pub set: Map<String, Value>,
}

/// Most records one `update_records` action may change (more is refused, not truncated).
pub const UPDATE_RECORDS_LIMIT: usize = 1000;

impl RuleAction {
    /// Whether the action only makes sense before the save (it changes or refuses the change).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Set(_) => "set",
            Self::Reject(_) => "reject",
            Self::Notify { .. } => "notify",
            Self::Webhook(_) => "webhook",
            Self::CreateRecord(_) => "create_record",
            Self::FireEvent(_) => "fire_event",
            Self::CreateTask(_) => "create_task",
            Self::UpdateRecords(_) => "update_records",
            Self::ApplyReport(_) => "apply_report",
        }
    }
}

/// The JSON Schema of rule files (`schemas/rule.schema.json`).
pub fn schema() -> Value {
    trellis_model::schemas::schema_for::<RuleDefinition>(
        "rule",
        "Trellis rule (rules/<id>.rule.json)",
    )
}
