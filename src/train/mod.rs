//! Training: the loop, optimizers, checkpoints.

pub mod checkpoint;
