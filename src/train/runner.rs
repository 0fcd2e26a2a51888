//! Runs a model over a dataset on the GPU: training epochs and evaluation passes.
//!
//! A training step writes the batch and its augmentation's parameters, then records
//! augmentation → forward → loss → backward → optimizer update into one compute pass and
//! submits it; nothing is read back. Loss sums and correct counts accumulate on the GPU and are
//! read every `readback_every` steps (progress, NaN check) and at the end of the epoch. At most
//! two steps are in flight.

use std::collections::{HashMap, HashSet};

use indicatif::ProgressBar;

use crate::data::batch::{labels_u32, shuffled_indices, to_normalized_f32};
use crate::data::{Dataset, ImageSpec};
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::graph::{GraphError, Model, Plan};
use crate::kernels::softmax_ce::{
    softmax_ce_accumulate, softmax_ce_forward, softmax_ce_train, SoftmaxCeInputs, ROW_STATS,
};
use crate::rng::Rng;

use super::augmentation::{Augmentation, Augmenter};
use super::loss::Loss;
use super::optimizer::Optimizer;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "the training loss became {value} by step {step} ({}): lower the learning rate; the \
         run's resume.safetensors, if one was written (at each epoch's end and every \
         --checkpoint-every steps), holds its weights from before",
        last_finite.map_or("no finite loss was read before".to_string(), |(step, loss)| {
            format!("the last finite loss was {loss:.4}, read at step {step}")
        })
    )]
    Diverged {
        step: u64,
        value: f32,
        /// The step and value of the last finite loss read back, if one was.
        last_finite: Option<(u64, f64)>,
    },
    #[error(
        "model `{model}` predicts {outputs} class{}: a classifier needs at least two (the \
         softmax of one is always 1)",
        if *outputs == 1 { "" } else { "es" }
    )]
    TooFewClasses { model: String, outputs: usize },
    #[error(
        "model `{model}` predicts {outputs} classes, but the dataset has {classes}: give the \
         model's last linear layer out_features {classes} (`fer models --show NAME` writes a \
         built-in model as a file to edit and train with --model-file)"
    )]
    ClassCount {
        model: String,
        outputs: usize,
        classes: usize,
    },
    #[error(
        "model `{model}` reads {} images, but the dataset's are {}: load it at the model's spec",
        shape_text(expects),
        shape_text(found)
    )]
    ImageShape {
        model: String,
        expects: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("model `{model}` cannot take the augmentation {augmentation}: {reason}")]
    Augmentation {
        model: String,
        augmentation: String,
        reason: String,
    },
    #[error(transparent)]
    Augment(#[from] crate::kernels::augment::AugmentError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// How the batches of an epoch are drawn.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochSettings {
    pub batch_size: usize,
    pub seed: u64,
    /// What each training batch goes through on the GPU (never evaluation's).
    pub augment: Augmentation,
    /// Read the running loss back every this many steps.
    pub readback_every: usize,
}

/// Where a resumed epoch starts: the batches of its shuffle already trained on, and the loss
/// sums they left on the GPU (`[loss_sum, weight_sum, correct, rows]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStart {
    pub batches_done: usize,
    pub stats: [f32; ROW_STATS],
}

/// Mean loss and accuracy over the images seen.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Totals {
    pub loss: f64,
    pub accuracy: f64,
}

/// An evaluation pass: totals, and each image's logits (row-major [images, classes]).
pub struct Evaluation {
    pub totals: Totals,
    pub logits: Vec<f32>,
}

/// A plan at one batch size plus its loss kernels.
struct Batch {
    plan: Plan,
    labels: GpuBuffer,
    /// Evaluation's loss (unweighted): records, then their sums.
    loss_forward: Dispatch,
    loss_accumulate: Dispatch,
    /// A training step's loss, sums and gradient in one dispatch.
    loss_train: Dispatch,
}

