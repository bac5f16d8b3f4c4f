//! Grouping rows by key columns and aggregating measures: the step every aggregate report and KPI
//! runs over all its rows. Two ways, same answers:
//!
//! - **dense**: when every key is a small integer domain (dictionary codes, date buckets, booleans,
//!   whole numbers in a narrow range) and every measure is a count, or a sum, average, minimum,
//!   maximum, median or percentile of whole numbers (integers, money, dates), each row's group is an
//!   index into flat accumulator arrays — one pass over the rows per core, no hashing, no copy of the
//!   columns. Sums are kept in 128 bits and must come out within ±2⁵³ (so averages divide the same
//!   exact sums polars would); anything else gives up before producing a value. Medians and
//!   percentiles place each group's values in one buffer (a second pass) and select within each
//!   group's range, interpolating linearly exactly as polars does;
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
    keys: &[&ColumnData],
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
    keys: &[&ColumnData],
    aggregations: &[Aggregation],
    rows: usize,
) -> Result<Grouped, ReportError> {
    let mut columns = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        columns.push(frame::column(&format!("k{index}"), key));
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

/// Groups beyond which the dense arrays are not worth it.
const MAX_GROUPS: usize = 1 << 20;

/// The largest sum whose average is the same whether summed exactly or in floating point.
const EXACT_SUM: i128 = 1 << 53;

/// A key column as dense indexes: `index(row)` in `0..cardinality`.
enum DenseKey<'a> {
    /// Dictionary codes below `len`; missing is `len`.
    Codes(&'a [Option<u32>], u32),
    /// Days from `min`; missing is the last index.
    Days(&'a [Option<i32>], i32, usize),
    /// Whole numbers from `min`; missing is the last index.
    Wholes(&'a [Option<i64>], i64, usize),
    /// false, true, missing.
    Bools(&'a [Option<bool>]),
}

impl<'a> DenseKey<'a> {
    fn of(data: &'a ColumnData) -> Option<Self> {
        fn range<T: Copy + Ord>(values: impl Iterator<Item = T>) -> Option<(T, T)> {
            values.fold(None, |acc, v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
        }
        match data {
            ColumnData::Dict { codes, values } => {
                Some(Self::Codes(codes, u32::try_from(values.len()).ok()?))
            }
            ColumnData::Date(days) => {
                let (lo, hi) = range(days.iter().flatten().copied()).unwrap_or((0, 0));
                let width = usize::try_from(i64::from(hi) - i64::from(lo)).ok()? + 1;
                (width < MAX_GROUPS).then_some(Self::Days(days, lo, width))
            }
            ColumnData::Int(wholes) | ColumnData::Money(wholes) | ColumnData::DateTime(wholes) => {
                let (lo, hi) = range(wholes.iter().flatten().copied()).unwrap_or((0, 0));
                let width = usize::try_from(i128::from(hi) - i128::from(lo)).ok()? + 1;
                (width < MAX_GROUPS).then_some(Self::Wholes(wholes, lo, width))
            }
            ColumnData::Bool(bools) => Some(Self::Bools(bools)),
            ColumnData::Float(_) | ColumnData::Text(_) => None,
        }
    }

    fn cardinality(&self) -> usize {
        match self {
            Self::Codes(_, len) => *len as usize + 1,
            Self::Days(_, _, width) | Self::Wholes(_, _, width) => width + 1,
            Self::Bools(_) => 3,
        }
    }

    /// The row's index, or `None` for a code past the dictionary.
    #[inline]
    fn index(&self, row: usize) -> Option<usize> {
        match self {
            Self::Codes(codes, len) => match codes[row] {
                Some(code) if code < *len => Some(code as usize),
                Some(_) => None,
                None => Some(*len as usize),
            },
            Self::Days(days, lo, width) => {
                Some(days[row].map_or(*width, |d| (i64::from(d) - i64::from(*lo)) as usize))
            }
            Self::Wholes(wholes, lo, width) => {
                Some(wholes[row].map_or(*width, |w| w.wrapping_sub(*lo) as usize))
            }
            Self::Bools(bools) => Some(bools[row].map_or(2, usize::from)),
        }
    }

    /// The key polars reports for an index.
    fn key(&self, index: usize) -> Key {
        match self {
            Self::Codes(_, len) if index < *len as usize => Key::Int(index as i64),
            Self::Days(_, lo, width) if index < *width => Key::Int(i64::from(*lo) + index as i64),
            Self::Wholes(_, lo, width) if index < *width => Key::Int(lo.wrapping_add(index as i64)),
            Self::Bools(_) if index < 2 => Key::Bool(index == 1),
            _ => Key::Null,
        }
    }
}

/// A measure input of whole numbers.
#[derive(Clone, Copy)]
enum Wholes<'a> {
    Wide(&'a [Option<i64>]),
    Narrow(&'a [Option<i32>]),
}

impl Wholes<'_> {
    #[inline]
    fn get(&self, row: usize) -> Option<i64> {
        match self {
            Self::Wide(values) => values[row],
            Self::Narrow(values) => values[row].map(i64::from),
        }
    }
}

/// What the dense pass accumulates for one measure.
#[derive(Clone, Copy)]
enum Accumulate<'a> {
    /// Rows per group (`count` without a field).
    Rows,
    /// Values present per group (`count` of a field).
    Present(&'a ColumnData),
    Sum(Wholes<'a>),
    Avg(Wholes<'a>),
    Min(Wholes<'a>),
    Max(Wholes<'a>),
    /// A median or percentile (linear interpolation, as polars computes it).
    Quantile(Wholes<'a>, f64),
}

impl<'a> Accumulate<'a> {
    fn of(aggregation: &Aggregation<'a>) -> Option<Self> {
        let wholes = match aggregation.input {
            Some(ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v)) => {
                Some(Wholes::Wide(v))
            }
            Some(ColumnData::Date(v)) => Some(Wholes::Narrow(v)),
            _ => None,
        };
        match (aggregation.op, aggregation.input) {
            (MeasureOp::Count, None) => Some(Self::Rows),
            (MeasureOp::Count, Some(input)) => Some(Self::Present(input)),
            (MeasureOp::Sum, _) => wholes.map(Self::Sum),
            (MeasureOp::Avg, _) => wholes.map(Self::Avg),
            (MeasureOp::Min, _) => wholes.map(Self::Min),
            (MeasureOp::Max, _) => wholes.map(Self::Max),
            (MeasureOp::Median, _) => wholes.map(|w| Self::Quantile(w, 0.5)),
            (MeasureOp::Percentile, _) => {
                let p = aggregation.p.unwrap_or(0.5);
                wholes
                    .filter(|_| (0.0..=1.0).contains(&p))
                    .map(|w| Self::Quantile(w, p))
            }
            _ => None,
        }
    }
}

fn present(data: &ColumnData, row: usize) -> bool {
    match data {
        ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v) => v[row].is_some(),
        ColumnData::Float(v) => v[row].is_some(),
        ColumnData::Bool(v) => v[row].is_some(),
        ColumnData::Text(v) => v[row].is_some(),
        ColumnData::Dict { codes, .. } => codes[row].is_some(),
        ColumnData::Date(v) => v[row].is_some(),
    }
}

/// One core's accumulators: rows per group, and per measure a count and a sum, minimum or maximum.
struct Partial {
    rows: Vec<u64>,
    counts: Vec<Vec<u64>>,
    totals: Vec<Vec<i128>>,
}

impl Partial {
    fn new(groups: usize, measures: &[Accumulate]) -> Self {
        let totals = measures
            .iter()
            .map(|m| match m {
                Accumulate::Sum(_) | Accumulate::Avg(_) => vec![0; groups],
                Accumulate::Min(_) => vec![i128::MAX; groups],
                Accumulate::Max(_) => vec![i128::MIN; groups],
                Accumulate::Rows | Accumulate::Present(_) | Accumulate::Quantile(..) => Vec::new(),
            })
            .collect();
        Self {
            rows: vec![0; groups],
            counts: measures.iter().map(|_| vec![0; groups]).collect(),
            totals,
        }
    }

    /// Accumulate `rows`; `None` when a key is out of its domain.
    fn add(
        &mut self,
        keys: &[DenseKey],
        strides: &[usize],
        measures: &[Accumulate],
        rows: std::ops::Range<usize>,
    ) -> Option<()> {
        for row in rows {
            let mut group = 0;
            for (key, stride) in keys.iter().zip(strides) {
                group += key.index(row)? * stride;
            }
            self.rows[group] += 1;
            for (m, measure) in measures.iter().enumerate() {
                let value = match measure {
                    Accumulate::Rows => continue,
                    Accumulate::Present(data) => {
                        if present(data, row) {
                            self.counts[m][group] += 1;
                        }
                        continue;
                    }
                    Accumulate::Quantile(v, _) => {
                        if v.get(row).is_some() {
                            self.counts[m][group] += 1;
                        }
                        continue;
                    }
                    Accumulate::Sum(v)
                    | Accumulate::Avg(v)
                    | Accumulate::Min(v)
                    | Accumulate::Max(v) => v.get(row),
                };
                if let Some(value) = value {
                    self.counts[m][group] += 1;
                    let total = &mut self.totals[m][group];
                    let value = i128::from(value);
                    *total = match measure {
                        Accumulate::Min(_) => (*total).min(value),
                        Accumulate::Max(_) => (*total).max(value),
                        _ => *total + value,
                    };
                }
            }
        }
        Some(())
    }

    fn merge(&mut self, other: Partial, measures: &[Accumulate]) {
        for (mine, theirs) in self.rows.iter_mut().zip(other.rows) {
            *mine += theirs;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
        for ((mine, theirs), measure) in self.totals.iter_mut().zip(other.totals).zip(measures) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a = match measure {
                    Accumulate::Min(_) => (*a).min(b),
                    Accumulate::Max(_) => (*a).max(b),
                    _ => *a + b,
                };
            }
        }
    }
}

fn dense(keys: &[&ColumnData], aggregations: &[Aggregation], rows: usize) -> Option<Grouped> {
    if rows == 0 {
        return None;
    }
    let measures: Vec<Accumulate> = aggregations
        .iter()
        .map(Accumulate::of)
        .collect::<Option<_>>()?;
    let keys: Vec<DenseKey> = keys
        .iter()
        .map(|k| DenseKey::of(k))
        .collect::<Option<_>>()?;
    let mut groups = 1usize;
    let mut strides = Vec::with_capacity(keys.len());
    for key in &keys {
        strides.push(groups);
        groups = groups
            .checked_mul(key.cardinality())
            .filter(|g| *g <= MAX_GROUPS)?;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.div_ceil(100_000))
        .max(1);
    let per_thread = rows.div_ceil(threads);
    let partials: Vec<Option<Partial>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (keys, strides, measures) = (&keys, &strides, &measures);
                scope.spawn(move || {
                    let mut partial = Partial::new(groups, measures);
                    let range = t * per_thread..((t + 1) * per_thread).min(rows);
                    partial.add(keys, strides, measures, range)?;
                    Some(partial)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().ok().flatten())
            .collect()
    });
    let mut partials = partials.into_iter();
    let mut total = partials.next()??;
    for partial in partials {
        total.merge(partial?, &measures);
    }
    let present_groups: Vec<usize> = (0..groups).filter(|&g| total.rows[g] > 0).collect();
    let mut ordered = order_statistics(&keys, &strides, &measures, &total, rows)?;
    let mut values = Vec::with_capacity(measures.len());
    for (m, measure) in measures.iter().enumerate() {
        let mut column = Vec::with_capacity(present_groups.len());
        for &g in &present_groups {
            let count = total.counts[m][g];
            column.push(match measure {
                Accumulate::Rows => Some(total.rows[g] as f64),
                Accumulate::Present(_) => Some(count as f64),
                Accumulate::Sum(_) => {
                    let sum = total.totals[m][g];
                    if sum.abs() > EXACT_SUM {
                        return None;
                    }
                    Some(sum as f64)
                }
                Accumulate::Avg(_) => {
                    let sum = total.totals[m][g];
                    if sum.abs() > EXACT_SUM {
                        return None;
                    }
                    (count > 0).then(|| sum as f64 / count as f64)
                }
                Accumulate::Min(_) | Accumulate::Max(_) => {
                    (count > 0).then(|| total.totals[m][g] as f64)
                }
                Accumulate::Quantile(_, p) => ordered[m].as_mut().and_then(|(values, starts)| {
                    quantile(&mut values[starts[g]..starts[g + 1]], *p)
                }),
            });
        }
        values.push(column);
    }
    let keys = keys
        .iter()
        .zip(&strides)
        .map(|(key, stride)| {
            present_groups
                .iter()
                .map(|g| key.key((g / stride) % key.cardinality()))
                .collect()
        })
        .collect();
    Some(Grouped {
        keys,
        values,
        height: present_groups.len(),
    })
}

/// Values of a quantile measure grouped: every present value, each group's between
/// `starts[g]..starts[g + 1]`.
type Ordered = (Vec<i64>, Vec<usize>);

/// For each quantile measure, its values grouped (one more pass over the rows, placing each value
/// in its group's range); `None` for the other measures.
fn order_statistics(
    keys: &[DenseKey],
    strides: &[usize],
    measures: &[Accumulate],
    total: &Partial,
    rows: usize,
) -> Option<Vec<Option<Ordered>>> {
    let mut ordered: Vec<Option<Ordered>> = Vec::with_capacity(measures.len());
    let mut inputs = Vec::new();
    for (m, measure) in measures.iter().enumerate() {
        if let Accumulate::Quantile(values, _) = measure {
            let mut starts = Vec::with_capacity(total.counts[m].len() + 1);
            let mut at = 0usize;
            for count in &total.counts[m] {
                starts.push(at);
                at += *count as usize;
            }
            starts.push(at);
            inputs.push((m, *values, starts[..starts.len() - 1].to_vec()));
            ordered.push(Some((vec![0; at], starts)));
        } else {
            ordered.push(None);
        }
    }
    if inputs.is_empty() {
        return Some(ordered);
    }
    for row in 0..rows {
        let mut group = 0;
        for (key, stride) in keys.iter().zip(strides) {
            group += key.index(row)? * stride;
        }
        for (m, values, next) in inputs.iter_mut() {
            if let Some(value) = values.get(row)
                && let Some((buffer, _)) = ordered[*m].as_mut()
            {
                buffer[next[group]] = value;
                next[group] += 1;
            }
        }
    }
    Some(ordered)
}

/// The `p` quantile of `values` with linear interpolation, exactly as polars computes it (the
/// lower order statistic found by selection, the upper as the least value above it).
fn quantile(values: &mut [i64], p: f64) -> Option<f64> {
    match values.len() {
        0 => return None,
        1 => return Some(values[0] as f64),
        _ => {}
    }
    let float_index = (values.len() as f64 - 1.0) * p;
    let index = (float_index as usize).min(values.len() - 1);
    let top = float_index.ceil() as usize;
    let (_, lower, above) = values.select_nth_unstable(index);
    let lower = *lower as f64;
    if index == top {
        return Some(lower);
    }
    let upper = *above.iter().min()? as f64;
    if lower == upper {
        return Some(lower);
    }
    let proportion = float_index - index as f64;
    Some(proportion * (upper - lower) + lower)
}
