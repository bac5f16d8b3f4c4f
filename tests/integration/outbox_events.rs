//! Outbox entries that concern only the record that queued them — events rules fire on it, records
//! created from it — delivered: a pass delivers such entries of different records side by side (a
//! nightly run queues one per moved customer), yet each record's entries keep their order, and two
//! workers at once deliver each entry once; a pass takes more than a hundred entries while they can go
//! side by side; a backlog drains two passes at a time without breaking any record's order.

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

/// `bundle` with a `watched` flag on tickets that every new note sets on its ticket (an update of a
/// related record: an entry delivered alone).
fn with_watching_notes(bundle: &mut Value) {
    let files = bundle.as_object_mut().unwrap();
    files["entities/ticket.schema.json"]["properties"]["watched"] =
        json!({"type": "boolean", "default": false});
    files.insert(
        "rules/watch.rule.json".into(),
        json!({"format_version": 1, "id": "watch", "entity": "note",
            "trigger": {"record_created": {}},
            "actions": [{"update_records": {"relation": "ticket", "set": {"watched": true}}}]}),
    );
}

/// Create tickets "t0", "t1", … (`count` of them); their ids in order.
async fn create_tickets(api: &TestApi, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let ticket = api
            .call("POST", TICKETS, Some(json!({"title": format!("t{n}")})))
            .await;
        assert_eq!(ticket.status, StatusCode::CREATED, "{}", ticket.text);
        ids.push(ticket.body["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Level 1 for every ticket (each queues "open"), then level 2 for the odd ones (each queues "close"
/// and a note, behind its own open).
async fn open_all_then_close_the_odd_ones(api: &TestApi, ids: &[String]) {
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
}

/// The stage each note of ticket `id` saw, and the notes' reply (for messages).
async fn stages_seen_by_notes(api: &TestApi, id: &str) -> (Vec<Value>, crate::support::api::Reply) {
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
    let seen = notes.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|note| note["data"]["stage_seen"].clone())
        .collect();
    (seen, notes)
}

async fn own_record_events_keep_their_order_per_record(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let created = api.call("POST", "/api/apps", Some(desk_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ids = create_tickets(&api, 12).await;
    // Every ticket queues "open", then (the odd ones) "close" and a note: the outbox holds the opens
    // of all twelve and then six closes and six notes, each behind its own ticket's open.
    open_all_then_close_the_odd_ones(&api, &ids).await;
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
        let (seen, notes) = stages_seen_by_notes(&api, id).await;
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
    files.retain(|name, _| !name.starts_with("rules/"));
    files.insert(
        "rules/opens.rule.json".into(),
        json!({"format_version": 1, "id": "opens", "entity": "ticket",
            "trigger": {"record_updated": {"fields": ["level"]}}, "condition": "level == 1",
            "actions": [{"fire_event": {"flow": "stage", "event": "open"}}]}),
    );
    with_watching_notes(&mut bundle);
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ids = create_tickets(&api, 130).await;
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

/// A backlog drained in small passes, two at a time: each record's entries still go in order (a pass
/// claimed beside a running one leaves the entries about that pass's records for later) and the
/// entries delivered alone (the notes' updates of their tickets, queued during the drain) still run.
async fn a_drain_of_two_passes_at_once_keeps_each_records_order(backend: Backend) {
    let settings = trellis_runtime::RuntimeSettings {
        outbox_pass: 4,
        ..Default::default()
    };
    let Some(api) = TestApi::start_with(backend, settings).await else {
        return;
    };
    let mut bundle = desk_bundle();
    with_watching_notes(&mut bundle);
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let ids = create_tickets(&api, 6).await;
    // Six opens, then a close and a note for each odd ticket: the first pass takes four opens, the
    // one beside it the last two opens (the close and note of ticket 1 wait for the first pass).
    open_all_then_close_the_odd_ones(&api, &ids).await;
    assert_eq!(
        api.runtime.store().outbox_of("desk").await.unwrap().len(),
        12
    );

    let delivered = api
        .runtime
        .drain_outbox(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        delivered, 15,
        "12 entries and the 3 notes' updates, each once"
    );
    let outbox = api.runtime.store().outbox_of("desk").await.unwrap();
    assert_eq!(outbox.len(), 15);
    assert!(
        outbox
            .iter()
            .all(|o| o.status == "done" && o.attempts == 1 && o.last_error.is_none()),
        "{outbox:?}"
    );
    for (n, id) in ids.iter().enumerate() {
        let odd = n % 2 == 1;
        let ticket = api.call("GET", &format!("{TICKETS}/{id}"), None).await;
        let stage = if odd { "closed" } else { "open" };
        assert_eq!(
            ticket.body["data"]["stage"], stage,
            "ticket {n}: {}",
            ticket.text
        );
        assert_eq!(
            ticket.body["data"]["watched"], odd,
            "ticket {n}: {}",
            ticket.text
        );
        let moves: Vec<String> = api
            .runtime
            .store()
            .flow_history(id)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.event)
            .collect();
        let expected: &[&str] = if odd {
            &["create", "open", "close"]
        } else {
            &["create", "open"]
        };
        assert_eq!(moves, expected, "ticket {n}");
        let (seen, notes) = stages_seen_by_notes(&api, id).await;
        let expected: Vec<&str> = if odd { vec!["closed"] } else { vec![] };
        assert_eq!(seen, expected, "ticket {n}: {}", notes.text);
    }
}
on_both_backends!(a_drain_of_two_passes_at_once_keeps_each_records_order);

/// A wave's events fire together and its records are created together, yet each entry ends as it
/// would one at a time: an event whose record left the state is skipped, a created record whose
/// unique value is taken fails alone, the others get their auto-numbers (each once), their flows
/// start, their before- and after-save rules run and log, and each moved ticket has its history.
async fn a_wave_fires_and_creates_together_as_one_at_a_time_would(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut bundle = desk_bundle();
    let files = bundle.as_object_mut().unwrap();
    files["entities/note.schema.json"]["properties"] = json!({
        "ticket": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "ticket"}}},
        "key": {"type": "string", "x-trellis": {"unique": true}},
        "number": {"type": "string", "x-trellis": {"kind": "auto_number", "pattern": "N-{0000}"}},
        "phase": {"type": "string", "enum": ["fresh", "read"]},
        "loud": {"type": "boolean", "default": false},
        "checked": {"type": "boolean", "default": false}
    });
    files.retain(|name, _| !name.starts_with("rules/"));
    files.insert(
        "flows/phase.flow.json".into(),
        json!({"format_version": 1, "id": "phase", "entity": "note", "state_field": "phase",
            "states": [{"id": "fresh", "initial": true}, {"id": "read", "terminal": true}],
            "transitions": [{"event": "read", "from": ["fresh"], "to": "read"}]}),
    );
    // Level 1 opens the ticket and makes a note keyed by its title.
    files.insert(
        "rules/opens.rule.json".into(),
        json!({"format_version": 1, "id": "opens", "entity": "ticket",
            "trigger": {"record_updated": {"fields": ["level"]}}, "condition": "level == 1",
            "actions": [{"fire_event": {"flow": "stage", "event": "open"}},
                {"create_record": {"entity": "note", "fields": {"ticket": "$record_id", "key": "$record.title"}}}]}),
    );
    files.insert(
        "rules/loud.rule.json".into(),
        json!({"format_version": 1, "id": "loud", "entity": "note", "trigger": {"before_save": {}},
            "condition": "key.starts_with(\"t1\")", "actions": [{"set": {"loud": true}}]}),
    );
    files.insert(
        "rules/check.rule.json".into(),
        json!({"format_version": 1, "id": "check", "entity": "note",
            "trigger": {"record_created": {}}, "actions": [{"set": {"checked": true}}]}),
    );
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    const NOTES: &str = "/api/apps/desk/entities/note/records";
    // Key "t7" is taken before its ticket's note is made.
    let taken = api.call("POST", NOTES, Some(json!({"key": "t7"}))).await;
    assert_eq!(taken.status, StatusCode::CREATED, "{}", taken.text);
    let ids = create_tickets(&api, 240).await;
    for id in &ids {
        let patched = api
            .call(
                "PATCH",
                &format!("{TICKETS}/{id}"),
                Some(json!({"level": 1})),
            )
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    }
    // Ticket 3 is opened by hand before the outbox gets to it.
    let opened = api
        .call(
            "POST",
            &format!("{TICKETS}/{}/flows/stage/events", ids[3]),
            Some(json!({"event": "open"})),
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "{}", opened.text);
    assert_eq!(
        api.runtime.store().outbox_of("desk").await.unwrap().len(),
        480
    );

    let delivered = api
        .runtime
        .run_outbox_once(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        delivered, 479,
        "one pass: 240 events (one skipped as done) and 239 of 240 notes"
    );
    let outbox = api.runtime.store().outbox_of("desk").await.unwrap();
    let failed: Vec<_> = outbox.iter().filter(|o| o.status != "done").collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].status, "failed");
    assert!(failed[0].payload.contains(&ids[7]), "{:?}", failed[0]);
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("key")),
        "{:?}",
        failed[0]
    );
    for (n, id) in ids.iter().enumerate() {
        let moves: Vec<(String, Option<String>)> = api
            .runtime
            .store()
            .flow_history(id)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.event, h.actor))
            .collect();
        // Ticket 3 was opened by its user; the rule's event found it open and changed nothing.
        // The others were opened by the system (no actor).
        assert_eq!(moves.len(), 2, "ticket {n}: {moves:?}");
        assert_eq!(moves[1].0, "open", "ticket {n}");
        assert_eq!(moves[1].1.is_some(), n == 3, "ticket {n}: {moves:?}");
    }
    let mut notes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = api
            .call(
                "GET",
                &format!(
                    "{NOTES}?limit=100{}",
                    cursor
                        .as_ref()
                        .map(|c| format!("&cursor={c}"))
                        .unwrap_or_default()
                ),
                None,
            )
            .await;
        notes.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let made: Vec<&Value> = notes
        .iter()
        .filter(|n| n["data"]["ticket"].is_string())
        .collect();
    assert_eq!(made.len(), 239);
    let mut numbers: Vec<&str> = notes
        .iter()
        .map(|n| n["data"]["number"].as_str().unwrap())
        .collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 240, "every note its own number");
    // 241 drawn: the clashing note's number is not given again (as when created one at a time).
    assert_eq!(numbers.last(), Some(&"N-0241"));
    for note in &made {
        let data = &note["data"];
        let key = data["key"].as_str().unwrap();
        assert_eq!(data["phase"], "fresh", "{note}");
        assert_eq!(data["checked"], true, "the after-save rule ran: {note}");
        assert_eq!(
            data["loud"],
            key.starts_with("t1"),
            "the before-save rule ran: {note}"
        );
        let id = note["id"].as_str().unwrap();
        let started = api.runtime.store().flow_history(id).await.unwrap();
        assert_eq!(started.len(), 1, "{note}");
        assert_eq!(started[0].event, "create");
    }
    let runs = api
        .call("GET", "/api/apps/desk/rules/check/runs", None)
        .await;
    assert_eq!(runs.status, StatusCode::OK, "{}", runs.text);
    assert_eq!(
        runs.body["items"].as_array().map(Vec::len),
        Some(240),
        "each created note's after-save run logged once (the hand-made one too): {}",
        runs.text
    );
}
on_both_backends!(a_wave_fires_and_creates_together_as_one_at_a_time_would);
