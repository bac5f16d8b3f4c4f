//! Aggregate tables: dimensions (plain values, calendar buckets, numeric bins) × measures, grouped by
//! a polars lazy plan; then top-N with "others", derived measures, sorting and pivoting on the (small)
//! result, and a drill-down filter per row.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::buckets::{bucket_after, bucket_label, date_text, datetime_text};
use crate::compile::{CompiledReport, FieldUse};
use crate::data::{ColumnData, ColumnType, MONEY_SCALE};
use crate::definition::{Analysis, ChartKind, DateBucket, Dimension, Measure, MeasureOp};
use crate::frame::Key;
use crate::grouping::{Aggregation, group};
use crate::key_columns::{KeyColumn, decode, key_column};
use crate::output::{self, OutputColumn, OutputType, ReportOutput};
use crate::top::group_top;
use crate::{ReportError, RunInput};

/// How a dimension groups its field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Grouping {
    Plain,
    Bucket(DateBucket),
    Bin(f64),
}

struct DimensionPlan<'a> {
    spec: &'a Dimension,
    field: &'a FieldUse,
    grouping: Grouping,
}

/// One result row before rendering.
#[derive(Debug, Clone)]
struct Row {
    keys: Vec<Key>,
    /// The first dimension's "others" group of a top-N.
    others: bool,
    values: Vec<Option<f64>>,
}

/// How each dimension groups its field.
fn plan<'a>(report: &'a CompiledReport, dimensions: &'a [Dimension]) -> Vec<DimensionPlan<'a>> {
    dimensions
        .iter()
        .map(|spec| {
            let field = report.field(&spec.field);
            let grouping = match (spec.bucket, spec.bin) {
                (Some(bucket), _) => Grouping::Bucket(bucket),
                (None, Some(width)) => Grouping::Bin(width),
                (None, None) if field.column.is_temporal() => Grouping::Bucket(DateBucket::Day),
                (None, None) => Grouping::Plain,
            };
            DimensionPlan {
                spec,
                field,
                grouping,
            }
        })
        .collect()
}

/// The aggregate spec's parts.
type AggregateParts<'a> = (
    &'a [Dimension],
    &'a [Measure],
    &'a [crate::definition::SortSpec],
    &'a Option<crate::definition::TopN>,
    &'a Option<trellis_model::Identifier>,
);

fn parts(report: &CompiledReport) -> Result<AggregateParts<'_>, ReportError> {
    match &report.definition.analysis {
        Analysis::Aggregate {
            dimensions,
            measures,
            sort,
            top,
            pivot,
        } => Ok((dimensions, measures, sort, top, pivot)),
        _ => Err(ReportError::Engine("not an aggregate report".into())),
    }
}

/// Shape groups computed elsewhere (a database running the same grouping): `groups` are the keys
/// (bucket starts in days, bins as indexes, text as text) and the aggregated values in the engine's
/// units (money in ten-thousandths), one entry per measure (derived ones `None`).
pub fn shape_groups(
    report: &CompiledReport,
    input: &RunInput,
    groups: Vec<(Vec<Key>, Vec<Option<f64>>)>,
) -> Result<ReportOutput, ReportError> {
    let (dimensions, measures, sort, _, pivot) = parts(report)?;
    let plans = plan(report, dimensions);
    let rows = groups
        .into_iter()
        .map(|(keys, values)| Row {
            keys,
            others: false,
            values: measures
                .iter()
                .zip(values)
                .map(|(measure, value)| scale(measure, report, value))
                .collect(),
        })
        .collect();
    shape(report, input, &plans, measures, sort, pivot, rows, None)
}

