//! The HTTP API in process (`oneshot` on the router, no socket), on both backends.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::api::{api_or_skip, assert_problem};
use crate::support::bundles::{broken_bundle, two_entity_bundle};
use crate::support::{Backend, on_both_backends};

on_both_backends!(
    health_and_openapi_describe_every_route,
    every_api_route_needs_a_live_token,
    bundle_round_trips_unchanged,
    invalid_bundle_lists_every_problem_and_creates_nothing,
    dry_run_validates_without_creating,
    bad_requests_are_problems,
    publish_reports_changes_and_respects_if_match,
    delete_is_soft_and_restorable,
    only_admins_change_apps,
);

async fn health_and_openapi_describe_every_route(backend: Backend) {
    let api = api_or_skip!(backend);
    let health = api.send("GET", "/healthz", None, None).await;
    assert_eq!(
        (health.status, health.body.clone()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let doc = api.send("GET", "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "OpenAPI 3.1, got {}",
        doc.body["openapi"]
    );
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/auth/login", "post"),
        ("/api/apps", "get"),
        ("/api/apps", "post"),
        ("/api/apps/{app}", "get"),
        ("/api/apps/{app}", "delete"),
        ("/api/apps/{app}/bundle", "get"),
        ("/api/apps/{app}/bundle", "put"),
        ("/api/apps/{app}/restore", "post"),
        ("/api/apps/{app}/versions", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "OpenAPI lacks {method} {path}"
        );
    }
    let request_id = health
        .headers
        .get("x-request-id")
        .expect("every response carries a request id");
    assert!(!request_id.is_empty());
}

async fn every_api_route_needs_a_live_token(backend: Backend) {
    let api = api_or_skip!(backend);
    for (method, path) in [
        ("GET", "/api/apps"),
        ("POST", "/api/apps"),
        ("GET", "/api/apps/x/bundle"),
        ("GET", "/api/auth/me"),
    ] {
        let reply = api.send(method, path, None, None).await;
        assert_problem(&reply, StatusCode::UNAUTHORIZED);
        let forged = api.send(method, path, Some("trl_forged"), None).await;
        assert_problem(&forged, StatusCode::UNAUTHORIZED);
    }
    let wrong = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": "admin", "password": "nope"})),
        )
        .await;
    assert_problem(&wrong, StatusCode::UNAUTHORIZED);
    let unknown = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": "ghost", "password": "nope"})),
        )
        .await;
    assert_problem(&unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body["detail"], unknown.body["detail"],
        "do not reveal which usernames exist"
    );

    let me = api.call("GET", "/api/auth/me", None).await;
    assert_eq!(
        (
            me.status,
            me.body["username"].clone(),
            me.body["is_admin"].clone()
        ),
        (StatusCode::OK, json!("admin"), json!(true))
    );
    assert_eq!(
        api.call("POST", "/api/auth/logout", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &api.call("GET", "/api/apps", None).await,
        StatusCode::UNAUTHORIZED,
    );
}

