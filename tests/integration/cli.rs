//! The `trellis` binary, run as a user would: `template validate`, and `serve` on SQLite and on
//! PostgreSQL (two servers at once), talking to it over a real socket.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

use crate::support::bundles::two_entity_bundle;
use crate::support::http::request;

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");
const GALLERY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../templates-gallery");

/// A running `trellis serve`; killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
    lines: mpsc::Receiver<String>,
    /// stdout lines printed before "listening on".
    pub(crate) banner: Vec<String>,
}

impl Server {
    pub(crate) fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut command = Command::new(TRELLIS);
        command
            .arg("serve")
            .args(["--addr", "127.0.0.1:0"])
            .args(args);
        command
            .env_remove("TRELLIS_ADMIN_PASSWORD")
            .env_remove("TRELLIS_DB")
            .env("TRELLIS_LOG", "warn");
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn trellis serve");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("listening on http://") {
                        let addr = addr.trim().to_owned();
                        return Server {
                            child,
                            addr,
                            lines,
                            banner,
                        };
                    }
                    banner.push(line);
                }
                Err(_) => {
                    child.kill().ok();
                    child.wait().ok();
                    panic!("trellis serve did not print 'listening on' (printed: {banner:?})");
                }
            }
        }
    }

    pub(crate) fn login(&self, password: &str) -> String {
        let reply = request(
            &self.addr,
            "POST",
            "/api/auth/login",
            None,
            Some(&json!({"username": "admin", "password": password})),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["token"].as_str().unwrap().to_owned()
    }

    /// Send SIGTERM and wait for a clean exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("trellis serve did not stop within 30 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        while self.lines.try_recv().is_ok() {}
    }
}

fn validate(path: &Path) -> (i32, String) {
    let output = Command::new(TRELLIS)
        .args(["template", "validate"])
        .arg(path)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Write a bundle out as a template directory.
fn write_template(dir: &Path, bundle: &serde_json::Value) {
    for (path, content) in bundle.as_object().unwrap() {
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        let text = match content {
            serde_json::Value::String(text) => text.clone(),
            other => serde_json::to_string_pretty(other).unwrap(),
        };
        std::fs::write(file, text).unwrap();
    }
}

#[test]
fn validate_accepts_the_bundled_gallery() {
    for entry in std::fs::read_dir(GALLERY).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let (code, out) = validate(&path);
            assert_eq!(code, 0, "{} should be valid:\n{out}", path.display());
        }
    }
}

#[test]
fn validate_lists_every_problem_of_a_broken_template_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (mut bundle, expected) = crate::support::bundles::broken_bundle();
    bundle
        .as_object_mut()
        .unwrap()
        .remove("secrets/../../etc/passwd");
    write_template(dir.path(), &bundle);
    std::fs::write(dir.path().join("entities/oops.schema.json"), "{ not json").unwrap();
    let (code, out) = validate(dir.path());
    assert_eq!(code, 1, "{out}");
    for (file, pointer) in expected.iter().filter(|(f, _)| !f.starts_with("secrets")) {
        let prefix = format!(
            "{file}:{}: ",
            if pointer.is_empty() { "/" } else { pointer }
        );
        assert!(
            out.lines().any(|l| l.starts_with(&prefix)),
            "no line starting '{prefix}' in:\n{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("entities/oops.schema.json:/: invalid JSON")),
        "{out}"
    );
}

/// Column snapshots stored in a SQLite file.
fn column_snapshots_in(db: &Path) -> i64 {
    let db = rusqlite::Connection::open(db).unwrap();
    db.query_row("SELECT count(*) FROM column_snapshots", [], |row| {
        row.get(0)
    })
    .unwrap()
}

