//! Test-time augmentation: a model's class probabilities averaged over views of each image —
//! the image and its mirror image (`flip`), or ten crops (`tencrop`: the four corners and the
//! centre, and their mirror images, as torchvision's `TenCrop`). The views are cut from the
//! `u8` images on the CPU: evaluation is not the hot path.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::data::{Dataset, ImageSpec};
use crate::train::runner::Totals;

/// The side of the images ten-crop reads when `@SIZE` is not given: FER2013's faces.
const DEFAULT_TENCROP_IMAGE: usize = 48;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tta {
    /// The image and its mirror image.
    Flip,
    /// Ten `crop`×`crop` crops of images read at `image`×`image`; the model reads the crops.
    TenCrop { crop: usize, image: usize },
}

impl FromStr for Tta {
    type Err = String;

    /// `flip`, or `tencrop:CROP[@SIZE]` (images read at SIZE, 48 unless given).
    fn from_str(text: &str) -> Result<Self, String> {
        let refused =
            || format!("`{text}` is not a test-time augmentation: use flip or tencrop:CROP[@SIZE]");
        let text = text.trim();
        if text == "flip" {
            return Ok(Tta::Flip);
        }
        let sizes = text.strip_prefix("tencrop:").ok_or_else(refused)?;
        let (crop, image) = sizes
            .split_once('@')
            .map_or((sizes, None), |(crop, image)| (crop, Some(image)));
        let side = |text: &str| text.trim().parse::<usize>().ok().filter(|&n| n > 0);
        let crop = side(crop).ok_or_else(refused)?;
        let image = match image {
            Some(image) => side(image).ok_or_else(refused)?,
            None => DEFAULT_TENCROP_IMAGE,
        };
        if crop >= image {
            return Err(format!(
                "tencrop:{crop}@{image}: the crop must be smaller than the {image}×{image} image"
            ));
        }
        Ok(Tta::TenCrop { crop, image })
    }
}

impl fmt::Display for Tta {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Tta::Flip => write!(f, "flip"),
            Tta::TenCrop { crop, image } => write!(f, "tencrop:{crop}@{image}"),
        }
    }
}

/// What `--tta` (or a recipe's `tta`) asks for: a [`Tta`], or `tencrop` alone: the ten crops
/// of images read at the load size of a checkpoint trained on random crops (`fer train
/// --load-size`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TtaChoice {
    Given(Tta),
    TenCropAtLoadSize,
}

impl FromStr for TtaChoice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "tencrop" => Ok(TtaChoice::TenCropAtLoadSize),
            _ => text.parse().map(TtaChoice::Given),
        }
    }
}

impl fmt::Display for TtaChoice {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            TtaChoice::Given(tta) => tta.fmt(f),
            TtaChoice::TenCropAtLoadSize => write!(f, "tencrop"),
        }
    }
}

impl TtaChoice {
    /// The [`Tta`] for a model reading `input` that trained at `load_size`, named `checkpoint`,
    /// or why there is none, as a sentence.
    pub fn resolve(
        self,
        input: &ImageSpec,
        load_size: Option<usize>,
        checkpoint: &Path,
    ) -> Result<Tta, String> {
        match (self, load_size) {
            (TtaChoice::Given(tta), _) => Ok(tta),
            (TtaChoice::TenCropAtLoadSize, Some(image)) => Ok(Tta::TenCrop {
                crop: input.height,
                image,
            }),
            (TtaChoice::TenCropAtLoadSize, None) => Err(format!(
                "--tta tencrop takes ten crops of the images a model was trained on crops of, \
                 but checkpoint {} was trained on whole {}×{} images: give tencrop:CROP@SIZE",
                checkpoint.display(),
                input.height,
                input.width
            )),
        }
    }
}

impl Tta {
    /// The spec images are read at for a model reading `input`: the input itself for `flip`;
    /// for `tencrop`, the larger image, which needs a model whose input is the crop.
    pub fn image_spec(&self, input: &ImageSpec) -> Result<ImageSpec, String> {
        match *self {
            Tta::Flip => Ok(input.clone()),
            Tta::TenCrop { crop, image } => {
                if (input.height, input.width) != (crop, crop) {
                    return Err(format!(
                        "--tta {self} feeds the model {crop}×{crop} crops, but it reads {}×{} \
                         images",
                        input.height, input.width
                    ));
                }
                Ok(ImageSpec {
                    height: image,
                    width: image,
                    ..input.clone()
                })
            }
        }
    }

