//! Rules that keep figures on related records: `update_records` with `"=expr"` values evaluated over
//! each target record (the triggering record is `source`), applied from the outbox with the target's
//! version checked — so concurrent orders, processed by two outbox workers at once, lose no increment.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

fn shop_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "shop", "version": "1.0.0", "name": {"en": "Shop", "zh-CN": "商店"}},
        "entities/customer.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string"},
                "orders_count": {"type": "integer", "default": 0},
                "total_spent": {"type": "number", "default": 0},
                "last_order_total": {"type": "number"}
            }
        },
        "entities/order.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "customer": {"type": "string", "x-trellis": {"kind": "relation_one", "relation": {"entity": "customer"}}},
                "total": {"type": "number"}
            }
        },
        "rules/count_orders.rule.json": {"format_version": 1, "id": "count_orders", "entity": "order",
            "trigger": {"record_created": {}},
            "actions": [{"update_records": {"relation": "customer", "set": {
                "orders_count": "=orders_count + 1",
                "total_spent": "=total_spent + source.total",
                "last_order_total": "$record.total"
            }}}]}
    })
}

async fn counters_on_related_records_lose_no_increment(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let mut broken = shop_bundle();
    broken["rules/count_orders.rule.json"]["actions"][0]["update_records"]["set"]["orders_count"] =
        json!("=orders_count +");
    let refused = api.call("POST", "/api/apps", Some(broken)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["pointer"], "/actions/0/update_records/set/orders_count",
        "{}",
        refused.text
    );
    // apply_report runs once over a report: only scheduled or manual rules, an existing report,
    // writable fields.
    let mut misplaced = shop_bundle();
    misplaced["rules/scores.rule.json"] = json!({"format_version": 1, "id": "scores", "entity": "customer",
        "trigger": {"record_created": {}},
        "actions": [{"apply_report": {"report": "nope", "key": "customer", "set": {"missing": "r"},
            "otherwise": {"ghost": 0}}}]});
    let refused = api.call("POST", "/api/apps", Some(misplaced)).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    for (pointer, code) in [
        ("/actions/0/apply_report", "apply_report_trigger"),
        ("/actions/0/apply_report/report", "unknown_report"),
        ("/actions/0/apply_report/set/missing", "unknown_field"),
        ("/actions/0/apply_report/otherwise/ghost", "unknown_field"),
    ] {
        assert!(
            refused.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["pointer"] == pointer && e["code"] == code),
            "{pointer} {code}: {}",
            refused.text
        );
    }
    let created = api.call("POST", "/api/apps", Some(shop_bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let customer = api
        .call(
            "POST",
            "/api/apps/shop/entities/customer/records",
            Some(json!({"name": "Li Wei"})),
        )
        .await;
    let customer_id = customer.body["id"].as_str().unwrap().to_owned();
    let totals: Vec<f64> = (1..=12).map(|i| f64::from(i) * 10.5).collect();
    let orders = totals.iter().map(|total| {
        api.call(
            "POST",
            "/api/apps/shop/entities/order/records",
            Some(json!({"customer": customer_id, "total": total})),
        )
    });
    for reply in futures_join(orders).await {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    // Two outbox workers (two servers) at once.
    let now = chrono::Utc::now();
    let (a, b) = tokio::join!(
        api.runtime.run_outbox_once(now),
        api.runtime.run_outbox_once(now)
    );
    a.unwrap();
    b.unwrap();
    for _ in 0..5 {
        api.runtime
            .run_outbox_once(chrono::Utc::now())
            .await
            .unwrap();
    }
    let after = api
        .call(
            "GET",
            &format!("/api/apps/shop/entities/customer/records/{customer_id}"),
            None,
        )
        .await;
    assert_eq!(after.body["data"]["orders_count"], 12, "{}", after.text);
    let spent = after.body["data"]["total_spent"].as_f64().unwrap();
    assert!(
        (spent - totals.iter().sum::<f64>()).abs() < 1e-9,
        "{}",
        after.text
    );
    assert!(after.body["data"]["last_order_total"].is_number());
    let history = api
        .call(
            "GET",
            &format!("/api/apps/shop/entities/customer/records/{customer_id}/history"),
            None,
        )
        .await;
    assert_eq!(
        history.body.as_array().map_or(0, Vec::len),
        13,
        "created, then one update per order: {}",
        history.text
    );
}

/// Await every future, concurrently.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    // Poll them together on this task.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, slot) in pinned.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("ready")).collect()
}

on_both_backends!(counters_on_related_records_lose_no_increment);
