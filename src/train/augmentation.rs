//! The augmentation a training run applies to every batch, on the GPU.
//!
//! [`Augmentation`] is what a person asks for, with Keras `ImageDataGenerator`-like names
//! (`--augment rotate=20,shift=0.2,shear=0.2,zoom=0.2,flip,crop=4,erase=0.5`); it is carried in
//! the run's settings JSON. [`Augmenter`] turns it into the `kernels::augment` dispatches that
//! run on the uploaded batch at the start of each training step, in this order: a random crop to
//! the model's input of images read larger (`fer train --load-size`), random resized crop,
//! random crop with padding, random affine with its flip, colour jitter, random erasing.
//! Each step draws every image's parameters on the host from Philox, seeded by the run's seed
//! and the step, so the same seed gives the same images.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::batch::augmentation_seed;
use crate::data::ImageSpec;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::kernels::augment::{
    color_jitter, erase, erase_words, sample, AugmentError, BatchShape, ColorJitter, Fill,
    JitterDraw, Normalisation, RandomAffine, RandomCrop, RandomErasing, RandomResizedCrop,
    Transform,
};
use crate::reference::augment as twin;
use crate::rng::Rng;

/// How pixels from outside the image are filled in by the affine transform and the crop's
/// padding (Keras' `fill_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillMode {
    /// The nearest edge pixel (`a a | a b c d | d d`).
    #[default]
    Nearest,
    /// Black (Keras' `cval=0`): pixel value 0 in every channel.
    Constant,
    /// Mirrored with the edge pixel repeated (`b a | a b c d | d c`).
    Reflect,
}

/// What each training batch goes through; zero turns an augmentation off, and the default is
/// none at all. Keras' `ImageDataGenerator` names and units for the affine part, torchvision's
/// for the rest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augmentation {
    /// Rotation by U(−rotate, rotate) degrees (`rotation_range`).
    pub rotate: f64,
    /// Translation by up to this fraction of the width and of the height
    /// (`width_shift_range`, `height_shift_range`), in whole pixels.
    pub shift: f64,
    /// Shear by U(−shear, shear) degrees (`shear_range`).
    pub shear: f64,
    /// Zoom as `zoom_range`: the image scaled by U(1/(1 + zoom), 1/(1 − zoom)) (Keras divides by
    /// a zoom from U(1 − zoom, 1 + zoom), one per axis; here one for both).
    pub zoom: f64,
    /// The probability of a horizontal flip (`horizontal_flip` flips half the images).
    pub flip: f64,
    /// How the affine transform and the crop's padding fill the border.
    pub fill: FillMode,
    /// Pad each side by this many pixels, then crop the image's size at random.
    pub crop: usize,
    /// A random resized crop of at least this fraction of the area (aspect ratio 3/4 to 4/3),
    /// resized back to the image's size.
    pub resized_crop: f64,
    /// Brightness factor in U(1 − b, 1 + b), likewise contrast and saturation.
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
    /// Hue turned by U(−hue, hue) of the colour circle.
    pub hue: f64,
    /// The probability of erasing a random box of 2% to 33% of the image (aspect ratio 0.3 to
    /// 3.3) to the dataset's mean colour, as torchvision's `RandomErasing` after `Normalize`.
    pub erase: f64,
}

/// What an erased box holds, in the normalised batch's units: the dataset's mean colour.
const ERASED: f32 = 0.0;

/// The `--augment` keys, in the order they apply.
const KEYS: &str = "resized_crop, crop, rotate, shift, shear, zoom, flip, fill, brightness, \
                    contrast, saturation, hue, erase";

impl Augmentation {
    /// Whether batches go through unchanged.
    pub fn is_none(&self) -> bool {
        let identity = Augmentation {
            fill: self.fill,
            ..Augmentation::default()
        };
        *self == identity
    }

    /// Why this augmentation cannot apply to images of `spec`, as a sentence.
    pub fn check(&self, spec: &ImageSpec) -> Result<(), String> {
        self.validate()?;
        if spec.channels == 1 && (self.saturation > 0.0 || self.hue > 0.0) {
            return Err("saturation and hue need RGB images, but the model reads grey ones".into());
        }
        Ok(())
    }

    fn uses_fill(&self) -> bool {
        self.affine().is_some() || self.crop > 0
    }

