//! Running a template's own tests (`tests/<name>.test.json`, format in
//! [`trellis_model::template_test`]) against a scratch SQLite database: each test installs the
//! template as a fresh app and runs its steps through the same runtime paths users take (validation,
//! rules, flows). A failure is reported like any validation problem, `FILE:POINTER: message`, pointing
//! at the step that failed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use trellis_model::template_test::{TemplateTest, TestStep, check_template_tests};
use trellis_model::{Problem, Problems, RawBundle};

use super::InstallOptions;
use crate::apps::check_app_bundle;
use crate::records::ListRequest;
use crate::{Principal, Runtime, RuntimeError, RuntimeSettings};

/// The outcome of one test.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestOutcome {
    pub test: String,
    pub passed: bool,
    pub steps: usize,
}

/// Run every test of `bundle`. Returns each test's outcome and the failures as problems. A bundle that
/// does not validate has no tests to run (its problems are returned).
pub async fn run_template_tests(
    bundle: &RawBundle,
) -> Result<(Vec<TestOutcome>, Vec<Problem>), RuntimeError> {
    let checked = match check_app_bundle(bundle) {
        Ok(checked) => checked,
        Err(problems) => return Ok((Vec::new(), problems)),
    };
    let (tests, _) = check_template_tests(&checked);
    if tests.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let dir = tempfile::tempdir().map_err(|e| RuntimeError::Internal(e.to_string()))?;
    let url = format!("sqlite://{}", dir.path().join("tests.db").display());
    let runtime = Runtime::connect(&url, RuntimeSettings::default()).await?;
    let actor = Principal::system(TEST_USER, TEST_USER);
    let mut outcomes = Vec::new();
    let mut problems = Problems::default();
    for (index, test) in tests.iter().enumerate() {
        let app = format!("test_{index}");
        let options = InstallOptions {
            app: Some(app.clone()),
            sample_data: false,
        };
        runtime
            .install_bundle(&actor, bundle.clone(), &options)
            .await?;
        let before = problems.len();
        run_steps(&runtime, &actor, &app, test, &mut problems).await;
        outcomes.push(TestOutcome {
            test: test.id.to_string(),
            passed: problems.len() == before,
            steps: test.steps.len(),
        });
    }
    Ok((outcomes, problems.into_vec()))
}

/// The user id tests run as (`"$user"` in test data).
pub const TEST_USER: &str = "template-test";

