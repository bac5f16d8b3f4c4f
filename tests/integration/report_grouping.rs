//! The report engine's two ways of grouping rows give the same reports: dense arrays (dictionary
//! codes, date buckets, booleans and narrow whole numbers as indexes, counts and exact whole-number
//! sums, averages, minimums, maximums, medians and percentiles) and polars' group-by, which the engine falls back to for
//! everything else. A set of specs — every dimension kind, top-N with "others", pivots, no
//! dimension, a KPI, and measures only polars computes mixed in — runs over generated rows with
//! missing values both ways, and the outputs (columns, rows, drill-down filters, charts) must be
//! identical; a few numbers are also counted by hand here.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use trellis_report::{ColumnData, Dataset, Grouper, RunInput};

/// 250,000 rows: enough for the dense pass to split the rows between cores.
const ROWS: usize = 250_000;

fn bundle() -> Value {
    let report = |id: &str, analysis: Value| {
        (
            format!("reports/{id}.report.json"),
            json!({"format_version": 1, "id": id, "dataset": {"entity": "sale"}, "parameters": [{"id": "as_of"}], "analysis": analysis}),
        )
    };
    let aggregate = |dimensions: Value, measures: Value| json!({"aggregate": {"dimensions": dimensions, "measures": measures}});
    let mut bundle = json!({
        "trellis.json": {"format_version": 1, "id": "grouping", "version": "1.0.0", "name": {"en": "Grouping", "zh-CN": "分组"}},
        "entities/sale.schema.json": {
            "type": "object", "x-trellis": {"format_version": 1},
            "properties": {
                "region": {"type": "string"}, "channel": {"type": "string"}, "customer": {"type": "string"},
                "day": {"type": "string", "format": "date"}, "at": {"type": "string", "format": "date-time"},
                "qty": {"type": "integer"}, "score": {"type": "number"}, "flag": {"type": "boolean"},
                "total": {"type": "object", "x-trellis": {"kind": "money", "currency": "CNY"}}
            }
        }
    });
    let reports = [
        report(
            "three_dimensions",
            aggregate(
                json!([{"field": "region"}, {"field": "channel"}, {"field": "day", "bucket": "month"}]),
                json!([{"id": "sales", "op": "count"}, {"id": "revenue", "op": "sum", "field": "total"},
                    {"id": "avg_qty", "op": "avg", "field": "qty"}, {"id": "qty_seen", "op": "count", "field": "qty"},
                    {"id": "biggest", "op": "max", "field": "total"}, {"id": "smallest", "op": "min", "field": "qty"}]),
            ),
        ),
        report(
            "flags_by_week",
            aggregate(
                json!([{"field": "flag"}, {"field": "at", "bucket": "week"}]),
                json!([{"id": "sales", "op": "count"}, {"id": "qty", "op": "sum", "field": "qty"},
                    {"id": "avg_total", "op": "avg", "field": "total"}, {"id": "share", "op": "share", "of": ["qty"]}]),
            ),
        ),
        report(
            "qty_bins_and_days",
            aggregate(
                json!([{"field": "qty", "bin": 5}, {"field": "day"}]),
                json!([{"id": "sales", "op": "count"}, {"id": "revenue", "op": "sum", "field": "total"},
                    {"id": "running", "op": "running_total", "of": ["revenue"]}]),
            ),
        ),
        report(
            "top_customers",
            json!({"aggregate": {"dimensions": [{"field": "customer"}, {"field": "region"}],
                "measures": [{"id": "revenue", "op": "sum", "field": "total"}, {"id": "sales", "op": "count"}],
                "top": {"n": 7, "by": "revenue"}, "sort": [{"by": "revenue", "descending": true}]}}),
        ),
        report(
            "top_one_dimension",
            json!({"aggregate": {"dimensions": [{"field": "customer"}],
                "measures": [{"id": "revenue", "op": "sum", "field": "total"}, {"id": "sales", "op": "count"},
                    {"id": "biggest", "op": "max", "field": "total"}, {"id": "first", "op": "min", "field": "day"},
                    {"id": "share", "op": "share", "of": ["revenue"]}],
                "top": {"n": 12, "by": "revenue"}, "sort": [{"by": "revenue", "descending": true}]}}),
        ),
        report(
            "top_without_others",
            json!({"aggregate": {"dimensions": [{"field": "region"}],
                "measures": [{"id": "sales", "op": "count"}, {"id": "median_qty", "op": "median", "field": "qty"}],
                "top": {"n": 3, "by": "sales", "others": false}}}),
        ),
        report(
            "pivot",
            json!({"aggregate": {"dimensions": [{"field": "region"}, {"field": "channel"}],
                "measures": [{"id": "sales", "op": "count"}], "pivot": "channel"}}),
        ),
        report(
            "everything",
            aggregate(
                json!([]),
                json!([{"id": "sales", "op": "count"}, {"id": "revenue", "op": "sum", "field": "total"},
                    {"id": "avg_qty", "op": "avg", "field": "qty"}, {"id": "first", "op": "min", "field": "day"},
                    {"id": "last", "op": "max", "field": "day"}]),
            ),
        ),
        report(
            "polars_only",
            aggregate(
                json!([{"field": "region"}]),
                json!([{"id": "buyers", "op": "count_distinct", "field": "customer"},
                    {"id": "median_qty", "op": "median", "field": "qty"},
                    {"id": "p90", "op": "percentile", "field": "total", "p": 0.9},
                    {"id": "score", "op": "sum", "field": "score"}, {"id": "sales", "op": "count"}]),
            ),
        ),
        report(
            "quantiles",
            aggregate(
                json!([{"field": "region"}, {"field": "flag"}]),
                json!([{"id": "median_qty", "op": "median", "field": "qty"},
                    {"id": "p90", "op": "percentile", "field": "total", "p": 0.9},
                    {"id": "p25", "op": "percentile", "field": "qty", "p": 0.25},
                    {"id": "lowest", "op": "percentile", "field": "total", "p": 0.0},
                    {"id": "highest", "op": "percentile", "field": "total", "p": 1.0},
                    {"id": "sales", "op": "count"}]),
            ),
        ),
        report(
            "float_keys",
            aggregate(
                json!([{"field": "score", "bin": 10}, {"field": "customer"}]),
                json!([{"id": "sales", "op": "count"}, {"id": "qty", "op": "sum", "field": "qty"}]),
            ),
        ),
        report(
            "kpi",
            json!({"kpi": {"measure": {"id": "revenue", "op": "sum", "field": "total"}, "date": "day"}}),
        ),
        report(
            "kpi_average",
            json!({"kpi": {"measure": {"id": "avg_qty", "op": "avg", "field": "qty"}, "date": "at", "period": "quarter"}}),
        ),
    ];
    for (path, spec) in reports {
        bundle[path] = spec;
    }
    bundle
}

