//! Medians and percentiles of whole numbers per dense group, found without sorting every group:
//! a pass counts each group's values per value bucket (at most 2¹⁶ buckets, so a bucket is a single
//! value when the values' range is narrow, like quantities), the ranks a quantile needs are located
//! in their buckets, and — only when buckets span several values, like money amounts — a second
//! pass collects just those buckets' values, which are then sorted. The result is polars' linear
//! interpolation between the two order statistics, exactly.

use std::ops::Range;

use super::dense::{Accumulate, DenseKeys, Wholes, for_each_block, over_rows};

/// Histogram cells (groups × value buckets) a quantile pass may use per core.
const MAX_HISTOGRAM: usize = 1 << 21;

/// Value buckets per group at most: 2¹⁶.
const MAX_BUCKET_BITS: u32 = 16;

/// One quantile measure's histogram layout: values from `lo`, bucket = (value − lo) >> `shift`.
struct Histogram<'a> {
    measure: usize,
    values: Wholes<'a>,
    p: f64,
    lo: i64,
    shift: u32,
    buckets: usize,
}

impl Histogram<'_> {
    #[inline]
    fn bucket(&self, value: i64) -> usize {
        ((i128::from(value) - i128::from(self.lo)) >> self.shift) as usize
    }

    /// Count the block's values (rows `rows`, their groups `groups`) per (group, bucket).
    fn count(&self, rows: Range<usize>, groups: &[usize], counts: &mut [u32]) {
        fn each<T: Copy + Into<i64>>(
            h: &Histogram,
            values: &[Option<T>],
            groups: &[usize],
            counts: &mut [u32],
        ) {
            for (group, value) in groups.iter().zip(values) {
                if let Some(value) = value {
                    counts[group * h.buckets + h.bucket((*value).into())] += 1;
                }
            }
        }
        match self.values {
            Wholes::Wide(v) => each(self, &v[rows], groups, counts),
            Wholes::Narrow(v) => each(self, &v[rows], groups, counts),
        }
    }

    /// Collect the block's values that fall in each group's wanted buckets: `found[2g]` the lower
    /// rank's bucket, `found[2g + 1]` the upper rank's when that is another bucket.
    fn collect(
        &self,
        rows: Range<usize>,
        groups: &[usize],
        wanted: &[Option<Ranks>],
        found: &mut [Vec<i64>],
    ) {
        fn each<T: Copy + Into<i64>>(
            h: &Histogram,
            values: &[Option<T>],
            groups: &[usize],
            wanted: &[Option<Ranks>],
            found: &mut [Vec<i64>],
        ) {
            for (group, value) in groups.iter().zip(values) {
                let (Some(value), Some(ranks)) = (value, &wanted[*group]) else {
                    continue;
                };
                let value: i64 = (*value).into();
                let bucket = h.bucket(value);
                if bucket == ranks.lower.bucket {
                    found[group * 2].push(value);
                } else if ranks.upper.is_some_and(|u| u.bucket == bucket) {
                    found[group * 2 + 1].push(value);
                }
            }
        }
        match self.values {
            Wholes::Wide(v) => each(self, &v[rows], groups, wanted, found),
            Wholes::Narrow(v) => each(self, &v[rows], groups, wanted, found),
        }
    }
}

/// Where a rank falls: its bucket and its place among that bucket's values.
#[derive(Clone, Copy)]
struct Place {
    bucket: usize,
    offset: usize,
}

/// A group's quantile: the lower order statistic's place, the upper one's when the index has a
/// fraction, and that fraction.
#[derive(Clone, Copy)]
struct Ranks {
    lower: Place,
    upper: Option<Place>,
    fraction: f64,
}

/// The ranks a `p` quantile of `n` values interpolates between (polars' linear method): the lower
/// order statistic, the upper one when the index has a fraction, and that fraction.
fn quantile_ranks(n: usize, p: f64) -> (usize, Option<usize>, f64) {
    let float_index = (n as f64 - 1.0) * p;
    let index = (float_index as usize).min(n - 1);
    let top = (float_index.ceil() as usize).min(n - 1);
    let upper = (top != index).then_some(index + 1);
    (index, upper, float_index - index as f64)
}

/// The bucket and offset of `rank` among a group's bucket counts.
fn locate(cells: &[u32], rank: usize) -> Option<Place> {
    let mut before = 0usize;
    for (bucket, &count) in cells.iter().enumerate() {
        let count = count as usize;
        if rank < before + count {
            return Some(Place {
                bucket,
                offset: rank - before,
            });
        }
        before += count;
    }
    None
}

/// Add `theirs` into `mine`, cell by cell.
fn add_counts(mine: &mut [Vec<u32>], theirs: Vec<Vec<u32>>) {
    for (mine, theirs) in mine.iter_mut().zip(theirs) {
        for (a, b) in mine.iter_mut().zip(theirs) {
            *a += b;
        }
    }
}