pub(crate) fn run(report: &CompiledReport, input: &RunInput) -> Result<ReportOutput, ReportError> {
    let Analysis::Aggregate {
        dimensions,
        measures,
        sort,
        top,
        pivot,
    } = &report.definition.analysis
    else {
        return Err(ReportError::Engine("not an aggregate report".into()));
    };
    let data = &input.dataset;
    let plans = plan(report, dimensions);

    // Key columns (bucketed or binned where the dimension says so) and measure inputs.
    // Numeric bins are computed here; calendar buckets while grouping (`KeyColumn`).
    let mut binned: Vec<Option<ColumnData>> = Vec::new();
    for plan in &plans {
        let column = data.column(plan.field.name.as_str())?;
        binned.push(match plan.grouping {
            Grouping::Bin(_) => Some(key_column(column, plan.grouping).into_owned()),
            _ => None,
        });
    }
    let mut key_data: Vec<KeyColumn> = Vec::new();
    for (plan, binned) in plans.iter().zip(&binned) {
        let column = data.column(plan.field.name.as_str())?;
        key_data.push(match (plan.grouping, binned) {
            (_, Some(binned)) => KeyColumn::Values(binned),
            (Grouping::Bucket(bucket), None) => KeyColumn::DayBuckets(column, bucket),
            _ => KeyColumn::Values(column),
        });
    }
    let aggregated: Vec<usize> = (0..measures.len())
        .filter(|&m| !measures[m].op.is_derived())
        .collect();
    let aggregation = |m: usize| -> Result<Aggregation, ReportError> {
        let measure = &measures[m];
        Ok(Aggregation {
            op: measure.op,
            p: measure.p,
            input: match &measure.field {
                Some(field) => Some(data.column(field)?),
                None => None,
            },
        })
    };
    let aggregations: Vec<Aggregation> = aggregated
        .iter()
        .map(|&m| aggregation(m))
        .collect::<Result<_, _>>()?;

    // Top-N (`top.rs`): the first key of each group becomes its place among the kept values
    // (−1: "others"); `key_data` keeps the values.
    let (result, mut top_keys) = match (top, plans.is_empty()) {
        (Some(top), false) => {
            let by = measures
                .iter()
                .position(|m| m.id == top.by)
                .ok_or_else(|| ReportError::Engine(format!("unknown measure '{}'", top.by)))?;
            group_top(
                &key_data,
                &aggregations,
                &aggregation(by)?,
                aggregated.iter().position(|&m| m == by),
                top.n,
                data.len(),
                input.grouper,
            )?
        }
        _ => (
            group(&key_data, &aggregations, data.len(), input.grouper)?,
            None,
        ),
    };

    // Back to rows.
    let height = result.height;
    let key_cells = result.keys;
    let mut computed = result.values.into_iter();
    let mut value_cells = Vec::new();
    for measure in measures {
        value_cells.push(if measure.op.is_derived() {
            vec![None; height]
        } else {
            computed.next().unwrap_or_default()
        });
    }
    // Dictionary-coded text dimensions come back as codes; decode them (and the kept top-N keys).
    let dictionaries: Vec<Option<&[String]>> = key_data
        .iter()
        .map(|data| match data {
            KeyColumn::Values(ColumnData::Dict { values, .. }) => Some(&values[..]),
            _ => None,
        })
        .collect();
    if let (Some(kept), Some(dictionary)) = (&mut top_keys, dictionaries.first()) {
        for key in kept.iter_mut() {
            decode(key, dictionary);
        }
    }
    let mut rows: Vec<Row> = Vec::with_capacity(height);
    for row in 0..height {
        let mut keys: Vec<Key> = key_cells.iter().map(|c| c[row].clone()).collect();
        let mut others = false;
        if let Some(kept) = &top_keys {
            match keys[0] {
                Key::Int(position) if position >= 0 => keys[0] = kept[position as usize].clone(),
                _ => {
                    others = true;
                    keys[0] = Key::Null;
                }
            }
        }
        for (key, dictionary) in keys.iter_mut().zip(&dictionaries) {
            decode(key, dictionary);
        }
        if others && top.as_ref().is_some_and(|t| !t.others) {
            continue;
        }
        let values = measures
            .iter()
            .enumerate()
            .map(|(m, measure)| scale(measure, report, value_cells[m][row]))
            .collect();
        rows.push(Row {
            keys,
            others,
            values,
        });
    }

    shape(
        report,
        input,
        &plans,
        measures,
        sort,
        pivot,
        rows,
        top_keys.as_deref(),
    )
}

