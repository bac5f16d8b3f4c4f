//! The special analyses: a funnel over a flow's states, retention cohorts, RFM segmentation and a KPI
//! against the previous period. The per-record work (grouping millions of rows) runs in polars; the
//! small per-group results are shaped here.

use std::collections::HashMap;

use polars::prelude::*;
use serde_json::{Value, json};

use crate::buckets::{
    bucket_after, bucket_label, bucket_start, bucket_starts, buckets_between, date_text,
    datetime_text, day_of_millis,
};
use crate::compile::CompiledReport;
use crate::data::{ColumnData, ColumnType, MONEY_SCALE};
use crate::definition::{Analysis, ChartKind, MeasureOp};
use crate::frame::{self, Key};
use crate::output::{self, OutputColumn, OutputType, ReportOutput};
use crate::{ReportError, RunInput};

pub(crate) fn zh(input: &RunInput) -> bool {
    input.locale.starts_with("zh")
}

/// Days since the epoch of every record's temporal column.
pub(crate) fn days(data: &ColumnData) -> Vec<Option<i32>> {
    match data {
        ColumnData::Date(v) => v.clone(),
        ColumnData::DateTime(v) => v.iter().map(|m| m.map(day_of_millis)).collect(),
        _ => vec![None; data.len()],
    }
}

/// The day of row `row` of a temporal column ([`days`] for one row, without a copy of the column).
pub(crate) fn day_at(data: &ColumnData, row: usize) -> Option<i32> {
    match data {
        ColumnData::Date(v) => v.get(row).copied().flatten(),
        ColumnData::DateTime(v) => v.get(row).copied().flatten().map(day_of_millis),
        _ => None,
    }
}

/// The amount of row `row` in currency units ([`amounts`] for one row).
pub(crate) fn amount_at(data: &ColumnData, row: usize) -> Option<f64> {
    match data {
        ColumnData::Int(v) => v.get(row).copied().flatten().map(|x| x as f64),
        ColumnData::Money(v) => v
            .get(row)
            .copied()
            .flatten()
            .map(|x| x as f64 / MONEY_SCALE as f64),
        ColumnData::Float(v) => v.get(row).copied().flatten(),
        _ => None,
    }
}

/// A dictionary's distinct texts in text order: each code's rank (codes of equal texts — a
/// dictionary may repeat one — share a rank) and, per rank, the first code with that text.
pub(crate) fn text_ranks(texts: &[String]) -> (Vec<u32>, Vec<u32>) {
    let mut order: Vec<u32> = (0..texts.len() as u32).collect();
    order.sort_by(|a, b| texts[*a as usize].cmp(&texts[*b as usize]));
    let mut rank = vec![0u32; texts.len()];
    let mut ranked: Vec<u32> = Vec::new();
    for &code in &order {
        let same = ranked
            .last()
            .is_some_and(|&first| texts[first as usize] == texts[code as usize]);
        if !same {
            ranked.push(code);
        }
        rank[code as usize] = ranked.len() as u32 - 1;
    }
    (rank, ranked)
}

