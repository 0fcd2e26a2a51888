//! Finding faces in a photo and cutting each out for the classifier.
//!
//! The detector is SeetaFace's funnel-structured cascade (the `rustface` crate, pure Rust) with
//! its frontal-face model embedded in the binary, so detection needs no files at run time.

use image::imageops::{self, FilterType};
use image::{DynamicImage, GenericImageView, GrayImage};
use rustface::{Detector, ImageData};

/// SeetaFace's frontal face model, as the `rustface` crate ships it (BSD-2-Clause, see
/// `assets/seeta_fd_frontal_v1.0.LICENSE`).
const MODEL: &[u8] = include_bytes!("../../assets/seeta_fd_frontal_v1.0.bin");

/// How much `fer predict` grows a found face's box on every side before cropping, as a share
/// of its size: the detector's box is tight around the eyes and mouth, training crops are not.
pub const DEFAULT_MARGIN: f32 = 0.1;

/// The smallest face the cascade finds, in pixels: its window. (rustface takes a smaller
/// `min_face_size` but ignores it: it never enlarges the image.)
pub const SMALLEST_FACE: u32 = 40;

/// The smallest face `fer predict` looks for by default: any the cascade can find, since a
/// group photo holds small faces.
pub const PREDICT_MIN_FACE: u32 = SMALLEST_FACE;

/// The smallest face `fer live` looks for by default. The frame is searched at
/// [`SMALLEST_FACE`] / 80 of its size, a quarter of the pixels, which the cascade's time
/// follows; a face at a VGA webcam from arm's length to two metres away is 80 to 250 pixels.
pub const LIVE_MIN_FACE: u32 = 80;

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
}

/// SeetaFace's detector with the settings of rustface's example (score above 2, pyramid steps
/// of 0.8, windows every 4 pixels), searching each image at the scale where the smallest face
/// asked for fills the cascade's window.
pub struct FaceDetector {
    detector: Box<dyn Detector>,
    /// The size the image is searched at, as a share of its own (at most 1).
    scale: f32,
}

impl FaceDetector {
    /// The detector on the embedded model, for faces of at least `min_face` pixels (at least
    /// [`SMALLEST_FACE`]).
    pub fn new(min_face: u32) -> std::io::Result<Self> {
        let model = rustface::read_model(MODEL)?;
        let mut detector = rustface::create_detector_with_model(model);
        detector.set_score_thresh(2.0);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        let scale = SMALLEST_FACE as f32 / min_face.max(SMALLEST_FACE) as f32;
        Ok(FaceDetector { detector, scale })
    }

    /// The faces in `image`, largest first.
    pub fn detect(&mut self, image: &DynamicImage) -> Vec<FaceBox> {
        let (width, height) = image.dimensions();
        let mut grey: GrayImage = image.to_luma8();
        if self.scale < 1.0 {
            let shrink = |side: u32| ((side as f32 * self.scale).round() as u32).max(1);
            grey = imageops::resize(&grey, shrink(width), shrink(height), FilterType::Triangle);
        }
        // rustface panics on an image without pixels, and finds no face under its window.
        if grey.width() < SMALLEST_FACE || grey.height() < SMALLEST_FACE {
            return Vec::new();
        }
        // Boxes back in the image's pixels, from the shrunk image's exact ratio per axis.
        let (sx, sy) = (
            width as f32 / grey.width() as f32,
            height as f32 / grey.height() as f32,
        );
        let mut faces: Vec<FaceBox> = self
            .detector
            .detect(&ImageData::new(grey.as_raw(), grey.width(), grey.height()))
            .iter()
            .filter_map(|face| inside(face.bbox(), (sx, sy), width, height))
            .collect();
        faces.sort_by_key(|face| std::cmp::Reverse(face.width * face.height));
        faces
    }
}

/// The part of a detector's rectangle (which may reach past the edges), scaled by `(sx, sy)`
/// to the image's pixels, inside the image, if any.
fn inside(
    rect: &rustface::Rectangle,
    (sx, sy): (f32, f32),
    width: u32,
    height: u32,
) -> Option<FaceBox> {
    let clamp = |value: f32, limit: u32| value.round().clamp(0.0, limit as f32) as u32;
    let (left, top) = (rect.x() as f32 * sx, rect.y() as f32 * sy);
    let x = clamp(left, width);
    let y = clamp(top, height);
    let right = clamp(left + rect.width() as f32 * sx, width);
    let bottom = clamp(top + rect.height() as f32 * sy, height);
    (right > x && bottom > y).then_some(FaceBox {
        x,
        y,
        width: right - x,
        height: bottom - y,
    })
}