/// Derived measures, order, rendering, drill-down filters, pivot and chart for grouped rows.
#[allow(clippy::too_many_arguments)]
fn shape(
    report: &CompiledReport,
    input: &RunInput,
    plans: &[DimensionPlan],
    measures: &[Measure],
    sort: &[crate::definition::SortSpec],
    pivot: &Option<trellis_model::Identifier>,
    mut rows: Vec<Row>,
    top_keys: Option<&[Key]>,
) -> Result<ReportOutput, ReportError> {
    // Order-independent derived measures, then order, then running totals and changes.
    derive(measures, &mut rows, |op| {
        matches!(op, MeasureOp::Ratio | MeasureOp::Share)
    });
    rows.sort_by(|a, b| {
        a.others.cmp(&b.others).then_with(|| {
            for (x, y) in a.keys.iter().zip(&b.keys) {
                let ordering = x.order(y);
                if ordering.is_ne() {
                    return ordering;
                }
            }
            std::cmp::Ordering::Equal
        })
    });
    if !sort.is_empty() {
        rows.sort_by(|a, b| {
            if a.others != b.others {
                return a.others.cmp(&b.others);
            }
            for key in sort {
                let ordering =
                    if let Some(d) = plans.iter().position(|p| p.spec.name() == key.by.as_str()) {
                        a.keys[d].order(&b.keys[d])
                    } else if let Some(m) = measures.iter().position(|m| m.id == key.by) {
                        let (x, y) = (a.values[m], b.values[m]);
                        match (x, y) {
                            (Some(x), Some(y)) => x.total_cmp(&y),
                            (None, Some(_)) => std::cmp::Ordering::Greater,
                            (Some(_), None) => std::cmp::Ordering::Less,
                            (None, None) => std::cmp::Ordering::Equal,
                        }
                    } else {
                        std::cmp::Ordering::Equal
                    };
                let ordering = if key.descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    derive(measures, &mut rows, |op| {
        matches!(op, MeasureOp::RunningTotal | MeasureOp::Change)
    });

    // Render.
    let mut columns: Vec<OutputColumn> = plans
        .iter()
        .map(|plan| dimension_column(plan, input))
        .collect();
    let measure_types: Vec<OutputType> = measures
        .iter()
        .map(|m| measure_type(m, measures, report))
        .collect();
    for (measure, kind) in measures.iter().zip(&measure_types) {
        columns.push(OutputColumn::new(
            measure.id.as_str(),
            *kind,
            input.text(measure.label.as_ref(), measure.id.as_str()),
        ));
    }
    let others_label = if input.locale.starts_with("zh") {
        "其他"
    } else {
        "Others"
    };
    let mut drill = Vec::with_capacity(rows.len());
    let mut rendered = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut cells: Vec<Value> = plans
            .iter()
            .zip(&row.keys)
            .map(|(plan, key)| dimension_cell(plan, key))
            .collect();
        if row.others {
            cells[0] = json!(others_label);
        }
        for (value, (measure, kind)) in row.values.iter().zip(measures.iter().zip(&measure_types)) {
            cells.push(measure_cell(*value, *kind, measure, report));
        }
        rendered.push(cells);
        drill.push(if input.rows_only {
            Value::Null
        } else {
            row_drill(plans, row, top_keys, input)
        });
    }

    let (columns, rendered, drill, series_from, drill_cells) = match pivot {
        Some(pivot) => {
            let p = plans
                .iter()
                .position(|plan| plan.spec.name() == pivot.as_str())
                .ok_or_else(|| ReportError::Engine(format!("unknown pivot '{pivot}'")))?;
            let (columns, rendered, drill, series_from, cells) =
                pivot_rows(&columns, &rendered, &rows, &drill, p, plans.len(), input);
            (columns, rendered, drill, series_from, Some(cells))
        }
        None => (columns, rendered, drill, plans.len(), None),
    };

    let chart_spec = report.definition.chart.as_ref();
    let default_kind = match plans.first().map(|p| p.grouping) {
        None => ChartKind::Kpi,
        Some(Grouping::Bucket(_)) => ChartKind::Line,
        Some(_) => ChartKind::Bar,
    };
    let kind = chart_spec.map_or(default_kind, |c| c.kind);
    let x = chart_spec
        .and_then(|c| c.x.as_ref())
        .and_then(|x| columns.iter().position(|c| c.name == x.as_str()))
        .unwrap_or(0);
    let series: Vec<usize> = match chart_spec.filter(|c| !c.y.is_empty()) {
        Some(c) => {
            c.y.iter()
                .filter_map(|y| columns.iter().position(|col| col.name == y.as_str()))
                .collect()
        }
        None => (series_from..columns.len()).collect(),
    };
    let chart = if input.rows_only {
        Value::Null
    } else {
        output::chart(
            kind,
            &columns,
            &rendered,
            x.min(columns.len().saturating_sub(1)),
            &series,
        )
    };
    Ok(ReportOutput {
        columns,
        rows: rendered,
        chart,
        drill,
        drill_cells,
        records: input.dataset.len(),
    })
}

/// Polars' raw aggregate in the unit people read (money in currency units).
fn scale(measure: &Measure, report: &CompiledReport, value: Option<f64>) -> Option<f64> {
    let money = measure
        .field
        .as_ref()
        .is_some_and(|f| report.field(f.as_str()).column == ColumnType::Money);
    let counting = matches!(measure.op, MeasureOp::Count | MeasureOp::CountDistinct);
    match value {
        Some(v) if money && !counting => Some(v / MONEY_SCALE as f64),
        other => other,
    }
}

fn derive(measures: &[Measure], rows: &mut [Row], which: impl Fn(MeasureOp) -> bool) {
    for (index, measure) in measures.iter().enumerate() {
        if !which(measure.op) {
            continue;
        }
        let source: Vec<usize> = measure
            .of
            .iter()
            .filter_map(|id| measures.iter().position(|m| m.id == *id))
            .collect();
        let Some(&first) = source.first() else {
            continue;
        };
        match measure.op {
            MeasureOp::Ratio => {
                let second = source.get(1).copied().unwrap_or(first);
                for row in rows.iter_mut() {
                    row.values[index] = match (row.values[first], row.values[second]) {
                        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                        _ => None,
                    };
                }
            }
            MeasureOp::Share => {
                let total: f64 = rows.iter().filter_map(|r| r.values[first]).sum();
                for row in rows.iter_mut() {
                    row.values[index] = row.values[first]
                        .filter(|_| total != 0.0)
                        .map(|v| v / total);
                }
            }
            MeasureOp::RunningTotal => {
                let mut sum = 0.0;
                for row in rows.iter_mut() {
                    sum += row.values[first].unwrap_or(0.0);
                    row.values[index] = Some(sum);
                }
            }
            MeasureOp::Change => {
                let mut previous: Option<f64> = None;
                for row in rows.iter_mut() {
                    let current = row.values[first];
                    row.values[index] = match (previous, current) {
                        (Some(p), Some(c)) if p != 0.0 => Some((c - p) / p.abs()),
                        _ => None,
                    };
                    previous = current;
                }
            }
            _ => {}
        }
    }
}

fn dimension_column(plan: &DimensionPlan, input: &RunInput) -> OutputColumn {
    let kind = match (plan.grouping, plan.field.column) {
        (Grouping::Bucket(_), _) => OutputType::Period,
        (Grouping::Bin(_), _) => OutputType::Bin,
        (_, ColumnType::Int) => OutputType::Integer,
        (_, ColumnType::Float) => OutputType::Number,
        (_, ColumnType::Bool) => OutputType::Boolean,
        _ => OutputType::Text,
    };
    let label = plan
        .spec
        .label
        .as_ref()
        .or(plan.field.label.as_ref())
        .and_then(|l| l.get(&input.locale))
        .unwrap_or(plan.spec.name())
        .to_owned();
    let mut column = OutputColumn::new(plan.spec.name(), kind, label);
    column.labels = plan
        .field
        .options
        .iter()
        .map(|(value, label)| (value.clone(), input.text(Some(label), value)))
        .collect();
    column
}

fn dimension_cell(plan: &DimensionPlan, key: &Key) -> Value {
    match (plan.grouping, key) {
        (_, Key::Null) => Value::Null,
        (Grouping::Bucket(bucket), Key::Int(start)) => json!(bucket_label(*start as i32, bucket)),
        (Grouping::Bin(width), Key::Int(bin)) => output::round(*bin as f64 * width),
        (_, Key::Bool(b)) => json!(b),
        (_, Key::Int(v)) => json!(v),
        (_, Key::Float(v)) => output::round(*v),
        (_, Key::Text(s)) => json!(s),
    }
}

fn measure_type(measure: &Measure, all: &[Measure], report: &CompiledReport) -> OutputType {
    let field_column = measure
        .field
        .as_ref()
        .map(|f| report.field(f.as_str()).column);
    match measure.op {
        MeasureOp::Count | MeasureOp::CountDistinct => OutputType::Integer,
        MeasureOp::Ratio => OutputType::Number,
        MeasureOp::Share | MeasureOp::Change => OutputType::Ratio,
        MeasureOp::RunningTotal => measure
            .of
            .first()
            .and_then(|id| all.iter().find(|m| m.id == *id))
            .map_or(OutputType::Number, |m| measure_type(m, all, report)),
        MeasureOp::Sum | MeasureOp::Min | MeasureOp::Max => match field_column {
            Some(ColumnType::Int) => OutputType::Integer,
            Some(ColumnType::Money) => OutputType::Money,
            Some(ColumnType::Date | ColumnType::DateTime) => OutputType::Date,
            _ => OutputType::Number,
        },
        MeasureOp::Avg | MeasureOp::Median | MeasureOp::Percentile => match field_column {
            Some(ColumnType::Money) => OutputType::Money,
            _ => OutputType::Number,
        },
    }
}

fn measure_cell(
    value: Option<f64>,
    kind: OutputType,
    measure: &Measure,
    report: &CompiledReport,
) -> Value {
    let Some(value) = value else {
        return Value::Null;
    };
    match kind {
        OutputType::Integer => json!(value.round() as i64),
        OutputType::Money => output::round((value * 100.0).round() / 100.0),
        OutputType::Date => {
            let datetime = measure
                .field
                .as_ref()
                .is_some_and(|f| report.field(f.as_str()).column == ColumnType::DateTime);
            if datetime {
                chrono::DateTime::from_timestamp_millis(value as i64).map_or(Value::Null, |t| {
                    json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                })
            } else {
                json!(date_text(value as i32))
            }
        }
        _ => output::round(value),
    }
}

/// The records filter behind one row: the base conditions and one condition per dimension.
fn row_drill(plans: &[DimensionPlan], row: &Row, top: Option<&[Key]>, input: &RunInput) -> Value {
    let mut conditions = Vec::new();
    for (index, (plan, key)) in plans.iter().zip(&row.keys).enumerate() {
        let field = plan.spec.field.as_str();
        if index == 0 && row.others {
            if plan.grouping != Grouping::Plain {
                return Value::Null;
            }
            let kept = top.unwrap_or_default();
            let values: Vec<Value> = kept
                .iter()
                .filter(|k| **k != Key::Null)
                .map(key_json)
                .collect();
            let mut alternatives = vec![json!({"field": field, "op": "in", "value": values})];
            if kept.contains(&Key::Null) {
                alternatives.push(json!({"field": field, "op": "is_empty", "value": true}));
            }
            conditions.push(json!({"not": {"or": alternatives}}));
            continue;
        }
        let condition = match (plan.grouping, key) {
            (_, Key::Null) => json!({"field": field, "op": "is_empty", "value": true}),
            (Grouping::Bucket(bucket), Key::Int(start)) => {
                let start = *start as i32;
                let next = bucket_after(start, bucket, 1);
                let text = |days: i32| {
                    if plan.field.column == ColumnType::DateTime {
                        datetime_text(days)
                    } else {
                        date_text(days)
                    }
                };
                json!({"and": [
                    {"field": field, "op": "gte", "value": text(start)},
                    {"field": field, "op": "lt", "value": text(next)},
                ]})
            }
            (Grouping::Bin(width), Key::Int(bin)) => json!({"and": [
                {"field": field, "op": "gte", "value": output::round(*bin as f64 * width)},
                {"field": field, "op": "lt", "value": output::round((*bin + 1) as f64 * width)},
            ]}),
            (_, key) => json!({"field": field, "op": "eq", "value": key_json(key)}),
        };
        conditions.push(condition);
    }
    input.drill(conditions)
}

fn key_json(key: &Key) -> Value {
    match key {
        Key::Null => Value::Null,
        Key::Bool(b) => json!(b),
        Key::Int(v) => json!(v),
        Key::Float(v) => json!(v),
        Key::Text(s) => json!(s),
    }
}

type Pivoted = (
    Vec<OutputColumn>,
    Vec<Vec<Value>>,
    Vec<Value>,
    usize,
    Vec<Vec<Value>>,
);

/// Spread dimension `p`'s values into columns: one column per value (× measure when several).
fn pivot_rows(
    columns: &[OutputColumn],
    rendered: &[Vec<Value>],
    rows: &[Row],
    drill: &[Value],
    p: usize,
    dimension_count: usize,
    input: &RunInput,
) -> Pivoted {
    let measure_columns: Vec<usize> = (dimension_count..columns.len()).collect();
    let mut pivot_values: Vec<(Key, Value)> = Vec::new();
    for (row, cells) in rows.iter().zip(rendered) {
        if !pivot_values.iter().any(|(k, _)| *k == row.keys[p]) {
            pivot_values.push((row.keys[p].clone(), cells[p].clone()));
        }
    }
    pivot_values.sort_by(|a, b| a.0.order(&b.0));
    let mut out_columns: Vec<OutputColumn> = (0..dimension_count)
        .filter(|&d| d != p)
        .map(|d| columns[d].clone())
        .collect();
    let row_dimensions = out_columns.len();
    for (_, shown) in &pivot_values {
        let name = match shown {
            Value::String(s) => columns[p]
                .labels
                .get(s)
                .cloned()
                .unwrap_or_else(|| s.clone()),
            Value::Null => "—".to_owned(),
            other => other.to_string(),
        };
        for &m in &measure_columns {
            let (column_name, label) = if measure_columns.len() == 1 {
                (name.clone(), name.clone())
            } else {
                (
                    format!("{name} · {}", columns[m].name),
                    format!("{name} · {}", columns[m].label),
                )
            };
            out_columns.push(OutputColumn::new(column_name, columns[m].kind, label));
        }
    }
    let mut groups: HashMap<String, usize> = HashMap::new();
    let mut out_rows: Vec<Vec<Value>> = Vec::new();
    let mut out_drill: Vec<Value> = Vec::new();
    let mut out_cells: Vec<Vec<Value>> = Vec::new();
    for ((row, cells), row_drill) in rows.iter().zip(rendered).zip(drill) {
        let group_key: Vec<Value> = (0..dimension_count)
            .filter(|&d| d != p)
            .map(|d| cells[d].clone())
            .collect();
        let signature = serde_json::to_string(&group_key).unwrap_or_default();
        let at = *groups.entry(signature).or_insert_with(|| {
            let mut fresh = group_key.clone();
            fresh.resize(out_columns.len(), Value::Null);
            out_rows.push(fresh);
            out_drill.push(without_condition(row_drill, p, input));
            out_cells.push(vec![Value::Null; out_columns.len()]);
            out_rows.len() - 1
        });
        let pivot_index = pivot_values
            .iter()
            .position(|(k, _)| *k == row.keys[p])
            .unwrap_or(0);
        for (offset, &m) in measure_columns.iter().enumerate() {
            let column = row_dimensions + pivot_index * measure_columns.len() + offset;
            out_rows[at][column] = cells[m].clone();
            out_cells[at][column] = row_drill.clone();
        }
    }
    (out_columns, out_rows, out_drill, row_dimensions, out_cells)
}

/// A row's drill filter without the condition of dimension `p` (a pivoted row spans its values).
fn without_condition(drill: &Value, p: usize, input: &RunInput) -> Value {
    let Some(all) = drill.get("and").and_then(Value::as_array) else {
        return Value::Null;
    };
    let base = input.drill_base.len();
    let kept: Vec<Value> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != base + p)
        .map(|(_, v)| v.clone())
        .collect();
    json!({ "and": kept })
}
