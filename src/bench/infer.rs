//! `fer bench infer`: what one frame costs `fer predict` (and a live loop) stage by stage —
//! decode, detect, crop/convert, classify, draw — and each model's images/s at several batch
//! sizes.
//!
//! Each stage is the library call predict makes, timed by the wall clock (median of the timed
//! runs, after one untimed run): decode is [`open_image`] on the frame's file, detect is
//! [`FaceDetector::detect`], crop/convert is [`Classifier::face_input`] for every face, classify is
//! [`Classifier::probabilities`] on the frame's faces at batch 1 (upload, forward, readback),
//! draw is [`annotate`]. Images/s at a batch size is that size over the wall time of one
//! `probabilities` call on that many faces. Without a checkpoint the models have fresh
//! weights: speed does not depend on them.

use std::path::{Path, PathBuf};

use image::{DynamicImage, RgbImage};
use serde::Serialize;

use super::{median, wall_seconds};
use crate::data::open_image;
use crate::gpu::{AdapterSummary, GpuContext};
use crate::infer::annotate::{annotate, Label};
use crate::infer::faces::{FaceBox, FaceDetector, DEFAULT_MARGIN};
use crate::infer::{Classifier, InferError};
use crate::nn::models::{Architecture, ModelKind};
use crate::rng::Rng;

/// Which classifiers to measure.
pub enum Models {
    /// Built-in models at their default size, fresh weights.
    BuiltIn(Vec<ModelKind>),
    /// The model a checkpoint holds, with its weights.
    Checkpoint(PathBuf),
}

pub struct Options {
    pub models: Models,
    pub batches: Vec<usize>,
    /// The frame: a photo; `None`: a generated one ([`GENERATED_FRAME`]).
    pub frame: Option<PathBuf>,
    /// Timed runs per measurement; `None`: 10 on a GPU; on a software adapter 5 at batch 1
    /// and 1 at larger batches.
    pub runs: Option<usize>,
    /// The smallest face the detector looks for, in pixels.
    pub min_face: u32,
}

/// The generated frame's size: a webcam's VGA.
pub const GENERATED_FRAME: (u32, u32) = (640, 480);

/// The model-independent stages of one frame, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Frame {
    /// The photo, or "generated 640×480 JPEG".
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// The smallest face the detector looked for, in pixels.
    pub min_face: u32,
    pub faces_found: usize,
    /// The faces cropped and classified: those found, or the centre square when none was.
    pub faces_classified: usize,
    pub runs: usize,
    pub decode_ms: f64,
    pub detect_ms: f64,
    pub draw_ms: f64,
}

/// One `probabilities` call on `batch` faces at batch size `batch`.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub batch: usize,
    pub runs: usize,
    pub ms: f64,
    pub images_per_s: f64,
}

