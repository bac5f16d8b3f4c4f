//! Design-time checks of flows, with petgraph: every problem at once, each with its file and pointer,
//! in plain words — unknown states, fields, roles and events; no or several initial states; states
//! unreachable from the initial one; dead ends (non-terminal states with no way out); terminal states
//! with a way out; guards that do not compile; and, as warnings, two transitions for one event from one
//! state whose guards may both hold.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Bfs;
use serde_json::Value;
use trellis_model::{AppBundle, EntityDefinition, FieldKind, Problems};

use crate::decide::CompiledFlow;
use crate::definition::{ActionDefinition, Assignee, FlowDefinition, parse_duration};

/// The values a select field allows (its schema `enum`, else its options); `None` for other kinds.
fn allowed_values(field: &trellis_model::FieldDefinition) -> Option<Vec<String>> {
    if field.kind != FieldKind::SingleSelect {
        return None;
    }
    match field.schema.get("enum").and_then(Value::as_array) {
        Some(values) => Some(
            values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        None => Some(
            field
                .annotations
                .options
                .iter()
                .map(|o| o.value.clone())
                .collect(),
        ),
    }
}

/// Check every flow of `bundle`; returns the compiled flows (those without errors) and all problems.
pub fn check_flows(
    bundle: &AppBundle,
) -> (BTreeMap<String, CompiledFlow>, Vec<trellis_model::Problem>) {
    let mut all = Vec::new();
    let mut flows = BTreeMap::new();
    let role_ids: BTreeSet<String> = bundle.roles().iter().map(|r| r.id.to_string()).collect();
    let flow_ids: BTreeSet<String> = bundle
        .raw()
        .0
        .keys()
        .filter_map(|k| k.strip_prefix("flows/")?.strip_suffix(".flow.json"))
        .map(str::to_owned)
        .collect();
    for (path, value) in &bundle.raw().0 {
        let Some(id) = path
            .strip_prefix("flows/")
            .and_then(|p| p.strip_suffix(".flow.json"))
        else {
            continue;
        };
        let mut problems = Problems::default();
        let flow: FlowDefinition = match serde_json::from_value(value.clone()) {
            Ok(flow) => flow,
            Err(error) => {
                problems.error(
                    path,
                    "",
                    "invalid_flow",
                    format!("not a valid flow: {error}"),
                );
                all.extend(problems.into_vec());
                continue;
            }
        };
        let mut checker = Checker {
            file: path,
            flow: &flow,
            problems: &mut problems,
            roles: &role_ids,
            flows: &flow_ids,
        };
        let entity = bundle.entities.get(&flow.entity);
        match entity {
            None => checker.error(
                "/entity",
                "unknown_entity",
                format!("'{}' is not an entity of this app", flow.entity),
            ),
            Some(entity) => checker.check(entity, bundle),
        }
        if !problems.has_errors()
            && let Some(compiled) =
                entity.and_then(|entity| CompiledFlow::compile(flow, entity).ok())
        {
            flows.insert(id.to_owned(), compiled);
        }
        all.extend(problems.into_vec());
    }
    (flows, all)
}

struct Checker<'a> {
    file: &'a str,
    flow: &'a FlowDefinition,
    problems: &'a mut Problems,
    roles: &'a BTreeSet<String>,
    flows: &'a BTreeSet<String>,
}

