//! The native path against rhai: a corpus of expressions over generated records.
use serde_json::{Map, Value, json};

use super::NativeExpr;

/// Expressions analysts write: the lead-scoring bench rule, CLM conditions, and the corners
/// (mixed numbers, empty fields, overflow, division by zero, strings, nested `if`).
const CORPUS: &[&str] = &[
    "(if score > 50 { 10 } else { 0 }) + (if health > 70 { 10 } else { 0 }) + (if orders > 10 { 10 } else { 0 }) \
     + (if ltv > 5000.0 { 10 } else { 0 }) + (if vip { 10 } else { 0 }) + (if region == \"north\" { 5 } else { 0 }) \
     + (if stage == \"growth\" { 5 } else { 0 }) + (if nps >= 9 { 10 } else { 0 }) + (if source == \"web\" { 5 } else { 0 }) \
     + (if segment == \"smb\" { 5 } else { 0 })",
    "score != ()",
    "health == ()",
    "score != () && score > 25.0",
    "ltv > 0.0 && stage != \"churned\"",
    "score >= 7 && (stage == \"growth\" || stage == \"maturity\")",
    "vip != true && (region == () || region <= \"m\")",
    "in_list(segment, [\"smb\", \"mid\"])",
    "in_list(orders, [1, 2, 3])",
    "!vip",
    "-score",
    "score * 2 + record.orders",
    "score / orders",
    "score % orders",
    "ltv / orders",
    "score - ltv * 1.5",
    "if score > 50 { \"hot\" } else if score > 20 { \"warm\" } else { \"cold\" }",
    "if vip { score }",
    "score == ltv",
    "score < ltv",
    "region == score",
    "region != ()",
    "stage < region",
    "score * 9223372036854775807",
    "(score + 1) * (orders - 2) / 3",
    "score > 50 || vip",
    "vip && score > 1",
    "engagement_score * 0.977",
    "orders + 1",
    "counted != true && (available_on == () || available_on <= today())",
    "counted != true && available_on != () && available_on <= today()",
    "last_engaged_at != () && days_since(last_engaged_at) >= 90 && (stage == \"growth\" || vip)",
    "if last_engaged_at == () { 0 } else if days_since(last_engaged_at) >= 60 { 2 } else { 1 }",
    // `let` bindings: a computed score built from parts (the CLM health score's shape), shadowing a
    // field, rebinding a name, and a binding that fails (overflow) while the result ignores it.
    "let part = if score == () { 50 } else if score >= 10 { 100 } else { score * 10 }; \
     let other = if orders == () { 70 } else { orders * 10 }; (part * 35 + other * 65) / 100",
    "let score = score + 1; score * 2 + record.score",
    "let x = orders; let x = x * 2; x + 1",
    "let unused = score * 9223372036854775807; orders + 1",
    "let hot = score > 50 && vip; if hot { \"hot\" } else { stage }",
    // Boolean columns against literals, combined (the batch-run pre-filter's shape).
    "score == 100 && vip == true && region == \"north\"",
    "vip == false || !(vip != true) || counted == ()",
    "!vip || counted && vip != false",
    // Number methods: the CLM lead score and grade's shapes, and each method on every type.
    "let s = score + orders + engagement_score; if s > 100 { 100 } else { s.to_int() }",
    "let s = score + orders + engagement_score; let g = (s / 10.0).ceiling().to_int() - \
     (if nps == () { 0 } else { nps }); if g < 1 { 1 } else if g > 10 { 10 } else { g }",
    "ltv.floor() + ltv.round() - ltv.ceiling()",
    "score.abs() + score.to_float()",
    "-ltv.to_int() * 2",
    "(score * 1.0).to_int()",
    "engagement_score.to_float().to_int()",
    "score.to_int()",
    "ltv.abs()",
];

/// A deterministic picker (xorshift): `next(n)` is a number below `n`, the same sequence every run.
fn picker(seed: u64) -> impl FnMut(usize) -> usize {
    let mut state = seed;
    move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    }
}

/// Values a field takes in the generated records (none: the key is absent).
fn pool() -> Vec<Option<Value>> {
    vec![
        None,
        Some(Value::Null),
        Some(json!(true)),
        Some(json!(false)),
        Some(json!(0)),
        Some(json!(1)),
        Some(json!(-5)),
        Some(json!(9)),
        Some(json!(51)),
        Some(json!(i64::MAX)),
        Some(json!(0.5)),
        Some(json!(5000.0)),
        Some(json!(5000.5)),
        Some(json!(-1.25)),
        Some(json!(1.0e300)),
        Some(json!(-1.0e300)),
        Some(json!("north")),
        Some(json!("growth")),
        Some(json!("smb")),
        Some(json!("web")),
        Some(json!("")),
        Some(json!("5")),
        Some(json!([1, 2])),
        Some(json!("2024-01-05")),
        Some(json!("2026-11-30T08:00:00Z")),
        Some(json!("3000-01-01")),
        Some(json!("not a date")),
    ]
}

