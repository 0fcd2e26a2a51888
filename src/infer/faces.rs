//! Finding faces in a photo and cutting each out for the classifier.
//!
//! The detector is SeetaFace's funnel-structured cascade (the `rustface` crate, pure Rust) with
//! its frontal-face model embedded in the binary, so detection needs no files at run time.

use image::{DynamicImage, GenericImageView, GrayImage};
use rustface::{Detector, ImageData};

use crate::data::{to_spec, ImageSpec};

/// SeetaFace's frontal face model, as the `rustface` crate ships it (BSD-2-Clause, see
/// `assets/seeta_fd_frontal_v1.0.LICENSE`).
const MODEL: &[u8] = include_bytes!("../../assets/seeta_fd_frontal_v1.0.bin");

/// How much `fer predict` grows a found face's box on every side before cropping, as a share
/// of its size: the detector's box is tight around the eyes and mouth, training crops are not.
pub const DEFAULT_MARGIN: f32 = 0.1;

/// The smallest face the cascade looks for, in pixels (its window; rustface refuses less).
const MIN_FACE: u32 = 20;

/// A face's box in the image's pixels, inside the image.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl FaceBox {
    /// The whole of `image`, for a photo that is already one face.
    pub fn whole(image: &DynamicImage) -> Self {
        FaceBox {
            x: 0,
            y: 0,
            width: image.width(),
            height: image.height(),
        }
    }

    /// This box grown by `margin` of its size on every side, kept inside `width` × `height`.
    pub fn with_margin(self, margin: f32, width: u32, height: u32) -> FaceBox {
        let grow_x = (self.width as f32 * margin).round() as u32;
        let grow_y = (self.height as f32 * margin).round() as u32;
        let x = self.x.saturating_sub(grow_x);
        let y = self.y.saturating_sub(grow_y);
        let right = (self.x + self.width + grow_x).min(width);
        let bottom = (self.y + self.height + grow_y).min(height);
        FaceBox {
            x,
            y,
            width: right - x,
            height: bottom - y,
        }
    }

    /// The part of `image` inside this box.
    pub fn crop(&self, image: &DynamicImage) -> DynamicImage {
        image.crop_imm(self.x, self.y, self.width, self.height)
    }

    /// This face of `image` as a classifier of input `spec` reads it: grown by `margin` (see
    /// [`FaceBox::with_margin`]), cropped and brought to the spec as training brought its
    /// images.
    pub fn to_input(&self, image: &DynamicImage, margin: f32, spec: &ImageSpec) -> Vec<u8> {
        let face = self.with_margin(margin, image.width(), image.height());
        to_spec(face.crop(image), spec).0
    }
}

/// SeetaFace's detector with the settings of rustface's example: faces from 20 pixels, score
/// above 2, pyramid steps of 0.8, windows every 4 pixels.
pub struct FaceDetector {
    detector: Box<dyn Detector>,
}

impl FaceDetector {
    /// The detector on the embedded model.
    pub fn new() -> std::io::Result<Self> {
        let model = rustface::read_model(MODEL)?;
        let mut detector = rustface::create_detector_with_model(model);
        detector.set_min_face_size(MIN_FACE);
        detector.set_score_thresh(2.0);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        Ok(FaceDetector { detector })
    }

    /// The faces in `image`, largest first.
    pub fn detect(&mut self, image: &DynamicImage) -> Vec<FaceBox> {
        let (width, height) = image.dimensions();
        // rustface panics on an image without pixels.
        if width == 0 || height == 0 {
            return Vec::new();
        }
        let grey: GrayImage = image.to_luma8();
        let mut faces: Vec<FaceBox> = self
            .detector
            .detect(&ImageData::new(grey.as_raw(), width, height))
            .iter()
            .filter_map(|face| inside(face.bbox(), width, height))
            .collect();
        faces.sort_by_key(|face| std::cmp::Reverse(face.width * face.height));
        faces
    }
}

/// The part of a detector's rectangle (which may reach past the edges) inside the image, if any.
fn inside(rect: &rustface::Rectangle, width: u32, height: u32) -> Option<FaceBox> {
    let clamp = |value: i64, limit: u32| value.clamp(0, i64::from(limit)) as u32;
    let (left, top) = (i64::from(rect.x()), i64::from(rect.y()));
    let x = clamp(left, width);
    let y = clamp(top, height);
    let right = clamp(left + i64::from(rect.width()), width);
    let bottom = clamp(top + i64::from(rect.height()), height);
    (right > x && bottom > y).then_some(FaceBox {
        x,
        y,
        width: right - x,
        height: bottom - y,
    })
}
