//! Using a trained model: a self-describing checkpoint opened as a classifier, faces found in
//! photos and cropped to the model's input, images annotated with what it saw, and test-time
//! augmentation; and the live loop over a video, a folder of frames or a camera.

pub mod annotate;
pub mod classifier;
pub mod faces;
pub mod frames;
pub mod live;
pub mod tta;
pub mod window;

pub use classifier::{Classifier, InferError};