pub struct Runner<'a> {
    ctx: &'a GpuContext,
    model: &'a Model,
    loss: Loss,
    /// The loss's class weights, for training steps only (evaluation's loss is unweighted).
    class_weight: Option<GpuBuffer>,
    classes: usize,
    /// [loss_sum, weight_sum, correct, rows], accumulated on the GPU.
    stats: GpuBuffer,
    batches: HashMap<usize, Batch>,
    /// The training batches' augmentation, from the last epoch's settings and images.
    augmenter: Option<((Augmentation, ImageSpec), Augmenter)>,
    steps: u64,
    /// The step and value of the last finite training loss read back.
    last_finite_loss: Option<(u64, f64)>,
}

impl<'a> Runner<'a> {
    /// A runner whose loss is unweighted cross-entropy with label smoothing ε.
    pub fn new(
        ctx: &'a GpuContext,
        model: &'a Model,
        label_smoothing: f32,
    ) -> Result<Self, RunError> {
        Self::with_loss(ctx, model, Loss::cross_entropy(label_smoothing))
    }

    /// A runner training with `loss` (its class weights, if any, one per model output).
    pub fn with_loss(ctx: &'a GpuContext, model: &'a Model, loss: Loss) -> Result<Self, RunError> {
        let classes = *model.shapes(1)?[..]
            .last()
            .and_then(|s| s.last())
            .unwrap_or(&0);
        if classes < 2 {
            return Err(RunError::TooFewClasses {
                model: model.name.clone(),
                outputs: classes,
            });
        }
        if let Some(weights) = loss.class_weights.as_ref().filter(|w| w.len() != classes) {
            return Err(RunError::ClassCount {
                model: model.name.clone(),
                outputs: classes,
                classes: weights.len(),
            });
        }
        let class_weight = loss
            .class_weights
            .as_ref()
            .map(|weights| GpuBuffer::from_slice(ctx, "class weights", weights));
        Ok(Runner {
            ctx,
            model,
            loss,
            class_weight,
            classes,
            stats: GpuBuffer::zeros(ctx, "loss stats", ROW_STATS),
            batches: HashMap::new(),
            augmenter: None,
            steps: 0,
            last_finite_loss: None,
        })
    }

    /// The plan for `size` images, built on first use (the last, partial batch gets its own).
    fn batch(&mut self, size: usize) -> Result<&Batch, RunError> {
        if !self.batches.contains_key(&size) {
            let what = format!("building model `{}` for batches of {size}", self.model.name);
            let plan = self.ctx.guard(&what, || self.model.plan(self.ctx, size))?;
            let labels = GpuBuffer::zeros(self.ctx, "labels", size);
            let records = GpuBuffer::zeros(self.ctx, "loss records", size * ROW_STATS);
            let ce = self.loss.over(size, self.classes);
            let unweighted = SoftmaxCeInputs {
                logits: plan.logits(),
                labels: &labels,
                weight: None,
            };
            let weighted = SoftmaxCeInputs {
                weight: self.class_weight.as_ref(),
                ..unweighted
            };
            let batch = Batch {
                loss_forward: softmax_ce_forward(self.ctx, &ce, &unweighted, &records)?,
                loss_accumulate: softmax_ce_accumulate(self.ctx, size, &records, &self.stats)?,
                loss_train: softmax_ce_train(
                    self.ctx,
                    &ce,
                    1.0,
                    &weighted,
                    plan.grad_logits(),
                    &self.stats,
                    plan.grad_logits_sum(),
                )?,
                plan,
                labels,
            };
            self.batches.insert(size, batch);
        }
        Ok(&self.batches[&size])
    }

    /// Refuses a dataset whose images or classes are not the model's; a training set's images
    /// may be larger (`fer train --load-size`): training crops them to the model's input.
    fn check_fits(&self, data: &Dataset, training: bool) -> Result<(), RunError> {
        let model = &self.model.name;
        let shape = data.spec().shape();
        let expects = &self.model.sample_shape;
        let larger = expects.len() == 3
            && shape[0] == expects[0]
            && shape[1] >= expects[1]
            && shape[2] >= expects[2];
        if *expects != shape && !(training && larger) {
            return Err(RunError::ImageShape {
                model: model.clone(),
                expects: self.model.sample_shape.clone(),
                found: shape.to_vec(),
            });
        }
        if data.class_count() != self.classes {
            return Err(RunError::ClassCount {
                model: model.clone(),
                outputs: self.classes,
                classes: data.class_count(),
            });
        }
        Ok(())
    }

