//! Reports: accuracy, per-class precision/recall/F1, confusion matrix, JSON metrics and plots.

pub mod confusion;
pub mod history;
pub mod metrics;
pub mod plot;
pub mod run_report;

pub use confusion::{ConfusionMatrix, MetricsError};
pub use history::{EpochRecord, History};
pub use metrics::{ClassScores, ClassificationReport, Scores};
pub use plot::{augmentations_png, confusion_png, curves_png, PlotError};
pub use run_report::{
    write_atomically, write_augmentations, write_results, ReportError, RunMetrics,
};