impl Checker<'_> {
    fn error(&mut self, pointer: impl Into<String>, code: &'static str, message: String) {
        self.problems.error(self.file, pointer, code, message);
    }

    fn state_exists(&self, id: &str) -> bool {
        self.flow.states.iter().any(|s| s.id.as_str() == id)
    }

    fn check_assignee(&mut self, assignee: &Assignee, entity: &EntityDefinition, at: &str) {
        match assignee {
            Assignee::Role(role) | Assignee::RoundRobin(role) => {
                if !self.roles.contains(role.as_str()) {
                    self.error(at, "unknown_role", format!("the app has no role '{role}'"));
                }
            }
            Assignee::Field(field) => match entity.field(field.as_str()) {
                Some(f) if f.kind == FieldKind::User => {}
                Some(_) => self.error(
                    at,
                    "not_a_user_field",
                    format!("'{field}' does not hold a user"),
                ),
                None => self.error(
                    at,
                    "unknown_field",
                    format!("'{field}' is not a field of {}", entity.id),
                ),
            },
            Assignee::Users(users) if users.is_empty() => {
                self.error(at, "no_assignees", "name at least one user".into());
            }
            Assignee::Users(_) => {}
        }
    }

    fn check(&mut self, entity: &EntityDefinition, bundle: &AppBundle) {
        let flow = self.flow;
        // The state field.
        let allowed = match entity.field(flow.state_field.as_str()) {
            None => {
                self.error(
                    "/state_field",
                    "unknown_field",
                    format!("'{}' is not a field of {}", flow.state_field, entity.id),
                );
                None
            }
            Some(field) if !matches!(field.kind, FieldKind::Text | FieldKind::SingleSelect) => {
                self.error(
                    "/state_field",
                    "bad_state_field",
                    format!(
                        "'{}' is a {} field; a state field is text or a single select",
                        field.name,
                        field.kind.name()
                    ),
                );
                None
            }
            Some(field) => allowed_values(field),
        };
        // States.
        let mut seen = BTreeSet::new();
        for (i, state) in flow.states.iter().enumerate() {
            if !seen.insert(state.id.as_str()) {
                self.error(
                    format!("/states/{i}/id"),
                    "duplicate_state",
                    format!("state '{}' is defined twice", state.id),
                );
            }
            if let Some(values) = &allowed
                && !values.iter().any(|v| v == state.id.as_str())
            {
                self.error(
                    format!("/states/{i}/id"),
                    "state_not_an_option",
                    format!(
                        "'{}' is not an option of field '{}'",
                        state.id, flow.state_field
                    ),
                );
            }
            if let Some(sla) = &state.sla
                && parse_duration(sla).is_none()
            {
                self.error(
                    format!("/states/{i}/sla"),
                    "bad_duration",
                    format!("'{sla}' is not a duration such as 30d, 12h, 45m or 10s"),
                );
            }
            if let Some(approval) = &state.approval {
                self.check_assignee(
                    &approval.assignees,
                    entity,
                    &format!("/states/{i}/approval/assignees"),
                );
                if !self.state_exists(approval.reject_to.as_str()) {
                    self.error(
                        format!("/states/{i}/approval/reject_to"),
                        "unknown_state",
                        format!("there is no state '{}'", approval.reject_to),
                    );
                }
                if !flow
                    .transitions
                    .iter()
                    .any(|t| t.event == approval.approve_event && t.from.contains(&state.id))
                {
                    self.error(
                        format!("/states/{i}/approval/approve_event"),
                        "unknown_event",
                        format!(
                            "no transition from '{}' uses event '{}'",
                            state.id, approval.approve_event
                        ),
                    );
                }
                if let crate::definition::ApprovalMode::Percent(p) = approval.mode
                    && !(1..=100).contains(&p)
                {
                    self.error(
                        format!("/states/{i}/approval/mode"),
                        "bad_percent",
                        "a percentage is between 1 and 100".into(),
                    );
                }
            }
        }
        match flow.states.iter().filter(|s| s.initial).count() {
            0 => self.error(
                "/states",
                "no_initial_state",
                "no state is marked initial: mark the state new records start in".into(),
            ),
            1 => {}
            n => self.error(
                "/states",
                "several_initial_states",
                format!("{n} states are marked initial; exactly one may be"),
            ),
        }
        // Transitions.
        for (i, transition) in flow.transitions.iter().enumerate() {
            let at = format!("/transitions/{i}");
            if transition.from.is_empty() {
                self.error(
                    format!("{at}/from"),
                    "no_source_state",
                    "name the states this event leaves from".into(),
                );
            }
            for (j, from) in transition.from.iter().enumerate() {
                if !self.state_exists(from.as_str()) {
                    self.error(
                        format!("{at}/from/{j}"),
                        "unknown_state",
                        format!("there is no state '{from}'"),
                    );
                }
            }
            if !self.state_exists(transition.to.as_str()) {
                self.error(
                    format!("{at}/to"),
                    "unknown_state",
                    format!("there is no state '{}'", transition.to),
                );
            }
            if let Some(guard) = &transition.guard
                && let Err(error) = trellis_script::compile(guard)
            {
                self.error(
                    format!("{at}/guard"),
                    "invalid_guard",
                    format!("the guard does not compile: {error}"),
                );
            }
            for (j, role) in transition.roles.iter().enumerate() {
                if !self.roles.contains(role.as_str()) {
                    self.error(
                        format!("{at}/roles/{j}"),
                        "unknown_role",
                        format!("the app has no role '{role}'"),
                    );
                }
            }
            for (j, field) in transition.required.iter().enumerate() {
                if entity.field(field.as_str()).is_none() {
                    self.error(
                        format!("{at}/required/{j}"),
                        "unknown_field",
                        format!("'{field}' is not a field of {}", entity.id),
                    );
                }
            }
            for (j, action) in transition.actions.iter().enumerate() {
                self.check_action(action, entity, bundle, &format!("{at}/actions/{j}"));
            }
        }
        for (old, new) in &flow.state_mapping {
            if !self.state_exists(new.as_str()) {
                self.error(
                    format!("/state_mapping/{old}"),
                    "unknown_state",
                    format!("there is no state '{new}' to move '{old}' records to"),
                );
            }
        }
        // Timers.
        for (i, timer) in flow.timers.iter().enumerate() {
            let at = format!("/timers/{i}");
            if !self.state_exists(timer.state.as_str()) {
                self.error(
                    format!("{at}/state"),
                    "unknown_state",
                    format!("there is no state '{}'", timer.state),
                );
            }
            if !flow
                .transitions
                .iter()
                .any(|t| t.event == timer.event && t.from.contains(&timer.state))
            {
                self.error(
                    format!("{at}/event"),
                    "unknown_event",
                    format!(
                        "no transition from '{}' uses event '{}'",
                        timer.state, timer.event
                    ),
                );
            }
            match (&timer.after, &timer.at_field) {
                (None, None) if timer.cron.is_some() => {
                    let expression = timer.cron.as_deref().unwrap_or_default();
                    if crate::definition::next_cron(expression, chrono::Utc::now()).is_none() {
                        self.error(format!("{at}/cron"), "bad_cron", format!("'{expression}' is not a cron schedule such as '0 9 * * Mon' (minute hour day month weekday)"));
                    }
                }
                (Some(after), None) if timer.cron.is_none() => {
                    if parse_duration(after).is_none() {
                        self.error(
                            format!("{at}/after"),
                            "bad_duration",
                            format!("'{after}' is not a duration such as 30d, 12h, 45m or 10s"),
                        );
                    }
                }
                (None, Some(field)) if timer.cron.is_none() => match entity.field(field.as_str()) {
                    Some(f) if matches!(f.kind, FieldKind::Date | FieldKind::Datetime) => {}
                    _ => self.error(
                        format!("{at}/at_field"),
                        "not_a_date_field",
                        format!(
                            "'{field}' is not a date or date-time field of {}",
                            entity.id
                        ),
                    ),
                },
                _ => self.error(
                    at,
                    "timer_when",
                    "give exactly one of `after`, `at_field` and `cron`".into(),
                ),
            }
        }
        self.check_graph();
    }

    fn check_action(
        &mut self,
        action: &ActionDefinition,
        entity: &EntityDefinition,
        bundle: &AppBundle,
        at: &str,
    ) {
        match action {
            ActionDefinition::Set(fields) => {
                for name in fields.keys() {
                    if entity.field(name).is_none() {
                        self.error(
                            format!("{at}/set/{name}"),
                            "unknown_field",
                            format!("'{name}' is not a field of {}", entity.id),
                        );
                    } else if name == self.flow.state_field.as_str() {
                        self.error(
                            format!("{at}/set/{name}"),
                            "sets_state",
                            "the state field moves with transitions, not with set".into(),
                        );
                    }
                }
            }
            ActionDefinition::CreateTask(task) => {
                self.check_assignee(
                    &task.assignee,
                    entity,
                    &format!("{at}/create_task/assignee"),
                );
                if let Some(escalate) = &task.escalate_to {
                    self.check_assignee(escalate, entity, &format!("{at}/create_task/escalate_to"));
                }
                if let Some(due) = &task.due_in
                    && parse_duration(due).is_none()
                {
                    self.error(
                        format!("{at}/create_task/due_in"),
                        "bad_duration",
                        format!("'{due}' is not a duration such as 30d, 12h, 45m or 10s"),
                    );
                }
                for (outcome, event) in &task.outcomes {
                    if !self.flow.transitions.iter().any(|t| &t.event == event) {
                        self.error(
                            format!("{at}/create_task/outcomes/{outcome}"),
                            "unknown_event",
                            format!("no transition uses event '{event}'"),
                        );
                    }
                }
            }
            ActionDefinition::Notify(notify) => {
                self.check_assignee(&notify.to, entity, &format!("{at}/notify/to"))
            }
            ActionDefinition::Webhook(hook) => {
                if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
                    self.error(
                        format!("{at}/webhook/url"),
                        "bad_url",
                        format!("'{}' is not an http(s) URL", hook.url),
                    );
                }
            }
            ActionDefinition::CreateRecord(create) => match bundle.entities.get(&create.entity) {
                None => self.error(
                    format!("{at}/create_record/entity"),
                    "unknown_entity",
                    format!("'{}' is not an entity of this app", create.entity),
                ),
                Some(target) => {
                    for name in create.fields.keys() {
                        if target.field(name).is_none() {
                            self.error(
                                format!("{at}/create_record/fields/{name}"),
                                "unknown_field",
                                format!("'{name}' is not a field of {}", target.id),
                            );
                        }
                    }
                }
            },
            ActionDefinition::FireEvent(fire) => {
                if let Some(relation) = &fire.relation
                    && !entity
                        .field(relation.as_str())
                        .is_some_and(|f| f.kind.is_relation())
                {
                    self.error(
                        format!("{at}/fire_event/relation"),
                        "not_a_relation",
                        format!("'{relation}' is not a relation field of {}", entity.id),
                    );
                }
                if !self.flows.contains(fire.flow.as_str()) {
                    self.error(
                        format!("{at}/fire_event/flow"),
                        "unknown_flow",
                        format!("the app has no flow '{}'", fire.flow),
                    );
                }
            }
        }
    }

    /// Reachability, dead ends, terminal states with exits, overlapping transitions.
    fn check_graph(&mut self) {
        let flow = self.flow;
        let mut graph: DiGraph<&str, usize> = DiGraph::new();
        let nodes: BTreeMap<&str, NodeIndex> = flow
            .states
            .iter()
            .map(|s| (s.id.as_str(), graph.add_node(s.id.as_str())))
            .collect();
        for (i, transition) in flow.transitions.iter().enumerate() {
            let Some(&to) = nodes.get(transition.to.as_str()) else {
                continue;
            };
            for from in &transition.from {
                if let Some(&from) = nodes.get(from.as_str()) {
                    graph.add_edge(from, to, i);
                }
            }
        }
        for state in &flow.states {
            if let (Some(approval), Some(&from)) = (&state.approval, nodes.get(state.id.as_str()))
                && let Some(&to) = nodes.get(approval.reject_to.as_str())
            {
                graph.add_edge(from, to, usize::MAX);
            }
        }
        if let Some(initial) = flow.states.iter().find(|s| s.initial)
            && let Some(&start) = nodes.get(initial.id.as_str())
        {
            let mut reached = BTreeSet::new();
            let mut bfs = Bfs::new(&graph, start);
            while let Some(node) = bfs.next(&graph) {
                reached.insert(node);
            }
            for (i, state) in flow.states.iter().enumerate() {
                if !reached.contains(&nodes[state.id.as_str()]) {
                    self.error(format!("/states/{i}"), "unreachable_state", format!("state '{}' cannot be reached from the initial state '{}': no chain of transitions leads there", state.id, initial.id));
                }
            }
        }
        for (i, state) in flow.states.iter().enumerate() {
            let node = nodes[state.id.as_str()];
            let exits = graph.edges(node).count();
            if state.terminal && exits > 0 {
                self.error(format!("/states/{i}/terminal"), "terminal_with_exit", format!("state '{}' is terminal but transitions leave it; make it non-terminal or remove those transitions", state.id));
            }
            if !state.terminal && exits == 0 {
                self.error(format!("/states/{i}"), "dead_end", format!("state '{}' is not terminal but no transition leaves it: records would be stuck there; add a transition or mark it terminal", state.id));
            }
        }
        // Overlaps: one event, one source state, two transitions — unless we cannot tell, warn.
        for (i, a) in flow.transitions.iter().enumerate() {
            for (j, b) in flow.transitions.iter().enumerate().skip(i + 1) {
                if a.event != b.event {
                    continue;
                }
                if let Some(shared) = a.from.iter().find(|s| b.from.contains(s)) {
                    let how = match (&a.guard, &b.guard) {
                        (None, None) => "neither has a guard".to_owned(),
                        (None, Some(_)) | (Some(_), None) => {
                            "one has no guard, so it always holds".to_owned()
                        }
                        (Some(x), Some(y)) => format!("guards `{x}` and `{y}` may both hold"),
                    };
                    self.problems.warning(
                        self.file,
                        format!("/transitions/{j}"),
                        "overlapping_transitions",
                        format!("event '{}' from state '{shared}' matches transitions {i} and {j} and {how}; the first listed wins", a.event),
                    );
                }
            }
        }
    }
}
