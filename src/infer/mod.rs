//! Using a trained model: a self-describing checkpoint opened as a classifier, faces found in
//! photos and cropped to the model's input, and images annotated with what it saw.

pub mod annotate;
pub mod classifier;
pub mod faces;

pub use classifier::{Classifier, InferError};
