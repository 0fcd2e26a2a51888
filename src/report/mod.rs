//! Reports: accuracy, per-class precision/recall/F1, confusion matrix, JSON metrics and plots,
//! and several runs compared.

pub mod comparison;
pub mod confusion;
pub mod history;
pub mod metrics;
pub mod pictures;
pub mod plot;
pub mod run_report;

pub use comparison::{comparison_png, comparison_table, RunSummary};
pub use confusion::{ConfusionMatrix, MetricsError};
pub use history::{EpochRecord, History};
pub use metrics::{ClassScores, ClassificationReport, Scores};
pub use pictures::{
    class_distribution_png, misclassified_png, most_confident_mistakes, recall_png, write_pictures,
    Mistake, RunPictures,
};
pub use plot::{augmentations_png, confusion_png, curves_png, PlotError};
pub use run_report::{
    write_atomically, write_augmentations, write_results, ReportError, RunMetrics,
};
