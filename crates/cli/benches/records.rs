//! Records benchmarks, each beside its baseline in the same run (medians; machines here are noisy):
//!
//! 1. validating a 20-field customer with a cached validator vs. serde_json parsing the same record;
//! 2. bulk import of ROWS customers into SQLite through `Runtime::import_records` (parse, validate,
//!    multi-row insert with history) vs. a raw prepared rusqlite INSERT of the same rows in one
//!    transaction;
//! 3. loading one numeric column of all rows back (the report engine's access path) from the JSON
//!    documents vs. from a plain typed column.
//!
//! Run: `cargo bench -p trellis-cli --bench records -- 1000000` (default 200000 rows).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_form::{EntityValidator, Locale};
use trellis_runtime::import::ImportFormat;
use trellis_runtime::{Principal, Runtime, RuntimeSettings};

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}

/// Run `f` `per_sample` times per sample, `samples` times; median nanoseconds per call.
fn time_per_call(samples: usize, per_sample: usize, mut f: impl FnMut()) -> f64 {
    let mut results = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        for _ in 0..per_sample {
            f();
        }
        results.push(start.elapsed().as_nanos() as f64 / per_sample as f64);
    }
    median(results)
}

fn customer_bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "bench", "version": "1.0.0", "name": {"en": "Bench", "zh-CN": "基准"}},
        "entities/customer.schema.json": {
            "type": "object",
            "x-trellis": {"format_version": 1},
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "email": {"type": "string", "format": "email"},
                "phone": {"type": "string", "x-trellis": {"kind": "phone"}},
                "company": {"type": "string", "maxLength": 100},
                "region": {"type": "string", "enum": ["north", "south", "east", "west"]},
                "city": {"type": "string"},
                "stage": {"type": "string", "enum": ["acquisition", "growth", "maturity", "decline", "churned"]},
                "segment": {"type": "string"},
                "score": {"type": "integer", "minimum": 0, "maximum": 100},
                "health": {"type": "integer", "minimum": 0, "maximum": 100},
                "ltv": {"type": "number", "minimum": 0},
                "orders": {"type": "integer", "minimum": 0},
                "joined_on": {"type": "string", "format": "date"},
                "last_order_on": {"type": "string", "format": "date"},
                "vip": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "source": {"type": "string"},
                "owner": {"type": "string"},
                "notes": {"type": "string", "x-trellis": {"kind": "long_text"}},
                "nps": {"type": "integer", "minimum": 0, "maximum": 10}
            },
            "required": ["name"]
        }
    })
}

fn customer(i: usize) -> Value {
    let regions = ["north", "south", "east", "west"];
    let stages = ["acquisition", "growth", "maturity", "decline", "churned"];
    json!({
        "name": format!("Customer {i}"), "email": format!("c{i}@example.com"), "phone": format!("+86 138 {:04} {:04}", i % 10000, (i / 7) % 10000),
        "company": format!("Company {}", i % 5000), "region": regions[i % 4], "city": "Shanghai", "stage": stages[i % 5],
        "segment": "smb", "score": i % 101, "health": (i * 7) % 101, "ltv": (i % 10000) as f64 * 1.5, "orders": i % 50,
        "joined_on": format!("2024-{:02}-{:02}", i % 12 + 1, i % 28 + 1), "last_order_on": "2025-06-01", "vip": i.is_multiple_of(10),
        "tags": ["a", "b"], "source": "web", "owner": "u1", "notes": "prefers email", "nps": i % 11
    })
}

// The rule-evaluation section (rhai, native, columnar, zen-engine) lives beside this file.
#[path = "records/rules.rs"]
mod rules;
use rules::rule_evaluations;
// The batch-run section (pre-filtered native conditions against record-by-record rhai).
#[path = "records/batch.rs"]
mod batch;

