//! Early stopping with Keras's semantics (`keras.callbacks.EarlyStopping`): watch a validation
//! value, stop after `patience` epochs without an improvement of more than `min_delta`, and
//! end with the best epoch's weights. The same watch, never stopping, picks the epoch that
//! `best.safetensors` holds.

use serde::{Deserialize, Serialize};

use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::graph::Model;
use crate::report::EpochRecord;

use super::option_text::OptionText;

/// A value measured after every epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    ValLoss,
    ValAcc,
}

/// Whether lower or higher values are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Min,
    Max,
}

impl Monitor {
    pub const CHOICES: [(&'static str, Monitor); 2] =
        [("val_loss", Monitor::ValLoss), ("val_acc", Monitor::ValAcc)];

    pub fn name(self) -> &'static str {
        match self {
            Monitor::ValLoss => "val_loss",
            Monitor::ValAcc => "val_acc",
        }
    }

    pub fn value(self, record: &EpochRecord) -> f64 {
        match self {
            Monitor::ValLoss => record.val_loss,
            Monitor::ValAcc => record.val_acc,
        }
    }

    /// The direction that is better: a loss falls, an accuracy rises.
    pub fn mode(self) -> Mode {
        match self {
            Monitor::ValLoss => Mode::Min,
            Monitor::ValAcc => Mode::Max,
        }
    }

    /// `val_loss` or `val_acc`.
    pub fn parse(text: &str) -> Result<Self, String> {
        Monitor::CHOICES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|&(_, monitor)| monitor)
            .ok_or_else(|| format!("`{text}` is not a monitored value: use val_loss or val_acc"))
    }
}

/// `--early-stopping MONITOR[:patience=N,min_delta=D,restore=true|false]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    pub monitor: Monitor,
    /// Epochs without improvement before stopping (Keras's default: 0).
    pub patience: usize,
    /// An improvement must beat the best by more than this (absolute, in the monitor's units).
    pub min_delta: f64,
    /// End with the best epoch's weights (Keras's `restore_best_weights`; on by default here,
    /// off in Keras), whether training stopped early or ran all its epochs, as Keras 3 does.
    pub restore_best_weights: bool,
}

/// What an epoch's value meant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// A new best; `previous` is the old one (none at the first epoch).
    Improved {
        previous: Option<f64>,
    },
    NotImproved,
    /// Patience ran out: stop after this epoch.
    Stop,
}

/// Early stopping's counters, carried by a checkpoint of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyStoppingState {
    /// The best value so far; none before the first epoch.
    pub best: Option<f64>,
    /// The epoch (from 1) that gave it.
    pub best_epoch: Option<usize>,
    /// Epochs since the last improvement.
    pub wait: usize,
}

impl EarlyStopping {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut text = OptionText::parse(text)?;
        let stopping = EarlyStopping {
            monitor: Monitor::parse(text.name)?,
            patience: text.count("patience", 0, 0)?,
            min_delta: text.number("min_delta", 0.0, |d| d >= 0.0, "a number of at least 0")?,
            restore_best_weights: text.flag("restore", true)?,
        };
        text.finish("early stopping")?;
        Ok(stopping)
    }

    /// The watch behind `best.safetensors` when no early stopping is asked for: val_loss,
    /// as Keras's ModelCheckpoint watches by default, never stopping or restoring.
    pub fn best_checkpoint_only() -> Self {
        EarlyStopping {
            monitor: Monitor::ValLoss,
            patience: usize::MAX,
            min_delta: 0.0,
            restore_best_weights: false,
        }
    }

    /// Keras's `_is_improvement`: beats the best by more than `min_delta` in the monitor's
    /// direction; anything beats no best, and NaN beats nothing.
    fn improves(&self, value: f64, best: Option<f64>) -> bool {
        let Some(best) = best else {
            return !value.is_nan();
        };
        match self.monitor.mode() {
            Mode::Min => value + self.min_delta < best,
            Mode::Max => value - self.min_delta > best,
        }
    }

    /// Keras's `on_epoch_end` for `epoch` (from 1) whose monitored value is `value`.
    pub fn update(&self, state: &mut EarlyStoppingState, epoch: usize, value: f64) -> Verdict {
        state.wait += 1;
        if self.improves(value, state.best) {
            let previous = state.best.replace(value);
            state.best_epoch = Some(epoch);
            state.wait = 0;
            return Verdict::Improved { previous };
        }
        if state.wait >= self.patience && epoch > 1 {
            Verdict::Stop
        } else {
            Verdict::NotImproved
        }
    }

    /// Why training stopped, as the epoch line says it.
    pub fn reason(&self) -> String {
        format!(
            "early stopping: {} did not improve by {} for {} epochs",
            self.monitor.name(),
            self.min_delta,
            self.patience
        )
    }
}

/// A copy on the GPU of every tensor of a model (parameters and batch-norm running
/// statistics): the best epoch's weights, put back at the end without a round trip through
/// the host.
pub struct WeightCopy {
    copies: Vec<GpuBuffer>,
}

impl WeightCopy {
    pub fn new(ctx: &GpuContext, model: &Model) -> Self {
        let copies = model
            .params
            .iter()
            .map(|param| GpuBuffer::zeros(ctx, &format!("best {}", param.name), param.value.len()))
            .collect();
        WeightCopy { copies }
    }

    /// Each tensor's copy, in the model's order (for a resumable checkpoint).
    pub fn tensors(&self) -> &[GpuBuffer] {
        &self.copies
    }

    /// Copies `model`'s tensors into this copy, after the work already submitted.
    pub fn take(&self, ctx: &GpuContext, model: &Model) {
        self.copy(ctx, model, true);
    }

    /// Puts this copy back into `model`'s tensors and waits until it is there.
    pub fn restore(&self, ctx: &GpuContext, model: &Model) -> Result<(), GpuError> {
        self.copy(ctx, model, false);
        ctx.wait()
    }

    fn copy(&self, ctx: &GpuContext, model: &Model, from_model: bool) {
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        for (param, copy) in model.params.iter().zip(&self.copies) {
            let (from, to) = if from_model {
                (&param.value, copy)
            } else {
                (copy, &param.value)
            };
            encoder.copy_buffer_to_buffer(
                from.raw(),
                from.offset_bytes(),
                to.raw(),
                to.offset_bytes(),
                Some(4 * from.len() as u64),
            );
        }
        ctx.queue.submit([encoder.finish()]);
    }
}
