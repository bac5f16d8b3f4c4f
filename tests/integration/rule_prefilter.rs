//! Batch runs with a pre-filter over the column cache: a rule whose condition runs natively reads only
//! the records the columns cannot rule out. Its outcome must be exactly the outcome of the same rule
//! evaluated record by record (the condition written as a rhai script, which no pre-filter decides),
//! also after records changed since the cache was filled, and for `date_reached` runs.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::rules::leads_bundle;
use crate::support::api::TestApi;
use crate::support::{Backend, on_both_backends};

on_both_backends!(prefiltered_batch_runs_match_record_by_record_runs);

const LEADS: &str = "/api/apps/leads/entities/lead/records";
const CONDITION: &str =
    "score != () && score >= 90 && birthday != () && birthday <= \"2000-12-31\" && greeted != true";

/// One lead of the generated set: score (some missing) and birthday (some missing).
fn lead(i: usize) -> (Option<i64>, Option<String>) {
    let score = (!i.is_multiple_of(7)).then_some(((i * 37) % 101) as i64);
    let birthday = (!i.is_multiple_of(5))
        .then(|| format!("{}-{:02}-{:02}", 1990 + (i % 17), 1 + i % 12, 1 + i % 28));
    (score, birthday)
}

fn matches(score: Option<i64>, birthday: Option<&str>) -> bool {
    score.is_some_and(|s| s >= 90) && birthday.is_some_and(|b| b <= "2000-12-31")
}

