//! The optimizer of a training run, with torch.optim's parameter groups: the model's flat
//! trainable storage is cut into contiguous ranges, each updated by the group of its weight
//! decay; a group's lr and step number change per step without new bind groups. Without an L2
//! penalty there is one range and one group: one update dispatch, as ever.
//!
//! An L2 penalty is Keras's `kernel_regularizer=l2(λ)`: it adds λ·Σw² over the chosen tensors
//! to the loss, so 2λ·w to their gradient before the optimizer sees it, which is exactly
//! torch.optim's coupled `weight_decay` 2λ (SGD and Adam add wd·p to the gradient first) on
//! those tensors only; under AdamW it sits beside the decoupled decay, as the penalty's
//! autograd gradient would. As PyTorch's weight decay, it is left out of the reported loss
//! (Keras adds it to the loss it prints).

use std::ops::Range;
use std::str::FromStr;

use serde::Serialize;

use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::graph::{layer_as, Model};
use crate::kernels::optim::{
    adam, sgd, AdamBuffers, AdamConfig, AdamGroup, SgdBuffers, SgdConfig, SgdGroup,
};
use crate::nn::models::ModelKind;
use crate::nn::{Conv2d, Linear};

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

    /// The group of tensors under an L2 penalty of `l2` (0 for none).
    fn group(&self, ctx: &GpuContext, l2: f64) -> Result<Group, String> {
        // torch.optim raises the same for a negative or NaN learning rate.
        if self.lr.is_nan() || self.lr < 0.0 {
            return Err(format!("invalid learning rate: {}", self.lr));
        }
        let coupled_decay = self.weight_decay + 2.0 * l2;
        match self.kind {
            OptimizerKind::Sgd => {
                let config = SgdConfig {
                    momentum: self.momentum,
                    weight_decay: coupled_decay,
                    nesterov: self.nesterov,
                    ..SgdConfig::default()
                };
                config.validate()?;
                Ok(Group::Sgd(SgdGroup::new(ctx, config)))
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => {
                // torch.optim.Adam takes neither; silently ignoring them would train another
                // recipe than the one asked for.
                if self.nesterov || self.momentum != 0.0 {
                    return Err(format!(
                        "momentum and nesterov are SGD's settings, and the optimizer is {}: drop \
                         them, or train with --optimizer sgd",
                        format!("{:?}", self.kind).to_lowercase()
                    ));
                }
                let config = AdamConfig {
                    weight_decay: self.weight_decay,
                    decoupled: self.kind == OptimizerKind::Adamw,
                    l2,
                    ..AdamConfig::default()
                };
                config.validate()?;
                Ok(Group::Adam(AdamGroup::new(ctx, config)))
            }
        }
    }
}

/// Which trainable tensors an L2 penalty covers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorSelector {
    /// The weight (Keras's kernel) of every Linear layer (Keras's Dense).
    Dense,
    /// The weight of every Conv2d layer.
    Conv,
    /// Tensors whose state_dict name matches a pattern, `*` matching any run of characters
    /// (`classifier.*.weight`).
    Named(String),
}

/// `--l2 TENSORS=λ`: Keras's `kernel_regularizer=l2(λ)` on the tensors chosen.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct L2Penalty {
    pub tensors: TensorSelector,
    pub lambda: f64,
}

impl FromStr for L2Penalty {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let refused = || {
            format!(
                "`{text}` is not an L2 penalty: write dense=λ, conv=λ or NAME_PATTERN=λ with \
                 λ ≥ 0, e.g. dense=1e-4"
            )
        };
        let (tensors, lambda) = text.rsplit_once('=').ok_or_else(refused)?;
        let lambda = lambda
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|l| l.is_finite() && *l >= 0.0)
            .ok_or_else(refused)?;
        let tensors = match tensors.trim() {
            "" => return Err(refused()),
            "dense" => TensorSelector::Dense,
            "conv" => TensorSelector::Conv,
            pattern => TensorSelector::Named(pattern.to_string()),
        };
        Ok(L2Penalty { tensors, lambda })
    }
}

impl std::fmt::Display for TensorSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TensorSelector::Dense => f.write_str("dense"),
            TensorSelector::Conv => f.write_str("conv"),
            TensorSelector::Named(pattern) => f.write_str(pattern),
        }
    }
}

/// Whether `name` matches `pattern`, `*` matching any run of characters.
fn glob_matches(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (head.len()..=name.len())
                    .any(|cut| name.is_char_boundary(cut) && glob_matches(tail, &name[cut..]))
        }
    }
}

