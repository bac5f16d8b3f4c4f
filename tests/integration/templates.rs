//! Templates end to end, on both backends: pack (signed) → validate → publish → install with sample
//! data → the analyst edits the app → upgrade to a new template version (three-way merge: both sides'
//! changes kept, the label conflict reported, a renamed flow state migrated, every record and flow
//! instance kept) → rollback. Tampered, unsigned (when signatures are required) and malicious
//! packages are refused with a clear error and nothing installed.

use std::io::Write;

use axum::http::StatusCode;
use serde_json::{Value, json};
use trellis_runtime::templates::package::{self, SignaturePolicy};
use trellis_runtime::templates::source::{TemplateFile, bundle_to_files, read_template_files};

use crate::support::api::{TestApi, assert_problem};
use crate::support::{Backend, on_both_backends};

const GALLERY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates-gallery");
const TICKETS: &str = "/api/apps/desk/entities/ticket/records";
const LABEL_CONFLICT: &str = "entities/ticket.schema.json:/properties/subject/x-trellis/label/en";

fn service_desk_files() -> Vec<TemplateFile> {
    let (files, problems) =
        read_template_files(std::path::Path::new(&format!("{GALLERY}/service_desk"))).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    files
}

/// A signing key and its public half (hex).
struct Key {
    signing: ed25519_dalek::SigningKey,
    public: String,
}

fn signing_key() -> Key {
    let (secret, public) = package::generate_key();
    Key {
        signing: package::parse_signing_key(&secret).unwrap(),
        public,
    }
}

fn pack(files: &[TemplateFile], version: &str, key: Option<&Key>) -> Vec<u8> {
    package::pack(files, "service_desk", version, key.map(|k| &k.signing)).unwrap()
}

/// Version 1.1.0 of the service desk: adds `category`, relabels `subject` and `description`, and
/// renames the `waiting` state to `pending` (with a state mapping for the records in it).
fn version_1_1(files: &[TemplateFile]) -> Vec<TemplateFile> {
    let (mut bundle, _) = trellis_runtime::templates::source::files_to_bundle(files);
    let map = &mut bundle.0;
    map["trellis.json"]["version"] = json!("1.1.0");
    let ticket = &mut map["entities/ticket.schema.json"]["properties"];
    ticket["subject"]["x-trellis"]["label"]["en"] = json!("Summary");
    ticket["description"]["x-trellis"]["label"]["zh-CN"] = json!("问题详情");
    ticket["category"] = json!({"type": "string", "enum": ["hardware", "software", "other"],
        "x-trellis": {"label": {"en": "Category", "zh-CN": "类别"}}});
    let status = &mut ticket["status"];
    status["enum"] = json!(["new", "open", "pending", "resolved", "closed"]);
    status["x-trellis"]["options"][2] =
        json!({"value": "pending", "label": {"en": "Pending customer", "zh-CN": "待客户回复"}});
    let flow = &mut map["flows/ticket.flow.json"];
    flow["states"][2] = json!({"id": "pending", "label": {"en": "Pending customer", "zh-CN": "待客户回复"}, "color": "#8c8c8c"});
    flow["transitions"][1]["to"] = json!("pending");
    flow["transitions"][2]["from"] = json!(["pending"]);
    flow["transitions"][3]["from"] = json!(["open", "pending"]);
    flow["state_mapping"] = json!({"waiting": "pending"});
    map["tests/ticket_lifecycle.test.json"]["steps"][4]["expect"]["fields"]["status"] =
        json!("pending");
    bundle_to_files(&bundle)
}

async fn publish(api: &TestApi, bytes: Vec<u8>) -> crate::support::api::Reply {
    api.post_bytes("/api/templates", "application/zip", bytes)
        .await
}

