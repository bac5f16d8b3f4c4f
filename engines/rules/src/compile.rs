//! Checking and compiling the rules of a bundle: every problem at once with pointers, plus static
//! analysis — the fields each rule reads and writes, warnings for two rules writing one field on one
//! trigger, and for rules that may trigger each other in a cycle.

use std::collections::{BTreeMap, BTreeSet};

use trellis_model::{AppBundle, EntityDefinition, FieldKind, Problems};
use trellis_script::Script;

use crate::definition::{RuleAction, RuleDefinition, Trigger};

/// A checked rule with its scripts compiled.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub definition: RuleDefinition,
    pub(crate) condition: Option<(String, Script)>,
    /// Per set action: field → compiled expression (for `=expr` values).
    pub(crate) expressions: BTreeMap<String, Script>,
    /// Fields the condition and expressions read.
    pub reads: BTreeSet<String>,
    /// Fields the rule sets.
    pub writes: BTreeSet<String>,
    /// The app version the rule belongs to.
    pub app_version: i64,
}

impl CompiledRule {
    pub fn id(&self) -> &str {
        self.definition.id.as_str()
    }
}

fn identifiers(source: &str) -> BTreeSet<String> {
    source
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Check and compile every rule of `bundle`.
pub fn check_rules(
    bundle: &AppBundle,
) -> (BTreeMap<String, CompiledRule>, Vec<trellis_model::Problem>) {
    let mut all = Vec::new();
    let mut rules = BTreeMap::new();
    for (path, value) in &bundle.raw().0 {
        let Some(id) = path
            .strip_prefix("rules/")
            .and_then(|p| p.strip_suffix(".rule.json"))
        else {
            continue;
        };
        let definition: RuleDefinition = match serde_json::from_value(value.clone()) {
            Ok(rule) => rule,
            Err(error) => {
                let mut local = Problems::default();
                local.error(
                    path,
                    "",
                    "invalid_rule",
                    format!("not a valid rule: {error}"),
                );
                all.extend(local.into_vec());
                continue;
            }
        };
        let mut local = Problems::default();
        let Some(entity) = bundle.entities.get(&definition.entity) else {
            local.error(
                path,
                "/entity",
                "unknown_entity",
                format!("'{}' is not an entity of this app", definition.entity),
            );
            all.extend(local.into_vec());
            continue;
        };
        let script = bundle
            .scripts
            .iter()
            .find(|(k, _)| k.as_str() == id)
            .map(|(_, s)| s.clone());
        let compiled = compile_rule(path, definition, script, entity, bundle, &mut local);
        if !local.has_errors() {
            rules.insert(id.to_owned(), compiled);
        }
        all.extend(local.into_vec());
    }
    let mut warnings = Problems::default();
    analyse(&rules, &mut warnings);
    all.extend(warnings.into_vec());
    (rules, all)
}

fn compile_rule(
    file: &str,
    definition: RuleDefinition,
    script: Option<String>,
    entity: &EntityDefinition,
    bundle: &AppBundle,
    problems: &mut Problems,
) -> CompiledRule {
    let mut reads = BTreeSet::new();
    let mut writes = BTreeSet::new();
    let field_names: BTreeSet<String> = entity.fields.iter().map(|f| f.name.to_string()).collect();
    if let Trigger::RecordUpdated { fields } = &definition.trigger {
        for (i, field) in fields.iter().enumerate() {
            if entity.field(field.as_str()).is_none() {
                problems.error(
                    file,
                    format!("/trigger/record_updated/fields/{i}"),
                    "unknown_field",
                    format!("'{field}' is not a field of {}", entity.id),
                );
            }
        }
    }
    match &definition.trigger {
        Trigger::Schedule { cron }
            if trellis_flow::definition::next_cron(cron, chrono::Utc::now()).is_none() =>
        {
            problems.error(file, "/trigger/schedule/cron", "bad_cron", format!("'{cron}' is not a cron schedule such as '0 9 * * Mon' (minute hour day month weekday)"));
        }
        Trigger::DateReached { field, .. }
            if entity
                .field(field.as_str())
                .is_none_or(|f| !matches!(f.kind, FieldKind::Date | FieldKind::Datetime)) =>
        {
            problems.error(
                file,
                "/trigger/date_reached/field",
                "not_a_date_field",
                format!(
                    "'{field}' is not a date or date-time field of {}",
                    entity.id
                ),
            );
        }
        Trigger::StateEntered { flow, state } | Trigger::StateLeft { flow, state } => {
            let kind = if matches!(definition.trigger, Trigger::StateEntered { .. }) {
                "state_entered"
            } else {
                "state_left"
            };
            let shape = bundle
                .raw()
                .0
                .get(&format!("flows/{flow}.flow.json"))
                .and_then(|v| {
                    Some((
                        v.get("entity")?.as_str()?.to_owned(),
                        v.get("states")?
                            .as_array()?
                            .iter()
                            .filter_map(|s| s.get("id")?.as_str().map(str::to_owned))
                            .collect::<Vec<_>>(),
                    ))
                });
            match shape {
                None => problems.error(
                    file,
                    format!("/trigger/{kind}/flow"),
                    "unknown_flow",
                    format!("'{flow}' is not a flow of this app"),
                ),
                Some((flow_entity, _)) if flow_entity != entity.id.as_str() => problems.error(
                    file,
                    format!("/trigger/{kind}/flow"),
                    "flow_entity_mismatch",
                    format!(
                        "flow '{flow}' runs on {flow_entity}, this rule on {}",
                        entity.id
                    ),
                ),
                Some((_, states)) if !states.iter().any(|s| s == state.as_str()) => problems.error(
                    file,
                    format!("/trigger/{kind}/state"),
                    "unknown_state",
                    format!("'{state}' is not a state of flow '{flow}'"),
                ),
                Some(_) => {}
            }
        }
        _ => {}
    }
    let deleted = matches!(definition.trigger, Trigger::RecordDeleted {});
    let source = script.or_else(|| definition.condition.clone());
    let condition = match &source {
        None => None,
        Some(source) => match trellis_script::compile(source) {
            Ok(script) => {
                reads.extend(identifiers(source).intersection(&field_names).cloned());
                Some((source.clone(), script))
            }
            Err(error) => {
                problems.error(
                    file,
                    "/condition",
                    "invalid_condition",
                    format!("the condition does not compile: {error}"),
                );
                None
            }
        },
    };
    let mut expressions = BTreeMap::new();
    let before_save = matches!(
        definition.trigger,
        Trigger::BeforeSave { .. } | Trigger::Webhook {}
    );
    for (i, action) in definition.actions.iter().enumerate() {
        let at = format!("/actions/{i}");
        match action {
            RuleAction::Set(fields) => {
                for (name, value) in fields {
                    let Some(field) = entity.field(name) else {
                        problems.error(
                            file,
                            format!("{at}/set/{name}"),
                            "unknown_field",
                            format!("'{name}' is not a field of {}", entity.id),
                        );
                        continue;
                    };
                    if field.kind.is_system_managed() || field.annotations.computed.is_some() {
                        problems.error(
                            file,
                            format!("{at}/set/{name}"),
                            "read_only_field",
                            format!("'{name}' is filled by Trellis and cannot be set by a rule"),
                        );
                    }
                    writes.insert(name.clone());
                    if let Some(expression) = value.as_str().and_then(|s| s.strip_prefix('=')) {
                        match trellis_script::compile(expression) {
                            Ok(script) => {
                                reads.extend(
                                    identifiers(expression).intersection(&field_names).cloned(),
                                );
                                expressions.insert(name.clone(), script);
                            }
                            Err(error) => problems.error(
                                file,
                                format!("{at}/set/{name}"),
                                "invalid_expression",
                                format!("the expression does not compile: {error}"),
                            ),
                        }
                    }
                }
            }
            RuleAction::Reject(_) if !before_save => {
                problems.error(
                    file,
                    format!("{at}/reject"),
                    "reject_after_save",
                    "only before_save rules can reject a change",
                );
            }
            RuleAction::Reject(_) | RuleAction::Webhook(_) => {}
            RuleAction::UpdateRecords(update) => {
                let target_id = match (&update.relation, &update.entity, &update.filter) {
                    (Some(relation), None, None) => {
                        let target = entity
                            .field(relation.as_str())
                            .and_then(|f| f.annotations.relation.as_ref())
                            .map(|r| r.entity.clone());
                        if target.is_none() {
                            problems.error(
                                file,
                                format!("{at}/update_records/relation"),
                                "not_a_relation",
                                format!("'{relation}' is not a relation field of {}", entity.id),
                            );
                        }
                        target
                    }
                    (None, Some(target), Some(filter)) => {
                        if !filter.is_object() {
                            problems.error(
                                file,
                                format!("{at}/update_records/filter"),
                                "invalid_filter",
                                "a filter tree selecting the records to change",
                            );
                        }
                        Some(target.clone())
                    }
                    _ => {
                        problems.error(
                            file,
                            format!("{at}/update_records"),
                            "bad_target",
                            "say which records to change: a `relation` of this record, or an `entity` with a `filter`",
                        );
                        None
                    }
                };
                match target_id.as_ref().map(|id| (id, bundle.entities.get(id))) {
                    Some((id, None)) => problems.error(
                        file,
                        format!("{at}/update_records/entity"),
                        "unknown_entity",
                        format!("'{id}' is not an entity of this app"),
                    ),
                    Some((_, Some(target))) => {
                        for (name, value) in &update.set {
                            // `"=expr"`: a rhai expression over the target record's fields, with
                            // the triggering record as `source`.
                            if let Some(expression) =
                                value.as_str().and_then(|s| s.strip_prefix('='))
                                && let Err(error) = trellis_script::compile(expression)
                            {
                                problems.error(
                                    file,
                                    format!("{at}/update_records/set/{name}"),
                                    "invalid_expression",
                                    format!("the expression does not compile: {error}"),
                                );
                            }
                            match target.field(name) {
                                None => problems.error(
                                    file,
                                    format!("{at}/update_records/set/{name}"),
                                    "unknown_field",
                                    format!("'{name}' is not a field of {}", target.id),
                                ),
                                Some(field)
                                    if field.kind.is_system_managed()
                                        || field.annotations.computed.is_some() =>
                                {
                                    problems.error(
                                        file,
                                        format!("{at}/update_records/set/{name}"),
                                        "read_only_field",
                                        format!("'{name}' is filled by Trellis and cannot be set by a rule"),
                                    )
                                }
                                Some(_) => {}
                            }
                        }
                    }
                    None => {}
                }
            }
            RuleAction::ApplyReport(apply) => {
                if !matches!(
                    definition.trigger,
                    Trigger::Schedule { .. } | Trigger::Manual {}
                ) {
                    problems.error(
                        file,
                        format!("{at}/apply_report"),
                        "apply_report_trigger",
                        "apply_report runs once over a report's result: use a schedule or manual trigger",
                    );
                }
                if definition.condition.is_some() || definition.actions.len() > 1 {
                    problems.error(
                        file,
                        format!("{at}/apply_report"),
                        "apply_report_alone",
                        "a rule that applies a report has no condition and no other action (the report's filter chooses the rows)",
                    );
                }
                let report_entity = bundle
                    .documents
                    .get(&(
                        trellis_model::document::DocumentKind::Report,
                        apply.report.clone(),
                    ))
                    .map(|d| {
                        d.body
                            .get("dataset")
                            .and_then(|d| d.get("entity"))
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_owned)
                    });
                if report_entity.is_none() {
                    problems.error(
                        file,
                        format!("{at}/apply_report/report"),
                        "unknown_report",
                        format!("the app has no report '{}'", apply.report),
                    );
                }
                let targets = apply
                    .set
                    .keys()
                    .map(|name| (name, "set"))
                    .chain(apply.otherwise.keys().map(|name| (name, "otherwise")));
                for (name, part) in targets {
                    match entity.field(name.as_str()) {
                        None => problems.error(
                            file,
                            format!("{at}/apply_report/{part}/{name}"),
                            "unknown_field",
                            format!("'{name}' is not a field of {}", entity.id),
                        ),
                        Some(field)
                            if field.kind.is_system_managed()
                                || field.annotations.computed.is_some() =>
                        {
                            problems.error(
                                file,
                                format!("{at}/apply_report/{part}/{name}"),
                                "read_only_field",
                                format!(
                                    "'{name}' is filled by Trellis and cannot be set by a rule"
                                ),
                            )
                        }
                        Some(_) => {
                            writes.insert(name.to_string());
                        }
                    }
                }
            }
            RuleAction::CreateTask(task) => {
                if let Some(due) = &task.due_in
                    && trellis_flow::definition::parse_duration(due).is_none()
                {
                    problems.error(
                        file,
                        format!("{at}/create_task/due_in"),
                        "bad_duration",
                        format!("'{due}' is not a duration such as 30d, 12h, 45m or 10s"),
                    );
                }
                if let trellis_flow::definition::Assignee::Field(field) = &task.assignee
                    && entity
                        .field(field.as_str())
                        .is_none_or(|f| f.kind != FieldKind::User)
                {
                    problems.error(
                        file,
                        format!("{at}/create_task/assignee"),
                        "not_a_user_field",
                        format!("'{field}' is not a user field of {}", entity.id),
                    );
                }
            }
            RuleAction::Notify { to, .. } => {
                if let trellis_flow::definition::Assignee::Field(field) = to
                    && entity
                        .field(field.as_str())
                        .is_none_or(|f| f.kind != FieldKind::User)
                {
                    problems.error(
                        file,
                        format!("{at}/notify/to"),
                        "not_a_user_field",
                        format!("'{field}' is not a user field of {}", entity.id),
                    );
                }
            }
            RuleAction::CreateRecord(create) => {
                match bundle.entities.get(&create.entity) {
                    None => problems.error(
                        file,
                        format!("{at}/create_record/entity"),
                        "unknown_entity",
                        format!("'{}' is not an entity of this app", create.entity),
                    ),
                    Some(target) => {
                        for (name, value) in &create.fields {
                            if target.field(name).is_none() {
                                problems.error(
                                    file,
                                    format!("{at}/create_record/fields/{name}"),
                                    "unknown_field",
                                    format!("'{name}' is not a field of {}", target.id),
                                );
                            }
                            // `"=expr"`: a rhai expression over this record's fields.
                            if let Some(expression) =
                                value.as_str().and_then(|s| s.strip_prefix('='))
                                && let Err(error) = trellis_script::compile(expression)
                            {
                                problems.error(
                                    file,
                                    format!("{at}/create_record/fields/{name}"),
                                    "invalid_expression",
                                    format!("the expression does not compile: {error}"),
                                );
                            }
                        }
                    }
                }
            }
            RuleAction::FireEvent(fire) => match &fire.relation {
                Some(relation)
                    if !entity
                        .field(relation.as_str())
                        .is_some_and(|f| f.kind.is_relation()) =>
                {
                    problems.error(
                        file,
                        format!("{at}/fire_event/relation"),
                        "not_a_relation",
                        format!("'{relation}' is not a relation field of {}", entity.id),
                    );
                }
                Some(_) => {}
                None => {
                    let flow = bundle.documents.get(&(
                        trellis_model::document::DocumentKind::Flow,
                        fire.flow.clone(),
                    ));
                    if flow.is_none_or(|f| f.entity.as_ref() != Some(&entity.id)) {
                        problems.error(
                            file,
                            format!("{at}/fire_event/flow"),
                            "unknown_flow",
                            format!(
                                "without a relation the event goes to this record, so '{}' must be a flow of {}",
                                fire.flow, entity.id
                            ),
                        );
                    }
                }
            },
        }
        if deleted && matches!(action, RuleAction::Set(_)) {
            problems.error(
                file,
                format!("{at}/set"),
                "set_on_deleted",
                "a deleted record cannot be changed; use notify, webhook, create_record, create_task or fire_event",
            );
        }
        if before_save && !matches!(action, RuleAction::Set(_) | RuleAction::Reject(_)) {
            problems.error(file, at.clone(), "after_save_action", format!("a before_save or webhook rule can only set fields or reject; move '{}' to a record_created/record_updated rule", action.name()));
        }
    }
    CompiledRule {
        definition,
        condition,
        expressions,
        reads,
        writes,
        app_version: 0,
    }
}