    /// Writes the images and labels at `indices` as the batch of their size; with
    /// `augment_seed`, where the augmentation reads them, with the parameters of step `step` of
    /// a run of that seed.
    fn upload(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        augment_seed: Option<u64>,
        step: u64,
    ) -> Result<&Batch, RunError> {
        self.check_fits(data, augment_seed.is_some())?;
        let ctx = self.ctx;
        let size = indices.len();
        self.batch(size)?;
        let images = to_normalized_f32(data, indices);
        let batch = &self.batches[&size];
        match (augment_seed, &mut self.augmenter) {
            (Some(seed), Some((_, augmenter))) => {
                augmenter.write_batch(ctx, size, batch.plan.input(), &images, (seed, step))?
            }
            _ => batch.plan.input().write(ctx, &images),
        }
        batch.labels.write(ctx, &labels_u32(data, indices));
        Ok(batch)
    }

    /// Makes `augmentation` the training batches' (for images of `data`'s spec, cropped first
    /// to the model's input where they are larger).
    fn use_augmentation(
        &mut self,
        augmentation: &Augmentation,
        data: &Dataset,
    ) -> Result<(), RunError> {
        let key = (augmentation.clone(), data.spec().clone());
        if self.augmenter.as_ref().map(|(made_for, _)| made_for) == Some(&key) {
            return Ok(());
        }
        let refused = |reason| RunError::Augmentation {
            model: self.model.name.clone(),
            augmentation: augmentation.to_string(),
            reason,
        };
        let input = match self.model.sample_shape[..] {
            [_, height, width] => ImageSpec {
                height,
                width,
                ..data.spec().clone()
            },
            _ => data.spec().clone(),
        };
        self.augmenter = Augmenter::new(augmentation, data.spec(), &input)
            .map_err(refused)?
            .map(|augmenter| (key, augmenter));
        Ok(())
    }

    /// The batch at `indices` as training step `step` of a run with `settings` sees it, after
    /// its augmentation, read back (row-major `[images, channels, height, width]`).
    pub fn augmented_batch(
        &mut self,
        data: &Dataset,
        indices: &[usize],
        settings: &EpochSettings,
        step: u64,
    ) -> Result<Vec<f32>, RunError> {
        self.check_fits(data, true)?;
        self.use_augmentation(&settings.augment, data)?;
        self.upload(data, indices, Some(settings.seed), step)?;
        let size = indices.len();
        if let Some((_, augmenter)) = &self.augmenter {
            self.ctx.run(augmenter.dispatches(size))?;
        }
        Ok(self.batches[&size].plan.input().read(self.ctx)?)
    }

    fn read_totals(&self) -> Result<Totals, RunError> {
        let stats: Vec<f32> = self.stats.read(self.ctx)?;
        let [loss_sum, weight_sum, correct, rows] = [stats[0], stats[1], stats[2], stats[3]];
        Ok(Totals {
            loss: loss_sum as f64 / weight_sum.max(f32::MIN_POSITIVE) as f64,
            accuracy: correct as f64 / rows.max(1.0) as f64,
        })
    }

