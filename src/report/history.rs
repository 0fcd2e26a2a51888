//! What training measured after each epoch.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Counted from 1, as a person reads a progress bar.
    pub epoch: usize,
    pub train_loss: f64,
    /// Fraction in [0, 1].
    pub train_acc: f64,
    pub val_loss: f64,
    /// Fraction in [0, 1].
    pub val_acc: f64,
    /// Wall-clock time the epoch took, validation included.
    pub seconds: f64,
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
