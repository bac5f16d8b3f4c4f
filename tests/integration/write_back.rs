//! Bulk write-back (`apply_report` and batch runs commit a page of records per transaction) against
//! the one-by-one path it replaces, on both backends: two copies of one app get the same data; in one
//! the nightly rule writes a report back in bulk, in the other the same patches go through the records
//! API one record at a time. Record data, history, rule runs, tasks, failures and the unique-value
//! checks must come out the same.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::support::api::TestApi;
use crate::support::{Backend, on_both_backends};

fn club_bundle(id: &str) -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": id, "version": "1.0.0", "name": {"en": "Club", "zh-CN": "俱乐部"}},
        "entities/member.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string"},
                "code": {"type": "string", "x-trellis": {"unique": true}},
                "score": {"type": "integer", "maximum": 100},
                "band": {"type": "string"},
                "flagged": {"type": "boolean"},
                "owner": {"type": "string", "x-trellis": {"kind": "user"}},
                "level": {"type": "integer"}
            }
        },
        "entities/input.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "member": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "member"}}},
                "points": {"type": "integer"},
                "band_to": {"type": "string"},
                "code_to": {"type": "string"}
            }
        },
        "reports/scores.report.json": {
            "format_version": 1, "id": "scores", "dataset": {"entity": "input"},
            "analysis": {"aggregate": {
                "dimensions": [{"field": "member"}, {"field": "band_to"}, {"field": "code_to"}],
                "measures": [{"id": "score", "op": "sum", "field": "points"}]}}
        },
        "rules/nightly.rule.json": {"format_version": 1, "id": "nightly", "entity": "member",
            "trigger": {"schedule": {"cron": "0 3 * * *"}},
            "actions": [{"apply_report": {"report": "scores", "key": "member",
                "set": {"score": "score", "band": "band_to", "code": "code_to"}}}]},
        // A second nightly write-back, due at the same time: members with 30 points or more get
        // their number of such inputs as their level, the others level 0.
        "reports/levels.report.json": {
            "format_version": 1, "id": "levels",
            "dataset": {"entity": "input", "filter": {"field": "points", "op": "gte", "value": 30}},
            "analysis": {"aggregate": {
                "dimensions": [{"field": "member"}],
                "measures": [{"id": "level", "op": "count"}]}}
        },
        "rules/nightly_level.rule.json": {"format_version": 1, "id": "nightly_level", "entity": "member",
            "trigger": {"schedule": {"cron": "0 3 * * *"}},
            "actions": [{"apply_report": {"report": "levels", "key": "member",
                "set": {"level": "level"}, "otherwise": {"level": 0}}}]},
        // Writes the score too: cannot run together with `nightly`.
        "rules/clash.rule.json": {"format_version": 1, "id": "clash", "entity": "member",
            "trigger": {"manual": {}},
            "actions": [{"apply_report": {"report": "scores", "key": "member",
                "set": {"score": "score"}}}]},
        // Before save: runs (logged) and writes inside the update.
        "rules/tidy.rule.json": {"format_version": 1, "id": "tidy", "entity": "member",
            "trigger": {"before_save": {"on": ["update"]}}, "condition": "band != ()",
            "actions": [{"set": {"band": "=trim(band)"}}]},
        // After save, follow-up work only: commits with the bulk write.
        "rules/gold_task.rule.json": {"format_version": 1, "id": "gold_task", "entity": "member",
            "trigger": {"record_updated": {"fields": ["band"]}}, "condition": "band == \"gold\"",
            "actions": [{"create_task": {"title": {"en": "Welcome a gold member", "zh-CN": "欢迎金卡会员"},
                "assignee": {"field": "owner"}, "due_in": "7d"}}]},
        // After save with writes: the ordinary cascade after the bulk commit.
        "rules/flag.rule.json": {"format_version": 1, "id": "flag", "entity": "member",
            "trigger": {"record_updated": {"fields": ["score"]}}, "condition": "score != () && score > 50",
            "actions": [{"set": {"flagged": true}}]}
    })
}

