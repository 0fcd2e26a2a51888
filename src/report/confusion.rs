//! The confusion matrix: rows are true classes, columns are predicted classes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why labels could not be turned into a confusion matrix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    #[error("no class names were given, so no label can be counted")]
    NoClasses,
    #[error(
        "there are {true_len} true labels but {predicted_len} predicted labels; they must pair up"
    )]
    LengthMismatch {
        true_len: usize,
        predicted_len: usize,
    },
    #[error("{which} label {label} at position {position} is not a class index below {classes}")]
    LabelOutOfRange {
        which: &'static str,
        label: usize,
        position: usize,
        classes: usize,
    },
    #[error("a confusion matrix with {classes} class names has {rows} rows, and every row needs {classes} counts")]
    NotSquare { classes: usize, rows: usize },
}

/// Counts of (true class, predicted class) pairs, with the class names that label both axes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "UncheckedConfusionMatrix")]
pub struct ConfusionMatrix {
    class_names: Vec<String>,
    /// `counts[true][predicted]`.
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// Counts each `(true_labels[i], predicted_labels[i])` pair; labels index `class_names`.
    pub fn from_labels(
        true_labels: &[usize],
        predicted_labels: &[usize],
        class_names: &[&str],
    ) -> Result<Self, MetricsError> {
        let classes = class_names.len();
        if classes == 0 {
            return Err(MetricsError::NoClasses);
        }
        if true_labels.len() != predicted_labels.len() {
            return Err(MetricsError::LengthMismatch {
                true_len: true_labels.len(),
                predicted_len: predicted_labels.len(),
            });
        }
        let mut counts = vec![vec![0u64; classes]; classes];
        for (position, (&truth, &predicted)) in true_labels.iter().zip(predicted_labels).enumerate()
        {
            for (which, label) in [("true", truth), ("predicted", predicted)] {
                if label >= classes {
                    return Err(MetricsError::LabelOutOfRange {
                        which,
                        label,
                        position,
                        classes,
                    });
                }
            }
            counts[truth][predicted] += 1;
        }
        Ok(Self {
            class_names: class_names.iter().map(|name| name.to_string()).collect(),
            counts,
        })
    }

    /// Builds a matrix from counts already tallied elsewhere (e.g. on the GPU).
    pub fn from_counts(class_names: &[&str], counts: Vec<Vec<u64>>) -> Result<Self, MetricsError> {
        Self::try_from(UncheckedConfusionMatrix {
            class_names: class_names.iter().map(|name| name.to_string()).collect(),
            counts,
        })
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// `counts()[true][predicted]`.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Samples whose prediction equals their label: the diagonal.
    pub fn correct(&self) -> u64 {
        (0..self.counts.len())
            .map(|class| self.counts[class][class])
            .sum()
    }

    /// How many samples truly belong to each class (row sums).
    pub fn support(&self) -> Vec<u64> {
        self.counts.iter().map(|row| row.iter().sum()).collect()
    }

    /// How many samples were predicted as each class (column sums).
    pub fn predicted_totals(&self) -> Vec<u64> {
        (0..self.counts.len())
            .map(|column| self.counts.iter().map(|row| row[column]).sum())
            .collect()
    }
}

/// The serialized form, checked to be square before it becomes a [`ConfusionMatrix`], so that
/// indexing by class never goes out of bounds whatever a JSON file holds.
#[derive(Deserialize)]
struct UncheckedConfusionMatrix {
    class_names: Vec<String>,
    counts: Vec<Vec<u64>>,
}

impl TryFrom<UncheckedConfusionMatrix> for ConfusionMatrix {
    type Error = MetricsError;

    fn try_from(unchecked: UncheckedConfusionMatrix) -> Result<Self, MetricsError> {
        let UncheckedConfusionMatrix {
            class_names,
            counts,
        } = unchecked;
        let classes = class_names.len();
        if classes == 0 {
            return Err(MetricsError::NoClasses);
        }
        if counts.len() != classes || counts.iter().any(|row| row.len() != classes) {
            return Err(MetricsError::NotSquare {
                classes,
                rows: counts.len(),
            });
        }
        Ok(Self {
            class_names,
            counts,
        })
    }
}

/// A text table: one row per true class, one column per predicted class.
impl fmt::Display for ConfusionMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CORNER: &str = "true \\ predicted";
        let name_width = self
            .class_names
            .iter()
            .map(String::len)
            .chain([CORNER.len()])
            .max()
            .unwrap_or(0);
        // Each column is as wide as its name or its largest count, whichever is wider.
        let column_widths: Vec<usize> = self
            .class_names
            .iter()
            .enumerate()
            .map(|(column, name)| {
                let widest_count = self
                    .counts
                    .iter()
                    .map(|row| row[column].to_string().len())
                    .max()
                    .unwrap_or(1);
                name.len().max(widest_count)
            })
            .collect();
        write!(f, "{CORNER:<name_width$}")?;
        for (name, width) in self.class_names.iter().zip(&column_widths) {
            write!(f, "  {name:>width$}")?;
        }
        writeln!(f)?;
        for (name, row) in self.class_names.iter().zip(&self.counts) {
            write!(f, "{name:<name_width$}")?;
            for (count, width) in row.iter().zip(&column_widths) {
                write!(f, "  {count:>width$}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
