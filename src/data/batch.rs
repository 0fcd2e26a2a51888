//! Turning a dataset into training batches: epoch shuffles, normalized `f32` tensors, labels,
//! and random horizontal flips. Every function is pure: the same seed gives the same result.

use crate::rng::Rng;

use super::classes::{IMAGE_PIXELS, IMAGE_SIDE};
use super::dataset::Dataset;
use super::derive_seed;

const SHUFFLE_PURPOSE: u64 = 1;
const FLIP_PURPOSE: u64 = 2;

/// A permutation of `0..n`, different for each epoch and fixed by `(seed, epoch)`.
pub fn shuffled_indices(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut indices: Vec<usize> = (0..n).collect();
    Rng::new(derive_seed(seed, SHUFFLE_PURPOSE, epoch)).shuffle(&mut indices);
    indices
}

/// The faces at `indices` as a `[B, 1, 48, 48]` tensor with pixels mapped to
/// `(x / 255 − 0.5) / 0.5`, i.e. into [−1, 1].
pub fn to_normalized_f32(dataset: &Dataset, indices: &[usize]) -> Vec<f32> {
    let mut batch = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &index in indices {
        batch.extend(
            dataset
                .image(index)
                .iter()
                .map(|&pixel| pixel as f32 * (2.0 / 255.0) - 1.0),
        );
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

/// Mirrors each 48 × 48 image of a `[B, 1, 48, 48]` batch left to right with probability ½,
/// chosen by `(seed, step)`. Faces are nearly symmetric, so a mirrored face keeps its label.
pub fn flip_horizontally_at_random(batch: &[f32], seed: u64, step: u64) -> Vec<f32> {
    let mut rng = Rng::new(derive_seed(seed, FLIP_PURPOSE, step));
    let mut flipped = batch.to_vec();
    for image in flipped.chunks_exact_mut(IMAGE_PIXELS) {
        if rng.next_u64() & 1 == 1 {
            for row in image.chunks_exact_mut(IMAGE_SIDE) {
                row.reverse();
            }
        }
    }
    flipped
}
