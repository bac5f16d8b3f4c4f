//! Webhook payloads are built for the user whose action queued them: a flow event fired by a user
//! whose roles hide a field posts the record without it; the same event fired by an admin posts it
//! whole. Template installs and upgrades are for platform admins and app managers only.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

fn deals_bundle(url: &str) -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "margins", "version": "1.0.0", "name": {"en": "Margins", "zh-CN": "毛利"}},
        "entities/deal.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string"},
                "margin": {"type": "number"},
                "stage": {"type": "string", "enum": ["open", "won"]}
            }
        },
        "flows/deal.flow.json": {"format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
            "states": [{"id": "open", "initial": true}, {"id": "won", "terminal": true}],
            "transitions": [{"event": "win", "from": ["open"], "to": "won", "actions": [{"webhook": {"url": url}}]}]},
        "roles/seller.role.json": {"format_version": 1, "id": "seller", "name": {"en": "Seller", "zh-CN": "销售"},
            "entities": {"deal": {"actions": ["create", "read", "update"], "fields": {"margin": "hidden"}}}}
    })
}

async fn webhook_payloads_leave_out_what_the_user_cannot_see(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let (url, seen) = crate::flows::webhook_endpoint(0).await;
    let created = api
        .call("POST", "/api/apps", Some(deals_bundle(&url)))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let (_, sam_token) = api.user_in_role("margins", "seller", "sam").await;

    let mut ids = Vec::new();
    for name in ["by sam", "by admin"] {
        let deal = api
            .call(
                "POST",
                "/api/apps/margins/entities/deal/records",
                Some(json!({"name": name, "margin": 0.42})),
            )
            .await;
        assert_eq!(deal.status, StatusCode::CREATED, "{}", deal.text);
        ids.push(deal.body["id"].as_str().unwrap().to_owned());
    }
    let fired = api
        .send(
            "POST",
            &format!(
                "/api/apps/margins/entities/deal/records/{}/flows/deal/events",
                ids[0]
            ),
            Some(&sam_token),
            Some(json!({"event": "win"})),
        )
        .await;
    assert_eq!(fired.status, StatusCode::OK, "{}", fired.text);
    let fired = api
        .call(
            "POST",
            &format!(
                "/api/apps/margins/entities/deal/records/{}/flows/deal/events",
                ids[1]
            ),
            Some(json!({"event": "win"})),
        )
        .await;
    assert_eq!(fired.status, StatusCode::OK, "{}", fired.text);
    for _ in 0..3 {
        api.runtime
            .run_outbox_once(chrono::Utc::now())
            .await
            .unwrap();
    }
    let bodies: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, body)| serde_json::from_str(body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    let by = |name: &str| {
        bodies
            .iter()
            .find(|b| b["record"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {bodies:?}"))
            .clone()
    };
    assert!(by("by sam")["record"].get("margin").is_none(), "{bodies:?}");
    assert_eq!(by("by admin")["record"]["margin"], 0.42, "{bodies:?}");

    // Templates: a user who is not a platform admin cannot publish or install, nor upgrade an app
    // they do not manage.
    let publish = api
        .send(
            "POST",
            "/api/templates/service_desk/install",
            Some(&sam_token),
            Some(json!({"app": "mine"})),
        )
        .await;
    assert_problem(&publish, StatusCode::FORBIDDEN);
    let upgrade = api
        .send(
            "POST",
            "/api/apps/margins/upgrade?dry_run=true",
            Some(&sam_token),
            Some(json!({})),
        )
        .await;
    assert!(
        upgrade.status == StatusCode::FORBIDDEN || upgrade.status == StatusCode::NOT_FOUND,
        "{}",
        upgrade.text
    );
    let gallery = api
        .send("GET", "/api/templates", Some(&sam_token), None)
        .await;
    assert_eq!(
        gallery.status,
        StatusCode::OK,
        "everyone signed in sees the gallery"
    );
}

on_both_backends!(webhook_payloads_leave_out_what_the_user_cannot_see);
