//! The dense way of grouping: each row's group is an index into flat accumulator arrays.
//!
//! Rows are taken a block at a time (a few thousand, so the block's group indexes stay in the
//! first-level cache): every key column adds its part of each row's group index in one tight loop
//! of its own kind, then every measure accumulates the block in one tight loop of its own kind —
//! no per-row dispatch on column or measure kinds. The rows are split between the cores, each core
//! keeping its own accumulators, merged at the end.

use std::ops::Range;

use super::quantiles::quantiles;
use super::{Aggregation, Grouped};
use crate::buckets::bucket_start;
use crate::data::ColumnData;
use crate::definition::{DateBucket, MeasureOp};
use crate::frame::Key;
use crate::key_columns::KeyColumn;

/// Groups beyond which the dense arrays are not worth it.
const MAX_GROUPS: usize = 1 << 20;

/// The largest sum whose average is the same whether summed exactly or in floating point.
const EXACT_SUM: i128 = 1 << 53;

/// Rows per block.
const BLOCK: usize = 2048;

/// A key column as dense indexes in `0..cardinality`.
pub(super) enum DenseKey<'a> {
    /// Dictionary codes below `len`; missing is `len`.
    Codes(&'a [Option<u32>], u32),
    /// Days from `min`; missing is the last index.
    Days(&'a [Option<i32>], i32, usize),
    /// Whole numbers from `min`; missing is the last index.
    Wholes(&'a [Option<i64>], i64, usize),
    /// false, true, missing.
    Bools(&'a [Option<bool>]),
    /// Calendar buckets of days from `lo` through a per-day table of bucket indexes, `starts`
    /// holding each bucket's first day; missing is the last index.
    DayTable {
        days: &'a [Option<i32>],
        lo: i32,
        table: Vec<u32>,
        starts: Vec<i32>,
    },
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

    /// Calendar buckets of `days` (spanning at most ~270 years, else `None`).
    fn day_buckets(days: &'a [Option<i32>], bucket: DateBucket) -> Option<Self> {
        let (mut lo, mut hi) = (i32::MAX, i32::MIN);
        for day in days.iter().flatten() {
            lo = lo.min(*day);
            hi = hi.max(*day);
        }
        if lo > hi {
            (lo, hi) = (0, -1);
        }
        if i64::from(hi) - i64::from(lo) > 100_000 {
            return None;
        }
        let mut table = Vec::with_capacity((hi - lo + 1).max(0) as usize);
        let mut starts: Vec<i32> = Vec::new();
        for day in lo..=hi {
            let start = bucket_start(day, bucket);
            if starts.last() != Some(&start) {
                starts.push(start);
            }
            table.push((starts.len() - 1) as u32);
        }
        Some(Self::DayTable {
            days,
            lo,
            table,
            starts,
        })
    }

    fn cardinality(&self) -> usize {
        match self {
            Self::DayTable { starts, .. } => starts.len() + 1,
            Self::Codes(_, len) => *len as usize + 1,
            Self::Days(_, _, width) | Self::Wholes(_, _, width) => width + 1,
            Self::Bools(_) => 3,
        }
    }

    /// Add each row's index times `stride` to its entry of `out` (rows `start..start + out.len()`);
    /// `false` when a code lies past the dictionary.
    fn add_indexes(&self, start: usize, stride: usize, out: &mut [usize]) -> bool {
        let rows = start..start + out.len();
        match self {
            Self::Codes(codes, len) => {
                let mut within = true;
                for (o, code) in out.iter_mut().zip(&codes[rows]) {
                    let index = match code {
                        Some(code) => {
                            within &= code < len;
                            *code
                        }
                        None => *len,
                    };
                    *o += index as usize * stride;
                }
                within
            }
            Self::Days(days, lo, width) => {
                for (o, day) in out.iter_mut().zip(&days[rows]) {
                    *o += day.map_or(*width, |d| (i64::from(d) - i64::from(*lo)) as usize) * stride;
                }
                true
            }
            Self::Wholes(wholes, lo, width) => {
                for (o, whole) in out.iter_mut().zip(&wholes[rows]) {
                    *o += whole.map_or(*width, |w| w.wrapping_sub(*lo) as usize) * stride;
                }
                true
            }
            Self::Bools(bools) => {
                for (o, flag) in out.iter_mut().zip(&bools[rows]) {
                    *o += flag.map_or(2, usize::from) * stride;
                }
                true
            }
            Self::DayTable {
                days,
                lo,
                table,
                starts,
            } => {
                let missing = starts.len();
                for (o, day) in out.iter_mut().zip(&days[rows]) {
                    *o += day.map_or(missing, |d| table[(d - lo) as usize] as usize) * stride;
                }
                true
            }
        }
    }

    /// The key polars reports for an index.
    fn key(&self, index: usize) -> Key {
        match self {
            Self::Codes(_, len) if index < *len as usize => Key::Int(index as i64),
            Self::Days(_, lo, width) if index < *width => Key::Int(i64::from(*lo) + index as i64),
            Self::Wholes(_, lo, width) if index < *width => Key::Int(lo.wrapping_add(index as i64)),
            Self::Bools(_) if index < 2 => Key::Bool(index == 1),
            Self::DayTable { starts, .. } if index < starts.len() => {
                Key::Int(i64::from(starts[index]))
            }
            _ => Key::Null,
        }
    }
}

/// The key columns of a dense grouping and each one's stride in the group index.
pub(super) struct DenseKeys<'a> {
    keys: Vec<DenseKey<'a>>,
    strides: Vec<usize>,
    pub groups: usize,
}

impl DenseKeys<'_> {
    /// Each row's group for rows `start..start + out.len()`; `false` when a key is out of its
    /// domain.
    pub fn groups_of(&self, start: usize, out: &mut [usize]) -> bool {
        out.fill(0);
        let mut within = true;
        for (key, stride) in self.keys.iter().zip(&self.strides) {
            within &= key.add_indexes(start, *stride, out);
        }
        within
    }
}

/// A measure input of whole numbers.
#[derive(Clone, Copy)]
pub(super) enum Wholes<'a> {
    Wide(&'a [Option<i64>]),
    Narrow(&'a [Option<i32>]),
}

/// What the dense pass accumulates for one measure.
#[derive(Clone, Copy)]
pub(super) enum Accumulate<'a> {
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

/// Count the present values of `values` per group.
fn count_present<T>(values: &[Option<T>], groups: &[usize], counts: &mut [u64]) {
    for (group, value) in groups.iter().zip(values) {
        counts[*group] += u64::from(value.is_some());
    }
}

/// Count the present values per group and widen `range` (least, greatest) to them.
fn count_and_range<T: Copy + Into<i64>>(
    values: &[Option<T>],
    groups: &[usize],
    counts: &mut [u64],
    range: &mut (i64, i64),
) {
    let (mut lo, mut hi) = *range;
    for (group, value) in groups.iter().zip(values) {
        if let Some(value) = value {
            counts[*group] += 1;
            let value: i64 = (*value).into();
            lo = lo.min(value);
            hi = hi.max(value);
        }
    }
    *range = (lo, hi);
}

/// Count and fold (add, or keep the least or greatest) the present values per group.
fn fold_values<T: Copy + Into<i64>>(
    values: &[Option<T>],
    groups: &[usize],
    counts: &mut [u64],
    totals: &mut [i128],
    fold: impl Fn(i128, i128) -> i128,
) {
    for (group, value) in groups.iter().zip(values) {
        if let Some(value) = value {
            counts[*group] += 1;
            totals[*group] = fold(totals[*group], i128::from((*value).into()));
        }
    }
}

/// One core's accumulators: rows per group, and per measure a count and a sum, minimum or maximum
/// per group, and the least and greatest value of all (used by quantiles).
pub(super) struct Partial {
    rows: Vec<u64>,
    counts: Vec<Vec<u64>>,
    totals: Vec<Vec<i128>>,
    ranges: Vec<(i64, i64)>,
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
            ranges: vec![(i64::MAX, i64::MIN); measures.len()],
        }
    }

    /// Accumulate `rows`; `None` when a key is out of its domain.
    fn add(&mut self, keys: &DenseKeys, measures: &[Accumulate], rows: Range<usize>) -> Option<()> {
        for_each_block(keys, rows, |start, groups| {
            for group in groups {
                self.rows[*group] += 1;
            }
            for (m, measure) in measures.iter().enumerate() {
                self.accumulate(m, measure, start..start + groups.len(), groups);
            }
        })
    }

    fn accumulate(&mut self, m: usize, measure: &Accumulate, rows: Range<usize>, groups: &[usize]) {
        let counts = &mut self.counts[m];
        let wholes = match measure {
            Accumulate::Rows => return,
            Accumulate::Present(data) => {
                match data {
                    ColumnData::Int(v) | ColumnData::Money(v) | ColumnData::DateTime(v) => {
                        count_present(&v[rows], groups, counts)
                    }
                    ColumnData::Float(v) => count_present(&v[rows], groups, counts),
                    ColumnData::Bool(v) => count_present(&v[rows], groups, counts),
                    ColumnData::Text(v) => count_present(&v[rows], groups, counts),
                    ColumnData::Dict { codes, .. } => count_present(&codes[rows], groups, counts),
                    ColumnData::Date(v) => count_present(&v[rows], groups, counts),
                }
                return;
            }
            Accumulate::Quantile(values, _) => {
                let range = &mut self.ranges[m];
                match values {
                    Wholes::Wide(v) => count_and_range(&v[rows], groups, counts, range),
                    Wholes::Narrow(v) => count_and_range(&v[rows], groups, counts, range),
                }
                return;
            }
            Accumulate::Sum(v) | Accumulate::Avg(v) | Accumulate::Min(v) | Accumulate::Max(v) => v,
        };
        let totals = &mut self.totals[m];
        let fold: fn(i128, i128) -> i128 = match measure {
            Accumulate::Min(_) => i128::min,
            Accumulate::Max(_) => i128::max,
            _ => |a, b| a + b,
        };
        match wholes {
            Wholes::Wide(v) => fold_values(&v[rows], groups, counts, totals, fold),
            Wholes::Narrow(v) => fold_values(&v[rows], groups, counts, totals, fold),
        }
    }

    fn merge(&mut self, other: Partial, measures: &[Accumulate]) {
        for (mine, theirs) in self.rows.iter_mut().zip(other.rows) {
            *mine += theirs;
        }
        for (mine, theirs) in self.ranges.iter_mut().zip(other.ranges) {
            *mine = (mine.0.min(theirs.0), mine.1.max(theirs.1));
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

/// Run `work` over `rows` split into one contiguous range per core (one range for small inputs).
pub(super) fn over_rows<T: Send>(rows: usize, work: impl Fn(Range<usize>) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.div_ceil(100_000))
        .max(1);
    if threads == 1 {
        return vec![work(0..rows)];
    }
    let per_thread = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let work = &work;
                scope.spawn(move || work(t * per_thread..((t + 1) * per_thread).min(rows)))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a grouping worker panicked"))
            .collect()
    })
}

