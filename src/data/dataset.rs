//! In-memory datasets: one contiguous `u8` tensor of images at an [`ImageSpec`], a label per
//! image, and the names the labels index.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::error::DataError;
use super::image_spec::ImageSpec;

/// Images as one contiguous `n × channels × height × width` `u8` buffer (the spec's shape), with
/// a class index per image into the class names.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    spec: ImageSpec,
    class_names: Vec<String>,
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from its parts; batches normalise its images by `spec`'s mean and std.
    ///
    /// # Panics
    /// If [`ImageSpec::check`] refuses `spec`, `images` does not hold exactly one image of its
    /// shape per label, or a label does not index `class_names`. Loaders check the spec and
    /// build these, so a mismatch is a bug, not bad input.
    pub fn new(
        spec: ImageSpec,
        class_names: Vec<String>,
        images: Vec<u8>,
        labels: Vec<u8>,
    ) -> Self {
        if let Err(reason) = spec.check() {
            panic!("a dataset's spec is checked: {reason}");
        }
        assert_eq!(
            images.len(),
            labels.len() * spec.shape().iter().product::<usize>(),
            "one image of the spec's shape per label"
        );
        assert!(
            labels
                .iter()
                .all(|&label| (label as usize) < class_names.len()),
            "labels are class indices"
        );
        Dataset {
            spec,
            class_names,
            images,
            labels,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// What each image is: its shape and the normalisation batches apply.
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// Bytes per image: channels × height × width.
    pub fn image_len(&self) -> usize {
        self.spec.shape().iter().product()
    }

    /// The `[channels, height, width]` bytes of image `index` (channel planes, rows in order).
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[index * len..(index + 1) * len]
    }

    /// All images, back to back.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// Class index per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Class names, indexed by label.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    pub fn class_count(&self) -> usize {
        self.class_names.len()
    }

    /// Images per class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_count()];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }

    /// One line: the total, then each class's count and share, e.g.
    /// `3589 images: angry 467 (13.0%), disgust 56 (1.6%), ...`.
    pub fn summary(&self) -> String {
        let total = self.len();
        let mut line = format!("{total} images:");
        for (index, (name, count)) in self.class_names.iter().zip(self.class_counts()).enumerate() {
            let share = 100.0 * count as f64 / total.max(1) as f64;
            let separator = if index == 0 { " " } else { ", " };
            let _ = write!(line, "{separator}{name} {count} ({share:.1}%)");
        }
        line
    }
}

/// The splits of a dataset and what happened while loading them.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub val: Dataset,
    /// Only when the source has one (a `test/` folder, or PrivateTest rows in the CSV).
    pub test: Option<Dataset>,
    pub report: LoadReport,
}

/// One split of a dataset, each image with where it came from, so a report's row leads a person
/// back to the file.
#[derive(Clone, Debug)]
pub struct SourcedSplit {
    pub data: Dataset,
    /// Per image: its file's path, or `csv:LINE` for a row of a CSV (the file's line number).
    pub sources: Vec<String>,
    pub report: LoadReport,
}

/// What loading skipped, changed or cached, for the caller to print; loaders print nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Files or CSV rows that could not be read and were left out.
    pub skipped: usize,
    /// Up to [`MAX_SKIPPED_EXAMPLES`] of them, as `path: reason` or `line N: reason`.
    pub skipped_examples: Vec<String>,
    /// Images that were not the spec's size and were resized.
    pub resized: usize,
    pub cache: CacheStatus,
    /// Problems that did not stop loading, such as a cache that could not be written.
    pub warnings: Vec<String>,
    /// How splits the dataset lacks were carved out of its images, if any were, or why
    /// --val-split carved none.
    pub carved: Option<String>,
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
pub enum Split {
    Train,
    Val,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }
}

/// A split that ended up with no images is an error naming the split and the source, and
/// what `report` skipped as unreadable reading it, if anything.
pub(crate) fn require_images(
    dataset: Dataset,
    split: Split,
    source: &std::path::Path,
    report: &LoadReport,
) -> Result<Dataset, DataError> {
    if dataset.is_empty() {
        return Err(DataError::EmptySplit {
            split: split.name(),
            path: source.to_path_buf(),
            skipped: report
                .skipped_examples
                .first()
                .map_or(String::new(), |example| {
                    format!(
                        " ({} unreadable items were skipped, e.g. {example})",
                        report.skipped
                    )
                }),
        });
    }
    Ok(dataset)
}
