//! Pure work spread over every core: batch runs evaluate a page of records, bulk updates plan one,
//! on scoped threads (callers run this inside `spawn_blocking`, off the async workers).

/// `work` applied to every item, on as many threads as there are cores, results in item order. A
/// panicking thread loses its part: callers compare the lengths.
pub(crate) fn map_on_every_core<T: Send, R: Send>(
    items: Vec<T>,
    work: &(dyn Fn(T) -> R + Sync),
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_thread = items.len().div_ceil(threads).max(1);
    let mut parts: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        parts.push(items.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(work).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}
