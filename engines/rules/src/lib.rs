//! The rule engine: "if this happens, then do that", defined by analysts in `rules/<id>.rule.json`.
//!
//! [`check_rules`] validates and compiles every rule of a bundle (all problems at once) and analyses
//! them statically (fields read and written, two rules writing one field on one trigger, rules that may
//! trigger each other). [`evaluate`] runs a rule on a record without IO — condition, set expressions,
//! rejection, follow-up actions — with a trace of every value. Order of execution for one trigger:
//! ascending `order`, then id. The runtime commits a trigger's writes together and bounds cascades at
//! [`MAX_DEPTH`].
//!
//! Architecture invariant: pure — no IO, no `sqlx`, no `axum`, nothing from `crates/`.

pub mod compile;
pub mod definition;
pub mod evaluate;
pub mod prefilter;

pub use compile::{CompiledRule, check_rules};
pub use definition::{
    ApplyReportAction, RuleAction, RuleDefinition, SaveKind, Trigger, UPDATE_RECORDS_LIMIT,
    UpdateRecordsAction, schema,
};
pub use evaluate::{Evaluation, RuleFailure, TraceStep, evaluate};

/// How deep rules may trigger rules (a rule's writes firing `record_updated` rules) before the run
/// stops with an error.
pub const MAX_DEPTH: usize = 8;

/// The rules of `entity` for one trigger kind, in execution order (ascending `order`, then id).
pub fn in_order<'a>(
    rules: impl Iterator<Item = &'a CompiledRule>,
    entity: &str,
    matches: impl Fn(&Trigger) -> bool,
) -> Vec<&'a CompiledRule> {
    let mut selected: Vec<&CompiledRule> = rules
        .filter(|r| {
            r.definition.enabled
                && r.definition.entity.as_str() == entity
                && matches(&r.definition.trigger)
        })
        .collect();
    selected.sort_by(|a, b| (a.definition.order, a.id()).cmp(&(b.definition.order, b.id())));
    selected
}
