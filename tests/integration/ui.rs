//! The builder UI against the real server: the build embeds it (served with client-side routing and
//! gzip, API 404s still problem+json), its component tests (vitest) pass, and the two browser
//! journeys of `builder-ui/e2e` pass in Debian's Chromium against `trellis serve --demo`.
//!
//! Outside CI a machine without Node.js or Chromium skips these (saying why); with `CI=true` that is
//! a failure. `TRELLIS_UPDATE_SCREENSHOTS=1` writes the journeys' screenshots to `docs/screenshots/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

use crate::cli::Server;
use crate::support::http::request;

const PASSWORD: &str = "ui-journey-admin-pw";

fn ui_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../builder-ui")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Whether a prerequisite is there; when it is not: a failure in CI, a printed skip elsewhere.
fn available(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    assert!(!in_ci(), "CI=true and {what}");
    eprintln!("SKIPPING UI test (set CI=true to make this a failure): {what}");
    false
}

fn has(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn chromium() -> String {
    std::env::var("TRELLIS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// GET with extra request headers: (status, lower-cased head, body bytes).
fn get(addr: &str, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, raw[split + 4..].to_vec())
}

#[test]
fn the_server_serves_the_embedded_ui_with_client_side_routes() {
    if !available(
        trellis_server::ui_built(),
        "the builder UI is not in this build (Node.js/npm missing or the npm build failed; see the cargo warning)",
    ) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_string_lossy().into_owned();
    let server = Server::start(
        &["--data-dir", &dir],
        &[("TRELLIS_ADMIN_PASSWORD", PASSWORD)],
    );
    // Any page a browser asks for gets the app shell; the router in the page takes over.
    const BROWSER: &str = "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n";
    for path in ["/", "/login", "/apps/clm/e/customer/123"] {
        let (status, head, body) = get(&server.addr, path, BROWSER);
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("content-type: text/html"), "{head}");
        assert!(head.contains("cache-control: no-cache"), "{head}");
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("<div id=\"root\">"), "{path}: {body}");
    }
    // `/` is the UI for any client; other paths only for browsers.
    assert_eq!(request(&server.addr, "GET", "/", None, None).status, 200);
    let api_client = request(&server.addr, "GET", "/apps/clm", None, None);
    assert_eq!(api_client.status, 404);
    assert_eq!(
        api_client.header("content-type"),
        Some("application/problem+json")
    );
    let index = request(&server.addr, "GET", "/", None, None).body;
    let script = index
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html loads a script");
    assert!(script.starts_with("/assets/"), "{script}");
    let plain = request(&server.addr, "GET", script, None, None);
    assert_eq!(plain.status, 200);
    assert!(
        plain
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(plain.header("cache-control").unwrap().contains("immutable"));
    let (status, head, body) = get(&server.addr, script, "Accept-Encoding: gzip, br\r\n");
    assert_eq!(status, 200);
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(body.len() * 2 < plain.body.len(), "compressed");
    // Unknown API routes and missing assets stay problem+json 404s.
    for path in ["/api/nope", "/assets/missing.js"] {
        let reply = request(&server.addr, "GET", path, None, None);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json")
        );
    }
}

#[test]
fn component_tests_pass() {
    if !available(has("npm", "--version"), "npm is not installed") {
        return;
    }
    let ui = ui_dir();
    if !available(
        ui.join("node_modules/.bin/vitest").exists(),
        "builder-ui/node_modules is missing (the server build runs `npm ci`)",
    ) {
        return;
    }
    let output = Command::new("npm")
        .args(["run", "test", "--silent"])
        .current_dir(&ui)
        .output()
        .expect("run vitest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "vitest failed:\n{text}");
    assert!(text.contains("passed"), "{text}");
}

#[test]
fn browser_journeys_pass_in_chromium() {
    if !available(
        trellis_server::ui_built(),
        "the builder UI is not in this build",
    ) || !available(has("node", "--version"), "node is not installed")
        || !available(
            has(&chromium(), "--version"),
            "Chromium is not installed (apt-get install chromium chromium-driver)",
        )
    {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_string_lossy().into_owned();
    let server = Server::start(
        &["--data-dir", &dir, "--demo"],
        &[("TRELLIS_ADMIN_PASSWORD", PASSWORD)],
    );
    let failures = data.path().join("failures");
    let mut command = Command::new("node");
    command
        .arg("e2e/run.mjs")
        .current_dir(ui_dir())
        .env("TRELLIS_URL", format!("http://{}", server.addr))
        .env("TRELLIS_PASSWORD", PASSWORD)
        .env("TRELLIS_CHROMIUM", chromium())
        .env("TRELLIS_FAILURES", &failures);
    if std::env::var_os("TRELLIS_UPDATE_SCREENSHOTS").is_some() {
        command.env(
            "TRELLIS_SCREENSHOTS",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots"),
        );
    }
    let output = command.output().expect("run the journeys");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        // Keep the screenshots of the failure where a developer can look at them.
        let keep = std::env::temp_dir().join("trellis-ui-failures");
        let _ = std::fs::create_dir_all(&keep);
        if let Ok(entries) = std::fs::read_dir(&failures) {
            for entry in entries.flatten() {
                let _ = std::fs::copy(entry.path(), keep.join(entry.file_name()));
            }
        }
        panic!(
            "browser journeys failed (screenshots in {}):\n{text}",
            keep.display()
        );
    }
    assert!(text.contains("journey builder: ok"), "{text}");
    assert!(text.contains("journey clm: ok"), "{text}");
}
