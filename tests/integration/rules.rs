//! Rules end to end over the HTTP API, on both backends: a before-save rule rejecting bad data with a
//! bilingual message, before-save normalization, record-updated rules with changed-field filters and a
//! cascade, a rule cycle stopped at the depth limit, dry runs with a trace, a runaway script stopped by
//! the sandbox with the rule named, a batch run, and the run log.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

const LEADS: &str = "/api/apps/leads/entities/lead/records";

pub(crate) fn leads_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "leads", "version": "1.0.0", "name": {"en": "Leads", "zh-CN": "线索"}},
        "entities/lead.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string"},
                "notes": {"type": "string"},
                "score": {"type": "integer"},
                "grade": {"type": "integer"},
                "status": {"type": "string", "enum": ["new", "mql"], "default": "new"},
                "owner": {"type": "string", "x-trellis": {"kind": "user"}},
                "touched": {"type": "integer"},
                "birthday": {"type": "string", "format": "date"},
                "greeted": {"type": "boolean"}
            }
        },
        "rules/require_email.rule.json": {"format_version": 1, "id": "require_email", "entity": "lead",
            "trigger": {"before_save": {}}, "condition": "email == () || email == \"\"",
            "actions": [{"reject": {"en": "A lead needs an email", "zh-CN": "线索必须有邮箱"}}]},
        "rules/tidy.rule.json": {"format_version": 1, "id": "tidy", "entity": "lead", "order": -1,
            "trigger": {"before_save": {"on": ["create"]}}, "condition": "name != ()",
            "actions": [{"set": {"name": "=trim(name)"}}]},
        "rules/engage.rule.json": {"format_version": 1, "id": "engage", "entity": "lead",
            "trigger": {"record_updated": {"fields": ["notes"]}},
            "actions": [{"set": {"score": "=if score == () { 10 } else { score + 10 }"}}]},
        "rules/grade.rule.json": {"format_version": 1, "id": "grade", "entity": "lead",
            "trigger": {"record_updated": {"fields": ["score"]}},
            "actions": [{"set": {"grade": "=(score + 9) / 10"}}]},
        "rules/mql.rule.json": {"format_version": 1, "id": "mql", "entity": "lead", "order": 2,
            "trigger": {"record_updated": {"fields": ["score"]}}, "condition": "score >= 50 && status != \"mql\"",
            "actions": [{"set": {"status": "mql"}}, {"notify": {"to": {"field": "owner"}, "message": {"en": "A lead became an MQL", "zh-CN": "线索已成为 MQL"}}}]},
        "rules/touch.rule.json": {"format_version": 1, "id": "touch", "entity": "lead",
            "trigger": {"record_updated": {"fields": ["touched"]}},
            "actions": [{"set": {"touched": "=touched + 1"}}]},
        "rules/spin.rule.json": {"format_version": 1, "id": "spin", "entity": "lead", "trigger": {"manual": {}},
            "actions": [{"set": {"grade": "=1"}}]},
        "rules/spin.rhai": "let n = 0; loop { n += 1; } n > 0",
        "rules/nightly.rule.json": {"format_version": 1, "id": "nightly", "entity": "lead", "trigger": {"schedule": {"cron": "*/10 * * * *"}},
            "condition": "grade == ()", "actions": [{"set": {"grade": 1}}]},
        "rules/birthday.rule.json": {"format_version": 1, "id": "birthday", "entity": "lead", "trigger": {"date_reached": {"field": "birthday"}},
            "actions": [{"set": {"greeted": true}}, {"notify": {"to": {"field": "owner"}, "message": {"en": "Birthday today", "zh-CN": "今天生日"}}}]},
        "rules/rescore.rule.json": {"format_version": 1, "id": "rescore", "entity": "lead", "trigger": {"manual": {}},
            "condition": "score != ()", "actions": [{"set": {"grade": "=score / 10"}}]}
    })
}

