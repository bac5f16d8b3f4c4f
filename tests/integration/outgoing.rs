//! What Trellis sends out, against real servers over sockets: notifications mailed over SMTP in each
//! person's language (plain, and TLS checked against a trusted CA), https webhooks that go only to
//! certificates that check out, and mail settings that refuse bad values before anything starts.

use axum::http::StatusCode;
use serde_json::{Value, json};
use trellis_runtime::mail::MailSettings;
use trellis_runtime::{Runtime, RuntimeSettings};

use crate::support::api::{TestApi, assert_problem};
use crate::support::tls::{ReceivedMail, http_endpoint, smtp_server, test_ca};
use crate::support::{Backend, on_both_backends};

const DEALS: &str = "/api/apps/deals/entities/deal/records";
const PASSWORD: &str = "a long enough password 1";

fn deals_bundle(webhook: &str) -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "deals", "version": "1.0.0", "name": {"en": "Deals", "zh-CN": "交易"}},
        "entities/deal.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {"name": {"type": "string"}, "stage": {"type": "string", "enum": ["draft", "review", "won"]}}
        },
        "flows/deal.flow.json": {
            "format_version": 1, "id": "deal", "entity": "deal", "state_field": "stage",
            "states": [{"id": "draft", "initial": true}, {"id": "review"}, {"id": "won", "terminal": true}],
            "transitions": [
                {"event": "submit", "from": ["draft"], "to": "review", "actions": [
                    {"create_task": {"title": {"en": "Check the deal", "zh-CN": "检查交易"},
                                     "assignee": {"users": ["alice"]}, "outcomes": {"ok": "win"}}}]},
                {"event": "win", "from": ["review"], "to": "won", "actions": [
                    {"notify": {"to": {"users": ["alice", "bob", "carol", "dave"]},
                                "message": {"en": "Deal won", "zh-CN": "交易成功"}}},
                    {"webhook": {"url": webhook}}]}
            ]
        }
    })
}

/// Install the deals app, create a deal and move it to `review`; its id.
async fn deal_in_review(api: &TestApi, webhook: &str) -> String {
    let created = api
        .call("POST", "/api/apps", Some(deals_bundle(webhook)))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let deal = api
        .call("POST", DEALS, Some(json!({"name": "Big one"})))
        .await;
    assert_eq!(deal.status, StatusCode::CREATED, "{}", deal.text);
    let id = deal.body["id"].as_str().unwrap().to_owned();
    fire(api, &id, "submit").await;
    id
}

async fn fire(api: &TestApi, id: &str, event: &str) {
    let fired = api
        .call(
            "POST",
            &format!("{DEALS}/{id}/flows/deal/events"),
            Some(json!({"event": event, "data": {}})),
        )
        .await;
    assert_eq!(fired.status, StatusCode::OK, "{}", fired.text);
}

