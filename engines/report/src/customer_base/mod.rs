//! The customer-base model: from raw transactions (who, when, how much) to BG/NBD and Gamma-Gamma
//! fitted by maximum likelihood, and per customer P(alive), expected purchases and spend, and CLV.
//!
//! Purchases on one day count once (their amounts add up). The calibration period ends on
//! `calibration_end` (default: the run's as-of day); time is measured in `period`s (days, weeks or
//! months of 30.4375 days) from each customer's first purchase. Gamma-Gamma is fitted on customers
//! with repeat purchases, each with the mean of their repeat purchases' amounts. To keep nightly runs
//! over millions of customers bounded, the fit uses at most `fit_sample` customers (every k-th in
//! subject order, so it is deterministic); every customer is scored. CLV = expected spend × the
//! expected purchases of each month of the horizon, discounted monthly.

pub mod math;

use serde_json::{Value, json};

use crate::analyses::{amount_at, day_at, subjects, text_ranks, zh};
use crate::compile::CompiledReport;
use crate::definition::{Analysis, ChartKind, CustomerBaseOutput};
use crate::output::{self, OutputColumn, OutputType, ReportOutput};
use crate::{ReportError, RunInput};
use math::{BgNbd, GammaGamma, History, fit_bg_nbd, fit_gamma_gamma};

/// Days in a model month.
const MONTH_DAYS: f64 = 30.4375;

/// One customer's transactions folded into what the models need.
#[derive(Debug, Clone, PartialEq)]
pub struct Customer {
    pub subject: String,
    pub history: History,
    /// Mean amount of the repeat purchases (0 without any).
    pub mean_repeat_spend: f64,
}

/// The fitted models.
pub struct FittedModels {
    pub bg_nbd: BgNbd,
    pub bg_nbd_log_likelihood: f64,
    pub gamma_gamma: Option<(GammaGamma, f64)>,
    pub customers: usize,
    pub repeat_customers: usize,
}

pub(crate) fn run(report: &CompiledReport, input: &RunInput) -> Result<ReportOutput, ReportError> {
    let Analysis::CustomerBase {
        subject,
        date,
        amount,
        calibration_end,
        period,
        horizon_months,
        monthly_discount,
        at_risk_below,
        churned_below,
        fit_sample,
        output: shape,
    } = &report.definition.analysis
    else {
        return Err(ReportError::Engine("not a customer-base report".into()));
    };
    let data = &input.dataset;
    let end = match calibration_end {
        Some(text) => crate::compile::parse_day(text).ok_or_else(|| {
            ReportError::Engine(format!("calibration_end '{text}' is not a date"))
        })?,
        None => input.as_of,
    };
    let period_days = period.days();
    let customers = customers(
        data.column(subject.as_str())?,
        data.column(date.as_str())?,
        data.column(amount.as_str())?,
        end,
        period_days,
    );
    let models = fit(&customers, *fit_sample as usize);
    let horizon = f64::from(*horizon_months) * MONTH_DAYS / period_days;
    let (columns, rows, drill) = match (shape, &models) {
        (CustomerBaseOutput::Model, _) => model_rows(input, models.as_ref()),
        (CustomerBaseOutput::Subjects, None) => (
            subject_columns(report, input, subject.as_str()),
            Vec::new(),
            Vec::new(),
        ),
        (CustomerBaseOutput::Subjects, Some(models)) => {
            let columns = subject_columns(report, input, subject.as_str());
            // Each customer's row is its own: scored on every core, in order.
            let score = |c: &Customer| -> (Vec<Value>, Value) {
                let h = &c.history;
                let p_alive = models.bg_nbd.p_alive(h);
                let spend = models
                    .gamma_gamma
                    .as_ref()
                    .map(|(gg, _)| gg.expected_spend(h.x, c.mean_repeat_spend));
                // With a spend model: the expected purchases up to the end of each month of the
                // horizon, the CLV's monthly increments — the last one is the horizon's
                // expectation (the same time, computed the same way).
                let (expected, clv) = match spend {
                    Some(spend) if *horizon_months > 0 => {
                        let (mut clv, mut before) = (0.0, 0.0);
                        for month in 1..=*horizon_months {
                            let upto = models
                                .bg_nbd
                                .expected_purchases(h, f64::from(month) * MONTH_DAYS / period_days);
                            clv += spend * (upto - before)
                                / (1.0 + monthly_discount).powi(month as i32);
                            before = upto;
                        }
                        (before, Some(clv))
                    }
                    _ => (
                        models.bg_nbd.expected_purchases(h, horizon),
                        spend.map(|_| 0.0),
                    ),
                };
                let status = if p_alive < *churned_below {
                    "churned"
                } else if p_alive < *at_risk_below {
                    "at_risk"
                } else {
                    "active"
                };
                let row = vec![
                    json!(c.subject),
                    json!(h.x as u64),
                    output::round(h.t_x),
                    output::round(h.t),
                    output::round(p_alive),
                    output::round(expected),
                    spend.map_or(Value::Null, output::round),
                    clv.map_or(Value::Null, output::round),
                    json!(status),
                ];
                // Rows only (a write-back): no drill-down filter to build per customer.
                let drill = if input.rows_only {
                    Value::Null
                } else {
                    input.drill(vec![
                        json!({"field": subject, "op": "eq", "value": c.subject}),
                    ])
                };
                (row, drill)
            };
            let (rows, drill) = crate::parallel::on_every_core(&customers, &score)
                .into_iter()
                .unzip();
            (columns, rows, drill)
        }
    };
    let kind = report
        .definition
        .chart
        .as_ref()
        .map_or(ChartKind::Table, |c| c.kind);
    let series = if columns.len() > 7 { vec![7] } else { vec![1] };
    let chart = output::chart(kind, &columns, &rows, 0, &series);
    Ok(ReportOutput {
        columns,
        rows,
        chart,
        drill,
        drill_cells: None,
        records: data.len(),
    })
}

