//! Turning a dataset into training batches: epoch shuffles, normalized `f32` tensors, labels,
//! and the seed of each step's augmentation (which runs on the GPU, `train::augmentation`).
//! Every function is pure: the same seed gives the same result.

use crate::rng::Rng;

use super::dataset::Dataset;
use super::derive_seed;

const SHUFFLE_PURPOSE: u64 = 1;
const AUGMENTATION_PURPOSE: u64 = 2;

/// A permutation of `0..n`, different for each epoch and fixed by `(seed, epoch)`.
pub fn shuffled_indices(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    Rng::new(derive_seed(seed, SHUFFLE_PURPOSE, epoch)).shuffle(&mut indices);
    indices
}

/// The images at `indices` as a `[B, channels, height, width]` tensor, channel `c`'s bytes
/// mapped to `(x / 255 − mean_c) / std_c` by the dataset's spec.
pub fn to_normalized_f32(dataset: &Dataset, indices: &[usize]) -> Vec<f32> {
    let spec = dataset.spec();
    // x · (1 / (255 std)) − mean / std: for the study's mean and std of 0.5 this is exactly
    // x · (2 / 255) − 1, in the same f32 operations, so its batches keep their bits.
    let tables: Vec<[f32; 256]> = spec
        .mean
        .iter()
        .zip(&spec.std)
        .map(|(&mean, &std)| {
            let (scale, offset) = (1.0 / (255.0 * std), -mean / std);
            std::array::from_fn(|x| x as f32 * scale + offset)
        })
        .collect();
    let plane = spec.height * spec.width;
    let mut batch = Vec::with_capacity(indices.len() * dataset.image_len());
    for &index in indices {
        for (bytes, table) in dataset.image(index).chunks_exact(plane).zip(&tables) {
            batch.extend(bytes.iter().map(|&x| table[x as usize]));
        }
    }
    batch
}

/// The labels at `indices`, as the loss kernels take them.
pub fn labels_u32(dataset: &Dataset, indices: &[usize]) -> Vec<u32> {
    indices
        .iter()
        .map(|&index| u32::from(dataset.labels()[index]))
        .collect()
}

/// The seed of training step `step`'s augmentation in a run seeded `seed`.
pub fn augmentation_seed(seed: u64, step: u64) -> u64 {
    derive_seed(seed, AUGMENTATION_PURPOSE, step)
}