/// (name, code, score, band) of each member, and (points, band_to, code_to) the report gives it:
/// - ann: a band change with follow-up work; bob: a high score (cascade); cy: a score over the
///   maximum (refused); dee: a new code (unique value changes); eve: nothing changes;
/// - fay: takes ann's code (refused: unique).
const MEMBERS: [(&str, &str, i64, &str, i64, &str, &str); 6] = [
    ("ann", "A1", 10, "silver", 30, " gold", "A1"),
    ("bob", "B1", 10, "silver", 70, "silver", "B1"),
    ("cy", "C1", 10, "silver", 150, "silver", "C1"),
    ("dee", "D1", 10, "silver", 10, "silver", "D2"),
    ("eve", "E1", 5, "silver", 5, "silver", "E1"),
    ("fay", "F1", 10, "silver", 10, "silver", "A1"),
];

/// Create an app with the members and their inputs; returns member ids by name.
async fn seeded(api: &TestApi, app: &str, me: &str) -> Map<String, Value> {
    seeded_with(api, club_bundle(app), app, me).await
}

/// [`seeded`] with another bundle of app `app`.
async fn seeded_with(api: &TestApi, bundle: Value, app: &str, me: &str) -> Map<String, Value> {
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut ids = Map::new();
    for (name, code, score, band, points, band_to, code_to) in MEMBERS {
        let member = api
            .call(
                "POST",
                &format!("/api/apps/{app}/entities/member/records"),
                Some(
                    json!({"name": name, "code": code, "score": score, "band": band, "owner": me}),
                ),
            )
            .await;
        assert_eq!(member.status, StatusCode::CREATED, "{}", member.text);
        let id = member.body["id"].clone();
        let input = api
            .call(
                "POST",
                &format!("/api/apps/{app}/entities/input/records"),
                Some(
                    json!({"member": id, "points": points, "band_to": band_to, "code_to": code_to}),
                ),
            )
            .await;
        assert_eq!(input.status, StatusCode::CREATED, "{}", input.text);
        ids.insert(name.to_owned(), id);
    }
    ids
}

