//! Outbox entries that concern only the record that queued them — events rules fire on it, records
//! created from it — delivered: a pass delivers such entries of different records side by side (a
//! nightly run queues one per moved customer), yet each record's entries keep their order, and two
//! workers at once deliver each entry once; a pass takes more than a hundred entries while they can go
//! side by side.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::records::urlencode;
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
        "entities/note.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "ticket": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "ticket"}}},
                "stage_seen": {"type": "string"}
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
            "actions": [{"fire_event": {"flow": "stage", "event": "close"}}]},
        // Queued with the close: the note sees the stage its ticket has when the note is made.
        "rules/notes.rule.json": {"format_version": 1, "id": "notes", "entity": "ticket",
            "trigger": {"record_updated": {"fields": ["level"]}}, "condition": "level == 2",
            "actions": [{"create_record": {"entity": "note",
                "fields": {"ticket": "$record_id", "stage_seen": "$record.stage"}}}]}
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
    // Every ticket queues "open", then (the odd ones) "close" and a note: the outbox holds the opens
    // of all twelve and then six closes and six notes, each behind its own ticket's open.
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
    assert_eq!(queued.len(), 24, "{queued:?}");
    // Whether each ticket's note was queued after its close (then it sees "closed").
    let seq_of = |id: &str, action: &str| {
        queued
            .iter()
            .find(|o| o.payload.contains(id) && o.payload.contains(action))
            .map(|o| o.seq)
    };

    // Two workers at once (two servers), then whatever is left.
    let now = chrono::Utc::now();
    let (a, b) = tokio::join!(
        api.runtime.run_outbox_once(now),
        api.runtime.run_outbox_once(now)
    );
    let delivered = a.unwrap() + b.unwrap();
    assert_eq!(
        delivered, 24,
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
        let notes = api
            .call(
                "GET",
                &format!(
                    "/api/apps/desk/entities/note/records?filter={}",
                    urlencode(&json!({"field": "ticket", "op": "eq", "value": id}).to_string())
                ),
                None,
            )
            .await;
        let seen: Vec<&Value> = notes.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|note| &note["data"]["stage_seen"])
            .collect();
        if n % 2 == 0 {
            assert!(seen.is_empty(), "ticket {n}: {}", notes.text);
        } else {
            let close = seq_of(id, "\"close\"").unwrap();
            let note = seq_of(id, "create_record").unwrap();
            let expected = if note > close { "closed" } else { "open" };
            assert_eq!(seen, vec![expected], "ticket {n}: {}", notes.text);
        }
    }
}
on_both_backends!(own_record_events_keep_their_order_per_record);

/// A pass takes more than a hundred entries while they can go side by side, but stops before an
/// entry delivered alone (an update of related records) once a hundred are taken.
async fn a_pass_takes_side_by_side_entries_beyond_the_first_hundred(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut bundle = desk_bundle();
    let files = bundle.as_object_mut().unwrap();
    files["entities/ticket.schema.json"]["properties"]["watched"] =
        json!({"type": "boolean", "default": false});
    files.retain(|name, _| !name.starts_with("rules/"));
    files.insert(
        "rules/opens.rule.json".into(),
        json!({"format_version": 1, "id": "opens", "entity": "ticket",
            "trigger": {"record_updated": {"fields": ["level"]}}, "condition": "level == 1",
            "actions": [{"fire_event": {"flow": "stage", "event": "open"}}]}),
    );
    files.insert(
        "rules/watch.rule.json".into(),
        json!({"format_version": 1, "id": "watch", "entity": "note",
            "trigger": {"record_created": {}},
            "actions": [{"update_records": {"relation": "ticket", "set": {"watched": true}}}]}),
    );
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut ids = Vec::new();
    for n in 0..130 {
        let ticket = api
            .call("POST", TICKETS, Some(json!({"title": format!("t{n}")})))
            .await;
        assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.text);
        ids.push(ticket.body["id"].as_str().unwrap().to_owned());
    }
    let open = |id: String| {
        let api = &api;
        async move {
            let patched = api
                .call(
                    "PATCH",
                    &format!("{TICKETS}/{id}"),
                    Some(json!({"level": 1})),
                )
                .await;
            assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        }
    };
    // 120 opens, then a note (its rule updates the ticket: delivered alone), then 10 opens.
    for id in &ids[..120] {
        open(id.clone()).await;
    }
    let note = api
        .call(
            "POST",
            "/api/apps/desk/entities/note/records",
            Some(json!({"ticket": ids[0]})),
        )
        .await;
    assert_eq!(note.status, StatusCode::CREATED, "{}", note.text);
    for id in &ids[120..] {
        open(id.clone()).await;
    }
    let queued = api.runtime.store().outbox_of("desk").await.unwrap();
    assert_eq!(queued.len(), 131);
    assert!(
        queued[120].payload.contains("update_records"),
        "{:?}",
        queued[120]
    );

    let mut passes = Vec::new();
    loop {
        let delivered = api
            .runtime
            .run_outbox_once(chrono::Utc::now())
            .await
            .unwrap();
        if delivered == 0 {
            break;
        }
        passes.push(delivered);
    }
    assert_eq!(
        passes,
        vec![120, 11],
        "the first pass takes the 120 events and stops at the update"
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
        assert_eq!(ticket.body["data"]["stage"], "open", "{}", ticket.text);
        assert_eq!(ticket.body["data"]["watched"], n == 0, "{}", ticket.text);
    }
}
on_both_backends!(a_pass_takes_side_by_side_entries_beyond_the_first_hundred);
