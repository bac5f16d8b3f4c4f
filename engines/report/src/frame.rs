//! The bridge to polars: typed columns become series, measures become aggregation expressions, and
//! result cells come back as [`Key`]s and numbers. Nothing outside this module names a polars type
//! except the analyses that build lazy plans.

use polars::prelude::*;

use crate::ReportError;
use crate::data::ColumnData;
use crate::definition::MeasureOp;

impl From<PolarsError> for ReportError {
    fn from(error: PolarsError) -> Self {
        ReportError::Engine(error.to_string())
    }
}

/// A polars column from typed values.
pub fn column(name: &str, data: &ColumnData) -> Column {
    let name = PlSmallStr::from(name);
    match data {
        ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v) => {
            Column::new(name, v.as_slice())
        }
        ColumnData::Float(v) => Column::new(name, v.as_slice()),
        ColumnData::Bool(v) => Column::new(name, v.as_slice()),
        ColumnData::Text(v) => Column::new(name, v.as_slice()),
        ColumnData::Dict { codes, .. } => Column::new(name, codes.as_slice()),
        ColumnData::Date(v) => Column::new(name, v.as_slice()),
    }
}

/// A frame of equally long columns.
pub fn frame(columns: Vec<Column>) -> Result<DataFrame, ReportError> {
    Ok(DataFrame::new_infer_height(columns)?)
}

/// The aggregation expression of `op` over input column `input` (`None` for a plain count).
pub fn aggregation(op: MeasureOp, input: Option<&str>, p: Option<f64>, alias: &str) -> Expr {
    let expression = match (op, input) {
        (MeasureOp::Count, None) => len(),
        (_, None) => lit(NULL),
        (MeasureOp::Count, Some(c)) => col(c).count(),
        (MeasureOp::CountDistinct, Some(c)) => col(c).drop_nulls().n_unique(),
        (MeasureOp::Sum, Some(c)) => col(c).sum(),
        (MeasureOp::Avg, Some(c)) => col(c).mean(),
        (MeasureOp::Min, Some(c)) => col(c).min(),
        (MeasureOp::Max, Some(c)) => col(c).max(),
        (MeasureOp::Median, Some(c)) => col(c).median(),
        (MeasureOp::Percentile, Some(c)) => {
            col(c).quantile(lit(p.unwrap_or(0.5)), QuantileMethod::Linear)
        }
        // Derived measures are computed on the result rows, never by polars.
        (_, Some(_)) => lit(NULL),
    };
    expression.alias(alias)
}

/// A grouping value as the engine compares, sorts and prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Key {
    pub fn from_any(value: AnyValue<'_>) -> Key {
        match value {
            AnyValue::Null => Key::Null,
            AnyValue::Boolean(b) => Key::Bool(b),
            AnyValue::Int8(v) => Key::Int(v.into()),
            AnyValue::Int16(v) => Key::Int(v.into()),
            AnyValue::Int32(v) => Key::Int(v.into()),
            AnyValue::Int64(v) => Key::Int(v),
            AnyValue::UInt8(v) => Key::Int(v.into()),
            AnyValue::UInt16(v) => Key::Int(v.into()),
            AnyValue::UInt32(v) => Key::Int(v.into()),
            AnyValue::UInt64(v) => Key::Int(v as i64),
            AnyValue::Float32(v) => Key::Float(v.into()),
            AnyValue::Float64(v) => Key::Float(v),
            AnyValue::String(s) => Key::Text(s.to_owned()),
            AnyValue::StringOwned(s) => Key::Text(s.to_string()),
            other => Key::Text(other.to_string()),
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Key::Int(v) => Some(*v as f64),
            Key::Float(v) => Some(*v),
            _ => None,
        }
    }

    /// Total order for sorting: nulls last, numbers before text.
    pub fn order(&self, other: &Key) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let rank = |k: &Key| match k {
            Key::Bool(_) => 0,
            Key::Int(_) | Key::Float(_) => 1,
            Key::Text(_) => 2,
            Key::Null => 3,
        };
        match (self, other) {
            (Key::Bool(a), Key::Bool(b)) => a.cmp(b),
            (Key::Text(a), Key::Text(b)) => a.cmp(b),
            (a, b) if rank(a) == 1 && rank(b) == 1 => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .unwrap_or(Ordering::Equal),
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }
}

/// Every cell of column `name` of `frame`.
pub fn keys(frame: &DataFrame, name: &str) -> Result<Vec<Key>, ReportError> {
    let column = frame.column(name)?;
    (0..column.len())
        .map(|i| Ok(Key::from_any(column.get(i)?)))
        .collect()
}

/// Every cell of column `name` of `frame` as a number.
pub fn numbers(frame: &DataFrame, name: &str) -> Result<Vec<Option<f64>>, ReportError> {
    Ok(keys(frame, name)?.iter().map(Key::as_f64).collect())
}