async fn count(api: &TestApi, path: &str) -> usize {
    let reply = api.call("GET", &format!("{path}?limit=1000"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body["items"].as_array().unwrap().len()
}

async fn fire(api: &TestApi, id: &str, event: &str, data: Value) -> crate::support::api::Reply {
    api.call(
        "POST",
        &format!("{TICKETS}/{id}/flows/ticket/events"),
        Some(json!({"event": event, "data": data})),
    )
    .await
}

async fn bundle(api: &TestApi) -> (Value, String) {
    let reply = api.call("GET", "/api/apps/desk/bundle", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let etag = reply.headers["etag"].to_str().unwrap().to_owned();
    (reply.body, etag)
}

async fn pack_publish_install_edit_upgrade_rollback(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let files = service_desk_files();
    let key = signing_key();

    // Publish a signed 1.0.0 and install it with its sample data.
    let published = publish(&api, pack(&files, "1.0.0", Some(&key))).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.text);
    assert_eq!(published.body["signed_by"], json!(key.public));
    let again = publish(&api, pack(&files, "1.0.0", Some(&key))).await;
    assert_problem(&again, StatusCode::CONFLICT);

    let gallery = api.call("GET", "/api/templates", None).await;
    let listed: Vec<&Value> = gallery.body.as_array().unwrap().iter().collect();
    let desk = listed
        .iter()
        .find(|t| t["id"] == "service_desk")
        .expect("listed");
    assert_eq!(desk["publisher"], "Trellis");
    assert_eq!(desk["screenshots"], json!(["screenshots/board.svg"]));
    assert_eq!(desk["name"]["zh-CN"], "售后服务台");
    assert!(
        listed
            .iter()
            .any(|t| t["id"] == "clm" && t["source"] == "bundled")
    );

    let installed = api
        .call(
            "POST",
            "/api/templates/service_desk/install",
            Some(json!({"app": "desk", "sample_data": true})),
        )
        .await;
    assert_eq!(installed.status, StatusCode::CREATED, "{}", installed.text);
    assert_eq!(installed.body["id"], "desk");
    assert_eq!(installed.body["template_version"], "1.0.0");
    assert_eq!(installed.body["sample_data"]["product"]["inserted"], 3);
    assert_eq!(installed.body["sample_data"]["ticket"]["inserted"], 4);
    assert_eq!(count(&api, TICKETS).await, 4);

    // Work happens: a ticket waits for its customer, another is resolved.
    let tickets = api.call("GET", TICKETS, None).await.body["items"].clone();
    let waiting = tickets[0]["id"].as_str().unwrap().to_owned();
    let resolved = tickets[1]["id"].as_str().unwrap().to_owned();
    for (id, event, data) in [
        (&waiting, "take", json!({})),
        (&waiting, "ask_customer", json!({})),
        (&resolved, "take", json!({})),
        (
            &resolved,
            "resolve",
            json!({"resolution": "Replaced the battery"}),
        ),
    ] {
        let reply = fire(&api, id, event, data).await;
        assert_eq!(reply.status, StatusCode::OK, "{event}: {}", reply.text);
    }

    // The analyst edits the app: a field, a label, a rule.
    let (mut local, etag) = bundle(&api).await;
    let ticket = &mut local["entities/ticket.schema.json"]["properties"];
    ticket["channel"] = json!({"type": "string", "enum": ["phone", "email", "chat"],
        "x-trellis": {"label": {"en": "Channel", "zh-CN": "渠道"}}});
    ticket["subject"]["x-trellis"]["label"]["en"] = json!("Title");
    local["rules/chat_is_high.rule.json"] = json!({"format_version": 1, "id": "chat_is_high", "entity": "ticket",
        "trigger": {"before_save": {}}, "condition": "channel == \"chat\" && priority == \"low\"",
        "actions": [{"set": {"priority": "normal"}}]});
    let edited = api
        .call_with(
            "PUT",
            "/api/apps/desk/bundle",
            &[("if-match", &etag)],
            Some(local),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text);
    let (before_upgrade, _) = bundle(&api).await;

    // 1.1.0 is published; the dry run shows both sides and the conflict, and changes nothing.
    let v11 = version_1_1(&files);
    // The template's own tests run on publish: a version that breaks them is refused.
    let (mut broken, _) = trellis_runtime::templates::source::files_to_bundle(&v11);
    broken.0["tests/ticket_lifecycle.test.json"]["steps"][4]["expect"]["fields"]["status"] =
        json!("waiting");
    let refused = publish(&api, pack(&bundle_to_files(&broken), "1.1.0", Some(&key))).await;
    assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        refused.body["errors"][0]["code"], "test_failed",
        "{}",
        refused.text
    );
    assert_eq!(
        refused.body["errors"][0]["pointer"],
        "/steps/4/expect/fields/status"
    );
    let published = publish(&api, pack(&v11, "1.1.0", Some(&key))).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.text);
    let dry = api
        .call(
            "POST",
            "/api/apps/desk/upgrade?dry_run=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{}", dry.text);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["from_template_version"], "1.0.0");
    assert_eq!(dry.body["to_template_version"], "1.1.0");
    let conflicts = dry.body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["id"], LABEL_CONFLICT);
    assert_eq!(conflicts[0]["base"], "Subject");
    assert_eq!(conflicts[0]["local"], "Title");
    assert_eq!(conflicts[0]["template"], "Summary");
    assert_eq!(conflicts[0]["default"], "local");
    assert!(
        dry.body["template_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["pointer"] == "/properties/category"),
        "{}",
        dry.text
    );
    assert!(
        dry.body["local_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["file"] == "rules/chat_is_high.rule.json"),
        "{}",
        dry.text
    );
    assert_eq!(
        dry.body["migration"]["states_moved"]["ticket: waiting → pending"],
        1
    );
    assert_eq!(
        bundle(&api).await.0,
        before_upgrade,
        "a dry run changes nothing"
    );
    let resolved_dry = api
        .call(
            "POST",
            "/api/apps/desk/upgrade?dry_run=true",
            Some(json!({"resolutions": {LABEL_CONFLICT: "template"}})),
        )
        .await;
    assert_eq!(resolved_dry.body["conflicts"][0]["chosen"], "template");

    // The upgrade keeps both sides' changes; every record and flow instance survives.
    let upgraded = api
        .call("POST", "/api/apps/desk/upgrade", Some(json!({})))
        .await;
    assert_eq!(upgraded.status, StatusCode::OK, "{}", upgraded.text);
    assert!(upgraded.body["upgrade_id"].is_string());
    let (after, _) = bundle(&api).await;
    assert_eq!(after["trellis.json"]["version"], "1.1.0");
    assert_eq!(after["trellis.json"]["id"], "desk");
    let props = &after["entities/ticket.schema.json"]["properties"];
    assert!(props["channel"].is_object(), "local field kept");
    assert!(props["category"].is_object(), "template field added");
    assert_eq!(props["subject"]["x-trellis"]["label"]["en"], "Title");
    assert_eq!(
        props["description"]["x-trellis"]["label"]["zh-CN"],
        "问题详情"
    );
    assert!(after["rules/chat_is_high.rule.json"].is_object());
    assert_eq!(count(&api, TICKETS).await, 4);
    let moved = api.call("GET", &format!("{TICKETS}/{waiting}"), None).await;
    assert_eq!(moved.body["data"]["status"], "pending");
    let still = api
        .call("GET", &format!("{TICKETS}/{resolved}"), None)
        .await;
    assert_eq!(still.body["data"]["status"], "resolved");
    assert_eq!(still.body["data"]["resolution"], "Replaced the battery");
    let flows = api
        .call("GET", &format!("{TICKETS}/{waiting}/flows"), None)
        .await;
    assert_eq!(flows.body["items"][0]["state"], "pending", "{}", flows.text);
    let upgrades = api.call("GET", "/api/apps/desk/upgrades", None).await;
    assert_eq!(upgrades.body.as_array().unwrap().len(), 1);
    let stale = api
        .call("POST", "/api/apps/desk/upgrade", Some(json!({})))
        .await;
    assert_problem(&stale, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(stale.body["errors"][0]["code"], "not_newer");

    // Rollback restores the app as it was before the upgrade, records included.
    let rollback = api
        .call("POST", "/api/apps/desk/upgrade/rollback", None)
        .await;
    assert_eq!(rollback.status, StatusCode::OK, "{}", rollback.text);
    assert_eq!(rollback.body["template_version"], "1.0.0");
    let (restored, _) = bundle(&api).await;
    for file in [
        "trellis.json",
        "entities/ticket.schema.json",
        "rules/chat_is_high.rule.json",
    ] {
        assert_eq!(restored[file], before_upgrade[file], "{file}");
    }
    assert_eq!(count(&api, TICKETS).await, 4);
    let back = api.call("GET", &format!("{TICKETS}/{waiting}"), None).await;
    assert_eq!(back.body["data"]["status"], "waiting");
    let replied = fire(&api, &waiting, "customer_replied", json!({})).await;
    assert_eq!(replied.status, StatusCode::OK, "{}", replied.text);
    // The base is 1.0.0 again, so the upgrade can be redone.
    let redo = api
        .call(
            "POST",
            "/api/apps/desk/upgrade?dry_run=true",
            Some(json!({})),
        )
        .await;
    assert_eq!(redo.status, StatusCode::OK, "{}", redo.text);
    let audit = api.call("GET", "/api/audit?limit=500", None).await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    for action in [
        "template.publish",
        "template.install",
        "app.upgrade",
        "app.upgrade_rollback",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {}",
            audit.text
        );
    }
}

/// Rewrite a zip, replacing the bytes of one entry (the checksum manifest stays as it was).
fn tamper(bytes: &[u8], entry: &str, content: &[u8]) -> Vec<u8> {
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for index in 0..source.len() {
        let mut file = source.by_index(index).unwrap();
        let name = file.name().to_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut data).unwrap();
        writer
            .start_file(name.as_str(), zip::write::SimpleFileOptions::default())
            .unwrap();
        writer
            .write_all(if name == entry { content } else { &data })
            .unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// A zip with the given raw entries (name, content, unix mode).
fn raw_zip(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content, mode) in entries {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        if mode & 0o170000 == 0o120000 {
            writer
                .add_symlink(*name, std::str::from_utf8(content).unwrap(), options)
                .unwrap();
        } else {
            writer.start_file(*name, options).unwrap();
            writer.write_all(content).unwrap();
        }
    }
    writer.finish().unwrap().into_inner()
}

async fn bad_packages_are_refused_and_nothing_installed(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let files = service_desk_files();
    let key = signing_key();
    let signed = pack(&files, "1.0.0", Some(&key));

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a changed file",
            tamper(&signed, "rules/escalate_urgent.rule.json", b"{\"format_version\": 1}"),
            "tampered",
        ),
        (
            "a changed checksum manifest",
            tamper(&signed, package::PACKAGE_MANIFEST, b"{\"format_version\":1,\"template\":\"service_desk\",\"version\":\"1.0.0\",\"files\":{}}"),
            "bad_signature",
        ),
        (
            "zip-slip",
            raw_zip(&[("../../etc/evil.json", b"{}", 0o644)]),
            "unsafe_path",
        ),
        (
            "an absolute path",
            raw_zip(&[("/tmp/evil.json", b"{}", 0o644)]),
            "unsafe_path",
        ),
        (
            "a symlink",
            raw_zip(&[("entities/x.schema.json", b"/etc/passwd", 0o120777)]),
            "symlink",
        ),
        (
            "no checksum manifest",
            raw_zip(&[("trellis.json", b"{}", 0o644)]),
            "missing_checksums",
        ),
        ("not a zip at all", b"PK\x03\x04garbage".to_vec(), "not_a_package"),
    ];
    for (what, bytes, code) in cases {
        let reply = publish(&api, bytes).await;
        assert_problem(&reply, StatusCode::UNPROCESSABLE_ENTITY);
        let codes: Vec<&str> = reply.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["code"].as_str())
            .collect();
        assert!(
            codes.contains(&code),
            "{what}: expected {code}, got {}",
            reply.text
        );
    }
    // A zip bomb: one entry that inflates past the per-file limit (counted while inflating).
    let zeros = vec![0u8; trellis_runtime::templates::source::MAX_FILE_BYTES as usize + 1];
    let bomb = raw_zip(&[("assets/zeros.txt", &zeros, 0o644)]);
    assert!(
        bomb.len() < 1024 * 1024,
        "compressed to {} bytes",
        bomb.len()
    );
    drop(zeros);
    let reply = api
        .runtime
        .publish_template(&trellis_runtime::Principal::system("t", "t"), &bomb, false)
        .await;
    assert!(
        matches!(&reply, Err(trellis_runtime::RuntimeError::InvalidBundle(p)) if p[0].code == "too_large"),
        "{reply:?}"
    );
    // Too many entries.
    let names: Vec<String> = (0..=package::MAX_ENTRIES)
        .map(|i| format!("assets/{i}.txt"))
        .collect();
    let many: Vec<(&str, &[u8], u32)> = names
        .iter()
        .map(|n| (n.as_str(), &b"x"[..], 0o644))
        .collect();
    let reply = api
        .runtime
        .publish_template(
            &trellis_runtime::Principal::system("t", "t"),
            &raw_zip(&many),
            false,
        )
        .await;
    assert!(
        matches!(&reply, Err(trellis_runtime::RuntimeError::InvalidBundle(p)) if p[0].code == "too_many_entries"),
        "{reply:?}"
    );
    let gallery = api.call("GET", "/api/templates", None).await;
    assert!(
        !gallery
            .body
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == "service_desk" && t["source"] == "published"),
        "nothing was published: {}",
        gallery.text
    );

    // Signature policy: unsigned refused when signatures are required (unless explicitly allowed),
    // other publishers' keys refused when trusted keys are set.
    let unsigned = package::unpack(&pack(&files, "1.0.0", None), "p.zip").unwrap();
    let signed_package = package::unpack(&signed, "p.zip").unwrap();
    let strict = SignaturePolicy {
        require_signature: true,
        trusted_keys: vec![key.public.clone()],
    };
    assert_eq!(
        strict.check(&unsigned, false).unwrap_err().code,
        "unsigned_package"
    );
    assert!(strict.check(&unsigned, true).is_ok());
    assert!(strict.check(&signed_package, false).is_ok());
    let other = signing_key();
    let foreign = package::unpack(&pack(&files, "1.0.0", Some(&other)), "p.zip").unwrap();
    assert_eq!(
        strict.check(&foreign, false).unwrap_err().code,
        "untrusted_publisher"
    );
    assert!(SignaturePolicy::default().check(&unsigned, false).is_ok());
    // The same through a server that requires signatures: refused, unless explicitly allowed.
    let settings = trellis_runtime::RuntimeSettings {
        template_signatures: strict.clone(),
        ..Default::default()
    };
    let strict_server = trellis_runtime::Runtime::new(api.runtime.store().clone(), settings);
    let admin = trellis_runtime::Principal::system("t", "t");
    let refused = strict_server
        .publish_template(&admin, &pack(&files, "1.0.0", None), false)
        .await;
    assert!(
        matches!(&refused, Err(trellis_runtime::RuntimeError::InvalidBundle(p)) if p[0].code == "unsigned_package"),
        "{refused:?}"
    );
    let foreign_refused = strict_server
        .publish_template(&admin, &pack(&files, "1.0.0", Some(&other)), false)
        .await;
    assert!(
        matches!(&foreign_refused, Err(trellis_runtime::RuntimeError::InvalidBundle(p)) if p[0].code == "untrusted_publisher"),
        "{foreign_refused:?}"
    );
    let allowed = strict_server
        .publish_template(&admin, &pack(&files, "1.0.0", None), true)
        .await;
    assert!(allowed.is_ok(), "{allowed:?}");

    // Installing from the gallery the bundled template needs no package; the app id must be free.
    let first = api
        .call(
            "POST",
            "/api/templates/service_desk/install",
            Some(json!({"app": "helpdesk"})),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(
        count(&api, "/api/apps/helpdesk/entities/ticket/records").await,
        0
    );
    let taken = api
        .call(
            "POST",
            "/api/templates/service_desk/install",
            Some(json!({"app": "helpdesk"})),
        )
        .await;
    assert_problem(&taken, StatusCode::CONFLICT);
    let missing = api.call("POST", "/api/templates/nope/install", None).await;
    assert_problem(&missing, StatusCode::NOT_FOUND);
}

