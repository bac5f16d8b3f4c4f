//! Grouping rows by key columns and aggregating measures: the step every aggregate report and KPI
//! runs over all its rows. Two ways, same answers:
//!
//! - **dense**: when every key is a small integer domain (dictionary codes, date buckets, booleans,
//!   whole numbers in a narrow range) and every measure is a count, or a sum, average, minimum,
//!   maximum, median or percentile of whole numbers (integers, money, dates), each row's group is an
//!   index into flat accumulator arrays — one pass over the rows per core, a block of rows at a
//!   time, no hashing, no copy of the columns (`dense.rs`). Sums are kept in 128 bits and must come out within ±2⁵³ (so averages divide the same
//!   exact sums polars would); anything else gives up before producing a value. Medians and
//!   percentiles count each group's values per value bucket and select within the few buckets
//!   their ranks fall in (`quantiles.rs`), interpolating linearly exactly as polars does;
//! - **polars**: everything else (distinct counts, floats, text keys, wide domains), as a lazy
//!   group-by.
//!
//! [`Grouper::Polars`] forces the second; a conformance test runs specs both ways over generated
//! data and requires identical outputs.

use polars::prelude::*;

use crate::ReportError;
use crate::data::ColumnData;
use crate::definition::MeasureOp;
use crate::frame::{self, Key};
use crate::key_columns::KeyColumn;

mod dense;
mod quantiles;

use dense::dense;

/// Which grouping a run may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Grouper {
    /// Dense arrays where they apply, polars elsewhere.
    #[default]
    Fastest,
    /// Always polars (the reference the dense path is tested against).
    Polars,
}

/// One measure to aggregate: its operation, percentile, and input column (`None`: count rows).
pub(crate) struct Aggregation<'a> {
    pub op: MeasureOp,
    pub p: Option<f64>,
    pub input: Option<&'a ColumnData>,
}

/// Grouped rows, as polars returns them: per key column its cells, per aggregation its values,
/// one entry per group (in no particular order).
pub(crate) struct Grouped {
    pub keys: Vec<Vec<Key>>,
    pub values: Vec<Vec<Option<f64>>>,
    pub height: usize,
}

/// Group `rows` rows by `keys` (none: one group of every row) and aggregate.
pub(crate) fn group(
    keys: &[KeyColumn],
    aggregations: &[Aggregation],
    rows: usize,
    grouper: Grouper,
) -> Result<Grouped, ReportError> {
    if grouper == Grouper::Fastest
        && let Some(grouped) = dense(keys, aggregations, rows)
    {
        return Ok(grouped);
    }
    with_polars(keys, aggregations, rows)
}

fn with_polars(
    keys: &[KeyColumn],
    aggregations: &[Aggregation],
    rows: usize,
) -> Result<Grouped, ReportError> {
    let mut columns = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        columns.push(frame::column(&format!("k{index}"), &key.materialize()));
    }
    for (index, aggregation) in aggregations.iter().enumerate() {
        if let Some(input) = aggregation.input {
            columns.push(frame::column(&format!("v{index}"), input));
        }
    }
    if columns.is_empty() {
        // Only counts with no dimension: a column to carry the frame's height.
        columns.push(frame::column("__rows", &ColumnData::Bool(vec![None; rows])));
    }
    let expressions: Vec<Expr> = aggregations
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let input = a.input.map(|_| format!("v{index}"));
            frame::aggregation(a.op, input.as_deref(), a.p, &format!("m{index}"))
        })
        .collect();
    let lazy = frame::frame(columns)?.lazy();
    let result = if keys.is_empty() {
        lazy.select(expressions).collect()?
    } else {
        let names: Vec<Expr> = (0..keys.len()).map(|i| col(format!("k{i}"))).collect();
        lazy.group_by(names).agg(expressions).collect()?
    };
    let keys = (0..keys.len())
        .map(|index| frame::keys(&result, &format!("k{index}")))
        .collect::<Result<_, _>>()?;
    let values = (0..aggregations.len())
        .map(|index| frame::numbers(&result, &format!("m{index}")))
        .collect::<Result<_, _>>()?;
    Ok(Grouped {
        keys,
        values,
        height: result.height(),
    })
}