/// Text keys of a subject column (relation ids, names, numbers as text).
pub(crate) fn subjects(data: &ColumnData) -> Vec<Option<String>> {
    match data {
        ColumnData::Text(_) | ColumnData::Dict { .. } => data.texts().unwrap_or_default(),
        ColumnData::Int(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
        ColumnData::Float(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
        ColumnData::Bool(v) => v.iter().map(|x| x.map(|x| x.to_string())).collect(),
        other => vec![None; other.len()],
    }
}

/// Amounts as numbers in currency units.
pub(crate) fn amounts(data: &ColumnData) -> Vec<Option<f64>> {
    match data {
        ColumnData::Int(v) => v.iter().map(|x| x.map(|x| x as f64)).collect(),
        ColumnData::Money(v) => v
            .iter()
            .map(|x| x.map(|x| x as f64 / MONEY_SCALE as f64))
            .collect(),
        ColumnData::Float(v) => v.clone(),
        other => vec![None; other.len()],
    }
}

/// A drill condition selecting records whose `field` is one of `ids` (capped: long lists are not
/// useful as filters).
pub(crate) fn in_list(field: &str, ids: &[String]) -> Option<Value> {
    (ids.len() <= 1000).then(|| json!({"field": field, "op": "in", "value": ids}))
}

pub(crate) fn funnel(
    report: &CompiledReport,
    input: &RunInput,
) -> Result<ReportOutput, ReportError> {
    let plan = report
        .funnel
        .as_ref()
        .ok_or_else(|| ReportError::Engine("funnel without a flow".into()))?;
    let stage_of: HashMap<&str, i32> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i as i32))
        .collect();
    // Only records of the dataset count (it carries the viewer's access and the filters).
    let in_dataset: std::collections::HashSet<&str> =
        input.dataset.ids.iter().map(String::as_str).collect();
    let mut records: Vec<Option<String>> = Vec::new();
    let mut stages: Vec<Option<i32>> = Vec::new();
    for (record, state) in &input.visits {
        if let Some(&stage) = stage_of.get(state.as_str())
            && in_dataset.contains(record.as_str())
        {
            records.push(Some(record.clone()));
            stages.push(Some(stage));
        }
    }
    let furthest = frame::frame(vec![
        frame::column("record", &ColumnData::Text(records)),
        frame::column("stage", &ColumnData::Date(stages)),
    ])?
    .lazy()
    .group_by([col("record")])
    .agg([col("stage").max().alias("furthest")])
    .group_by([col("furthest")])
    .agg([len().alias("records")])
    .collect()?;
    let mut ended_at = vec![0i64; plan.stages.len()];
    for (stage, count) in frame::keys(&furthest, "furthest")?
        .into_iter()
        .zip(frame::numbers(&furthest, "records")?)
    {
        if let (Key::Int(stage), Some(count)) = (stage, count) {
            ended_at[stage as usize] += count as i64;
        }
    }
    // Reached stage i = furthest stage ≥ i.
    let mut reached = vec![0i64; plan.stages.len()];
    let mut running = 0;
    for index in (0..plan.stages.len()).rev() {
        running += ended_at[index];
        reached[index] = running;
    }
    let columns = vec![
        OutputColumn::new(
            "stage",
            OutputType::Text,
            if zh(input) { "阶段" } else { "Stage" },
        ),
        OutputColumn::new(
            "records",
            OutputType::Integer,
            if zh(input) { "记录数" } else { "Records" },
        ),
        OutputColumn::new(
            "conversion",
            OutputType::Ratio,
            if zh(input) {
                "环比转化率"
            } else {
                "Conversion from previous"
            },
        ),
        OutputColumn::new(
            "overall",
            OutputType::Ratio,
            if zh(input) {
                "总体转化率"
            } else {
                "Conversion from first"
            },
        ),
    ];
    let mut columns = columns;
    columns[0].labels = plan
        .stages
        .iter()
        .map(|s| (s.id.clone(), input.text(s.label.as_ref(), &s.id)))
        .collect();
    let ratio = |a: i64, b: i64| {
        if b == 0 {
            Value::Null
        } else {
            output::round(a as f64 / b as f64)
        }
    };
    let rows: Vec<Vec<Value>> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            vec![
                json!(stage.id),
                json!(reached[i]),
                if i == 0 {
                    json!(1.0)
                } else {
                    ratio(reached[i], reached[i - 1])
                },
                ratio(reached[i], reached[0]),
            ]
        })
        .collect();
    // "Ever reached" is history, not a field: the drill-down names the records (up to 1,000).
    let mut furthest_of: HashMap<&str, i32> = HashMap::new();
    for (record, state) in &input.visits {
        if let Some(&stage) = stage_of.get(state.as_str())
            && in_dataset.contains(record.as_str())
        {
            let entry = furthest_of.entry(record.as_str()).or_insert(stage);
            *entry = (*entry).max(stage);
        }
    }
    let drill = (0..plan.stages.len() as i32)
        .map(|stage| {
            let mut ids: Vec<String> = furthest_of
                .iter()
                .filter(|(_, furthest)| **furthest >= stage)
                .map(|(id, _)| (*id).to_owned())
                .collect();
            ids.sort();
            in_list("id", &ids).map_or(Value::Null, |c| input.drill(vec![c]))
        })
        .collect();
    let kind = report
        .definition
        .chart
        .as_ref()
        .map_or(ChartKind::Funnel, |c| c.kind);
    let chart = output::chart(kind, &columns, &rows, 0, &[1]);
    Ok(ReportOutput {
        columns,
        rows,
        chart,
        drill,
        drill_cells: None,
        records: input.dataset.len(),
    })
}

