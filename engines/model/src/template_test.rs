//! A template's own test cases (`tests/<name>.test.json`): records to create, flow events to fire,
//! updates to make, and what must follow — field values, refusals, record counts. `trellis template
//! validate` runs them against a scratch database, so a template that breaks its own promises (a rule
//! that no longer scores, a flow that no longer moves) cannot be packed or published.
//!
//! Steps run in order; `as` names a created record so later steps can use it, and a string value
//! `"@name"` in data stands for that record's id (for relations).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::document::DocumentKind;
use crate::pointer::deserialize_at;
use crate::{AppBundle, Identifier, LocalizedText, Problems};

/// `tests/<name>.test.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Trellis template test (tests/<name>.test.json)")]
pub struct TemplateTest {
    /// Metadata format version of this file; currently 1.
    pub format_version: u32,
    /// Must equal the file name's stem.
    pub id: Identifier,
    #[serde(default)]
    pub label: Option<LocalizedText>,
    /// What the test shows, in plain words.
    #[serde(default)]
    pub description: Option<LocalizedText>,
    /// The steps, run in order.
    pub steps: Vec<TestStep>,
}

/// One step of a test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TestStep {
    /// Create a record (before-save rules and computed fields apply, as for a user).
    Create {
        entity: Identifier,
        /// Name for later steps.
        #[serde(default, rename = "as")]
        name: Option<Identifier>,
        #[serde(default)]
        data: Map<String, Value>,
        /// The create must be refused with this error code (e.g. `rule_rejected`, `required`).
        #[serde(default)]
        expect_error: Option<String>,
    },
    /// Merge-patch a named record.
    Update {
        record: Identifier,
        data: Map<String, Value>,
        #[serde(default)]
        expect_error: Option<String>,
    },
    /// Fire a flow event on a named record.
    Fire {
        record: Identifier,
        flow: Identifier,
        event: Identifier,
        #[serde(default)]
        data: Map<String, Value>,
        /// The event must be refused (409).
        #[serde(default)]
        expect_refused: bool,
    },
    /// Run a rule over every record it matches, as `POST …/rules/{rule}/run` (for scheduled and
    /// date rules: as if their time had come).
    RunRule { rule: Identifier },
    /// Complete the oldest open task of a named record with an outcome (which may fire its event).
    CompleteTask {
        record: Identifier,
        #[serde(default)]
        outcome: Option<String>,
    },
    /// A named record's fields must hold these values (other fields are not compared).
    Expect {
        record: Identifier,
        fields: Map<String, Value>,
    },
    /// The entity must hold this many live records.
    ExpectCount { entity: Identifier, count: u64 },
    /// A named record must have this many open tasks (from flows or rules), each due within
    /// `due_within_days` when given.
    ExpectTasks {
        record: Identifier,
        open: u64,
        #[serde(default)]
        due_within_days: Option<u32>,
    },
}

/// Parse and check every test of a bundle against its entities and flows; all problems at once.
pub fn check_template_tests(bundle: &AppBundle) -> (Vec<TemplateTest>, Problems) {
    let mut problems = Problems::default();
    let mut tests = Vec::new();
    for ((kind, id), document) in &bundle.documents {
        if *kind != DocumentKind::Test {
            continue;
        }
        let file = format!("tests/{id}.test.json");
        let _ = document;
        let Some(value) = bundle.raw().0.get(&file) else {
            continue;
        };
        let test: TemplateTest = match deserialize_at(value, "") {
            Ok(test) => test,
            Err((pointer, message)) => {
                problems.error(&file, pointer, "invalid_test", message);
                continue;
            }
        };
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut entity_of: Vec<(&str, &Identifier)> = Vec::new();
        for (index, step) in test.steps.iter().enumerate() {
            let at = format!("/steps/{index}");
            let known_record = |record: &Identifier, key: &str, problems: &mut Problems| {
                if !names.contains(record.as_str()) {
                    problems.error(
                        &file,
                        format!("{at}/{key}/record"),
                        "unknown_record",
                        format!("no earlier step creates a record named '{record}' (use \"as\")"),
                    );
                }
            };
            match step {
                TestStep::Create {
                    entity, name, data, ..
                } => {
                    check_fields(
                        bundle,
                        entity,
                        data,
                        &file,
                        &format!("{at}/create"),
                        &mut problems,
                    );
                    if let Some(name) = name {
                        entity_of.push((name.as_str(), entity));
                        names.insert(name.as_str());
                    }
                }
                TestStep::Update { record, data, .. } => {
                    known_record(record, "update", &mut problems);
                    if let Some((_, entity)) = entity_of.iter().find(|(n, _)| *n == record.as_str())
                    {
                        check_fields(
                            bundle,
                            entity,
                            data,
                            &file,
                            &format!("{at}/update"),
                            &mut problems,
                        );
                    }
                }
                TestStep::Fire { record, flow, .. } => {
                    known_record(record, "fire", &mut problems);
                    if !bundle
                        .documents
                        .contains_key(&(DocumentKind::Flow, flow.clone()))
                    {
                        problems.error(
                            &file,
                            format!("{at}/fire/flow"),
                            "unknown_flow",
                            format!("the template has no flow '{flow}'"),
                        );
                    }
                }
                TestStep::Expect { record, fields } => {
                    known_record(record, "expect", &mut problems);
                    if let Some((_, entity)) = entity_of.iter().find(|(n, _)| *n == record.as_str())
                    {
                        check_fields(
                            bundle,
                            entity,
                            fields,
                            &file,
                            &format!("{at}/expect/fields"),
                            &mut problems,
                        );
                    }
                }
                TestStep::RunRule { rule } => {
                    if !bundle
                        .documents
                        .contains_key(&(DocumentKind::Rule, rule.clone()))
                    {
                        problems.error(
                            &file,
                            format!("{at}/run_rule/rule"),
                            "unknown_rule",
                            format!("the template has no rule '{rule}'"),
                        );
                    }
                }
                TestStep::CompleteTask { record, .. } => {
                    known_record(record, "complete_task", &mut problems);
                }
                TestStep::ExpectTasks { record, .. } => {
                    known_record(record, "expect_tasks", &mut problems);
                }
                TestStep::ExpectCount { entity, .. } => {
                    if !bundle.entities.contains_key(entity) {
                        problems.error(
                            &file,
                            format!("{at}/expect_count/entity"),
                            "unknown_entity",
                            format!("the template has no entity '{entity}'"),
                        );
                    }
                }
            }
        }
        tests.push(test);
    }
    (tests, problems)
}

fn check_fields(
    bundle: &AppBundle,
    entity: &Identifier,
    data: &Map<String, Value>,
    file: &str,
    at: &str,
    problems: &mut Problems,
) {
    let Some(definition) = bundle.entities.get(entity) else {
        problems.error(
            file,
            format!("{at}/entity"),
            "unknown_entity",
            format!("the template has no entity '{entity}'"),
        );
        return;
    };
    for key in data.keys() {
        if key != "id" && definition.field(key).is_none() {
            problems.error(
                file,
                format!("{at}/{}", crate::pointer::escape_token(key)),
                "unknown_field",
                format!("'{key}' is not a field of {entity}"),
            );
        }
    }
}
