//! Flows end to end over the HTTP API, on both backends: an approval flow and a lifecycle defined only
//! as JSON — allowed and refused events with reasons, a guard over record fields, roles, an approval
//! with two approvers in `all` mode, a persisted timer fired by the scheduler, an overdue task that
//! escalates, concurrent events of which exactly one applies, and design-time findings.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

const DEALS: &str = "/api/apps/deals/entities/deal/records";

fn deals_bundle(flow: Value) -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "deals", "version": "1.0.0", "name": {"en": "Deals", "zh-CN": "交易"}},
        "entities/deal.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string"},
                "stage": {"type": "string", "enum": ["draft", "review", "approved", "won", "lost"]},
                "amount": {"type": "number"},
                "owner": {"type": "string", "x-trellis": {"kind": "user"}},
                "lost_reason": {"type": "string"}
            }
        },
        "flows/deal.flow.json": flow
    })
}

fn deal_flow() -> Value {
    json!({
        "format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
        "states": [
            {"id": "draft", "initial": true},
            {"id": "review", "approval": {"assignees": {"users": ["alice", "bob"]}, "mode": "all", "approve_event": "approved", "reject_to": "draft"}},
            {"id": "approved", "sla": "2d"},
            {"id": "won", "terminal": true},
            {"id": "lost", "terminal": true}
        ],
        "transitions": [
            {"event": "submit", "from": ["draft"], "to": "review", "guard": "amount > 0", "roles": ["app_admin", "member"]},
            {"event": "approved", "from": ["review"], "to": "approved",
             "actions": [{"create_task": {"title": {"en": "Close the deal", "zh-CN": "完成交易"}, "assignee": {"users": ["alice"]},
                                          "due_in": "1h", "escalate_to": {"users": ["bob"]}, "outcomes": {"won": "win"}}}]},
            {"event": "win", "from": ["approved"], "to": "won", "roles": ["app_admin"],
             "actions": [{"notify": {"to": {"field": "owner"}, "message": {"en": "Deal won", "zh-CN": "交易成功"}}},
                         {"webhook": {"url": "https://example.com/hooks/won"}}]},
            {"event": "lose", "from": ["draft", "approved"], "to": "lost", "required": ["lost_reason"]},
            {"event": "expire", "from": ["approved"], "to": "lost", "actions": [{"set": {"lost_reason": "expired"}}]}
        ],
        "timers": [{"state": "approved", "after": "30d", "event": "expire"}]
    })
}

async fn setup(
    backend: Backend,
) -> Option<(TestApi, std::collections::HashMap<&'static str, String>)> {
    let api = TestApi::start(backend).await?;
    let created = api
        .call("POST", "/api/apps", Some(deals_bundle(deal_flow())))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut tokens = std::collections::HashMap::new();
    for name in ["alice", "bob", "rita"] {
        let user = api
            .call(
                "POST",
                "/api/users",
                Some(json!({"username": name, "password": "password-1"})),
            )
            .await;
        assert_eq!(user.status, StatusCode::CREATED, "{}", user.text);
        let id = user.body["id"].as_str().unwrap().to_owned();
        let role = if name == "rita" { "viewer" } else { "member" };
        api.call(
            "PUT",
            &format!("/api/apps/deals/roles/{role}/user/{id}"),
            None,
        )
        .await;
        let login = api
            .send(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"username": name, "password": "password-1"})),
            )
            .await;
        tokens.insert(name, login.body["token"].as_str().unwrap().to_owned());
        tokens.insert(
            match name {
                "alice" => "alice_id",
                "bob" => "bob_id",
                _ => "rita_id",
            },
            id,
        );
    }
    Some((api, tokens))
}

macro_rules! setup_or_skip {
    ($backend:expr) => {
        match setup($backend).await {
            Some(world) => world,
            None => return,
        }
    };
}

on_both_backends!(
    a_deal_moves_through_guard_approval_timer_and_tasks,
    concurrent_events_apply_once,
    broken_flows_are_refused_with_every_finding,
    outbox_delivers_signed_webhooks_with_retries,
    publishing_a_renamed_state_needs_a_mapping_and_moves_records,
    cron_timers_fire_on_schedule,
    two_servers_fire_each_due_timer_once,
    runs_keep_the_definition_they_started_with,
);

