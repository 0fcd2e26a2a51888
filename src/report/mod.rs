//! Reports: accuracy, per-class precision/recall/F1, confusion matrix, JSON metrics and plots.
