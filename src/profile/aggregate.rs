//! Per-kernel totals of a profile: time, share of the step, and rates from each launch's cost.

use std::collections::HashMap;

use serde::Serialize;

use super::TimedDispatch;
use crate::bench::median;

/// The adapter's measured peak: arithmetic rate and memory bandwidth.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PeakFigures {
    pub gflops: f64,
    pub gbs: f64,
}

/// One kernel (pipeline label) over all profiled steps.
#[derive(Clone, Debug, Serialize)]
pub struct KernelStats {
    pub label: String,
    pub calls_per_step: f64,
    pub ms_per_step: f64,
    pub ms_per_call: f64,
    /// Fraction of the step's GPU time, 0..=1.
    pub share: f64,
    /// Rates from the kernels' minimum cost; absent where a launch has no cost or took no time.
    pub gflops: Option<f64>,
    pub gbs: Option<f64>,
    pub peak_flops_percent: Option<f64>,
    pub peak_bandwidth_percent: Option<f64>,
}

#[derive(Default)]
struct Totals {
    calls: usize,
    seconds: f64,
    flops: f64,
    bytes: f64,
    costed: bool,
}

/// The profiled steps as one typical step: each dispatch with its median GPU time over the
/// steps (every step records the same dispatches in the same order). A median, as the wall
/// time and `fer bench` report: a step slowed by whatever else shares the adapter (a software
/// adapter's cores, most of all) is not charged to its kernels.
pub fn typical_step(timeline: &[Vec<TimedDispatch>]) -> Vec<TimedDispatch> {
    let Some(first) = timeline.first() else {
        return Vec::new();
    };
    first
        .iter()
        .enumerate()
        .map(|(i, dispatch)| {
            let times: Vec<f64> = timeline.iter().map(|step| step[i].seconds).collect();
            TimedDispatch {
                seconds: median(&times),
                ..dispatch.clone()
            }
        })
        .collect()
}

/// Groups the dispatches of every step by label, largest GPU time first.
pub fn by_label(timeline: &[Vec<TimedDispatch>], peak: Option<PeakFigures>) -> Vec<KernelStats> {
    let steps = timeline.len().max(1) as f64;
    let mut order: Vec<&str> = Vec::new();
    let mut totals: HashMap<&str, Totals> = HashMap::new();
    for dispatch in timeline.iter().flatten() {
        let label = dispatch.label.as_str();
        let entry = totals.entry(label).or_insert_with(|| {
            order.push(label);
            Totals::default()
        });
        entry.calls += 1;
        entry.seconds += dispatch.seconds;
        if let Some(cost) = dispatch.cost {
            entry.flops += cost.flops;
            entry.bytes += cost.bytes;
            entry.costed = true;
        }
    }
    let all_seconds: f64 = totals.values().map(|t| t.seconds).sum();
    let mut kernels: Vec<KernelStats> = order
        .into_iter()
        .map(|label| {
            let t = &totals[label];
            // Giga per second from a total and the seconds it took; none without a cost.
            let rate = |amount: f64| {
                (t.costed && amount > 0.0 && t.seconds > 0.0).then(|| amount / t.seconds * 1e-9)
            };
            let gflops = rate(t.flops);
            let gbs = rate(t.bytes);
            KernelStats {
                label: label.to_string(),
                calls_per_step: t.calls as f64 / steps,
                ms_per_step: t.seconds / steps * 1e3,
                ms_per_call: t.seconds / t.calls as f64 * 1e3,
                share: if all_seconds > 0.0 {
                    t.seconds / all_seconds
                } else {
                    0.0
                },
                gflops,
                gbs,
                peak_flops_percent: gflops.zip(peak).map(|(r, p)| 100.0 * r / p.gflops),
                peak_bandwidth_percent: gbs.zip(peak).map(|(r, p)| 100.0 * r / p.gbs),
            }
        })
        .collect();
    kernels.sort_by(|a, b| b.ms_per_step.total_cmp(&a.ms_per_step));
    kernels
}