async fn setup(backend: Backend) -> Option<TestApi> {
    let api = TestApi::start(backend).await?;
    let created = api.call("POST", "/api/apps", Some(leads_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    Some(api)
}

macro_rules! setup_or_skip {
    ($backend:expr) => {
        match setup($backend).await {
            Some(api) => api,
            None => return,
        }
    };
}

on_both_backends!(
    before_save_rules_reject_and_normalize,
    updates_cascade_through_rules_with_field_filters,
    dry_runs_trace_and_runaway_scripts_stop,
    batch_runs_and_the_run_log,
    cron_and_birthday_rules_run_once_per_occurrence,
    webhook_actions_are_signed_and_retried,
    deletes_and_state_changes_trigger_rules_that_create_tasks,
    signed_inbound_webhooks_create_records,
    batch_runs_cover_100k_records_and_resume_where_they_stopped,
);

async fn webhook_actions_are_signed_and_retried(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let (url, seen) = crate::flows::webhook_endpoint(2).await;
    let mut bundle = leads_bundle();
    bundle["rules/hook.rule.json"] = json!({"format_version": 1, "id": "hook", "entity": "lead",
        "trigger": {"record_created": {}}, "actions": [{"webhook": {"url": url}}]});
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    api.call(
        "POST",
        LEADS,
        Some(json!({"name": "Hooked", "email": "h@example.com"})),
    )
    .await;
    let signed = trellis_runtime::Runtime::new(
        api.runtime.store().clone(),
        trellis_runtime::RuntimeSettings {
            webhook_secret: Some("rule-secret".into()),
            ..Default::default()
        },
    );
    let mut at = chrono::Utc::now();
    for attempt in 1..=3 {
        signed.run_outbox_once(at).await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), attempt, "attempt {attempt}");
        at += chrono::Duration::hours(1);
    }
    let outbox = api.runtime.store().outbox_of("leads").await.unwrap();
    assert_eq!(
        (outbox[0].status.as_str(), outbox[0].attempts),
        ("done", 3),
        "{outbox:?}"
    );
    let (head, body) = seen.lock().unwrap()[2].clone();
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"rule-secret").unwrap();
    mac.update(body.as_bytes());
    let expected = format!(
        "x-trellis-signature: sha256={}",
        hex::encode(mac.finalize().into_bytes())
    );
    assert!(head.to_ascii_lowercase().contains(&expected), "{head}");
    assert!(body.contains("Hooked"), "{body}");
}

async fn cron_and_birthday_rules_run_once_per_occurrence(backend: Backend) {
    let api = setup_or_skip!(backend);
    // A fixed noon keeps the cron occurrence and the next midnight apart whatever the clock says.
    let now = chrono::Utc::now()
        .date_naive()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let tomorrow = (now + chrono::Duration::days(1)).date_naive();
    let birthday = format!("1990-{}", tomorrow.format("%m-%d"));
    let lead = api
        .call(
            "POST",
            LEADS,
            Some(json!({"name": "Cake", "email": "cake@example.com", "birthday": birthday})),
        )
        .await;
    assert_eq!(lead.status, StatusCode::CREATED, "{}", lead.text);
    let id = lead.body["id"].as_str().unwrap().to_owned();
    let data = || {
        let (api, id) = (&api, id.clone());
        async move { api.call("GET", &format!("{LEADS}/{id}"), None).await.body["data"].clone() }
    };
    assert_eq!(
        api.runtime.run_rule_schedules(now).await.unwrap(),
        0,
        "first pass only plans"
    );
    let cron_time = now + chrono::Duration::minutes(11);
    assert!(api.runtime.run_rule_schedules(cron_time).await.unwrap() >= 1);
    assert_eq!(data().await["grade"], 1, "the cron rule ran");
    assert_eq!(
        api.runtime.run_rule_schedules(cron_time).await.unwrap(),
        0,
        "each occurrence runs once"
    );
    assert!(
        data().await.get("greeted").is_none(),
        "not its birthday yet"
    );
    let midnight = tomorrow.and_hms_opt(0, 1, 0).unwrap().and_utc();
    api.runtime.run_rule_schedules(midnight).await.unwrap();
    assert_eq!(data().await["greeted"], true, "birthday rule on the day");
    let runs = api
        .call("GET", "/api/apps/leads/rules/birthday/runs", None)
        .await;
    assert_eq!(
        runs.body["items"][0]["trigger"], "date_reached",
        "{}",
        runs.text
    );
}

