//! Column snapshots over the HTTP API, on both backends: the report column cache persisted beside the
//! records carries a restart (a fresh runtime loads it and then only the records changed after it),
//! gives exactly what loading every document gives, is rewritten once enough changed, and is never
//! trusted when damaged, of another format or of another app version.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;
use trellis_runtime::{RuntimeSettings, SnapshotPolicy};

use crate::support::api::TestApi;
use crate::support::{Backend, on_both_backends};

const ITEMS: &str = "/api/apps/stock/entities/item/records";

on_both_backends!(column_snapshots_carry_the_cache_across_restarts);

/// Snapshots for every entity, in chunks of four rows (so a few records make several chunks).
fn settings() -> RuntimeSettings {
    RuntimeSettings {
        column_snapshots: SnapshotPolicy {
            min_rows: 1,
            chunk_rows: 4,
        },
        ..RuntimeSettings::default()
    }
}

fn bundle(version: &str) -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "stock", "version": version, "name": {"en": "Stock", "zh-CN": "库存"}},
        "entities/item.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "n": {"type": "integer"},
                "ratio": {"type": "number"},
                "price": {"type": "object", "x-trellis": {"kind": "money", "currency": "CNY"}},
                "flag": {"type": "boolean"},
                "kind": {"type": "string", "enum": ["a", "b", "c", "kiosk"]},
                "note": {"type": "string"},
                "day": {"type": "string", "format": "date"},
                "at": {"type": "string", "format": "date-time"}
            }
        }
    })
}

/// Item `i` of the fixture: every kind of column, each missing in some records.
fn item(i: i64) -> Value {
    let mut item = serde_json::Map::new();
    if i % 4 != 3 {
        item.insert("n".into(), json!(i * 10 - 30));
    }
    if i % 5 != 4 {
        item.insert("ratio".into(), json!(i as f64 / 4.0));
    }
    if i % 6 != 5 {
        item.insert(
            "price".into(),
            json!({"amount": format!("{}.{:02}", i * 3, i * 7 % 100), "currency": "CNY"}),
        );
    }
    if i % 3 != 2 {
        item.insert("flag".into(), json!(i % 3 == 0));
    }
    if i % 7 != 6 {
        item.insert("kind".into(), json!(["a", "b", "c"][(i % 3) as usize]));
    }
    if i % 4 != 1 {
        item.insert(
            "note".into(),
            json!(if i == 2 {
                "备注".to_owned()
            } else {
                format!("note {i}")
            }),
        );
    }
    if i % 5 != 2 {
        item.insert(
            "day".into(),
            json!(
                (chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
                    + chrono::Duration::days(i * 11))
                .to_string()
            ),
        );
    }
    if i % 6 != 1 {
        item.insert(
            "at".into(),
            json!(format!("2026-03-{:02}T10:{i:02}:00Z", i % 9 + 1)),
        );
    }
    Value::Object(item)
}

/// Count, sum of `n` and sum of `price` in cents, computed here from the items.
fn hand_totals(items: &[Value]) -> (i64, i64, i64) {
    items.iter().fold((0, 0, 0), |(count, n, cents), item| {
        let price = item["price"]["amount"].as_str().map_or(0, |amount| {
            let (whole, fraction) = amount.split_once('.').unwrap();
            whole.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
        });
        (
            count + 1,
            n + item["n"].as_i64().unwrap_or(0),
            cents + price,
        )
    })
}