    /// The dispatches of one training step at `batch_size` by phase (for profiling and
    /// benchmarks).
    pub fn step_phases<'b>(
        &'b mut self,
        batch_size: usize,
        optimizer: &'b Optimizer,
    ) -> Result<StepPhases<'b>, RunError> {
        self.batch(batch_size)?;
        Ok(self.phases(batch_size, optimizer))
    }

    /// [`Runner::step_phases`] of a batch size already built.
    fn phases<'b>(&'b self, batch_size: usize, optimizer: &'b Optimizer) -> StepPhases<'b> {
        let batch = &self.batches[&batch_size];
        let mut backward = vec![&batch.loss_train];
        backward.extend(batch.plan.backward_dispatches());
        StepPhases {
            forward: batch.plan.forward_dispatches(true),
            backward,
            optimizer: optimizer.dispatches(),
        }
    }

    /// Every dispatch of one training step at `batch_size`, in recording order: the
    /// augmentation of the last training epoch's settings (if any), forward, loss (one
    /// dispatch: its value accumulated and its gradient), backward, optimizer. For profiling
    /// and benchmarks.
    pub fn step_dispatches<'b>(
        &'b mut self,
        batch_size: usize,
        optimizer: &'b Optimizer,
    ) -> Result<Vec<&'b Dispatch>, RunError> {
        let ctx = self.ctx;
        self.batch(batch_size)?;
        if let Some((_, augmenter)) = &mut self.augmenter {
            augmenter.prepare(ctx, batch_size, self.batches[&batch_size].plan.input())?;
        }
        let augmentation = self
            .augmenter
            .as_ref()
            .map_or(&[][..], |(_, a)| a.dispatches(batch_size));
        Ok(augmentation
            .iter()
            .chain(self.phases(batch_size, optimizer).in_order())
            .collect())
    }

    /// The inference forward pass at `batch_size` (dropout off, batch norm on running
    /// statistics), for benchmarks. What it derives from the weights alone is brought up to
    /// date here, once, and left out of the pass, as repeated inference on the same weights
    /// leaves it out.
    pub fn inference_dispatches(&mut self, batch_size: usize) -> Result<&[Dispatch], RunError> {
        let ctx = self.ctx;
        let plan = &self.batch(batch_size)?.plan;
        ctx.run(plan.from_weights_dispatches())?;
        Ok(plan.forward_dispatches(false))
    }

    /// Uploads the images and labels at `indices` as the batch of their size, for benchmarks
    /// that then run [`Runner::step_phases`] or [`Runner::inference_dispatches`] on it.
    pub fn load_batch(&mut self, data: &Dataset, indices: &[usize]) -> Result<(), RunError> {
        self.upload(data, indices, None, 0)?;
        Ok(())
    }

    /// One epoch of training over `data` in a seeded shuffle.
    pub fn train_epoch(
        &mut self,
        data: &Dataset,
        optimizer: &mut Optimizer,
        epoch: u64,
        settings: &EpochSettings,
        progress: &ProgressBar,
    ) -> Result<Totals, RunError> {
        let whole = self.train_epoch_from(
            data,
            optimizer,
            (epoch, settings),
            None,
            progress,
            |_, _, _| Ok::<_, RunError>(true),
        )?;
        Ok(whole.expect("an epoch that always goes on finishes"))
    }

    /// [`Runner::train_epoch`] from `start` (a run resumed part-way through the epoch: its
    /// batches done and loss sums so far), calling `after_step` with the batches done after
    /// each step; the epoch stops early, returning `None`, when that says not to go on.
    pub fn train_epoch_from<E: From<RunError> + From<GpuError>>(
        &mut self,
        data: &Dataset,
        optimizer: &mut Optimizer,
        (epoch, settings): (u64, &EpochSettings),
        start: Option<&EpochStart>,
        progress: &ProgressBar,
        mut after_step: impl FnMut(usize, &Self, &Optimizer) -> Result<bool, E>,
    ) -> Result<Option<Totals>, E> {
        self.check_fits(data, true)?;
        self.use_augmentation(&settings.augment, data)?;
        let (done, stats) = start.map_or((0, [0.0; ROW_STATS]), |s| (s.batches_done, s.stats));
        self.stats.write(self.ctx, &stats);
        let order = shuffled_indices(data.len(), settings.seed, epoch);
        let chunks: Vec<&[usize]> = order.chunks(settings.batch_size).collect();
        progress.inc(chunks.iter().take(done).map(|c| c.len() as u64).sum());
        let mut in_flight = InFlight::default();
        for (i, indices) in chunks.iter().enumerate().skip(done) {
            // Distinct per run and per step; each dropout layer mixes in its index.
            let step_seed = Rng::new(settings.seed ^ 0x5EED).next_u64() ^ self.steps;
            let ctx = self.ctx;
            self.upload(data, indices, Some(settings.seed), self.steps)?
                .plan
                .prepare_step(ctx, step_seed);
            optimizer.prepare_step(ctx);
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                // The same order the profiler and `fer bench step` time.
                for dispatch in self.step_dispatches(indices.len(), optimizer)? {
                    dispatch.record(&mut pass);
                }
            }
            in_flight.submit(ctx, encoder)?;
            self.steps += 1;
            progress.inc(indices.len() as u64);
            let last = i + 1 == chunks.len();
            if last || (i + 1) % settings.readback_every.max(1) == 0 {
                let totals = self.read_totals()?;
                if !totals.loss.is_finite() {
                    return Err(RunError::Diverged {
                        step: self.steps,
                        value: totals.loss as f32,
                        last_finite: self.last_finite_loss,
                    }
                    .into());
                }
                self.last_finite_loss = Some((self.steps, totals.loss));
                progress.set_message(format!(
                    "loss {:.4} acc {:.4}",
                    totals.loss, totals.accuracy
                ));
            }
            if !after_step(i + 1, self, optimizer)? {
                return Ok(None);
            }
        }
        Ok(Some(self.read_totals()?))
    }

    /// The epoch's loss sums so far, as [`EpochStart::stats`] takes them back.
    pub fn epoch_stats(&self) -> Result<[f32; ROW_STATS], RunError> {
        let stats: Vec<f32> = self.stats.read(self.ctx)?;
        Ok(std::array::from_fn(|i| stats[i]))
    }

    /// Training steps taken, which seed each step's dropout and augmentation.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Continues a run that took `steps` training steps.
    pub fn resume_at(&mut self, steps: u64) {
        self.steps = steps;
    }

    /// Inference over all of `data` in order (dropout off, batch norm on running statistics).
    pub fn evaluate(&mut self, data: &Dataset, batch_size: usize) -> Result<Evaluation, RunError> {
        self.stats.write(self.ctx, &[0.0f32; ROW_STATS]);
        let all_logits = GpuBuffer::zeros(self.ctx, "evaluation logits", data.len() * self.classes);
        let order: Vec<usize> = (0..data.len()).collect();
        let mut in_flight = InFlight::default();
        // The batch sizes whose plans derived what they read from the weights in this call.
        let mut derived = HashSet::new();
        for (i, indices) in order.chunks(batch_size).enumerate() {
            let ctx = self.ctx;
            let row_bytes = (self.classes * 4) as u64;
            let batch = self.upload(data, indices, None, 0)?;
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                match derived.insert(indices.len()) {
                    true => batch.plan.record_forward(&mut pass, false),
                    false => batch.plan.record_inference_again(&mut pass),
                }
                batch.loss_forward.record(&mut pass);
                batch.loss_accumulate.record(&mut pass);
            }
            encoder.copy_buffer_to_buffer(
                batch.plan.logits().raw(),
                batch.plan.logits().offset_bytes(),
                all_logits.raw(),
                all_logits.offset_bytes() + (i * batch_size) as u64 * row_bytes,
                Some(indices.len() as u64 * row_bytes),
            );
            in_flight.submit(ctx, encoder)?;
        }
        Ok(Evaluation {
            totals: self.read_totals()?,
            logits: all_logits.read(self.ctx)?,
        })
    }
}

