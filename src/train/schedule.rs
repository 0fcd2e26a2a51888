//! Learning-rate schedules with the names and semantics of `torch.optim.lr_scheduler`, and
//! the switch from one optimizer to SGD at an epoch.
//!
//! Step, multistep, exponential and plateau change the lr between epochs, as PyTorch's are
//! stepped once per epoch. One-cycle changes it every training step (PyTorch's OneCycleLR is
//! stepped per batch). Cosine with warmup is per step too: fer's runs last tens of epochs, in
//! which a per-epoch cosine moves the lr in a few coarse stairs and a one-epoch warmup would
//! hold a third of the lr for a whole epoch; per step the warmup ramps within its epochs and the
//! lr follows the curve the formula draws. Lengths are still given in epochs.

use serde::{Deserialize, Serialize};

use crate::report::EpochRecord;

use super::early_stopping::{Mode, Monitor};
use super::optimizer::{OptimizerKind, OptimizerSettings};
use super::option_text::OptionText;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Schedule {
    /// StepLR: lr · gamma^⌊epoch / step_size⌋.
    Step {
        step_size: usize,
        gamma: f64,
    },
    /// MultiStepLR: lr · gamma^(milestones reached), epochs counted from 0.
    Multistep {
        milestones: Vec<usize>,
        gamma: f64,
    },
    /// ExponentialLR: lr · gamma^epoch.
    Exponential {
        gamma: f64,
    },
    /// SequentialLR of LinearLR from start_factor · lr over `warmup` epochs, then
    /// CosineAnnealingLR down to `eta_min` over the remaining epochs; per step.
    Cosine {
        warmup: usize,
        start_factor: f64,
        eta_min: f64,
    },
    Onecycle(OneCycle),
    Plateau(Plateau),
}

/// OneCycleLR over the whole run, per step, with its defaults; the momentum is not cycled
/// (as `cycle_momentum=False`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OneCycle {
    pub max_lr: f64,
    pub pct_start: f64,
    pub div_factor: f64,
    pub final_div_factor: f64,
    pub three_phase: bool,
    pub anneal: Anneal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    Cos,
    Linear,
}

/// ReduceLROnPlateau on a validation value, stepped after each epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plateau {
    pub monitor: Monitor,
    pub mode: Mode,
    pub factor: f64,
    pub patience: usize,
    pub threshold: f64,
    pub threshold_mode: ThresholdMode,
    pub cooldown: usize,
    pub min_lr: f64,
    pub eps: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdMode {
    Rel,
    Abs,
}

/// How long a run is, in the units the schedules count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunLength {
    pub epochs: usize,
    pub steps_per_epoch: usize,
}

impl RunLength {
    fn steps(self) -> usize {
        self.epochs * self.steps_per_epoch
    }
}

/// A schedule's counters, carried by a checkpoint of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The lr the schedule scales: the optimizer's, then the switched-to SGD's.
    pub base_lr: f64,
    /// The lr of the latest step scheduled: between epochs, the coming epoch's last.
    pub lr: f64,
    /// Plateau's best value so far (none before the first epoch).
    pub best: Option<f64>,
    /// Plateau's epochs without improvement.
    pub num_bad_epochs: usize,
    /// Plateau's epochs of cooldown left.
    pub cooldown_counter: usize,
}

impl ScheduleState {
    pub fn new(base_lr: f64) -> Self {
        ScheduleState {
            base_lr,
            lr: base_lr,
            best: None,
            num_bad_epochs: 0,
            cooldown_counter: 0,
        }
    }

    /// The optimizer is replaced by one at `lr`: the schedule scales that from now on, and
    /// plateau's counters carry on, as a Keras callback's do across a recompile.
    pub fn rebase(&mut self, lr: f64) {
        self.base_lr = lr;
        self.lr = lr;
    }
}