/// Every customer's transactions up to `end` folded into what the models need, in subject order
/// (same-day purchases merged, amounts summed in row order). The transactions are grouped by the
/// subject's code (a dictionary column's own codes; other columns' texts interned), counted first
/// and then laid out once per subject — no map keyed by text over millions of rows.
pub fn customers(
    subject: &crate::ColumnData,
    date: &crate::ColumnData,
    amount: &crate::ColumnData,
    end: i32,
    period_days: f64,
) -> Vec<Customer> {
    let (codes, names) = subject_codes(subject);
    let (rank, ranked) = text_ranks(&names);
    let row_rank = |row: usize| -> Option<(usize, i32)> {
        let code = codes.get(row).copied().flatten()?;
        let day = day_at(date, row)?;
        (day <= end).then_some((rank[code as usize] as usize, day))
    };
    // Counted, then laid out: each subject's transactions in one slice, in row order.
    let mut starts = vec![0usize; ranked.len() + 1];
    for row in 0..codes.len() {
        if let Some((r, _)) = row_rank(row) {
            starts[r + 1] += 1;
        }
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut next = starts.clone();
    let mut laid: Vec<(i32, f64)> = vec![(0, 0.0); starts[ranked.len()]];
    for row in 0..codes.len() {
        if let Some((r, day)) = row_rank(row) {
            laid[next[r]] = (day, amount_at(amount, row).unwrap_or(0.0));
            next[r] += 1;
        }
    }
    let mut customers = Vec::new();
    let mut merged: Vec<(i32, f64)> = Vec::new();
    for (r, &code) in ranked.iter().enumerate() {
        let purchases = &mut laid[starts[r]..starts[r + 1]];
        if purchases.is_empty() {
            continue;
        }
        // A stable sort keeps same-day amounts in row order.
        purchases.sort_by_key(|(day, _)| *day);
        merged.clear();
        for &(day, value) in purchases.iter() {
            match merged.last_mut() {
                Some((last, total)) if *last == day => *total += value,
                _ => merged.push((day, value)),
            }
        }
        let (first, last) = (merged[0].0, merged[merged.len() - 1].0);
        let repeats = &merged[1..];
        customers.push(Customer {
            subject: names[code as usize].clone(),
            history: History {
                x: repeats.len() as f64,
                t_x: f64::from(last - first) / period_days,
                t: f64::from(end - first) / period_days,
            },
            mean_repeat_spend: if repeats.is_empty() {
                0.0
            } else {
                repeats.iter().map(|(_, value)| value).sum::<f64>() / repeats.len() as f64
            },
        });
    }
    customers
}

/// A subject column as codes into its distinct texts: a dictionary column as it is, any other
/// column's texts interned.
fn subject_codes(
    data: &crate::ColumnData,
) -> (
    std::borrow::Cow<'_, [Option<u32>]>,
    std::borrow::Cow<'_, [String]>,
) {
    use std::borrow::Cow;
    if let crate::ColumnData::Dict { codes, values } = data {
        return (Cow::Borrowed(codes), Cow::Borrowed(values));
    }
    let mut index: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut names = Vec::new();
    let codes = subjects(data)
        .into_iter()
        .map(|text| {
            let text = text?;
            Some(*index.entry(text).or_insert_with_key(|text| {
                names.push(text.clone());
                names.len() as u32 - 1
            }))
        })
        .collect();
    (Cow::Owned(codes), Cow::Owned(names))
}

/// Fit both models (None without any customer).
fn fit(customers: &[Customer], sample: usize) -> Option<FittedModels> {
    if customers.is_empty() {
        return None;
    }
    let step = customers.len().div_ceil(sample.max(1)).max(1);
    let chosen: Vec<&Customer> = customers.iter().step_by(step).collect();
    let histories: Vec<History> = chosen.iter().map(|c| c.history).collect();
    let (bg_nbd, bg_nbd_log_likelihood) = fit_bg_nbd(&histories);
    let repeaters: Vec<(f64, f64)> = chosen
        .iter()
        .filter(|c| c.history.x > 0.0 && c.mean_repeat_spend > 0.0)
        .map(|c| (c.history.x, c.mean_repeat_spend))
        .collect();
    let gamma_gamma = (repeaters.len() >= 2).then(|| fit_gamma_gamma(&repeaters));
    Some(FittedModels {
        bg_nbd,
        bg_nbd_log_likelihood,
        gamma_gamma,
        customers: histories.len(),
        repeat_customers: repeaters.len(),
    })
}

fn subject_columns(report: &CompiledReport, input: &RunInput, subject: &str) -> Vec<OutputColumn> {
    let zh = zh(input);
    let label = |en: &str, cn: &str| if zh { cn.to_owned() } else { en.to_owned() };
    let mut status = OutputColumn::new("status", OutputType::Text, label("Status", "状态"));
    status.labels = [
        ("active", label("Active", "活跃")),
        ("at_risk", label("At risk", "有流失风险")),
        ("churned", label("Churned", "已流失")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vec![
        OutputColumn::new(
            subject,
            OutputType::Text,
            input.text(report.field(subject).label.as_ref(), subject),
        ),
        OutputColumn::new(
            "repeat_purchases",
            OutputType::Integer,
            label("Repeat purchases", "复购次数"),
        ),
        OutputColumn::new(
            "recency",
            OutputType::Number,
            label("Time of last purchase", "末次购买时间"),
        ),
        OutputColumn::new(
            "age",
            OutputType::Number,
            label("Time observed", "观察时长"),
        ),
        OutputColumn::new("p_alive", OutputType::Ratio, label("P(alive)", "存活概率")),
        OutputColumn::new(
            "expected_purchases",
            OutputType::Number,
            label("Expected purchases", "预期购买次数"),
        ),
        OutputColumn::new(
            "expected_spend",
            OutputType::Number,
            label("Expected spend per purchase", "预期客单价"),
        ),
        OutputColumn::new(
            "clv",
            OutputType::Number,
            label("Customer lifetime value", "客户终身价值"),
        ),
        status,
    ]
}

fn model_rows(
    input: &RunInput,
    models: Option<&FittedModels>,
) -> (Vec<OutputColumn>, Vec<Vec<Value>>, Vec<Value>) {
    let zh = zh(input);
    let columns = vec![
        OutputColumn::new(
            "parameter",
            OutputType::Text,
            if zh { "参数" } else { "Parameter" },
        ),
        OutputColumn::new(
            "value",
            OutputType::Number,
            if zh { "估计值" } else { "Estimate" },
        ),
    ];
    let Some(m) = models else {
        return (columns, Vec::new(), Vec::new());
    };
    let mut rows = vec![
        vec![json!("r"), output::round(m.bg_nbd.r)],
        vec![json!("alpha"), output::round(m.bg_nbd.alpha)],
        vec![json!("a"), output::round(m.bg_nbd.a)],
        vec![json!("b"), output::round(m.bg_nbd.b)],
        vec![
            json!("log_likelihood"),
            output::round(m.bg_nbd_log_likelihood),
        ],
        vec![json!("customers"), json!(m.customers)],
    ];
    if let Some((gg, ll)) = &m.gamma_gamma {
        rows.extend([
            vec![json!("p"), output::round(gg.p)],
            vec![json!("q"), output::round(gg.q)],
            vec![json!("gamma"), output::round(gg.gamma)],
            vec![json!("spend_log_likelihood"), output::round(*ll)],
        ]);
    }
    rows.push(vec![json!("repeat_customers"), json!(m.repeat_customers)]);
    let drill = rows.iter().map(|_| Value::Null).collect();
    (columns, rows, drill)
}