#[test]
fn serve_prepares_the_columns_of_stored_reports_when_it_starts() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let db = data.path().join("trellis.db");
    // Entities of one record or more get column snapshots here.
    let envs = [
        ("TRELLIS_ADMIN_PASSWORD", "s3cret-admin"),
        ("TRELLIS_COLUMN_SNAPSHOT_ROWS", "1"),
    ];
    let server = Server::start(&["--data-dir", &data_dir], &envs);
    let token = server.login("s3cret-admin");
    let mut bundle = two_entity_bundle("desk");
    bundle["reports/by_tier.report.json"] = json!({"format_version": 1, "id": "by_tier",
        "dataset": {"entity": "account"},
        "analysis": {"aggregate": {"dimensions": [{"field": "tier"}], "measures": [{"id": "accounts", "op": "count"}]}}});
    let created = request(
        &server.addr,
        "POST",
        "/api/apps",
        Some(&token),
        Some(&bundle),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    for (name, tier) in [("Acme", "gold"), ("Globex", "silver"), ("Initech", "gold")] {
        let record = request(
            &server.addr,
            "POST",
            "/api/apps/desk/entities/account/records",
            Some(&token),
            Some(&json!({"name": name, "tier": tier})),
        );
        assert_eq!(record.status, 201, "{}", record.body);
    }
    assert!(server.terminate().success());
    // No report ran, so nothing loaded the columns.
    assert_eq!(column_snapshots_in(&db), 0);

    // A start loads them in the background, and writes the account's snapshot.
    let again = Server::start(&["--data-dir", &data_dir], &envs);
    let mut snapshots = 0;
    for _ in 0..600 {
        snapshots = column_snapshots_in(&db);
        if snapshots > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        snapshots, 1,
        "one snapshot: the account's (no report reads tickets)"
    );
    let token = again.login("s3cret-admin");
    let run = request(
        &again.addr,
        "POST",
        "/api/apps/desk/reports/by_tier/run",
        Some(&token),
        Some(&json!({})),
    );
    assert_eq!(run.status, 200, "{}", run.body);
    assert_eq!(run.json()["rows"], json!([["gold", 2], ["silver", 1]]));

    // A bad setting stops the start with the variable named.
    let bad = Command::new(TRELLIS)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir", &data_dir])
        .env_remove("TRELLIS_DB")
        .env("TRELLIS_COLUMN_SNAPSHOT_ROWS", "many")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("TRELLIS_COLUMN_SNAPSHOT_ROWS"), "{stderr}");
}

#[test]
fn serve_on_sqlite_end_to_end() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let server = Server::start(
        &["--data-dir", &data_dir],
        &[("TRELLIS_ADMIN_PASSWORD", "s3cret-admin")],
    );
    assert!(
        data.path().join("trellis.db").exists(),
        "the SQLite file lives in the data dir"
    );
    let health = request(&server.addr, "GET", "/healthz", None, None);
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    assert!(health.header("x-request-id").is_some());

    let token = server.login("s3cret-admin");
    let bundle = two_entity_bundle("desk");
    let created = request(
        &server.addr,
        "POST",
        "/api/apps",
        Some(&token),
        Some(&bundle),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let exported = request(
        &server.addr,
        "GET",
        "/api/apps/desk/bundle",
        Some(&token),
        None,
    );
    assert_eq!(exported.json(), bundle);

    let mut broken = bundle.clone();
    broken["entities/ticket.schema.json"]["properties"]["account"]["x-trellis"]["relation"]["entity"] =
        json!("nowhere");
    broken["trellis.json"]["id"] = json!("other");
    broken["trellis.json"]["version"] = json!("1");
    let refused = request(
        &server.addr,
        "POST",
        "/api/apps",
        Some(&token),
        Some(&broken),
    );
    assert_eq!(refused.status, 422);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        refused.json()["errors"].as_array().unwrap().len() >= 2,
        "{}",
        refused.body
    );
    let apps = request(&server.addr, "GET", "/api/apps", Some(&token), None).json();
    assert_eq!(
        apps.as_array().unwrap().len(),
        1,
        "the invalid bundle created nothing"
    );

    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    // Restart on the same data dir: data and the admin are still there, no new password is printed.
    let again = Server::start(&["--data-dir", &data_dir], &[]);
    assert!(
        !again.banner.iter().any(|l| l.contains("password")),
        "{:?}",
        again.banner
    );
    let token = again.login("s3cret-admin");
    assert_eq!(
        request(
            &again.addr,
            "GET",
            "/api/apps/desk/bundle",
            Some(&token),
            None
        )
        .json(),
        bundle
    );
}

#[test]
fn serve_generates_and_prints_the_first_admin_password_once() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let server = Server::start(&["--data-dir", &data_dir], &[]);
    let line = server
        .banner
        .iter()
        .find(|l| l.starts_with("created user 'admin' with password: "))
        .expect("password printed");
    let password = line
        .trim_start_matches("created user 'admin' with password: ")
        .trim()
        .to_owned();
    assert!(password.len() >= 16);
    server.login(&password);
}