async fn bundled_templates_install_with_sample_data_and_show_screenshots(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let gallery = api.call("GET", "/api/templates", None).await;
    let bundled: Vec<Value> = gallery.body.as_array().unwrap().clone();
    assert!(bundled.len() >= 2, "{}", gallery.text);
    for template in &bundled {
        let id = template["id"].as_str().unwrap();
        let installed = api
            .call(
                "POST",
                &format!("/api/templates/{id}/install"),
                Some(json!({"app": format!("{id}_demo"), "sample_data": true})),
            )
            .await;
        assert_eq!(
            installed.status,
            StatusCode::CREATED,
            "{id}: {}",
            installed.text
        );
        let samples = installed.body["sample_data"].as_object().unwrap();
        assert!(!samples.is_empty(), "{id} ships sample data");
        for (entity, counts) in samples {
            assert_eq!(counts["rejected"], 0, "{id}/{entity}: {}", installed.text);
            assert!(counts["inserted"].as_u64().unwrap() > 0, "{id}/{entity}");
        }
        for shot in template["screenshots"].as_array().unwrap() {
            let shot = shot.as_str().unwrap();
            let reply = api
                .call("GET", &format!("/api/templates/{id}/files/{shot}"), None)
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{id}/{shot}: {}", reply.text);
            assert!(
                reply.headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("image/")
            );
        }
    }
    let outside = api
        .call(
            "GET",
            "/api/templates/service_desk/files/entities/ticket.schema.json",
            None,
        )
        .await;
    assert_problem(&outside, StatusCode::NOT_FOUND);

    // A binary screenshot survives pack → publish → the gallery byte for byte.
    let mut files = service_desk_files();
    let png: Vec<u8> = vec![
        0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0xff, 0xfe,
    ];
    files.push(TemplateFile {
        path: "screenshots/list.png".into(),
        bytes: png.clone(),
    });
    let published = publish(&api, pack(&files, "1.0.0", None)).await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.text);
    let bytes = api
        .raw_bytes("/api/templates/service_desk/files/screenshots/list.png")
        .await;
    assert_eq!(bytes, png);
}