async fn run(api: &TestApi, rule: &str) -> Value {
    let reply = api
        .call("POST", &format!("/api/apps/leads/rules/{rule}/run"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    json!([
        reply.body["processed"],
        reply.body["matched"],
        reply.body["changed"],
        reply.body["failed"]
    ])
}

/// Every lead back to not greeted.
async fn ungreet(api: &TestApi) {
    run(api, "ungreet").await;
    assert!(greeted(api).await.is_empty());
}

/// Ids of greeted leads, sorted.
async fn greeted(api: &TestApi) -> Vec<String> {
    let store = api.runtime.store();
    let mut ids: Vec<String> = store
        .record_page("leads", "lead", None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.data.0.values().any(|v| *v == json!(true)))
        .map(|row| row.id)
        .collect();
    ids.sort();
    ids
}

async fn prefiltered_batch_runs_match_record_by_record_runs(backend: Backend) {
    const N: usize = 400;
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut bundle = leads_bundle();
    bundle["rules/greet_native.rule.json"] = json!({"format_version": 1, "id": "greet_native",
        "entity": "lead", "trigger": {"manual": {}}, "condition": CONDITION,
        "actions": [{"set": {"greeted": true}}]});
    // The same condition as a script (a `let` makes it rhai's): evaluated record by record.
    bundle["rules/greet_rhai.rule.json"] = json!({"format_version": 1, "id": "greet_rhai",
        "entity": "lead", "trigger": {"manual": {}}, "actions": [{"set": {"greeted": true}}]});
    bundle["rules/greet_rhai.rhai"] = json!(format!(
        "let s = score; {}",
        CONDITION.replace("score", "s")
    ));
    // The bundle's own birthday rule would greet first.
    bundle
        .as_object_mut()
        .unwrap()
        .remove("rules/birthday.rule.json");
    bundle["rules/ungreet.rule.json"] = json!({"format_version": 1, "id": "ungreet",
        "entity": "lead", "trigger": {"manual": {}}, "actions": [{"set": {"greeted": false}}]});
    // On the birthday itself, with the same condition.
    bundle["rules/greet_on_day.rule.json"] = json!({"format_version": 1, "id": "greet_on_day",
        "entity": "lead", "trigger": {"date_reached": {"field": "birthday"}}, "condition": CONDITION,
        "actions": [{"set": {"greeted": true}}]});
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut leads: Vec<(Option<i64>, Option<String>)> = (0..N).map(lead).collect();
    let ndjson: String = leads
        .iter()
        .enumerate()
        .map(|(i, (score, birthday))| {
            let mut row =
                json!({"name": format!("lead {i}"), "email": format!("l{i}@example.com")});
            if let Some(score) = score {
                row["score"] = json!(score);
            }
            if let Some(birthday) = birthday {
                row["birthday"] = json!(birthday);
            }
            row.to_string() + "\n"
        })
        .collect();
    let imported = api
        .post_text(
            "/api/apps/leads/entities/lead/import",
            "application/x-ndjson",
            &ndjson,
        )
        .await;
    assert_eq!(imported.body["inserted"], N, "{}", imported.text);
    let expected = leads
        .iter()
        .filter(|(s, b)| matches(*s, b.as_deref()))
        .count();
    assert!(expected > 10 && expected < N / 4, "{expected}");

    // Native (pre-filtered) and record by record: the same counts, the same records.
    let native = run(&api, "greet_native").await;
    assert_eq!(native, json!([N, expected, expected, 0]));
    let native_greeted = greeted(&api).await;
    assert_eq!(native_greeted.len(), expected);
    ungreet(&api).await;
    let scripted = run(&api, "greet_rhai").await;
    assert_eq!(scripted, native);
    assert_eq!(greeted(&api).await, native_greeted);
    // Again: nothing left to change, on both paths.
    assert_eq!(run(&api, "greet_native").await, json!([N, 0, 0, 0]));

    // Records change after the column cache was filled: the next run sees the new values.
    ungreet(&api).await;
    // Each record's id and its place in `leads` (from its name, "lead N").
    let rows: Vec<(String, usize)> = api
        .runtime
        .store()
        .record_page("leads", "lead", None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            let index = row.data.0.values().find_map(|v| {
                v.as_str()
                    .and_then(|s| s.strip_prefix("lead "))
                    .and_then(|n| n.parse().ok())
            });
            (row.id, index.unwrap())
        })
        .collect();
    let mut edits = 0;
    for (id, index) in &rows {
        let (score, birthday) = &leads[*index];
        // Raise some non-matching scores to 95, drop some matching ones to 10.
        let new_score = match score {
            Some(s) if *s < 90 && birthday.is_some() && index % 3 == 0 => 95,
            Some(s) if *s >= 90 && index % 2 == 0 => 10,
            _ => continue,
        };
        let patched = api
            .call(
                "PATCH",
                &format!("{LEADS}/{id}"),
                Some(json!({"score": new_score})),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        leads[*index].0 = Some(new_score);
        edits += 1;
        if edits == 12 {
            break;
        }
    }
    assert_eq!(edits, 12);
    let expected_now = leads
        .iter()
        .filter(|(s, b)| matches(*s, b.as_deref()))
        .count();
    assert_ne!(expected_now, expected);
    let native = run(&api, "greet_native").await;
    assert_eq!(native, json!([N, expected_now, expected_now, 0]));
    let native_greeted = greeted(&api).await;
    ungreet(&api).await;
    assert_eq!(run(&api, "greet_rhai").await, native);
    assert_eq!(greeted(&api).await, native_greeted);

    // A `date_reached` run looks only at the day's birthdays (processed), of which the condition
    // keeps some.
    ungreet(&api).await;
    // The birthday (month and day) of the first matching lead, in 2026.
    let first_match = (0..N)
        .find(|i| matches(leads[*i].0, leads[*i].1.as_deref()))
        .unwrap();
    let month_day = leads[first_match].1.as_deref().unwrap()[5..].to_owned();
    let day = chrono::NaiveDate::parse_from_str(&format!("2026-{month_day}"), "%Y-%m-%d").unwrap();
    let on_day: Vec<usize> = (0..N)
        .filter(|i| leads[*i].1.as_deref().is_some_and(|b| b[5..] == *month_day))
        .collect();
    let on_day_matching = on_day
        .iter()
        .filter(|i| matches(leads[**i].0, leads[**i].1.as_deref()))
        .count();
    assert!(on_day_matching >= 1 && on_day.len() > on_day_matching);
    // The schedule is set the day before and comes due at midnight.
    let eve = day
        .pred_opt()
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    api.runtime.run_rule_schedules(eve).await.unwrap();
    let midnight = day.and_hms_opt(0, 0, 1).unwrap().and_utc();
    api.runtime.run_rule_schedules(midnight).await.unwrap();
    let batches = api
        .call("GET", "/api/apps/leads/rules/greet_on_day/batches", None)
        .await;
    assert_eq!(batches.status, StatusCode::OK, "{}", batches.text);
    let latest = &batches.body["items"][0];
    assert_eq!(
        json!([
            latest["status"],
            latest["total"],
            latest["processed"],
            latest["matched"],
            latest["changed"]
        ]),
        json!(["done", N, on_day.len(), on_day_matching, on_day_matching]),
        "{latest}"
    );
    let greeted_on_day = greeted(&api).await;
    assert_eq!(greeted_on_day.len(), on_day_matching);
}