/// Each trainable tensor's range of the flat storage, in storage order, with the sum of the
/// L2 coefficients of the penalties that choose it. A penalty that chooses nothing is refused.
fn tensor_penalties(
    model: &Model,
    flat_values: &GpuBuffer,
    penalties: &[L2Penalty],
) -> Result<Vec<(Range<usize>, f64)>, String> {
    let mut chosen = vec![false; penalties.len()];
    let mut tensors = Vec::new();
    for node in &model.nodes {
        let layer = node.op.layer();
        let dense = layer.and_then(layer_as::<Linear>).is_some();
        let conv = layer.and_then(layer_as::<Conv2d>).is_some();
        for &index in &node.params {
            let param = model.params.get(index);
            if !param.spec.trainable {
                continue;
            }
            let mut l2 = 0.0;
            for (penalty, chosen) in penalties.iter().zip(&mut chosen) {
                let weight = param.spec.name == "weight";
                let picks = match &penalty.tensors {
                    TensorSelector::Dense => dense && weight,
                    TensorSelector::Conv => conv && weight,
                    TensorSelector::Named(pattern) => glob_matches(pattern, &param.name),
                };
                if picks {
                    l2 += penalty.lambda;
                    *chosen = true;
                }
            }
            let start = ((param.value.offset_bytes() - flat_values.offset_bytes()) / 4) as usize;
            tensors.push((start..start + param.spec.len(), l2));
        }
    }
    if let Some(penalty) = penalties.iter().zip(&chosen).find(|(_, &c)| !c) {
        return Err(format!(
            "--l2 {} chooses no trainable tensor of model `{}`",
            penalty.0.tensors, model.name
        ));
    }
    tensors.sort_by_key(|(range, _)| range.start);
    Ok(tensors)
}

/// The flat storage `[0, len)` cut into the fewest contiguous ranges of one L2 coefficient each,
/// the padding after a tensor going with it (it stays zero under any update).
fn l2_ranges(tensors: &[(Range<usize>, f64)], len: usize) -> Vec<(Range<usize>, f64)> {
    let mut ranges: Vec<(Range<usize>, f64)> = Vec::new();
    for (tensor, l2) in tensors {
        match ranges.last_mut() {
            Some((_, last)) if *last == *l2 => {}
            Some((range, _)) => {
                range.end = tensor.start;
                ranges.push((tensor.start..len, *l2));
            }
            None => ranges.push((0..len, *l2)),
        }
    }
    ranges
}

enum Group {
    Sgd(SgdGroup),
    Adam(AdamGroup),
}

/// A parameter group: its config and per-step scalars, and the L2 coefficient that chose it.
struct ParamGroup {
    group: Group,
    l2: f64,
}

pub struct Optimizer {
    groups: Vec<ParamGroup>,
    updates: Vec<Dispatch>,
    lr: f64,
    /// The lr of each coming step, set by a schedule (see [`Optimizer::set_lr`]).
    scheduled_lrs: std::collections::VecDeque<f64>,
    step: u32,
    /// The per-tensor state over the flat storage, by torch.optim's names: `momentum_buffer`,
    /// or `exp_avg` and `exp_avg_sq`.
    state: Vec<(&'static str, GpuBuffer)>,
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
        Self::with_l2(ctx, model, settings, &[])
    }

    /// As [`Optimizer::new`], with `penalties` on the tensors they choose: one group per L2
    /// coefficient, one dispatch per contiguous range of the flat storage.
    pub fn with_l2(
        ctx: &GpuContext,
        model: &Model,
        settings: &OptimizerSettings,
        penalties: &[L2Penalty],
    ) -> Result<Self, OptimizerError> {
        let mut optimizer = Optimizer {
            groups: Vec::new(),
            updates: Vec::new(),
            lr: settings.lr,
            scheduled_lrs: Default::default(),
            step: 0,
            state: Vec::new(),
        };
        let Some(flat) = model.params.trainable() else {
            // No tensor to update, but the settings are still checked.
            settings.group(ctx, 0.0).map_err(OptimizerError::Settings)?;
            return Ok(optimizer);
        };
        let tensors =
            tensor_penalties(model, &flat.values, penalties).map_err(OptimizerError::Settings)?;
        let momentum = settings.kind == OptimizerKind::Sgd && settings.momentum != 0.0;
        let state = |name: &str| GpuBuffer::zeros(ctx, name, flat.len);
        let momentum_buffers = momentum.then(|| state("momentum buffers"));
        let adam_moments =
            (settings.kind != OptimizerKind::Sgd).then(|| (state("exp_avg"), state("exp_avg_sq")));
        for (range, l2) in l2_ranges(&tensors, flat.len) {
            let index = match optimizer.groups.iter().position(|g| g.l2 == l2) {
                Some(index) => index,
                None => {
                    let group = settings.group(ctx, l2).map_err(OptimizerError::Settings)?;
                    optimizer.groups.push(ParamGroup { group, l2 });
                    optimizer.groups.len() - 1
                }
            };
            let view = |buffer: &GpuBuffer| buffer.view(range.start, range.len());
            let (param, grad) = (view(&flat.values), view(&flat.grads));
            optimizer
                .updates
                .extend(match &optimizer.groups[index].group {
                    Group::Sgd(group) => {
                        let momentum_buffer = momentum_buffers.as_ref().map(view);
                        sgd(
                            ctx,
                            group,
                            SgdBuffers {
                                param: &param,
                                grad: &grad,
                                momentum_buffer: momentum_buffer.as_ref(),
                            },
                        )?
                    }
                    Group::Adam(group) => {
                        let (exp_avg, exp_avg_sq) = adam_moments.as_ref().expect("Adam's moments");
                        adam(
                            ctx,
                            group,
                            AdamBuffers {
                                param: &param,
                                grad: &grad,
                                exp_avg: &view(exp_avg),
                                exp_avg_sq: &view(exp_avg_sq),
                            },
                        )?
                    }
                });
        }
        optimizer.state = momentum_buffers
            .map(|buffer| vec![("momentum_buffer", buffer)])
            .or_else(|| adam_moments.map(|(m, v)| vec![("exp_avg", m), ("exp_avg_sq", v)]))
            .unwrap_or_default();
        Ok(optimizer)
    }

