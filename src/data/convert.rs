//! Bringing a decoded image to an [`ImageSpec`]'s channels and size, as the PyTorch and Keras
//! pipelines of the studies read images: colour becomes grey by PIL's `convert("L")`, grey
//! becomes three equal channels, and a size that differs is resized with a bilinear filter.

use image::imageops::{self, FilterType};
use image::{DynamicImage, GrayImage, ImageBuffer, Pixel, RgbImage};

use super::image_spec::ImageSpec;

/// `image` as `spec`'s `[channels, height, width]` bytes (channel planes, each row-major), and
/// whether it had to be resized. `spec` is one that [`ImageSpec::check`] accepts.
pub fn to_spec(image: DynamicImage, spec: &ImageSpec) -> (Vec<u8>, bool) {
    let size = (spec.width as u32, spec.height as u32);
    let resized = (image.width(), image.height()) != size;
    let bytes = if spec.channels == 1 {
        fit(luminance(image), size).into_raw()
    } else {
        planes(&fit(image.into_rgb8(), size))
    };
    (bytes, resized)
}

/// PIL's "L" conversion: ITU-R 601-2 luma, L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16, the
/// weights 0.299, 0.587, 0.114 in 16-bit fixed point with rounding. Grey images stay as they
/// are (alpha dropped).
fn luminance(image: DynamicImage) -> GrayImage {
    if !image.color().has_color() {
        return image.into_luma8();
    }
    let rgb = image.into_rgb8();
    let mut grey = GrayImage::new(rgb.width(), rgb.height());
    for (out, pixel) in grey.pixels_mut().zip(rgb.pixels()) {
        let [r, g, b] = pixel.0.map(u32::from);
        out.0[0] = ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as u8;
    }
    grey
}

/// Resizes to `size` with a triangle (bilinear) filter, widened when shrinking as PIL's
/// bilinear resize (torchvision's `Resize`) does; an image already that size is kept.
fn fit<P>(image: ImageBuffer<P, Vec<u8>>, (width, height): (u32, u32)) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8> + 'static,
{
    if image.dimensions() == (width, height) {
        return image;
    }
    imageops::resize(&image, width, height, FilterType::Triangle)
}

/// Interleaved RGB as three planes: all the reds, then the greens, then the blues.
fn planes(rgb: &RgbImage) -> Vec<u8> {
    let pixels = rgb.as_raw();
    (0..3)
        .flat_map(|channel| pixels.iter().skip(channel).step_by(3).copied())
        .collect()
}
