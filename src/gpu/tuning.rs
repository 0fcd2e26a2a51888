//! Per-adapter kernel choices: which variant of a kernel family is fastest for a shape is
//! measured once on this adapter and remembered, in memory and (when autotuning is on) on disk,
//! keyed by adapter, driver, the shaders' sources and shape. Measuring is bounded: a
//! candidate clearly slower than the best so far drops out, and once a model's time budget is
//! spent the shapes left run their usual kernel this run and are measured on a later one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::context::{AdapterSummary, GpuContext};
use super::dispatch::Dispatch;
use super::error::GpuError;
use super::pipeline::Shader;
use super::timing::GpuTimer;

/// Remembered choices, `"<adapter> | <driver> | shaders <fingerprint> | <key>" → variant name`,
/// the fingerprint of the shaders the choice was measured on.
pub(crate) struct Tuning {
    /// Where choices persist; `None` when autotuning is off.
    file: Option<PathBuf>,
    choices: Mutex<BTreeMap<String, String>>,
    /// How long measuring may take per model; `None`: as long as it takes.
    budget: Option<Duration>,
    spending: Mutex<Spending>,
}

/// The current model's tuning time: the budget starts with its first measurement.
#[derive(Default)]
struct Spending {
    deadline: Option<Instant>,
    /// Shapes left to their usual kernel since the budget ran out.
    skipped: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tuning {
    pub(crate) fn new(autotune: bool, file: Option<PathBuf>, budget: Option<Duration>) -> Self {
        let file = autotune.then(|| file.unwrap_or_else(cache_file));
        let choices = file
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Tuning {
            file,
            choices: Mutex::new(choices),
            budget,
            spending: Mutex::default(),
        }
    }

    /// Whether a shape may be measured now; the first measurement starts the budget and says so
    /// on stderr, the first shape past it says that the rest wait for a later run.
    fn may_measure(&self) -> bool {
        let Some(budget) = self.budget else {
            return true;
        };
        let mut spending = lock(&self.spending);
        let deadline = *spending.deadline.get_or_insert_with(|| {
            eprintln!(
                "tuning: timing kernel variants on this adapter for up to {:.0} s \
                 (--tune-budget); the choices are remembered for later runs",
                budget.as_secs_f64()
            );
            Instant::now() + budget
        });
        if Instant::now() < deadline {
            return true;
        }
        spending.skipped += 1;
        if spending.skipped == 1 {
            eprintln!(
                "tuning: the {:.0} s budget is spent; the shapes left run their usual kernels \
                 this run and are timed on a later one",
                budget.as_secs_f64()
            );
        }
        false
    }

    /// Whether the current budget has run out (never when unbounded).
    fn out_of_time(&self) -> bool {
        lock(&self.spending)
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }
}

/// `$XDG_CACHE_HOME/fer/autotune.json`, else `~/.cache/fer/`, else the temp folder.
fn cache_file() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("fer").join("autotune.json")
}

fn full_key(adapter: &AdapterSummary, shaders: &[&Shader], key: &str) -> String {
    format!(
        "{} | {} | shaders {:016x} | {key}",
        adapter.name,
        adapter.driver_info,
        shaders_fingerprint(shaders)
    )
}

/// FNV-1a of the sources (preludes included) of the shaders a choice is measured on: a choice
/// measured among other kernels (a variant added, one made faster) is measured again rather
/// than trusted, and a change to any other shader leaves it be.
fn shaders_fingerprint(shaders: &[&Shader]) -> u64 {
    shaders
        .iter()
        .flat_map(|shader| shader.source.bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
        })
}

impl GpuContext {
    /// Whether kernel variants are timed on this adapter (`--no-autotune` turns it off).
    pub fn autotunes(&self) -> bool {
        self.tuning.file.is_some()
    }

    /// Gives the next model its own tuning budget (`fer demo` trains several on one context).
    pub fn restart_tuning_budget(&self) {
        *lock(&self.tuning.spending) = Spending::default();
    }

    /// The variant remembered for `key` on this adapter and these `shaders` (the ones
    /// `measure` runs); else, when autotuning within the budget, the one `measure` finds
    /// fastest (remembered and saved); else `default`.
    pub fn tuned<T: FromStr + ToString>(
        &self,
        key: &str,
        shaders: &[&Shader],
        default: T,
        measure: impl FnOnce() -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        let key = full_key(self.summary(), shaders, key);
        let choices = || lock(&self.tuning.choices);
        if let Some(choice) = choices().get(&key).and_then(|name| name.parse().ok()) {
            return Ok(choice);
        }
        let Some(file) = &self.tuning.file else {
            return Ok(default);
        };
        if !self.tuning.may_measure() {
            return Ok(default);
        }
        let choice = measure()?;
        // Measured as the budget ran out, perhaps cut short: used now, timed again later.
        if self.tuning.out_of_time() {
            return Ok(choice);
        }
        let snapshot = {
            let mut choices = choices();
            choices.insert(key, choice.to_string());
            serde_json::to_vec_pretty(&*choices).unwrap_or_default()
        };
        // A cache that cannot be written only costs a re-measurement next run.
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::fsutil::write_atomically(file, &snapshot);
        Ok(choice)
    }
}

/// Timed rounds per candidate in [`fastest`], after one warm-up each.
const ROUNDS: usize = 3;

/// A candidate this many times slower than the best so far drops out: the variants of a
/// family differ by far more where they differ at all, while a shared core's noise stays
/// well under it.
const CUT_OFF: f64 = 1.5;

/// The fastest of `candidates` (a choice and the dispatches it runs), each at its best of up
/// to [`ROUNDS`] timings after a warm-up. The rounds are interleaved, every candidate once per
/// round, so a slow moment on an adapter that shares its cores (a software one) lands on all
/// candidates alike instead of deciding against whichever was being timed. After each round
/// (the warm-up too, which already tells a slow variant) a candidate [`CUT_OFF`] times slower
/// than the best so far drops out, and once the tuning budget is spent nothing more is timed.
/// `None` when there are no candidates.
pub(crate) fn fastest<T: Copy>(
    ctx: &GpuContext,
    candidates: &[(T, Vec<&Dispatch>)],
) -> Result<Option<T>, GpuError> {
    let longest = candidates.iter().map(|(_, pass)| pass.len()).max();
    let timer = GpuTimer::new(ctx, longest.unwrap_or(1) as u32);
    // Each candidate's best time so far: the warm-up's until a timed round replaces it.
    let mut best = vec![f64::INFINITY; candidates.len()];
    let mut running: Vec<usize> = (0..candidates.len()).collect();
    'rounds: for round in 0..=ROUNDS {
        for &i in &running {
            let seconds: f64 = timer.time(ctx, &candidates[i].1)?.iter().sum();
            best[i] = if round == 1 {
                seconds
            } else {
                best[i].min(seconds)
            };
            // Out of time: the choice is made among those timed (one at least).
            if ctx.tuning.out_of_time() {
                break 'rounds;
            }
        }
        let leader = running
            .iter()
            .map(|&i| best[i])
            .fold(f64::INFINITY, f64::min);
        running.retain(|&i| best[i] <= CUT_OFF * leader);
        if running.len() <= 1 {
            break;
        }
    }
    Ok(running
        .into_iter()
        .min_by(|&x, &y| best[x].total_cmp(&best[y]))
        .map(|i| candidates[i].0))
}
