//! Several runs side by side, as the studies compared their models: a row of numbers per run
//! read from its metrics.json, and their validation accuracy curves on one plot.

use super::history::History;
use super::plot::{lines_png, Panel, PlotError, Series, PALETTE};
use super::run_report::RunMetrics;
use plotters::prelude::SeriesLabelPosition;
use serde::Serialize;

/// One run's row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run as it was named (its directory).
    pub run: String,
    pub model: String,
    pub epochs: usize,
    /// Validation accuracy of the model the run ended with, the one its report describes.
    pub accuracy: f64,
    /// The best epoch's validation accuracy and that epoch (the first of equals); none for a
    /// run without a history.
    pub best_val_acc: Option<f64>,
    pub best_epoch: Option<usize>,
    pub macro_f1: f64,
    /// The whole run's wall-clock time, when the run recorded it.
    pub wall_seconds: Option<f64>,
    /// Trainable parameters, when the run recorded them (the baseline has none).
    pub parameters: Option<u64>,
}

impl RunSummary {
    pub fn new(run: &str, metrics: &RunMetrics) -> Self {
        let epochs = metrics.history.epochs();
        let best = epochs.iter().filter(|r| r.val_acc.is_finite()).fold(
            None,
            |best: Option<(f64, usize)>, r| match best {
                Some((acc, _)) if acc >= r.val_acc => best,
                _ => Some((r.val_acc, r.epoch)),
            },
        );
        Self {
            run: run.to_string(),
            model: metrics.model.clone(),
            epochs: epochs.len(),
            accuracy: metrics.accuracy,
            best_val_acc: best.map(|(acc, _)| acc),
            best_epoch: best.map(|(_, epoch)| epoch),
            macro_f1: metrics.report.macro_avg.f1,
            wall_seconds: metrics.run["wall_seconds"].as_f64(),
            parameters: metrics.run["parameters"].as_u64(),
        }
    }
}

/// The runs as a table with a header, one line per run; what a run did not record is `n/a`.
pub fn comparison_table(runs: &[RunSummary]) -> String {
    let header = [
        "run",
        "model",
        "epochs",
        "accuracy",
        "best val_acc (epoch)",
        "macro-F1",
        "time",
        "parameters",
    ];
    let not_recorded = || "n/a".to_string();
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|run| {
            [
                run.run.clone(),
                run.model.clone(),
                run.epochs.to_string(),
                format!("{:.4}", run.accuracy),
                run.best_val_acc
                    .zip(run.best_epoch)
                    .map_or_else(not_recorded, |(acc, epoch)| format!("{acc:.4} ({epoch})")),
                format!("{:.4}", run.macro_f1),
                run.wall_seconds
                    .map_or_else(not_recorded, |seconds| format!("{seconds:.1} s")),
                run.parameters.map_or_else(not_recorded, |p| p.to_string()),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (column, (cell, &width)) in cells.iter().zip(&widths).enumerate() {
            // The names read left to right; the numbers line up on their last digit.
            if column < 2 {
                text.push_str(&format!("{cell:<width$}  "));
            } else {
                text.push_str(&format!("{cell:>width$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut table = line(&header);
    for row in &rows {
        table.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    table
}

/// Each run's validation accuracy in percent against epoch, a line per run.
pub fn comparison_png(runs: &[(&str, &History)]) -> Result<Vec<u8>, PlotError> {
    let series: Vec<Series> = runs
        .iter()
        .enumerate()
        .map(|(i, (label, history))| Series {
            label: label.to_string(),
            points: history
                .epochs()
                .iter()
                .map(|r| (r.epoch as f64, 100.0 * r.val_acc))
                .collect(),
            colour: PALETTE[i % PALETTE.len()],
        })
        .collect();
    let panel = Panel {
        title: "Validation accuracy",
        y_desc: "accuracy (%)",
        legend: SeriesLabelPosition::LowerRight,
    };
    lines_png("comparison of runs", &panel, &series)
}
