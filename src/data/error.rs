//! Every way loading a dataset can fail, each as one sentence naming the path involved. The
//! underlying reason is part of that sentence rather than a `source()`, so printing the error
//! with its chain says it once.

use std::path::PathBuf;

/// Labels are bytes, so a dataset has at most 256 classes.
pub const MAX_CLASSES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "synthetic faces come in FER2013's 7 expressions, so a model of {0} classes needs a \
         dataset of its own (--data)"
    )]
    SyntheticClasses(usize),
    #[error("dataset path {0} does not exist")]
    MissingRoot(PathBuf),
    #[error("no train split in {0}: expected a train/ folder of class folders")]
    MissingTrainSplit(PathBuf),
    #[error(
        "no validation split in {0}: expected a val/ or validation/ folder of class folders, or \
         --val-split 0.25 to carve one from train"
    )]
    MissingValSplit(PathBuf),
    #[error("no {split} split in {path}: expected a {split}/ folder of class folders")]
    MissingSplit { split: &'static str, path: PathBuf },
    #[error("{0} has both val/ and validation/ folders; keep one")]
    AmbiguousValSplit(PathBuf),
    #[error(
        "class folders {first:?} and {second:?} in {root} differ only in case: rename one, so \
         each class has one name"
    )]
    ClassNameCase {
        root: PathBuf,
        first: String,
        second: String,
    },
    #[error("{root} has {count} class folders; a dataset holds at most {MAX_CLASSES} classes")]
    TooManyClasses { root: PathBuf, count: usize },
    #[error("class folder {0} holds no files")]
    EmptyClassFolder(PathBuf),
    #[error(
        "--val-split {share} carves no image out of the {images} in {}: each class gives \
         round(its images × {share}) to val, and here that is none; raise it",
        dir.display()
    )]
    NothingCarved {
        share: f64,
        dir: PathBuf,
        images: usize,
    },
    #[error("the {split} split in {path} has no readable images{skipped}")]
    EmptySplit {
        split: &'static str,
        path: PathBuf,
        /// What was skipped as unreadable, as a parenthesis (or nothing).
        skipped: String,
    },
    #[error("{path} is not a FER2013 CSV: {reason}")]
    CsvHeader { path: PathBuf, reason: String },
    #[error("cannot load images at this spec: {0}")]
    Spec(String),
    #[error("cannot read {path}: {reason}")]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, reason: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            reason,
        }
    }
}
