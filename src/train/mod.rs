//! Training: the loop, the loss, optimizers, checkpoints.

pub mod checkpoint;
pub mod loss;
pub mod optimizer;
pub mod runner;
pub mod session;
