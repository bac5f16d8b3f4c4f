//! A real PostgreSQL for tests: `TRELLIS_TEST_PG_URL` if set, otherwise a throw-away cluster made with
//! the system's `initdb` and `pg_ctl` (run as the `postgres` user when the tests run as root), stopped
//! and deleted when the test process exits. Each test gets its own database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sqlx::Connection;

static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static CLUSTER_DIR: OnceLock<PathBuf> = OnceLock::new();

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// URL of a server the tests may create databases on.
fn server_url() -> Option<String> {
    let result = SERVER.get_or_init(|| match std::env::var("TRELLIS_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => start_cluster(),
    });
    match result {
        Ok(url) => Some(url.clone()),
        Err(reason) if in_ci() => panic!("CI=true and PostgreSQL is unavailable: {reason}"),
        Err(reason) => {
            eprintln!("SKIPPING PostgreSQL test (set CI=true to make this a failure): {reason}");
            None
        }
    }
}

/// A new, empty database on the test server; returns its URL.
pub async fn fresh_database() -> Option<String> {
    let server = server_url()?;
    let name = format!("trellis_test_{}", uuid::Uuid::new_v4().simple());
    let mut connection = sqlx::PgConnection::connect(&server)
        .await
        .expect("connect to test PostgreSQL");
    // `name` is built from a UUID above, never from input: safe as an identifier.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut connection)
        .await
        .expect("create test database");
    connection.close().await.ok();
    let base = server
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&server);
    Some(format!("{base}/{name}"))
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").is_file())
        .ok_or_else(|| {
            "no initdb found on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
                .into()
        })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Run a PostgreSQL program, as `postgres` when we are root (initdb refuses to run as root).
fn run_pg(bin: &Path, program: &str, args: &[&str], as_postgres: bool) -> Result<(), String> {
    let mut command = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(program));
        c
    } else {
        Command::new(bin.join(program))
    };
    let output = command
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn start_cluster() -> Result<String, String> {
    let bin = find_bin_dir()?;
    let as_postgres = running_as_root();
    let root = std::env::temp_dir().join(format!("trellis-test-pg-{}", std::process::id()));
    let data = root.join("data");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    if as_postgres {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&root)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return Err(format!("cannot chown {} to postgres", root.display()));
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let data_arg = data.to_string_lossy().into_owned();
    run_pg(
        &bin,
        "initdb",
        &[
            "-D",
            &data_arg,
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        as_postgres,
    )?;
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
        root.display()
    );
    let log = root.join("postgres.log").to_string_lossy().into_owned();
    run_pg(
        &bin,
        "pg_ctl",
        &[
            "-D", &data_arg, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
        ],
        as_postgres,
    )?;
    CLUSTER_DIR.set(root).ok();
    register_stop(bin, as_postgres);
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

static STOP: OnceLock<(PathBuf, bool)> = OnceLock::new();

extern "C" fn stop_cluster() {
    if let (Some((bin, as_postgres)), Some(root)) = (STOP.get(), CLUSTER_DIR.get()) {
        let data = root.join("data").to_string_lossy().into_owned();
        run_pg(
            bin,
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "stop"],
            *as_postgres,
        )
        .ok();
        std::fs::remove_dir_all(root).ok();
    }
}

#[allow(unsafe_code)]
fn register_stop(bin: PathBuf, as_postgres: bool) {
    STOP.set((bin, as_postgres)).ok();
    // SAFETY: `stop_cluster` is a plain `extern "C" fn` with no arguments, as atexit requires; the test
    // harness leaves through `exit`, which runs it once.
    unsafe {
        libc::atexit(stop_cluster);
    }
}