/// Call `each` for every block of `rows` with the block's first row and its rows' groups;
/// `None` when a key is out of its domain.
pub(super) fn for_each_block(
    keys: &DenseKeys,
    rows: Range<usize>,
    mut each: impl FnMut(usize, &[usize]),
) -> Option<()> {
    let mut groups = [0usize; BLOCK];
    let mut start = rows.start;
    while start < rows.end {
        let end = (start + BLOCK).min(rows.end);
        let groups = &mut groups[..end - start];
        if !keys.groups_of(start, groups) {
            return None;
        }
        each(start, groups);
        start = end;
    }
    Some(())
}

/// Group and aggregate densely; `None` when the keys or measures do not allow it.
pub(super) fn dense(
    key_columns: &[KeyColumn],
    aggregations: &[Aggregation],
    rows: usize,
) -> Option<Grouped> {
    if rows == 0 {
        return None;
    }
    let measures: Vec<Accumulate> = aggregations
        .iter()
        .map(Accumulate::of)
        .collect::<Option<_>>()?;
    // Calendar buckets of dates go through a per-day table; of anything else (date-times) they
    // are written out first.
    let written: Vec<Option<ColumnData>> = key_columns
        .iter()
        .map(|key| match key {
            KeyColumn::Values(_) | KeyColumn::DayBuckets(ColumnData::Date(_), _) => None,
            other => Some(other.materialize().into_owned()),
        })
        .collect();
    let keys: Vec<DenseKey> = key_columns
        .iter()
        .zip(&written)
        .map(|(key, written)| match (key, written) {
            (_, Some(data)) => DenseKey::of(data),
            (KeyColumn::Values(data), None) => DenseKey::of(data),
            (KeyColumn::DayBuckets(ColumnData::Date(days), bucket), None) => {
                DenseKey::day_buckets(days, *bucket)
            }
            (KeyColumn::DayBuckets(..), None) => None,
        })
        .collect::<Option<_>>()?;
    let mut groups = 1usize;
    let mut strides = Vec::with_capacity(keys.len());
    for key in &keys {
        strides.push(groups);
        groups = groups
            .checked_mul(key.cardinality())
            .filter(|g| *g <= MAX_GROUPS)?;
    }
    let keys = DenseKeys {
        keys,
        strides,
        groups,
    };
    let partials = over_rows(rows, |range| {
        let mut partial = Partial::new(groups, &measures);
        partial.add(&keys, &measures, range)?;
        Some(partial)
    });
    let mut partials = partials.into_iter();
    let mut total = partials.next()??;
    for partial in partials {
        total.merge(partial?, &measures);
    }
    let present_groups: Vec<usize> = (0..groups).filter(|&g| total.rows[g] > 0).collect();
    let quantile_values = quantiles(&keys, &measures, &total.counts, &total.ranges, rows)?;
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
                Accumulate::Quantile(..) => quantile_values[m].as_ref().and_then(|q| q[g]),
            });
        }
        values.push(column);
    }
    let keys = keys
        .keys
        .iter()
        .zip(&keys.strides)
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