impl Schedule {
    /// `NAME[:key=value,...]`: step, multistep, exponential, cosine, onecycle or plateau.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = OptionText::parse(text)?;
        let positive = |x: f64| x > 0.0;
        let non_negative = |x: f64| x >= 0.0;
        let below_one = |x: f64| x > 0.0 && x < 1.0;
        let (above_0, at_least_0) = ("a number above 0", "a number of at least 0");
        let schedule = match keys.name {
            "step" => Schedule::Step {
                step_size: keys.count("step_size", 10, 1)?,
                gamma: keys.number("gamma", 0.1, positive, above_0)?,
            },
            "multistep" => {
                let milestones = keys.counts("milestones", 1)?;
                if milestones.is_empty() || milestones.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("`milestones` must be increasing epochs, e.g. 30,60,90".into());
                }
                Schedule::Multistep {
                    milestones,
                    gamma: keys.number("gamma", 0.1, positive, above_0)?,
                }
            }
            "exponential" => Schedule::Exponential {
                gamma: keys.number("gamma", 0.95, positive, above_0)?,
            },
            "cosine" => Schedule::Cosine {
                warmup: keys.count("warmup", 0, 0)?,
                start_factor: keys.number(
                    "start_factor",
                    1.0 / 3.0,
                    |x| x > 0.0 && x <= 1.0,
                    "a number above 0 and at most 1",
                )?,
                eta_min: keys.number("eta_min", 0.0, non_negative, at_least_0)?,
            },
            "onecycle" => Schedule::Onecycle(OneCycle {
                max_lr: keys
                    .optional_number("max_lr", positive, above_0)?
                    .ok_or("onecycle needs `max_lr`, e.g. onecycle:max_lr=0.01")?,
                pct_start: keys.number("pct_start", 0.3, below_one, "between 0 and 1")?,
                div_factor: keys.number("div_factor", 25.0, positive, above_0)?,
                final_div_factor: keys.number("final_div_factor", 1e4, positive, above_0)?,
                three_phase: keys.flag("three_phase", false)?,
                anneal: keys.choice(
                    "anneal",
                    Anneal::Cos,
                    &[("cos", Anneal::Cos), ("linear", Anneal::Linear)],
                )?,
            }),
            "plateau" => {
                let monitor = keys.choice("monitor", Monitor::ValLoss, &Monitor::CHOICES)?;
                Schedule::Plateau(Plateau {
                    monitor,
                    mode: keys.choice(
                        "mode",
                        monitor.mode(),
                        &[("min", Mode::Min), ("max", Mode::Max)],
                    )?,
                    factor: keys.number("factor", 0.1, below_one, "between 0 and 1")?,
                    patience: keys.count("patience", 10, 0)?,
                    threshold: keys.number("threshold", 1e-4, non_negative, at_least_0)?,
                    threshold_mode: keys.choice(
                        "threshold_mode",
                        ThresholdMode::Rel,
                        &[("rel", ThresholdMode::Rel), ("abs", ThresholdMode::Abs)],
                    )?,
                    cooldown: keys.count("cooldown", 0, 0)?,
                    min_lr: keys.number("min_lr", 0.0, non_negative, at_least_0)?,
                    eps: keys.number("eps", 1e-8, non_negative, at_least_0)?,
                })
            }
            other => {
                return Err(format!(
                    "unknown schedule `{other}`: use step, multistep, exponential, cosine, \
                     onecycle or plateau"
                ))
            }
        };
        keys.finish(&format!("the {} schedule", schedule.name()))?;
        Ok(schedule)
    }

    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Step { .. } => "step",
            Schedule::Multistep { .. } => "multistep",
            Schedule::Exponential { .. } => "exponential",
            Schedule::Cosine { .. } => "cosine",
            Schedule::Onecycle(_) => "onecycle",
            Schedule::Plateau(_) => "plateau",
        }
    }

    /// Whether the lr changes every step rather than between epochs.
    pub fn per_step(&self) -> bool {
        matches!(self, Schedule::Cosine { .. } | Schedule::Onecycle(_))
    }

    /// Refuses a schedule that does not fit a run of `epochs` epochs.
    pub fn check(&self, epochs: usize) -> Result<(), String> {
        match self {
            Schedule::Cosine { warmup, .. } if *warmup >= epochs => Err(format!(
                "the cosine schedule's warmup of {warmup} epochs leaves none of the {epochs} \
                 epochs to anneal"
            )),
            _ => Ok(()),
        }
    }

    /// The lr of every step of `epoch` (from 0), setting `state.lr` to the last; one value for
    /// a schedule that holds the lr through the epoch.
    pub fn epoch_lrs(&self, state: &mut ScheduleState, epoch: usize, run: RunLength) -> Vec<f64> {
        let base = state.base_lr;
        let lrs = match self {
            Schedule::Step { step_size, gamma } => {
                vec![base * gamma.powi((epoch / step_size) as i32)]
            }
            Schedule::Multistep { milestones, gamma } => {
                let reached = milestones.iter().filter(|&&m| m <= epoch).count();
                vec![base * gamma.powi(reached as i32)]
            }
            Schedule::Exponential { gamma } => vec![base * gamma.powi(epoch as i32)],
            Schedule::Plateau(_) => vec![state.lr],
            Schedule::Cosine { .. } | Schedule::Onecycle(_) => {
                let first = epoch * run.steps_per_epoch;
                (first..first + run.steps_per_epoch)
                    .map(|step| self.step_lr(base, step, run))
                    .collect()
            }
        };
        if let Some(&last) = lrs.last() {
            state.lr = last;
        }
        lrs
    }

    /// The lr of training step `step` (from 0) of a per-step schedule.
    fn step_lr(&self, base: f64, step: usize, run: RunLength) -> f64 {
        let step = step as f64;
        match self {
            Schedule::Cosine {
                warmup,
                start_factor,
                eta_min,
            } => {
                let warmup = (warmup * run.steps_per_epoch) as f64;
                if step < warmup {
                    base * (start_factor + (1.0 - start_factor) * step / warmup)
                } else {
                    let t_max = run.steps() as f64 - warmup;
                    let cos = (std::f64::consts::PI * (step - warmup) / t_max).cos();
                    eta_min + (base - eta_min) * (1.0 + cos) / 2.0
                }
            }
            Schedule::Onecycle(cycle) => cycle.lr(step, run.steps() as f64),
            _ => base,
        }
    }

    /// ReduceLROnPlateau's `step` on the epoch's monitored value; other schedules keep nothing.
    pub fn end_epoch(&self, state: &mut ScheduleState, record: &EpochRecord) {
        if let Schedule::Plateau(plateau) = self {
            plateau.step(state, plateau.monitor.value(record));
        }
    }
}

