//! The profile as a table for people.

use std::fmt::Write as _;

use super::{Pass, Profile};
use crate::gpu::TimingSource;

/// A number with `decimals`, or a dash where there is none.
fn or_dash(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.decimals$}"))
}

/// Kernels by GPU time per step, then the step's GPU time against its wall time.
pub fn table(profile: &Profile) -> String {
    let mut out = String::new();
    let timing = match profile.timing {
        TimingSource::Timestamps => "GPU timestamp queries",
        TimingSource::WallClock => {
            "wall clock per dispatch (no timestamp queries on this adapter: each kernel is \
             submitted and waited for alone, so short ones are overstated)"
        }
    };
    let what = match profile.pass {
        Pass::Training => "training step",
        Pass::Inference => "inference forward pass",
    };
    let _ = writeln!(
        out,
        "{} {what} on {} ({}), batch {}, {} profiled after {} warm-up training steps; kernel \
         times from {timing}",
        profile.model.name(),
        profile.adapter.name,
        profile.adapter.backend,
        profile.batch,
        profile.steps,
        profile.warmup_steps,
    );
    let width = profile
        .kernels
        .iter()
        .map(|k| k.label.chars().count())
        .max()
        .unwrap_or(0)
        .max("kernel".len());
    let _ = writeln!(
        out,
        "{:<width$}  {:>5}  {:>9}  {:>9}  {:>6}  {:>8}  {:>7}  {:>6}  {:>6}",
        "kernel", "calls", "ms/step", "ms/call", "share", "GFLOP/s", "GB/s", "%peakF", "%peakB"
    );
    for k in &profile.kernels {
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:>9.3}  {:>9.3}  {:>5.1}%  {:>8}  {:>7}  {:>6}  {:>6}",
            k.label,
            k.calls_per_step,
            k.ms_per_step,
            k.ms_per_call,
            100.0 * k.share,
            or_dash(k.gflops, 2),
            or_dash(k.gbs, 2),
            or_dash(k.peak_flops_percent, 1),
            or_dash(k.peak_bandwidth_percent, 1),
        );
    }
    let step = &profile.step;
    let _ = writeln!(
        out,
        "step: {:.2} ms GPU (sum of kernels, each its median) vs {:.2} ms wall (one pass, one \
         submit, median) → overhead {:.2}×",
        step.gpu_ms, step.wall_ms, step.overhead
    );
    if !profile.augment.is_none() {
        let augment_ms: f64 = profile
            .kernels
            .iter()
            .filter(|k| k.label.starts_with("augment::"))
            .map(|k| k.ms_per_step)
            .sum();
        let _ = writeln!(
            out,
            "augmentation ({}): {augment_ms:.3} ms of the step's {:.2} ms GPU ({:.1}%)",
            profile.augment,
            step.gpu_ms,
            100.0 * augment_ms / step.gpu_ms
        );
    }
    if profile.peak.is_none() {
        let _ = writeln!(out, "(%peak: no peak figures for this adapter)");
    }
    out
}
