//! Work split across the machine's cores for the engine's per-row loops (scoring a million
//! customers): scoped threads over contiguous parts, results in input order.

/// `work` over `items`, in order, split across the machine's cores (scoped threads; one part runs
/// on the calling thread).
pub fn on_every_core<T: Sync, R: Send>(items: &[T], work: &(dyn Fn(&T) -> R + Sync)) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 || items.len() < 10_000 {
        return items.iter().map(work).collect();
    }
    let part = items.len().div_ceil(cores);
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
