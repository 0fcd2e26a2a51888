//! A whole training run: build the model, train epoch by epoch with a validation pass after
//! each, and evaluate the final model — the same for every model kind.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::data::batch::shuffled_indices;
use crate::data::{Dataset, ImageSpec};
use crate::gpu::GpuContext;
use crate::graph::Model;
use crate::nn::models::{Architecture, ModelChoice, ModelKind};
use crate::report::{ClassificationReport, ConfusionMatrix, EpochRecord, History, MetricsError};

use super::checkpoint::batch_norm_layers;
use super::early_stopping::{EarlyStopping, EarlyStoppingState, Monitor, Verdict, WeightCopy};
use super::loss::{ClassWeights, Loss, LossError, LossKind};
use super::optimizer::{L2Penalty, Optimizer, OptimizerError, OptimizerKind, OptimizerSettings};
use super::resume::{self, Checkpointing, ResumePoint};
use super::runner::{EpochSettings, EpochStart, RunError, Runner, Totals};
use super::schedule::{OptimizerSwitch, RunLength, Schedule, ScheduleState};

/// Everything that defines a run; the defaults are the study's.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSettings {
    pub model: ModelChoice,
    pub architecture: Architecture,
    pub optimizer: OptimizerSettings,
    /// Keras-style L2 penalties on chosen tensors (coupled weight decay 2λ on them).
    pub l2: Vec<L2Penalty>,
    pub epochs: usize,
    pub epoch: EpochSettings,
    pub label_smoothing: f32,
    /// A learning-rate schedule; none keeps the optimizer's lr.
    pub schedule: Option<Schedule>,
    pub switch_to_sgd: Option<OptimizerSwitch>,
    pub early_stopping: Option<EarlyStopping>,
    pub loss: LossKind,
    /// Weights of the training loss per class (the validation loss stays unweighted).
    pub class_weights: Option<ClassWeights>,
    /// Show progress bars on stderr.
    #[serde(skip)]
    pub progress: bool,
    /// Write (and resume from) a resumable checkpoint; none writes none.
    #[serde(skip)]
    pub checkpointing: Option<Checkpointing>,
}

impl TrainSettings {
    /// The study's recipe for `model`: 10 epochs at batch 64, SGD lr 0.01 for softmax and Adam
    /// lr 1e-3 otherwise, no augmentation or smoothing.
    /// A model file's model trains as the mlp and cnn do: Adam at lr 1e-3.
    pub fn study(model: impl Into<ModelChoice>, seed: u64) -> Self {
        let model = model.into();
        let optimizer = match &model {
            ModelChoice::BuiltIn(kind) => OptimizerSettings::study(*kind),
            ModelChoice::File(_) => OptimizerSettings::plain(OptimizerKind::Adam, 1e-3),
        };
        TrainSettings {
            model,
            architecture: Architecture::default(),
            optimizer,
            l2: Vec::new(),
            epochs: 10,
            epoch: EpochSettings {
                batch_size: 64,
                seed,
                augment: Default::default(),
                readback_every: 20,
            },
            label_smoothing: 0.0,
            schedule: None,
            switch_to_sgd: None,
            early_stopping: None,
            loss: LossKind::CrossEntropy,
            class_weights: None,
            progress: true,
            checkpointing: None,
        }
    }
}