    /// The per-tensor state by name, over the model's flat trainable storage (for a resumable
    /// checkpoint).
    pub fn state(&self) -> &[(&'static str, GpuBuffer)] {
        &self.state
    }

    /// Continues a run from a checkpoint: `steps` updates already applied, and the state
    /// tensors [`Optimizer::state`] names, as `state_of` gives them by name.
    pub fn restore(
        &mut self,
        ctx: &GpuContext,
        steps: u32,
        mut state_of: impl FnMut(&str, usize) -> Result<Vec<f32>, String>,
    ) -> Result<(), String> {
        for (name, buffer) in &self.state {
            buffer.write(ctx, &state_of(name, buffer.len())?);
        }
        self.step = steps;
        Ok(())
    }

    /// Drops the first `steps` of the lrs [`Optimizer::set_lr`] set, as a run resumed part-way
    /// through an epoch has taken them already; the last stays to hold for later steps.
    pub fn skip_scheduled(&mut self, steps: usize) {
        let skip = steps.min(self.scheduled_lrs.len().saturating_sub(1));
        self.scheduled_lrs.drain(..skip);
    }

    /// Updates applied so far (PyTorch's `num_batches_tracked` for the model's batch norms).
    pub fn steps(&self) -> u64 {
        self.step as u64
    }

    /// Sets the lr of the coming steps, one value per step; the last holds for the steps after
    /// them (a single value sets the lr until the next call).
    pub fn set_lr(&mut self, per_step: impl IntoIterator<Item = f64>) {
        self.scheduled_lrs = per_step.into_iter().collect();
    }

    /// Advances the step number the next recorded update uses.
    pub fn prepare_step(&mut self, ctx: &GpuContext) {
        self.step += 1;
        self.lr = self.scheduled_lrs.pop_front().unwrap_or(self.lr);
        for group in &self.groups {
            match &group.group {
                Group::Sgd(group) => group.set_step(ctx, self.step, self.lr),
                Group::Adam(group) => group.set_step(ctx, self.step, self.lr),
            }
        }
    }

    /// The update dispatches: one per contiguous range of one group (one for all trainable
    /// tensors without an L2 penalty; one per binding-sized chunk of larger storage), none
    /// without any tensor (for profiling).
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.updates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalties_parse_or_say_why_not() {
        let parsed: L2Penalty = "dense=1e-4".parse().unwrap();
        assert_eq!(parsed.tensors, TensorSelector::Dense);
        assert_eq!(parsed.lambda, 1e-4);
        let named: L2Penalty = "classifier.*.weight=0.01".parse().unwrap();
        assert_eq!(
            named.tensors,
            TensorSelector::Named("classifier.*.weight".into())
        );
        for bad in ["dense", "dense=-1", "dense=nan", "=0.1", "conv=x"] {
            assert!(bad.parse::<L2Penalty>().is_err(), "{bad}");
        }
    }

    #[test]
    fn globs_match_state_dict_names() {
        assert!(glob_matches("fc1.weight", "fc1.weight"));
        assert!(!glob_matches("fc1.weight", "fc1.weight2"));
        assert!(glob_matches("fc*.weight", "fc12.weight"));
        assert!(glob_matches("*.weight", "network.0.weight"));
        assert!(!glob_matches("*.weight", "network.0.bias"));
        assert!(glob_matches("*.*.bias", "layer0.0.conv1.0.bias"));
        assert!(glob_matches("*", ""));
    }

    /// Tensors at aligned offsets with padding between: runs of one coefficient merge, each
    /// range runs to the next one's first tensor, the last to the end of the storage.
    #[test]
    fn ranges_cover_the_storage_in_runs_of_one_coefficient() {
        let tensors = [(0..10, 0.1), (16..20, 0.0), (32..40, 0.0), (48..50, 0.1)];
        assert_eq!(
            l2_ranges(&tensors, 64),
            vec![(0..16, 0.1), (16..48, 0.0), (48..64, 0.1)]
        );
        assert_eq!(l2_ranges(&tensors[1..3], 48), vec![(0..48, 0.0)]);
    }
}
