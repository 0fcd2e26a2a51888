//! In-memory datasets: one contiguous `u8` tensor of faces plus one label per face.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::classes::{CLASS_NAMES, IMAGE_PIXELS, NUM_CLASSES};
use super::error::DataError;

/// Faces as one contiguous `n × 48 × 48` row-major `u8` buffer, with a class index per face.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from its parts.
    ///
    /// # Panics
    /// If `images` does not hold exactly 48 × 48 bytes per label, or a label is not a class index.
    /// Loaders build these, so a mismatch is a bug, not bad input.
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(
            images.len(),
            labels.len() * IMAGE_PIXELS,
            "one 48×48 image per label"
        );
        assert!(
            labels.iter().all(|&label| (label as usize) < NUM_CLASSES),
            "labels are class indices"
        );
        Dataset { images, labels }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 48 × 48 row-major pixels of face `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.images[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
    }

    /// All faces, back to back.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// Class index per face.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Class names, indexed by label.
    pub fn class_names(&self) -> &'static [&'static str; NUM_CLASSES] {
        &CLASS_NAMES
    }

    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// Joins datasets back to back, keeping their order.
    pub(crate) fn concat(parts: Vec<Dataset>) -> Dataset {
        let mut joined = Dataset::default();
        for part in parts {
            joined.images.extend_from_slice(&part.images);
            joined.labels.extend_from_slice(&part.labels);
        }
        joined
    }

    /// One line: the total, then each class's count and share, e.g.
    /// `3589 images: angry 467 (13.0%), disgust 56 (1.6%), ...`.
    pub fn summary(&self) -> String {
        let total = self.len();
        let mut line = format!("{total} images:");
        for (index, (name, count)) in CLASS_NAMES.iter().zip(self.class_counts()).enumerate() {
            let share = 100.0 * count as f64 / total.max(1) as f64;
            let separator = if index == 0 { " " } else { ", " };
            let _ = write!(line, "{separator}{name} {count} ({share:.1}%)");
        }
        line
    }
}

/// The splits of a dataset and what happened while loading them.
#[derive(Clone, Debug, Default)]
pub struct Splits {
    pub train: Dataset,
    pub val: Dataset,
    /// Only when the source has one (a `test/` folder, or PrivateTest rows in the CSV).
    pub test: Option<Dataset>,
    pub report: LoadReport,
}

/// What loading skipped, changed or cached, for the caller to print; loaders print nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Files or CSV rows that could not be read and were left out.
    pub skipped: usize,
    /// Up to [`MAX_SKIPPED_EXAMPLES`] of them, as `path: reason` or `line N: reason`.
    pub skipped_examples: Vec<String>,
    /// Images that were not 48 × 48 and were resized.
    pub resized: usize,
    pub cache: CacheStatus,
    /// Problems that did not stop loading, such as a cache that could not be written.
    pub warnings: Vec<String>,
}

/// How many skipped items a [`LoadReport`] names; the rest are only counted.
pub const MAX_SKIPPED_EXAMPLES: usize = 5;

impl LoadReport {
    pub(crate) fn record_skip(&mut self, example: impl FnOnce() -> String) {
        self.skipped += 1;
        if self.skipped_examples.len() < MAX_SKIPPED_EXAMPLES {
            self.skipped_examples.push(example());
        }
    }

    /// Adds another report's skips and resizes to this one.
    pub(crate) fn absorb(&mut self, other: LoadReport) {
        self.skipped += other.skipped;
        let room = MAX_SKIPPED_EXAMPLES.saturating_sub(self.skipped_examples.len());
        self.skipped_examples
            .extend(other.skipped_examples.into_iter().take(room));
        self.resized += other.resized;
        self.warnings.extend(other.warnings);
    }
}

/// Whether the decode cache was used for a class-folder dataset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheStatus {
    /// Not a cached source (CSV, synthetic) or caching was turned off.
    #[default]
    NotUsed,
    /// Loaded from this cache file; no image was decoded.
    Hit(PathBuf),
    /// Decoded the images and wrote this cache file.
    Written(PathBuf),
    /// Decoded the images, but no cache could be written (see the warnings).
    WriteFailed,
}

/// The three splits, named as errors and reports name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// A split that ended up with no images is an error naming the split and the source.
pub(crate) fn require_images(
    dataset: Dataset,
    split: Split,
    source: &std::path::Path,
) -> Result<Dataset, DataError> {
    if dataset.is_empty() {
        return Err(DataError::EmptySplit {
            split: split.name(),
            path: source.to_path_buf(),
        });
    }
    Ok(dataset)
}
