//! Events that rules fire on their own record, delivered from the outbox: a pass delivers such
//! events on different records side by side (a nightly run queues one per moved customer), yet each
//! record's events keep their order, and two workers at once deliver each entry once.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::TestApi;
use crate::support::{Backend, on_both_backends};

const TICKETS: &str = "/api/apps/desk/entities/ticket/records";

fn desk_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "desk", "version": "1.0.0", "name": {"en": "Desk", "zh-CN": "服务台"}},
        "entities/ticket.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "title": {"type": "string"},
                "level": {"type": "integer", "default": 0},
                "stage": {"type": "string", "enum": ["new", "open", "closed"]}
            }
        },
        "flows/stage.flow.json": {
            "format_version": 1, "id": "stage", "entity": "ticket", "state_field": "stage",
            "states": [{"id": "new", "initial": true}, {"id": "open"}, {"id": "closed", "terminal": true}],
            "transitions": [
                {"event": "open", "from": ["new"], "to": "open"},
                {"event": "close", "from": ["open"], "to": "closed"}
            ]
        },
        // Level 1 opens, level 2 closes: "close" only applies after "open".
        "rules/opens.rule.json": {"format_version": 1, "id": "opens", "entity": "ticket",
            "trigger": {"record_updated": {"fields": ["level"]}}, "condition": "level == 1",
            "actions": [{"fire_event": {"flow": "stage", "event": "open"}}]},
        "rules/closes.rule.json": {"format_version": 1, "id": "closes", "entity": "ticket",
            "trigger": {"record_updated": {"fields": ["level"]}}, "condition": "level == 2",
            "actions": [{"fire_event": {"flow": "stage", "event": "close"}}]}
    })
}

async fn own_record_events_keep_their_order_per_record(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let created = api.call("POST", "/api/apps", Some(desk_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut ids = Vec::new();
    for n in 0..12 {
        let ticket = api
            .call("POST", TICKETS, Some(json!({"title": format!("t{n}")})))
            .await;
        assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.text);
        ids.push(ticket.body["id"].as_str().unwrap().to_owned());
    }
    // Every ticket queues "open", then (the odd ones) "close": the outbox holds the opens of all
    // twelve and then six closes, each close behind its own ticket's open.
    for level in [1, 2] {
        for (n, id) in ids.iter().enumerate() {
            if level == 2 && n % 2 == 0 {
                continue;
            }
            let patched = api
                .call(
                    "PATCH",
                    &format!("{TICKETS}/{id}"),
                    Some(json!({"level": level})),
                )
                .await;
            assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        }
    }
    let queued = api.runtime.store().outbox_of("desk").await.unwrap();
    assert_eq!(queued.len(), 18, "{queued:?}");

    // Two workers at once (two servers), then whatever is left.
    let now = chrono::Utc::now();
    let (a, b) = tokio::join!(
        api.runtime.run_outbox_once(now),
        api.runtime.run_outbox_once(now)
    );
    let delivered = a.unwrap() + b.unwrap();
    assert_eq!(
        delivered, 18,
        "every entry once, none twice or skipped: the closes ran after their opens"
    );
    assert_eq!(
        api.runtime
            .run_outbox_once(chrono::Utc::now())
            .await
            .unwrap(),
        0
    );
    let outbox = api.runtime.store().outbox_of("desk").await.unwrap();
    assert!(
        outbox
            .iter()
            .all(|o| o.status == "done" && o.attempts == 1 && o.last_error.is_none()),
        "{outbox:?}"
    );
    for (n, id) in ids.iter().enumerate() {
        let ticket = api.call("GET", &format!("{TICKETS}/{id}"), None).await;
        let expected = if n % 2 == 0 { "open" } else { "closed" };
        assert_eq!(ticket.body["data"]["stage"], expected, "{}", ticket.text);
        let moves: Vec<(String, String)> = api
            .runtime
            .store()
            .flow_history(id)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.event, h.to_state))
            .collect();
        let mut expected_moves = vec![
            ("create".to_owned(), "new".to_owned()),
            ("open".to_owned(), "open".to_owned()),
        ];
        if n % 2 == 1 {
            expected_moves.push(("close".to_owned(), "closed".to_owned()));
        }
        assert_eq!(moves, expected_moves, "ticket {n}");
    }
}
on_both_backends!(own_record_events_keep_their_order_per_record);
