//! Pure work spread over every core: batch runs evaluate a page of records, bulk updates plan one,
//! on rayon's persistent pool (callers run this inside `spawn_blocking`, off the async workers).
//!
//! Persistent threads, not threads per page: a write-back plans a page every ~50 ms, and threads
//! started per page each began with a fresh allocator heap — their records' memory was fresh pages
//! (page faults, zeroing) and was freed on the commit task from heaps already gone.

use rayon::prelude::*;

/// `work` applied to every item, in as many parts as the pool has threads, results in item order.
/// A panic in `work` is resumed on the caller's thread.
pub(crate) fn map_on_every_core<T: Send, R: Send>(
    items: Vec<T>,
    work: &(dyn Fn(T) -> R + Sync),
) -> Vec<R> {
    let threads = rayon::current_num_threads().max(1);
    let per_thread = items.len().div_ceil(threads).max(1);
    items
        .into_par_iter()
        .with_min_len(per_thread)
        .map(work)
        .collect()
}
