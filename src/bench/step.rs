//! `fer bench step`: training and inference images/s of one model at several batch sizes, the
//! training step split into forward, backward (with the loss) and optimizer GPU time.
//!
//! The step is the one `fer train` records: its dispatches in one pass, one submit, one wait,
//! timed by the wall clock. Each phase is timed apart with [`GpuTimer`] (each dispatch in its
//! own pass), so the phases add up to less than the step: the difference is dispatch and
//! submit overhead. Images are synthetic faces uploaded once; the point is throughput.

use std::fmt::Write as _;

use serde::Serialize;

use super::{median, wall_seconds};
use crate::data::synthetic::{generate, SplitSizes};
use crate::gpu::{AdapterSummary, Dispatch, GpuContext, GpuError, GpuTimer, TimingSource};
use crate::nn::models::{build, Architecture, ModelChoice, ModelKind};
use crate::train::optimizer::{Optimizer, OptimizerKind, OptimizerSettings};
use crate::train::runner::Runner;
use crate::train::session::{input_spec, TrainError};

pub struct Options {
    pub model: ModelKind,
    pub batches: Vec<usize>,
    /// Timed steps per batch size after one warm-up step; `None`: 20 on a GPU, 2 on a
    /// software adapter.
    pub steps: Option<usize>,
    /// The study's cnn even on a software adapter (where it is otherwise scaled down).
    pub full: bool,
}

/// Medians over the timed steps at one batch size. Phase times are GPU time; `step_ms` and
/// `inference_ms` are wall clock (one submit + wait).
#[derive(Clone, Debug, Serialize)]
pub struct Measurement {
    pub batch: usize,
    pub steps: usize,
    pub train_images_per_s: f64,
    pub inference_images_per_s: f64,
    pub step_ms: f64,
    pub forward_ms: f64,
    /// The loss (forward, accumulate, backward) and the model's backward pass.
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub inference_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub adapter: AdapterSummary,
    pub model: ModelKind,
    pub architecture: Architecture,
    /// Why the architecture is not the study's, when it is not.
    pub scaled: Option<String>,
    pub optimizer: OptimizerKind,
    /// Where the phase times come from.
    pub timing: TimingSource,
    pub measurements: Vec<Measurement>,
}

/// Measures every batch size of `options`, calling `progress` with each result as it lands.
pub fn run(
    ctx: &GpuContext,
    options: &Options,
    mut progress: impl FnMut(&Measurement),
) -> Result<Report, TrainError> {
    if options.batches.contains(&0) {
        return Err(TrainError::EmptyBatch);
    }
    let software = ctx.summary().is_software();
    let scale_down = software && !options.full && options.model == ModelKind::Cnn;
    let architecture = if scale_down {
        Architecture::scaled_for_software()
    } else {
        Architecture::default()
    };
    let scaled = scale_down.then(|| format!("{}; --full runs it", architecture.scaled_cnn_note()));
    let steps = options
        .steps
        .unwrap_or(if software { 2 } else { 20 })
        .max(1);
    let model = build(ctx, options.model, &architecture, 0)?
        .ok_or(TrainError::NoGpuModel(options.model))?;
    let settings = OptimizerSettings::study(options.model);
    let mut optimizer = Optimizer::new(ctx, &model, &settings)?;
    // Step 1 rather than 0, so Adam's bias correction divides by a non-zero number.
    optimizer.prepare_step(ctx);
    let mut runner = Runner::new(ctx, &model, 0.0)?;
    let largest = options.batches.iter().copied().max().unwrap_or(0);
    let faces = generate(
        0,
        SplitSizes {
            train: largest,
            val: 0,
            test: 0,
        },
        &input_spec(options.model, &architecture),
        ModelChoice::from(options.model).classes(&architecture)?,
    )?
    .train;
    let mut timing = TimingSource::WallClock;
    let mut measurements = Vec::new();
    for &batch in &options.batches {
        let indices: Vec<usize> = (0..batch).collect();
        runner.load_batch(&faces, &indices)?;
        let phases = runner.step_phases(batch, &optimizer)?;
        let step = phases.in_order();
        let timer = GpuTimer::new(ctx, step.len() as u32);
        timing = timer.source();
        let (forward_end, backward_end) = (
            phases.forward.len(),
            phases.forward.len() + phases.backward.len(),
        );
        run_once(ctx, &step)?;
        let (mut forward, mut backward, mut update, mut wall) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..steps {
            let seconds = timer.time(ctx, &step)?;
            forward.push(seconds[..forward_end].iter().sum());
            backward.push(seconds[forward_end..backward_end].iter().sum());
            update.push(seconds[backward_end..].iter().sum());
            wall.push(run_once(ctx, &step)?);
        }
        // No warm-up: the training steps have already touched every buffer this reads.
        let inference: Vec<&Dispatch> = runner.inference_dispatches(batch)?.iter().collect();
        let inference_wall = (0..steps)
            .map(|_| run_once(ctx, &inference))
            .collect::<Result<Vec<f64>, _>>()?;
        let (step_s, inference_s) = (median(&wall), median(&inference_wall));
        let measurement = Measurement {
            batch,
            steps,
            train_images_per_s: batch as f64 / step_s,
            inference_images_per_s: batch as f64 / inference_s,
            step_ms: step_s * 1e3,
            forward_ms: median(&forward) * 1e3,
            backward_ms: median(&backward) * 1e3,
            optimizer_ms: median(&update) * 1e3,
            inference_ms: inference_s * 1e3,
        };
        progress(&measurement);
        measurements.push(measurement);
    }
    Ok(Report {
        adapter: ctx.summary().clone(),
        model: options.model,
        architecture,
        scaled,
        optimizer: settings.kind,
        timing,
        measurements,
    })
}

/// Wall seconds of `dispatches` in one pass, one submit and one wait.
fn run_once(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<f64, GpuError> {
    let mut result = Ok(());
    let seconds = wall_seconds(|| result = ctx.run(dispatches.iter().copied()));
    result.map(|()| seconds)
}

pub const TABLE_HEADER: &str = "batch  steps  train img/s  infer img/s   step ms   forward ms  backward ms  optimizer ms   infer ms";

/// One table row for people.
pub fn table_row(m: &Measurement) -> String {
    let mut row = String::new();
    let _ = write!(
        row,
        "{:>5} {:>6} {:>12.1} {:>12.1} {:>9.2} {:>12.2} {:>12.2} {:>13.2} {:>10.2}",
        m.batch,
        m.steps,
        m.train_images_per_s,
        m.inference_images_per_s,
        m.step_ms,
        m.forward_ms,
        m.backward_ms,
        m.optimizer_ms,
        m.inference_ms
    );
    row
}
