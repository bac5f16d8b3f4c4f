//! The customer-base model (BG/NBD + Gamma-Gamma) as a report over an app's own transactions: the
//! CDNOW sample imported as raw purchases must reproduce the published estimates (Fader, Hardie & Lee
//! 2005): r = 0.243, α = 4.414, a = 0.793, b = 2.426 with log-likelihood −9582.4, and on the 946
//! repeat buyers p = 6.25, q = 3.74, γ = 15.44 — each within 1 %, the log-likelihood within 0.5.

use axum::http::StatusCode;
use serde_json::{Value, json};
use trellis_report::customer_base::math::{BgNbd, History};

use crate::support::api::TestApi;
use crate::support::{Backend, on_both_backends};

const CDNOW: &str = include_str!("../data/CDNOW_sample.txt");

/// The sample as NDJSON purchases: customer, day, amount.
fn cdnow_ndjson() -> String {
    let mut out = String::new();
    for line in CDNOW.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 5 {
            continue;
        }
        let day = parts[2];
        out.push_str(
            &json!({"customer": parts[1], "day": format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..]),
                    "amount": parts[4].parse::<f64>().unwrap()})
            .to_string(),
        );
        out.push('\n');
    }
    out
}

fn bundle() -> Value {
    json!({
        "trellis.json": {"format_version": 1, "id": "cdnow", "version": "1.0.0", "name": {"en": "CDNOW", "zh-CN": "CDNOW"}},
        "entities/purchase.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "customer": {"type": "string"},
                "day": {"type": "string", "format": "date"},
                "amount": {"type": "number"}
            }
        }
    })
}

fn close(actual: &Value, expected: f64, tolerance: f64, what: &str) {
    let actual = actual.as_f64().unwrap_or_else(|| panic!("{what} missing"));
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} is not within {tolerance} of {expected}"
    );
}