/// What stops a model from training, or from being benchmarked or profiled: the request, its
/// shapes, its optimizer, or the GPU.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the training split is empty")]
    NoTrainingData,
    #[error("the {} model runs no GPU kernels: pick another (`fer models` lists them)", .0.name())]
    NoGpuModel(ModelKind),
    #[error("batch sizes must be positive")]
    EmptyBatch,
    /// A schedule, optimizer switch or early stopping that does not fit the run.
    #[error("{0}")]
    Callbacks(String),
    #[error(
        "model `{model}` has batch norms ({layer}, ...), which cannot train on a batch of one \
         image (its variance is 0, as PyTorch refuses too): {remedy}"
    )]
    LoneImageBatch {
        model: String,
        layer: String,
        remedy: String,
    },
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Optimizer(#[from] OptimizerError),
    #[error(transparent)]
    Loss(#[from] LossError),
    #[error(transparent)]
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Checkpoint(#[from] super::checkpoint::CheckpointError),
    /// A resumable checkpoint that does not continue this run.
    #[error("{0}")]
    Resume(String),
}

/// Where a run stands between epochs: the schedule's and early stopping's counters, which a
/// checkpoint of the run carries to resume it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Epochs finished.
    pub epoch: usize,
    /// Training steps taken, across optimizers.
    pub step: u64,
    pub schedule: ScheduleState,
    pub early_stopping: EarlyStoppingState,
}

/// What the callbacks made of an epoch, for its line (as Keras callbacks report).
#[derive(Clone, Debug, Default)]
pub struct EpochEvents {
    /// The scheduled lr moved from this epoch's first step to the next epoch's: (from, to).
    pub lr_change: Option<(f64, f64)>,
    /// The watched value beat its best: `best.safetensors` now holds this epoch.
    pub improved: Option<Improvement>,
    /// The optimizer the next epoch starts afresh with.
    pub switch: Option<OptimizerSettings>,
    /// Why training stops after this epoch.
    pub stop: Option<String>,
    /// The earlier, best epoch whose weights the model ends with.
    pub restored: Option<Restored>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Restored {
    pub epoch: usize,
    pub monitor: Monitor,
    pub best: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Improvement {
    pub monitor: Monitor,
    /// The best before this epoch; none at the first.
    pub previous: Option<f64>,
    pub best: f64,
}

/// An epoch as it ends: its record, its events, and the model as it stands (to checkpoint an
/// improvement; none for the baseline) after `steps` training steps.
pub struct EpochEnd<'a> {
    pub record: &'a EpochRecord,
    pub events: &'a EpochEvents,
    pub model: Option<&'a Model>,
    pub steps: u64,
}

/// A finished run: the model (none for the baseline), its history, and the final validation
/// predictions with their probabilities.
pub struct Trained {
    pub model: Option<Model>,
    /// Training steps taken (batches the model learned from).
    pub steps: u64,
    /// The schedule's and early stopping's counters at the end.
    pub state: TrainingState,
    pub history: History,
    pub val: Totals,
    pub val_predictions: Vec<usize>,
    /// One row per validation image, one probability per class.
    pub val_probabilities: Vec<Vec<f32>>,
    /// With augmentation, the first training batch as augmented (`[images, c, h, w]`).
    pub augmented: Option<Vec<f32>>,
    /// An interrupt stopped the run after its resumable checkpoint was written.
    pub interrupted: bool,
}

/// The images the built-in `model` reads ([`ModelChoice::input`]).
pub fn input_spec(model: ModelKind, architecture: &Architecture) -> ImageSpec {
    ModelChoice::from(model).input(architecture)
}

/// Trains `settings.model` on `train`, validating on `val` after every epoch, with the
/// settings' schedule, optimizer switch and early stopping; `on_epoch` sees each epoch as it
/// ends.
pub fn train(
    ctx: &GpuContext,
    train: &Dataset,
    val: &Dataset,
    settings: &TrainSettings,
    mut on_epoch: impl FnMut(&EpochEnd),
) -> Result<Trained, TrainError> {
    if train.is_empty() {
        return Err(TrainError::NoTrainingData);
    }
    check_callbacks(settings)?;
    let Some(model) = settings
        .model
        .build(ctx, &settings.architecture, settings.epoch.seed)?
    else {
        return baseline(train, val, settings, &mut on_epoch);
    };
    refuse_lone_image_batches(&model, train.len(), settings.epoch.batch_size)?;
    let mut optimizer = Optimizer::with_l2(ctx, &model, &settings.optimizer, &settings.l2)?;
    let loss = Loss::new(
        settings.loss,
        settings.label_smoothing,
        settings.class_weights.as_ref(),
        train,
    )?;
    let mut runner = Runner::with_loss(ctx, &model, loss)?;
    let run = RunLength {
        epochs: settings.epochs,
        steps_per_epoch: train.len().div_ceil(settings.epoch.batch_size.max(1)),
    };
    let watch = settings
        .early_stopping
        .clone()
        .unwrap_or_else(EarlyStopping::best_checkpoint_only);
    let best_weights = watch
        .restore_best_weights
        .then(|| WeightCopy::new(ctx, &model));
    let mut state = TrainingState {
        epoch: 0,
        step: 0,
        schedule: ScheduleState::new(settings.optimizer.lr),
        early_stopping: EarlyStoppingState::default(),
    };
    let mut steps_before_switch = 0;
    let mut history = History::new();
    let mut start: Option<EpochStart> = None;
    // What a resumed run must match: the settings and the data.
    let mut identity = serde_json::json!({
        "settings": settings,
        "classes": train.class_names(),
        "train_images": train.len(),
        "val_images": val.len(),
    });
    // Training on random crops of images read larger (`fer train --load-size`) is the run's too.
    if train.spec() != val.spec() {
        identity["train_images_read_at"] = serde_json::json!(train.spec().shape());
    }
    let checkpointing = settings.checkpointing.as_ref();
    if let Some(checkpointing) = checkpointing.filter(|c| c.resume) {
        let resumed = resume::load(ctx, &model, checkpointing, &identity, settings.epochs)?;
        let point = &resumed.point;
        state = point.state.clone();
        steps_before_switch = point.steps_before_switch;
        history = point.history.clone();
        if let Some(switch) = settings
            .switch_to_sgd
            .as_ref()
            .filter(|s| s.epoch <= state.epoch + 1)
        {
            let sgd = switch.settings(&settings.optimizer);
            optimizer = Optimizer::with_l2(ctx, &model, &sgd, &settings.l2)?;
        }
        resumed.restore_optimizer(ctx, &mut optimizer)?;
        if let Some(copy) = &best_weights {
            if state.early_stopping.best_epoch.is_some() {
                resumed.restore_best(ctx, &model, copy)?;
            }
        }
        runner.resume_at(state.step);
        start = resumed.epoch_start()?;
        eprintln!(
            "resuming {} after epoch {} and step {}",
            checkpointing.path.display(),
            state.epoch,
            state.step
        );
    }
    // Idempotent on a resumed state: the lrs depend on the base lr and plateau's lr only.
    let mut lrs = scheduled_lrs(settings, &mut state.schedule, state.epoch, run);
    let augmented = first_batch_augmented(&mut runner, train, &settings.epoch)?;
    let mut last_val = None;
    let mut restored = None;
    let mut interrupted = false;
    let mut last_checkpoint = Instant::now();
    let interrupt_requested = || checkpointing.is_some_and(Checkpointing::interrupted);
    // The run as it stands after `batches_done` batches of the coming epoch, with the steps
    // taken before and since an optimizer switch.
    let resume_point =
        |state: &TrainingState, history: &History, batches_done, (before, since)| ResumePoint {
            run: identity.clone(),
            state: state.clone(),
            batches_done,
            steps_before_switch: before,
            optimizer_steps: since,
            history: history.clone(),
            stopped: false,
        };
    for epoch in state.epoch + 1..=settings.epochs {
        let started = Instant::now();
        let bar = progress_bar(
            settings.progress,
            train.len(),
            &format!("epoch {epoch}/{}", settings.epochs),
        );
        let first_lr = lrs.as_ref().and_then(|lrs| lrs.first().copied());
        if let Some(lrs) = lrs.take() {
            optimizer.set_lr(lrs);
        }
        let start = start.take();
        optimizer.skip_scheduled(start.map_or(0, |s| s.batches_done));
        let fit = runner.train_epoch_from(
            train,
            &mut optimizer,
            (epoch as u64, &settings.epoch),
            start.as_ref(),
            &bar,
            |batches_done, runner, optimizer| {
                let Some(checkpointing) = checkpointing else {
                    return Ok(true);
                };
                // The epoch's last step is checkpointed with the epoch's end.
                let interrupt = checkpointing.interrupted();
                let due = checkpointing.due(runner.steps(), last_checkpoint.elapsed());
                if batches_done == run.steps_per_epoch || !(due || interrupt) {
                    return Ok(true);
                }
                let step = steps_before_switch + optimizer.steps();
                let at = TrainingState {
                    step,
                    ..state.clone()
                };
                let steps = (steps_before_switch, optimizer.steps());
                let point = resume_point(&at, &history, batches_done, steps);
                let sums = runner.epoch_stats()?;
                let best = best_weights.as_ref();
                resume::save(ctx, &model, checkpointing, &point, optimizer, &sums, best)?;
                last_checkpoint = Instant::now();
                Ok::<_, TrainError>(!interrupt)
            },
        )?;
        bar.finish_and_clear();
        let Some(fit) = fit else {
            state.step = steps_before_switch + optimizer.steps();
            interrupted = true;
            break;
        };
        let evaluation = runner.evaluate(val, settings.epoch.batch_size)?;
        let record = EpochRecord {
            epoch,
            train_loss: fit.loss,
            train_acc: fit.accuracy,
            val_loss: evaluation.totals.loss,
            val_acc: evaluation.totals.accuracy,
            seconds: started.elapsed().as_secs_f64(),
            val_recall: class_recalls(val, &predictions(&evaluation.logits, val.class_count()))?,
        };
        state.epoch = epoch;
        state.step = steps_before_switch + optimizer.steps();
        let mut events = EpochEvents::default();
        let value = watch.monitor.value(&record);
        match watch.update(&mut state.early_stopping, epoch, value) {
            Verdict::Improved { previous } => {
                if let Some(copy) = &best_weights {
                    copy.take(ctx, &model);
                }
                events.improved = Some(Improvement {
                    monitor: watch.monitor,
                    previous,
                    best: value,
                });
            }
            Verdict::Stop => events.stop = Some(watch.reason()),
            Verdict::NotImproved => {}
        }
        if let Some(schedule) = &settings.schedule {
            schedule.end_epoch(&mut state.schedule, &record);
        }
        let last = epoch == settings.epochs || events.stop.is_some();
        if last {
            let best = &state.early_stopping;
            restored = best
                .best_epoch
                .zip(best.best)
                .filter(|&(best_epoch, _)| best_weights.is_some() && best_epoch != epoch)
                .map(|(epoch, best)| Restored {
                    epoch,
                    monitor: watch.monitor,
                    best,
                });
            events.restored = restored;
        } else {
            if let Some(switch) = settings
                .switch_to_sgd
                .as_ref()
                .filter(|s| s.epoch == epoch + 1)
            {
                let sgd = switch.settings(&settings.optimizer);
                steps_before_switch += optimizer.steps();
                optimizer = Optimizer::with_l2(ctx, &model, &sgd, &settings.l2)?;
                state.schedule.rebase(sgd.lr);
                events.switch = Some(sgd);
            }
            lrs = scheduled_lrs(settings, &mut state.schedule, epoch, run);
            let next_lr = lrs.as_ref().and_then(|lrs| lrs.first().copied());
            events.lr_change = first_lr.zip(next_lr).filter(|(from, to)| from != to);
        }
        on_epoch(&EpochEnd {
            record: &record,
            events: &events,
            model: Some(&model),
            steps: state.step,
        });
        history.push(record);
        last_val = Some(evaluation);
        if let Some(checkpointing) = checkpointing {
            let point = ResumePoint {
                stopped: events.stop.is_some(),
                ..resume_point(
                    &state,
                    &history,
                    0,
                    (steps_before_switch, optimizer.steps()),
                )
            };
            let best = best_weights.as_ref();
            resume::save(
                ctx,
                &model,
                checkpointing,
                &point,
                &optimizer,
                &[0.0; 4],
                best,
            )?;
            last_checkpoint = Instant::now();
        }
        if last {
            break;
        }
        if interrupt_requested() {
            interrupted = true;
            break;
        }
    }
    if let (Some(copy), Some(_)) = (&best_weights, restored) {
        copy.restore(ctx, &model)?;
        last_val = None;
    }
    let evaluation = match last_val {
        Some(evaluation) => evaluation,
        None => runner.evaluate(val, settings.epoch.batch_size)?,
    };
    let probabilities = softmax_rows(&evaluation.logits, val.class_count());
    Ok(Trained {
        val_predictions: probabilities.iter().map(|row| argmax(row)).collect(),
        val_probabilities: probabilities,
        val: evaluation.totals,
        history,
        model: Some(model),
        steps: state.step,
        state,
        augmented,
        interrupted,
    })
}

/// The schedule's lr for each step of `epoch` (from 0); none without a schedule.
fn scheduled_lrs(
    settings: &TrainSettings,
    state: &mut ScheduleState,
    epoch: usize,
    run: RunLength,
) -> Option<Vec<f64>> {
    let schedule = settings.schedule.as_ref()?;
    Some(schedule.epoch_lrs(state, epoch, run))
}

/// Refuses a schedule or optimizer switch that does not fit the run's epochs.
fn check_callbacks(settings: &TrainSettings) -> Result<(), TrainError> {
    if let Some(schedule) = &settings.schedule {
        schedule
            .check(settings.epochs)
            .map_err(TrainError::Callbacks)?;
    }
    if let Some(switch) = &settings.switch_to_sgd {
        if switch.epoch > settings.epochs {
            return Err(TrainError::Callbacks(format!(
                "the switch to SGD at epoch {} comes after the last of the {} epochs",
                switch.epoch, settings.epochs
            )));
        }
        if let Some(Schedule::Onecycle(_)) = settings.schedule {
            return Err(TrainError::Callbacks(
                "the onecycle schedule sets every step's lr from its max_lr, so it cannot \
                 follow a switch to SGD: drop one of the two"
                    .to_string(),
            ));
        }
    }
    Ok(())
}

/// The first step's batch as its augmentation leaves it (none without augmentation): the
/// first images of epoch 1's shuffle, drawn with step 0's parameters.
fn first_batch_augmented(
    runner: &mut Runner,
    train: &Dataset,
    settings: &EpochSettings,
) -> Result<Option<Vec<f32>>, RunError> {
    if settings.augment.is_none() {
        return Ok(None);
    }
    let order = shuffled_indices(train.len(), settings.seed, 1);
    let first = &order[..settings.batch_size.min(order.len())];
    runner.augmented_batch(train, first, settings, 0).map(Some)
}

/// A batch norm in training normalises each batch by its own statistics, which one image
/// cannot give: refuse a batch size of 1, and an epoch whose last batch would be one image.
fn refuse_lone_image_batches(
    model: &Model,
    images: usize,
    batch_size: usize,
) -> Result<(), TrainError> {
    let Some(layer) = batch_norm_layers(model).next() else {
        return Ok(());
    };
    let remedy = if batch_size == 1 {
        "use a batch size of at least 2".to_string()
    } else if images % batch_size == 1 {
        format!(
            "the last batch of each epoch would hold one of the {images} training images in \
             batches of {batch_size}: pick another batch size"
        )
    } else {
        return Ok(());
    };
    Err(TrainError::LoneImageBatch {
        model: model.name.clone(),
        layer: layer.to_string(),
        remedy,
    })
}

/// The majority-class baseline: predicts the most frequent training class (ties: the lowest
/// index), with probability 1.
fn baseline(
    train: &Dataset,
    val: &Dataset,
    settings: &TrainSettings,
    on_epoch: &mut impl FnMut(&EpochEnd),
) -> Result<Trained, TrainError> {
    let counts = train.class_counts();
    let majority = argmax_counts(&counts);
    let accuracy_on = |data: &Dataset| {
        let hits = data
            .labels()
            .iter()
            .filter(|&&l| l as usize == majority)
            .count();
        hits as f64 / data.len().max(1) as f64
    };
    let record = EpochRecord {
        epoch: 1,
        train_loss: f64::NAN,
        train_acc: accuracy_on(train),
        val_loss: f64::NAN,
        val_acc: accuracy_on(val),
        seconds: 0.0,
        val_recall: class_recalls(val, &vec![majority; val.len()])?,
    };
    on_epoch(&EpochEnd {
        record: &record,
        events: &EpochEvents::default(),
        model: None,
        steps: 0,
    });
    let mut history = History::new();
    history.push(record);
    let mut certain = vec![0.0; train.class_count()];
    certain[majority] = 1.0;
    Ok(Trained {
        model: None,
        steps: 0,
        state: TrainingState {
            epoch: 1,
            step: 0,
            schedule: ScheduleState::new(settings.optimizer.lr),
            early_stopping: EarlyStoppingState::default(),
        },
        val: Totals {
            loss: f64::NAN,
            accuracy: accuracy_on(val),
        },
        history,
        val_predictions: vec![majority; val.len()],
        val_probabilities: vec![certain; val.len()],
        augmented: None,
        interrupted: false,
    })
}

/// The class each row of `[n, classes]` logits predicts.
fn predictions(logits: &[f32], classes: usize) -> Vec<usize> {
    logits.chunks_exact(classes.max(1)).map(argmax).collect()
}

/// Each class's recall on `data` given a prediction per image, as the classification report
/// defines it.
fn class_recalls(data: &Dataset, predictions: &[usize]) -> Result<Vec<f64>, MetricsError> {
    let truth: Vec<usize> = data.labels().iter().map(|&l| l as usize).collect();
    let names: Vec<&str> = data.class_names().iter().map(String::as_str).collect();
    let confusion = ConfusionMatrix::from_labels(&truth, predictions, &names)?;
    let report = ClassificationReport::from_confusion(&confusion);
    Ok(report.classes.iter().map(|c| c.scores.recall).collect())
}

fn argmax_counts(counts: &[usize]) -> usize {
    // max_by_key keeps the last of equal maxima; reverse so the lowest index wins ties.
    (0..counts.len())
        .rev()
        .max_by_key(|&c| counts[c])
        .unwrap_or(0)
}

/// Index of the largest value, the first on ties (torch.argmax's rule); 0 for an empty row.
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best })
}

/// Softmax of each row of `[n, classes]` logits, in f64 for the exponentials.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<Vec<f32>> {
    logits
        .chunks_exact(classes.max(1))
        .map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let exps: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            exps.iter().map(|&e| (e / total) as f32).collect()
        })
        .collect()
}

/// A bar over `len` images with rate and ETA, hidden when progress is off.
pub fn progress_bar(visible: bool, len: usize, prefix: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(len as u64);
    let style = ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} images  {per_sec}  eta {eta}  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar
}