async fn before_save_rules_reject_and_normalize(backend: Backend) {
    let api = setup_or_skip!(backend);
    let refused = api
        .call_with(
            "POST",
            LEADS,
            &[("accept-language", "zh-CN")],
            Some(json!({"name": "No mail"})),
        )
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["code"], "rule_rejected",
        "{}",
        refused.text
    );
    assert_eq!(
        refused.body["errors"][0]["message"],
        "线索必须有邮箱 (rule 'require_email')"
    );
    let english = api
        .call("POST", LEADS, Some(json!({"name": "No mail"})))
        .await;
    assert_eq!(
        english.body["errors"][0]["message"],
        "A lead needs an email (rule 'require_email')"
    );
    let listed = api.call("GET", &format!("{LEADS}?count=true"), None).await;
    assert_eq!(listed.body["total"], 0, "a refused create stores nothing");

    let created = api
        .call(
            "POST",
            LEADS,
            Some(json!({"name": "  Ada  ", "email": "ada@example.com"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["data"]["name"], "Ada");
    let id = created.body["id"].as_str().unwrap();
    // Updates run before-save rules too: clearing the email is refused, nothing changes.
    let cleared = api
        .call(
            "PATCH",
            &format!("{LEADS}/{id}"),
            Some(json!({"email": ""})),
        )
        .await;
    assert_problem(&cleared, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        api.call("GET", &format!("{LEADS}/{id}"), None).await.body["data"]["email"],
        "ada@example.com"
    );
    // Imports run them as well: the row without an email is rejected with the rule's message.
    let imported = api
        .post_text(
            "/api/apps/leads/entities/lead/import",
            "application/x-ndjson",
            "{\"name\": \"a\", \"email\": \"a@x.cn\"}\n{\"name\": \"b\"}",
        )
        .await;
    assert_eq!(imported.body["inserted"], 1, "{}", imported.text);
    assert_eq!(
        imported.body["rejected"][0]["errors"][0]["code"],
        "rule_rejected"
    );
    // The import is in each before-save rule's run log once, with its counts (not once per row).
    let runs = api
        .call("GET", "/api/apps/leads/rules/require_email/runs", None)
        .await;
    let import_runs: Vec<&Value> = runs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "import")
        .collect();
    assert_eq!(import_runs.len(), 1, "{}", runs.text);
    let outcome: Value = serde_json::from_str(import_runs[0]["outcome"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            outcome["rows"].clone(),
            outcome["rejected"].clone(),
            outcome["inserted"].clone()
        ),
        (json!(2), json!(1), json!(1)),
        "{outcome}"
    );
    let tidy = api
        .call("GET", "/api/apps/leads/rules/tidy/runs", None)
        .await;
    assert!(
        tidy.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["trigger"] == "import"),
        "{}",
        tidy.text
    );
}