/// One model: its frame stages, the whole frame, and its throughput per batch size.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRow {
    pub model: String,
    pub input: Vec<usize>,
    /// The first `probabilities` call at batch 1, which builds the model's plan (and tunes its
    /// kernels for shapes not met before).
    pub first_call_ms: f64,
    pub crop_ms: f64,
    /// The frame's faces classified in one batch.
    pub classify_ms: f64,
    /// Decode + detect + crop/convert + classify + draw.
    pub frame_ms: f64,
    /// One entry per batch size asked, `None` where the model does not fit.
    pub throughput: Vec<Option<Throughput>>,
    /// Why a batch size was left out, if one was.
    pub note: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub adapter: AdapterSummary,
    pub frame: Frame,
    pub batches: Vec<usize>,
    pub models: Vec<ModelRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchInferError {
    #[error("{0} is not an image fer reads: {1}")]
    Frame(PathBuf, String),
    #[error("cannot write the generated frame to {0}: {1}")]
    WriteFrame(PathBuf, String),
    #[error("the embedded face detector model is damaged: {0}")]
    Detector(std::io::Error),
    #[error("the frame {0} has no pixels")]
    EmptyFrame(String),
    #[error(transparent)]
    Draw(#[from] crate::report::PlotError),
    #[error("model `{model}`: {error}")]
    Model {
        model: &'static str,
        error: Box<InferError>,
    },
    #[error(transparent)]
    Checkpoint(Box<InferError>),
}

/// Measures the frame's stages and every model of `options`, calling `frame_done` once the
/// model-independent stages are measured and `progress` with each model as it lands.
pub fn run(
    ctx: &GpuContext,
    options: &Options,
    frame_done: impl FnOnce(&Frame),
    mut progress: impl FnMut(&ModelRow),
) -> Result<Report, BenchInferError> {
    let software = ctx.summary().is_software();
    let runs_at = |batch: usize| match (options.runs, software) {
        (Some(runs), _) => runs.max(1),
        (None, false) => 10,
        (None, true) if batch == 1 => 5,
        (None, true) => 1,
    };
    let generated;
    let (path, source) = match &options.frame {
        Some(path) => (path.clone(), path.display().to_string()),
        None => {
            generated = GeneratedFrame::write()?;
            let (width, height) = GENERATED_FRAME;
            (
                generated.path.clone(),
                format!("generated {width}×{height} JPEG"),
            )
        }
    };
    let (frame, image, faces) = measure_frame(&path, source, runs_at(1), options.min_face)?;
    frame_done(&frame);

    let mut models = Vec::new();
    let count = match &options.models {
        Models::BuiltIn(kinds) => kinds.len(),
        Models::Checkpoint(_) => 1,
    };
    for i in 0..count {
        let architecture = Architecture::default();
        let classifier = match &options.models {
            Models::BuiltIn(kinds) => Classifier::untrained(ctx, kinds[i], &architecture),
            Models::Checkpoint(path) => Classifier::open(ctx, path, None, &architecture),
        }
        .map_err(|error| failed(&options.models, i, error))?;
        let row = measure_model(ctx, &classifier, &frame, &image, &faces, options, runs_at)
            .map_err(|error| failed(&options.models, i, error))?;
        progress(&row);
        models.push(row);
    }
    Ok(Report {
        adapter: ctx.summary().clone(),
        frame,
        batches: options.batches.clone(),
        models,
    })
}

/// `error` of the `i`th model of `models`, named unless it is the checkpoint's (which its
/// errors name).
fn failed(models: &Models, i: usize, error: InferError) -> BenchInferError {
    match models {
        Models::BuiltIn(kinds) => BenchInferError::Model {
            model: kinds[i].name(),
            error: Box::new(error),
        },
        Models::Checkpoint(_) => BenchInferError::Checkpoint(Box::new(error)),
    }
}

/// Decode, detect and draw on the frame at `path`; the frame, its image, and the faces to
/// classify (the centre square when the detector finds none, so the later stages have one).
fn measure_frame(
    path: &Path,
    source: String,
    runs: usize,
    min_face: u32,
) -> Result<(Frame, DynamicImage, Vec<FaceBox>), BenchInferError> {
    let decode = || open_image(path).map_err(|why| BenchInferError::Frame(path.into(), why));
    let image = decode()?;
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(BenchInferError::EmptyFrame(source));
    }
    let decode_ms = median_ms(runs, || {
        let _ = decode();
    });
    let mut detector = FaceDetector::new(min_face).map_err(BenchInferError::Detector)?;
    let found = detector.detect(&image);
    let detect_ms = median_ms(runs, || {
        detector.detect(&image);
    });
    let faces = if found.is_empty() {
        let side = width.min(height) / 2;
        vec![FaceBox {
            x: (width - side) / 2,
            y: (height - side) / 2,
            width: side,
            height: side,
        }]
    } else {
        found.clone()
    };
    let labels: Vec<Label> = faces
        .iter()
        .map(|&face| Label {
            face,
            class: "neutral",
            probability: 0.5,
        })
        .collect();
    annotate(&image, &labels)?;
    let draw_ms = median_ms(runs, || {
        let _ = annotate(&image, &labels);
    });
    let frame = Frame {
        source,
        width,
        height,
        min_face,
        faces_found: found.len(),
        faces_classified: faces.len(),
        runs,
        decode_ms,
        detect_ms,
        draw_ms,
    };
    Ok((frame, image, faces))
}