/// Replace `"@name"` strings by the id of the record created `as` name, and `"$user"` by the
/// user the test runs as.
fn resolve(data: &Map<String, Value>, names: &BTreeMap<String, (String, String)>) -> Value {
    Value::Object(
        data.iter()
            .map(|(k, v)| {
                let v = match v.as_str() {
                    Some("$user") => Value::String(TEST_USER.into()),
                    Some(text) if text.starts_with("$today") => {
                        relative_day(text).unwrap_or_else(|| v.clone())
                    }
                    Some(text) if text.starts_with('@') => names
                        .get(&text[1..])
                        .map_or_else(|| v.clone(), |(_, id)| Value::String(id.clone())),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

fn error_code(error: &RuntimeError) -> String {
    match error {
        RuntimeError::InvalidRecord(issues) => {
            issues.iter().map(|i| i.code).collect::<Vec<_>>().join(",")
        }
        RuntimeError::Conflict(_) | RuntimeError::EventNotFromState(_) => "conflict".into(),
        RuntimeError::Forbidden(_) => "forbidden".into(),
        RuntimeError::NotFound(_) => "not_found".into(),
        other => other.to_string(),
    }
}

async fn run_steps(
    runtime: &Runtime,
    actor: &Principal,
    app: &str,
    test: &TemplateTest,
    problems: &mut Problems,
) {
    let file = format!("tests/{}.test.json", test.id);
    let mut reported = 0;
    // name → (entity, record id)
    let mut names: BTreeMap<String, (String, String)> = BTreeMap::new();
    let locale = trellis_form::Locale::En;
    for (index, step) in test.steps.iter().enumerate() {
        let at = format!("/steps/{index}");
        if matches!(
            step,
            TestStep::Expect { .. } | TestStep::ExpectCount { .. } | TestStep::ExpectTasks { .. }
        ) && let Err(message) = settle(runtime, app, &mut reported).await
        {
            problems.error(&file, at.clone(), "test_failed", message);
        }
        let mut fail = |pointer: &str, message: String| {
            problems.error(&file, format!("{at}{pointer}"), "test_failed", message);
        };
        match step {
            TestStep::Create {
                entity,
                name,
                data,
                expect_error,
            } => {
                let result = runtime
                    .create_record(actor, app, entity.as_str(), &resolve(data, &names), locale)
                    .await;
                match (result, expect_error) {
                    (Ok(record), None) => {
                        if let Some(name) = name {
                            names.insert(name.to_string(), (entity.to_string(), record.id));
                        }
                    }
                    (Ok(_), Some(code)) => fail(
                        "/create",
                        format!(
                            "expected the create to be refused with '{code}', but it was saved"
                        ),
                    ),
                    (Err(error), Some(code)) if error_code(&error).contains(code.as_str()) => {}
                    (Err(error), _) => {
                        fail(
                            "/create",
                            format!("the create failed: {error} ({})", error_code(&error)),
                        );
                        return;
                    }
                }
            }
            TestStep::Update {
                record,
                data,
                expect_error,
            } => {
                let Some((entity, id)) = names.get(record.as_str()).cloned() else {
                    return;
                };
                let result = runtime
                    .update_record(
                        actor,
                        app,
                        &entity,
                        &id,
                        &resolve(data, &names),
                        None,
                        locale,
                    )
                    .await;
                match (result, expect_error) {
                    (Ok(_), None) => {}
                    (Ok(_), Some(code)) => fail(
                        "/update",
                        format!(
                            "expected the update to be refused with '{code}', but it was saved"
                        ),
                    ),
                    (Err(error), Some(code)) if error_code(&error).contains(code.as_str()) => {}
                    (Err(error), _) => {
                        fail(
                            "/update",
                            format!("the update failed: {error} ({})", error_code(&error)),
                        );
                        return;
                    }
                }
            }
            TestStep::Fire {
                record,
                flow,
                event,
                data,
                expect_refused,
            } => {
                let Some((entity, id)) = names.get(record.as_str()).cloned() else {
                    return;
                };
                let data = match resolve(data, &names) {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                let result = runtime
                    .fire_event(
                        actor,
                        app,
                        &entity,
                        &id,
                        flow.as_str(),
                        event.as_str(),
                        &data,
                        locale,
                    )
                    .await;
                match (result, expect_refused) {
                    (Ok(_), false)
                    | (Err(RuntimeError::Conflict(_) | RuntimeError::EventNotFromState(_)), true) =>
                        {}
                    (Ok(_), true) => fail(
                        "/fire",
                        format!("expected event '{event}' to be refused, but it applied"),
                    ),
                    (Err(error), _) => {
                        fail("/fire", format!("event '{event}' failed: {error}"));
                        return;
                    }
                }
            }
            TestStep::Expect { record, fields } => {
                let Some((entity, id)) = names.get(record.as_str()).cloned() else {
                    return;
                };
                match runtime.get_record(actor, app, &entity, &id).await {
                    Ok(found) => {
                        let Value::Object(fields) = resolve(fields, &names) else {
                            continue;
                        };
                        for (field, expected) in &fields {
                            let actual = found.data.get(field).cloned().unwrap_or(Value::Null);
                            if !same(&actual, expected) {
                                fail(
                                    &format!("/expect/fields/{field}"),
                                    format!("'{record}'.{field} is {actual}, expected {expected}"),
                                );
                            }
                        }
                    }
                    Err(error) => fail("/expect", format!("cannot read '{record}': {error}")),
                }
            }
            TestStep::RunRule { rule } => {
                if let Err(error) = runtime.run_rule(actor, app, rule.as_str()).await {
                    fail("/run_rule", format!("rule '{rule}' failed: {error}"));
                    return;
                }
            }
            TestStep::CompleteTask { record, outcome } => {
                let Some((_, id)) = names.get(record.as_str()).cloned() else {
                    return;
                };
                if let Err(message) = settle(runtime, app, &mut reported).await {
                    fail("", message);
                }
                let task = match runtime.store().open_tasks_of_record(app, &id).await {
                    Ok(tasks) => tasks.into_iter().next(),
                    Err(error) => {
                        fail("/complete_task", format!("cannot read tasks: {error}"));
                        return;
                    }
                };
                let Some(task) = task else {
                    fail("/complete_task", format!("'{record}' has no open task"));
                    return;
                };
                if let Err(error) = runtime
                    .complete_task(
                        actor,
                        app,
                        &task.id,
                        outcome.as_deref().unwrap_or("done"),
                        locale,
                    )
                    .await
                {
                    fail(
                        "/complete_task",
                        format!("completing '{}' failed: {error}", task.title),
                    );
                    return;
                }
            }
            TestStep::ExpectTasks {
                record,
                open,
                due_within_days,
            } => {
                let Some((_, id)) = names.get(record.as_str()).cloned() else {
                    return;
                };
                match runtime.store().open_tasks_of_record(app, &id).await {
                    Ok(tasks) => {
                        if tasks.len() as u64 != *open {
                            let titles: Vec<&str> =
                                tasks.iter().map(|t| t.title.as_str()).collect();
                            fail(
                                "/expect_tasks/open",
                                format!(
                                    "'{record}' has {} open task(s) {titles:?}, expected {open}",
                                    tasks.len()
                                ),
                            );
                        }
                        if let Some(days) = due_within_days {
                            let limit =
                                chrono::Utc::now() + chrono::Duration::days(i64::from(*days));
                            if let Some(late) = tasks
                                .iter()
                                .find(|t| t.due_at.is_none_or(|due| due > limit))
                            {
                                fail(
                                    "/expect_tasks/due_within_days",
                                    format!(
                                        "task '{}' of '{record}' is due {:?}, not within {days} days",
                                        late.title, late.due_at
                                    ),
                                );
                            }
                        }
                    }
                    Err(error) => fail("/expect_tasks", format!("cannot read tasks: {error}")),
                }
            }
            TestStep::ExpectCount { entity, count } => {
                let request = ListRequest {
                    limit: Some(1),
                    count: true,
                    ..Default::default()
                };
                match runtime
                    .list_records(actor, app, entity.as_str(), &request)
                    .await
                {
                    Ok(page) => {
                        let total = page.total.unwrap_or_default();
                        if total != *count as i64 {
                            fail(
                                "/expect_count/count",
                                format!("{entity} holds {total} records, expected {count}"),
                            );
                        }
                    }
                    Err(error) => fail("/expect_count", format!("cannot count {entity}: {error}")),
                }
            }
        }
    }
}

/// `"$today"`, `"$today-30"`, `"$today+7"`: a date relative to the day the test runs; with a time,
/// `"$today-40T09:00:00Z"`, a date-time on that day.
fn relative_day(text: &str) -> Option<Value> {
    let rest = text.strip_prefix("$today")?;
    let (rest, time) = rest.split_at(rest.find('T').unwrap_or(rest.len()));
    let offset: i64 = if rest.is_empty() {
        0
    } else {
        rest.strip_prefix('+').unwrap_or(rest).parse().ok()?
    };
    let day = chrono::Utc::now().date_naive() + chrono::Duration::days(offset);
    Some(Value::String(format!("{}{time}", day.format("%Y-%m-%d"))))
}

/// Run the after-commit work (rules' related updates, created records, events) until none is
/// left, as the outbox worker would; an action that failed for good is a test failure, and so is
/// work that never settles (rules and flow events feeding each other in a cycle).
async fn settle(runtime: &Runtime, app: &str, reported: &mut usize) -> Result<(), String> {
    const PASSES: usize = 50;
    let mut settled = false;
    for _ in 0..PASSES {
        match runtime.run_outbox_once(chrono::Utc::now()).await {
            Ok(0) => {
                settled = true;
                break;
            }
            Ok(_) => {}
            Err(error) => return Err(format!("after-commit actions: {error}")),
        }
    }
    if !settled {
        return Err(format!(
            "after-commit work did not settle in {PASSES} passes: do rules and flow events trigger each other in a cycle?"
        ));
    }
    let entries = runtime
        .store()
        .outbox_of(app)
        .await
        .map_err(|e| e.to_string())?;
    let failed: Vec<String> = entries
        .iter()
        .filter(|e| e.status == "failed")
        .map(|e| format!("{}: {}", e.kind, e.last_error.clone().unwrap_or_default()))
        .collect();
    if failed.len() > *reported {
        let new = failed[*reported..].join("; ");
        *reported = failed.len();
        return Err(format!("an after-commit action failed: {new}"));
    }
    Ok(())
}

/// Equal values, with numbers compared by value (2 == 2.0) and money/decimal strings as numbers.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), Value::Number(b)) => a.parse::<f64>().ok() == b.as_f64(),
        _ => actual == expected,
    }
}