    /// The views of `data` (read at [`Tta::image_spec`]) the model classifies, each at the
    /// model's `input`.
    pub fn views(&self, data: &Dataset, input: &ImageSpec) -> Vec<Dataset> {
        let view = |cut: &dyn Fn(&[u8]) -> Vec<u8>| {
            let images = (0..data.len()).flat_map(|i| cut(data.image(i))).collect();
            Dataset::new(
                input.clone(),
                data.class_names().to_vec(),
                images,
                data.labels().to_vec(),
            )
        };
        let shape = data.spec().shape();
        match *self {
            Tta::Flip => vec![data.clone(), view(&|image| mirror(image, shape))],
            Tta::TenCrop { crop, image } => {
                let far = image - crop;
                // torchvision rounds the centre's offset half to even; the same for even margins.
                let corners = [(0, 0), (0, far), (far, 0), (far, far), (far / 2, far / 2)];
                corners
                    .iter()
                    .flat_map(|&(top, left)| {
                        let cut = move |image: &[u8]| self::crop(image, shape, top, left, crop);
                        [
                            view(&cut),
                            view(&|image| mirror(&cut(image), [shape[0], crop, crop])),
                        ]
                    })
                    .collect()
            }
        }
    }
}

/// `image` (`[channels, height, width]` bytes) mirrored left to right.
pub fn mirror(image: &[u8], [_, _, width]: [usize; 3]) -> Vec<u8> {
    image
        .chunks_exact(width)
        .flat_map(|row| row.iter().rev().copied())
        .collect()
}

/// The `size`×`size` square of `image` whose top-left pixel is (`top`, `left`), every channel.
pub fn crop(
    image: &[u8],
    [channels, height, width]: [usize; 3],
    top: usize,
    left: usize,
    size: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(channels * size * size);
    for plane in image.chunks_exact(height * width) {
        for row in plane.chunks_exact(width).skip(top).take(size) {
            out.extend_from_slice(&row[left..left + size]);
        }
    }
    out
}

/// The spec images are read at for a model reading `input`: `input` at `load_size` a side.
pub fn read_at(input: &ImageSpec, load_size: Option<usize>) -> ImageSpec {
    match load_size {
        Some(side) => ImageSpec {
            height: side,
            width: side,
            ..input.clone()
        },
        None => input.clone(),
    }
}

/// The load size [`read_at`] read `read` at for a model reading `input`: `None` where it read
/// the input itself.
pub fn load_size_of(read: &ImageSpec, input: &ImageSpec) -> Option<usize> {
    (read != input).then_some(read.height)
}

/// `image` (square, of spec `read`) cut to `input`'s side about its centre: ten-crop's centre
/// view, and what a model trained on random crops of such images is validated and evaluated on.
pub fn centre_of(image: &[u8], read: &ImageSpec, input: &ImageSpec) -> Vec<u8> {
    let margin = (read.height - input.height) / 2;
    crop(image, read.shape(), margin, margin, input.height)
}

/// Each image's probabilities averaged over the views (one `[images][classes]` table per view).
pub fn average(views: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let Some(first) = views.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|image| {
            (0..first[image].len())
                .map(|class| {
                    let sum: f64 = views.iter().map(|view| view[image][class] as f64).sum();
                    (sum / views.len() as f64) as f32
                })
                .collect()
        })
        .collect()
}

/// Cross-entropy and accuracy of averaged probabilities against `labels`.
pub fn totals(probabilities: &[Vec<f32>], labels: &[u8]) -> Totals {
    let count = labels.len().max(1) as f64;
    let loss: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(row, &label)| -(row[label as usize] as f64).max(f64::MIN_POSITIVE).ln())
        .sum();
    let correct = probabilities
        .iter()
        .zip(labels)
        .filter(|(row, &label)| crate::train::session::argmax(row) == label as usize)
        .count();
    Totals {
        loss: loss / count,
        accuracy: correct as f64 / count,
    }
}