/// `[1, 48, 48]` as `1×48×48`.
fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("×")
}

/// One training step's dispatches, each phase in recording order.
pub struct StepPhases<'a> {
    pub forward: &'a [Dispatch],
    /// The loss (its value accumulated and its gradient), then the model's backward pass.
    pub backward: Vec<&'a Dispatch>,
    pub optimizer: &'a [Dispatch],
}

impl<'a> StepPhases<'a> {
    /// All of them in the order a training step records them.
    pub fn in_order(&self) -> Vec<&'a Dispatch> {
        self.forward
            .iter()
            .chain(self.backward.iter().copied())
            .chain(self.optimizer)
            .collect()
    }
}

/// Keeps at most two submissions in flight, so the CPU prepares the next batch while the GPU
/// runs this one without queueing unbounded work.
#[derive(Default)]
pub(crate) struct InFlight {
    previous: Option<wgpu::SubmissionIndex>,
}

impl InFlight {
    pub(crate) fn submit(
        &mut self,
        ctx: &GpuContext,
        encoder: wgpu::CommandEncoder,
    ) -> Result<(), GpuError> {
        let index = ctx.queue.submit([encoder.finish()]);
        if let Some(previous) = self.previous.replace(index) {
            ctx.device.poll(wgpu::PollType::Wait {
                submission_index: Some(previous),
                timeout: None,
            })?;
        }
        Ok(())
    }
}
