//! What a model reads: images of a given size and channel count, normalised per channel.

use serde::{Deserialize, Serialize};

/// One sample as a model takes it: `channels` × `height` × `width`, each channel's values
/// (x/255 − mean) / std.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageSpec {
    /// 1 (grey) or 3 (RGB; a grey image becomes three equal channels).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Per channel, of x/255.
    pub mean: Vec<f32>,
    /// Per channel, of x/255.
    pub std: Vec<f32>,
}

impl ImageSpec {
    /// The four-model study's input: 48×48 grey, (x/255 − 0.5)/0.5.
    pub fn study_grey() -> Self {
        ImageSpec {
            channels: 1,
            height: 48,
            width: 48,
            mean: vec![0.5],
            std: vec![0.5],
        }
    }

    /// An RGB input of this size with ImageNet's normalisation (the six-architecture study).
    pub fn imagenet_rgb(height: usize, width: usize) -> Self {
        ImageSpec {
            channels: 3,
            height,
            width,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// One sample's shape, [channels, height, width].
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Why this spec cannot describe an image, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if !matches!(self.channels, 1 | 3) {
            return Err(format!("{} channels: images have 1 or 3", self.channels));
        }
        if self.height == 0 || self.width == 0 {
            return Err(format!("a {}×{} image is empty", self.height, self.width));
        }
        if self.mean.len() != self.channels || self.std.len() != self.channels {
            return Err(format!(
                "mean and std need one value per channel ({}), not {} and {}",
                self.channels,
                self.mean.len(),
                self.std.len()
            ));
        }
        if let Some(std) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("a std of {std} cannot divide"));
        }
        if let Some(mean) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(format!("a mean of {mean} is not a number to subtract"));
        }
        Ok(())
    }
}
