//! What a run returns (CONTRACT.md §2): typed columns, rows, a chart section ready for echarts, and
//! per row the records filter that produces it (drill-down).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::definition::ChartKind;

/// Column types of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    Text,
    Integer,
    Number,
    Money,
    Boolean,
    Date,
    /// A calendar bucket label such as `2026-03`.
    Period,
    /// A numeric bin, given by its lower bound.
    Bin,
    /// A fraction 0–1.
    Ratio,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: OutputType,
    /// Shown to people, in the caller's language.
    pub label: String,
    /// Readable labels of coded values (select options, flow states).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl OutputColumn {
    pub fn new(name: impl Into<String>, kind: OutputType, label: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            label: label.into(),
            labels: BTreeMap::new(),
        }
    }
}

/// A report's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportOutput {
    pub columns: Vec<OutputColumn>,
    pub rows: Vec<Vec<Value>>,
    pub chart: Value,
    /// Per row: the records filter (CONTRACT.md filter tree) selecting exactly the records behind it,
    /// or `null` where no filter can say it.
    pub drill: Vec<Value>,
    /// For pivots and cohort tables, where each cell of a row covers different records: per row, per
    /// column, the records filter behind that cell (`null` for label columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill_cells: Option<Vec<Vec<Value>>>,
    /// How many records the report read.
    pub records: usize,
}

/// Round for output (keeps JSON small and stable).
pub fn round(value: f64) -> Value {
    let rounded = (value * 1e6).round() / 1e6;
    serde_json::Number::from_f64(rounded).map_or(Value::Null, Value::Number)
}

/// The echarts part of an output: `{"kind", "option"}`.
pub fn chart(
    kind: ChartKind,
    columns: &[OutputColumn],
    rows: &[Vec<Value>],
    x: usize,
    series: &[usize],
) -> Value {
    let label_of = |cell: &Value, column: &OutputColumn| -> Value {
        match cell {
            Value::String(s) => json!(column.labels.get(s).unwrap_or(s)),
            Value::Null => json!("—"),
            other => json!(other.to_string()),
        }
    };
    // A table (a million customers' scores) has no chart to build.
    if kind == ChartKind::Table {
        return json!({"kind": kind, "option": Value::Null});
    }
    let categories: Vec<Value> = rows
        .iter()
        .map(|row| label_of(&row[x], &columns[x]))
        .collect();
    let option = match kind {
        ChartKind::Table => Value::Null,
        ChartKind::Kpi => {
            let first = rows.first();
            json!({
                "value": first.and_then(|r| series.first().map(|&i| r[i].clone())),
                "series": series.iter().map(|&i| json!({"name": columns[i].label, "value": first.map(|r| r[i].clone())})).collect::<Vec<_>>(),
            })
        }
        ChartKind::Pie | ChartKind::Funnel => {
            let value_column = series.first().copied().unwrap_or(x);
            json!({
                "tooltip": {"trigger": "item"},
                "legend": {},
                "series": [{
                    "type": if kind == ChartKind::Pie { "pie" } else { "funnel" },
                    "name": columns[value_column].label,
                    "data": rows.iter().zip(&categories).map(|(row, name)| json!({"name": name, "value": row[value_column]})).collect::<Vec<_>>(),
                }]
            })
        }
        ChartKind::Heatmap => {
            // x: the first column, y: the other series columns, value: the cells.
            let data: Vec<Value> = rows
                .iter()
                .enumerate()
                .flat_map(|(r, row)| {
                    series
                        .iter()
                        .enumerate()
                        .map(move |(c, &i)| json!([c, r, row[i]]))
                })
                .collect();
            json!({
                "tooltip": {},
                "xAxis": {"type": "category", "data": series.iter().map(|&i| columns[i].label.clone()).collect::<Vec<_>>()},
                "yAxis": {"type": "category", "data": categories},
                "visualMap": {"min": 0, "max": 1, "calculable": true, "orient": "horizontal", "left": "center"},
                "series": [{"type": "heatmap", "data": data, "label": {"show": true}}]
            })
        }
        ChartKind::Scatter => json!({
            "tooltip": {},
            "xAxis": {"type": "value", "name": columns[x].label},
            "yAxis": {"type": "value"},
            "series": series.iter().map(|&i| json!({
                "type": "scatter",
                "name": columns[i].label,
                "data": rows.iter().map(|row| json!([row[x], row[i]])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        ChartKind::Bar | ChartKind::Line | ChartKind::Area => json!({
            "tooltip": {"trigger": "axis"},
            "legend": {},
            "xAxis": {"type": "category", "data": categories},
            "yAxis": {"type": "value"},
            "series": series.iter().map(|&i| {
                let mut entry = json!({
                    "type": if kind == ChartKind::Bar { "bar" } else { "line" },
                    "name": columns[i].label,
                    "data": rows.iter().map(|row| row[i].clone()).collect::<Vec<_>>(),
                });
                if kind == ChartKind::Area {
                    entry["areaStyle"] = json!({});
                }
                entry
            }).collect::<Vec<_>>(),
        }),
    };
    json!({"kind": kind, "option": option})
}