/// Import `ndjson` rows into the bench app's customers as `admin`, through the import (history,
/// search index), without progress output.
async fn import_customers(
    trellis: &Runtime,
    admin: &Principal,
    ndjson: String,
) -> trellis_runtime::import::ImportReport {
    trellis
        .import_records(
            admin,
            "bench",
            "customer",
            ImportFormat::Ndjson,
            bytes::Bytes::from(ndjson),
            false,
            Locale::En,
            &|_, _| {},
        )
        .await
        .unwrap()
}

/// The same allocator as the `trellis` binary, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if std::env::var("TRELLIS_BENCH_LOG").is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter(std::env::var("TRELLIS_BENCH_LOG").unwrap())
            .init();
    }
    // The program path never parses as a number, so the first numeric argument is the row count.
    let rows: usize = std::env::args()
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!(
        "machine: {} cores, {cpu}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // `-- transitions`: only the flow-transition section (SQLite; PostgreSQL too with
    // TRELLIS_BENCH_PG_URL).
    // `-- rules`: only the rule-evaluation section.
    if std::env::args().any(|a| a == "rules") {
        rule_evaluations();
        return;
    }
    // `-- batch`: only the batch-run section (ROWS customers).
    if std::env::args().any(|a| a == "batch") {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        batch::batch_runs(&runtime, dir.path(), rows);
        return;
    }
    // `-- timers`: only the due-timer section.
    if std::env::args().any(|a| a == "timers") {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        timer_scan(&runtime, dir.path());
        return;
    }
    if std::env::args().any(|a| a == "transitions") {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        transitions(&runtime, dir.path());
        if let Ok(pg_url) = std::env::var("TRELLIS_BENCH_PG_URL") {
            postgres_transitions(&runtime, &pg_url, dir.path());
        }
        return;
    }

    // 1. Validation vs. parsing.
    let raw = trellis_model::RawBundle(customer_bundle().as_object().unwrap().clone());
    let bundle = trellis_model::check_bundle(&raw).unwrap();
    let entity = bundle.entities.values().next().unwrap();
    let validator = EntityValidator::compile(entity).unwrap();
    let record = customer(42);
    let text = record.to_string();
    let object = record.as_object().unwrap().clone();
    assert!(validator.validate(&object, Locale::En).is_empty());
    let parse = time_per_call(31, 20_000, || {
        std::hint::black_box(serde_json::from_str::<Value>(std::hint::black_box(&text)).unwrap());
    });
    let validate = time_per_call(31, 20_000, || {
        std::hint::black_box(validator.validate_value(std::hint::black_box(&record), Locale::En));
    });
    println!(
        "\n| validation of a 20-field record ({} bytes) | median |",
        text.len()
    );
    println!("|---|---|");
    println!("| baseline: serde_json parse | {:.2} µs |", parse / 1000.0);
    println!(
        "| Trellis: cached validator | {:.2} µs (ratio {:.2}× the parse) |",
        validate / 1000.0,
        validate / parse
    );

    // 2. Import vs. raw prepared INSERT.
    let dir = tempfile::tempdir().unwrap();
    let mut ndjson = String::with_capacity(rows * 500);
    for i in 0..rows {
        ndjson.push_str(&customer(i).to_string());
        ndjson.push('\n');
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("trellis.db").display());
    let (import_seconds, indexing_seconds) = timed_import(&runtime, &url, &raw, &ndjson, rows);

    let baseline_path = dir.path().join("baseline.db");
    let connection = rusqlite::Connection::open(&baseline_path).unwrap();
    connection.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE records (id TEXT PRIMARY KEY, data TEXT NOT NULL, score INTEGER);").unwrap();
    let documents: Vec<String> = ndjson.lines().map(str::to_owned).collect();
    let start = Instant::now();
    {
        let mut connection = connection;
        let tx = connection.transaction().unwrap();
        {
            let mut insert = tx
                .prepare("INSERT INTO records (id, data, score) VALUES (?1, ?2, ?3)")
                .unwrap();
            for (i, document) in documents.iter().enumerate() {
                insert
                    .execute(rusqlite::params![
                        format!("{i:012}"),
                        document,
                        (i % 101) as i64
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let baseline_seconds = start.elapsed();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("\n| bulk import of {rows} customers into SQLite | time | rows/s |");
    println!("|---|---|---|");
    println!(
        "| baseline: raw prepared INSERT, one transaction (rusqlite) | {:.2} s | {:.0} |",
        baseline_seconds.as_secs_f64(),
        rate(baseline_seconds)
    );
    println!(
        "| Trellis: import (parse, validate, insert + history; search index after) | {:.2} s | {:.0} (ratio {:.2}) |",
        import_seconds.as_secs_f64(),
        rate(import_seconds),
        rate(import_seconds) / rate(baseline_seconds)
    );
    let searchable = import_seconds + indexing_seconds;
    println!(
        "| Trellis: … then the search indexer over the imported rows | {:.2} s (all searchable after {:.2} s) | {:.0} (ratio {:.2}) |",
        indexing_seconds.as_secs_f64(),
        searchable.as_secs_f64(),
        rate(searchable),
        rate(searchable) / rate(baseline_seconds)
    );

    // 3. Column load: the JSON document path vs. a typed column.
    let trellis_db = rusqlite::Connection::open(dir.path().join("trellis.db")).unwrap();
    let baseline_db = rusqlite::Connection::open(&baseline_path).unwrap();
    let load = |db: &rusqlite::Connection, sql: &str| {
        let samples: Vec<f64> = (0..5)
            .map(|_| {
                let start = Instant::now();
                let mut statement = db.prepare(sql).unwrap();
                let column: Vec<i64> = statement
                    .query_map([], |row| row.get::<_, Option<i64>>(0))
                    .unwrap()
                    .map(|v| v.unwrap().unwrap_or(0))
                    .collect();
                assert_eq!(column.len(), rows);
                rows as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        median(samples)
    };
    let typed = load(&baseline_db, "SELECT score FROM records");
    let json_path = load(
        &trellis_db,
        "SELECT json_extract(data, '$.\"score\"') FROM records WHERE entity = 'customer' AND deleted_at IS NULL",
    );
    println!("\n| loading one numeric column of {rows} rows | rows/s |");
    println!("|---|---|");
    println!("| baseline: typed INTEGER column | {typed:.0} |");
    println!(
        "| Trellis: json_extract from the record documents | {json_path:.0} (ratio {:.2}) |",
        json_path / typed
    );

    // `-- import`: stop after the imports (and PostgreSQL's, when a server is given).
    let imports_only = std::env::args().any(|a| a == "import");
    // 4. Persisted flow transitions vs. the raw SQL of one transition per transaction.
    if !imports_only {
        transitions(&runtime, dir.path());
        // 5. Finding due timers among 1 M pending ones.
        timer_scan(&runtime, dir.path());
        // 6. A 10-condition lead-scoring rule.
        rule_evaluations();
    }

    // 5. PostgreSQL: import vs. COPY with psql (only when a server is given; see pg_import.sh).
    if let Ok(pg_url) = std::env::var("TRELLIS_BENCH_PG_URL") {
        postgres_import(&runtime, &pg_url, &raw, &ndjson, rows, dir.path());
        postgres_search(&pg_url);
        if !imports_only {
            postgres_transitions(&runtime, &pg_url, dir.path());
        }
    }
}

/// Create the bench app in a fresh database at `url` and time importing `ndjson` into it.
fn timed_import(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    bundle: &trellis_model::RawBundle,
    ndjson: &str,
    rows: usize,
) -> (Duration, Duration) {
    runtime.block_on(async {
        let trellis = Runtime::connect(url, RuntimeSettings::default())
            .await
            .unwrap();
        let admin = Principal::system("bench", "bench");
        trellis.create_app(&admin, bundle, false).await.unwrap();
        let start = Instant::now();
        let report = import_customers(&trellis, &admin, ndjson.to_owned()).await;
        let elapsed = start.elapsed();
        assert_eq!(report.inserted, rows, "{:?}", report.rejected.first());
        // What the import left to the search indexer (SQLite), indexed as the scheduler does.
        let start = Instant::now();
        trellis
            .index_search_backlog(Duration::from_secs(3600))
            .await
            .unwrap();
        let indexing = start.elapsed();
        trellis.store().close().await;
        (elapsed, indexing)
    })
}

/// Import the same NDJSON into PostgreSQL through the runtime, then `\copy` the same documents into a
/// plain `(id, data jsonb)` table with psql.
fn postgres_import(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    bundle: &trellis_model::RawBundle,
    ndjson: &str,
    rows: usize,
    dir: &std::path::Path,
) {
    // PostgreSQL computes search vectors as it inserts: nothing is left to the search indexer.
    let (import_seconds, _) = timed_import(runtime, url, bundle, ndjson, rows);
    let csv_path = dir.join("copy.csv");
    let mut writer = csv::Writer::from_path(&csv_path).unwrap();
    for (i, document) in ndjson.lines().enumerate() {
        writer
            .write_record([format!("{i:012}").as_str(), document])
            .unwrap();
    }
    writer.flush().unwrap();
    let psql = |command: &str| {
        let status = std::process::Command::new("psql")
            .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", command])
            .status()
            .unwrap();
        assert!(status.success(), "psql failed: {command}");
    };
    psql("CREATE TABLE copy_baseline (id TEXT PRIMARY KEY, data JSONB NOT NULL)");
    let start = Instant::now();
    psql(&format!(
        "\\copy copy_baseline (id, data) FROM '{}' WITH (FORMAT csv)",
        csv_path.display()
    ));
    let copy_seconds = start.elapsed();
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("\n| bulk import of {rows} customers into PostgreSQL | time | rows/s |");
    println!("|---|---|---|");
    println!(
        "| baseline: COPY with psql into (id, data jsonb) | {:.2} s | {:.0} |",
        copy_seconds.as_secs_f64(),
        rate(copy_seconds)
    );
    println!(
        "| Trellis: import (parse, validate, insert + history + search vector) | {:.2} s | {:.0} (ratio {:.2}) |",
        import_seconds.as_secs_f64(),
        rate(import_seconds),
        rate(import_seconds) / rate(copy_seconds)
    );
}

/// Word search over the customers just imported into PostgreSQL: the condition Trellis sends since
/// migration 0025 (a `tsquery` over the search vector, which the GIN index serves) against the one
/// it sent before (the vector match OR-ed with `LIKE '%word%'`, which no index can serve), on the
/// same table in the same run, each timed as the median of 5 `EXPLAIN ANALYZE` execution times of
/// the count (`count=true`) and of the first page of a list (51 rows in id order).
fn postgres_search(url: &str) {
    let psql = |sql: &str| -> String {
        let output = std::process::Command::new("psql")
            .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap();
        assert!(output.status.success(), "psql failed: {sql}");
        String::from_utf8(output.stdout).unwrap()
    };
    let entity = psql("SELECT entity FROM records WHERE app_id = 'bench' LIMIT 1");
    let scope = format!(
        "r.app_id = 'bench' AND r.entity = '{}' AND r.deleted_at IS NULL",
        entity.trim()
    );
    let median_ms = |sql: &str| -> f64 {
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let plan: serde_json::Value =
                    serde_json::from_str(&psql(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}")))
                        .unwrap();
                plan[0]["Execution Time"].as_f64().unwrap()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[2]
    };
    println!(
        "\n| word search over the imported customers (PostgreSQL) | matches | before 0025: vector OR LIKE | since 0025: tsquery (GIN) | speed-up |"
    );
    println!("|---|---|---|---|---|");
    // (what is typed, the tsquery `push_search` sends for it)
    for (word, tsquery) in [
        ("c12345@example", "'c12345' <-> 'example':*"),
        ("4242", "'4242':*"),
        ("shanghai", "'shanghai':*"),
    ] {
        let before = format!(
            "(r.search_vector @@ phraseto_tsquery('simple', '{word}') OR r.search_text LIKE '%{word}%')"
        );
        let since = format!("r.search_vector @@ to_tsquery('simple', $q${tsquery}$q$)");
        let matches = psql(&format!(
            "SELECT count(*) FROM records r WHERE {scope} AND {since}"
        ));
        for (what, shape) in [
            (
                "count",
                "SELECT count(*) FROM records r WHERE {scope} AND {search}",
            ),
            (
                "first page",
                "SELECT r.id, r.data FROM records r WHERE {scope} AND {search} ORDER BY r.id LIMIT 51",
            ),
        ] {
            let query = |search: &str| shape.replace("{scope}", &scope).replace("{search}", search);
            let (old, new) = (median_ms(&query(&before)), median_ms(&query(&since)));
            println!(
                "| `{word}`, {what} | {} | {old:.1} ms | {new:.1} ms | {:.0}× |",
                matches.trim(),
                old / new
            );
        }
    }
}

/// Flow transitions through `Runtime::fire_event` from 16 concurrent clients, against the raw SQL of
/// one transition (CAS update of the record, a history row) per transaction with rusqlite, with
/// `synchronous=FULL` (fsync at every commit) and `NORMAL` (Trellis' setting: durable across process
/// crashes; WAL fsyncs at checkpoints).
///
/// 20,000 of each: at 4,000 (what this section ran until 2026-12-05) a run took 0.4 s, too short for a
/// steady figure on a noisy machine.
fn transitions(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) {
    const TOTAL: usize = 20_000;
    const CLIENTS: usize = 16;
    let url = format!("sqlite://{}", dir.join("flows.db").display());
    let seconds = timed_transitions(runtime, &url, TOTAL, CLIENTS);
    let raw = |synchronous: &str| {
        let path = dir.join(format!("raw-{synchronous}.db"));
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(&format!(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};
                 CREATE TABLE items (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL);
                 CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT, event TEXT, from_state TEXT, to_state TEXT, at TEXT);"
            ))
            .unwrap();
        for i in 0..CLIENTS {
            connection
                .execute(
                    "INSERT INTO items VALUES (?1, 1, '{\"side\":\"ping\"}')",
                    [format!("item{i}")],
                )
                .unwrap();
        }
        let start = Instant::now();
        for n in 0..TOTAL {
            let id = format!("item{}", n % CLIENTS);
            let version = 1 + (n / CLIENTS) as i64;
            let (from, to) = if (n / CLIENTS).is_multiple_of(2) {
                ("ping", "pong")
            } else {
                ("pong", "ping")
            };
            connection.execute_batch("BEGIN").unwrap();
            connection
                .execute(
                    "UPDATE items SET data = ?1, version = version + 1 WHERE id = ?2 AND version = ?3",
                    rusqlite::params![format!("{{\"side\":\"{to}\"}}"), id, version],
                )
                .unwrap();
            connection
                .execute(
                    "INSERT INTO history (record_id, event, from_state, to_state, at) VALUES (?1, 'hit', ?2, ?3, datetime('now'))",
                    rusqlite::params![id, from, to],
                )
                .unwrap();
            connection.execute_batch("COMMIT").unwrap();
        }
        TOTAL as f64 / start.elapsed().as_secs_f64()
    };
    let (full, normal) = (raw("FULL"), raw("NORMAL"));
    let trellis = TOTAL as f64 / seconds.as_secs_f64();
    println!("\n| {TOTAL} flow transitions on SQLite | transitions/s |");
    println!("|---|---|");
    println!(
        "| baseline: raw SQL, one transition per transaction, synchronous=FULL (fsync) | {full:.0} |"
    );
    println!("| baseline: the same, synchronous=NORMAL | {normal:.0} |");
    println!(
        "| Trellis: `fire_event` from {CLIENTS} concurrent clients (access check, guard, validation, record + history + flow history + change log in one transaction) | {trellis:.0} (ratio {:.2} to FULL, {:.2} to NORMAL) |",
        trellis / full,
        trellis / normal
    );
}

/// The scheduler's due-timer query over 1,000,000 pending timers (100 due), against the same query on
/// a copy of the table without the `(status, due_at)` index; and the claim the scheduler makes of them
/// (the same scan, plus leasing the due ones).
fn timer_scan(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) {
    const TIMERS: usize = 1_000_000;
    let path = dir.join("timers.db");
    let url = format!("sqlite://{}", path.display());
    let now = chrono::Utc::now();
    runtime.block_on(async {
        let trellis = Runtime::connect(&url, RuntimeSettings::default())
            .await
            .unwrap();
        trellis.store().close().await;
    });
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.execute_batch("BEGIN").unwrap();
    {
        let mut insert = connection
            .prepare("INSERT INTO flow_timers (id, app_id, flow, entity, record_id, state, event, due_at, status) VALUES (?1, 'a', 'f', 'e', ?1, 's', 'ev', ?2, 'pending')")
            .unwrap();
        for i in 0..TIMERS {
            // 100 due now, the rest spread over the next year.
            let due = if i < 100 {
                now - chrono::Duration::seconds(1)
            } else {
                now + chrono::Duration::seconds(60 + (i as i64 * 31) % 31_536_000)
            };
            insert
                .execute(rusqlite::params![
                    format!("t{i:07}"),
                    due.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
                ])
                .unwrap();
        }
    }
    connection
        .execute_batch("CREATE TABLE timers_unindexed AS SELECT * FROM flow_timers; COMMIT;")
        .unwrap();
    drop(connection);
    let (indexed, claimed, unindexed) = runtime.block_on(async {
        let store = trellis_store::Store::connect(&url).await.unwrap();
        let mut samples = Vec::new();
        for _ in 0..21 {
            let start = Instant::now();
            let due = store.due_timers(now, 200).await.unwrap();
            samples.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(due.len(), 100);
        }
        let mut claims = Vec::new();
        for _ in 0..21 {
            let start = Instant::now();
            let due = store
                .claim_due_timers(now, 200, chrono::Duration::seconds(60))
                .await
                .unwrap();
            claims.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(due.len(), 100);
            for timer in &due {
                store.release_timer(&timer.id).await.unwrap();
            }
        }
        store.close().await;
        let connection = rusqlite::Connection::open(&path).unwrap();
        let mut baseline = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let count = connection
                .prepare("SELECT id FROM timers_unindexed WHERE status = 'pending' AND due_at <= ?1 ORDER BY due_at LIMIT 200")
                .unwrap()
                .query_map([now.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)], |r| r.get::<_, String>(0))
                .unwrap()
                .count();
            baseline.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(count, 100);
        }
        (median(samples), median(claims), median(baseline))
    });
    println!("\n| due-timer scan, {TIMERS} pending timers (100 due) | median latency |");
    println!("|---|---|");
    println!(
        "| baseline: the same query without the (status, due_at) index (full scan) | {unindexed:.2} ms |"
    );
    println!(
        "| Trellis: `Store::due_timers` (sqlx, indexed) | {indexed:.2} ms (ratio {:.3}) |",
        indexed / unindexed
    );
    println!(
        "| Trellis: `Store::claim_due_timers` (what the scheduler runs: the scan plus leasing the 100 due, one fsynced commit) | {claimed:.2} ms (ratio {:.3}) |",
        claimed / unindexed
    );
}

/// The ping-pong app: one entity, one flow whose single event flips the state.
fn pingpong_bundle() -> trellis_model::RawBundle {
    trellis_model::RawBundle(
        json!({
            "trellis.json": {"format_version": 1, "id": "pingpong", "version": "1.0.0", "name": {"en": "Ping pong", "zh-CN": "乒乓"}},
            "entities/item.schema.json": {"type": "object", "x-trellis": {"format_version": 1},
                "properties": {"name": {"type": "string"}, "side": {"type": "string", "enum": ["ping", "pong"]}}},
            "flows/play.flow.json": {"format_version": 1, "id": "play", "entity": "item", "state_field": "side",
                "states": [{"id": "ping", "initial": true}, {"id": "pong"}],
                "transitions": [{"event": "hit", "from": ["ping"], "to": "pong"}, {"event": "hit", "from": ["pong"], "to": "ping"}]}
        })
        .as_object()
        .unwrap()
        .clone(),
    )
}

/// Fire `total` events from `clients` concurrent tasks (one record each) through the runtime at `url`.
fn timed_transitions(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    total: usize,
    clients: usize,
) -> Duration {
    runtime.block_on(async {
        let trellis = Runtime::connect(url, RuntimeSettings::default())
            .await
            .unwrap();
        let admin = Principal::system("bench", "bench");
        trellis
            .create_app(&admin, &pingpong_bundle(), false)
            .await
            .unwrap();
        let mut ids = Vec::new();
        for i in 0..clients {
            let record = trellis
                .create_record(
                    &admin,
                    "pingpong",
                    "item",
                    &json!({"name": format!("item {i}")}),
                    Locale::En,
                )
                .await
                .unwrap();
            ids.push(record.id);
        }
        let start = Instant::now();
        let mut tasks = Vec::new();
        for id in ids {
            let (trellis, admin) = (trellis.clone(), admin.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..total / clients {
                    trellis
                        .fire_event(
                            &admin,
                            "pingpong",
                            "item",
                            &id,
                            "play",
                            "hit",
                            &serde_json::Map::new(),
                            Locale::En,
                        )
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = start.elapsed();
        trellis.store().close().await;
        elapsed
    })
}

/// Flow transitions on PostgreSQL from 16 concurrent clients, against pgbench running the raw SQL of
/// one transition (update the record, insert a history row) per transaction from 16 clients.
fn postgres_transitions(runtime: &tokio::runtime::Runtime, url: &str, dir: &std::path::Path) {
    const TOTAL: usize = 4_000;
    const CLIENTS: usize = 16;
    let seconds = timed_transitions(runtime, url, TOTAL, CLIENTS);
    let psql = |command: &str| {
        let status = std::process::Command::new("psql")
            .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", command])
            .status()
            .unwrap();
        assert!(status.success(), "psql failed: {command}");
    };
    psql(
        "CREATE TABLE bench_items (id INT PRIMARY KEY, version BIGINT NOT NULL, data JSONB NOT NULL); \
          INSERT INTO bench_items SELECT g, 1, '{\"side\": \"ping\"}' FROM generate_series(0, 15) g; \
          CREATE TABLE bench_history (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, record_id INT, event TEXT, to_state TEXT, at TIMESTAMPTZ);",
    );
    let script = dir.join("transition.sql");
    std::fs::write(
        &script,
        "\\set id random(0, 15)\nBEGIN;\nUPDATE bench_items SET version = version + 1, data = jsonb_set(data, '{side}', '\"pong\"') WHERE id = :id;\n\
         INSERT INTO bench_history (record_id, event, to_state, at) VALUES (:id, 'hit', 'pong', now());\nCOMMIT;\n",
    )
    .unwrap();
    let pgbench = ["pgbench", "/usr/lib/postgresql/15/bin/pgbench"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok()
        })
        .expect("pgbench (apt-get install postgresql-client or postgresql)");
    let output = std::process::Command::new(pgbench)
        .args(["-n", "-c", "16", "-j", "2", "-T", "10", "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let tps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench said: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let trellis = TOTAL as f64 / seconds.as_secs_f64();
    println!("\n| flow transitions on PostgreSQL, {CLIENTS} clients | transitions/s |");
    println!("|---|---|");
    println!("| baseline: pgbench, the raw SQL of one transition per transaction | {tps:.0} |");
    println!(
        "| Trellis: `fire_event` | {trellis:.0} (ratio {:.2}) |",
        trellis / tps
    );
}
