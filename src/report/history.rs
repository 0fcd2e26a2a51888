//! What training measured after each epoch.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Counted from 1, as a person reads a progress bar.
    pub epoch: usize,
    #[serde(deserialize_with = "nan_when_null")]
    pub train_loss: f64,
    /// Fraction in [0, 1].
    pub train_acc: f64,
    #[serde(deserialize_with = "nan_when_null")]
    pub val_loss: f64,
    /// Fraction in [0, 1].
    pub val_acc: f64,
    /// Wall-clock time the epoch took, validation included.
    pub seconds: f64,
    /// Per class, in the dataset's class order: the fraction of its validation images predicted
    /// as it (0 for a class without any). Empty in histories written before fer recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_recall: Vec<f64>,
}

/// JSON has no NaN: serde_json writes the loss of a model without one (the baseline) or of a
/// diverged run as `null`, which reads back as NaN.
fn nan_when_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Epoch records in the order they were trained; serialized as a plain JSON array.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct History {
    epochs: Vec<EpochRecord>,
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, record: EpochRecord) {
        self.epochs.push(record);
    }

    pub fn epochs(&self) -> &[EpochRecord] {
        &self.epochs
    }
}

impl From<Vec<EpochRecord>> for History {
    fn from(epochs: Vec<EpochRecord>) -> Self {
        Self { epochs }
    }
}
