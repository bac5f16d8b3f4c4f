//! Saved list views over HTTP, on both backends: private to their owner unless shared, replaced by
//! name, deleted only by their owner (or an app admin for a shared one), refused with pointers when
//! bad, and gone for nobody else.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::api::{TestApi, assert_problem};
use crate::support::bundles::two_entity_bundle;
use crate::support::{Backend, on_both_backends};

async fn member_token(api: &TestApi, app: &str, username: &str) -> String {
    api.user_in_role(app, "member", username).await.1
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn views_are_private_unless_shared(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let bundle = two_entity_bundle("views");
    let created = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let entity = bundle_entity(&api).await;
    let path = format!("/api/apps/views/entities/{entity}/views");
    let spec = json!({"filter": {"join": "and", "conditions": []}, "columns": ["subject"], "sort": "-subject"});
    let private = api
        .call("POST", &path, Some(json!({"name": "Mine", "spec": spec})))
        .await;
    assert_eq!(private.status, StatusCode::CREATED, "{}", private.text);
    assert_eq!(private.body["mine"], true);
    assert_eq!(private.body["spec"], spec);
    let shared = api
        .call(
            "POST",
            &path,
            Some(json!({"name": "Team", "shared": true, "spec": {"columns": []}})),
        )
        .await;
    assert_eq!(shared.status, StatusCode::CREATED, "{}", shared.text);
    // Saving the same name again replaces the view, keeping its id.
    let again = api
        .call(
            "POST",
            &path,
            Some(json!({"name": "Mine", "spec": {"columns": ["x"]}})),
        )
        .await;
    assert_eq!(again.body["id"], private.body["id"]);
    assert_eq!(
        names(&api.call("GET", &path, None).await.body),
        ["Mine", "Team"]
    );

    // Another member sees only the shared view, cannot delete it, and keeps their own apart.
    let mia = member_token(&api, "views", "mia").await;
    let theirs = api.send("GET", &path, Some(&mia), None).await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.text);
    assert_eq!(names(&theirs.body), ["Team"]);
    assert_eq!(theirs.body["items"][0]["mine"], false);
    let team_id = shared.body["id"].as_str().unwrap();
    let refused = api
        .send("DELETE", &format!("{path}/{team_id}"), Some(&mia), None)
        .await;
    assert_problem(&refused, StatusCode::FORBIDDEN);
    let mine_id = private.body["id"].as_str().unwrap();
    let hidden = api
        .send("DELETE", &format!("{path}/{mine_id}"), Some(&mia), None)
        .await;
    assert_problem(&hidden, StatusCode::NOT_FOUND);
    let own = api
        .send(
            "POST",
            &path,
            Some(&mia),
            Some(json!({"name": "Mine", "spec": {}})),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text);
    assert_ne!(own.body["id"], private.body["id"], "names are per owner");

    // Bad input: every problem with its pointer, nothing saved.
    let bad = api
        .call("POST", &path, Some(json!({"name": "  ", "spec": [1]})))
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    let pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/name", "/spec"]);
    assert_eq!(
        names(&api.call("GET", &path, None).await.body),
        ["Mine", "Team"]
    );

    // The owner deletes; unknown entities are 404s.
    let gone = api.call("DELETE", &format!("{path}/{team_id}"), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{}", gone.text);
    assert_eq!(
        names(&api.send("GET", &path, Some(&mia), None).await.body),
        ["Mine"]
    );
    assert_problem(
        &api.call("GET", "/api/apps/views/entities/nope/views", None)
            .await,
        StatusCode::NOT_FOUND,
    );
}

/// The first entity of the test bundle.
async fn bundle_entity(api: &TestApi) -> String {
    let bundle = api.call("GET", "/api/apps/views/bundle", None).await.body;
    bundle
        .as_object()
        .unwrap()
        .keys()
        .find_map(|k| {
            k.strip_prefix("entities/")
                .and_then(|k| k.strip_suffix(".schema.json"))
        })
        .unwrap()
        .to_owned()
}

on_both_backends!(views_are_private_unless_shared);
