//! Architecture invariants (ARCHITECTURE.md), checked from `cargo metadata`:
//! engines never depend (even transitively) on IO crates or on anything in `crates/`; only `store`
//! speaks SQL and only `server` speaks HTTP; polars stays inside the report engine.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Crates that do IO or belong to the shell; no engine may depend on them, even transitively.
const FORBIDDEN_IN_ENGINES: &[&str] = &[
    "sqlx",
    "sqlx-core",
    "sqlx-sqlite",
    "sqlx-postgres",
    "rusqlite",
    "libsqlite3-sys",
    "axum",
    "axum-core",
    "hyper",
    "tower",
    "tower-http",
    "tokio",
    "reqwest",
    "mio",
    "trellis-store",
    "trellis-runtime",
    "trellis-server",
    "trellis-cli",
];

struct Workspace {
    /// package id → (name, manifest path)
    packages: BTreeMap<String, (String, String)>,
    /// package id → normal (non-dev, non-build) dependency ids
    normal_deps: BTreeMap<String, Vec<String>>,
    members: Vec<String>,
}

fn workspace() -> &'static Workspace {
    static WORKSPACE: std::sync::OnceLock<Workspace> = std::sync::OnceLock::new();
    WORKSPACE.get_or_init(read_workspace)
}

fn host_triple() -> String {
    let cargo = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = std::process::Command::new(cargo)
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

fn read_workspace() -> Workspace {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--filter-platform",
            &host_triple(),
            "--manifest-path",
            root,
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
    let packages = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let id = p["id"].as_str().unwrap().to_owned();
            (
                id,
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["manifest_path"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let normal_deps = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|dep| dep["pkg"].as_str().unwrap().to_owned())
                .collect();
            (node["id"].as_str().unwrap().to_owned(), deps)
        })
        .collect();
    let members = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    Workspace {
        packages,
        normal_deps,
        members,
    }
}

impl Workspace {
    fn name(&self, id: &str) -> &str {
        &self.packages[id].0
    }

    fn member(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|id| self.name(id) == name)
            .unwrap_or_else(|| panic!("no workspace member {name}"))
    }

    /// Names of every crate `id` depends on through normal dependencies.
    fn transitive(&self, id: &str) -> BTreeSet<String> {
        self.transitive_except(id, |_| false)
    }

    /// Like [`Self::transitive`], without walking into crates for which `skip` holds.
    fn transitive_except(&self, id: &str, skip: impl Fn(&str) -> bool) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.to_owned()];
        while let Some(next) = stack.pop() {
            for dep in self.normal_deps.get(&next).into_iter().flatten() {
                if skip(self.name(dep)) {
                    continue;
                }
                if seen.insert(self.name(dep).to_owned()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen
    }

    fn direct(&self, name: &str) -> BTreeSet<String> {
        self.normal_deps[self.member(name)]
            .iter()
            .map(|d| self.name(d).to_owned())
            .collect()
    }
}

#[test]
fn engines_are_pure_and_never_depend_on_crates() {
    let ws = workspace();
    let engines: Vec<&String> = ws
        .members
        .iter()
        .filter(|id| ws.packages[*id].1.contains("/engines/"))
        .collect();
    assert!(
        engines.len() >= 6,
        "expected model, script, form, flow, rules and report engines"
    );
    let mut violations = Vec::new();
    for id in engines {
        let deps = ws.transitive(id);
        // polars runs its own thread pool on tokio internally (polars-core → polars-async); that is
        // polars' executor, not IO by the engine. Everything the engine reaches *besides* polars must
        // still be free of tokio, and polars itself must never bring SQL or HTTP.
        let without_polars = ws.transitive_except(id, |name| name.starts_with("polars"));
        for forbidden in FORBIDDEN_IN_ENGINES {
            let polars_executor = matches!(*forbidden, "tokio" | "mio");
            let reached = if polars_executor {
                without_polars.contains(*forbidden)
            } else {
                deps.contains(*forbidden)
            };
            if reached {
                violations.push(format!("{} depends on {forbidden}", ws.name(id)));
            }
        }
        if ws.name(id) != "trellis-report" && deps.iter().any(|d| d.starts_with("polars")) {
            violations.push(format!(
                "{} depends on polars (only trellis-report may)",
                ws.name(id)
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "architecture invariants broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn model_is_the_bottom_layer() {
    let ws = workspace();
    let deps = ws.transitive(ws.member("trellis-model"));
    let trellis: Vec<&String> = deps.iter().filter(|d| d.starts_with("trellis-")).collect();
    assert!(
        trellis.is_empty(),
        "trellis-model must not depend on other Trellis crates: {trellis:?}"
    );
}

#[test]
fn only_store_speaks_sql_and_only_server_speaks_http() {
    let ws = workspace();
    for id in &ws.members {
        let name = ws.name(id);
        let direct = ws.direct(name);
        if name != "trellis-store" {
            assert!(
                !direct
                    .iter()
                    .any(|d| d.starts_with("sqlx") || d == "rusqlite"),
                "{name} uses SQL directly"
            );
        }
        if name != "trellis-server" {
            assert!(!direct.contains("axum"), "{name} uses axum directly");
        }
    }
}

/// Every `.ts`/`.tsx` file under `dir`, with its text.
fn ui_sources(dir: &std::path::Path, found: &mut Vec<(std::path::PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            ui_sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "ts" || e == "tsx")
            && !path.to_string_lossy().ends_with(".d.ts")
        {
            found.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn the_ui_talks_to_the_server_only_through_the_api() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../builder-ui/src");
    let mut files = Vec::new();
    ui_sources(&src, &mut files);
    assert!(files.len() > 20, "builder-ui/src has the UI");
    for (path, text) in &files {
        for (number, line) in text.lines().enumerate() {
            let place = format!("{}:{}", path.display(), number + 1);
            // No server address baked in: the UI is served by the server it talks to.
            let address = line.contains("http://") || line.contains("https://");
            assert!(
                !address || line.contains("https://json-schema.org/"),
                "{place}: a hard-coded address: {line}"
            );
            // Raw fetches go to /api only (everything else uses the API client).
            let raw_fetch = line.match_indices("fetch(").find(|(at, _)| {
                !line[..*at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            });
            if let Some((at, _)) = raw_fetch {
                let argument = &line[at + 6..];
                assert!(
                    argument.starts_with("`/api/")
                        || argument.starts_with("'/api/")
                        || argument.starts_with("url,"),
                    "{place}: fetch outside /api: {line}"
                );
            }
        }
    }
    // The API's TypeScript types are generated from the OpenAPI document, not written by hand.
    let package = std::fs::read_to_string(src.join("../package.json")).unwrap();
    // (Generated beside node_modules and copied into src only when it changed, so an unchanged
    // schema does not make cargo rebuild the server.)
    assert!(
        package.contains(
            "openapi-typescript ../schemas/openapi.json -o node_modules/.api-schema.d.ts"
        ) && package
            .contains("copy-if-changed.mjs node_modules/.api-schema.d.ts src/api/schema.d.ts"),
        "{package}"
    );
    let ignored = std::fs::read_to_string(src.join("../.gitignore")).unwrap();
    assert!(
        ignored.contains("src/api/schema.d.ts"),
        "generated, so not committed"
    );
}