async fn create_user(api: &TestApi, body: Value) -> String {
    let mut body = body;
    body["password"] = json!(PASSWORD);
    let created = api.call("POST", "/api/users", Some(body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    created.body["id"].as_str().unwrap().to_owned()
}

fn parse(mail: &ReceivedMail) -> (String, String, String) {
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .expect("a well-formed mail");
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    (
        from,
        parsed.subject().unwrap_or_default().to_owned(),
        parsed.body_text(0).unwrap_or_default().into_owned(),
    )
}

on_both_backends!(notifications_are_mailed_in_each_persons_language);

async fn notifications_are_mailed_in_each_persons_language(backend: Backend) {
    let smtp = smtp_server(None, "bounce").await;
    let settings = RuntimeSettings {
        mail: Some(
            MailSettings::new(
                &format!("smtp://{}", smtp.address),
                "Trellis <noreply@trellis.test>",
                Some("https://trellis.example.cn/"),
            )
            .unwrap(),
        ),
        ..Default::default()
    };
    let Some(api) = TestApi::start_with(backend, settings).await else {
        return;
    };

    // A bad address, locale or department is refused field by field, and creates nobody.
    let refused = api
        .call(
            "POST",
            "/api/users",
            Some(json!({"username": "eve", "password": PASSWORD, "email": "eve at example", "locale": "fr", "department_id": "nope"})),
        )
        .await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        ["/email", "/locale", "/department_id"]
            .iter()
            .all(|pointer| refused.text.contains(pointer)),
        "{}",
        refused.text
    );
    let users = api.call("GET", "/api/users", None).await;
    assert!(!users.text.contains("\"eve\""), "{}", users.text);

    let alice = create_user(
        &api,
        json!({"username": "alice", "display_name": "王芳", "email": "alice@example.cn", "locale": "zh-CN"}),
    )
    .await;
    create_user(&api, json!({"username": "bob", "email": "bob@example.com"})).await;
    let carol = create_user(&api, json!({"username": "carol"})).await;
    let dave = create_user(
        &api,
        json!({"username": "dave", "email": "dave@bounce.test"}),
    )
    .await;
    let patched = api
        .call(
            "PATCH",
            &format!("/api/users/{dave}"),
            Some(json!({"locale": "en"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(
        (
            patched.body["email"].as_str(),
            patched.body["locale"].as_str()
        ),
        (Some("dave@bounce.test"), Some("en"))
    );

    let (hook, hooks, _) = http_endpoint(0, None).await;
    let id = deal_in_review(&api, &hook).await;
    // The task goes from alice to bob: bob is told, in-app and by mail.
    let task = api
        .runtime
        .store()
        .list_tasks("deals", None, Some("open"))
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let moved = api
        .call(
            "POST",
            &format!("/api/apps/deals/tasks/{}/reassign", task.id),
            Some(json!({"to": "bob"})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    fire(&api, &id, "win").await;

    // Queued with the notifications, sent only by the outbox after commit.
    assert!(smtp.mails.lock().unwrap().is_empty());
    let outbox = api.runtime.store().outbox_of("deals").await.unwrap();
    assert_eq!(
        outbox.iter().filter(|o| o.kind == "email").count(),
        5,
        "{outbox:?}"
    );

    let now = chrono::Utc::now();
    let delivered = api.runtime.run_outbox_once(now).await.unwrap();
    assert_eq!(delivered, 4, "the webhook, alice's mail and bob's two");
    let outbox = api.runtime.store().outbox_of("deals").await.unwrap();
    let status_for = |user: &str| -> (String, Option<String>) {
        let entry = outbox
            .iter()
            .find(|o| o.kind == "email" && o.payload.contains(user))
            .unwrap();
        (entry.status.clone(), entry.last_error.clone())
    };
    let (status, note) = status_for(&carol);
    assert_eq!(status, "done", "carol has no address: nothing to retry");
    assert!(note.unwrap().contains("no e-mail address"));
    let (status, error) = status_for(&dave);
    assert_eq!(status, "failed", "a refused recipient is not retried");
    assert!(error.unwrap().contains("550"), "{outbox:?}");
    assert_eq!(hooks.lock().unwrap().len(), 1);

    let mails = smtp.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 3, "{mails:?}");
    let to = |address: &str| -> Vec<(String, String, String)> {
        mails
            .iter()
            .filter(|m| m.to == vec![address.to_owned()])
            .map(parse)
            .collect()
    };
    let link = format!("https://trellis.example.cn/apps/deals/e/deal/{id}");
    let alices = to("alice@example.cn");
    let (from, subject, body) = &alices[0];
    assert_eq!(
        (from.as_str(), subject.as_str()),
        ("noreply@trellis.test", "[交易] 交易成功")
    );
    assert!(body.contains(&format!("打开记录: {link}")), "{body}");
    assert!(!body.contains("Deal won"), "only alice's language: {body}");
    let bobs = to("bob@example.com");
    assert_eq!(bobs.len(), 2);
    assert!(
        bobs.iter()
            .any(|(_, s, b)| s == "[交易] 交易成功 / Deal won" && b.contains("Open the record")),
        "no locale: both languages: {bobs:?}"
    );
    assert!(
        bobs.iter()
            .any(|(_, s, _)| s.contains("admin reassigned a task to you")
                && s.contains("admin 将一项任务转派给您")),
        "{bobs:?}"
    );
    assert!(mails.iter().all(|m| m.from == "noreply@trellis.test"));

    // The in-app notifications are there for everyone, mailed or not; nothing is sent twice.
    for user in [&alice, &carol, &dave] {
        let notes = api.runtime.store().notifications_for(user).await.unwrap();
        assert!(!notes.is_empty(), "{user}");
    }
    api.runtime
        .run_outbox_once(now + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(smtp.mails.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_webhooks_go_only_to_certificates_that_check_out() {
    let ca = test_ca();
    let (url, seen, refused) = http_endpoint(0, Some(ca.server.clone())).await;
    assert!(url.starts_with("https://127.0.0.1:"));
    let settings = RuntimeSettings {
        webhook_secret: Some("s3cret".into()),
        ..Default::default()
    };
    let api = TestApi::start_with(Backend::Sqlite, settings.clone())
        .await
        .unwrap();
    let id = deal_in_review(&api, &url).await;
    fire(&api, &id, "win").await;

    // The endpoint's CA is not trusted: no request is sent, and the entry waits for a retry.
    let now = chrono::Utc::now();
    assert_eq!(api.runtime.run_outbox_once(now).await.unwrap(), 0);
    let outbox = api.runtime.store().outbox_of("deals").await.unwrap();
    let hook = outbox.iter().find(|o| o.kind == "webhook").unwrap();
    assert_eq!(hook.status, "pending", "{outbox:?}");
    let error = hook.last_error.clone().unwrap();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(seen.lock().unwrap().is_empty());
    assert!(*refused.lock().unwrap() >= 1);

    // Trusting the operator's CA (the PEM file of TRELLIS_TLS_CA_FILE), it goes out, signed, over TLS.
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("company-ca.pem");
    std::fs::write(&pem, &ca.pem).unwrap();
    let extra_roots = trellis_runtime::tls::read_ca_file(&pem).unwrap();
    assert_eq!(extra_roots, vec![ca.certificate.clone()]);
    let trusting = Runtime::new(
        api.runtime.store().clone(),
        RuntimeSettings {
            extra_roots,
            ..settings
        },
    );
    assert_eq!(
        trusting
            .run_outbox_once(now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let (head, body) = &requests[0];
    assert!(head.starts_with("POST /hooks/won HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-trellis-signature: sha256=")
    );
    let payload: Value = serde_json::from_str(body).unwrap();
    assert_eq!(payload["event"], "win");
    assert_eq!(payload["record"]["stage"], "won");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_over_tls_signs_in_and_checks_the_certificate() {
    let ca = test_ca();
    let smtp = smtp_server(Some(ca.server.clone()), "bounce").await;
    let mail = MailSettings::new(
        &format!("smtps://mailer:s3cret@127.0.0.1:{}", smtp.address.port()),
        "运营团队 <ops@trellis.test>",
        None,
    )
    .unwrap();
    let settings = RuntimeSettings {
        mail: Some(mail),
        ..Default::default()
    };
    let api = TestApi::start_with(Backend::Sqlite, settings.clone())
        .await
        .unwrap();
    for name in ["alice", "bob", "carol", "dave"] {
        create_user(
            &api,
            json!({"username": name, "email": format!("{name}@example.cn"), "locale": "zh-CN"}),
        )
        .await;
    }
    let (hook, _, _) = http_endpoint(0, None).await;
    let id = deal_in_review(&api, &hook).await;
    fire(&api, &id, "win").await;

    // Without the CA the server's certificate is refused: nothing is sent, the mails wait.
    let now = chrono::Utc::now();
    assert_eq!(
        api.runtime.run_outbox_once(now).await.unwrap(),
        1,
        "only the webhook"
    );
    assert!(smtp.mails.lock().unwrap().is_empty());
    let outbox = api.runtime.store().outbox_of("deals").await.unwrap();
    let waiting: Vec<_> = outbox.iter().filter(|o| o.kind == "email").collect();
    assert_eq!(waiting.len(), 4);
    assert!(
        waiting.iter().all(|o| o.status == "pending"
            && o.last_error
                .as_deref()
                .unwrap_or_default()
                .to_lowercase()
                .contains("certificate")),
        "{waiting:?}"
    );

    let trusting = Runtime::new(
        api.runtime.store().clone(),
        RuntimeSettings {
            extra_roots: vec![ca.certificate.clone()],
            ..settings
        },
    );
    assert_eq!(
        trusting
            .run_outbox_once(now + chrono::Duration::hours(1))
            .await
            .unwrap(),
        4
    );
    let mails = smtp.mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 4);
    assert!(
        mails
            .iter()
            .all(|m| m.credentials == Some(("mailer".to_owned(), "s3cret".to_owned())))
    );
    let (from, subject, body) = parse(&mails[0]);
    assert_eq!(
        (from.as_str(), subject.as_str()),
        ("ops@trellis.test", "[交易] 交易成功")
    );
    assert!(
        !body.contains("打开记录"),
        "no public address, no link: {body}"
    );
}

#[test]
fn bad_mail_settings_are_refused_naming_the_variable() {
    let cases = [
        (
            "http://mail.example.com",
            "Trellis <noreply@example.com>",
            None,
            "TRELLIS_SMTP_URL",
        ),
        (
            "smtp://mail.example.com",
            "nobody",
            None,
            "TRELLIS_SMTP_FROM",
        ),
        (
            "smtp://mail.example.com",
            "noreply@example.com",
            Some("trellis.example.com"),
            "TRELLIS_PUBLIC_URL",
        ),
    ];
    for (url, from, public, variable) in cases {
        let error = MailSettings::new(url, from, public).unwrap_err();
        assert!(error.starts_with(variable), "{error}");
    }
    let secret =
        MailSettings::new("ftp://user:hunter2@mail.example.com", "a@b.cn", None).unwrap_err();
    assert!(
        !secret.contains("hunter2"),
        "passwords are not echoed: {secret}"
    );

    // `trellis serve` stops before it opens anything, with the variable and the fix.
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for (variables, expected) in [
        (
            vec![("TRELLIS_SMTP_URL", "smtp://127.0.0.1:2525")],
            "TRELLIS_SMTP_FROM",
        ),
        (
            vec![("TRELLIS_TLS_CA_FILE", not_pem.to_str().unwrap())],
            "TRELLIS_TLS_CA_FILE",
        ),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env_remove("TRELLIS_DB")
            .envs(variables)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !dir.path().join("trellis.db").exists(),
            "nothing was created"
        );
    }
}
