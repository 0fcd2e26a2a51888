//! One run's results directory: `results/<model>/` with metrics.json, report.txt, curves.png,
//! confusion.png and, for a run with augmentation, augmentations.png (and the pictures of
//! [`super::pictures`]), each written atomically so a reader never sees half a file.

use super::confusion::ConfusionMatrix;
use super::history::History;
use super::metrics::ClassificationReport;
use super::plot::{self, PlotError};
use crate::data::ImageSpec;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Why a results directory could not be written; every variant names the path involved and
/// says the underlying reason itself (none is also a `source()`, which would print it twice).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "model name {name:?} cannot name a results directory: it must be one plain path component"
    )]
    InvalidModelName { name: String },
    #[error("could not create results directory {}: {reason}", path.display())]
    CreateDir { path: PathBuf, reason: io::Error },
    #[error("could not write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: io::Error },
    #[error("could not serialize metrics for {}: {reason}", path.display())]
    Json {
        path: PathBuf,
        reason: serde_json::Error,
    },
    #[error("could not plot {}: {reason}", path.display())]
    Plot { path: PathBuf, reason: PlotError },
}

/// Everything metrics.json holds. `run` is free-form: adapter, command line, hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub model: String,
    pub accuracy: f64,
    pub report: ClassificationReport,
    pub confusion_matrix: ConfusionMatrix,
    pub history: History,
    pub run: serde_json::Value,
}

impl RunMetrics {
    pub fn new(
        model: &str,
        confusion_matrix: ConfusionMatrix,
        history: History,
        run: serde_json::Value,
    ) -> Self {
        let report = ClassificationReport::from_confusion(&confusion_matrix);
        Self {
            model: model.to_string(),
            accuracy: report.accuracy,
            report,
            confusion_matrix,
            history,
            run,
        }
    }

    /// The text of report.txt: the classification report, then the confusion matrix table.
    pub fn text(&self) -> String {
        format!(
            "model: {}\naccuracy: {:.4} ({} of {} correct)\n\n{}\nconfusion matrix (rows: true class, columns: predicted class)\n\n{}",
            self.model,
            self.accuracy,
            self.confusion_matrix.correct(),
            self.confusion_matrix.total(),
            self.report,
            self.confusion_matrix,
        )
    }
}

pub const METRICS_FILE: &str = "metrics.json";
pub const REPORT_FILE: &str = "report.txt";
pub const CURVES_FILE: &str = "curves.png";
pub const CONFUSION_FILE: &str = "confusion.png";
pub const AUGMENTATIONS_FILE: &str = "augmentations.png";

/// Writes `results_root/<model>/` and returns that directory. Files already there are replaced.
pub fn write_results(results_root: &Path, metrics: &RunMetrics) -> Result<PathBuf, ReportError> {
    let directory = results_root.join(model_directory_name(&metrics.model)?);
    fs::create_dir_all(&directory).map_err(|reason| ReportError::CreateDir {
        path: directory.clone(),
        reason,
    })?;

    let metrics_path = directory.join(METRICS_FILE);
    let mut json = serde_json::to_vec_pretty(metrics).map_err(|reason| ReportError::Json {
        path: metrics_path.clone(),
        reason,
    })?;
    json.push(b'\n');
    write_atomically(&metrics_path, &json)?;

    write_atomically(&directory.join(REPORT_FILE), metrics.text().as_bytes())?;

    write_plot(&directory, CURVES_FILE, plot::curves_png(&metrics.history))?;
    write_plot(
        &directory,
        CONFUSION_FILE,
        plot::confusion_png(&metrics.confusion_matrix),
    )?;
    Ok(directory)
}

/// Writes `directory/augmentations.png`, [`plot::augmentations_png`] of an augmented batch,
/// and returns its path.
pub fn write_augmentations(
    directory: &Path,
    batch: &[f32],
    spec: &ImageSpec,
    caption: &str,
) -> Result<PathBuf, ReportError> {
    write_plot(
        directory,
        AUGMENTATIONS_FILE,
        plot::augmentations_png(batch, spec, caption),
    )
}

/// Writes a drawn plot as `directory/file` and returns its path; a plot that could not be
/// drawn is an error naming that path.
pub(super) fn write_plot(
    directory: &Path,
    file: &str,
    png: Result<Vec<u8>, PlotError>,
) -> Result<PathBuf, ReportError> {
    let path = directory.join(file);
    let png = png.map_err(|reason| ReportError::Plot {
        path: path.clone(),
        reason,
    })?;
    write_atomically(&path, &png)?;
    Ok(path)
}

/// The model name becomes a directory name, so it must not climb out of or nest inside the
/// results root.
fn model_directory_name(model: &str) -> Result<&str, ReportError> {
    if crate::nn::spec::is_plain_name(model) {
        Ok(model)
    } else {
        Err(ReportError::InvalidModelName {
            name: model.to_string(),
        })
    }
}

/// [`crate::fsutil::write_atomically`], with the error naming the path.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::fsutil::write_atomically(path, bytes).map_err(|reason| ReportError::Write {
        path: path.to_path_buf(),
        reason,
    })
}
