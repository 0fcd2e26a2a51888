//! `fer report RUN...`: finished runs side by side, read from their metrics.json.

use std::path::{Path, PathBuf};

use anyhow::Context;

use fer::report::{comparison_png, comparison_table, write_atomically, RunMetrics, RunSummary};

pub const COMPARISON_FILE: &str = "comparison.png";

/// Prints the runs' table (or JSON) and writes their accuracy curves as `out/comparison.png`.
pub fn report(runs: &[PathBuf], out: &Path, json: bool) -> anyhow::Result<()> {
    let metrics: Vec<(String, RunMetrics)> = runs
        .iter()
        .map(|run| Ok((run.display().to_string(), read_metrics(run)?)))
        .collect::<anyhow::Result<_>>()?;
    let summaries: Vec<RunSummary> = metrics
        .iter()
        .map(|(run, metrics)| RunSummary::new(run, metrics))
        .collect();
    let curves: Vec<(&str, _)> = metrics
        .iter()
        .map(|(run, metrics)| (run.as_str(), &metrics.history))
        .collect();
    let png = comparison_png(&curves)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create output folder {}", out.display()))?;
    let path = out.join(COMPARISON_FILE);
    write_atomically(&path, &png)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
    } else {
        print!("{}", comparison_table(&summaries));
    }
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// A run's metrics.json: `run` names its results folder, or the file itself.
fn read_metrics(run: &Path) -> anyhow::Result<RunMetrics> {
    let path = if run.is_dir() {
        run.join(fer::report::run_report::METRICS_FILE)
    } else {
        run.to_path_buf()
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the run's metrics {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a fer run's metrics.json", path.display()))
}