/// Warnings: two rules writing one field on one trigger; rules that may trigger each other. Disabled
/// rules never fire, so they take no part (alternatives such as two engagement scorings, one of them
/// off, are not reported until both are on).
fn analyse(rules: &BTreeMap<String, CompiledRule>, problems: &mut Problems) {
    let trigger_key = |rule: &CompiledRule| -> String {
        let kind = match &rule.definition.trigger {
            Trigger::BeforeSave { .. } => "before_save",
            Trigger::RecordCreated {} => "record_created",
            Trigger::RecordUpdated { .. } => "record_updated",
            Trigger::RecordDeleted {} => "record_deleted",
            Trigger::StateEntered { .. } => "state_entered",
            Trigger::StateLeft { .. } => "state_left",
            Trigger::Manual {} => "manual",
            Trigger::Webhook {} => "webhook",
            Trigger::Schedule { .. } => "schedule",
            Trigger::DateReached { .. } => "date_reached",
        };
        format!("{}:{kind}", rule.definition.entity)
    };
    let list: Vec<&CompiledRule> = rules.values().filter(|r| r.definition.enabled).collect();
    for (i, a) in list.iter().enumerate() {
        for b in list.iter().skip(i + 1) {
            if trigger_key(a) != trigger_key(b) {
                continue;
            }
            for field in a.writes.intersection(&b.writes) {
                problems.warning(
                    &format!("rules/{}.rule.json", b.id()),
                    "/actions",
                    "same_field_written",
                    format!("rules '{}' and '{}' both set '{field}' on the same trigger; the one with the higher order (then id) wins", a.id(), b.id()),
                );
            }
        }
    }
    // A rule that writes fields triggers record_updated rules watching them (or watching any field).
    let triggers = |from: &CompiledRule, to: &CompiledRule| -> bool {
        from.definition.entity == to.definition.entity
            && !from.writes.is_empty()
            && !matches!(from.definition.trigger, Trigger::BeforeSave { .. })
            && match &to.definition.trigger {
                Trigger::RecordUpdated { fields } => {
                    fields.is_empty() || fields.iter().any(|f| from.writes.contains(f.as_str()))
                }
                _ => false,
            }
    };
    for start in &list {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<&CompiledRule> = list
            .iter()
            .copied()
            .filter(|r| triggers(start, r))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(rule) = stack.pop() {
            if rule.id() == start.id() {
                problems.warning(
                    &format!("rules/{}.rule.json", start.id()),
                    "/trigger",
                    "rule_cycle",
                    format!("rule '{}' can trigger itself again through the fields it sets; runs stop at depth {} with an error", start.id(), crate::MAX_DEPTH),
                );
                break;
            }
            if seen.insert(rule.id().to_owned()) {
                stack.extend(list.iter().copied().filter(|r| triggers(rule, r)));
            }
        }
    }
}
