//! Splits carved out of a class-folder dataset that lacks them: `--val-split F` takes a share
//! of `train/` as val when there is no `val/`, and a single folder of class folders (no
//! `train/`) splits 70/15/15 into train, val and test, as the Keras CNN study did. Carving is
//! stratified (each class keeps its share in every split) and seeded, so a run and a later
//! `fer eval` with the same seed see the same images.

use super::folder::ImageFile;

/// How a dataset without a val split gets one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Carving {
    /// The share of train carved out as val when the dataset has no val split (none: such a
    /// dataset is refused).
    pub val_split: Option<f64>,
    /// Seeds which images land in which split.
    pub seed: u64,
}

/// The shares of val and test when one folder of class folders is split three ways.
pub const ONE_FOLDER_SHARES: [f64; 2] = [0.15, 0.15];

/// A purpose for [`super::derive_seed`], so carving draws a stream of its own.
const CARVE_STREAM: u64 = 0xCA77E;

/// `files` (sorted by class, then path) with a stratified, seeded share carved out for each of
/// `shares`: per class, the files are shuffled and each share takes `round(n · share)` of them in
/// turn; what is left stays in the first split, which keeps at least one image of each class.
/// Every split comes back sorted by class, then path, as scanning orders them.
pub(crate) fn carve(
    files: Vec<ImageFile>,
    shares: &[f64],
    seed: u64,
) -> (Vec<ImageFile>, Vec<Vec<ImageFile>>) {
    let mut kept = Vec::new();
    let mut carved: Vec<Vec<ImageFile>> = shares.iter().map(|_| Vec::new()).collect();
    let mut files = files.into_iter().peekable();
    while let Some(first) = files.next() {
        let label = first.label;
        let mut class = vec![first];
        while let Some(file) = files.next_if(|file| file.label == label) {
            class.push(file);
        }
        let total = class.len();
        let mut rng = crate::rng::Rng::new(super::derive_seed(seed, CARVE_STREAM, label.into()));
        rng.shuffle(&mut class);
        for (share, split) in shares.iter().zip(&mut carved) {
            let wanted = (total as f64 * share).round() as usize;
            let take = wanted.min(class.len().saturating_sub(1));
            split.extend(class.drain(class.len() - take..));
        }
        kept.extend(class);
    }
    let sorted = |mut files: Vec<ImageFile>| {
        files.sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
        files
    };
    (sorted(kept), carved.into_iter().map(sorted).collect())
}
