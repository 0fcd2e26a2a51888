//! Resumable runs: where a run stands (weights, optimizer state, epoch and step, the schedule's
//! and early stopping's counters, the epoch's loss sums so far, the history) written as one
//! checkpoint at the end of each epoch and every `--checkpoint-every` steps or minutes, and read
//! back to
//! continue the run exactly: fer is deterministic, and every random stream (shuffle, dropout,
//! augmentation) derives from the seed, the epoch and the global step, so a resumed run ends
//! with the same weights, bit for bit, as one never stopped.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gpu::GpuContext;
use crate::graph::Model;
use crate::report::History;

use super::checkpoint::{self, Resumable};
use super::early_stopping::WeightCopy;
use super::optimizer::Optimizer;
use super::runner::EpochStart;
use super::session::{TrainError, TrainingState};

/// Where a run keeps its resumable checkpoint, how often it writes it, whether it continues
/// from it, and the flag a Ctrl-C raises.
#[derive(Clone, Debug)]
pub struct Checkpointing {
    /// The run's `resume.safetensors`, written at the end of every epoch.
    pub path: PathBuf,
    /// Also write it this often within an epoch.
    pub every: Option<Interval>,
    /// Continue the run the checkpoint holds rather than start afresh.
    pub resume: bool,
    /// Raised by an interrupt: finish the step, write the checkpoint, stop.
    pub interrupt: Arc<AtomicBool>,
}

impl Checkpointing {
    pub fn interrupted(&self) -> bool {
        self.interrupt.load(Ordering::SeqCst)
    }

    /// Whether a checkpoint is due after training step `steps`, `since` the last one written.
    pub fn due(&self, steps: u64, since: Duration) -> bool {
        match self.every {
            Some(Interval::Steps(every)) => steps % every == 0,
            Some(Interval::Time(every)) => since >= every,
            None => false,
        }
    }
}

/// How often `--checkpoint-every` writes the resumable checkpoint: a count of training steps
/// (`500`), or wall time (`90s`, `10m`, `2h`), which suits a run whose step time is unknown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Interval {
    Steps(u64),
    Time(Duration),
}

impl FromStr for Interval {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let refused = || "must be steps (500) or a time (90s, 10m, 2h), above zero".to_string();
        let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
            Some(at) => text.split_at(at),
            None => {
                let steps = text.parse::<u64>().map_err(|_| refused())?;
                return (steps > 0)
                    .then_some(Interval::Steps(steps))
                    .ok_or_else(refused);
            }
        };
        let seconds = match unit {
            "s" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(refused()),
        };
        match number.parse::<f64>() {
            // try_: a time too long for a Duration (1e300h) is refused, not a panic.
            Ok(n) if n > 0.0 => Duration::try_from_secs_f64(n * seconds)
                .map(Interval::Time)
                .map_err(|_| refused()),
            _ => Err(refused()),
        }
    }
}

/// Where a run stands, as a resumable checkpoint's metadata holds it (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResumePoint {
    /// What a run must match to continue this one: its settings and data sizes.
    pub run: Value,
    pub state: TrainingState,
    /// Batches of the coming epoch's shuffle already trained on (0 between epochs).
    pub batches_done: usize,
    /// Steps taken by the optimizers before an optimizer switch.
    pub steps_before_switch: u64,
    /// Updates the current optimizer has applied.
    pub optimizer_steps: u64,
    pub history: History,
    /// Early stopping ended the run.
    pub stopped: bool,
}

/// The optimizer's state tensors under their torch.optim names.
fn optimizer_tensor(name: &str) -> String {
    format!("optimizer.{name}")
}

const LOSS_SUMS: &str = "loss_sums";

fn best_tensor(param: &str) -> String {
    format!("best.{param}")
}

