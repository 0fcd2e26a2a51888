//! Training: the loop, augmentation, the loss, optimizers, schedules, early stopping,
//! checkpoints, recipes.

pub mod augmentation;
pub mod checkpoint;
pub mod early_stopping;
pub mod loss;
pub mod optimizer;
mod option_text;
pub mod recipe;
pub mod resume;
pub mod runner;
pub mod schedule;
pub mod session;

pub use option_text::accepted_in_f32;
