//! Work split across the machine's cores for the engine's per-row loops (scoring a million
//! customers, summing a likelihood): scoped threads over contiguous parts, results in input order.

/// Parts a sum is split into, whatever the machine: the partial sums add up in one order, so the
/// total is the same on any number of cores.
const SUM_PARTS: usize = 8;

/// Fewest items worth a thread per part: per-row work, and the terms of a sum.
const ROWS_ON_CORES_FROM: usize = 10_000;
const SUM_ON_CORES_FROM: usize = 8_192;

/// Σ `part(range)` over `0..len` split into [`SUM_PARTS`] fixed ranges, the ranges' sums taken on
/// the machine's cores and added in range order (a likelihood evaluated a few hundred times per
/// fit, over tens of thousands of distinct customers).
pub fn sum_in_parts(len: usize, part: &(dyn Fn(std::ops::Range<usize>) -> f64 + Sync)) -> f64 {
    let size = len.div_ceil(SUM_PARTS).max(1);
    let ranges: Vec<std::ops::Range<usize>> = (0..len)
        .step_by(size)
        .map(|start| start..(start + size).min(len))
        .collect();
    let sum_of = |range: &std::ops::Range<usize>| part(range.clone());
    if len < SUM_ON_CORES_FROM {
        return ranges.iter().map(sum_of).sum();
    }
    across_cores(&ranges, &sum_of).into_iter().sum()
}

/// `work` over `items`, in order, split across the machine's cores (scoped threads; one part runs
/// on the calling thread).
pub fn on_every_core<T: Sync, R: Send>(items: &[T], work: &(dyn Fn(&T) -> R + Sync)) -> Vec<R> {
    if items.len() < ROWS_ON_CORES_FROM {
        return items.iter().map(work).collect();
    }
    across_cores(items, work)
}

/// `work` over `items` in order: a contiguous part per core, one on the calling thread.
fn across_cores<T: Sync, R: Send>(items: &[T], work: &(dyn Fn(&T) -> R + Sync)) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return items.iter().map(work).collect();
    }
    let part = items.len().div_ceil(cores).max(1);
    std::thread::scope(|scope| {
        let mut parts = items.chunks(part);
        let first = parts.next().unwrap_or_default();
        let others: Vec<_> = parts
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<R>>()))
            .collect();
        let mut all: Vec<R> = first.iter().map(work).collect();
        for other in others {
            // A panicking part panics the report, as it would have on one thread.
            all.extend(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        all
    })
}
