//! Duplicate detection by identity keys in priority order (email case-insensitively, then phone by
//! its digits) and reversible merges: references move to the survivor, duplicates are soft-deleted,
//! empty fields are filled; undo brings everything back.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

const CUSTOMERS: &str = "/api/apps/crm360/entities/customer/records";
const ORDERS: &str = "/api/apps/crm360/entities/order/records";

fn bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "crm360", "version": "1.0.0", "name": {"en": "CRM", "zh-CN": "客户"}},
        "entities/customer.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1, "title_field": "name",
                "duplicate_keys": [{"field": "email"}, {"field": "phone", "normalize": "digits"}]},
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string", "x-trellis": {"unique": true}},
                "phone": {"type": "string"},
                "city": {"type": "string"}
            }
        },
        "entities/order.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "customer": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "customer", "on_delete": "restrict"}}},
                "total": {"type": "number"}
            }
        }
    })
}

async fn create(api: &TestApi, path: &str, data: Value) -> String {
    let reply = api.call("POST", path, Some(data)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.body["id"].as_str().unwrap().to_owned()
}

async fn duplicates_are_found_merged_and_unmerged(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut broken = bundle();
    broken["entities/customer.schema.json"]["x-trellis"]["duplicate_keys"][1]["field"] =
        json!("fax");
    let refused = api.call("POST", "/api/apps", Some(broken)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"],
        "/x-trellis/duplicate_keys/1/field"
    );
    let created = api.call("POST", "/api/apps", Some(bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);

    let a = create(
        &api,
        CUSTOMERS,
        json!({"name": "Li Wei", "email": "Li.Wei@Example.com"}),
    )
    .await;
    let b = create(&api, CUSTOMERS, json!({"name": "Li W.", "email": "li.wei@example.com ", "phone": "+86 138 0000 0001", "city": "Hangzhou"})).await;
    let c = create(
        &api,
        CUSTOMERS,
        json!({"name": "Other", "phone": "13800000001"}),
    )
    .await;
    let d = create(
        &api,
        CUSTOMERS,
        json!({"name": "Stranger", "email": "x@y.com", "phone": "555 0001"}),
    )
    .await;
    let o1 = create(&api, ORDERS, json!({"customer": b, "total": 10})).await;
    let o2 = create(&api, ORDERS, json!({"customer": c, "total": 20})).await;
    let o3 = create(&api, ORDERS, json!({"customer": a, "total": 30})).await;

    let found = |id: &str| {
        let path = format!("{CUSTOMERS}/{id}/duplicates");
        let api = &api;
        async move {
            let reply = api.call("GET", &path, None).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            reply.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["record"]["id"].as_str().unwrap().to_owned(),
                        d["matched"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found(&a).await, vec![(b.clone(), json!(["email"]))]);
    assert_eq!(
        found(&b).await,
        vec![(a.clone(), json!(["email"])), (c.clone(), json!(["phone"]))],
        "email outranks phone"
    );
    assert!(found(&d).await.is_empty(), "a short number matches nothing");

    // Merge B into A.
    let merged = api
        .call(
            "POST",
            &format!("{CUSTOMERS}/{a}/merge"),
            Some(json!({"duplicates": [b], "values": {"name": "Li Wei (VIP)"}})),
        )
        .await;
    assert_eq!(merged.status, StatusCode::OK, "{}", merged.text);
    assert_eq!(merged.body["references_moved"], 1);
    let merge_id = merged.body["merge_id"].as_str().unwrap().to_owned();
    let survivor = api.call("GET", &format!("{CUSTOMERS}/{a}"), None).await;
    assert_eq!(survivor.body["data"]["name"], "Li Wei (VIP)");
    assert_eq!(
        survivor.body["data"]["phone"], "+86 138 0000 0001",
        "filled from the duplicate"
    );
    assert_eq!(survivor.body["data"]["city"], "Hangzhou");
    assert_eq!(
        survivor.body["data"]["email"], "Li.Wei@Example.com",
        "its own value stays"
    );
    assert_eq!(
        api.call("GET", &format!("{CUSTOMERS}/{b}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let order = api.call("GET", &format!("{ORDERS}/{o1}"), None).await;
    assert_eq!(order.body["data"]["customer"], json!(a));
    let untouched = api.call("GET", &format!("{ORDERS}/{o2}"), None).await;
    assert_eq!(untouched.body["data"]["customer"], json!(c));
    // C now matches the survivor by phone.
    assert_eq!(found(&a).await, vec![(c.clone(), json!(["phone"]))]);

    // Undo: everything as it was.
    let undone = api
        .call(
            "POST",
            &format!("/api/apps/crm360/merges/{merge_id}/undo"),
            None,
        )
        .await;
    assert_eq!(undone.status, StatusCode::OK, "{}", undone.text);
    assert_eq!(undone.body["references_moved"], 1);
    let back = api.call("GET", &format!("{CUSTOMERS}/{b}"), None).await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.text);
    assert_eq!(back.body["data"]["phone"], "+86 138 0000 0001");
    let survivor = api.call("GET", &format!("{CUSTOMERS}/{a}"), None).await;
    assert_eq!(survivor.body["data"]["name"], "Li Wei");
    assert!(
        survivor.body["data"]
            .get("phone")
            .is_none_or(Value::is_null),
        "{}",
        survivor.text
    );
    assert!(survivor.body["data"].get("city").is_none_or(Value::is_null));
    let order = api.call("GET", &format!("{ORDERS}/{o1}"), None).await;
    assert_eq!(order.body["data"]["customer"], json!(b));
    let own = api.call("GET", &format!("{ORDERS}/{o3}"), None).await;
    assert_eq!(
        own.body["data"]["customer"],
        json!(a),
        "A's own order stays with A"
    );
    let again = api
        .call(
            "POST",
            &format!("/api/apps/crm360/merges/{merge_id}/undo"),
            None,
        )
        .await;
    assert_problem(&again, StatusCode::CONFLICT);
    let itself = api
        .call(
            "POST",
            &format!("{CUSTOMERS}/{a}/merge"),
            Some(json!({"duplicates": [a]})),
        )
        .await;
    assert_problem(&itself, StatusCode::UNPROCESSABLE_ENTITY);
}

on_both_backends!(duplicates_are_found_merged_and_unmerged);