pub(crate) fn cohort(
    report: &CompiledReport,
    input: &RunInput,
) -> Result<ReportOutput, ReportError> {
    let Analysis::Cohort {
        subject,
        date,
        bucket,
        periods,
    } = &report.definition.analysis
    else {
        return Err(ReportError::Engine("not a cohort report".into()));
    };
    let data = &input.dataset;
    let who = subjects(data.column(subject.as_str())?);
    let when: Vec<Option<i32>> =
        bucket_starts(days(data.column(date.as_str())?).into_iter(), *bucket);
    // 1. Each subject's first period (polars group-by over every record).
    let base = frame::frame(vec![
        frame::column("subject", &ColumnData::Text(who.clone())),
        frame::column("period", &ColumnData::Date(when.clone())),
    ])?;
    let first = base
        .clone()
        .lazy()
        .drop_nulls(None)
        .group_by([col("subject")])
        .agg([col("period").min().alias("cohort")])
        .collect()?;
    let mut cohort_of: HashMap<String, i32> = HashMap::new();
    for (s, c) in frame::keys(&first, "subject")?
        .into_iter()
        .zip(frame::keys(&first, "cohort")?)
    {
        if let (Key::Text(s), Key::Int(c)) = (s, c) {
            cohort_of.insert(s, c as i32);
        }
    }
    // 2. Distinct active subjects per (cohort, periods since the first).
    let (mut cohorts, mut offsets) = (Vec::with_capacity(who.len()), Vec::with_capacity(who.len()));
    for (s, p) in who.iter().zip(&when) {
        match (s.as_ref().and_then(|s| cohort_of.get(s)), p) {
            (Some(&c), Some(p)) => {
                cohorts.push(Some(c));
                offsets.push(Some(buckets_between(c, *p, *bucket)));
            }
            _ => {
                cohorts.push(None);
                offsets.push(None);
            }
        }
    }
    let active = frame::frame(vec![
        frame::column("subject", &ColumnData::Text(who)),
        frame::column("cohort", &ColumnData::Date(cohorts)),
        frame::column("offset", &ColumnData::Date(offsets)),
    ])?
    .lazy()
    .drop_nulls(None)
    .group_by([col("cohort"), col("offset")])
    .agg([col("subject").n_unique().alias("active")])
    .collect()?;
    let mut counts: HashMap<(i32, i32), i64> = HashMap::new();
    for ((c, o), n) in frame::keys(&active, "cohort")?
        .into_iter()
        .zip(frame::keys(&active, "offset")?)
        .zip(frame::numbers(&active, "active")?)
    {
        if let (Key::Int(c), Key::Int(o), Some(n)) = (c, o, n) {
            counts.insert((c as i32, o as i32), n as i64);
        }
    }
    let mut cohort_starts: Vec<i32> = cohort_of.values().copied().collect();
    cohort_starts.sort_unstable();
    cohort_starts.dedup();
    let mut columns = vec![
        OutputColumn::new(
            "cohort",
            OutputType::Period,
            if zh(input) { "群组" } else { "Cohort" },
        ),
        OutputColumn::new(
            "subjects",
            OutputType::Integer,
            if zh(input) { "人数" } else { "Size" },
        ),
    ];
    for offset in 0..=*periods {
        columns.push(OutputColumn::new(
            format!("p{offset}"),
            OutputType::Ratio,
            format!("{}{offset}", if zh(input) { "第" } else { "+" }),
        ));
    }
    let mut rows = Vec::new();
    let mut drill = Vec::new();
    let mut drill_cells = Vec::new();
    let datetime = report.field(date.as_str()).column == ColumnType::DateTime;
    let day_text = |d: i32| {
        if datetime {
            datetime_text(d)
        } else {
            date_text(d)
        }
    };
    for start in &cohort_starts {
        let size = counts.get(&(*start, 0)).copied().unwrap_or(0);
        let mut row = vec![json!(bucket_label(*start, *bucket)), json!(size)];
        for offset in 0..=*periods as i32 {
            // Periods that have not happened yet (after as_of) stay empty.
            let period_start = bucket_after(*start, *bucket, offset);
            row.push(if period_start > input.as_of || size == 0 {
                Value::Null
            } else {
                output::round(
                    counts.get(&(*start, offset)).copied().unwrap_or(0) as f64 / size as f64,
                )
            });
        }
        rows.push(row);
        let mut members: Vec<String> = cohort_of
            .iter()
            .filter(|(_, c)| **c == *start)
            .map(|(s, _)| s.clone())
            .collect();
        members.sort();
        let cohort_condition = in_list(subject.as_str(), &members);
        drill.push(
            cohort_condition
                .clone()
                .map_or(Value::Null, |c| input.drill(vec![c])),
        );
        // A cell: the cohort's records in that period (its share is their distinct subjects).
        let mut cells = vec![Value::Null, Value::Null];
        for offset in 0..=*periods as i32 {
            let from = bucket_after(*start, *bucket, offset);
            let to = bucket_after(*start, *bucket, offset + 1);
            cells.push(match &cohort_condition {
                Some(condition) if from <= input.as_of => input.drill(vec![
                    condition.clone(),
                    json!({"field": date, "op": "gte", "value": day_text(from)}),
                    json!({"field": date, "op": "lt", "value": day_text(to)}),
                ]),
                _ => Value::Null,
            });
        }
        drill_cells.push(cells);
    }
    let kind = report
        .definition
        .chart
        .as_ref()
        .map_or(ChartKind::Heatmap, |c| c.kind);
    let series: Vec<usize> = (2..columns.len()).collect();
    let chart = output::chart(kind, &columns, &rows, 0, &series);
    Ok(ReportOutput {
        columns,
        rows,
        chart,
        drill,
        drill_cells: Some(drill_cells),
        records: data.len(),
    })
}

