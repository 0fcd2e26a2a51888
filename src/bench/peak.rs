//! `fer bench peak`: the adapter's attainable f32 FMA throughput and memory bandwidth, the
//! yardsticks the profiler states each kernel against ("fraction of peak").

use std::fmt::Write as _;

use serde::Serialize;

use super::median;
use crate::gpu::{AdapterSummary, GpuBuffer, GpuContext, GpuError, GpuTimer, TimingSource};
use crate::kernels::peak::{copy, fma_chains, read_sum, Work};

/// What this adapter attains: f32 GFLOP/s of independent fma's, and GB/s (bytes read +
/// written, 1 GB = 10⁹ bytes) of a vec4 copy and of a vec4 read-and-sum.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Peak {
    pub gflops: f64,
    pub copy_gbs: f64,
    pub read_gbs: f64,
    pub timing: TimingSource,
}

/// How much work each measurement does.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PeakSizes {
    /// Workgroups of 256 invocations running the fma chains.
    pub fma_workgroups: usize,
    /// Loop trips of 32 vec4 fma's per invocation.
    pub fma_trips: u32,
    /// Size of each buffer of the bandwidth kernels, clamped to the adapter's binding limit.
    pub buffer_bytes: u64,
    /// Workgroups of 256 invocations striding over the bandwidth buffers.
    pub bandwidth_workgroups: usize,
    /// Timed runs per kernel, after one warm-up run.
    pub runs: usize,
}

impl PeakSizes {
    /// Enough work to fill a real GPU and leave its caches (256 MiB buffers, ~140 GFLOP); on
    /// a software adapter small enough that the whole bench takes seconds, with fewer
    /// invocations striding further, which a CPU runs faster.
    pub fn for_adapter(summary: &AdapterSummary) -> Self {
        if summary.is_software() {
            PeakSizes {
                fma_workgroups: 256,
                fma_trips: 256,
                buffer_bytes: 128 << 20,
                bandwidth_workgroups: 256,
                runs: 5,
            }
        } else {
            PeakSizes {
                fma_workgroups: 8192,
                fma_trips: 256,
                buffer_bytes: 256 << 20,
                bandwidth_workgroups: 4096,
                runs: 20,
            }
        }
    }
}

/// One kernel's median time and the rate it implies.
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub kernel: String,
    /// FLOPs for the fma kernel, bytes read + written for the others.
    pub work: f64,
    pub unit: &'static str,
    pub runs: usize,
    pub median_ms: f64,
    pub rate: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub adapter: AdapterSummary,
    pub sizes: PeakSizes,
    pub measurements: Vec<Measurement>,
    pub peak: Peak,
}

/// This adapter's peak at the default sizes for its kind (a few seconds on a software
/// adapter, well under a second on a GPU).
pub fn measure_peak(ctx: &GpuContext) -> Result<Peak, GpuError> {
    Ok(run(ctx, &PeakSizes::for_adapter(ctx.summary()))?.peak)
}

/// Measures the fma, copy and read kernels at `sizes` (the report holds the sizes used, after
/// clamping to the adapter's limits).
pub fn run(ctx: &GpuContext, sizes: &PeakSizes) -> Result<Report, GpuError> {
    let limit = ctx
        .summary()
        .max_storage_binding_bytes
        .min(ctx.summary().max_buffer_bytes);
    let sizes = PeakSizes {
        fma_workgroups: sizes.fma_workgroups.max(1),
        fma_trips: sizes.fma_trips.max(1),
        buffer_bytes: sizes.buffer_bytes.clamp(16, limit) / 16 * 16,
        bandwidth_workgroups: sizes.bandwidth_workgroups.max(1),
        runs: sizes.runs.max(1),
    };
    let timer = GpuTimer::new(ctx, sizes.runs as u32);
    let elements = (sizes.buffer_bytes / 4) as usize;
    let src = GpuBuffer::zeros(ctx, "peak source", elements);
    let dst = GpuBuffer::zeros(ctx, "peak destination", elements);
    let kernels = [
        (
            "fma_chains",
            "GFLOP/s",
            fma_chains(ctx, sizes.fma_workgroups, sizes.fma_trips)?,
        ),
        (
            "copy",
            "GB/s",
            copy(ctx, &src, &dst, sizes.bandwidth_workgroups)?,
        ),
        (
            "read_sum",
            "GB/s",
            read_sum(ctx, &src, sizes.bandwidth_workgroups)?,
        ),
    ];
    let mut measurements = Vec::new();
    for (kernel, unit, work) in &kernels {
        let median_s = median_seconds(ctx, &timer, work, sizes.runs)?;
        measurements.push(Measurement {
            kernel: kernel.to_string(),
            work: work.amount,
            unit,
            runs: sizes.runs,
            median_ms: median_s * 1e3,
            rate: work.amount / median_s * 1e-9,
        });
    }
    let peak = Peak {
        gflops: measurements[0].rate,
        copy_gbs: measurements[1].rate,
        read_gbs: measurements[2].rate,
        timing: timer.source(),
    };
    Ok(Report {
        adapter: ctx.summary().clone(),
        sizes,
        measurements,
        peak,
    })
}

/// Median seconds of `runs` timed runs after one warm-up run (first-use costs: page faults,
/// lazy pipeline creation).
fn median_seconds(
    ctx: &GpuContext,
    timer: &GpuTimer,
    work: &Work,
    runs: usize,
) -> Result<f64, GpuError> {
    timer.time(ctx, &[&work.dispatch])?;
    Ok(median(&timer.time(ctx, &vec![&work.dispatch; runs])?))
}

pub const TABLE_HEADER: &str = "kernel        work                runs   median ms         rate";

/// One table row for people.
pub fn table_row(m: &Measurement) -> String {
    let work = if m.unit == "GFLOP/s" {
        format!("{:.2} GFLOP", m.work * 1e-9)
    } else {
        format!("{:.1} MiB r+w", m.work / (1 << 20) as f64)
    };
    let mut row = String::new();
    let _ = write!(
        row,
        "{:<13} {:<18} {:>5} {:>11.3} {:>9.2} {}",
        m.kernel, work, m.runs, m.median_ms, m.rate, m.unit
    );
    row
}
