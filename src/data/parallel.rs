//! Order-preserving parallel work over contiguous chunks of a slice, on scoped threads.

use std::num::NonZeroUsize;
use std::thread;

/// Items per thread below which spawning costs more than it saves.
const MIN_ITEMS_PER_THREAD: usize = 256;

/// Splits `items` into one contiguous chunk per thread, runs `work` on each, and returns the
/// results in chunk order, so concatenating them keeps the input order.
pub(crate) fn map_chunks<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = cores.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return vec![work(items)];
    }
    let chunk_len = items.len().div_ceil(threads);
    let work = &work;
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk_len)
            .map(|chunk| scope.spawn(move || work(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
