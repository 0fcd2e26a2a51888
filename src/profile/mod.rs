//! `fer profile`: where a training step's GPU time goes, kernel by kernel (or, with
//! [`Pass::Inference`], the inference forward pass's: what `fer predict` and `fer live` run).
//!
//! Each profiled step runs its dispatches in recording order (augmentation when asked for,
//! forward, loss, backward, optimizer), each in its own compute pass between timestamp writes,
//! so data dependencies hold and every kernel gets its own GPU time. The same steps are then
//! run as training runs them, one pass and one submit, and timed by the wall clock: the gap
//! between the two is what submitting, waiting and the driver add on top of the kernels. Both
//! are medians over the steps; the trace keeps every step.

mod aggregate;
mod report;
mod trace;

pub use aggregate::{by_label, typical_step, KernelStats, PeakFigures};
pub use report::table;
pub use trace::{chrome_trace, write_trace};

use indicatif::ProgressBar;
use serde::Serialize;

use crate::bench::{median, wall_seconds};
use crate::data::synthetic::{generate, SplitSizes};
use crate::gpu::{AdapterSummary, Cost, Dispatch, GpuContext, GpuTimer, TimingSource};
use crate::nn::models::{build, Architecture, ModelChoice, ModelKind};
use crate::train::augmentation::Augmentation;
use crate::train::optimizer::{Optimizer, OptimizerSettings};
use crate::train::runner::{EpochSettings, Runner};
use crate::train::session::{input_spec, TrainError};

/// Which pass of the model a profile times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    /// A training step: augmentation, forward, loss, backward, optimizer.
    #[default]
    Training,
    /// The inference forward pass alone (dropout off, batch norm on running statistics).
    Inference,
}

/// What to profile and for how long.
#[derive(Clone, Debug)]
pub struct ProfileSettings {
    pub model: ModelKind,
    pub architecture: Architecture,
    pub optimizer: OptimizerSettings,
    pub batch: usize,
    /// Training steps run before timing (at least one): they compile every pipeline and fill
    /// the input.
    pub warmup_steps: usize,
    pub steps: usize,
    pub seed: u64,
    /// The training batches' augmentation (its kernels are profiled with the step's).
    pub augment: Augmentation,
    pub pass: Pass,
}

/// One dispatch of one profiled step, as the GPU ran it.
#[derive(Clone, Debug, Serialize)]
pub struct TimedDispatch {
    pub label: String,
    pub seconds: f64,
    pub cost: Option<Cost>,
}

/// A whole step: the kernels' GPU time against the wall time of the step run as training runs
/// it (one pass, one submit, then a wait).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct StepTimes {
    /// The sum of the kernels' times in the [`typical_step`] (each its median over the steps).
    pub gpu_ms: f64,
    /// Median wall time of one step, submit to finish.
    pub wall_ms: f64,
    /// wall_ms / gpu_ms.
    pub overhead: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub adapter: AdapterSummary,
    pub model: ModelKind,
    pub architecture: Architecture,
    pub batch: usize,
    pub pass: Pass,
    pub augment: Augmentation,
    pub warmup_steps: usize,
    pub steps: usize,
    pub timing: TimingSource,
    pub peak: Option<PeakFigures>,
    pub step: StepTimes,
    /// The [`typical_step`]'s kernels, sorted by GPU time per step, largest first.
    pub kernels: Vec<KernelStats>,
    /// Every profiled step's dispatches in the order they ran (for the trace).
    #[serde(skip)]
    pub timeline: Vec<Vec<TimedDispatch>>,
}

/// The dispatches of one profiled `pass`. A training step first prepares the optimizer's step
/// count, as training does; the inference pass reads the weights the warm-up left (and what
/// it derives from them, brought up to date first).
fn profiled_dispatches<'r>(
    ctx: &GpuContext,
    pass: Pass,
    runner: &'r mut Runner,
    optimizer: &'r mut Optimizer,
    batch: usize,
) -> Result<Vec<&'r Dispatch>, TrainError> {
    Ok(match pass {
        Pass::Training => {
            optimizer.prepare_step(ctx);
            runner.step_dispatches(batch, optimizer)?
        }
        Pass::Inference => runner.inference_dispatches(batch)?.iter().collect(),
    })
}

/// Trains `settings.model` on synthetic faces for the warm-up steps, then profiles
/// `settings.steps` steps; `peak` (the adapter's measured peak) turns rates into percentages.
pub fn run(
    ctx: &GpuContext,
    settings: &ProfileSettings,
    peak: Option<PeakFigures>,
) -> Result<Profile, TrainError> {
    let batch = settings.batch.max(1);
    let steps = settings.steps.max(1);
    // At least one warm-up step: it uploads the batch the profiled steps then reuse.
    let warmup_steps = settings.warmup_steps;
    let model = build(ctx, settings.model, &settings.architecture, settings.seed)?
        .ok_or(TrainError::NoGpuModel(settings.model))?;
    let mut optimizer = Optimizer::new(ctx, &model, &settings.optimizer)?;
    let mut runner = Runner::new(ctx, &model, 0.0)?;
    let sizes = SplitSizes {
        train: batch * warmup_steps,
        val: 0,
        test: 0,
    };
    let warmup = EpochSettings {
        batch_size: batch,
        seed: settings.seed,
        augment: settings.augment.clone(),
        readback_every: warmup_steps,
    };
    runner.train_epoch(
        &generate(
            settings.seed,
            sizes,
            &input_spec(settings.model, &settings.architecture),
            ModelChoice::from(settings.model).classes(&settings.architecture)?,
        )?
        .train,
        &mut optimizer,
        0,
        &warmup,
        &ProgressBar::hidden(),
    )?;

    let dispatch_count =
        profiled_dispatches(ctx, settings.pass, &mut runner, &mut optimizer, batch)?.len();
    let timer = GpuTimer::new(ctx, dispatch_count as u32);
    let mut timeline = Vec::with_capacity(steps);
    for _ in 0..steps {
        let dispatches =
            profiled_dispatches(ctx, settings.pass, &mut runner, &mut optimizer, batch)?;
        let seconds = timer.time(ctx, &dispatches)?;
        timeline.push(
            dispatches
                .iter()
                .zip(seconds)
                .map(|(dispatch, seconds)| TimedDispatch {
                    label: dispatch.label().to_string(),
                    seconds,
                    cost: dispatch.cost(),
                })
                .collect::<Vec<_>>(),
        );
    }

    let mut wall = Vec::with_capacity(steps);
    for _ in 0..steps {
        let dispatches =
            profiled_dispatches(ctx, settings.pass, &mut runner, &mut optimizer, batch)?;
        let mut ran = Ok(());
        wall.push(wall_seconds(|| ran = ctx.run(dispatches.iter().copied())));
        ran?;
    }

    let typical = typical_step(&timeline);
    let gpu_ms = typical.iter().map(|d| d.seconds).sum::<f64>() * 1e3;
    let wall_ms = median(&wall) * 1e3;
    Ok(Profile {
        adapter: ctx.summary().clone(),
        model: settings.model,
        architecture: settings.architecture.clone(),
        batch,
        pass: settings.pass,
        augment: settings.augment.clone(),
        warmup_steps,
        steps,
        timing: timer.source(),
        peak,
        step: StepTimes {
            gpu_ms,
            wall_ms,
            overhead: wall_ms / gpu_ms,
        },
        kernels: by_label(&[typical], peak),
        timeline,
    })
}
