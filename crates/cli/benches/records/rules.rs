//! The rule-evaluation section of the records bench: a 10-condition lead-scoring rule through rhai,
//! the native path, `trellis_rules::evaluate`, typed columns, and zen-engine as the peer baseline.

use std::time::Instant;

use serde_json::{Value, json};

use super::{customer, customer_bundle};

/// A 10-condition lead-scoring rule (`trellis_rules::evaluate`: condition, one `=expression` set,
/// trace) over 200,000 records, against the same expression evaluated with the rhai engine directly.
pub fn rule_evaluations() {
    const RECORDS: usize = 200_000;
    let expression = "(if score > 50 { 10 } else { 0 }) + (if health > 70 { 10 } else { 0 }) + (if orders > 10 { 10 } else { 0 }) \
        + (if ltv > 5000.0 { 10 } else { 0 }) + (if vip { 10 } else { 0 }) + (if region == \"north\" { 5 } else { 0 }) \
        + (if stage == \"growth\" { 5 } else { 0 }) + (if nps >= 9 { 10 } else { 0 }) + (if source == \"web\" { 5 } else { 0 }) \
        + (if segment == \"smb\" { 5 } else { 0 })";
    let mut bundle = customer_bundle();
    bundle["rules/lead_score.rule.json"] = json!({
        "format_version": 1, "id": "lead_score", "entity": "customer", "trigger": {"manual": {}},
        "condition": "score != ()", "actions": [{"set": {"health": format!("={expression}")}}]
    });
    let raw = trellis_model::RawBundle(bundle.as_object().unwrap().clone());
    let checked = trellis_model::check_bundle(&raw).unwrap();
    let (rules, problems) = trellis_rules::check_rules(&checked);
    assert!(problems.is_empty(), "{problems:?}");
    let rule = &rules["lead_score"];
    let records: Vec<serde_json::Map<String, Value>> = (0..1000)
        .map(|i| customer(i).as_object().unwrap().clone())
        .collect();
    let start = Instant::now();
    let mut matched = 0usize;
    for i in 0..RECORDS {
        let evaluation = trellis_rules::evaluate(rule, &records[i % records.len()], None).unwrap();
        matched += usize::from(evaluation.matched);
    }
    let rule_rate = RECORDS as f64 / start.elapsed().as_secs_f64();
    assert_eq!(matched, RECORDS);
    let script = trellis_script::compile(expression).unwrap();
    assert!(script.is_native());
    let start = Instant::now();
    for i in 0..RECORDS {
        std::hint::black_box(
            script
                .eval_with_rhai(&records[i % records.len()], &[])
                .unwrap(),
        );
    }
    let raw_rate = RECORDS as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    for i in 0..RECORDS {
        std::hint::black_box(script.eval(&records[i % records.len()], &[]).unwrap());
    }
    let native_rate = RECORDS as f64 / start.elapsed().as_secs_f64();
    println!(
        "\n| 10-condition lead-scoring rule, {RECORDS} evaluations on one core | evaluations/s |"
    );
    println!("|---|---|");
    println!(
        "| baseline: the scoring expression through rhai directly (compiled once) | {raw_rate:.0} |"
    );
    println!(
        "| Trellis: the scoring expression alone, `Script::eval` (native) | {native_rate:.0} (ratio {:.2}) |",
        native_rate / raw_rate
    );
    println!(
        "| Trellis: `trellis_rules::evaluate` (condition + set expression + trace) | {rule_rate:.0} (ratio {:.2}) |",
        rule_rate / raw_rate
    );
    // Batch runs over typed columns (the column cache's form): the condition and the scoring
    // expression over 1,000,000 customers, one pass per node, on one core.
    const BATCH: usize = 1_000_000;
    let regions = ["north", "south", "east", "west"];
    let stages = ["acquisition", "growth", "maturity", "decline", "churned"];
    let ints =
        |f: &dyn Fn(usize) -> i64| -> Vec<Option<i64>> { (0..BATCH).map(|i| Some(f(i))).collect() };
    let score = ints(&|i| (i % 101) as i64);
    let health = ints(&|i| ((i * 7) % 101) as i64);
    let orders = ints(&|i| (i % 50) as i64);
    let nps = ints(&|i| (i % 11) as i64);
    let ltv: Vec<Option<f64>> = (0..BATCH).map(|i| Some((i % 10000) as f64 * 1.5)).collect();
    let vip: Vec<Option<bool>> = (0..BATCH).map(|i| Some(i.is_multiple_of(10))).collect();
    let dict = |values: &[&str], f: &dyn Fn(usize) -> u32| {
        (
            (0..BATCH).map(|i| Some(f(i))).collect::<Vec<Option<u32>>>(),
            values
                .iter()
                .map(|v| (*v).to_owned())
                .collect::<Vec<String>>(),
        )
    };
    let region = dict(&regions, &|i| (i % 4) as u32);
    let stage = dict(&stages, &|i| (i % 5) as u32);
    let source = dict(&["web"], &|_| 0);
    let segment = dict(&["smb"], &|_| 0);
    // A batch run reads pages: the columns of rows `page`.
    let column = |name: &str,
                  page: std::ops::Range<usize>|
     -> Option<trellis_script::native::ColumnRef<'_>> {
        use trellis_script::native::ColumnRef as C;
        Some(match name {
            "score" => C::Int(&score[page]),
            "health" => C::Int(&health[page]),
            "orders" => C::Int(&orders[page]),
            "nps" => C::Int(&nps[page]),
            "ltv" => C::Float(&ltv[page]),
            "vip" => C::Bool(&vip[page]),
            "region" => C::Dict {
                codes: &region.0[page],
                values: &region.1,
            },
            "stage" => C::Dict {
                codes: &stage.0[page],
                values: &stage.1,
            },
            "source" => C::Dict {
                codes: &source.0[page],
                values: &source.1,
            },
            "segment" => C::Dict {
                codes: &segment.0[page],
                values: &segment.1,
            },
            _ => return None,
        })
    };
    let condition = trellis_script::native::NativeExpr::compile("score != ()").unwrap();
    let scoring = trellis_script::native::NativeExpr::compile(expression).unwrap();
    const PAGE: usize = 2000;
    let start = Instant::now();
    let (mut matched, mut scores) = (Vec::new(), Vec::new());
    for first in (0..BATCH).step_by(PAGE) {
        let page = first..(first + PAGE).min(BATCH);
        let rows = page.len();
        let holds = condition
            .eval_columns(|n| column(n, page.clone()), rows)
            .unwrap();
        let values = scoring
            .eval_columns(|n| column(n, page.clone()), rows)
            .unwrap();
        // Keep a sample to check against rhai (a batch run hands each page on to the writer).
        if first % (PAGE * 50) == 0 {
            matched.push((first, holds[0].clone()));
            scores.push((first, values[0].clone()));
        }
    }
    let columnar_rate = BATCH as f64 / start.elapsed().as_secs_f64();
    // The same answers as one record at a time.
    for ((i, matched), (_, score)) in matched.iter().zip(&scores) {
        let i = *i;
        let record = customer(i);
        let record = record.as_object().unwrap();
        assert_eq!(matched.as_ref(), Some(&json!(true)));
        assert_eq!(
            score.as_ref(),
            Some(&script.eval_with_rhai(record, &[]).unwrap()),
            "row {i}"
        );
    }
    println!(
        "| Trellis: batch over typed columns, condition + scoring expression, {BATCH} records in pages of {PAGE} (`NativeExpr::eval_columns`) | {columnar_rate:.0} records/s (ratio {:.1}) |",
        columnar_rate / raw_rate
    );
    // The peer baseline in the same run: zen-engine (its Python binding) with the same expression
    // and customers, when TRELLIS_BENCH_ZEN_PYTHON names a Python that has `zen-engine` installed.
    if let Ok(python) = std::env::var("TRELLIS_BENCH_ZEN_PYTHON") {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/zen_rules.py");
        match std::process::Command::new(&python)
            .arg(&script)
            .arg(RECORDS.to_string())
            .output()
        {
            Ok(output) if output.status.success() => {
                print!("{}", String::from_utf8_lossy(&output.stdout));
            }
            Ok(output) => println!(
                "| zen-engine baseline failed: {} |",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => println!("| zen-engine baseline: cannot run {python}: {error} |"),
        }
    }
}