#[test]
fn serve_demo_installs_clm_once() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let envs = [("TRELLIS_ADMIN_PASSWORD", "demo-admin-pw")];
    let first = Server::start(&["--data-dir", &data_dir, "--demo"], &envs);
    assert!(
        first
            .banner
            .iter()
            .any(|l| l.starts_with("installed demo app 'clm'")),
        "{:?}",
        first.banner
    );
    drop(first);
    let second = Server::start(&["--data-dir", &data_dir, "--demo"], &envs);
    assert!(
        !second
            .banner
            .iter()
            .any(|l| l.starts_with("installed demo app")),
        "idempotent: {:?}",
        second.banner
    );
    let token = second.login("demo-admin-pw");
    let apps = request(&second.addr, "GET", "/api/apps", Some(&token), None).json();
    let ids: Vec<&str> = apps
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["clm"]);
    // The CLM template ships its permission sets beside the built-in roles.
    let roles = request(
        &second.addr,
        "GET",
        "/api/apps/clm/roles",
        Some(&token),
        None,
    )
    .json();
    let roles: Vec<&str> = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "app_admin",
            "member",
            "viewer",
            "account_manager",
            "cs_lead",
            "marketing",
            "sales_rep"
        ]
    );
    // It is seeded once with a deterministic history of 200 customers…
    let customers = request(
        &second.addr,
        "GET",
        "/api/apps/clm/entities/customer/records?count=true&limit=1",
        Some(&token),
        None,
    )
    .json();
    assert_eq!(customers["total"], 200, "{customers}");
    let growth_filter = "%7B%22field%22%3A%22lifecycle_stage%22%2C%22op%22%3A%22eq%22%2C%22value%22%3A%22growth%22%7D";
    let growth = request(
        &second.addr,
        "GET",
        &format!(
            "/api/apps/clm/entities/customer/records?count=true&limit=1&filter={growth_filter}"
        ),
        Some(&token),
        None,
    )
    .json()["total"]
        .as_i64()
        .unwrap();
    assert!(growth > 0, "some customers are growing");
    // …and its reports and overview dashboard run on the demo's records.
    for name in ["王芳", "Li Lei"] {
        let body = serde_json::json!({"name": name, "lifecycle_stage": "growth"});
        let created = request(
            &second.addr,
            "POST",
            "/api/apps/clm/entities/customer/records",
            Some(&token),
            Some(&body),
        );
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let dashboard = request(
        &second.addr,
        "POST",
        "/api/apps/clm/dashboards/overview/run",
        Some(&token),
        Some(&serde_json::json!({"filters": {"stage": "growth"}})),
    )
    .json();
    let widgets = dashboard["widgets"].as_array().unwrap();
    assert_eq!(widgets.len(), 4, "{dashboard}");
    for widget in widgets {
        assert!(widget["error"].is_null(), "{widget}");
    }
    let by_stage = &widgets[1]["result"];
    assert_eq!(
        by_stage["rows"],
        serde_json::json!([["growth", growth + 2, 1.0]]),
        "{by_stage}"
    );
    assert_eq!(
        widgets[0]["result"]["rows"][0][1],
        growth + 2,
        "the page filter applies: the seeded and the 2 new growth customers, all created this month"
    );
    // Every report and dashboard of the CLM app runs on the seeded history with sensible numbers.
    let reports = request(
        &second.addr,
        "GET",
        "/api/apps/clm/reports",
        Some(&token),
        None,
    )
    .json();
    let reports = reports
        .as_array()
        .or_else(|| reports["items"].as_array())
        .unwrap()
        .clone();
    assert!(reports.len() >= 14, "{reports:?}");
    for report in &reports {
        let id = report["id"].as_str().unwrap();
        let run = request(
            &second.addr,
            "POST",
            &format!("/api/apps/clm/reports/{id}/run"),
            Some(&token),
            None,
        );
        assert_eq!(run.status, 200, "{id}: {}", run.body);
        let rows = run.json()["rows"].as_array().unwrap().len();
        assert!(rows > 0, "{id} has rows: {}", run.body);
    }
    let model = request(
        &second.addr,
        "POST",
        "/api/apps/clm/reports/customer_base_model/run",
        Some(&token),
        None,
    )
    .json();
    let parameter = |name: &str| {
        model["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == name)
            .and_then(|r| r[1].as_f64())
            .unwrap_or_else(|| panic!("{name} in {model}"))
    };
    for name in ["r", "alpha", "a", "b", "p", "q", "gamma"] {
        assert!(parameter(name) > 0.0, "{name} is positive: {model}");
    }
    let segments = request(
        &second.addr,
        "POST",
        "/api/apps/clm/reports/rfm_segments/run",
        Some(&token),
        None,
    )
    .json();
    let segmented: i64 = segments["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_i64().unwrap())
        .sum();
    assert!(
        (150..=200).contains(&segmented),
        "most seeded customers bought: {segments}"
    );
    // Flows between lifecycle stages: every customer past acquisition left it exactly once (seeded
    // customers walk the flow, and the nightly refresh at start may move some further).
    let moves = request(
        &second.addr,
        "POST",
        "/api/apps/clm/reports/lifecycle_moves/run",
        Some(&token),
        None,
    )
    .json();
    let rows = moves["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r[0] == "acquisition" && r[1] == "growth"),
        "acquisition → growth in {moves}"
    );
    let left_acquisition: i64 = rows
        .iter()
        .filter(|r| r[0] == "acquisition")
        .map(|r| r[2].as_i64().unwrap())
        .sum();
    let past_acquisition = request(
        &second.addr,
        "GET",
        "/api/apps/clm/entities/customer/records?count=true&limit=1&filter=%7B%22field%22%3A%22lifecycle_stage%22%2C%22op%22%3A%22ne%22%2C%22value%22%3A%22acquisition%22%7D",
        Some(&token),
        None,
    )
    .json()["total"]
        .as_i64()
        .unwrap();
    assert_eq!(
        left_acquisition,
        past_acquisition - 2,
        "the 2 growth customers created above did not move: {moves}"
    );
    // The nightly refresh ran at start: customers carry segments, P(alive) and CLV.
    let segmented = request(
        &second.addr,
        "GET",
        "/api/apps/clm/entities/customer/records?count=true&limit=1&filter=%7B%22field%22%3A%22segment%22%2C%22op%22%3A%22is_empty%22%2C%22value%22%3Afalse%7D",
        Some(&token),
        None,
    )
    .json()["total"]
        .as_i64()
        .unwrap();
    assert!(segmented >= 150, "{segmented} customers segmented");
    for dashboard in ["overview", "marketing", "customer_success"] {
        let run = request(
            &second.addr,
            "POST",
            &format!("/api/apps/clm/dashboards/{dashboard}/run"),
            Some(&token),
            None,
        )
        .json();
        for widget in run["widgets"].as_array().unwrap() {
            assert!(widget["error"].is_null(), "{dashboard}: {widget}");
        }
    }
}

#[test]
fn serve_rejects_bad_options_with_a_clear_message() {
    let output = Command::new(TRELLIS)
        .args(["serve", "--addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not-an-address") && stderr.contains("HOST:PORT"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trellis.toml");
    std::fs::write(&config, "addr = \"127.0.0.1:1\"\nunknown_key = 1\n").unwrap();
    let output = Command::new(TRELLIS)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("trellis.toml") && stderr.contains("unknown_key"),
        "{stderr}"
    );
}

#[test]
fn config_file_is_overridden_by_env_and_flags() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("trellis.toml");
    let file_dir = data.path().join("from-file");
    let env_dir = data.path().join("from-env");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\naddr = \"127.0.0.1:1\"\n",
            file_dir.display()
        ),
    )
    .unwrap();
    // File says data_dir=from-file and addr=:1; env overrides data_dir; the flag (--addr :0) overrides addr.
    let envs = [
        ("TRELLIS_DATA_DIR", env_dir.to_str().unwrap()),
        ("TRELLIS_ADMIN_PASSWORD", "pw-precedence"),
    ];
    let server = Server::start(&["--config", config.to_str().unwrap()], &envs);
    assert!(env_dir.join("trellis.db").exists() && !file_dir.exists());
    server.login("pw-precedence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_start_together_on_one_postgres() {
    let Some(url) = crate::support::postgres::fresh_database().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    let envs = [("TRELLIS_ADMIN_PASSWORD", "shared-admin")];
    let args = ["--db", url.as_str(), "--data-dir", data_dir.as_str()];
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(|| Server::start(&args, &envs));
        let b = scope.spawn(|| Server::start(&args, &envs));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(request(&a.addr, "GET", "/healthz", None, None).status, 200);
    assert_eq!(request(&b.addr, "GET", "/healthz", None, None).status, 200);
    // An app created through one server is served by the other: they share one database.
    let token_a = a.login("shared-admin");
    let token_b = b.login("shared-admin");
    let bundle = two_entity_bundle("shared");
    assert_eq!(
        request(&a.addr, "POST", "/api/apps", Some(&token_a), Some(&bundle)).status,
        201
    );
    assert_eq!(
        request(
            &b.addr,
            "GET",
            "/api/apps/shared/bundle",
            Some(&token_b),
            None
        )
        .json(),
        bundle
    );

    let store = trellis_store::Store::connect(&url).await.unwrap();
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../store/migrations/postgres"
    ))
    .unwrap()
    .count() as i64;
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        files,
        "each migration ran exactly once"
    );
    assert_eq!(store.count_users().await.unwrap(), 1, "one bootstrap admin");
    assert!(a.terminate().success() && b.terminate().success());
}