/// Generated rows: every column missing in some rows, text dictionary-coded as the store loads it.
fn dataset() -> Dataset {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut columns: BTreeMap<&str, Vec<Option<u64>>> = BTreeMap::new();
    for name in [
        "region", "channel", "customer", "day", "at", "qty", "score", "flag", "total",
    ] {
        columns.insert(name, Vec::with_capacity(ROWS));
    }
    for _ in 0..ROWS {
        for values in columns.values_mut() {
            let r = next();
            values.push((r % 23 != 0).then_some(r >> 8));
        }
    }
    let dict = |values: &[Option<u64>], distinct: u64, prefix: &str| ColumnData::Dict {
        codes: values
            .iter()
            .map(|v| v.map(|v| (v % distinct) as u32))
            .collect(),
        values: std::sync::Arc::new((0..distinct).map(|i| format!("{prefix}{i}")).collect()),
    };
    let mut data = Dataset {
        rows: ROWS,
        ids: Vec::new(),
        columns: Default::default(),
    };
    let mut put = |name: &str, column: ColumnData| {
        data.columns.insert(name.to_owned(), column.into());
    };
    put("region", dict(&columns["region"], 8, "region "));
    put("channel", dict(&columns["channel"], 5, "channel "));
    put("customer", dict(&columns["customer"], 5_000, "c"));
    put(
        "day",
        ColumnData::Date(
            columns["day"]
                .iter()
                .map(|v| v.map(|v| 19_700 + (v % 730) as i32))
                .collect(),
        ),
    );
    put(
        "at",
        ColumnData::DateTime(
            columns["at"]
                .iter()
                .map(|v| v.map(|v| 1_700_000_000_000 + (v % 63_072_000_000) as i64))
                .collect(),
        ),
    );
    put(
        "qty",
        ColumnData::Int(
            columns["qty"]
                .iter()
                .map(|v| v.map(|v| (v % 40) as i64 - 5))
                .collect(),
        ),
    );
    put(
        "score",
        ColumnData::Float(
            columns["score"]
                .iter()
                .map(|v| v.map(|v| (v % 10_000) as f64 / 7.0))
                .collect(),
        ),
    );
    put(
        "flag",
        ColumnData::Bool(
            columns["flag"]
                .iter()
                .map(|v| v.map(|v| v % 2 == 0))
                .collect(),
        ),
    );
    put(
        "total",
        ColumnData::Money(
            columns["total"]
                .iter()
                .map(|v| v.map(|v| (v % 50_000_000) as i64 - 1_000_000))
                .collect(),
        ),
    );
    data
}