/// Everything observable per member: data, number of history entries; per rule: runs and matches;
/// open tasks.
async fn observed(api: &TestApi, app: &str, ids: &Map<String, Value>) -> Value {
    let mut members = Map::new();
    for (name, id) in ids {
        let id = id.as_str().unwrap();
        let record = api
            .call(
                "GET",
                &format!("/api/apps/{app}/entities/member/records/{id}"),
                None,
            )
            .await;
        let history = api
            .call(
                "GET",
                &format!("/api/apps/{app}/entities/member/records/{id}/history"),
                None,
            )
            .await;
        // Whether a search for its band and for its name finds it (the search text follows each
        // change of a searchable field, and stays when only other fields change).
        let mut found = Vec::new();
        for word in [&record.body["data"]["band"], &json!(name)] {
            let word = word.as_str().unwrap_or_default().trim().to_owned();
            let hits = api
                .call(
                    "GET",
                    &format!("/api/apps/{app}/entities/member/records?q={word}"),
                    None,
                )
                .await;
            found.push(
                hits.body["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|item| item["id"] == id)),
            );
        }
        members.insert(
            name.clone(),
            json!({
                "found": found,
                "data": record.body["data"],
                "history": history.body.as_array().map_or(0, Vec::len),
                // What each change did, as the history API shows it (not who or when).
                "changes": history.body.as_array().map(|entries| entries
                    .iter()
                    .map(|e| json!([e["operation"], e["version"], e["before"], e["after"]]))
                    .collect::<Vec<_>>()),
            }),
        );
    }
    let mut rules = Map::new();
    let mut logged = Map::new();
    for rule in ["tidy", "gold_task", "flag"] {
        let runs = api
            .call("GET", &format!("/api/apps/{app}/rules/{rule}/runs"), None)
            .await;
        let runs = runs.body["items"].as_array().cloned().unwrap_or_default();
        let named_runs: Vec<(String, &Value)> = runs
            .iter()
            .map(|run| {
                let record = run["record_id"].as_str().unwrap_or_default();
                let name = ids
                    .iter()
                    .find(|(_, id)| id.as_str() == Some(record))
                    .map_or("?", |(name, _)| name.as_str());
                (name.to_owned(), run)
            })
            .collect();
        // What each run saw and did, as the run log shows it (not when or how long it took).
        let mut shown: Vec<String> = named_runs
            .iter()
            .map(|(name, run)| {
                format!(
                    "{name} {} {} {} {}",
                    run["trigger"], run["matched"], run["outcome"], run["error"]
                )
            })
            .collect();
        shown.sort();
        logged.insert(rule.to_owned(), json!(shown));
        let mut per_record: Vec<(String, bool)> = named_runs
            .iter()
            .map(|(name, run)| (name.clone(), run["matched"].as_bool().unwrap_or(false)))
            .collect();
        per_record.sort();
        rules.insert(rule.to_owned(), json!(per_record));
    }
    let tasks = api
        .runtime
        .store()
        .list_tasks(app, None, Some("open"))
        .await
        .unwrap();
    let task_members: Vec<&str> = tasks
        .iter()
        .map(|task| {
            ids.iter()
                .find(|(_, id)| id.as_str() == Some(task.record_id.as_str()))
                .map_or("?", |(name, _)| name.as_str())
        })
        .collect();
    json!({"members": members, "rules": rules, "logged": logged, "tasks": task_members})
}

async fn bulk_write_back_matches_one_by_one_updates(backend: Backend) {
    // Pages of two members: the write-back commits a page while it prepares the next.
    let settings = trellis_runtime::RuntimeSettings {
        write_back_page: 2,
        ..Default::default()
    };
    let Some(api) = TestApi::start_with(backend, settings).await else {
        return;
    };
    let me = api.call("GET", "/api/auth/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bulk_ids = seeded(&api, "club_bulk", &me).await;
    let single_ids = seeded(&api, "club_single", &me).await;

    // In bulk: the nightly rule (processed, matched, changed, failed).
    assert_eq!(
        nightly(&api).await,
        json!([6, 6, 3, 2]),
        "ann, bob and dee change; cy and fay are refused"
    );

    // One by one: the same report, each changed row PATCHed through the API.
    let report = api
        .call(
            "POST",
            "/api/apps/club_single/reports/scores/run",
            Some(json!({})),
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let columns: Vec<&str> = report.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let mut refused = 0;
    for row in report.body["rows"].as_array().unwrap() {
        let id = row[at("member")].as_str().unwrap();
        let current = api
            .call(
                "GET",
                &format!("/api/apps/club_single/entities/member/records/{id}"),
                None,
            )
            .await;
        let mut patch = Map::new();
        for (field, column) in [("score", "score"), ("band", "band_to"), ("code", "code_to")] {
            if current.body["data"][field] != row[at(column)] {
                patch.insert(field.to_owned(), row[at(column)].clone());
            }
        }
        if patch.is_empty() {
            continue;
        }
        let reply = api
            .call(
                "PATCH",
                &format!("/api/apps/club_single/entities/member/records/{id}"),
                Some(Value::Object(patch)),
            )
            .await;
        if reply.status != StatusCode::OK {
            refused += 1;
        }
    }
    assert_eq!(refused, 2);
    api.runtime
        .run_outbox_once(chrono::Utc::now())
        .await
        .unwrap();

    let bulk = observed(&api, "club_bulk", &bulk_ids).await;
    let single = observed(&api, "club_single", &single_ids).await;
    assert_eq!(bulk, single, "bulk:\n{bulk:#}\none by one:\n{single:#}");
    // And the outcome itself is the intended one.
    let members = &bulk["members"];
    assert_eq!(
        members["ann"]["data"]["band"], "gold",
        "trimmed before save"
    );
    assert_eq!(members["ann"]["history"], 2);
    assert_eq!(members["bob"]["data"]["flagged"], true, "the cascade ran");
    assert_eq!(
        members["bob"]["history"], 3,
        "created, written back, flagged"
    );
    assert_eq!(
        members["cy"]["data"]["score"], 10,
        "over the maximum: unchanged"
    );
    assert_eq!(members["dee"]["data"]["code"], "D2");
    assert!(
        members
            .as_object()
            .unwrap()
            .values()
            .all(|m| m["found"] == json!([true, true])),
        "every member is found by its band and its name: {members:#?}"
    );
    assert_eq!(
        members["eve"]["history"], 1,
        "nothing to change: not touched"
    );
    assert_eq!(
        members["fay"]["data"]["code"], "F1",
        "ann's code stays ann's"
    );
    assert_eq!(bulk["tasks"], json!(["ann"]));
    // Every save's rules ran and were logged: before save on each written record, after save where
    // the changed fields trigger them (the cascade's flag write re-triggers nothing).
    assert_eq!(
        bulk["rules"]["gold_task"],
        json!([["ann", true]]),
        "band changed only for ann"
    );
    assert_eq!(
        bulk["rules"]["flag"],
        json!([["ann", false], ["bob", true]]),
        "the score changed for ann and bob"
    );
    assert_eq!(
        bulk["rules"]["tidy"].as_array().map(Vec::len),
        Some(3),
        "ann, bob and dee (rule writes do not run before-save rules again): {:#}",
        bulk["rules"]
    );
}

on_both_backends!(bulk_write_back_matches_one_by_one_updates);

on_both_backends!(a_second_night_writes_only_what_changed);

async fn nightly(api: &TestApi) -> Value {
    let run = api
        .call(
            "POST",
            "/api/apps/club_bulk/rules/nightly/run",
            Some(json!({})),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    json!([
        run.body["processed"],
        run.body["matched"],
        run.body["changed"],
        run.body["failed"]
    ])
}

/// After a first night, most members already hold the report's values: the write-back finds the
/// few that may differ over the column cache and reads only those — with the same outcome as
/// reading every member.
async fn a_second_night_writes_only_what_changed(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let me = api.call("GET", "/api/auth/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids = seeded(&api, "club_bulk", &me).await;
    assert_eq!(nightly(&api).await, json!([6, 6, 3, 2]));
    let first = observed(&api, "club_bulk", &ids).await;

    // Nothing moved: cy (over the maximum) and fay (a taken code) are refused again; ann's band
    // differs from the report's " gold" only until the before-save rule trims it.
    assert_eq!(nightly(&api).await, json!([6, 6, 0, 2]));
    let second = observed(&api, "club_bulk", &ids).await;
    assert_eq!(second["members"], first["members"], "no member written");

    // Someone edits eve's score: the next night puts the report's value back, and only hers.
    let eve = format!(
        "/api/apps/club_bulk/entities/member/records/{}",
        ids["eve"].as_str().unwrap()
    );
    let edited = api.call("PATCH", &eve, Some(json!({"score": 9}))).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    assert_eq!(nightly(&api).await, json!([6, 6, 1, 2]));
    let eve_now = api.call("GET", &eve, None).await;
    assert_eq!(eve_now.body["data"]["score"], json!(5));
    let third = observed(&api, "club_bulk", &ids).await;
    for name in ["ann", "bob", "cy", "dee", "fay"] {
        assert_eq!(
            third["members"][name], first["members"][name],
            "{name} untouched"
        );
    }
}

on_both_backends!(write_backs_due_together_give_each_record_one_update);

/// Run `rules` of `app` together over HTTP → (processed, matched, changed, failed) and the reports
/// the outcome lists.
async fn together(api: &TestApi, app: &str, rules: &[&str]) -> (Value, Value) {
    let run = api
        .call(
            "POST",
            &format!("/api/apps/{app}/rules/run"),
            Some(json!({ "rules": rules })),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert!(run.body["write_back_ms"].is_u64(), "{}", run.text);
    let reports: Vec<Value> = run.body["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["rule"], r["report"], r["rows"], r["elapsed_ms"].is_u64()]))
        .collect();
    (
        json!([
            run.body["processed"],
            run.body["matched"],
            run.body["changed"],
            run.body["failed"]
        ]),
        json!(reports),
    )
}

/// Write-backs due at the same time run together — by the scheduler, and on request — and each
/// record gets all their values in one update (one history entry, one round of its rules); the
/// values are those of running them one after the other, except that a record refusing one value
/// keeps all its old ones. Rules that cannot run together are refused with every problem at once.
async fn write_backs_due_together_give_each_record_one_update(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let me = api.call("GET", "/api/auth/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The scheduler first, while this app is the only one: `nightly` and `nightly_level` are due
    // at 03:00 (the first pass only learns when), `clash` is manual.
    let scheduled_ids = seeded(&api, "club_scheduled", &me).await;
    let now = chrono::Utc::now();
    api.runtime.run_rule_schedules(now).await.unwrap();
    let ran = api
        .runtime
        .run_rule_schedules(now + chrono::Duration::days(2))
        .await
        .unwrap();
    assert_eq!(ran, 2, "nightly and nightly_level");
    let scheduled = observed(&api, "club_scheduled", &scheduled_ids).await;

    let apart_ids = seeded(&api, "club_apart", &me).await;
    let together_ids = seeded(&api, "club_together", &me).await;
    for rule in ["nightly", "nightly_level"] {
        let run = api
            .call(
                "POST",
                &format!("/api/apps/club_apart/rules/{rule}/run"),
                Some(json!({})),
            )
            .await;
        assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    }
    let (counts, reports) = together(&api, "club_together", &["nightly", "nightly_level"]).await;
    assert_eq!(
        reports,
        json!([
            ["nightly", "scores", 6, true],
            ["nightly_level", "levels", 3, true]
        ])
    );
    assert_eq!(
        counts,
        json!([6, 6, 4, 2]),
        "ann, bob, dee and eve change (dee and eve: level 0); cy and fay are refused"
    );
    api.runtime
        .run_outbox_once(chrono::Utc::now())
        .await
        .unwrap();
    let apart = observed(&api, "club_apart", &apart_ids).await;
    let together_run = observed(&api, "club_together", &together_ids).await;
    assert_eq!(
        scheduled["members"], together_run["members"],
        "the scheduler ran them together"
    );
    let (apart, joined) = (&apart["members"], &together_run["members"]);
    for name in ["ann", "bob", "dee", "eve"] {
        assert_eq!(joined[name]["data"], apart[name]["data"], "{name}");
    }
    assert_eq!(joined["ann"]["data"]["level"], 1);
    assert_eq!(joined["bob"]["data"]["level"], 1);
    assert_eq!(joined["eve"]["data"]["level"], 0, "otherwise");
    // One update instead of two where both rules change a record: ann (band, level), bob (score,
    // level, then the flag cascade); dee changes in both too (code, level).
    for (name, apart_history, together_history) in
        [("ann", 3, 2), ("bob", 4, 3), ("dee", 3, 2), ("eve", 2, 2)]
    {
        assert_eq!(apart[name]["history"], apart_history, "{name} apart");
        assert_eq!(joined[name]["history"], together_history, "{name} together");
    }
    // cy's score is over the maximum and fay's code is taken: run apart, they still get their
    // level; together, the record keeps all its old values.
    for name in ["cy", "fay"] {
        assert_eq!(
            apart[name]["data"]["level"],
            json!(if name == "cy" { 1 } else { 0 }),
            "{name}"
        );
        assert_eq!(joined[name]["data"]["level"], Value::Null, "{name}");
        assert_eq!(joined[name]["history"], 1, "{name}");
    }
    // The after-save rules saw each record's changes at once: one run per changed record.
    assert_eq!(
        together_run["rules"]["flag"],
        json!([["ann", false], ["bob", true]])
    );

    // Rules that cannot run together: every problem at once, at its place; nothing written.
    let refused = api
        .call(
            "POST",
            "/api/apps/club_together/rules/run",
            Some(json!({"rules": ["nightly", "clash", "nope", "nightly", "tidy"]})),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.text
    );
    let problems: Vec<(String, String)> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            ("/rules/1", "field_written_twice"),
            ("/rules/2", "unknown_rule"),
            ("/rules/3", "duplicate_rule"),
            ("/rules/4", "not_a_write_back")
        ]
        .map(|(p, c)| (p.to_owned(), c.to_owned()))
    );
    let empty = api
        .call(
            "POST",
            "/api/apps/club_together/rules/run",
            Some(json!({"rules": []})),
        )
        .await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty.text
    );
    assert_eq!(
        observed(&api, "club_together", &together_ids).await["members"],
        together_run["members"],
        "refused runs change nothing"
    );

    // bob (flagged, score 70) gets 10 more points: the next night writes his score 80, and the
    // `flag` rule matches again but writes the value `flagged` already holds — no change: one new
    // history entry (the score), not two. The same through a single PATCH (the one-record path).
    for (app, ids) in [("club_apart", &apart_ids), ("club_together", &together_ids)] {
        let input = api
            .call(
                "POST",
                &format!("/api/apps/{app}/entities/input/records"),
                Some(json!({"member": ids["bob"], "points": 10, "band_to": "silver", "code_to": "B1"})),
            )
            .await;
        assert_eq!(input.status, StatusCode::CREATED, "{}", input.text);
    }
    let run = api
        .call(
            "POST",
            "/api/apps/club_apart/rules/nightly/run",
            Some(json!({})),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_eq!(run.body["changed"], 1, "{}", run.text);
    let (counts, _) = together(&api, "club_together", &["nightly", "nightly_level"]).await;
    assert_eq!(counts, json!([6, 6, 1, 2]));
    let bob_path = |app: &str, ids: &Map<String, Value>| {
        format!(
            "/api/apps/{app}/entities/member/records/{}",
            ids["bob"].as_str().unwrap()
        )
    };
    let patched = api
        .call(
            "PATCH",
            &bob_path("club_apart", &apart_ids),
            Some(json!({"score": 90})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    for (app, ids, history) in [
        ("club_apart", &apart_ids, 6),
        ("club_together", &together_ids, 4),
    ] {
        let bob = api.call("GET", &bob_path(app, ids), None).await;
        assert_eq!(bob.body["data"]["flagged"], true, "{app}");
        let entries = api
            .call("GET", &format!("{}/history", bob_path(app, ids)), None)
            .await;
        assert_eq!(
            entries.body.as_array().map(Vec::len),
            Some(history),
            "{app}: {:#}",
            entries.body
        );
        let runs = api
            .call("GET", &format!("/api/apps/{app}/rules/flag/runs"), None)
            .await;
        let bob_matched = runs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| run["record_id"] == ids["bob"] && run["matched"] == true)
            .count();
        assert_eq!(
            bob_matched,
            if app == "club_apart" { 3 } else { 2 },
            "{app}"
        );
    }
}

/// A scheduled pass runs the due rules of different entities side by side (each entity's in
/// order); a run that fails — a write-back naming a column its report does not have — stops none
/// of the others (their schedules advanced already), and the pass reports the failure.
async fn a_failed_scheduled_run_stops_no_other(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let me = api.call("GET", "/api/auth/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bundle = club_bundle("club_broken");
    // Sorts first ("broken" < "nightly"), over another entity, due at the same time.
    bundle["rules/broken.rule.json"] = json!({"format_version": 1, "id": "broken", "entity": "input",
        "trigger": {"schedule": {"cron": "0 3 * * *"}},
        "actions": [{"apply_report": {"report": "scores", "key": "member",
            "set": {"points": "no_such_column"}}}]});
    let ids = seeded_with(&api, bundle, "club_broken", &me).await;
    let now = chrono::Utc::now();
    assert_eq!(api.runtime.run_rule_schedules(now).await.unwrap(), 0);
    let later = now + chrono::Duration::days(2);
    let failed = api.runtime.run_rule_schedules(later).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no_such_column")),
        "{failed:?}"
    );
    for (name, score) in [("ann", 30), ("bob", 70), ("eve", 5)] {
        let id = ids[name].as_str().unwrap();
        let member = api
            .call(
                "GET",
                &format!("/api/apps/club_broken/entities/member/records/{id}"),
                None,
            )
            .await;
        assert_eq!(member.body["data"]["score"], score, "{}", member.text);
    }
    assert_eq!(
        api.runtime.run_rule_schedules(later).await.unwrap(),
        0,
        "each occurrence once, the failed one too"
    );
}
on_both_backends!(a_failed_scheduled_run_stops_no_other);
