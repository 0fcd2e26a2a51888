//! Datasets: the Kaggle class-folder layout, the FER2013 CSV, synthetic faces, and the decode cache.
//!
//! [`load`] turns a path into [`Splits`] of images at an [`ImageSpec`] (a model's input): a
//! directory is read as class folders (through the decode cache), a file as the FER2013 CSV. Loaders print nothing; what they skipped or cached
//! is in [`Splits::report`] for the caller to show.

pub mod batch;
mod cache;
mod carve;
mod convert;
mod csv;
mod dataset;
mod error;
pub mod fer2013;
mod folder;
mod image_spec;
mod parallel;
pub mod synthetic;

use std::path::Path;

pub use carve::{Carving, ONE_FOLDER_SHARES};
pub use convert::to_spec;
pub use dataset::{
    CacheStatus, Dataset, LoadReport, SourcedSplit, Split, Splits, MAX_SKIPPED_EXAMPLES,
};
pub use error::{DataError, MAX_CLASSES};
pub use folder::open_image;
pub use image_spec::ImageSpec;

/// How [`load_with_options`] treats the decode cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Read a valid cache instead of decoding, and write one after decoding.
    pub use_cache: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { use_cache: true }
    }
}

/// Loads a class-folder dataset directory or a FER2013 CSV file at `spec`, using the decode
/// cache.
pub fn load(path: impl AsRef<Path>, spec: &ImageSpec) -> Result<Splits, DataError> {
    load_with_options(path, spec, LoadOptions::default())
}

pub fn load_with_options(
    path: impl AsRef<Path>,
    spec: &ImageSpec,
    options: LoadOptions,
) -> Result<Splits, DataError> {
    load_carved(path, spec, options, Carving::default())
}

/// [`load_with_options`] for a dataset that may lack splits: a class-folder dataset without
/// val/ gets one carved from train as `carving` says, and one folder of class folders splits
/// into train, val and test; the report says how. A CSV has its splits (`carving` is unused).
pub fn load_carved(
    path: impl AsRef<Path>,
    spec: &ImageSpec,
    options: LoadOptions,
    carving: Carving,
) -> Result<Splits, DataError> {
    spec.check().map_err(DataError::Spec)?;
    let path = path.as_ref();
    let metadata = std::fs::metadata(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => DataError::MissingRoot(path.to_path_buf()),
        _ => DataError::io(path, error),
    })?;
    if metadata.is_file() {
        return csv::load(path, spec);
    }
    let layout = folder::scan(path, carving)?;
    let mut splits = if options.use_cache {
        cache::load_or_decode(&layout, spec)?
    } else {
        folder::decode(&layout, spec)?
    };
    splits.report.carved = layout.carved;
    Ok(splits)
}

/// Loads only `split` of a class-folder dataset (`<root>/<split>/<class>/`, the other splits
/// may be absent; a split it lacks is carved as [`load_carved`] carves it) or of a FER2013 CSV,
/// uncached, naming where each image came from.
pub fn load_split(
    path: impl AsRef<Path>,
    split: Split,
    spec: &ImageSpec,
    carving: Carving,
) -> Result<SourcedSplit, DataError> {
    spec.check().map_err(DataError::Spec)?;
    let path = path.as_ref();
    if !path.exists() {
        return Err(DataError::MissingRoot(path.to_path_buf()));
    }
    if path.is_file() {
        csv::load_split(path, split, spec)
    } else {
        folder::load_split(path, split, spec, carving)
    }
}

/// A seed for one independent random stream (a purpose such as shuffling, and an index such as
/// the epoch) derived from a run's seed. Purpose and index are scrambled first, so nearby streams
/// are not one SplitMix sequence shifted by a step.
pub(crate) fn derive_seed(seed: u64, purpose: u64, index: u64) -> u64 {
    let mut mixer = crate::rng::Rng::new(purpose);
    seed ^ crate::rng::Rng::new(mixer.next_u64() ^ index).next_u64()
}