/// An app built (or edited) in the UI goes to the gallery as a template at a new version, after
/// the full template checks; only platform admins may do it.
async fn an_app_publishes_itself_as_a_gallery_template(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let installed = api
        .call(
            "POST",
            "/api/templates/service_desk/install",
            Some(json!({"app": "service_desk", "sample_data": false})),
        )
        .await;
    assert_eq!(installed.status, StatusCode::CREATED, "{}", installed.text);
    let published = api
        .call(
            "POST",
            "/api/apps/service_desk/publish-template",
            Some(json!({"version": "1.0.1"})),
        )
        .await;
    assert_eq!(published.status, StatusCode::CREATED, "{}", published.text);
    let gallery = api.call("GET", "/api/templates", None).await;
    let desk = gallery
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "service_desk")
        .unwrap()
        .clone();
    assert_eq!(desk["version"], "1.0.1", "{desk}");
    // Installable like any gallery template.
    let copy = api
        .call(
            "POST",
            "/api/templates/service_desk/install",
            Some(json!({"app": "desk_copy", "version": "1.0.1"})),
        )
        .await;
    assert_eq!(copy.status, StatusCode::CREATED, "{}", copy.text);
    // Not a version: refused with the manifest pointer, nothing published.
    let bad = api
        .call(
            "POST",
            "/api/apps/service_desk/publish-template",
            Some(json!({"version": "one"})),
        )
        .await;
    assert_problem(&bad, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("trellis.json"), "{}", bad.text);
    let missing = api
        .call("POST", "/api/apps/nope/publish-template", None)
        .await;
    assert_problem(&missing, StatusCode::NOT_FOUND);
}

on_both_backends!(
    an_app_publishes_itself_as_a_gallery_template,
    pack_publish_install_edit_upgrade_rollback,
    bad_packages_are_refused_and_nothing_installed,
    bundled_templates_install_with_sample_data_and_show_screenshots
);