impl OneCycle {
    /// OneCycleLR's `get_lr` at `step` of `total` (both counted as PyTorch does, in f64).
    fn lr(&self, step: f64, total: f64) -> f64 {
        let initial = self.max_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let rise = self.pct_start * total - 1.0;
        // (end step, start lr, end lr) of each phase.
        let phases: &[(f64, f64, f64)] = if self.three_phase {
            &[
                (rise, initial, self.max_lr),
                (2.0 * self.pct_start * total - 2.0, self.max_lr, initial),
                (total - 1.0, initial, min),
            ]
        } else {
            &[
                (rise, initial, self.max_lr),
                (total - 1.0, self.max_lr, min),
            ]
        };
        let mut start_step = 0.0;
        for (i, &(end_step, start, end)) in phases.iter().enumerate() {
            if step <= end_step || i + 1 == phases.len() {
                let pct = (step - start_step) / (end_step - start_step);
                return match self.anneal {
                    Anneal::Cos => {
                        end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
                    }
                    Anneal::Linear => (end - start) * pct + start,
                };
            }
            start_step = end_step;
        }
        min
    }
}

impl Plateau {
    /// PyTorch's `is_better`; anything beats no best.
    fn is_better(&self, value: f64, best: Option<f64>) -> bool {
        let Some(best) = best else {
            return !value.is_nan();
        };
        match (self.mode, self.threshold_mode) {
            (Mode::Min, ThresholdMode::Rel) => value < best * (1.0 - self.threshold),
            (Mode::Min, ThresholdMode::Abs) => value < best - self.threshold,
            (Mode::Max, ThresholdMode::Rel) => value > best * (self.threshold + 1.0),
            (Mode::Max, ThresholdMode::Abs) => value > best + self.threshold,
        }
    }

    /// ReduceLROnPlateau's `step(metrics)`.
    fn step(&self, state: &mut ScheduleState, value: f64) {
        if self.is_better(value, state.best) {
            state.best = Some(value);
            state.num_bad_epochs = 0;
        } else {
            state.num_bad_epochs += 1;
        }
        if state.cooldown_counter > 0 {
            state.cooldown_counter -= 1;
            state.num_bad_epochs = 0;
        }
        if state.num_bad_epochs > self.patience {
            let reduced = (state.lr * self.factor).max(self.min_lr);
            if state.lr - reduced > self.eps {
                state.lr = reduced;
            }
            state.cooldown_counter = self.cooldown;
            state.num_bad_epochs = 0;
        }
    }
}

/// `--switch-to-sgd EPOCH[:lr=..,momentum=..,nesterov,weight_decay=..]`: from `epoch` on, train
/// with a new SGD optimizer (fresh state, as a Keras user recompiling would). The defaults
/// are Keras's SGD (lr 0.01, no momentum); weight decay defaults to the run's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizerSwitch {
    /// The first epoch (from 1) trained with SGD.
    pub epoch: usize,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: Option<f64>,
}

impl OptimizerSwitch {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = OptionText::parse(text)?;
        let epoch: usize = keys.name_as("an epoch number")?;
        if epoch < 2 {
            return Err(format!(
                "switching at epoch {epoch} leaves no epoch before it: pick 2 or later, or \
                 --optimizer sgd"
            ));
        }
        let switch = OptimizerSwitch {
            epoch,
            lr: keys.number("lr", 0.01, |x| x > 0.0, "a number above 0")?,
            momentum: keys.number(
                "momentum",
                0.0,
                |x| (0.0..1.0).contains(&x),
                "a number from 0 up to (not including) 1",
            )?,
            nesterov: keys.flag("nesterov", false)?,
            weight_decay: keys.optional_number(
                "weight_decay",
                |x| x >= 0.0,
                "a number of at least 0",
            )?,
        };
        keys.finish("the optimizer switch")?;
        // torch.optim.SGD refuses the same.
        if switch.nesterov && switch.momentum == 0.0 {
            return Err("`nesterov` needs a `momentum` above 0".into());
        }
        Ok(switch)
    }

    /// The SGD optimizer switched to, in a run whose optimizer was `before`.
    pub fn settings(&self, before: &OptimizerSettings) -> OptimizerSettings {
        OptimizerSettings {
            kind: OptimizerKind::Sgd,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.weight_decay.unwrap_or(before.weight_decay),
        }
    }
}