async fn cdnow_reproduces_the_published_estimates(backend: Backend) {
    let Some(api) = TestApi::start(backend).await else {
        return;
    };
    let created = api.call("POST", "/api/apps", Some(bundle())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let imported = api
        .post_text(
            "/api/apps/cdnow/entities/purchase/import",
            "application/x-ndjson",
            &cdnow_ndjson(),
        )
        .await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.text);
    assert_eq!(imported.body["inserted"], 6919, "{}", imported.text);

    let spec = |output: &str| {
        json!({"spec": {"dataset": {"entity": "purchase"}, "analysis": {"customer_base": {
            "subject": "customer", "date": "day", "amount": "amount",
            "calibration_end": "1997-09-30", "period": "week", "output": output}}}})
    };
    let model = api
        .call("POST", "/api/apps/cdnow/query", Some(spec("model")))
        .await;
    assert_eq!(model.status, StatusCode::OK, "{}", model.text);
    let estimates: std::collections::BTreeMap<String, Value> = model.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row[0].as_str().unwrap().to_owned(), row[1].clone()))
        .collect();
    assert_eq!(estimates["customers"], 2357, "{}", model.text);
    assert_eq!(estimates["repeat_customers"], 946, "{}", model.text);
    for (name, published) in [
        ("r", 0.243),
        ("alpha", 4.414),
        ("a", 0.793),
        ("b", 2.426),
        ("p", 6.25),
        ("q", 3.74),
        ("gamma", 15.44),
    ] {
        close(&estimates[name], published, published * 0.01, name);
    }
    close(&estimates["log_likelihood"], -9582.4, 0.5, "log-likelihood");

    // Per customer: P(alive), expected purchases and spend, CLV and a status from P(alive).
    let subjects = api
        .call("POST", "/api/apps/cdnow/query", Some(spec("subjects")))
        .await;
    assert_eq!(subjects.status, StatusCode::OK, "{}", subjects.text);
    let rows = subjects.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2357);
    let names: Vec<&str> = subjects.body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "customer",
            "repeat_purchases",
            "recency",
            "age",
            "p_alive",
            "expected_purchases",
            "expected_spend",
            "clv",
            "status"
        ]
    );
    for row in rows {
        let p_alive = row[4].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p_alive), "{row:?}");
        let status = row[8].as_str().unwrap();
        let expected_status = if p_alive < 0.3 {
            "churned"
        } else if p_alive < 0.5 {
            "at_risk"
        } else {
            "active"
        };
        assert_eq!(status, expected_status, "{row:?}");
        if row[1] == 0 {
            assert_eq!(p_alive, 1.0, "no repeat purchase: alive by the model");
        }
        assert!(row[7].as_f64().unwrap() >= 0.0, "{row:?}");
    }
    // A drill-down selects the customer's purchases.
    assert_eq!(
        subjects.body["drill"][0]["and"][0],
        json!({"field": "customer", "op": "eq", "value": rows[0][0]})
    );
    // An invalid spec is a 422 with pointers.
    let bad = api
        .call(
            "POST",
            "/api/apps/cdnow/query",
            Some(json!({"spec": {"dataset": {"entity": "purchase"}, "analysis": {"customer_base": {
                "subject": "customer", "date": "amount", "amount": "customer", "calibration_end": "soon"}}}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    let pointers: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    for pointer in [
        "/spec/analysis/customer_base/date",
        "/spec/analysis/customer_base/amount",
        "/spec/analysis/customer_base/calibration_end",
    ] {
        assert!(pointers.contains(&pointer), "{pointer} in {}", bad.text);
    }
}

on_both_backends!(cdnow_reproduces_the_published_estimates);

/// The conditional expectation (the paper's eq. 10) in f64 against the same formula evaluated with
/// 60-digit decimals (an independent Python implementation): with the published parameters, a
/// customer with x = 26 repeat purchases, the last at week 30.86 of 31.00 observed, is expected to
/// make 20.749726 purchases in the next 39 weeks. The hypergeometric term is about 3.4e8 there, so
/// this checks the series and the powers keep their precision (the engine evaluates the
/// hypergeometric function after Euler's transformation, where that factor cancels).
#[test]
fn conditional_expectation_matches_the_paper() {
    let model = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };
    let history = History {
        x: 26.0,
        t_x: 30.86,
        t: 31.0,
    };
    let expected = model.expected_purchases(&history, 39.0);
    assert!((expected - 20.749_726_140_857).abs() < 1e-6, "{expected}");
    // More histories against the same formula in 60-digit decimals (mpmath's hyp2f1): one-time
    // buyers just seen and long ago, an early frequent buyer (z near 1) and a very frequent one.
    for ((x, t_x, t), horizon, reference) in [
        ((0.0, 0.0, 0.5), 52.0, 1.348_887_978_745_740_8),
        ((0.0, 0.0, 38.5), 4.0, 0.022_335_917_518_636_235),
        ((3.0, 1.5, 2.0), 52.0, 9.027_715_392_556_86),
        ((60.0, 77.9, 78.0), 52.0, 30.750_688_450_299_7),
    ] {
        let expected = model.expected_purchases(&History { x, t_x, t }, horizon);
        assert!(
            ((expected - reference) / reference).abs() < 1e-10,
            "x {x}, t_x {t_x}, T {t}: {expected} against {reference}"
        );
    }
    let gone = History {
        x: 26.0,
        t_x: 10.0,
        t: 31.0,
    };
    assert!(model.p_alive(&gone) < model.p_alive(&history));
}

/// The fits sum their log-likelihoods grouped by purchase count; the totals they report equal the
/// per-customer formulas summed at the fitted parameters, on a spread of generated customers.
#[test]
fn fitted_log_likelihoods_are_the_per_customer_sums() {
    use trellis_report::customer_base::math::{fit_bg_nbd, fit_gamma_gamma};
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 10_000) as f64 / 10_000.0
    };
    let histories: Vec<History> = (0..3000)
        .map(|_| {
            // Weeks counted in whole days, as the report computes them: many customers share (t_x, T).
            let days = 70.0 + (280.0 * next()).floor();
            let x = (12.0 * next() * next()).floor();
            let t_x = if x > 0.0 {
                (days * next()).floor() / 7.0
            } else {
                0.0
            };
            let t = days / 7.0;
            History { x, t_x, t }
        })
        .collect();
    let repeaters: Vec<(f64, f64)> = histories
        .iter()
        .filter(|h| h.x > 0.0)
        .map(|h| (h.x, 5.0 + 80.0 * next()))
        .collect();
    let (bg_nbd, total) = fit_bg_nbd(&histories);
    let summed: f64 = histories.iter().map(|h| bg_nbd.log_likelihood(h)).sum();
    assert!(
        (total - summed).abs() < 1e-6 * summed.abs(),
        "{total} {summed}"
    );
    let (gamma_gamma, total) = fit_gamma_gamma(&repeaters);
    let summed: f64 = repeaters
        .iter()
        .map(|(x, m)| gamma_gamma.log_likelihood(*x, *m))
        .sum();
    assert!(
        (total - summed).abs() < 1e-6 * summed.abs(),
        "{total} {summed}"
    );
    assert!(gamma_gamma.p > 0.0 && gamma_gamma.q > 0.0 && gamma_gamma.gamma > 0.0);
}