async fn bundle_round_trips_unchanged(backend: Backend) {
    let api = api_or_skip!(backend);
    let bundle = two_entity_bundle("desk");
    let created = api.call("POST", "/api/apps", Some(bundle.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["id"], "desk");
    assert_eq!(created.body["version"], 1);
    assert_eq!(created.body["semver"], "1.0.0");
    assert_eq!(created.headers[header::LOCATION], "/api/apps/desk");

    let exported = api.call("GET", "/api/apps/desk/bundle", None).await;
    assert_eq!(exported.status, StatusCode::OK);
    assert_eq!(
        exported.body, bundle,
        "the exported bundle equals the one posted"
    );
    assert_eq!(
        exported.text,
        bundle.to_string(),
        "byte for byte, key order included"
    );
    assert_eq!(exported.headers[header::ETAG], "\"v1\"");

    let listed = api.call("GET", "/api/apps", None).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert_eq!(listed.body[0]["name"]["zh-CN"], "服务台");
    let again = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_problem(&again, StatusCode::CONFLICT);
}

async fn invalid_bundle_lists_every_problem_and_creates_nothing(backend: Backend) {
    let api = api_or_skip!(backend);
    let (bundle, expected) = broken_bundle();
    let reply = api.call("POST", "/api/apps", Some(bundle)).await;
    assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = reply.body["errors"].as_array().unwrap();
    let found: Vec<(String, String)> = errors
        .iter()
        .map(|e| {
            (
                e["file"].as_str().unwrap().to_owned(),
                e["pointer"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (file, pointer) in &expected {
        assert!(
            found.iter().any(|(f, p)| f == file && p == pointer),
            "missing problem at {file}:{pointer}; got {found:#?}"
        );
    }
    assert!(
        errors
            .iter()
            .all(|e| e["code"].is_string() && e["message"].is_string())
    );
    assert_eq!(
        api.call("GET", "/api/apps", None).await.body,
        json!([]),
        "nothing was created"
    );
    assert!(
        api.runtime
            .store()
            .get_app("broken")
            .await
            .unwrap()
            .is_none()
    );
}

async fn dry_run_validates_without_creating(backend: Backend) {
    let api = api_or_skip!(backend);
    let reply = api
        .call(
            "POST",
            "/api/apps?dry_run=true",
            Some(two_entity_bundle("trial")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["dry_run"], true);
    assert_problem(
        &api.call("GET", "/api/apps/trial", None).await,
        StatusCode::NOT_FOUND,
    );
    let (broken, _) = broken_bundle();
    assert_problem(
        &api.call("POST", "/api/apps?dry_run=true", Some(broken))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    );
}

async fn bad_requests_are_problems(backend: Backend) {
    let api = api_or_skip!(backend);
    let request = |body: &str, content_type: &str| {
        Request::builder()
            .method("POST")
            .uri("/api/apps")
            .header(header::AUTHORIZATION, format!("Bearer {}", api.token))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let malformed = api
        .raw(request("{\"trellis.json\": ", "application/json"))
        .await;
    assert_problem(&malformed, StatusCode::BAD_REQUEST);
    assert!(malformed.body["errors"][0]["pointer"].is_string());
    let not_object = api.raw(request("[1, 2]", "application/json")).await;
    assert_problem(&not_object, StatusCode::BAD_REQUEST);
    let wrong_type = api.raw(request("{}", "text/plain")).await;
    assert_problem(&wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!("{{\"README.md\": \"{}\"}}", "x".repeat(128 * 1024));
    assert_problem(
        &api.raw(request(&huge, "application/json")).await,
        StatusCode::PAYLOAD_TOO_LARGE,
    );

    let login_type = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": 1, "password": "x"})),
        )
        .await;
    assert_problem(&login_type, StatusCode::BAD_REQUEST);
    assert_eq!(login_type.body["errors"][0]["pointer"], "/username");

    assert_problem(
        &api.call("GET", "/api/nowhere", None).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &api.call("GET", "/definitely/not/here", None).await,
        StatusCode::NOT_FOUND,
    );
    let wrong_method = api.call("PATCH", "/api/apps", None).await;
    assert_problem(&wrong_method, StatusCode::METHOD_NOT_ALLOWED);
    assert_problem(
        &api.call("GET", "/api/apps/UPPER", None).await,
        StatusCode::NOT_FOUND,
    );
}

async fn publish_reports_changes_and_respects_if_match(backend: Backend) {
    let api = api_or_skip!(backend);
    let v1 = two_entity_bundle("evolve");
    assert_eq!(
        api.call("POST", "/api/apps", Some(v1.clone())).await.status,
        StatusCode::CREATED
    );

    // v2: rename ticket.subject → title (same uid), drop opened_on, turn severity into text, add priority.
    let mut v2 = v1.clone();
    v2["trellis.json"]["version"] = json!("1.1.0");
    let ticket = &mut v2["entities/ticket.schema.json"]["properties"];
    let subject = ticket.as_object_mut().unwrap().remove("subject").unwrap();
    ticket["title"] = subject;
    ticket["title"]["x-trellis"] = json!({"uid": "subject"});
    ticket.as_object_mut().unwrap().remove("opened_on");
    ticket["severity"] = json!({"type": "string"});
    ticket["priority"] = json!({"type": "string", "enum": ["low", "high"]});
    v2["entities/ticket.schema.json"]["required"] = json!(["title"]);

    let dry = api
        .call(
            "PUT",
            "/api/apps/evolve/bundle?dry_run=true",
            Some(v2.clone()),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["dry_run"], true);
    let changes = dry.body["changes"].as_array().unwrap();
    let has = |change: Value| changes.iter().any(|c| c == &change);
    assert!(
        has(
            json!({"change": "field_renamed", "entity": "ticket", "uid": "subject", "from": "subject", "to": "title"})
        ),
        "{changes:?}"
    );
    assert!(
        has(json!({"change": "field_removed", "entity": "ticket", "field": "opened_on"})),
        "{changes:?}"
    );
    assert!(has(
        json!({"change": "field_kind_changed", "entity": "ticket", "field": "severity", "from": "integer", "to": "text"})
    ));
    assert!(has(
        json!({"change": "field_added", "entity": "ticket", "field": "priority"})
    ));
    assert_eq!(
        api.call("GET", "/api/apps/evolve", None).await.body["version"],
        1,
        "a dry run changes nothing"
    );

    let stale = Request::builder()
        .method("PUT")
        .uri("/api/apps/evolve/bundle")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.token))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_MATCH, "\"v7\"")
        .body(Body::from(v2.to_string()))
        .unwrap();
    assert_problem(&api.raw(stale).await, StatusCode::PRECONDITION_FAILED);

    let fresh = Request::builder()
        .method("PUT")
        .uri("/api/apps/evolve/bundle")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.token))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_MATCH, "\"v1\"")
        .body(Body::from(v2.to_string()))
        .unwrap();
    let published = api.raw(fresh).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.text);
    assert_eq!(
        (
            published.body["from_version"].clone(),
            published.body["to_version"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(
        api.call("GET", "/api/apps/evolve/bundle", None).await.body,
        v2
    );
    let versions = api.call("GET", "/api/apps/evolve/versions", None).await;
    assert_eq!(
        versions.body.as_array().unwrap().len(),
        2,
        "every published version is kept"
    );

    let mut other_id = v2.clone();
    other_id["trellis.json"]["id"] = json!("renamed");
    let mismatch = api
        .call("PUT", "/api/apps/evolve/bundle", Some(other_id))
        .await;
    assert_problem(&mismatch, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mismatch.body["errors"][0]["pointer"], "/id");
}

async fn delete_is_soft_and_restorable(backend: Backend) {
    let api = api_or_skip!(backend);
    api.call("POST", "/api/apps", Some(two_entity_bundle("temp")))
        .await;
    assert_eq!(
        api.call("DELETE", "/api/apps/temp", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_problem(
        &api.call("GET", "/api/apps/temp", None).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &api.call("DELETE", "/api/apps/temp", None).await,
        StatusCode::NOT_FOUND,
    );
    let with_deleted = api
        .call("GET", "/api/apps?include_deleted=true", None)
        .await;
    assert_eq!(with_deleted.body[0]["deleted"], true);
    let restored = api.call("POST", "/api/apps/temp/restore", None).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    assert_eq!(
        api.call("GET", "/api/apps/temp/bundle", None).await.body,
        two_entity_bundle("temp")
    );
}

async fn only_admins_change_apps(backend: Backend) {
    let api = api_or_skip!(backend);
    let admin = trellis_runtime::Principal::system("x", "admin");
    api.runtime
        .create_user(&admin, "viewer", "viewer-password", false)
        .await
        .unwrap();
    let login = api
        .send(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": "viewer", "password": "viewer-password"})),
        )
        .await;
    let token = login.body["token"].as_str().unwrap().to_owned();
    let denied = api
        .send(
            "POST",
            "/api/apps",
            Some(&token),
            Some(two_entity_bundle("nope")),
        )
        .await;
    assert_problem(&denied, StatusCode::FORBIDDEN);
    assert_eq!(
        api.send("GET", "/api/apps", Some(&token), None)
            .await
            .status,
        StatusCode::OK
    );
    assert!(api.runtime.store().get_app("nope").await.unwrap().is_none());
}