/// Writes the run as `point` says it stands, with the model, the optimizer's state, the
/// epoch's loss sums so far and the best epoch's weights (when the run restores them).
pub fn save(
    ctx: &GpuContext,
    model: &Model,
    checkpointing: &Checkpointing,
    point: &ResumePoint,
    optimizer: &Optimizer,
    loss_sums: &[f32],
    best: Option<&WeightCopy>,
) -> Result<(), TrainError> {
    let mut extra = vec![(LOSS_SUMS.to_string(), loss_sums.to_vec())];
    for (name, buffer) in optimizer.state() {
        extra.push((optimizer_tensor(name), buffer.read(ctx)?));
    }
    if let Some(best) = best {
        for (param, copy) in model.params.iter().zip(best.tensors()) {
            extra.push((best_tensor(&param.name), copy.read(ctx)?));
        }
    }
    let state = serde_json::to_string(point).expect("a run's state serialises");
    if let Some(folder) = checkpointing.path.parent() {
        std::fs::create_dir_all(folder).map_err(|reason| checkpoint::CheckpointError::Write {
            path: checkpointing.path.clone(),
            reason,
        })?;
    }
    checkpoint::save_resumable(
        ctx,
        model,
        point.state.step,
        state,
        &extra,
        &checkpointing.path,
    )?;
    Ok(())
}

/// A run read back: where it stood and its tensors besides the model's.
pub struct Resumed {
    pub point: ResumePoint,
    file: Resumable,
}

/// Loads the checkpoint `checkpointing` names into `model`, refusing it in one sentence when
/// it is of another run than `run` (the settings and data sizes; `--epochs` may grow) or has
/// nothing left to train in `epochs` epochs.
pub fn load(
    ctx: &GpuContext,
    model: &Model,
    checkpointing: &Checkpointing,
    run: &Value,
    epochs: usize,
) -> Result<Resumed, TrainError> {
    let path = &checkpointing.path;
    let refused =
        |why: String| TrainError::Resume(format!("cannot resume {}: {why}", path.display()));
    let file = checkpoint::load_resumable(ctx, model, path)?;
    let point: ResumePoint = serde_json::from_str(&file.state)
        .map_err(|error| refused(format!("its `fer_resume` entry is not valid: {error}")))?;
    if let Some(difference) = first_difference("", &point.run, run) {
        return Err(refused(format!(
            "its run had {difference}: resume with the options it was started with (only \
             --epochs may change)"
        )));
    }
    if point.stopped {
        return Err(refused("early stopping ended that run".to_string()));
    }
    if point.state.epoch >= epochs {
        return Err(refused(format!(
            "that run finished epoch {} of {epochs}: ask for more with --epochs",
            point.state.epoch
        )));
    }
    Ok(Resumed { point, file })
}

impl Resumed {
    /// Puts the optimizer's state back (the optimizer the resumed epoch trains with).
    pub fn restore_optimizer(
        &self,
        ctx: &GpuContext,
        optimizer: &mut Optimizer,
    ) -> Result<(), TrainError> {
        let steps = u32::try_from(self.point.optimizer_steps).unwrap_or(u32::MAX);
        optimizer
            .restore(ctx, steps, |name, len| {
                self.file.tensor(&optimizer_tensor(name), len)
            })
            .map_err(|why| self.refused(why))
    }

    /// Puts the best epoch's weights back into `best`.
    pub fn restore_best(
        &self,
        ctx: &GpuContext,
        model: &Model,
        best: &WeightCopy,
    ) -> Result<(), TrainError> {
        for (param, copy) in model.params.iter().zip(best.tensors()) {
            let values = self
                .file
                .tensor(&best_tensor(&param.name), copy.len())
                .map_err(|why| self.refused(why))?;
            copy.write(ctx, &values);
        }
        Ok(())
    }