async fn query(api: &TestApi, analysis: Value) -> Value {
    let reply = api
        .call(
            "POST",
            "/api/apps/stock/query",
            Some(json!({"spec": {"dataset": {"entity": "item"}, "analysis": analysis}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["rows"].clone()
}

/// Every record's values, one group per record: what the column cache holds, through the engine.
async fn everything(api: &TestApi) -> Value {
    query(
        api,
        json!({"aggregate": {
            "dimensions": [{"field": "kind"}, {"field": "flag"}, {"field": "note"},
                {"field": "day", "bucket": "day"}, {"field": "at", "bucket": "day"}],
            "measures": [{"id": "items", "op": "count"}, {"id": "n", "op": "sum", "field": "n"},
                {"id": "price", "op": "sum", "field": "price"}, {"id": "ratio", "op": "sum", "field": "ratio"}],
            "sort": [{"by": "note"}, {"by": "n"}, {"by": "ratio"}, {"by": "day"}]}}),
    )
    .await
}

/// (count, sum of `n`, sum of `price` in cents) through the engine.
async fn totals(api: &TestApi) -> (i64, i64, i64) {
    let rows = query(
        api,
        json!({"aggregate": {"dimensions": [], "measures": [{"id": "items", "op": "count"},
            {"id": "n", "op": "sum", "field": "n"}, {"id": "price", "op": "sum", "field": "price"}]}}),
    )
    .await;
    let row = &rows[0];
    let cents = row[2]
        .as_str()
        .map(|amount| (amount.parse::<f64>().unwrap() * 100.0).round() as i64)
        .or_else(|| {
            row[2]["amount"]
                .as_str()
                .map(|a| (a.parse::<f64>().unwrap() * 100.0).round() as i64)
        })
        .or_else(|| row[2].as_f64().map(|a| (a * 100.0).round() as i64))
        .unwrap_or_else(|| panic!("a price total: {rows}"));
    (row[0].as_i64().unwrap(), row[1].as_i64().unwrap(), cents)
}

/// Items per kind (missing: `null`) through the engine.
async fn items_per_kind(api: &TestApi) -> std::collections::BTreeMap<String, i64> {
    let rows = query(
        api,
        json!({"aggregate": {"dimensions": [{"field": "kind"}], "measures": [{"id": "items", "op": "count"}]}}),
    )
    .await;
    let mut counts = std::collections::BTreeMap::new();
    for row in rows.as_array().unwrap() {
        let previous = counts.insert(row[0].to_string(), row[1].as_i64().unwrap());
        assert_eq!(previous, None, "one row per kind: {rows}");
    }
    counts
}

fn hand_kinds(items: &[Value]) -> std::collections::BTreeMap<String, i64> {
    let mut counts = std::collections::BTreeMap::new();
    for item in items {
        *counts.entry(item["kind"].to_string()).or_default() += 1;
    }
    counts
}

/// Raw SQL on the test's database (what the API cannot do: inspect or damage a snapshot).
async fn raw(api: &TestApi, backend: Backend, sql: &str) {
    let statement = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
    match backend {
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(api.database_url())
                .await
                .unwrap();
            statement.execute(&mut db).await.unwrap();
        }
        Backend::Postgres => {
            let mut db = sqlx::PgConnection::connect(api.database_url())
                .await
                .unwrap();
            statement.execute(&mut db).await.unwrap();
        }
    }
}

/// The stored snapshot's (row count, cursor sequence number), if there is one.
async fn snapshot_head(api: &TestApi, backend: Backend) -> Option<(i64, i64)> {
    let sql = "SELECT row_count, cursor_seq FROM column_snapshots WHERE app_id = 'stock'";
    match backend {
        Backend::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(api.database_url())
                .await
                .unwrap();
            sqlx::query_as(sql).fetch_optional(&mut db).await.unwrap()
        }
        Backend::Postgres => {
            let mut db = sqlx::PgConnection::connect(api.database_url())
                .await
                .unwrap();
            sqlx::query_as(sql).fetch_optional(&mut db).await.unwrap()
        }
    }
}

async fn column_snapshots_carry_the_cache_across_restarts(backend: Backend) {
    let Some(mut api) = TestApi::start_with(backend, settings()).await else {
        return;
    };
    let created = api.call("POST", "/api/apps", Some(bundle("1.0.0"))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let mut items: Vec<Value> = (0..13).map(item).collect();
    let ndjson: String = items.iter().map(|i| format!("{i}\n")).collect();
    let imported = api
        .post_text(
            "/api/apps/stock/entities/item/import",
            "application/x-ndjson",
            &ndjson,
        )
        .await;
    assert_eq!(imported.body["inserted"], 13, "{}", imported.text);

    // First start: the documents are read, and the snapshot written in the background.
    let first = everything(&api).await;
    assert_eq!(totals(&api).await, hand_totals(&items));
    assert_eq!(api.runtime.column_cache_loads(), (0, 1));
    api.runtime.column_snapshots_written().await;
    assert_eq!(snapshot_head(&api, backend).await.map(|h| h.0), Some(13));

    // Changes after the snapshot: a new record (with a text value new to the dictionary), an
    // update, a deletion.
    let listed = api.call("GET", &format!("{ITEMS}?limit=100"), None).await;
    let ids: Vec<String> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let find = |id: &str| {
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["data"]
            .clone()
    };
    let added = json!({"n": 1000, "kind": "kiosk", "note": "added", "price": {"amount": "5.00", "currency": "CNY"}});
    let reply = api.call("POST", ITEMS, Some(added.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let patched = api
        .call_with(
            "PATCH",
            &format!("{ITEMS}/{}", ids[3]),
            &[("if-match", "\"1\"")],
            Some(json!({"n": 7, "kind": "kiosk"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let deleted = api
        .call("DELETE", &format!("{ITEMS}/{}", ids[5]), None)
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.text);
    let mut now: Vec<Value> = ids
        .iter()
        .filter(|id| **id != ids[5])
        .map(|id| {
            let mut data = find(id);
            if *id == ids[3] {
                data["n"] = json!(7);
                data["kind"] = json!("kiosk");
            }
            data
        })
        .collect();
    now.push(added);

    // A restart: the snapshot, then the three changed records.
    api.restart(settings());
    let restarted = everything(&api).await;
    assert_eq!(
        api.runtime.column_cache_loads(),
        (1, 0),
        "loaded from the snapshot"
    );
    assert_eq!(totals(&api).await, hand_totals(&now));
    assert_ne!(restarted, first);
    // One group per kind, however its value reached the dictionary (both changed records carry
    // "kiosk", which only the first of them brought).
    assert_eq!(items_per_kind(&api).await, hand_kinds(&now));

    // A restart whose first caller wants fewer columns than the snapshot holds: the others come
    // along from the snapshot, so the next caller's are not read from the documents.
    api.runtime.column_snapshots_written().await;
    api.restart(settings());
    assert_eq!(totals(&api).await, hand_totals(&now));
    assert_eq!(everything(&api).await, restarted);
    assert_eq!(api.runtime.column_cache_loads(), (1, 0));
    assert_eq!(api.runtime.column_cache_columns_added(), 0);

    // Exactly what reading every document gives.
    raw(
        &api,
        backend,
        "DELETE FROM column_snapshot_chunks; DELETE FROM column_snapshots",
    )
    .await;
    api.restart(settings());
    assert_eq!(everything(&api).await, restarted);
    assert_eq!(api.runtime.column_cache_loads(), (0, 1));
    api.runtime.column_snapshots_written().await;
    let (rows, cursor) = snapshot_head(&api, backend).await.expect("a new snapshot");
    assert_eq!(rows, 13, "live records only");

    // Rewritten once enough changed (here: any change).
    items.push(json!({"n": 1, "note": "later"}));
    let reply = api.call("POST", ITEMS, items.last().cloned()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let latest = everything(&api).await;
    api.runtime.column_snapshots_written().await;
    let (rows, later_cursor) = snapshot_head(&api, backend).await.unwrap();
    assert_eq!(rows, 14);
    assert!(later_cursor > cursor, "{later_cursor} > {cursor}");
    api.restart(settings());
    assert_eq!(everything(&api).await, latest);
    assert_eq!(api.runtime.column_cache_loads(), (1, 0));
    // (A snapshot write this run started must not land after the damage below.)
    api.runtime.column_snapshots_written().await;

    // Never trusted when damaged or of another format: the documents are read instead.
    raw(
        &api,
        backend,
        "UPDATE column_snapshot_chunks SET data = substr(data, 1, 7) WHERE part = 'ids' AND chunk = 1",
    )
    .await;
    api.restart(settings());
    assert_eq!(everything(&api).await, latest);
    assert_eq!(
        api.runtime.column_cache_loads(),
        (0, 1),
        "a damaged snapshot"
    );
    api.runtime.column_snapshots_written().await;
    raw(&api, backend, "UPDATE column_snapshots SET format = 99").await;
    api.restart(settings());
    assert_eq!(everything(&api).await, latest);
    assert_eq!(api.runtime.column_cache_loads(), (0, 1), "another format");
    api.runtime.column_snapshots_written().await;

    // Nor after a publish (documents may have been migrated): the new version reads them.
    api.restart(settings());
    let published = api
        .call("PUT", "/api/apps/stock/bundle", Some(bundle("1.0.1")))
        .await;
    assert!(published.status.is_success(), "{}", published.text);
    assert_eq!(everything(&api).await, latest);
    assert_eq!(
        api.runtime.column_cache_loads(),
        (0, 1),
        "another app version"
    );
}

on_both_backends!(a_large_import_prepares_the_report_columns_and_their_snapshot);

/// The stored report's rows: (kind, items, sum of `n`), missing kinds first.
async fn by_kind(api: &TestApi) -> Vec<(Option<String>, i64, i64)> {
    let reply = api
        .call(
            "POST",
            "/api/apps/stock/reports/by_kind/run",
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut rows: Vec<_> = reply.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().map(str::to_owned),
                row[1].as_i64().unwrap(),
                row[2].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

async fn a_large_import_prepares_the_report_columns_and_their_snapshot(backend: Backend) {
    // Imports of ten rows or more count as large here.
    let settings = || RuntimeSettings {
        column_snapshots: SnapshotPolicy {
            min_rows: 10,
            chunk_rows: 4,
        },
        ..RuntimeSettings::default()
    };
    let Some(mut api) = TestApi::start_with(backend, settings()).await else {
        return;
    };
    let mut app = bundle("1.0.0");
    app["reports/by_kind.report.json"] = json!({"format_version": 1, "id": "by_kind",
        "dataset": {"entity": "item"},
        "analysis": {"aggregate": {"dimensions": [{"field": "kind"}],
            "measures": [{"id": "items", "op": "count"}, {"id": "n", "op": "sum", "field": "n"}]}}});
    // A report whose dataset filter reads another field, and a nightly rule whose condition runs
    // over columns: their fields are prepared too.
    app["reports/flagged.report.json"] = json!({"format_version": 1, "id": "flagged",
        "dataset": {"entity": "item", "filter": {"field": "flag", "op": "eq", "value": true}},
        "analysis": {"aggregate": {"dimensions": [], "measures": [{"id": "items", "op": "count"}]}}});
    app["rules/reset_notes.rule.json"] = json!({"format_version": 1, "id": "reset_notes",
        "entity": "item", "trigger": {"schedule": {"cron": "0 3 * * *"}},
        "condition": "note == \"note 12\"", "actions": [{"set": {"n": "=n"}}]});
    let created = api.call("POST", "/api/apps", Some(app)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let items: Vec<Value> = (0..13).map(item).collect();
    let import = |range: std::ops::Range<usize>| {
        let ndjson: String = items[range].iter().map(|i| format!("{i}\n")).collect();
        let api = &api;
        async move {
            let imported = api
                .post_text(
                    "/api/apps/stock/entities/item/import",
                    "application/x-ndjson",
                    &ndjson,
                )
                .await;
            assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
            imported.body["inserted"].as_i64().unwrap()
        }
    };

    // A small import prepares nothing.
    assert_eq!(import(0..3).await, 3);
    api.runtime.column_snapshots_written().await;
    assert_eq!(api.runtime.column_cache_loads(), (0, 0));
    assert_eq!(snapshot_head(&api, backend).await, None);

    // A large one loads the columns of the entity's stored reports in the background and writes
    // their snapshot (of every record, not only the imported ones).
    assert_eq!(import(3..13).await, 10);
    api.runtime.column_snapshots_written().await;
    assert_eq!(api.runtime.column_cache_loads(), (0, 1));
    assert_eq!(snapshot_head(&api, backend).await.map(|h| h.0), Some(13));

    // The report then reads the loaded columns (no other load), and gives the hand counts.
    let mut expected: std::collections::BTreeMap<Option<String>, (i64, i64)> = Default::default();
    for item in &items {
        let entry = expected
            .entry(item["kind"].as_str().map(str::to_owned))
            .or_default();
        entry.0 += 1;
        entry.1 += item["n"].as_i64().unwrap_or(0);
    }
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(kind, (items, n))| (kind, items, n))
        .collect();
    assert_eq!(by_kind(&api).await, expected);
    assert_eq!(api.runtime.column_cache_loads(), (0, 1));
    let flagged = api
        .call(
            "POST",
            "/api/apps/stock/reports/flagged/run",
            Some(json!({})),
        )
        .await;
    assert_eq!(flagged.status, StatusCode::OK, "{}", flagged.text);
    let hand = items.iter().filter(|i| i["flag"] == json!(true)).count();
    assert_eq!(flagged.body["rows"][0][0].as_u64(), Some(hand as u64));
    let run = api
        .call("POST", "/api/apps/stock/rules/reset_notes/run", None)
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text);
    assert_eq!(
        (run.body["processed"].as_i64(), run.body["matched"].as_i64()),
        (Some(13), Some(1))
    );
    assert_eq!(api.runtime.column_cache_loads(), (0, 1));
    assert_eq!(
        api.runtime.column_cache_columns_added(),
        0,
        "the filter's and the rule's columns were loaded with the others"
    );

    // A restart reads the snapshot, not the documents.
    api.restart(settings());
    assert_eq!(by_kind(&api).await, expected);
    assert_eq!(api.runtime.column_cache_loads(), (1, 0));
}
