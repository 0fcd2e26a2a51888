//! A whole training run: build the model, train epoch by epoch with a validation pass after
//! each, and evaluate the final model — the same for every model kind.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::data::batch::shuffled_indices;
use crate::data::{Dataset, ImageSpec};
use crate::gpu::GpuContext;
use crate::graph::Model;
use crate::nn::models::{Architecture, ModelChoice, ModelKind};
use crate::report::{EpochRecord, History};

use super::checkpoint::batch_norm_layers;
use super::optimizer::{Optimizer, OptimizerError, OptimizerKind, OptimizerSettings};
use super::runner::{EpochSettings, RunError, Runner, Totals};

/// Everything that defines a run; the defaults are the study's.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSettings {
    pub model: ModelChoice,
    pub architecture: Architecture,
    pub optimizer: OptimizerSettings,
    pub epochs: usize,
    pub epoch: EpochSettings,
    pub label_smoothing: f32,
    /// Show progress bars on stderr.
    #[serde(skip)]
    pub progress: bool,
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
            epochs: 10,
            epoch: EpochSettings {
                batch_size: 64,
                seed,
                augment: Default::default(),
                readback_every: 20,
            },
            label_smoothing: 0.0,
            progress: true,
        }
    }
}

/// What stops a model from training, or from being benchmarked or profiled: the request, its
/// shapes, its optimizer, or the GPU.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("the training split is empty")]
    NoTrainingData,
    #[error("the {} model runs no GPU kernels: pick softmax, mlp or cnn", .0.name())]
    NoGpuModel(ModelKind),
    #[error("batch sizes must be positive")]
    EmptyBatch,
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
    Graph(#[from] crate::graph::GraphError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

/// A finished run: the model (none for the baseline), its history, and the final validation
/// predictions with their probabilities.
pub struct Trained {
    pub model: Option<Model>,
    /// Training steps taken (batches the model learned from).
    pub steps: u64,
    pub history: History,
    pub val: Totals,
    pub val_predictions: Vec<usize>,
    /// One row per validation image, one probability per class.
    pub val_probabilities: Vec<Vec<f32>>,
    /// With augmentation, the first training batch as augmented (`[images, c, h, w]`).
    pub augmented: Option<Vec<f32>>,
}

/// The images the built-in `model` reads ([`ModelChoice::input`]).
pub fn input_spec(model: ModelKind, architecture: &Architecture) -> ImageSpec {
    ModelChoice::from(model).input(architecture)
}

/// Trains `settings.model` on `train`, validating on `val` after every epoch; `on_epoch` sees
/// each epoch's record as it lands.
pub fn train(
    ctx: &GpuContext,
    train: &Dataset,
    val: &Dataset,
    settings: &TrainSettings,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<Trained, TrainError> {
    if train.is_empty() {
        return Err(TrainError::NoTrainingData);
    }
    let Some(model) = settings
        .model
        .build(ctx, &settings.architecture, settings.epoch.seed)?
    else {
        return Ok(baseline(train, val, &mut on_epoch));
    };
    refuse_lone_image_batches(&model, train.len(), settings.epoch.batch_size)?;
    let mut optimizer = Optimizer::new(ctx, &model, &settings.optimizer)?;
    let mut runner = Runner::new(ctx, &model, settings.label_smoothing)?;
    let augmented = first_batch_augmented(&mut runner, train, &settings.epoch)?;
    let mut history = History::new();
    let mut last_val = None;
    for epoch in 1..=settings.epochs {
        let started = Instant::now();
        let bar = progress_bar(
            settings.progress,
            train.len(),
            &format!("epoch {epoch}/{}", settings.epochs),
        );
        let fit = runner.train_epoch(train, &mut optimizer, epoch as u64, &settings.epoch, &bar)?;
        bar.finish_and_clear();
        let evaluation = runner.evaluate(val, settings.epoch.batch_size)?;
        let record = EpochRecord {
            epoch,
            train_loss: fit.loss,
            train_acc: fit.accuracy,
            val_loss: evaluation.totals.loss,
            val_acc: evaluation.totals.accuracy,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_epoch(&record);
        history.push(record);
        last_val = Some(evaluation);
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
        steps: optimizer.steps(),
        augmented,
    })
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
fn baseline(train: &Dataset, val: &Dataset, on_epoch: &mut impl FnMut(&EpochRecord)) -> Trained {
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
    };
    on_epoch(&record);
    let mut history = History::new();
    history.push(record);
    let mut certain = vec![0.0; train.class_count()];
    certain[majority] = 1.0;
    Trained {
        model: None,
        steps: 0,
        val: Totals {
            loss: f64::NAN,
            accuracy: accuracy_on(val),
        },
        history,
        val_predictions: vec![majority; val.len()],
        val_probabilities: vec![certain; val.len()],
        augmented: None,
    }
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
