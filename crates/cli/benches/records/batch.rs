//! The batch-run section of the records bench: `Runtime::run_rule` over every customer for a rule whose
//! condition compiles natively (pre-filtered over the column cache, cold and warm), against the same
//! condition as a rhai script, which is evaluated record by record — in the same run, on one SQLite
//! file filled through the import (the run is measured, not the import).

use std::time::Instant;

use serde_json::json;
use trellis_runtime::{Principal, Runtime, RuntimeSettings};

use super::{customer, customer_bundle};

const CONDITION: &str = "score == 100 && vip == true && region == \"north\"";

pub fn batch_runs(tokio: &tokio::runtime::Runtime, dir: &std::path::Path, records: usize) {
    let path = dir.join("batch.db");
    let url = format!("sqlite://{}", path.display());
    let admin = Principal::system("bench", "bench");
    let mut bundle = customer_bundle();
    bundle["rules/flag_rare.rule.json"] = json!({"format_version": 1, "id": "flag_rare",
        "entity": "customer", "trigger": {"manual": {}}, "condition": CONDITION,
        "actions": [{"set": {"segment": "flagged"}}]});
    bundle["rules/flag_rare_rhai.rule.json"] = json!({"format_version": 1, "id": "flag_rare_rhai",
        "entity": "customer", "trigger": {"manual": {}}, "actions": [{"set": {"segment": "flagged"}}]});
    // An array index is beyond the native path: the whole script stays with rhai.
    let rhai_condition = format!("let s = [score][0]; {}", CONDITION.replace("score", "s"));
    assert!(
        trellis_script::compile(&rhai_condition)
            .unwrap()
            .native_fields()
            .is_none(),
        "the baseline's condition must not run natively"
    );
    bundle["rules/flag_rare_rhai.rhai"] = json!(rhai_condition);
    let trellis = tokio.block_on(async {
        let trellis = Runtime::connect(&url, RuntimeSettings::default())
            .await
            .unwrap();
        let raw: trellis_model::RawBundle = serde_json::from_value(bundle).unwrap();
        trellis.create_app(&admin, &raw, false).await.unwrap();
        trellis
    });
    // Through the import (history, search index: what later updates expect), in slices.
    tokio.block_on(async {
        for slice in (0..records).collect::<Vec<_>>().chunks(200_000) {
            let ndjson: String = slice
                .iter()
                .map(|i| customer(*i).to_string() + "\n")
                .collect();
            let report = super::import_customers(&trellis, &admin, ndjson).await;
            assert_eq!(report.inserted, slice.len());
        }
    });
    let expected = (0..records)
        .filter(|i| i % 101 == 100 && i % 10 == 0 && i % 4 == 0)
        .count();
    let run = |rule: &str| {
        tokio.block_on(async {
            let start = Instant::now();
            let outcome = trellis.run_rule(&admin, "bench", rule).await.unwrap();
            assert_eq!((outcome.processed, outcome.matched), (records, expected));
            (start.elapsed().as_secs_f64(), outcome.changed)
        })
    };
    // The record-by-record baseline first: it flags the matching customers, so every later run
    // changes nothing and measures reading and deciding alone.
    let (rhai_seconds, changed) = run("flag_rare_rhai");
    assert_eq!(changed, expected);
    let (cold_seconds, _) = run("flag_rare");
    let mut warm: Vec<f64> = (0..5).map(|_| run("flag_rare").0).collect();
    warm.sort_by(f64::total_cmp);
    let warm_seconds = warm[warm.len() / 2];
    let rate = |seconds: f64| records as f64 / seconds;
    println!("\n| batch run over {records} customers, {expected} matching | seconds | records/s |");
    println!("|---|---|---|");
    println!(
        "| baseline: condition as a rhai script, every record read and evaluated | {rhai_seconds:.3} | {:.0} |",
        rate(rhai_seconds)
    );
    println!(
        "| native condition, pre-filtered over columns, cold (columns loaded) | {cold_seconds:.3} | {:.0} |",
        rate(cold_seconds)
    );
    println!(
        "| native condition, pre-filtered, warm column cache (median of 5) | {warm_seconds:.3} | {:.0} (×{:.0} the baseline) |",
        rate(warm_seconds),
        rhai_seconds / warm_seconds
    );
}