    fn resized_crop(&self, spec: &ImageSpec) -> Option<RandomResizedCrop> {
        (self.resized_crop > 0.0).then_some(RandomResizedCrop {
            height: spec.height,
            width: spec.width,
            scale: (self.resized_crop as f32, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        })
    }

    fn random_crop(&self, spec: &ImageSpec) -> Option<RandomCrop> {
        (self.crop > 0).then_some(RandomCrop {
            height: spec.height,
            width: spec.width,
            padding: self.crop,
        })
    }

    fn affine(&self) -> Option<RandomAffine> {
        let symmetric = |v: f64| (-v as f32, v as f32);
        let affine = RandomAffine {
            degrees: symmetric(self.rotate),
            translate: (self.shift as f32, self.shift as f32),
            scale: (
                (1.0 / (1.0 + self.zoom)) as f32,
                (1.0 / (1.0 - self.zoom)) as f32,
            ),
            shear_x: symmetric(self.shear),
            shear_y: (0.0, 0.0),
            flip: self.flip as f32,
        };
        (affine != RandomAffine::default()).then_some(affine)
    }

    fn jitter(&self) -> Option<ColorJitter> {
        let factor = |b: f64| (b > 0.0).then_some(((1.0 - b).max(0.0) as f32, (1.0 + b) as f32));
        let jitter = ColorJitter {
            brightness: factor(self.brightness),
            contrast: factor(self.contrast),
            saturation: factor(self.saturation),
            hue: (self.hue > 0.0).then_some((-self.hue as f32, self.hue as f32)),
        };
        (jitter != ColorJitter::default()).then_some(jitter)
    }

    fn erasing(&self) -> Option<RandomErasing> {
        (self.erase > 0.0).then_some(RandomErasing {
            p: self.erase as f32,
            scale: (0.02, 0.33),
            ratio: (0.3, 3.3),
            value: ERASED,
        })
    }

    /// The numeric keys in the order they apply: each with its value and the values it takes
    /// (0 is off).
    fn numbers(&self) -> [(&'static str, f64, (f64, f64)); 12] {
        [
            ("resized_crop", self.resized_crop, (0.0, 1.0)),
            ("crop", self.crop as f64, (0.0, 64.0)),
            ("rotate", self.rotate, (0.0, 180.0)),
            ("shift", self.shift, (0.0, 1.0)),
            ("shear", self.shear, (0.0, 89.0)),
            ("zoom", self.zoom, (0.0, 0.9)),
            ("flip", self.flip, (0.0, 1.0)),
            ("brightness", self.brightness, (0.0, 5.0)),
            ("contrast", self.contrast, (0.0, 5.0)),
            ("saturation", self.saturation, (0.0, 5.0)),
            ("hue", self.hue, (0.0, 0.5)),
            ("erase", self.erase, (0.0, 1.0)),
        ]
    }

    /// The first value out of its range, as a sentence naming it (parsed and deserialised
    /// augmentations alike pass here).
    pub fn validate(&self) -> Result<(), String> {
        for (key, value, (low, high)) in self.numbers() {
            // NaN is in no range.
            if !(low..=high).contains(&value) {
                return Err(format!(
                    "`{key}={value}` is out of range: {key} takes a number from {low} to {high}"
                ));
            }
        }
        Ok(())
    }

    /// Sets `key` from `value` (`None` for a bare key), or says why not; ranges are
    /// [`Augmentation::validate`]'s.
    fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        if key == "fill" {
            self.fill = match value {
                Some("nearest") => FillMode::Nearest,
                Some("constant") => FillMode::Constant,
                Some("reflect") => FillMode::Reflect,
                _ => {
                    return Err(format!(
                        "`fill={}` is not a fill mode: nearest, constant or reflect",
                        value.unwrap_or("")
                    ))
                }
            };
            return Ok(());
        }
        if !self.numbers().iter().any(|(name, ..)| *name == key) {
            return Err(format!("unknown augmentation `{key}`: the keys are {KEYS}"));
        }
        let number = match (value, key) {
            (Some(text), _) => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{key}={text}` is not a number"))?,
            (None, "flip" | "erase") => 0.5,
            (None, _) => return Err(format!("`{key}` needs a value, as in {key}=4")),
        };
        match key {
            "resized_crop" => self.resized_crop = number,
            "crop" if number.fract() == 0.0 && number >= 0.0 => self.crop = number as usize,
            "crop" => return Err(format!("`crop={number}` is not a whole number of pixels")),
            "rotate" => self.rotate = number,
            "shift" => self.shift = number,
            "shear" => self.shear = number,
            "zoom" => self.zoom = number,
            "flip" => self.flip = number,
            "brightness" => self.brightness = number,
            "contrast" => self.contrast = number,
            "saturation" => self.saturation = number,
            "hue" => self.hue = number,
            // numbers() holds the key, and erase is the one left.
            _ => self.erase = number,
        }
        Ok(())
    }
}

/// Parses `rotate=20,shift=0.2,flip` (a bare `flip` or `erase` takes probability ½).
impl FromStr for Augmentation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut augmentation = Augmentation::default();
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let (key, value) = match item.split_once('=') {
                Some((key, value)) => (key.trim(), Some(value.trim())),
                None => (item, None),
            };
            augmentation.set(key, value)?;
        }
        augmentation.validate()?;
        Ok(augmentation)
    }
}

/// The `--augment` spelling, keys that are off left out (`none` for no augmentation).
impl fmt::Display for Augmentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = self
            .numbers()
            .iter()
            .filter(|(_, value, _)| *value != 0.0)
            .map(|(key, value, _)| format!("{key}={value}"))
            .collect();
        if self.fill != FillMode::Nearest && self.uses_fill() {
            items.push(format!("fill={:?}", self.fill).to_lowercase());
        }
        if items.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&items.join(","))
    }
}

/// Each channel's black (pixel value 0) in the normalised batch's units.
fn black(spec: &ImageSpec) -> Vec<f32> {
    spec.mean
        .iter()
        .zip(&spec.std)
        .map(|(&mean, &std)| -mean / std)
        .collect()
}

/// One step of the pipeline and the per-image parameters it reads.
enum Stage {
    Sample(Geometry),
    Jitter(ColorJitter),
    Erase(RandomErasing),
}

/// A geometric transform: every image's [`Transform`] for the sampling kernel.
enum Geometry {
    ResizedCrop(RandomResizedCrop),
    Crop(RandomCrop),
    Affine(RandomAffine),
}

impl Geometry {
    /// The height and width it turns images of `input`'s into.
    fn output(&self, input: (usize, usize)) -> (usize, usize) {
        match self {
            Geometry::ResizedCrop(crop) => (crop.height, crop.width),
            Geometry::Crop(crop) => (crop.height, crop.width),
            Geometry::Affine(_) => input,
        }
    }

    fn draw(&self, seed: u64, image: usize, height: usize, width: usize) -> Transform {
        match self {
            Geometry::ResizedCrop(crop) => crop.draw(seed, image, height, width),
            Geometry::Crop(crop) => crop.draw(seed, image, height, width),
            Geometry::Affine(affine) => affine.draw(seed, image, height, width),
        }
    }
}

/// An [`Augmentation`] made ready for batches of one image spec: the stages in order, and
/// their dispatches for each batch size.
pub struct Augmenter {
    /// The images as uploaded: the model's input, or larger where the first stage crops them.
    spec: ImageSpec,
    fill: Fill,
    stages: Vec<Stage>,
    by_size: HashMap<usize, BatchAugmentation>,
}

impl Augmenter {
    /// The stages for images read at `loaded` for a model reading `input`: first a random crop
    /// to `input`'s size where `loaded` is larger, then `augmentation`'s. `None` where they
    /// change nothing; an error where they cannot apply.
    pub fn new(
        augmentation: &Augmentation,
        loaded: &ImageSpec,
        input: &ImageSpec,
    ) -> Result<Option<Self>, String> {
        let crops = (loaded.height, loaded.width) != (input.height, input.width);
        if augmentation.is_none() && !crops {
            return Ok(None);
        }
        augmentation.check(input)?;
        let mut stages = Vec::new();
        if crops {
            let crop = RandomCrop {
                height: input.height,
                width: input.width,
                padding: 0,
            };
            crop.validate(loaded.height, loaded.width)?;
            stages.push(Stage::Sample(Geometry::Crop(crop)));
        }
        if let Some(crop) = augmentation.resized_crop(input) {
            stages.push(Stage::Sample(Geometry::ResizedCrop(crop)));
        }
        if let Some(crop) = augmentation.random_crop(input) {
            stages.push(Stage::Sample(Geometry::Crop(crop)));
        }
        if let Some(affine) = augmentation.affine() {
            stages.push(Stage::Sample(Geometry::Affine(affine)));
        }
        if let Some(jitter) = augmentation.jitter() {
            stages.push(Stage::Jitter(jitter));
        }
        if let Some(erasing) = augmentation.erasing() {
            stages.push(Stage::Erase(erasing));
        }
        let fill = match augmentation.fill {
            FillMode::Nearest => Fill::Nearest,
            FillMode::Constant => Fill::Constant(black(input)),
            FillMode::Reflect => Fill::Reflect,
        };
        Ok(Some(Augmenter {
            spec: loaded.clone(),
            fill,
            stages,
            by_size: HashMap::new(),
        }))
    }

    /// Builds the dispatches that augment a batch of `size` images in `input` (the model's
    /// input buffer), unless built already.
    pub fn prepare(
        &mut self,
        ctx: &GpuContext,
        size: usize,
        input: &GpuBuffer,
    ) -> Result<(), AugmentError> {
        if !self.by_size.contains_key(&size) {
            let batch = self.build(ctx, size, input)?;
            self.by_size.insert(size, batch);
        }
        Ok(())
    }

    /// The dispatches [`Augmenter::prepare`] built for `size` images (none before).
    pub fn dispatches(&self, size: usize) -> &[Dispatch] {
        self.by_size
            .get(&size)
            .map_or(&[], |batch| &batch.dispatches)
    }

    /// Uploads `images` (a normalised batch of `size` images for the model's `input`) where
    /// the dispatches read them, with the parameters of step `step` of a run seeded `seed`.
    pub fn write_batch(
        &mut self,
        ctx: &GpuContext,
        size: usize,
        input: &GpuBuffer,
        images: &[f32],
        (seed, step): (u64, u64),
    ) -> Result<(), AugmentError> {
        self.prepare(ctx, size, input)?;
        let batch = &self.by_size[&size];
        batch.upload.write(ctx, images);
        self.write_step(ctx, batch, seed, step);
        Ok(())
    }

    /// The stages' dispatches. The out-of-place ones write `input` and a scratch buffer in
    /// turn so that the last writes `input`; images are uploaded to the buffer the first stage
    /// reads: one of their own where they are larger than the model's input (the first stage
    /// crops them), else the other of the two.
    fn build(
        &self,
        ctx: &GpuContext,
        size: usize,
        input: &GpuBuffer,
    ) -> Result<BatchAugmentation, AugmentError> {
        let loaded = self.shape(size);
        let sizes = self.sizes();
        let (height, width) = sizes.last().map_or((loaded.height, loaded.width), |s| s[1]);
        let scratch = GpuBuffer::zeros(
            ctx,
            "augmentation scratch",
            loaded.resized(height, width).len(),
        );
        let out_of_place = self
            .stages
            .iter()
            .filter(|stage| !matches!(stage, Stage::Erase(_)))
            .count();
        // The out-of-place stage `written` writes `input` when the count after it is even.
        let target = |written: usize| {
            if (out_of_place - written) % 2 == 1 {
                input
            } else {
                &scratch
            }
        };
        let larger = (height, width) != (loaded.height, loaded.width);
        let own = larger.then(|| GpuBuffer::zeros(ctx, "augmentation upload", loaded.len()));
        let other = if out_of_place % 2 == 0 {
            input
        } else {
            &scratch
        };
        let mut from = own.as_ref().unwrap_or(other);
        let upload = from.view(0, loaded.len());
        let normalisation = self.normalisation();
        let mut written = 0;
        let mut parameters = Vec::with_capacity(self.stages.len());
        let mut dispatches = Vec::with_capacity(self.stages.len());
        for (stage, [(h, w), out]) in self.stages.iter().zip(sizes) {
            let shape = loaded.resized(h, w);
            let words = match stage {
                Stage::Sample(_) => Transform::WORDS,
                Stage::Jitter(_) => JitterDraw::WORDS,
                Stage::Erase(_) => 4,
            };
            let draws = GpuBuffer::zeros(ctx, "augmentation parameters", size * words);
            let to = target(written);
            dispatches.push(match stage {
                Stage::Sample(_) => sample(ctx, shape, out, &self.fill, &draws, from, to)?,
                Stage::Jitter(jitter) => {
                    color_jitter(ctx, shape, jitter, &normalisation, &draws, from, to)?
                }
                Stage::Erase(_) => erase(ctx, shape, ERASED, &draws, from)?,
            });
            if !matches!(stage, Stage::Erase(_)) {
                from = to;
                written += 1;
            }
            parameters.push(draws);
        }
        Ok(BatchAugmentation {
            shape: loaded,
            upload,
            parameters,
            dispatches,
        })
    }

    /// Each stage's input and output height and width: from the uploaded images' to the
    /// model's input.
    fn sizes(&self) -> Vec<[(usize, usize); 2]> {
        let mut size = (self.spec.height, self.spec.width);
        self.stages
            .iter()
            .map(|stage| {
                let input = size;
                if let Stage::Sample(geometry) = stage {
                    size = geometry.output(size);
                }
                [input, size]
            })
            .collect()
    }

    /// Writes the parameters of training step `step` of a run seeded `seed` for `batch`'s
    /// images.
    fn write_step(&self, ctx: &GpuContext, batch: &BatchAugmentation, seed: u64, step: u64) {
        let draws = self.draw(batch.shape.batch, seed, step);
        for (draw, buffer) in draws.iter().zip(&batch.parameters) {
            match draw {
                Draw::Transforms(transforms) => buffer.write(ctx, &Transform::words(transforms)),
                Draw::Jitter(jitters) => buffer.write(ctx, &JitterDraw::words(jitters)),
                Draw::Boxes(boxes) => buffer.write(ctx, &erase_words(boxes)),
            }
        }
    }

    /// Each stage's parameters for `images` images at step `step` of a run seeded `seed`:
    /// every stage draws from its own seed, derived from the two.
    fn draw(&self, images: usize, seed: u64, step: u64) -> Vec<Draw> {
        let mut seeds = Rng::new(augmentation_seed(seed, step));
        self.stages
            .iter()
            .zip(self.sizes())
            .map(|(stage, [(height, width), _])| {
                let seed = seeds.next_u64();
                match stage {
                    Stage::Sample(geometry) => Draw::Transforms(
                        (0..images)
                            .map(|image| geometry.draw(seed, image, height, width))
                            .collect(),
                    ),
                    Stage::Jitter(jitter) => {
                        Draw::Jitter((0..images).map(|image| jitter.draw(seed, image)).collect())
                    }
                    Stage::Erase(erasing) => Draw::Boxes(
                        (0..images)
                            .map(|image| erasing.draw(seed, image, height, width))
                            .collect(),
                    ),
                }
            })
            .collect()
    }

    /// The CPU twin of the dispatches: `images`, a normalised batch as uploaded, as step `step`
    /// of a run seeded `seed` augments it, by `reference::augment`'s twins of each stage.
    pub fn augment_on_cpu(&self, images: &[f32], seed: u64, step: u64) -> Vec<f32> {
        let loaded = self.shape(images.len() / self.spec.shape().iter().product::<usize>());
        let mut x = images.to_vec();
        let draws = self.draw(loaded.batch, seed, step);
        for (draw, [(height, width), out]) in draws.into_iter().zip(self.sizes()) {
            let shape = loaded.resized(height, width);
            x = match draw {
                Draw::Transforms(transforms) => {
                    twin::sample(shape, out, &self.fill, &transforms, &x)
                }
                Draw::Jitter(jitters) => {
                    twin::color_jitter(shape, &self.normalisation(), &jitters, &x)
                }
                Draw::Boxes(boxes) => twin::erase(shape, &boxes, ERASED, &x),
            };
        }
        x
    }

    fn shape(&self, images: usize) -> BatchShape {
        BatchShape {
            batch: images,
            channels: self.spec.channels,
            height: self.spec.height,
            width: self.spec.width,
        }
    }

    fn normalisation(&self) -> Normalisation {
        Normalisation {
            mean: self.spec.mean.clone(),
            std: self.spec.std.clone(),
        }
    }
}

/// One stage's parameters for every image of a batch.
enum Draw {
    Transforms(Vec<Transform>),
    Jitter(Vec<JitterDraw>),
    Boxes(Vec<[u32; 4]>),
}

/// One batch size's augmentation: where its images are uploaded, each stage's parameter
/// buffer, and the dispatches, which leave the augmented batch in the model's input.
struct BatchAugmentation {
    shape: BatchShape,
    upload: GpuBuffer,
    parameters: Vec<GpuBuffer>,
    dispatches: Vec<Dispatch>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_brief_s_example_parses_key_by_key() {
        let text = "rotate=20,shift=0.2,shear=0.2,zoom=0.2,flip,crop=4,resized_crop=0.8,\
                    brightness=0.2,contrast=0.2,saturation=0.2,hue=0.05,erase=0.5";
        let parsed: Augmentation = text.parse().unwrap();
        let expected = Augmentation {
            rotate: 20.0,
            shift: 0.2,
            shear: 0.2,
            zoom: 0.2,
            flip: 0.5,
            fill: FillMode::Nearest,
            crop: 4,
            resized_crop: 0.8,
            brightness: 0.2,
            contrast: 0.2,
            saturation: 0.2,
            hue: 0.05,
            erase: 0.5,
        };
        assert_eq!(parsed, expected);
        // Display spells it back in pipeline order, and that reads back the same.
        assert_eq!(
            parsed.to_string().parse::<Augmentation>().unwrap(),
            expected
        );
        assert_eq!(
            "flip=0.3, fill=reflect ,rotate=5".parse::<Augmentation>(),
            Ok(Augmentation {
                flip: 0.3,
                fill: FillMode::Reflect,
                rotate: 5.0,
                ..Augmentation::default()
            })
        );
        assert!("".parse::<Augmentation>().unwrap().is_none());
        assert!("fill=constant".parse::<Augmentation>().unwrap().is_none());
        assert_eq!(Augmentation::default().to_string(), "none");
    }

    #[test]
    fn a_bad_key_or_value_is_one_sentence_naming_it() {
        for (text, names) in [
            ("rotation=20", "unknown augmentation `rotation`"),
            ("rotate", "`rotate` needs a value"),
            ("rotate=abc", "`rotate=abc` is not a number"),
            ("rotate=200", "`rotate=200` is out of range"),
            ("flip=1.5", "`flip=1.5` is out of range"),
            ("zoom=1", "`zoom=1` is out of range"),
            ("hue=0.6", "`hue=0.6` is out of range"),
            ("shift=NaN", "`shift=NaN` is not a number"),
            ("crop=-1", "`crop=-1` is not a whole number"),
            ("crop=2.5", "`crop=2.5` is not a whole number"),
            ("crop=65", "`crop=65` is out of range"),
            ("crop", "`crop` needs a value"),
            ("flip=0.5,rotation=1", "unknown augmentation `rotation`"),
            ("fill=wrap", "`fill=wrap` is not a fill mode"),
        ] {
            let error = text.parse::<Augmentation>().unwrap_err();
            assert!(error.starts_with(names), "{text}: {error}");
            assert!(!error.contains('\n'), "{text}: {error}");
        }
    }

    #[test]
    fn settings_json_round_trips_and_a_recipe_may_name_a_few_keys() {
        let augmentation: Augmentation = "rotate=10,flip,fill=constant".parse().unwrap();
        let json = serde_json::to_string(&augmentation).unwrap();
        assert!(json.contains("\"fill\":\"constant\""), "{json}");
        assert_eq!(
            serde_json::from_str::<Augmentation>(&json).unwrap(),
            augmentation
        );
        let few: Augmentation = serde_json::from_str(r#"{"flip": 0.5, "crop": 4}"#).unwrap();
        assert_eq!(few, "flip,crop=4".parse().unwrap());
        assert!(serde_json::from_str::<Augmentation>(r#"{"flop": 0.5}"#).is_err());
        // A file's values are held to the same ranges when the augmentation is checked.
        let wild: Augmentation = serde_json::from_str(r#"{"rotate": 500}"#).unwrap();
        let error = wild.check(&ImageSpec::study_grey()).unwrap_err();
        assert!(error.starts_with("`rotate=500` is out of range"), "{error}");
    }

    #[test]
    fn colour_needs_rgb() {
        let grey = ImageSpec::study_grey();
        let rgb = ImageSpec::imagenet_rgb(48, 48);
        let saturation: Augmentation = "saturation=0.2".parse().unwrap();
        let error = saturation.check(&grey).unwrap_err();
        assert!(error.contains("RGB"), "{error}");
        assert!(saturation.check(&rgb).is_ok());
        let hue: Augmentation = "hue=0.1".parse().unwrap();
        assert!(hue.check(&grey).is_err());
        assert!("brightness=0.3,contrast=0.3"
            .parse::<Augmentation>()
            .unwrap()
            .check(&grey)
            .is_ok());
    }
}