async fn fire(
    api: &TestApi,
    token: &str,
    id: &str,
    event: &str,
    data: Value,
) -> crate::support::api::Reply {
    api.send(
        "POST",
        &format!("{DEALS}/{id}/flows/deal/events"),
        Some(token),
        Some(json!({"event": event, "data": data})),
    )
    .await
}

async fn stage(api: &TestApi, id: &str) -> String {
    api.call("GET", &format!("{DEALS}/{id}"), None).await.body["data"]["stage"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

async fn a_deal_moves_through_guard_approval_timer_and_tasks(backend: Backend) {
    let (api, t) = setup_or_skip!(backend);
    let created = api
        .send(
            "POST",
            DEALS,
            Some(&t["alice"]),
            Some(json!({"name": "Big one", "amount": 0, "owner": t["alice_id"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.body["data"]["stage"], "draft",
        "records start in the initial state"
    );
    let id = created.body["id"].as_str().unwrap().to_owned();

    // The events offered, with reasons.
    let flows = api
        .send(
            "GET",
            &format!("{DEALS}/{id}/flows"),
            Some(&t["alice"]),
            None,
        )
        .await;
    assert_eq!(flows.status, StatusCode::OK, "{}", flows.text);
    let events = &flows.body["items"][0]["events"];
    let submit = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "submit")
        .unwrap();
    assert_eq!(submit["allowed"], false);
    assert!(
        submit["reason"].as_str().unwrap().contains("amount > 0"),
        "{}",
        flows.text
    );
    let win = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "win")
        .unwrap();
    assert!(
        win["reason"].as_str().unwrap().contains("state 'draft'"),
        "{}",
        flows.text
    );

    // A guard over record fields refuses, changing nothing; a viewer may not fire at all.
    let refused = fire(&api, &t["alice"], &id, "submit", json!({})).await;
    assert_problem(&refused, StatusCode::CONFLICT);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("\"amount\":0"),
        "{}",
        refused.text
    );
    assert_eq!(stage(&api, &id).await, "draft");
    assert_problem(
        &fire(&api, &t["rita"], &id, "submit", json!({})).await,
        StatusCode::FORBIDDEN,
    );
    let missing = fire(&api, &t["alice"], &id, "lose", json!({})).await;
    assert!(
        missing.body["detail"]
            .as_str()
            .unwrap()
            .contains("lost_reason"),
        "{}",
        missing.text
    );

    api.send(
        "PATCH",
        &format!("{DEALS}/{id}"),
        Some(&t["alice"]),
        Some(json!({"amount": 5000})),
    )
    .await;
    let submitted = fire(&api, &t["alice"], &id, "submit", json!({})).await;
    assert_eq!(submitted.status, StatusCode::OK, "{}", submitted.text);
    assert_eq!(submitted.body["state"], "review");

    // Two approvers in `all` mode: one approval is not enough.
    let inbox = |who: &'static str| {
        let api = &api;
        let token = t[who].clone();
        async move {
            api.send(
                "GET",
                "/api/apps/deals/tasks?assignee=me&status=open",
                Some(&token),
                None,
            )
            .await
            .body["items"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let alice_tasks = inbox("alice").await;
    assert_eq!(alice_tasks.len(), 1);
    assert_eq!(alice_tasks[0]["kind"], "approval");
    let complete = |who: &'static str, task: String, outcome: &'static str| {
        let api = &api;
        let token = t[who].clone();
        async move {
            api.send(
                "POST",
                &format!("/api/apps/deals/tasks/{task}/complete"),
                Some(&token),
                Some(json!({"outcome": outcome})),
            )
            .await
        }
    };
    let alice_vote = complete(
        "alice",
        alice_tasks[0]["id"].as_str().unwrap().to_owned(),
        "approve",
    )
    .await;
    assert_eq!(alice_vote.status, StatusCode::OK, "{}", alice_vote.text);
    assert_eq!(stage(&api, &id).await, "review", "one of two approvals");
    // Nobody completes someone else's task; bob delegates his vote to rita, the admin hands it back.
    let bob_task = inbox("bob").await[0]["id"].as_str().unwrap().to_owned();
    assert_problem(
        &complete("alice", bob_task.clone(), "approve").await,
        StatusCode::NOT_FOUND,
    );
    let reassign = |who: &'static str, task: String, to: &'static str| {
        let api = &api;
        let token = t[who].clone();
        async move {
            api.send(
                "POST",
                &format!("/api/apps/deals/tasks/{task}/reassign"),
                Some(&token),
                Some(json!({"to": to})),
            )
            .await
        }
    };
    assert_problem(
        &reassign("alice", bob_task.clone(), "alice").await,
        StatusCode::FORBIDDEN,
    );
    let delegated = reassign("bob", bob_task.clone(), "rita").await;
    assert_eq!(delegated.status, StatusCode::OK, "{}", delegated.text);
    assert_eq!(delegated.body["assignee"], t["rita_id"].as_str());
    assert!(inbox("bob").await.is_empty());
    let back = api
        .call(
            "POST",
            &format!("/api/apps/deals/tasks/{bob_task}/reassign"),
            Some(json!({"to": "bob"})),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(
        complete("bob", bob_task, "approve").await.status,
        StatusCode::OK
    );
    assert_eq!(stage(&api, &id).await, "approved");

    // The approved state's task (due in 1h, escalates to bob) and timer (30d) are persisted.
    let close_task = inbox("alice").await;
    assert_eq!(close_task.len(), 1, "{close_task:?}");
    assert_eq!(close_task[0]["kind"], "task");
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let (fired, escalated) = api.runtime.run_scheduler_once(later).await.unwrap();
    assert_eq!((fired, escalated), (0, 1));
    assert!(inbox("alice").await.is_empty());
    assert_eq!(inbox("bob").await.len(), 1, "escalated to bob");
    assert!(
        api.send("GET", "/api/notifications", Some(&t["bob"]), None)
            .await
            .body["items"][0]["message"]
            .as_str()
            .unwrap()
            .contains("escalated"),
        "newest first"
    );
    let bob_notes = api
        .send("GET", "/api/notifications", Some(&t["bob"]), None)
        .await;
    assert_eq!(
        bob_notes.body["items"].as_array().unwrap().len(),
        2,
        "the reassignment and the escalation: {}",
        bob_notes.text
    );
    // A fresh runtime on the same database (a restart) fires the timer once, even when run twice.
    let restarted = trellis_runtime::Runtime::new(api.runtime.store().clone(), Default::default());
    let expired = chrono::Utc::now() + chrono::Duration::days(31);
    assert_eq!(restarted.run_scheduler_once(expired).await.unwrap().0, 1);
    assert_eq!(restarted.run_scheduler_once(expired).await.unwrap().0, 0);
    let record = api.call("GET", &format!("{DEALS}/{id}"), None).await;
    assert_eq!(
        (
            record.body["data"]["stage"].as_str(),
            record.body["data"]["lost_reason"].as_str()
        ),
        (Some("lost"), Some("expired"))
    );
    // Leaving the state cancelled its open task.
    assert!(inbox("bob").await.is_empty());

    // History: who, when, from, to, event, and what the guard saw.
    let flows = api.call("GET", &format!("{DEALS}/{id}/flows"), None).await;
    let history: Vec<(String, String)> = flows.body["items"][0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["event"].as_str().unwrap().to_owned(),
                h["to_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        history,
        [
            ("create", "draft"),
            ("submit", "review"),
            ("approved", "approved"),
            ("expire", "lost")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let inputs: Value = serde_json::from_str(
        flows.body["items"][0]["history"][1]["inputs"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(inputs["amount"], 5000);
}

async fn concurrent_events_apply_once(backend: Backend) {
    let (api, t) = setup_or_skip!(backend);
    let mut ids = Vec::new();
    for i in 0..5 {
        let created = api
            .call(
                "POST",
                DEALS,
                Some(json!({"name": format!("d{i}"), "amount": 10})),
            )
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let (a, b) = tokio::join!(
            fire(
                &api,
                &t["alice"],
                id,
                "lose",
                json!({"lost_reason": "price"})
            ),
            fire(&api, &t["bob"], id, "submit", json!({})),
        );
        let statuses = [a.status, b.status];
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "exactly one of two events from 'draft' applies: {} / {}",
            a.text,
            b.text
        );
        assert!(statuses.contains(&StatusCode::CONFLICT));
        let flows = api.call("GET", &format!("{DEALS}/{id}/flows"), None).await;
        assert_eq!(
            flows.body["items"][0]["history"].as_array().unwrap().len(),
            2,
            "its creation and exactly one event"
        );
    }
    // One user's concurrent events share commits (group commit): each record's first applies, the
    // second on one record is refused, and nobody's transition is lost or applied twice.
    let mut fresh = Vec::new();
    for i in 0..3 {
        let created = api
            .call(
                "POST",
                DEALS,
                Some(json!({"name": format!("g{i}"), "amount": 10})),
            )
            .await;
        fresh.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let (a, b, c, d) = tokio::join!(
        fire(&api, &t["bob"], &fresh[0], "submit", json!({})),
        fire(&api, &t["bob"], &fresh[0], "submit", json!({})),
        fire(&api, &t["bob"], &fresh[1], "submit", json!({})),
        fire(&api, &t["bob"], &fresh[2], "submit", json!({})),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        a.text,
        b.text
    );
    assert_eq!(
        (c.status, d.status),
        (StatusCode::OK, StatusCode::OK),
        "{} / {}",
        c.text,
        d.text
    );
    for id in &fresh {
        let record = api.call("GET", &format!("{DEALS}/{id}"), None).await;
        assert_eq!(record.body["data"]["stage"], "review", "{}", record.text);
        assert_eq!(record.body["version"], 2, "{}", record.text);
        let flows = api.call("GET", &format!("{DEALS}/{id}/flows"), None).await;
        assert_eq!(
            flows.body["items"][0]["history"].as_array().unwrap().len(),
            2
        );
    }
}

async fn broken_flows_are_refused_with_every_finding(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let broken = json!({
        "format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
        "states": [
            {"id": "draft", "initial": true},
            {"id": "review"},
            {"id": "approved"},
            {"id": "won", "terminal": true},
            {"id": "lost", "terminal": true}
        ],
        "transitions": [
            {"event": "submit", "from": ["draft"], "to": "review", "guard": "amount >"},
            {"event": "close", "from": ["draft"], "to": "won"},
            {"event": "close", "from": ["draft"], "to": "lost"},
            {"event": "reopen", "from": ["won"], "to": "draft"}
        ]
    });
    let refused = api
        .call("POST", "/api/apps?dry_run=true", Some(deals_bundle(broken)))
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    let found: Vec<(String, String)> = refused.body["errors"]
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
    for expected in [
        ("/states/2", "unreachable_state"),
        ("/states/1", "dead_end"),
        ("/states/3/terminal", "terminal_with_exit"),
        ("/transitions/0/guard", "invalid_guard"),
    ] {
        assert!(
            found.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} in {found:?}"
        );
    }
    assert!(
        refused
            .text
            .contains("cannot be reached from the initial state"),
        "plain words: {}",
        refused.text
    );
    // The overlap is a warning: a flow with only that is accepted, and the warning is reported.
    let mut warned = deal_flow();
    warned["transitions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"event": "lose", "from": ["draft"], "to": "lost"}));
    let accepted = api
        .call("POST", "/api/apps?dry_run=true", Some(deals_bundle(warned)))
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
    assert!(
        accepted.text.contains("overlapping_transitions"),
        "{}",
        accepted.text
    );
}

/// A tiny HTTP endpoint: answers 500 to the first `failures` requests and 200 after; keeps every request.
pub(crate) async fn webhook_endpoint(failures: usize) -> (String, crate::support::tls::Received) {
    let (url, seen, _) = crate::support::tls::http_endpoint(failures, None).await;
    (url, seen)
}

async fn outbox_delivers_signed_webhooks_with_retries(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let (url, seen) = webhook_endpoint(1).await;
    let flow = json!({
        "format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
        "states": [{"id": "draft", "initial": true}, {"id": "won", "terminal": true}],
        "transitions": [{"event": "win", "from": ["draft"], "to": "won", "actions": [
            {"webhook": {"url": url}},
            {"create_record": {"entity": "deal", "fields": {"name": "$record.name", "amount": 1}}}
        ]}]
    });
    let created = api
        .call("POST", "/api/apps", Some(deals_bundle(flow)))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let deal = api
        .call(
            "POST",
            DEALS,
            Some(json!({"name": "Follow me", "amount": 3})),
        )
        .await;
    let id = deal.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        fire(&api, &api.token, &id, "win", json!({})).await.status,
        StatusCode::OK
    );
    // Nothing left the building inside the transaction; the worker does it after commit.
    assert!(seen.lock().unwrap().is_empty());
    let signed = trellis_runtime::Runtime::new(
        api.runtime.store().clone(),
        trellis_runtime::RuntimeSettings {
            webhook_secret: Some("s3cret".into()),
            ..Default::default()
        },
    );
    let now = chrono::Utc::now();
    let delivered = signed.run_outbox_once(now).await.unwrap();
    assert_eq!(
        delivered,
        1,
        "the record is created; the webhook got a 500: {:?}",
        api.runtime.store().outbox_of("deals").await.unwrap()
    );
    let outbox = api.runtime.store().outbox_of("deals").await.unwrap();
    let hook = outbox.iter().find(|o| o.kind == "webhook").unwrap();
    assert_eq!(
        (hook.status.as_str(), hook.attempts),
        ("pending", 1),
        "{outbox:?}"
    );
    assert!(hook.last_error.as_deref().unwrap().contains("500"));
    assert_eq!(
        signed.run_outbox_once(now).await.unwrap(),
        0,
        "not before its backoff"
    );
    assert_eq!(
        signed
            .run_outbox_once(now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    let outbox = api.runtime.store().outbox_of("deals").await.unwrap();
    assert!(outbox.iter().all(|o| o.status == "done"), "{outbox:?}");
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2);
    let (head, body) = &requests[1];
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (
            payload["event"].as_str(),
            payload["record"]["stage"].as_str()
        ),
        (Some("win"), Some("won"))
    );
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(body.as_bytes());
    let expected = format!(
        "x-trellis-signature: sha256={}",
        hex::encode(mac.finalize().into_bytes())
    );
    assert!(head.to_ascii_lowercase().contains(&expected), "{head}");
    let names: Vec<String> = api
        .call("GET", &format!("{DEALS}?sort=amount"), None)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["data"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["Follow me", "Follow me"],
        "the created record copies the name"
    );
}

async fn publishing_a_renamed_state_needs_a_mapping_and_moves_records(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let lost = api
        .call("POST", DEALS, Some(json!({"name": "gone", "amount": 1})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let open = api
        .call("POST", DEALS, Some(json!({"name": "open", "amount": 1})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        fire(
            &api,
            &api.token,
            &lost,
            "lose",
            json!({"lost_reason": "price"})
        )
        .await
        .status,
        StatusCode::OK
    );

    // Version 2 renames 'lost' to 'closed_lost' (in the flow and in the field's options).
    let renamed = |mapping: Option<Value>| {
        let mut flow = deal_flow();
        let text = flow.to_string().replace("\"lost\"", "\"closed_lost\"");
        flow = serde_json::from_str(&text).unwrap();
        if let Some(mapping) = mapping {
            flow["state_mapping"] = mapping;
        }
        let mut bundle = deals_bundle(flow);
        bundle["trellis.json"]["version"] = json!("1.1.0");
        bundle["entities/deal.schema.json"]["properties"]["stage"]["enum"] =
            json!(["draft", "review", "approved", "won", "closed_lost"]);
        bundle
    };
    let refused = api
        .call("PUT", "/api/apps/deals/bundle", Some(renamed(None)))
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"], "/state_mapping/lost",
        "{}",
        refused.text
    );
    assert_eq!(refused.body["errors"][0]["code"], "stranded_records");
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("1 record(s) are in state 'lost'")
    );
    assert_eq!(
        stage(&api, &lost).await,
        "lost",
        "a refused publish changes nothing"
    );

    let published = api
        .call(
            "PUT",
            "/api/apps/deals/bundle",
            Some(renamed(Some(json!({"lost": "closed_lost"})))),
        )
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    assert_eq!(
        published.body["states_moved"]["deal: lost → closed_lost"], 1,
        "{}",
        published.text
    );
    assert_eq!(stage(&api, &lost).await, "closed_lost");
    assert_eq!(stage(&api, &open).await, "draft");
    // The moved record still works in the new version of the flow.
    let flows = api
        .call("GET", &format!("{DEALS}/{open}/flows"), None)
        .await;
    assert_eq!(flows.body["items"][0]["state"], "draft");
    let gone = fire(
        &api,
        &api.token,
        &open,
        "lose",
        json!({"lost_reason": "timing"}),
    )
    .await;
    assert_eq!(gone.body["state"], "closed_lost", "{}", gone.text);
}

async fn cron_timers_fire_on_schedule(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let flow = |cron: &str| {
        json!({
            "format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
            "states": [{"id": "draft", "initial": true}, {"id": "review"}, {"id": "won", "terminal": true}],
            "transitions": [{"event": "nudge", "from": ["draft"], "to": "review"}, {"event": "close", "from": ["review"], "to": "won"}],
            "timers": [{"state": "draft", "cron": cron, "event": "nudge"}]
        })
    };
    let refused = api
        .call(
            "POST",
            "/api/apps?dry_run=true",
            Some(deals_bundle(flow("every tuesday"))),
        )
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"], "/timers/0/cron",
        "{}",
        refused.text
    );
    let created = api
        .call("POST", "/api/apps", Some(deals_bundle(flow("*/5 * * * *"))))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = api
        .call("POST", DEALS, Some(json!({"name": "cron"})))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let timers = api.runtime.store().timers_of(&id).await.unwrap();
    assert_eq!(timers.len(), 1);
    let wait = timers[0].due_at - chrono::Utc::now();
    assert!(
        wait <= chrono::Duration::minutes(5) && wait > chrono::Duration::zero(),
        "next 5-minute mark: {wait}"
    );
    assert_eq!(
        api.runtime
            .run_scheduler_once(chrono::Utc::now())
            .await
            .unwrap()
            .0,
        0,
        "not due yet"
    );
    assert_eq!(
        api.runtime
            .run_scheduler_once(timers[0].due_at)
            .await
            .unwrap()
            .0,
        1
    );
    assert_eq!(stage(&api, &id).await, "review");
    // Imported records start their flows too: they are in the initial state with its timer.
    let imported = api
        .post_text(
            "/api/apps/deals/entities/deal/import",
            "application/x-ndjson",
            "{\"name\": \"i1\"}\n{\"name\": \"i2\"}",
        )
        .await;
    assert_eq!(imported.body["inserted"], 2, "{}", imported.text);
    let list = api.call("GET", &format!("{DEALS}?filter={}", "%7B%22field%22%3A%22name%22%2C%22op%22%3A%22in%22%2C%22value%22%3A%5B%22i1%22%2C%22i2%22%5D%7D"), None).await;
    for item in list.body["items"].as_array().unwrap() {
        assert_eq!(item["data"]["stage"], "draft");
        let timers = api
            .runtime
            .store()
            .timers_of(item["id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(timers.len(), 1, "{item}");
    }
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        list.text
    );
}

async fn runs_keep_the_definition_they_started_with(backend: Backend) {
    let (api, _) = setup_or_skip!(backend);
    let create = |name: &'static str| {
        let api = &api;
        async move {
            api.call("POST", DEALS, Some(json!({"name": name, "amount": 5})))
                .await
                .body["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let started_before = create("before").await;
    // Version 2 raises the bar for submitting; no state changes.
    let mut flow = deal_flow();
    flow["transitions"][0]["guard"] = json!("amount > 1000");
    let mut bundle = deals_bundle(flow);
    bundle["trellis.json"]["version"] = json!("1.1.0");
    let published = api
        .call("PUT", "/api/apps/deals/bundle", Some(bundle))
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    let started_after = create("after").await;

    let version_of = |id: String| {
        let api = &api;
        async move {
            api.call("GET", &format!("{DEALS}/{id}/flows"), None)
                .await
                .body["items"][0]["app_version"]
                .clone()
        }
    };
    assert_eq!(version_of(started_before.clone()).await, 1);
    assert_eq!(version_of(started_after.clone()).await, 2);
    let old_rules = fire(&api, &api.token, &started_before, "submit", json!({})).await;
    assert_eq!(
        old_rules.status,
        StatusCode::OK,
        "the run under way keeps version 1's guard: {}",
        old_rules.text
    );
    let new_rules = fire(&api, &api.token, &started_after, "submit", json!({})).await;
    assert_problem(&new_rules, StatusCode::CONFLICT);
    assert!(
        new_rules.body["detail"]
            .as_str()
            .unwrap()
            .contains("amount > 1000"),
        "{}",
        new_rules.text
    );
}

/// Two servers on one database run their schedulers at the same moment over the same due timers:
/// claims split the timers between them (a claimed timer is skipped until its lease ends), every
/// timer fires exactly once, and none is cancelled for losing a race.
async fn two_servers_fire_each_due_timer_once(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let flow = json!({
        "format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
        "states": [{"id": "draft", "initial": true}, {"id": "review"}, {"id": "won", "terminal": true}],
        "transitions": [{"event": "nudge", "from": ["draft"], "to": "review"}, {"event": "close", "from": ["review"], "to": "won"}],
        "timers": [{"state": "draft", "after": "1h", "event": "nudge"}]
    });
    let created = api
        .call("POST", "/api/apps", Some(deals_bundle(flow)))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    const DEALS_COUNT: usize = 60;
    let mut ids = Vec::new();
    for i in 0..DEALS_COUNT {
        let deal = api
            .call("POST", DEALS, Some(json!({"name": format!("deal {i}")})))
            .await;
        ids.push(deal.body["id"].as_str().unwrap().to_owned());
    }
    let store = api.runtime.store();
    let later = chrono::Utc::now() + chrono::Duration::hours(2);

    // A claim is a lease: a second claim at the same moment finds nothing, after the lease it does.
    let claimed = store
        .claim_due_timers(later, 5, chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    assert!(
        claimed.windows(2).all(|w| w[0].due_at <= w[1].due_at),
        "oldest first"
    );
    let others = store
        .claim_due_timers(later, 1000, chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        others.len(),
        DEALS_COUNT - 5,
        "the claimed five are skipped"
    );
    let after_lease = store
        .claim_due_timers(
            later + chrono::Duration::seconds(61),
            1000,
            chrono::Duration::seconds(60),
        )
        .await
        .unwrap();
    assert_eq!(
        after_lease.len(),
        DEALS_COUNT,
        "expired leases make timers due again"
    );
    for timer in &after_lease {
        store.release_timer(&timer.id).await.unwrap();
    }

    // Two servers (runtimes of their own, with their own caches) tick at once.
    let second =
        trellis_runtime::Runtime::new(store.clone(), trellis_runtime::RuntimeSettings::default());
    let (a, b) = tokio::join!(
        api.runtime.run_scheduler_once(later),
        second.run_scheduler_once(later)
    );
    let (a, b) = (a.unwrap().0, b.unwrap().0);
    assert_eq!(
        a + b,
        DEALS_COUNT,
        "each timer fired once between them ({a} + {b})"
    );
    for id in &ids {
        let history = store.flow_history(id).await.unwrap();
        let nudges = history.iter().filter(|h| h.event == "nudge").count();
        assert_eq!(nudges, 1, "{id}: {history:?}");
        assert!(
            store.timers_of(id).await.unwrap().is_empty(),
            "{id}: none pending"
        );
        let pending =
            store.timer_pending(&after_lease.iter().find(|t| &t.record_id == id).unwrap().id);
        assert!(!pending.await.unwrap());
    }
    assert_eq!(
        api.runtime
            .run_scheduler_once(later + chrono::Duration::hours(1))
            .await
            .unwrap()
            .0,
        0,
        "nothing is left to fire"
    );
}