#[test]
fn dense_grouping_gives_what_polars_gives() {
    let mut raw = trellis_model::RawBundle(serde_json::Map::new());
    if let Value::Object(map) = bundle() {
        raw.0 = map;
    }
    let checked = trellis_model::check_bundle(&raw).unwrap();
    let (reports, problems) = trellis_report::check_reports(&checked);
    assert!(problems.is_empty(), "{problems:?}");
    let data = dataset();
    let input = |grouper| RunInput {
        dataset: data.clone(),
        as_of: 20_300,
        locale: "en".into(),
        grouper,
        ..Default::default()
    };
    let (fastest, polars) = (input(Grouper::Fastest), input(Grouper::Polars));
    assert_eq!(reports.len(), 13);
    for (id, report) in &reports {
        let dense = trellis_report::run(report, &fastest).unwrap();
        let reference = trellis_report::run(report, &polars).unwrap();
        assert!(!dense.rows.is_empty(), "{id}");
        assert_eq!(dense, reference, "{id}");
        // Rows only (write-backs): the same rows and columns, no drill-down filters, no chart.
        let rows_only = RunInput {
            rows_only: true,
            ..fastest.clone()
        };
        let bare = trellis_report::run(report, &rows_only).unwrap();
        assert_eq!(
            (&bare.columns, &bare.rows),
            (&dense.columns, &dense.rows),
            "{id}"
        );
        assert_eq!(bare.drill.len(), dense.drill.len(), "{id}");
        assert!(bare.drill.iter().all(Value::is_null), "{id}");
        assert!(bare.chart.is_null(), "{id}");
    }

    // Some numbers by hand: rows per region (missing regions are a group of their own) and the
    // revenue of all rows in currency units.
    let ColumnData::Dict { codes, .. } = &*data.columns["region"] else {
        unreachable!()
    };
    let mut by_region: BTreeMap<Option<u32>, i64> = BTreeMap::new();
    for code in codes {
        *by_region.entry(*code).or_default() += 1;
    }
    let pivot = trellis_report::run(&reports["pivot"], &fastest).unwrap();
    assert_eq!(pivot.rows.len(), by_region.len());
    for row in &pivot.rows {
        let sales: i64 = row[1..].iter().map(|v| v.as_i64().unwrap_or(0)).sum();
        let code = row[0]
            .as_str()
            .map(|r| r.trim_start_matches("region ").parse::<u32>().unwrap());
        assert_eq!(sales, by_region[&code], "{row:?}");
    }
    // The median quantity of the three regions with most sales, by sorting: polars' linear interpolation.
    let ColumnData::Int(quantities) = &*data.columns["qty"] else {
        unreachable!()
    };
    let mut per_region: BTreeMap<Option<u32>, Vec<i64>> = BTreeMap::new();
    for (code, qty) in codes.iter().zip(quantities) {
        if let Some(qty) = qty {
            per_region.entry(*code).or_default().push(*qty);
        }
    }
    let basket = trellis_report::run(&reports["top_without_others"], &fastest).unwrap();
    let median_column = basket
        .columns
        .iter()
        .position(|c| c.name == "median_qty")
        .unwrap();
    assert_eq!(basket.rows.len(), 3);
    for row in &basket.rows {
        let code = row[0]
            .as_str()
            .map(|r| r.trim_start_matches("region ").parse::<u32>().unwrap());
        let values = per_region.get_mut(&code).unwrap();
        values.sort_unstable();
        let middle = (values.len() - 1) as f64 / 2.0;
        let (low, high) = (
            values[middle.floor() as usize],
            values[middle.ceil() as usize],
        );
        let median = low as f64 + (high - low) as f64 * (middle - middle.floor());
        assert_eq!(row[median_column].as_f64().unwrap(), median, "{row:?}");
    }
    let ColumnData::Money(totals) = &*data.columns["total"] else {
        unreachable!()
    };
    let revenue: i64 = totals.iter().flatten().sum();
    let everything = trellis_report::run(&reports["everything"], &fastest).unwrap();
    assert_eq!(everything.rows[0][0], json!(ROWS));
    // Money is shown to the cent.
    let shown = everything.rows[0][1].as_f64().unwrap();
    assert!(
        (shown - revenue as f64 / 10_000.0).abs() < 0.006,
        "{shown} vs {revenue}"
    );
}