/// The report folds transactions into customers by the subject's dictionary code: the same
/// customers (same order, histories and mean repeat spend, same-day amounts summed in row order) as
/// folding them by the subject's text — from a dictionary column with a repeated and an unused
/// value, and from a plain text column.
#[test]
fn customers_fold_the_same_by_code_as_by_text() {
    use std::collections::BTreeMap;
    use trellis_report::ColumnData;
    use trellis_report::customer_base::{Customer, customers};
    // Rows: (subject, day, amount); rows without a subject or day are left out, as are days after
    // `end`.
    let rows: Vec<(Option<&str>, Option<i32>, Option<f64>)> = vec![
        (Some("c2"), Some(10), Some(5.0)),
        (Some("c1"), Some(3), Some(1.5)),
        (Some("c2"), Some(10), Some(2.25)),
        (None, Some(4), Some(9.0)),
        (Some("c1"), Some(30), None),
        (Some("c3"), None, Some(4.0)),
        (Some("c2"), Some(40), Some(0.1)),
        (Some("c2"), Some(25), Some(0.2)),
        (Some("c4"), Some(99), Some(7.0)),
        (Some("c1"), Some(30), Some(0.3)),
        (Some("c2"), Some(40), Some(0.7)),
    ];
    let end = 60;
    let period = 7.0;
    // Reference: subject → day → summed amount, as the report folded them before.
    let mut by_subject: BTreeMap<String, BTreeMap<i32, f64>> = BTreeMap::new();
    for (who, when, much) in &rows {
        let (Some(who), Some(when)) = (who, when) else {
            continue;
        };
        if *when <= end {
            *by_subject
                .entry(who.to_string())
                .or_default()
                .entry(*when)
                .or_default() += much.unwrap_or(0.0);
        }
    }
    let expected: Vec<Customer> = by_subject
        .into_iter()
        .map(|(subject, purchases)| {
            let first = *purchases.keys().next().unwrap();
            let last = *purchases.keys().next_back().unwrap();
            // Every purchase day after the first is a repeat.
            let mut amounts: Vec<f64> = purchases.values().copied().collect();
            let repeats = amounts.split_off(1);
            Customer {
                subject,
                history: History {
                    x: repeats.len() as f64,
                    t_x: f64::from(last - first) / period,
                    t: f64::from(end - first) / period,
                },
                mean_repeat_spend: if repeats.is_empty() {
                    0.0
                } else {
                    repeats.iter().sum::<f64>() / repeats.len() as f64
                },
            }
        })
        .collect();
    assert_eq!(
        expected.len(),
        2,
        "c3 has no dated purchase, c4's is after the end"
    );

    let dates = ColumnData::Date(rows.iter().map(|r| r.1).collect());
    let amounts = ColumnData::Float(rows.iter().map(|r| r.2).collect());
    // "c2" twice in the dictionary (codes 0 and 3), "unused" never referred to.
    let values: Vec<String> = ["c2", "c1", "unused", "c2", "c3", "c4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let codes: Vec<Option<u32>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.0.map(|s| match s {
                "c2" if i % 2 == 0 => 0,
                "c2" => 3,
                other => values.iter().position(|v| v == other).unwrap() as u32,
            })
        })
        .collect();
    let dictionary = ColumnData::Dict {
        codes,
        values: values.into(),
    };
    assert_eq!(
        customers(&dictionary, &dates, &amounts, end, period),
        expected
    );
    let texts = ColumnData::Text(rows.iter().map(|r| r.0.map(str::to_owned)).collect());
    assert_eq!(customers(&texts, &dates, &amounts, end, period), expected);
}

/// Scoring customers on every core keeps the input order and every result.
#[test]
fn work_on_every_core_keeps_the_order() {
    let items: Vec<u64> = (0..25_001).collect();
    let doubled = trellis_report::parallel::on_every_core(&items, &|i: &u64| i * 2);
    assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    let few: Vec<u64> = (0..7).collect();
    assert_eq!(
        trellis_report::parallel::on_every_core(&few, &|i: &u64| i + 1),
        (1..8).collect::<Vec<_>>()
    );
}

/// A likelihood summed on every core adds the same fixed parts in the same order as on one core:
/// the total is bit for bit the one-thread sum of those parts, so a fit is the same on any machine.
#[test]
fn sums_on_every_core_add_fixed_parts_in_order() {
    // Terms of very different sizes: the order of the additions shows in the last bits.
    let terms: Vec<f64> = (0..50_003)
        .map(|i| ((i as f64) * 0.37).sin() * 10f64.powi(i % 13 - 6))
        .collect();
    let part = |range: std::ops::Range<usize>| terms[range].iter().sum::<f64>();
    let size = terms.len().div_ceil(8);
    let in_order: f64 = terms
        .chunks(size)
        .map(|chunk| chunk.iter().sum::<f64>())
        .sum();
    let total = trellis_report::parallel::sum_in_parts(terms.len(), &part);
    assert_eq!(
        total.to_bits(),
        in_order.to_bits(),
        "{total} against {in_order}"
    );
    let all_at_once: f64 = terms.iter().sum();
    assert!((total - all_at_once).abs() < 1e-6 * all_at_once.abs().max(1.0));
    // Below the threshold for threads: the same parts, on the calling thread.
    let few = &terms[..100];
    let part = |range: std::ops::Range<usize>| few[range].iter().sum::<f64>();
    let in_order: f64 = few.chunks(13).map(|chunk| chunk.iter().sum::<f64>()).sum();
    assert_eq!(
        trellis_report::parallel::sum_in_parts(few.len(), &part).to_bits(),
        in_order.to_bits()
    );
}