/// Values a field of this name usually has.
fn typical(field: &str) -> Vec<Option<Value>> {
    let values = match field {
        "vip" | "counted" => vec![json!(true), json!(false)],
        "region" | "stage" | "source" | "segment" => {
            vec![
                json!("north"),
                json!("growth"),
                json!("web"),
                json!("smb"),
                json!("maturity"),
            ]
        }
        "available_on" | "last_engaged_at" => vec![
            json!("2024-01-05"),
            json!("2026-11-30T08:00:00Z"),
            json!("3000-01-01"),
            Value::Null,
        ],
        "ltv" | "engagement_score" => {
            vec![json!(0.5), json!(5000.0), json!(7250.25), json!(12)]
        }
        _ => vec![
            json!(0),
            json!(3),
            json!(9),
            json!(51),
            json!(75),
            json!(100),
        ],
    };
    values.into_iter().map(Some).collect()
}

const FIELDS: &[&str] = &[
    "score",
    "health",
    "orders",
    "ltv",
    "vip",
    "region",
    "stage",
    "nps",
    "source",
    "segment",
    "engagement_score",
    "available_on",
    "last_engaged_at",
    "counted",
];

#[test]
fn native_results_are_rhais_results() {
    let pool = pool();
    let mut next = picker(0x2545_F491_4F6C_DD1D);
    for source in CORPUS {
        let native = NativeExpr::compile(source)
            .unwrap_or_else(|| panic!("plain expression not compiled natively: {source}"));
        let script = crate::compile(source).unwrap();
        let (mut decided, mut total) = (0, 0);
        for _ in 0..3000 {
            let mut record = Map::new();
            for field in FIELDS {
                // Mostly values of the field's own type, sometimes anything at all.
                let typical = typical(field);
                let value = if next(4) > 0 {
                    typical[next(typical.len())].clone()
                } else {
                    pool[next(pool.len())].clone()
                };
                if let Some(value) = value {
                    record.insert((*field).to_owned(), value);
                }
            }
            total += 1;
            let Some(value) = native.eval(&record) else {
                continue;
            };
            decided += 1;
            let rhai = script.eval_with_rhai(&record, &[]);
            assert_eq!(
                rhai.as_ref(),
                Ok(&value),
                "{source}\nrecord: {}",
                Value::Object(record.clone())
            );
            assert_eq!(script.eval(&record, &[]).as_ref(), Ok(&value));
        }
        assert!(
            decided > 0,
            "never decided natively: {source} ({total} records)"
        );
    }
}

#[test]
fn typical_records_are_decided_natively() {
    let native = NativeExpr::compile(CORPUS[0]).unwrap();
    let record = json!({"score": 60, "health": 75, "orders": 12, "ltv": 6000.0, "vip": true,
        "region": "north", "stage": "growth", "nps": 9, "source": "web", "segment": "smb"});
    assert_eq!(native.eval(record.as_object().unwrap()), Some(json!(80)));
}

#[test]
fn scripts_beyond_plain_expressions_stay_with_rhai() {
    for source in [
        "let s = 0; s + 1;",
        "let s; s",
        "let record = 1; record",
        "let s = 0 s + 1",
        "let in_list = 1; in_list",
        "add_days(ordered_at, 14)",
        "total.len()",
        "total.to_string()",
        "ltv.floor",
        "score.abs(1)",
        "source.total + 1",
        "x = 1",
        "1_000 + x",
        "a // comment",
        "`template ${x}`",
        "[1, 2].len()",
        "#{a: 1}",
        "if a { 1 } else { 2 }; 3",
    ] {
        assert!(NativeExpr::compile(source).is_none(), "{source}");
    }
    // Compiled, but string building is rhai's at run time.
    let concat = NativeExpr::compile("name + \"!\"").unwrap();
    assert_eq!(
        concat.eval(json!({"name": "Ada"}).as_object().unwrap()),
        None
    );
    assert_eq!(
        crate::compile("name + \"!\"")
            .unwrap()
            .eval(json!({"name": "Ada"}).as_object().unwrap(), &[]),
        Ok(json!("Ada!"))
    );
}