fn measure_model(
    ctx: &GpuContext,
    classifier: &Classifier,
    frame: &Frame,
    image: &DynamicImage,
    faces: &[FaceBox],
    options: &Options,
    runs_at: impl Fn(usize) -> usize,
) -> Result<ModelRow, InferError> {
    let input = &classifier.description.input;
    let (width, height) = (image.width(), image.height());
    let crops = || -> Vec<u8> {
        faces
            .iter()
            .flat_map(|face| {
                let grown = face.with_margin(DEFAULT_MARGIN, width, height);
                classifier.face_input(grown.crop(image))
            })
            .collect()
    };
    let runs = runs_at(1);
    let crop_ms = median_ms(runs, || {
        crops();
    });
    let face_bytes = crops();
    let one_face = face_bytes[..input.shape().iter().product()].to_vec();
    let first_call_ms = 1e3 * timed(|| classifier.probabilities(ctx, one_face.clone(), 1))?;
    let classify_ms = 1e3
        * warm_median(runs, || {
            timed(|| classifier.probabilities(ctx, face_bytes.clone(), faces.len()))
        })?;
    let mut throughput = Vec::new();
    let mut note = None;
    for &batch in &options.batches {
        if note.is_some() {
            throughput.push(None);
            continue;
        }
        let images = one_face.repeat(batch);
        let call = || timed(|| classifier.probabilities(ctx, images.clone(), batch));
        let runs = runs_at(batch);
        match warm_median(runs, call) {
            Ok(seconds) => throughput.push(Some(Throughput {
                batch,
                runs,
                ms: seconds * 1e3,
                images_per_s: batch as f64 / seconds,
            })),
            Err(error) if error.does_not_fit() => {
                note = Some(format!("does not fit from batch {batch}: {error}"));
                throughput.push(None);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(ModelRow {
        model: classifier.description.model.name().to_string(),
        input: input.shape().to_vec(),
        first_call_ms,
        crop_ms,
        classify_ms,
        frame_ms: frame.decode_ms + frame.detect_ms + crop_ms + classify_ms + frame.draw_ms,
        throughput,
        note,
    })
}

/// Seconds `work` takes, if it succeeds.
fn timed<T, E>(work: impl FnOnce() -> Result<T, E>) -> Result<f64, E> {
    let mut result = None;
    let seconds = wall_seconds(|| result = Some(work()));
    result.expect("the work ran").map(|_| seconds)
}

/// The median of `runs` results of `measure` after one untimed, stopping at the first error.
fn warm_median<E>(runs: usize, measure: impl Fn() -> Result<f64, E>) -> Result<f64, E> {
    measure()?;
    let samples = (0..runs)
        .map(|_| measure())
        .collect::<Result<Vec<f64>, E>>()?;
    Ok(median(&samples))
}

/// Median milliseconds of `runs` runs of `work`, after one untimed run.
fn median_ms(runs: usize, mut work: impl FnMut()) -> f64 {
    work();
    let samples: Vec<f64> = (0..runs).map(|_| wall_seconds(&mut work)).collect();
    median(&samples) * 1e3
}

/// The generated frame, written as a JPEG (what a webcam or photo most often is) to the temp
/// folder and removed when dropped.
struct GeneratedFrame {
    path: PathBuf,
}

impl GeneratedFrame {
    /// Smooth colour gradients with noise on them, so the JPEG is not trivially compressible
    /// and the detector has texture to scan.
    fn write() -> Result<Self, BenchInferError> {
        let (width, height) = GENERATED_FRAME;
        let mut rng = Rng::new(0);
        let image = RgbImage::from_fn(width, height, |x, y| {
            let noise = rng.below(48) as u32;
            image::Rgb([
                (x * 200 / width + noise) as u8,
                (y * 200 / height + noise) as u8,
                ((x + y) * 100 / (width + height) + noise) as u8,
            ])
        });
        let path = std::env::temp_dir().join(format!("fer-bench-frame-{}.jpg", std::process::id()));
        DynamicImage::ImageRgb8(image)
            .save(&path)
            .map_err(|error| BenchInferError::WriteFrame(path.clone(), error.to_string()))?;
        Ok(GeneratedFrame { path })
    }
}

impl Drop for GeneratedFrame {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
