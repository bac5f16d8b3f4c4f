//! Builds the builder UI (`builder-ui/`, React + Vite) with npm when its sources changed and embeds
//! the result, so `cargo run -- serve` serves the UI with no extra command.
//!
//! - `npm ci` runs when `node_modules` is missing or older than `package-lock.json`; then `npm run
//!   build` (which also regenerates the TypeScript API types from `schemas/openapi.json`).
//! - Text assets are embedded gzip-compressed too, and served compressed when the browser accepts it.
//! - Without Node.js/npm, or when the npm build fails, the server is still built: it serves a page
//!   that says what is missing and how to fix it, never a broken page. `TRELLIS_SKIP_UI_BUILD=1`
//!   skips npm and embeds whatever `builder-ui/dist` holds.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let ui = manifest.join("../../builder-ui");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    for watched in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "../schemas/openapi.json",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=TRELLIS_SKIP_UI_BUILD");

    let status = if std::env::var_os("TRELLIS_SKIP_UI_BUILD").is_some() {
        Ok(())
    } else {
        build_ui(&ui)
    };
    let dist = ui.join("dist");
    let problem = match status {
        Err(problem) => Some(problem),
        Ok(()) if !dist.join("index.html").is_file() => Some(
            "builder-ui/dist is empty: run `npm ci && npm run build` in builder-ui, or unset TRELLIS_SKIP_UI_BUILD"
                .to_owned(),
        ),
        Ok(()) => None,
    };
    if let Some(problem) = &problem {
        println!("cargo:warning=builder UI not built: {problem}");
    }
    write_assets(&dist, &out, problem.as_deref());
}

fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

fn build_ui(ui: &Path) -> Result<(), String> {
    let version = Command::new(npm()).arg("--version").output();
    match version {
        Ok(output) if output.status.success() => {}
        _ => {
            return Err(
                "Node.js 20+ with npm is not installed; install it (e.g. `apt-get install nodejs npm`) and rebuild"
                    .into(),
            );
        }
    }
    let lock = ui.join("package-lock.json");
    let installed = ui.join("node_modules/.package-lock.json");
    if !installed.is_file() || modified(&lock) > modified(&installed) {
        run(ui, &["ci", "--no-audit", "--no-fund"])?;
    }
    run(ui, &["run", "build"])
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn run(ui: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new(npm())
        .args(args)
        .current_dir(ui)
        .output()
        .map_err(|e| format!("could not run npm {}: {e}", args.join(" ")))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stdout));
    // The reason comes first; npm follows it with the command's usage, which says nothing.
    let reason: Vec<&str> = text
        .lines()
        .map(|l| l.trim_start_matches("npm error").trim())
        .filter(|l| !l.is_empty())
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("Clean install"))
        .take(10)
        .collect();
    Err(format!(
        "`npm {}` failed in builder-ui: {}",
        args.join(" "),
        reason.join(" | ")
    ))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, found);
        } else {
            found.push(path);
        }
    }
}

fn write_assets(dist: &Path, out: &Path, problem: Option<&str>) {
    let mut found = Vec::new();
    if problem.is_none() {
        files(dist, &mut found);
    }
    found.sort();
    let mut code = String::from("/// The embedded builder UI.\n");
    code.push_str("pub static ASSETS: &[Asset] = &[\n");
    for (index, path) in found.iter().enumerate() {
        let relative = path
            .strip_prefix(dist)
            .expect("under dist")
            .to_string_lossy()
            .replace('\\', "/");
        let kind = content_type(&relative);
        let compressible =
            kind.starts_with("text/") || kind.contains("json") || kind.contains("svg");
        let gzip = if compressible {
            let bytes = std::fs::read(path).expect("read asset");
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&bytes).expect("gzip");
            let zipped = out.join(format!("asset-{index}.gz"));
            std::fs::write(&zipped, encoder.finish().expect("gzip")).expect("write gzip");
            format!("Some(include_bytes!({:?}))", zipped.display().to_string())
        } else {
            "None".to_owned()
        };
        let _ = writeln!(
            code,
            "    Asset {{ path: {relative:?}, kind: {kind:?}, bytes: include_bytes!({:?}), gzip: {gzip} }},",
            path.canonicalize()
                .expect("asset path")
                .display()
                .to_string()
        );
    }
    code.push_str("];\n");
    let _ = writeln!(
        code,
        "/// Why the UI is missing from this build, when it is.\npub static UI_PROBLEM: Option<&str> = {problem:?};"
    );
    std::fs::write(out.join("ui_assets.rs"), code).expect("write ui_assets.rs");
}