pub(crate) fn kpi(report: &CompiledReport, input: &RunInput) -> Result<ReportOutput, ReportError> {
    let Analysis::Kpi {
        measure,
        date,
        period,
    } = &report.definition.analysis
    else {
        return Err(ReportError::Engine("not a KPI report".into()));
    };
    let data = &input.dataset;
    let current = bucket_start(input.as_of, *period);
    let previous = bucket_after(current, *period, -1);
    let next = bucket_after(current, *period, 1);
    // Each row's period: true the current, false the previous, missing neither.
    let period_of_day = |day: i32| {
        if (current..next).contains(&day) {
            Some(true)
        } else if (previous..current).contains(&day) {
            Some(false)
        } else {
            None
        }
    };
    let period_of = ColumnData::Bool(match data.column(date.as_str())? {
        ColumnData::Date(days) => days.iter().map(|d| d.and_then(period_of_day)).collect(),
        ColumnData::DateTime(millis) => millis
            .iter()
            .map(|m| m.and_then(|m| period_of_day(day_of_millis(m))))
            .collect(),
        other => vec![None; other.len()],
    });
    let aggregation = crate::grouping::Aggregation {
        op: measure.op,
        p: measure.p,
        input: match &measure.field {
            Some(field) => Some(data.column(field)?),
            None => None,
        },
    };
    // Rows of neither period form the missing-period group, which is left out below.
    let aggregated = crate::grouping::group(
        &[crate::key_columns::KeyColumn::Values(&period_of)],
        &[aggregation],
        data.len(),
        input.grouper,
    )?;
    let money = measure
        .field
        .as_ref()
        .is_some_and(|f| report.field(f.as_str()).column == ColumnType::Money)
        && !matches!(measure.op, MeasureOp::Count | MeasureOp::CountDistinct);
    let counting = matches!(measure.op, MeasureOp::Count | MeasureOp::CountDistinct);
    let mut values: HashMap<bool, f64> = HashMap::new();
    for (p, v) in aggregated.keys[0]
        .iter()
        .cloned()
        .zip(aggregated.values[0].iter().copied())
    {
        if let (Key::Bool(is_current), Some(v)) = (p, v) {
            values.insert(is_current, if money { v / MONEY_SCALE as f64 } else { v });
        }
    }
    let zero_if_counting = |p: bool| values.get(&p).copied().or(counting.then_some(0.0));
    let (now, before) = (zero_if_counting(true), zero_if_counting(false));
    // Counts stay whole numbers.
    let number = |v: Option<f64>| match v {
        Some(v) if counting => json!(v.round() as i64),
        other => other.map_or(Value::Null, output::round),
    };
    let value_type = if counting {
        OutputType::Integer
    } else {
        OutputType::Number
    };
    let change = match (now, before) {
        (Some(a), Some(b)) => Some(a - b),
        _ => None,
    };
    let change_ratio = match (now, before) {
        (Some(a), Some(b)) if b != 0.0 => Some((a - b) / b.abs()),
        _ => None,
    };
    let label = input.text(measure.label.as_ref(), measure.id.as_str());
    let columns = vec![
        OutputColumn::new(
            "period",
            OutputType::Period,
            if zh(input) { "本期" } else { "Period" },
        ),
        OutputColumn::new(measure.id.as_str(), value_type, label),
        OutputColumn::new(
            "previous_period",
            OutputType::Period,
            if zh(input) {
                "上期"
            } else {
                "Previous period"
            },
        ),
        OutputColumn::new(
            "previous",
            value_type,
            if zh(input) { "上期值" } else { "Previous" },
        ),
        OutputColumn::new(
            "change",
            value_type,
            if zh(input) { "变化" } else { "Change" },
        ),
        OutputColumn::new(
            "change_ratio",
            OutputType::Ratio,
            if zh(input) { "变化率" } else { "Change %" },
        ),
    ];
    let rows = vec![vec![
        json!(bucket_label(current, *period)),
        number(now),
        json!(bucket_label(previous, *period)),
        number(before),
        number(change),
        number(change_ratio),
    ]];
    let datetime = report.field(date.as_str()).column == ColumnType::DateTime;
    let text = |d: i32| {
        if datetime {
            datetime_text(d)
        } else {
            date_text(d)
        }
    };
    let drill = vec![input.drill(vec![
        json!({"field": date, "op": "gte", "value": text(current)}),
        json!({"field": date, "op": "lt", "value": text(next)}),
    ])];
    let kind = report
        .definition
        .chart
        .as_ref()
        .map_or(ChartKind::Kpi, |c| c.kind);
    let mut chart = output::chart(kind, &columns, &rows, 0, &[1]);
    if kind == ChartKind::Kpi {
        chart["option"] = json!({
            "value": rows[0][1],
            "previous": rows[0][3],
            "change_ratio": rows[0][5],
            "period": rows[0][0],
            "label": columns[1].label,
        });
    }
    Ok(ReportOutput {
        columns,
        rows,
        chart,
        drill,
        drill_cells: None,
        records: data.len(),
    })
}