/// Each quantile measure's value per group (`None` for the other measures); `counts[m][g]` is the
/// number of values of measure `m` in group `g`, `ranges[m]` their least and greatest.
pub(super) fn quantiles(
    keys: &DenseKeys,
    measures: &[Accumulate],
    counts: &[Vec<u64>],
    ranges: &[(i64, i64)],
    rows: usize,
) -> Option<Vec<Option<Vec<Option<f64>>>>> {
    let groups = keys.groups;
    let mut histograms = Vec::new();
    for (measure, accumulate) in measures.iter().enumerate() {
        let Accumulate::Quantile(values, p) = *accumulate else {
            continue;
        };
        let (lo, hi) = match ranges[measure] {
            (lo, hi) if lo <= hi => (lo, hi),
            _ => (0, 0),
        };
        let width = (i128::from(hi) - i128::from(lo)) as u128;
        let width_bits = 128 - width.leading_zeros();
        let budget_bits = (MAX_HISTOGRAM / groups.max(1))
            .max(1)
            .ilog2()
            .min(MAX_BUCKET_BITS);
        let shift = width_bits.saturating_sub(budget_bits);
        histograms.push(Histogram {
            measure,
            values,
            p,
            lo,
            shift,
            buckets: (width >> shift) as usize + 1,
        });
    }
    let mut results: Vec<Option<Vec<Option<f64>>>> = measures.iter().map(|_| None).collect();
    if histograms.is_empty() {
        return Some(results);
    }

    // Pass 1: values per (group, bucket).
    let partials = over_rows(rows, |range| {
        let mut counts: Vec<Vec<u32>> = histograms
            .iter()
            .map(|h| vec![0u32; groups * h.buckets])
            .collect();
        for_each_block(keys, range, |start, groups| {
            for (h, counts) in histograms.iter().zip(counts.iter_mut()) {
                h.count(start..start + groups.len(), groups, counts);
            }
        })?;
        Some(counts)
    });
    let mut partials = partials.into_iter();
    let mut bucket_counts = partials.next()??;
    for partial in partials {
        add_counts(&mut bucket_counts, partial?);
    }

    // Each group's ranks, located in their buckets.
    let mut wanted: Vec<Vec<Option<Ranks>>> = Vec::with_capacity(histograms.len());
    for (h, bucket_counts) in histograms.iter().zip(&bucket_counts) {
        let mut per_group = Vec::with_capacity(groups);
        for (group, cells) in bucket_counts.chunks(h.buckets).enumerate() {
            let n = counts[h.measure][group] as usize;
            if n == 0 {
                per_group.push(None);
                continue;
            }
            let (index, upper, fraction) = quantile_ranks(n, h.p);
            per_group.push(Some(Ranks {
                lower: locate(cells, index)?,
                upper: match upper {
                    Some(rank) => Some(locate(cells, rank)?),
                    None => None,
                },
                fraction,
            }));
        }
        wanted.push(per_group);
    }

    // Pass 2, for buckets wider than one value: the values of the wanted buckets.
    let mut found: Vec<Vec<Vec<i64>>> = histograms.iter().map(|_| Vec::new()).collect();
    if histograms.iter().any(|h| h.shift > 0) {
        let partials = over_rows(rows, |range| {
            let mut found: Vec<Vec<Vec<i64>>> = histograms
                .iter()
                .map(|h| vec![Vec::new(); if h.shift > 0 { groups * 2 } else { 0 }])
                .collect();
            for_each_block(keys, range, |start, groups| {
                for ((h, wanted), found) in histograms.iter().zip(&wanted).zip(found.iter_mut()) {
                    if h.shift > 0 {
                        h.collect(start..start + groups.len(), groups, wanted, found);
                    }
                }
            })?;
            Some(found)
        });
        let mut partials = partials.into_iter();
        found = partials.next()??;
        for partial in partials {
            for (mine, theirs) in found.iter_mut().zip(partial?) {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    a.extend(b);
                }
            }
        }
        for values in found.iter_mut().flatten() {
            values.sort_unstable();
        }
    }

    for ((h, wanted), found) in histograms.iter().zip(&wanted).zip(&found) {
        let value_at = |group: usize, ranks: &Ranks, place: Place| -> Option<f64> {
            if h.shift == 0 {
                return Some((h.lo + place.bucket as i64) as f64);
            }
            let values = if place.bucket == ranks.lower.bucket {
                &found[group * 2]
            } else {
                &found[group * 2 + 1]
            };
            values.get(place.offset).map(|v| *v as f64)
        };
        let mut column = Vec::with_capacity(groups);
        for (group, ranks) in wanted.iter().enumerate() {
            let Some(ranks) = ranks else {
                column.push(None);
                continue;
            };
            let lower = value_at(group, ranks, ranks.lower)?;
            let value = match ranks.upper {
                None => lower,
                Some(place) => {
                    let upper = value_at(group, ranks, place)?;
                    if lower == upper {
                        lower
                    } else {
                        ranks.fraction * (upper - lower) + lower
                    }
                }
            };
            column.push(Some(value));
        }
        results[h.measure] = Some(column);
    }
    Some(results)
}
