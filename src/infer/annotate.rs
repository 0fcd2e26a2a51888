//! A photo with what the classifier saw drawn on it: per face a box, the class and its
//! probability, and a bar as long as the box for that probability.

use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use plotters::prelude::*;

use crate::report::plot::ensure_font_registered;
use crate::report::PlotError;

use super::faces::FaceBox;

/// What to draw for one face.
pub struct Label<'a> {
    pub face: FaceBox,
    pub class: &'a str,
    pub probability: f32,
}

/// Images smaller than this on their short side are enlarged first, so labels stay legible on
/// a 48×48 face.
const MIN_SIDE: u32 = 256;
const BOX_COLOUR: RGBColor = RGBColor(0, 220, 80);
const BAR_BACKGROUND: RGBColor = RGBColor(40, 40, 40);

/// `image` in RGB with each label drawn on it.
pub fn annotate(image: &DynamicImage, labels: &[Label]) -> Result<RgbImage, PlotError> {
    ensure_font_registered()?;
    let mut rgb = image.to_rgb8();
    let short = rgb.width().min(rgb.height()).max(1);
    let scale = if short < MIN_SIDE {
        MIN_SIDE.div_ceil(short)
    } else {
        1
    };
    if scale > 1 {
        rgb = imageops::resize(
            &rgb,
            rgb.width() * scale,
            rgb.height() * scale,
            FilterType::Nearest,
        );
    }
    let size = rgb.dimensions();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        for label in labels {
            draw_label(&root, label, scale as i32).map_err(|reason| PlotError::Draw {
                plot: "annotated image",
                reason,
            })?;
        }
        root.present().map_err(|error| PlotError::Draw {
            plot: "annotated image",
            reason: error.to_string(),
        })?;
    }
    Ok(rgb)
}

/// `text` (such as the frame rate) written in the top-left corner of `image`, white on dark.
pub fn caption(image: &mut RgbImage, text: &str) -> Result<(), PlotError> {
    ensure_font_registered()?;
    let size = image.dimensions();
    let font_size = (size.0.min(size.1) as i32 / 20).clamp(12, 32);
    let fail = |reason: String| PlotError::Draw {
        plot: "caption",
        reason,
    };
    let root = BitMapBackend::with_buffer(image, size).into_drawing_area();
    let font = ("sans-serif", font_size).into_font().color(&WHITE);
    let (width, height) = root
        .estimate_text_size(text, &font)
        .map_err(|error| fail(error.to_string()))?;
    root.draw(&Rectangle::new(
        [(0, 0), (width as i32 + 8, height as i32 + 6)],
        BAR_BACKGROUND.filled(),
    ))
    .and_then(|()| root.draw(&Text::new(text, (4, 3), font)))
    .and_then(|()| root.present())
    .map_err(|error| fail(error.to_string()))
}

fn draw_label<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    label: &Label,
    scale: i32,
) -> Result<(), String> {
    let fail = |error: DrawingAreaErrorKind<DB::ErrorType>| error.to_string();
    let face = label.face;
    let (x0, y0) = (face.x as i32 * scale, face.y as i32 * scale);
    let (x1, y1) = (
        (face.x + face.width) as i32 * scale,
        (face.y + face.height) as i32 * scale,
    );
    let side = (x1 - x0).min(y1 - y0);
    let stroke = (side / 40).max(2) as u32;
    root.draw(&Rectangle::new(
        [(x0, y0), (x1, y1)],
        BOX_COLOUR.stroke_width(stroke),
    ))
    .map_err(fail)?;

    // The label and bar sit above the box, or inside its top when the box touches the top.
    let font_size = (side / 6).clamp(12, 48);
    let font = ("sans-serif", font_size).into_font().color(&BLACK);
    let text = format!("{} {:.0}%", label.class, 100.0 * label.probability);
    let (text_width, text_height) = root.estimate_text_size(&text, &font).map_err(fail)?;
    let bar_height = (font_size / 3).max(4);
    let block = text_height as i32 + bar_height + 4;
    let top = if y0 >= block { y0 - block } else { y0 };
    let width = (text_width as i32 + 4).max(x1 - x0);
    root.draw(&Rectangle::new(
        [(x0, top), (x0 + width, top + text_height as i32 + 2)],
        BOX_COLOUR.filled(),
    ))
    .map_err(fail)?;
    root.draw(&Text::new(text, (x0 + 2, top + 1), font))
        .map_err(fail)?;
    let bar_top = top + text_height as i32 + 2;
    let filled = (width as f32 * label.probability.clamp(0.0, 1.0)).round() as i32;
    root.draw(&Rectangle::new(
        [(x0, bar_top), (x0 + width, bar_top + bar_height)],
        BAR_BACKGROUND.filled(),
    ))
    .map_err(fail)?;
    root.draw(&Rectangle::new(
        [(x0, bar_top), (x0 + filled, bar_top + bar_height)],
        BOX_COLOUR.filled(),
    ))
    .map_err(fail)?;
    Ok(())
}
