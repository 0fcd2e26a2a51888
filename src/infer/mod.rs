//! Using a trained model: a self-describing checkpoint opened as a classifier, faces found in
//! photos and cropped to the model's input, images annotated with what it saw, and test-time
//! augmentation.

pub mod annotate;
pub mod classifier;
pub mod faces;
pub mod tta;

pub use classifier::{Classifier, InferError};
