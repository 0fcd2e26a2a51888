//! Per-adapter kernel choices: which variant of a kernel family is fastest for a shape is
//! measured once on this adapter and remembered, in memory and (when autotuning is on) on disk,
//! keyed by adapter, driver, the shaders' sources and shape.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

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
}

impl Tuning {
    pub(crate) fn new(autotune: bool, file: Option<PathBuf>) -> Self {
        let file = autotune.then(|| file.unwrap_or_else(cache_file));
        let choices = file
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Tuning {
            file,
            choices: Mutex::new(choices),
        }
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

    /// The variant remembered for `key` on this adapter and these `shaders` (the ones
    /// `measure` runs); else, when autotuning, the one `measure` finds fastest (remembered and
    /// saved); else `default`.
    pub fn tuned<T: FromStr + ToString>(
        &self,
        key: &str,
        shaders: &[&Shader],
        default: T,
        measure: impl FnOnce() -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        let key = full_key(self.summary(), shaders, key);
        let lock = || {
            self.tuning
                .choices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(choice) = lock().get(&key).and_then(|name| name.parse().ok()) {
            return Ok(choice);
        }
        let Some(file) = &self.tuning.file else {
            return Ok(default);
        };
        let choice = measure()?;
        let snapshot = {
            let mut choices = lock();
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

/// The fastest of `candidates` (a choice and the dispatches it runs), each at its best of
/// [`ROUNDS`] timings after a warm-up. The rounds are interleaved, every candidate once per
/// round, so a slow moment on an adapter that shares its cores (a software one) lands on all
/// candidates alike instead of deciding against whichever was being timed. `None` when there
/// are no candidates.
pub(crate) fn fastest<T: Copy>(
    ctx: &GpuContext,
    candidates: &[(T, Vec<&Dispatch>)],
) -> Result<Option<T>, GpuError> {
    let longest = candidates.iter().map(|(_, pass)| pass.len()).max();
    let timer = GpuTimer::new(ctx, longest.unwrap_or(1) as u32);
    let mut best = vec![f64::INFINITY; candidates.len()];
    for round in 0..=ROUNDS {
        for ((_, pass), best) in candidates.iter().zip(&mut best) {
            let seconds: f64 = timer.time(ctx, pass)?.iter().sum();
            // Round 0 warms caches and pipelines up and does not count.
            if round > 0 {
                *best = best.min(seconds);
            }
        }
    }
    Ok(candidates
        .iter()
        .zip(&best)
        .min_by(|x, y| x.1.total_cmp(y.1))
        .map(|((choice, _), _)| *choice))
}
