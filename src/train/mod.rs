//! Training: the loop, optimizers, schedules, early stopping, checkpoints.

pub mod checkpoint;
pub mod early_stopping;
pub mod optimizer;
mod option_text;
pub mod runner;
pub mod schedule;
pub mod session;