/// Typed columns of `records` for `fields`: each field's column type from its typical values (numbers
/// of a float field include integers, as documents may hold them).
fn columns_of(records: &[Map<String, Value>]) -> std::collections::HashMap<&'static str, Column> {
    let mut columns = std::collections::HashMap::new();
    for field in FIELDS {
        let values: Vec<Option<&Value>> = records
            .iter()
            .map(|r| r.get(*field).filter(|v| !v.is_null()))
            .collect();
        let column = match *field {
            "vip" | "counted" => {
                Column::Bool(values.iter().map(|v| v.and_then(Value::as_bool)).collect())
            }
            "ltv" | "engagement_score" => {
                Column::Float(values.iter().map(|v| v.and_then(Value::as_f64)).collect())
            }
            // Text held once per distinct value, as the store loads it.
            "region" | "stage" => {
                let mut distinct: Vec<String> = Vec::new();
                let codes = values
                    .iter()
                    .map(|v| {
                        let text = v.and_then(Value::as_str)?;
                        Some(match distinct.iter().position(|d| d == text) {
                            Some(p) => p as u32,
                            None => {
                                distinct.push(text.to_owned());
                                (distinct.len() - 1) as u32
                            }
                        })
                    })
                    .collect();
                Column::Dict(codes, distinct)
            }
            "source" | "segment" | "available_on" | "last_engaged_at" => Column::Text(
                values
                    .iter()
                    .map(|v| v.and_then(Value::as_str).map(str::to_owned))
                    .collect(),
            ),
            _ => Column::Int(values.iter().map(|v| v.and_then(Value::as_i64)).collect()),
        };
        columns.insert(*field, column);
    }
    columns
}

enum Column {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    Dict(Vec<Option<u32>>, Vec<String>),
}

#[test]
fn columnar_results_are_rhais_results() {
    let mut next = picker(0x9E37_79B9_7F4A_7C15);
    // Records whose values fit their columns (what a column cache holds), some fields empty.
    let records: Vec<Map<String, Value>> = (0..2000)
        .map(|_| {
            let mut record = Map::new();
            for field in FIELDS {
                let typical = typical(field);
                if let Some(value) = typical[next(typical.len())].clone()
                    && next(8) > 0
                {
                    record.insert((*field).to_owned(), value);
                }
            }
            record
        })
        .collect();
    let columns = columns_of(&records);
    let column = |name: &str| -> Option<super::ColumnRef<'_>> {
        Some(match columns.get(name)? {
            Column::Int(v) => super::ColumnRef::Int(v),
            Column::Float(v) => super::ColumnRef::Float(v),
            Column::Bool(v) => super::ColumnRef::Bool(v),
            Column::Text(v) => super::ColumnRef::Text(v),
            Column::Dict(codes, values) => super::ColumnRef::Dict { codes, values },
        })
    };
    let mut undecided = Vec::new();
    for source in CORPUS {
        let native = NativeExpr::compile(source).unwrap();
        let script = crate::compile(source).unwrap();
        let results = native
            .eval_columns(|name| column(name), records.len())
            .unwrap();
        // The pre-filter's answer is the full result's, row by row.
        let not_true = native
            .surely_not_true(|name| column(name), records.len())
            .unwrap();
        let expected: Vec<bool> = results
            .iter()
            .map(|r| r.as_ref().is_some_and(|v| *v != Value::Bool(true)))
            .collect();
        assert_eq!(not_true, expected, "{source}");
        let mut decided = 0;
        for (record, result) in records.iter().zip(&results) {
            let Some(value) = result else { continue };
            decided += 1;
            // Every field is a variable in a rule's scope, `()` when empty.
            let mut visible = record.clone();
            for field in FIELDS {
                visible.entry((*field).to_owned()).or_insert(Value::Null);
            }
            assert_eq!(
                script.eval_with_rhai(&visible, &[]).as_ref(),
                Ok(value),
                "{source}\nrecord: {}",
                Value::Object(record.clone())
            );
        }
        if decided == 0 {
            undecided.push(*source);
        }
    }
    // Only what needs the document's number form (arithmetic or `in_list` on column numbers).
    assert_eq!(
        undecided,
        [
            "in_list(orders, [1, 2, 3])",
            "-score",
            "score * 2 + record.orders",
            "score / orders",
            "score % orders",
            "ltv / orders",
            "score - ltv * 1.5",
            "score * 9223372036854775807",
            "(score + 1) * (orders - 2) / 3",
            "orders + 1",
            "let score = score + 1; score * 2 + record.score",
            "let x = orders; let x = x * 2; x + 1",
            "let unused = score * 9223372036854775807; orders + 1",
            "let s = score + orders + engagement_score; if s > 100 { 100 } else { s.to_int() }",
            "let s = score + orders + engagement_score; let g = (s / 10.0).ceiling().to_int() - \
             (if nps == () { 0 } else { nps }); if g < 1 { 1 } else if g > 10 { 10 } else { g }",
            "score.abs() + score.to_float()",
            "(score * 1.0).to_int()",
            "score.to_int()",
        ]
    );
    // The scoring rule is decided for every row that has all its fields.
    let scoring = NativeExpr::compile(CORPUS[0]).unwrap();
    let results = scoring
        .eval_columns(|name| column(name), records.len())
        .unwrap();
    let complete: Vec<bool> = records
        .iter()
        .map(|r| {
            scoring
                .fields()
                .iter()
                .all(|f| r.get(f).is_some_and(|v| !v.is_null()))
        })
        .collect();
    assert!(complete.iter().filter(|c| **c).count() > 100);
    for (result, complete) in results.iter().zip(complete) {
        assert!(!complete || result.is_some());
    }
}
