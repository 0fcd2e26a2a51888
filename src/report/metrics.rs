//! Accuracy and per-class precision, recall, F1 and support, with the same definitions and text
//! layout as scikit-learn's `classification_report` (with `zero_division=0`).

use super::confusion::{ConfusionMatrix, MetricsError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Precision, recall and F1 of one class, or an average of them over classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Samples whose true label is this class (for an average: all samples).
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub class: String,
    #[serde(flatten)]
    pub scores: Scores,
}

/// What scikit-learn's `classification_report` shows, as numbers.
///
/// Undefined ratios are 0, as scikit-learn reports them with `zero_division=0` (where it also
/// warns): the precision of a class that is never predicted, the recall of a class with no
/// samples, and the F1 of a class with neither a true positive nor any error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Fraction of samples predicted correctly; 0 when there are none.
    pub accuracy: f64,
    pub classes: Vec<ClassScores>,
    /// Unweighted mean over all classes, including those with no samples.
    pub macro_avg: Scores,
    /// Mean over classes weighted by support.
    pub weighted_avg: Scores,
}

impl ClassificationReport {
    /// Convenience for `from_confusion(&ConfusionMatrix::from_labels(..)?)`.
    pub fn from_labels(
        true_labels: &[usize],
        predicted_labels: &[usize],
        class_names: &[&str],
    ) -> Result<Self, MetricsError> {
        let confusion = ConfusionMatrix::from_labels(true_labels, predicted_labels, class_names)?;
        Ok(Self::from_confusion(&confusion))
    }

    pub fn from_confusion(confusion: &ConfusionMatrix) -> Self {
        let support = confusion.support();
        let predicted = confusion.predicted_totals();
        let total = confusion.total();
        let classes: Vec<ClassScores> = confusion
            .class_names()
            .iter()
            .enumerate()
            .map(|(class, name)| {
                let true_positives = confusion.counts()[class][class];
                let false_positives = predicted[class] - true_positives;
                let false_negatives = support[class] - true_positives;
                ClassScores {
                    class: name.clone(),
                    scores: Scores {
                        precision: ratio(true_positives, predicted[class]),
                        recall: ratio(true_positives, support[class]),
                        // scikit-learn's form: equal to 2PR/(P+R), and defined exactly when it is.
                        f1: ratio(
                            2 * true_positives,
                            2 * true_positives + false_positives + false_negatives,
                        ),
                        support: support[class],
                    },
                }
            })
            .collect();
        let class_count = classes.len() as f64;
        let macro_avg = average(&classes, total, |_| 1.0 / class_count);
        let weighted_avg = average(&classes, total, |scores| ratio(scores.support, total));
        Self {
            accuracy: ratio(confusion.correct(), total),
            classes,
            macro_avg,
            weighted_avg,
        }
    }
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn average(classes: &[ClassScores], total: u64, weight: impl Fn(&Scores) -> f64) -> Scores {
    let weighted_sum = |field: fn(&Scores) -> f64| {
        classes
            .iter()
            .map(|class| weight(&class.scores) * field(&class.scores))
            .sum()
    };
    Scores {
        precision: weighted_sum(|scores| scores.precision),
        recall: weighted_sum(|scores| scores.recall),
        f1: weighted_sum(|scores| scores.f1),
        support: total,
    }
}

/// scikit-learn's text layout with `digits=2`: a right-aligned name column as wide as the
/// longest class name or "weighted avg", then four columns of width 9 after one extra space.
impl fmt::Display for ClassificationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const WIDEST_AVERAGE: &str = "weighted avg";
        let width = self
            .classes
            .iter()
            .map(|class| class.class.len())
            .chain([WIDEST_AVERAGE.len()])
            .max()
            .unwrap_or(0);
        let row = |f: &mut fmt::Formatter<'_>, name: &str, scores: &Scores| {
            writeln!(
                f,
                "{name:>width$}  {:>9.2} {:>9.2} {:>9.2} {:>9}",
                scores.precision, scores.recall, scores.f1, scores.support
            )
        };
        writeln!(
            f,
            "{:>width$}  {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        writeln!(f)?;
        for class in &self.classes {
            row(f, &class.class, &class.scores)?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:>width$}  {:>9} {:>9} {:>9.2} {:>9}",
            "accuracy", "", "", self.accuracy, self.macro_avg.support
        )?;
        row(f, "macro avg", &self.macro_avg)?;
        row(f, WIDEST_AVERAGE, &self.weighted_avg)
    }
}
