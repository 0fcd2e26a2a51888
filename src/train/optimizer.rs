//! The optimizer of a training run: one update dispatch per trainable tensor, sharing a group
//! whose lr and step number change per step without new bind groups.

use serde::Serialize;

use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::graph::Model;
use crate::kernels::optim::{
    adam, sgd, AdamBuffers, AdamConfig, AdamGroup, SgdBuffers, SgdConfig, SgdGroup,
};
use crate::nn::models::ModelKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    Adamw,
}

/// What `torch.optim` would be constructed with.
#[derive(Clone, Debug, Serialize)]
pub struct OptimizerSettings {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
}

impl OptimizerSettings {
    /// The study's recipe for `model`: SGD at lr 0.01 for softmax, Adam at 1e-4 for the
    /// six-architecture study's basic CNN, Adam at 0.001 otherwise; no momentum or weight
    /// decay.
    pub fn study(model: ModelKind) -> Self {
        match model {
            ModelKind::Softmax => Self::plain(OptimizerKind::Sgd, 0.01),
            ModelKind::BasicCnn => Self::plain(OptimizerKind::Adam, 1e-4),
            _ => Self::plain(OptimizerKind::Adam, 1e-3),
        }
    }

    /// `kind` at `lr`, no momentum or weight decay.
    pub fn plain(kind: OptimizerKind, lr: f64) -> Self {
        OptimizerSettings {
            kind,
            lr,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    fn group(&self, ctx: &GpuContext) -> Result<Group, String> {
        // torch.optim raises the same for a negative or NaN learning rate.
        if self.lr.is_nan() || self.lr < 0.0 {
            return Err(format!("invalid learning rate: {}", self.lr));
        }
        match self.kind {
            OptimizerKind::Sgd => {
                let config = SgdConfig {
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                    nesterov: self.nesterov,
                    ..SgdConfig::default()
                };
                config.validate()?;
                Ok(Group::Sgd(SgdGroup::new(ctx, config)))
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                let config = AdamConfig {
                    weight_decay: self.weight_decay,
                    decoupled: self.kind == OptimizerKind::Adamw,
                    ..AdamConfig::default()
                };
                config.validate()?;
                Ok(Group::Adam(AdamGroup::new(ctx, config)))
            }
        }
    }
}

enum Group {
    Sgd(SgdGroup),
    Adam(AdamGroup),
}

pub struct Optimizer {
    group: Group,
    updates: Vec<Dispatch>,
    lr: f64,
    step: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum OptimizerError {
    #[error("invalid optimizer settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

impl Optimizer {
    /// Builds the update of every trainable tensor of `model`, with zeroed state: one
    /// dispatch over the model's flat parameter storage (see [`crate::graph::ParameterStore`]).
    pub fn new(
        ctx: &GpuContext,
        model: &Model,
        settings: &OptimizerSettings,
    ) -> Result<Self, OptimizerError> {
        let group = settings.group(ctx).map_err(OptimizerError::Settings)?;
        let mut updates = Vec::new();
        if let Some(flat) = model.params.trainable() {
            let state = |name: &str| GpuBuffer::zeros(ctx, name, flat.len);
            updates.extend(match &group {
                Group::Sgd(group) => {
                    let momentum =
                        (group.config().momentum != 0.0).then(|| state("momentum buffers"));
                    sgd(
                        ctx,
                        group,
                        SgdBuffers {
                            param: &flat.values,
                            grad: &flat.grads,
                            momentum_buffer: momentum.as_ref(),
                        },
                    )?
                }
                Group::Adam(group) => adam(
                    ctx,
                    group,
                    AdamBuffers {
                        param: &flat.values,
                        grad: &flat.grads,
                        exp_avg: &state("exp_avg"),
                        exp_avg_sq: &state("exp_avg_sq"),
                    },
                )?,
            });
        }
        Ok(Optimizer {
            group,
            updates,
            lr: settings.lr,
            step: 0,
        })
    }

    /// Updates applied so far (PyTorch's `num_batches_tracked` for the model's batch norms).
    pub fn steps(&self) -> u64 {
        self.step as u64
    }

    /// Advances the step number the next recorded update uses.
    pub fn prepare_step(&mut self, ctx: &GpuContext) {
        self.step += 1;
        match &self.group {
            Group::Sgd(group) => group.set_step(ctx, self.step, self.lr),
            Group::Adam(group) => group.set_step(ctx, self.step, self.lr),
        }
    }

    /// The update dispatches: one for all trainable tensors (one per binding-sized chunk of
    /// larger storage), none without any (for profiling).
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.updates
    }
}
