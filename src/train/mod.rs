//! Training: the loop, optimizers, checkpoints.

pub mod checkpoint;
pub mod optimizer;
pub mod runner;
pub mod session;
