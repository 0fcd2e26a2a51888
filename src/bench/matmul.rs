//! `fer bench matmul`: GFLOP/s of each matmul variant on square sizes and on the products the
//! study's models actually run, with the CPU twin's rate from the same run as the yardstick.

use std::fmt::Write as _;

use serde::Serialize;

use super::{median, wall_seconds};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError, GpuTimer, TimingSource};
use crate::kernels::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use crate::reference;
use crate::rng::Rng;

/// A product to measure, with the name a person recognises it by.
#[derive(Clone, Debug, Serialize)]
pub struct Case {
    pub name: String,
    #[serde(skip)]
    pub shape: MatmulShape,
}

impl Case {
    pub fn square(size: usize) -> Self {
        Case {
            name: format!("{size}³"),
            shape: MatmulShape::new(size, size, size),
        }
    }

    fn linear(name: &str, batch: usize, inputs: usize, outputs: usize, pass: LinearPass) -> Self {
        // Linear: y[b, o] = x[b, i]·W[o, i]ᵀ; backward dx = dy·W, dW = dyᵀ·x.
        let shape = match pass {
            LinearPass::Forward => MatmulShape {
                trans_b: true,
                ..MatmulShape::new(batch, outputs, inputs)
            },
            LinearPass::GradInput => MatmulShape::new(batch, inputs, outputs),
            LinearPass::GradWeight => MatmulShape {
                trans_a: true,
                ..MatmulShape::new(outputs, inputs, batch)
            },
        };
        Case {
            name: format!("{name} {}", pass.label()),
            shape,
        }
    }

    /// The largest products of the mlp and cnn at the study's batch of 64.
    pub fn model_shapes() -> Vec<Case> {
        let mut cases = Vec::new();
        for pass in [
            LinearPass::Forward,
            LinearPass::GradInput,
            LinearPass::GradWeight,
        ] {
            cases.push(Case::linear("mlp fc1", 64, 2304, 128, pass));
            cases.push(Case::linear("cnn fc1", 64, 4608, 256, pass));
        }
        cases
    }
}

#[derive(Clone, Copy)]
enum LinearPass {
    Forward,
    GradInput,
    GradWeight,
}

impl LinearPass {
    fn label(self) -> &'static str {
        match self {
            LinearPass::Forward => "forward",
            LinearPass::GradInput => "grad-input",
            LinearPass::GradWeight => "grad-weight",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub case: String,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub variant: MatmulVariant,
    pub runs: usize,
    pub median_ms: f64,
    pub gflops: f64,
    /// GPU rate over the CPU twin's rate on the same shape.
    pub vs_cpu_twin: f64,
    pub cpu_twin_gflops: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub adapter: crate::gpu::AdapterSummary,
    pub timing: TimingSource,
    pub measurements: Vec<Measurement>,
}

pub struct Options {
    pub cases: Vec<Case>,
    pub variants: Vec<MatmulVariant>,
    /// Roughly how long to spend timing each (case, variant) after one warm-up run.
    pub seconds_per_case: f64,
}

/// Measures every case × variant, calling `progress` with each result as it lands.
pub fn run(
    ctx: &GpuContext,
    options: &Options,
    mut progress: impl FnMut(&Measurement),
) -> Result<Report, GpuError> {
    const MAX_RUNS: usize = 20;
    // A product is at most two launches (split-K's chunks and their sum).
    let timer = GpuTimer::new(ctx, 2 * MAX_RUNS as u32);
    let mut rng = Rng::new(0x6d61_746d);
    let mut measurements = Vec::new();
    for case in &options.cases {
        let shape = &case.shape;
        let a = GpuBuffer::from_slice(ctx, "A", &rng.uniform_vec(shape.a_len(), -1.0, 1.0));
        let b = GpuBuffer::from_slice(ctx, "B", &rng.uniform_vec(shape.b_len(), -1.0, 1.0));
        let c = GpuBuffer::zeros(ctx, "C", shape.c_len());
        let cpu_twin_gflops = cpu_twin_gflops(shape, &mut rng);
        for &variant in &options.variants {
            let operands = MatmulOperands {
                a: &a,
                b: &b,
                bias: None,
                c: &c,
            };
            let dispatches = matmul(ctx, variant, shape, Epilogue::default(), operands)?;
            let launches: Vec<&Dispatch> = dispatches.iter().collect();
            let warm_up = product_seconds(ctx, &timer, &launches, 1)?[0];
            let runs = ((options.seconds_per_case / warm_up.max(1e-6)) as usize).clamp(1, MAX_RUNS);
            let seconds = product_seconds(ctx, &timer, &launches, runs)?;
            let median_s = median(&seconds);
            let gflops = shape.flops() / median_s * 1e-9;
            let measurement = Measurement {
                case: case.name.clone(),
                m: shape.m,
                n: shape.n,
                k: shape.k,
                trans_a: shape.trans_a,
                trans_b: shape.trans_b,
                variant,
                runs,
                median_ms: median_s * 1e3,
                gflops,
                vs_cpu_twin: gflops / cpu_twin_gflops,
                cpu_twin_gflops,
            };
            progress(&measurement);
            measurements.push(measurement);
        }
    }
    Ok(Report {
        adapter: ctx.summary().clone(),
        timing: timer.source(),
        measurements,
    })
}

/// Seconds each of `runs` runs of a product's `launches` took.
fn product_seconds(
    ctx: &GpuContext,
    timer: &GpuTimer,
    launches: &[&Dispatch],
    runs: usize,
) -> Result<Vec<f64>, GpuError> {
    let seconds = timer.time(ctx, &launches.repeat(runs))?;
    Ok(seconds
        .chunks(launches.len())
        .map(|run| run.iter().sum())
        .collect())
}

/// The twin's rate on this shape, timed on as many leading rows of C as make ~50 MFLOP: its
/// cost per row is uniform, so a slice gives the rate without minutes of waiting at 2048³.
fn cpu_twin_gflops(shape: &MatmulShape, rng: &mut Rng) -> f64 {
    let flops_per_row = 2.0 * (shape.n * shape.k) as f64;
    let rows = ((5e7 / flops_per_row).ceil() as usize).clamp(1, shape.m);
    let slice = MatmulShape {
        batch: 1,
        m: rows,
        ..*shape
    };
    let a = rng.uniform_vec(slice.a_len(), -1.0, 1.0);
    let b = rng.uniform_vec(slice.b_len(), -1.0, 1.0);
    let mut c = vec![0.0; slice.c_len()];
    let seconds = wall_seconds(|| {
        reference::matmul::matmul(&slice, &a, &b, None, Epilogue::default(), &mut c)
    });
    slice.flops() / seconds * 1e-9
}

pub const TABLE_HEADER: &str = "case                    m×n×k            op      variant     runs   median ms    GFLOP/s   vs CPU twin";

/// One table row for people.
pub fn table_row(m: &Measurement) -> String {
    let mut row = String::new();
    let op = format!(
        "{}{}",
        if m.trans_a { "Aᵀ" } else { "A" },
        if m.trans_b { "·Bᵀ" } else { "·B" }
    );
    let _ = write!(
        row,
        "{:<23} {:<16} {:<7} {:<10} {:>5} {:>11.3} {:>10.2} {:>12.1}×",
        m.case,
        format!("{}×{}×{}", m.m, m.n, m.k),
        op,
        m.variant.to_string(),
        m.runs,
        m.median_ms,
        m.gflops,
        m.vs_cpu_twin
    );
    row
}