async fn updates_cascade_through_rules_with_field_filters(backend: Backend) {
    let api = setup_or_skip!(backend);
    let me = api.call("GET", "/api/auth/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = api
        .call(
            "POST",
            LEADS,
            Some(json!({"name": "Bo", "email": "bo@example.com", "owner": me})),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let record = |id: String| {
        let api = &api;
        async move { api.call("GET", &format!("{LEADS}/{id}"), None).await.body["data"].clone() }
    };
    // notes changed → engage sets score → grade (and mql, not yet) react to score.
    let patched = api
        .call(
            "PATCH",
            &format!("{LEADS}/{id}"),
            Some(json!({"notes": "opened the mail"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (
            patched.body["data"]["score"].clone(),
            patched.body["data"]["grade"].clone()
        ),
        (json!(10), json!(1)),
        "{}",
        patched.text
    );
    // A change to another field does not trigger engage.
    api.call(
        "PATCH",
        &format!("{LEADS}/{id}"),
        Some(json!({"name": "Bo Li"})),
    )
    .await;
    assert_eq!(record(id.clone()).await["score"], 10);
    // Score 60: grade and mql both react, in order; the owner is told.
    api.call(
        "PATCH",
        &format!("{LEADS}/{id}"),
        Some(json!({"score": 60})),
    )
    .await;
    let data = record(id.clone()).await;
    assert_eq!(
        (data["grade"].clone(), data["status"].clone()),
        (json!(6), json!("mql")),
        "{data}"
    );
    let notes = api.call("GET", "/api/notifications", None).await;
    assert!(
        notes.text.contains("A lead became an MQL"),
        "{}",
        notes.text
    );
    // A rule that keeps re-triggering itself stops at the depth limit, logged with its id.
    api.call(
        "PATCH",
        &format!("{LEADS}/{id}"),
        Some(json!({"touched": 1})),
    )
    .await;
    assert_eq!(
        record(id.clone()).await["touched"],
        1 + trellis_rules::MAX_DEPTH
    );
    let runs = api
        .call("GET", "/api/apps/leads/rules/touch/runs", None)
        .await;
    assert!(
        runs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["error"].as_str().is_some_and(|e| e.contains("stopped"))),
        "{}",
        runs.text
    );
}

async fn dry_runs_trace_and_runaway_scripts_stop(backend: Backend) {
    let api = setup_or_skip!(backend);
    let dry = api
        .call(
            "POST",
            "/api/apps/leads/rules/mql/test",
            Some(json!({"record": {"score": 70, "status": "new"}})),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(
        (dry.body["matched"].clone(), dry.body["persisted"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(dry.body["writes"]["status"], "mql");
    assert_eq!(dry.body["trace"][0]["step"], "condition");
    assert_eq!(dry.body["trace"][0]["value"], true);
    let unmatched = api
        .call(
            "POST",
            "/api/apps/leads/rules/mql/test",
            Some(json!({"record": {"score": 10}})),
        )
        .await;
    assert_eq!(unmatched.body["matched"], false);
    assert_eq!(
        api.call("GET", &format!("{LEADS}?count=true"), None)
            .await
            .body["total"],
        0,
        "dry runs persist nothing"
    );
    let runaway = api
        .call(
            "POST",
            "/api/apps/leads/rules/spin/test",
            Some(json!({"record": {}})),
        )
        .await;
    assert_problem(&runaway, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(runaway.text.contains("rule 'spin'"), "{}", runaway.text);
    // Static analysis at publish: the self-triggering rule is reported as a warning.
    let mut again = leads_bundle();
    again["trellis.json"]["id"] = json!("leads2");
    let dry_create = api
        .call("POST", "/api/apps?dry_run=true", Some(again))
        .await;
    assert!(
        dry_create.text.contains("rule_cycle"),
        "{}",
        dry_create.text
    );
    // Two scheduled rules setting `grade` are reported — unless one of them is off (alternatives,
    // one enabled at a time).
    let warned = |enabled: bool| {
        let mut bundle = leads_bundle();
        bundle["trellis.json"]["id"] = json!("leads3");
        bundle["rules/nightly_b.rule.json"] = json!({"format_version": 1, "id": "nightly_b", "entity": "lead",
            "trigger": {"schedule": {"cron": "0 4 * * *"}}, "enabled": enabled, "actions": [{"set": {"grade": 2}}]});
        let api = &api;
        async move {
            let reply = api
                .call("POST", "/api/apps?dry_run=true", Some(bundle))
                .await;
            assert!(reply.text.contains("rule_cycle"), "{}", reply.text);
            reply
                .text
                .contains("rules 'nightly' and 'nightly_b' both set 'grade'")
        }
    };
    assert!(warned(true).await);
    assert!(!warned(false).await);
}

async fn batch_runs_and_the_run_log(backend: Backend) {
    let api = setup_or_skip!(backend);
    let rows: Vec<String> = (0..120)
        .map(|i| {
            json!({"name": format!("lead {i}"), "email": format!("l{i}@example.com"), "score": i})
                .to_string()
        })
        .collect();
    let imported = api
        .post_text(
            "/api/apps/leads/entities/lead/import",
            "application/x-ndjson",
            &rows.join("\n"),
        )
        .await;
    assert_eq!(imported.body["inserted"], 120, "{}", imported.text);
    api.call(
        "POST",
        LEADS,
        Some(json!({"name": "no score", "email": "n@example.com"})),
    )
    .await;
    let run = api
        .call("POST", "/api/apps/leads/rules/rescore/run", None)
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_eq!(run.body["processed"], 121);
    assert_eq!(run.body["matched"], 120);
    assert_eq!(run.body["changed"], 120);
    let graded = api
        .call("GET", &format!("{LEADS}?filter={}", "%7B%22field%22%3A%22name%22%2C%22op%22%3A%22eq%22%2C%22value%22%3A%22lead%2095%22%7D"), None)
        .await;
    assert_eq!(graded.body["items"][0]["data"]["grade"], 9);
    // Running again changes nothing (idempotent; resumable after a crash).
    let again = api
        .call("POST", "/api/apps/leads/rules/rescore/run", None)
        .await;
    assert_eq!(again.body["changed"], 0);
    let runs = api
        .call("GET", "/api/apps/leads/rules/rescore/runs", None)
        .await;
    assert_eq!(runs.body["items"][0]["trigger"], "manual");
    assert!(runs.body["items"][0]["duration_us"].as_i64().unwrap() > 0);
    // A record's logged outcomes are compact: what the run wrote and each trace step's value (the
    // sources are in the rule's definition at the run's app version).
    let outcomes = |rule: &'static str| {
        let api = &api;
        async move {
            let runs = api
                .call("GET", &format!("/api/apps/leads/rules/{rule}/runs"), None)
                .await;
            runs.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["record_id"].is_string())
                .map(|r| {
                    let outcome: Value =
                        serde_json::from_str(r["outcome"].as_str().unwrap()).unwrap();
                    (r["matched"] == true, outcome)
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        outcomes("require_email").await,
        [(
            false,
            json!({"trace": [{"step": "condition", "value": false}]})
        )]
    );
    assert_eq!(
        outcomes("tidy").await,
        [(
            true,
            json!({"writes": {"name": "no score"}, "trace": [
                {"step": "condition", "value": true}, {"step": "set name", "value": "no score"}]})
        )]
    );
}

fn tickets_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "desk", "version": "1.0.0", "name": {"en": "Desk", "zh-CN": "服务台"}},
        "entities/customer.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {"name": {"type": "string"}, "flagged": {"type": "boolean"}, "last_ticket": {"type": "string"}}
        },
        "entities/ticket.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "customer": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "customer", "on_delete": "cascade"}}},
                "subject": {"type": "string"},
                "priority": {"type": "string", "enum": ["low", "high"]},
                "stage": {"type": "string", "enum": ["new", "escalated", "closed"], "default": "new"},
                "owner": {"type": "string", "x-trellis": {"kind": "user"}},
                "left_new": {"type": "boolean"}
            }
        },
        "flows/ticket_flow.flow.json": {
            "format_version": 1, "id": "ticket_flow", "entity": "ticket", "state_field": "stage",
            "states": [
                {"id": "new", "initial": true},
                {"id": "escalated"},
                {"id": "closed", "terminal": true}
            ],
            "transitions": [
                {"event": "escalate", "from": ["new"], "to": "escalated"},
                {"event": "close", "from": ["new", "escalated"], "to": "closed"}
            ]
        },
        "rules/escalated.rule.json": {"format_version": 1, "id": "escalated", "entity": "ticket",
            "trigger": {"state_entered": {"flow": "ticket_flow", "state": "escalated"}},
            "actions": [{"create_task": {"title": {"en": "Call the customer back", "zh-CN": "回访客户"},
                "assignee": {"field": "owner"}, "due_in": "1d"}}]},
        "rules/flag_customer.rule.json": {"format_version": 1, "id": "flag_customer", "entity": "ticket",
            "trigger": {"state_entered": {"flow": "ticket_flow", "state": "escalated"}},
            "actions": [{"update_records": {"relation": "customer", "set": {"flagged": true, "last_ticket": "$record.subject"}}}]},
        "rules/raise_siblings.rule.json": {"format_version": 1, "id": "raise_siblings", "entity": "ticket",
            "trigger": {"record_deleted": {}}, "condition": "priority == \"high\"",
            "actions": [{"update_records": {"entity": "ticket", "filter": {"field": "customer", "op": "eq", "value": "$record.customer"}, "set": {"priority": "high"}}}]},
        "rules/left_new.rule.json": {"format_version": 1, "id": "left_new", "entity": "ticket",
            "trigger": {"state_left": {"flow": "ticket_flow", "state": "new"}},
            "actions": [{"set": {"left_new": true}}]},
        "rules/gone.rule.json": {"format_version": 1, "id": "gone", "entity": "ticket",
            "trigger": {"record_deleted": {}}, "condition": "priority == \"high\"",
            "actions": [{"notify": {"to": {"field": "owner"}, "message": {"en": "A high-priority ticket was deleted", "zh-CN": "高优先级工单已删除"}}}]}
    })
}

async fn deletes_and_state_changes_trigger_rules_that_create_tasks(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    // A rule that would change a deleted record, or watch a state that does not exist, is refused.
    let mut broken = tickets_bundle();
    broken["rules/gone.rule.json"]["actions"] = json!([{"set": {"left_new": false}}]);
    broken["rules/escalated.rule.json"]["trigger"]["state_entered"]["state"] = json!("lost");
    broken["rules/escalated.rule.json"]["actions"][0]["create_task"]["due_in"] = json!("P1D");
    broken["rules/flag_customer.rule.json"]["actions"][0]["update_records"]["set"]["nope"] =
        json!(1);
    let refused = api.call("POST", "/api/apps", Some(broken)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    for (file, pointer) in [
        ("rules/gone.rule.json", "/actions/0/set"),
        ("rules/escalated.rule.json", "/trigger/state_entered/state"),
        ("rules/escalated.rule.json", "/actions/0/create_task/due_in"),
        (
            "rules/flag_customer.rule.json",
            "/actions/0/update_records/set/nope",
        ),
    ] {
        assert!(
            refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["file"] == file && e["pointer"] == pointer),
            "{file} {pointer}: {}",
            refused.text
        );
    }
    let created = api.call("POST", "/api/apps", Some(tickets_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let me = api.call("GET", "/api/auth/me", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    const TICKETS: &str = "/api/apps/desk/entities/ticket/records";
    let customer = api
        .call(
            "POST",
            "/api/apps/desk/entities/customer/records",
            Some(json!({"name": "ACME"})),
        )
        .await;
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for priority in ["high", "low"] {
        let ticket = api
            .call(
                "POST",
                TICKETS,
                Some(
                    json!({"subject": format!("Printer {priority}"), "priority": priority,
                    "owner": me, "customer": customer_id}),
                ),
            )
            .await;
        assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.text);
        assert_eq!(
            ticket.body["data"]["left_new"],
            Value::Null,
            "nothing left 'new' yet"
        );
        ids.push(ticket.body["id"].as_str().unwrap().to_owned());
    }
    let inbox = || async {
        api.call("GET", "/api/apps/desk/tasks?assignee=me&status=open", None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(inbox().await.is_empty());
    // Escalating enters `escalated` (a task for the owner) and leaves `new` (a field set).
    let fired = api
        .call(
            "POST",
            &format!("{TICKETS}/{}/flows/ticket_flow/events", ids[0]),
            Some(json!({"event": "escalate"})),
        )
        .await;
    assert_eq!(fired.status, StatusCode::OK, "{}", fired.text);
    let tasks = inbox().await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["record_id"], ids[0]);
    assert!(
        tasks[0]["title"]
            .to_string()
            .contains("Call the customer back"),
        "{}",
        tasks[0]
    );
    assert!(!tasks[0]["due_at"].is_null(), "due in a day: {}", tasks[0]);
    let ticket = api
        .call("GET", &format!("{TICKETS}/{}", ids[0]), None)
        .await;
    assert_eq!(ticket.body["data"]["left_new"], true, "{}", ticket.text);
    // The related customer is changed after commit, from the outbox.
    api.runtime
        .run_outbox_once(chrono::Utc::now())
        .await
        .unwrap();
    let acme = api
        .call(
            "GET",
            &format!("/api/apps/desk/entities/customer/records/{customer_id}"),
            None,
        )
        .await;
    assert_eq!(
        (
            acme.body["data"]["flagged"].clone(),
            acme.body["data"]["last_ticket"].clone()
        ),
        (json!(true), json!("Printer high")),
        "{}",
        acme.text
    );
    // Closing leaves `escalated`, which no rule watches: no second task.
    api.call(
        "POST",
        &format!("{TICKETS}/{}/flows/ticket_flow/events", ids[0]),
        Some(json!({"event": "close"})),
    )
    .await;
    assert_eq!(inbox().await.len(), 1);
    // The rule's task is completed like any other, without moving a flow.
    let task_id = tasks[0]["id"].as_str().unwrap();
    let done = api
        .call(
            "POST",
            &format!("/api/apps/desk/tasks/{task_id}/complete"),
            Some(json!({"outcome": "called"})),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(inbox().await.is_empty());
    // Deleting: the high-priority ticket notifies its owner, the low one does not.
    let notes = || async {
        api.call("GET", "/api/notifications", None)
            .await
            .text
            .matches("high-priority ticket was deleted")
            .count()
    };
    assert_eq!(notes().await, 0);
    // Deleting the high one raises its customer's other tickets (a filter with $record values).
    let deleted = api
        .call("DELETE", &format!("{TICKETS}/{}", ids[0]), None)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    api.runtime
        .run_outbox_once(chrono::Utc::now())
        .await
        .unwrap();
    let sibling = api
        .call("GET", &format!("{TICKETS}/{}", ids[1]), None)
        .await;
    assert_eq!(sibling.body["data"]["priority"], "high", "{}", sibling.text);
    assert_eq!(notes().await, 1);
    let deleted = api
        .call("DELETE", &format!("{TICKETS}/{}", ids[1]), None)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    // Now high as well, so its owner hears of this deletion too.
    assert_eq!(notes().await, 2);
    let runs = api
        .call("GET", "/api/apps/desk/rules/gone/runs", None)
        .await;
    let items = runs.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{}", runs.text);
    assert!(
        items.iter().all(|r| r["trigger"] == "record_deleted"),
        "{}",
        runs.text
    );
}

/// A website form posting leads: the body signed with the server's secret, the rule's condition
/// deciding, its `set`s applied, the record validated and created, and `record_created` rules after.
async fn signed_inbound_webhooks_create_records(backend: Backend) {
    use hmac::{KeyInit, Mac};
    use tower::ServiceExt;
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut bundle = leads_bundle();
    bundle["rules/web_form.rule.json"] = json!({"format_version": 1, "id": "web_form", "entity": "lead",
        "trigger": {"webhook": {}}, "condition": "email != () && email != \"\"",
        "actions": [{"set": {"notes": "from the website", "score": 5}}]});
    bundle["rules/welcome.rule.json"] = json!({"format_version": 1, "id": "welcome", "entity": "lead",
        "trigger": {"record_created": {}}, "condition": "notes == \"from the website\"",
        "actions": [{"set": {"grade": 1}}]});
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let signed = trellis_runtime::Runtime::new(
        api.runtime.store().clone(),
        trellis_runtime::RuntimeSettings {
            webhook_secret: Some("form-secret".into()),
            ..Default::default()
        },
    );
    let router = trellis_server::router(signed, &trellis_server::ServerSettings::default());
    let post = |body: String, signature: Option<String>| {
        let router = router.clone();
        async move {
            let mut request = axum::http::Request::builder()
                .method("POST")
                .uri("/api/apps/leads/rules/web_form/webhook")
                .header("content-type", "application/json")
                .header("accept-language", "zh-CN");
            if let Some(signature) = signature {
                request = request.header("x-trellis-signature", signature);
            }
            let response = router
                .oneshot(request.body(axum::body::Body::from(body)).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    let sign = |body: &str| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"form-secret").unwrap();
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    let body = json!({"name": "Web Visitor", "email": "visitor@example.com"}).to_string();
    // Unsigned and wrongly signed requests change nothing.
    let (status, _) = post(body.clone(), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post(body.clone(), Some(sign("something else"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let count = || async {
        api.call("GET", &format!("{LEADS}?count=true"), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 0);
    // Signed: created with the rule's sets, then the record_created rule ran.
    let (status, reply) = post(body.clone(), Some(sign(&body))).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["created"], true);
    let id = reply["record"]["id"].as_str().unwrap();
    let lead = api.call("GET", &format!("{LEADS}/{id}"), None).await;
    assert_eq!(
        (
            lead.body["data"]["notes"].clone(),
            lead.body["data"]["score"].clone(),
            lead.body["data"]["grade"].clone()
        ),
        (json!("from the website"), json!(5), json!(1)),
        "{}",
        lead.text
    );
    // The condition does not hold: nothing is created (and the run is logged).
    let no_email = json!({"name": "Anonymous"}).to_string();
    let (status, reply) = post(no_email.clone(), Some(sign(&no_email))).await;
    assert_eq!(
        (status, reply["created"].clone()),
        (StatusCode::OK, json!(false))
    );
    // Invalid data is refused by the form engine's validation (before-save rules included), in
    // the caller's language.
    let invalid = json!({"name": "Bad", "email": "b@example.com", "touched": "lots"}).to_string();
    let (status, reply) = post(invalid.clone(), Some(sign(&invalid))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(count().await, 1);
    let runs = api
        .call("GET", "/api/apps/leads/rules/web_form/runs", None)
        .await;
    assert_eq!(
        runs.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        runs.text
    );
    // Only webhook rules have a webhook.
    let (status, _) = {
        let body = "{}".to_owned();
        let signature = sign(&body);
        let router = router.clone();
        let response = router
            .oneshot(
                axum::http::Request::builder()
                    .method("POST")
                    .uri("/api/apps/leads/rules/tidy/webhook")
                    .header("content-type", "application/json")
                    .header("x-trellis-signature", signature)
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        (response.status(), ())
    };
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// 100,000 leads: a batch run covers them page by page with progress; a run cut short resumes from its
/// saved position (records before it are not evaluated again), and the next run starts fresh.
async fn batch_runs_cover_100k_records_and_resume_where_they_stopped(backend: Backend) {
    const N: usize = 100_000;
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut bundle = leads_bundle();
    bundle["rules/flag_top.rule.json"] = json!({"format_version": 1, "id": "flag_top", "entity": "lead",
        "trigger": {"manual": {}}, "condition": "score != () && score >= 99", "actions": [{"set": {"grade": 10}}]});
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ndjson: String = (0..N)
        .map(|i| {
            json!({"name": format!("lead {i}"), "email": format!("l{i}@example.com"), "score": i % 100})
                .to_string()
                + "\n"
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
    let store = api.runtime.store().clone();
    // The records in id order, and which of them the rule changes (score 99: one in a hundred).
    let all = store
        .record_page("leads", "lead", None, N as i64 + 1)
        .await
        .unwrap();
    assert_eq!(all.len(), N);
    let top = |rows: &[trellis_store::RecordRow]| {
        rows.iter()
            .filter(|r| r.data.0.get("score") == Some(&json!(99)))
            .count() as i64
    };
    let (first_half, second_half) = all.split_at(N / 2);
    // A run that stopped halfway: its position and counts were saved, its heartbeat is old.
    let interrupted = store
        .start_rule_batch("leads", "flag_top", "manual", 1, N as i64)
        .await
        .unwrap();
    let carried = trellis_store::BatchCounts {
        processed: (N / 2) as i64,
        matched: 7,
        changed: 7,
        failed: 0,
    };
    store
        .advance_rule_batch(&interrupted.id, &first_half.last().unwrap().id, carried)
        .await
        .unwrap();
    // While it is fresh, another run is refused rather than started twice.
    let busy = api
        .call("POST", "/api/apps/leads/rules/flag_top/run", None)
        .await;
    assert_problem(&busy, StatusCode::CONFLICT);
    // A server that considers it interrupted resumes it from the saved position.
    let resuming = trellis_runtime::Runtime::new(
        store.clone(),
        trellis_runtime::RuntimeSettings {
            batch_stale_after: chrono::Duration::zero(),
            ..Default::default()
        },
    );
    let admin = trellis_runtime::Principal::system("admin", "admin");
    let outcome = resuming
        .run_rule(&admin, "leads", "flag_top")
        .await
        .unwrap();
    assert_eq!(outcome.processed, N, "the carried half and the rest");
    assert_eq!(outcome.changed as i64, 7 + top(second_half), "{outcome:?}");
    let grade_of = |row: &trellis_store::RecordRow| {
        let api = &api;
        let id = row.id.clone();
        async move {
            api.call("GET", &format!("{LEADS}/{id}"), None).await.body["data"]["grade"].clone()
        }
    };
    let first_top = first_half
        .iter()
        .find(|r| r.data.0.get("score") == Some(&json!(99)))
        .unwrap();
    let second_top = second_half
        .iter()
        .find(|r| r.data.0.get("score") == Some(&json!(99)))
        .unwrap();
    assert_eq!(
        grade_of(first_top).await,
        Value::Null,
        "before the saved position: not evaluated again"
    );
    assert_eq!(grade_of(second_top).await, json!(10));
    // Progress and history of batch runs.
    let batches = api
        .call("GET", "/api/apps/leads/rules/flag_top/batches", None)
        .await;
    assert_eq!(batches.status, StatusCode::OK, "{}", batches.text);
    let latest = &batches.body["items"][0];
    assert_eq!(
        (
            latest["status"].clone(),
            latest["processed"].clone(),
            latest["total"].clone()
        ),
        (json!("done"), json!(N), json!(N)),
        "{latest}"
    );
    // The next run starts over and catches up the first half.
    let fresh = api
        .call("POST", "/api/apps/leads/rules/flag_top/run", None)
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    assert_eq!(fresh.body["processed"], N);
    assert_eq!(fresh.body["matched"].as_i64().unwrap(), top(&all));
    assert_eq!(fresh.body["changed"].as_i64().unwrap(), top(first_half));
    assert_eq!(grade_of(first_top).await, json!(10));
}