/// RFM and the customer-base model over a dictionary-coded subject — how the store loads a
/// relation; one pass over the codes — give what they give over the same subjects as plain text
/// (RFM: polars' group-by over the texts; the customer base: texts interned), also when the
/// dictionary repeats a text (two codes, one customer).
#[test]
fn rfm_and_customer_base_give_the_same_over_codes_as_over_text() {
    let mut spec = bundle();
    let mut reports = serde_json::Map::new();
    for (id, analysis) in [
        (
            "rfm_subjects",
            json!({"rfm": {"subject": "customer", "date": "at", "amount": "total", "output": "subjects"}}),
        ),
        (
            "rfm_segments",
            json!({"rfm": {"subject": "customer", "date": "day", "amount": "qty", "segments": [
            {"id": "high", "r": [3, 5], "f": [1, 5]}, {"id": "low", "r": [1, 2], "f": [1, 5]}]}}),
        ),
        (
            "customer_value",
            json!({"customer_base": {"subject": "customer", "date": "at", "amount": "total",
            "period": "week", "horizon_months": 6, "monthly_discount": 0.01}}),
        ),
    ] {
        reports.insert(
            format!("reports/{id}.report.json"),
            json!({"format_version": 1, "id": id, "dataset": {"entity": "sale"}, "parameters": [{"id": "as_of"}], "analysis": analysis}),
        );
    }
    let Value::Object(map) = &mut spec else {
        unreachable!()
    };
    map.retain(|path, _| !path.starts_with("reports/"));
    map.extend(reports);
    let raw = trellis_model::RawBundle(map.clone());
    let checked = trellis_model::check_bundle(&raw).unwrap();
    let (compiled, problems) = trellis_report::check_reports(&checked);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(compiled.len(), 3);

    let mut coded = dataset();
    // 5,000 codes, 4,000 texts: codes 4,000–4,999 repeat the texts of 0–999.
    let ColumnData::Dict { codes, .. } = &*coded.columns["customer"] else {
        unreachable!()
    };
    let repeating = ColumnData::Dict {
        codes: codes.clone(),
        values: std::sync::Arc::new((0..5_000).map(|i| format!("c{}", i % 4_000)).collect()),
    };
    let texts = ColumnData::Text(repeating.texts().unwrap());
    coded.columns.insert("customer".into(), repeating.into());
    let mut plain = coded.clone();
    plain.columns.insert("customer".into(), texts.into());
    let input = |dataset: &Dataset| RunInput {
        dataset: dataset.clone(),
        as_of: 20_300,
        locale: "en".into(),
        ..Default::default()
    };
    for (id, report) in &compiled {
        let over_codes = trellis_report::run(report, &input(&coded)).unwrap();
        let over_text = trellis_report::run(report, &input(&plain)).unwrap();
        assert!(!over_codes.rows.is_empty(), "{id}");
        assert_eq!(over_codes, over_text, "{id}");
        if id.as_str() != "rfm_segments" {
            assert_eq!(
                over_codes.rows.len(),
                4_000,
                "{id}: one row per customer text"
            );
        }
    }
}