    /// Where the coming epoch starts: part-way through, or from its first batch.
    pub fn epoch_start(&self) -> Result<Option<EpochStart>, TrainError> {
        if self.point.batches_done == 0 {
            return Ok(None);
        }
        let sums = self
            .file
            .tensor(LOSS_SUMS, 4)
            .map_err(|why| self.refused(why))?;
        Ok(Some(EpochStart {
            batches_done: self.point.batches_done,
            stats: std::array::from_fn(|i| sums[i]),
        }))
    }

    fn refused(&self, why: String) -> TrainError {
        TrainError::Resume(format!("cannot resume from this checkpoint: {why}"))
    }
}

/// Values that may change between a run and its resumption: the run's length, and how often
/// the loss is read back (which changes nothing computed).
const MAY_CHANGE: [&str; 2] = ["settings.epochs", "settings.epoch.readback_every"];

/// The first value at which `saved` and `now` differ, as `NAME X (now Y)`; none when the two
/// agree everywhere but at [`MAY_CHANGE`].
fn first_difference(at: &str, saved: &Value, now: &Value) -> Option<String> {
    if MAY_CHANGE.contains(&at) {
        return None;
    }
    let child = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match (saved, now) {
        (Value::Object(saved), Value::Object(now)) => {
            let keys = saved
                .keys()
                .chain(now.keys().filter(|k| !saved.contains_key(*k)));
            keys.into_iter().find_map(|key| {
                let null = Value::Null;
                let (a, b) = (
                    saved.get(key).unwrap_or(&null),
                    now.get(key).unwrap_or(&null),
                );
                first_difference(&child(key), a, b)
            })
        }
        _ if saved == now => None,
        _ => {
            let name = at.strip_prefix("settings.").unwrap_or(at);
            Some(format!("{name} {saved} (now {now})"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_interval_is_steps_or_a_time_above_zero() {
        let parse = |text: &str| text.parse::<Interval>();
        assert_eq!(parse("500"), Ok(Interval::Steps(500)));
        assert_eq!(parse("90s"), Ok(Interval::Time(Duration::from_secs(90))));
        assert_eq!(parse("1.5m"), Ok(Interval::Time(Duration::from_secs(90))));
        assert_eq!(parse("10min"), Ok(Interval::Time(Duration::from_secs(600))));
        assert_eq!(parse("2h"), Ok(Interval::Time(Duration::from_secs(7200))));
        for bad in [
            "0", "-5", "0m", "NaNs", "infm", "1e300h", "10d", "m", "", "5 m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_checkpoint_is_due_after_its_steps_or_its_time() {
        let every = |interval| Checkpointing {
            path: PathBuf::from("resume.safetensors"),
            every: Some(interval),
            resume: false,
            interrupt: Arc::default(),
        };
        let steps = every(Interval::Steps(5));
        let second = Duration::from_secs(1);
        assert!(steps.due(10, Duration::ZERO) && !steps.due(11, second * 100));
        let time = every(Interval::Time(second));
        assert!(time.due(7, second) && !time.due(10, second / 2));
        let never = Checkpointing {
            every: None,
            ..time
        };
        assert!(!never.due(10, second * 100));
    }

    #[test]
    fn the_first_difference_is_named_and_the_epochs_may_grow() {
        let saved =
            json!({"settings": {"epochs": 3, "optimizer": {"lr": 0.01}}, "train_images": 8});
        let longer =
            json!({"settings": {"epochs": 9, "optimizer": {"lr": 0.01}}, "train_images": 8});
        assert_eq!(first_difference("", &saved, &longer), None);
        let faster =
            json!({"settings": {"epochs": 3, "optimizer": {"lr": 0.1}}, "train_images": 8});
        assert_eq!(
            first_difference("", &saved, &faster).as_deref(),
            Some("optimizer.lr 0.01 (now 0.1)")
        );
        let more = json!({"settings": {"epochs": 3, "optimizer": {"lr": 0.01}}, "train_images": 9});
        assert_eq!(
            first_difference("", &saved, &more).as_deref(),
            Some("train_images 8 (now 9)")
        );
    }
}
