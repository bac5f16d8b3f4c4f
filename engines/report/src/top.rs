//! Top-N with "others" for aggregate reports: rank the first dimension's values by one measure,
//! keep the best `n`, fold the rest into one "others" group.
//!
//! Two ways, same answers. With one dimension and only counts, sums, minimums and maximums, the
//! groups of one grouping are ranked and the rest merged from their values (a count or sum adds, a
//! minimum or maximum compares) — one pass over the rows. Otherwise (more dimensions, averages,
//! quantiles, distinct counts) the rows are grouped once to rank and then regrouped with each
//! row's first key replaced by its place among the kept values (−1: "others").

use crate::ReportError;
use crate::data::ColumnData;
use crate::definition::MeasureOp;
use crate::frame::Key;
use crate::grouping::{Aggregation, Grouped, Grouper, group};
use crate::key_columns::{KeyColumn, top_positions};

/// The largest total the fold adds in floating point and still gets exactly.
const EXACT_TOTAL: f64 = 9_007_199_254_740_992.0;

/// Grouped rows of a top-N report and the kept first-dimension keys in rank order (`None` when
/// there were no more than `n` values, so nothing was folded). The grouped first key is each
/// group's place among the kept keys, −1 for "others".
pub(crate) fn group_top(
    keys: &[KeyColumn],
    aggregations: &[Aggregation],
    ranking: &Aggregation,
    ranking_position: Option<usize>,
    n: usize,
    rows: usize,
    grouper: Grouper,
) -> Result<(Grouped, Option<Vec<Key>>), ReportError> {
    let foldable = keys.len() == 1
        && grouper == Grouper::Fastest
        && ranking_position.is_some()
        && aggregations.iter().all(merges_from_values);
    if let (true, Some(by)) = (foldable, ranking_position) {
        let grouped = group(keys, aggregations, rows, grouper)?;
        let order = ranked(&grouped.keys[0], &grouped.values[by]);
        if order.len() <= n {
            return Ok((grouped, None));
        }
        if let Some(folded) = fold(&grouped, aggregations, &order[..n]) {
            let kept = order[..n]
                .iter()
                .map(|&g| grouped.keys[0][g].clone())
                .collect();
            return Ok((folded, Some(kept)));
        }
    }
    let ranking_groups = group(&keys[..1], std::slice::from_ref(ranking), rows, grouper)?;
    let order = ranked(&ranking_groups.keys[0], &ranking_groups.values[0]);
    if order.len() <= n {
        return Ok((group(keys, aggregations, rows, grouper)?, None));
    }
    let kept: Vec<Key> = order[..n]
        .iter()
        .map(|&g| ranking_groups.keys[0][g].clone())
        .collect();
    let places = ColumnData::Int(top_positions(&keys[0].materialize(), &kept, rows));
    let mut regrouped_keys = keys.to_vec();
    regrouped_keys[0] = KeyColumn::Values(&places);
    Ok((
        group(&regrouped_keys, aggregations, rows, grouper)?,
        Some(kept),
    ))
}

/// Whether groups of this aggregation merge exactly from their values: counts, minimums and
/// maximums always, sums of whole numbers (exact in floating point up to 2⁵³).
fn merges_from_values(aggregation: &Aggregation) -> bool {
    match aggregation.op {
        MeasureOp::Count | MeasureOp::Min | MeasureOp::Max => true,
        MeasureOp::Sum => matches!(
            aggregation.input,
            Some(
                ColumnData::Int(_)
                    | ColumnData::Money(_)
                    | ColumnData::DateTime(_)
                    | ColumnData::Date(_)
            )
        ),
        _ => false,
    }
}

/// Groups by the ranking value, highest first (missing last), ties by key.
fn ranked(keys: &[Key], values: &[Option<f64>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        values[b]
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&values[a].unwrap_or(f64::NEG_INFINITY))
            .then_with(|| keys[a].order(&keys[b]))
    });
    order
}

/// The kept groups (keys replaced by their places) and one "others" group merging the rest;
/// `None` when a total could lose precision (the regrouping path then computes it exactly).
fn fold(grouped: &Grouped, aggregations: &[Aggregation], kept: &[usize]) -> Option<Grouped> {
    let mut is_kept = vec![false; grouped.height];
    for &g in kept {
        is_kept[g] = true;
    }
    let mut values: Vec<Vec<Option<f64>>> = Vec::with_capacity(aggregations.len());
    for (aggregation, column) in aggregations.iter().zip(&grouped.values) {
        let mut out: Vec<Option<f64>> = kept.iter().map(|&g| column[g]).collect();
        let rest = (0..grouped.height)
            .filter(|&g| !is_kept[g])
            .filter_map(|g| column[g]);
        let merged = match aggregation.op {
            MeasureOp::Min => rest.reduce(f64::min),
            MeasureOp::Max => rest.reduce(f64::max),
            _ => {
                let (mut total, mut magnitude) = (0.0f64, 0.0f64);
                for value in rest {
                    total += value;
                    magnitude += value.abs();
                }
                if magnitude > EXACT_TOTAL {
                    return None;
                }
                Some(total)
            }
        };
        out.push(merged);
        values.push(out);
    }
    let mut places: Vec<Key> = (0..kept.len()).map(|p| Key::Int(p as i64)).collect();
    places.push(Key::Int(-1));
    Some(Grouped {
        keys: vec![places],
        values,
        height: kept.len() + 1,
    })
}
