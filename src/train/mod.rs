//! Training: the loop, augmentation, optimizers, checkpoints.

pub mod augmentation;
pub mod checkpoint;
pub mod optimizer;
pub mod runner;
pub mod session;