#[test]
fn import_command_shows_counts_and_writes_rejected_rows() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_string_lossy().into_owned();
    {
        let server = Server::start(
            &["--data-dir", &data_dir],
            &[("TRELLIS_ADMIN_PASSWORD", "import-pw")],
        );
        let token = server.login("import-pw");
        let created = request(
            &server.addr,
            "POST",
            "/api/apps",
            Some(&token),
            Some(&crate::support::bundles::crm_bundle()),
        );
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let file = data.path().join("customers.csv");
    std::fs::write(
        &file,
        "name,email,score\nAnn,ann@example.com,5\nBad,not-an-email,500\nCid,cid@example.com,7\n",
    )
    .unwrap();
    let output = Command::new(TRELLIS)
        .args([
            "import",
            "--app",
            "crm",
            "--entity",
            "customer",
            "--data-dir",
            &data_dir,
        ])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "rejected rows make the exit code 1: {stdout}"
    );
    assert!(
        stdout.contains("inserted 2 row(s), rejected 1 row(s)"),
        "{stdout}"
    );
    let rejected = std::fs::read_to_string(data.path().join("customers.rejected.csv")).unwrap();
    let mut lines = rejected.lines();
    assert_eq!(lines.next(), Some("_row,_errors,name,email,score"));
    let bad = lines.next().unwrap();
    assert!(
        bad.starts_with("3,")
            && bad.contains("/email")
            && bad.contains("/score")
            && bad.ends_with("Bad,not-an-email,500"),
        "{bad}"
    );

    let clean = data.path().join("more.ndjson");
    std::fs::write(&clean, "{\"name\": \"Dee\"}\n").unwrap();
    let output = Command::new(TRELLIS)
        .args([
            "import",
            "--app",
            "crm",
            "--entity",
            "customer",
            "--data-dir",
            &data_dir,
            "--atomic",
        ])
        .arg(&clean)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let missing = Command::new(TRELLIS)
        .args([
            "import",
            "--app",
            "crm",
            "--entity",
            "customer",
            "--data-dir",
            &data_dir,
            "nope.txt",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.txt"));
}

/// kill -9 in the middle of a burst of flow transitions: after a restart every transition a client saw
/// committed is there, and no record is half-moved (its version, state and flow history agree).
#[test]
fn kill_9_during_a_burst_of_transitions_loses_nothing_committed() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let envs = [("TRELLIS_ADMIN_PASSWORD", "kill-test-pw")];
    let server = Server::start(&["--data-dir", &data_dir], &envs);
    let token = server.login("kill-test-pw");
    let bundle = json!({
        "trellis.json": {"format_version": 1, "id": "pingpong", "version": "1.0.0", "name": {"en": "Ping pong", "zh-CN": "乒乓"}},
        "entities/item.schema.json": {"type": "object", "x-trellis": {"format_version": 1},
            "properties": {"name": {"type": "string"}, "side": {"type": "string", "enum": ["ping", "pong"]}}},
        "flows/play.flow.json": {"format_version": 1, "id": "play", "entity": "item", "state_field": "side",
            "states": [{"id": "ping", "initial": true}, {"id": "pong"}],
            "transitions": [{"event": "hit", "from": ["ping"], "to": "pong"}, {"event": "hit", "from": ["pong"], "to": "ping"}]}
    });
    let created = request(
        &server.addr,
        "POST",
        "/api/apps",
        Some(&token),
        Some(&bundle),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let records = "/api/apps/pingpong/entities/item/records";
    let ids: Vec<String> = (0..8)
        .map(|i| {
            let reply = request(
                &server.addr,
                "POST",
                records,
                Some(&token),
                Some(&json!({"name": format!("item {i}")})),
            );
            reply.json()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let players: Vec<_> = ids
        .iter()
        .map(|id| {
            let (addr, token, id, stop) =
                (server.addr.clone(), token.clone(), id.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut committed = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let path =
                        format!("/api/apps/pingpong/entities/item/records/{id}/flows/play/events");
                    match crate::support::http::try_request(
                        &addr,
                        "POST",
                        &path,
                        Some(&token),
                        Some(&json!({"event": "hit"})),
                    ) {
                        Ok(reply) if reply.status == 200 => committed += 1,
                        Ok(reply) => panic!("unexpected {}: {}", reply.status, reply.body),
                        Err(_) => break,
                    }
                }
                committed
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    drop(server); // SIGKILL, mid-burst
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let committed: Vec<usize> = players.into_iter().map(|p| p.join().unwrap()).collect();
    assert!(
        committed.iter().sum::<usize>() > 8,
        "the burst ran: {committed:?}"
    );

    let server = Server::start(&["--data-dir", &data_dir], &envs);
    let token = server.login("kill-test-pw");
    for (id, seen) in ids.iter().zip(&committed) {
        let record = request(
            &server.addr,
            "GET",
            &format!("{records}/{id}"),
            Some(&token),
            None,
        )
        .json();
        let flows = request(
            &server.addr,
            "GET",
            &format!("{records}/{id}/flows"),
            Some(&token),
            None,
        )
        .json();
        let history = flows["items"][0]["history"].as_array().unwrap();
        // The first entry is the record's creation (its run's start); the rest are the hits.
        let hits = history.len() - 1;
        assert!(
            hits >= *seen,
            "{id}: {hits} transitions kept, {seen} were answered 200"
        );
        assert!(
            hits <= seen + 1,
            "{id}: at most the one in flight may have committed unanswered"
        );
        assert_eq!(
            record["version"].as_u64().unwrap() as usize,
            1 + hits,
            "{id}: record and history moved together"
        );
        let last = history
            .last()
            .map_or("ping", |h| h["to_state"].as_str().unwrap());
        assert_eq!(
            record["data"]["side"], last,
            "{id}: the state is the last transition's"
        );
    }
}

#[test]
fn seed_purchase_rate_scales_how_often_customers_buy() {
    let orders_at = |rate: &str| -> (bool, String, String) {
        let data = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            Command::new(TRELLIS)
                .args(args)
                .arg("--data-dir")
                .arg(data.path())
                .env_remove("TRELLIS_DB")
                .output()
                .unwrap()
        };
        let installed = run(&["template", "install", &format!("{GALLERY}/clm")]);
        assert!(installed.status.success(), "{installed:?}");
        let seeded = run(&[
            "seed",
            "--app",
            "clm",
            "--customers",
            "300",
            "--purchase-rate",
            rate,
        ]);
        (
            seeded.status.success(),
            String::from_utf8_lossy(&seeded.stdout).into_owned(),
            String::from_utf8_lossy(&seeded.stderr).into_owned(),
        )
    };
    let count = |stdout: &str| -> usize {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("order: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no order count in {stdout}"))
    };
    let (ok, usual, _) = orders_at("1.0");
    assert!(ok);
    let (ok, dense, _) = orders_at("1.5");
    assert!(ok);
    let (usual, dense) = (count(&usual), count(&dense));
    assert!(
        dense * 10 > usual * 13,
        "1.5 buys more often: {dense} orders against {usual}"
    );
    let (ok, _, stderr) = orders_at("0");
    assert!(!ok);
    assert!(
        stderr.contains("--purchase-rate 0") && stderr.contains("0.1 to 10"),
        "{stderr}"
    );
}
