//! `fer bench`: throughput of kernels on this adapter, each against a reference measured in the
//! same run.

pub mod infer;
pub mod matmul;
pub mod peak;
pub mod step;

use std::time::Instant;

/// Median of a non-empty sample.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        0.5 * (sorted[mid - 1] + sorted[mid])
    }
}

/// Seconds `work` takes on the host.
pub fn wall_seconds(work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_secs_f64()
}
