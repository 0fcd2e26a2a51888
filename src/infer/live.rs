//! `fer live`'s loop: frames from a source, the faces in each found, classified on the GPU and
//! drawn with the frame rate, then shown in a window and/or written to a folder.
//!
//! The source runs on a thread of its own and hands frames over a channel that holds one, so
//! the next frame is decoded or captured while the current one is detected, classified and
//! drawn (a camera's frames that find the channel full are dropped).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

use image::{DynamicImage, RgbImage};
use thiserror::Error;

use super::annotate::{annotate, caption, Label};
use super::classifier::{Classifier, InferError};
use super::faces::{FaceBox, FaceDetector};
use super::frames::{self, FrameError, Source};
use super::window::{Window, WindowError};
use crate::gpu::GpuContext;
use crate::report::PlotError;
use crate::train::session::argmax;

#[derive(Debug, Error)]
pub enum LiveError {
    #[error(transparent)]
    Frames(#[from] FrameError),
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("the embedded face detector model is damaged: {0}")]
    Detector(std::io::Error),
    #[error("cannot write {path}: {reason}")]
    Record { path: PathBuf, reason: String },
}

/// What the loop does with each frame besides showing it.
pub struct LiveSettings {
    /// Share of each face's size added on every side before cropping.
    pub margin: f32,
    /// The smallest face looked for, in pixels.
    pub min_face: u32,
    /// Stop after this many frames.
    pub max_frames: Option<usize>,
    pub batch_size: usize,
}

/// How a run went, for the line printed at its end.
pub struct Summary {
    pub frames: usize,
    pub faces: usize,
    pub seconds: f64,
    /// Capture (or decode) to shown, averaged over the frames.
    pub mean_latency: Duration,
    /// Files of a frames folder that were not images.
    pub skipped: usize,
}

impl Summary {
    pub fn fps(&self) -> f64 {
        match self.seconds > 0.0 {
            true => self.frames as f64 / self.seconds,
            false => 0.0,
        }
    }
}

/// What the source thread hands over.
enum Message {
    Frame(RgbImage, Instant),
    Failed(FrameError),
    End { skipped: usize },
}

/// Runs until the source ends, `max_frames` are shown, or the window is closed: each frame's
/// faces classified by `classifier` on `ctx`, drawn with the frame rate, shown in `window`
/// and written to `record` as `frame-000001.png`, ...
pub fn run(
    ctx: &GpuContext,
    classifier: &Classifier,
    source: Source,
    settings: &LiveSettings,
    mut window: Option<&mut Window>,
    record: Option<&Path>,
) -> Result<Summary, LiveError> {
    let mut detector = FaceDetector::new(settings.min_face).map_err(LiveError::Detector)?;
    if let Some(folder) = record {
        let refused = |reason: String| LiveError::Record {
            path: folder.to_path_buf(),
            reason,
        };
        if folder.is_file() {
            return Err(refused(
                "it is a file: --record names a folder for the frames".into(),
            ));
        }
        std::fs::create_dir_all(folder).map_err(|error| refused(error.to_string()))?;
    }
    let frames = start_source(source);
    let start = Instant::now();
    let mut rate = FrameRate::default();
    let mut summary = Summary {
        frames: 0,
        faces: 0,
        seconds: 0.0,
        mean_latency: Duration::ZERO,
        skipped: 0,
    };
    let mut latency = Duration::ZERO;
    while settings.max_frames.is_none_or(|max| summary.frames < max) {
        let (frame, captured) = match frames.recv() {
            Ok(Message::Frame(frame, captured)) => (frame, captured),
            Ok(Message::Failed(error)) => return Err(error.into()),
            Ok(Message::End { skipped }) => {
                summary.skipped = skipped;
                break;
            }
            Err(_) => break,
        };
        let image = DynamicImage::ImageRgb8(frame);
        let faces = detector.detect(&image);
        let classes = classify(ctx, classifier, &image, &faces, settings)?;
        let labels: Vec<Label> = faces
            .iter()
            .zip(&classes)
            .map(|(&face, &(class, probability))| Label {
                face,
                class: &classifier.description.classes[class],
                probability,
            })
            .collect();
        let mut annotated = annotate(&image, &labels)?;
        caption(&mut annotated, &rate.tick())?;
        summary.frames += 1;
        summary.faces += faces.len();
        if let Some(folder) = record {
            let path = folder.join(format!("frame-{:06}.png", summary.frames));
            annotated.save(&path).map_err(|error| LiveError::Record {
                path,
                reason: error.to_string(),
            })?;
        }
        let open = match window.as_deref_mut() {
            Some(window) => window.show(&annotated)?,
            None => true,
        };
        latency += captured.elapsed();
        if !open {
            break;
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    summary.mean_latency = latency / summary.frames.max(1) as u32;
    Ok(summary)
}

/// Opens `source` on a thread of its own and reads it into a channel of one frame; the thread
/// ends with the source, or when the loop stops listening.
fn start_source(source: Source) -> Receiver<Message> {
    let (sender, receiver) = sync_channel(1);
    thread::spawn(move || {
        let mut frames = match frames::open(&source) {
            Ok(frames) => frames,
            Err(error) => return drop(sender.send(Message::Failed(error))),
        };
        let live = frames.is_live();
        while let Some(frame) = frames.next_frame() {
            let message = match frame {
                Ok(frame) => Message::Frame(frame, Instant::now()),
                Err(error) => Message::Failed(error),
            };
            // A camera's frame that finds the loop busy is dropped, so the loop always takes a
            // recent one; a video or folder waits for its turn.
            let listening = match live {
                true => !matches!(sender.try_send(message), Err(TrySendError::Disconnected(_))),
                false => sender.send(message).is_ok(),
            };
            if !listening {
                return;
            }
        }
        let _ = sender.send(Message::End {
            skipped: frames.skipped(),
        });
    });
    receiver
}

/// Each face's likeliest class and its probability, all faces of the frame in one batch.
fn classify(
    ctx: &GpuContext,
    classifier: &Classifier,
    image: &DynamicImage,
    faces: &[FaceBox],
    settings: &LiveSettings,
) -> Result<Vec<(usize, f32)>, InferError> {
    let (width, height) = (image.width(), image.height());
    let mut crops = Vec::new();
    for face in faces {
        let crop = face.with_margin(settings.margin, width, height).crop(image);
        crops.extend(classifier.face_input(crop));
    }
    Ok(classifier
        .probabilities(ctx, crops, settings.batch_size)?
        .iter()
        .map(|row| {
            let best = argmax(row);
            (best, row[best])
        })
        .collect())
}

/// The frame rate over the last frames shown, as the caption says it.
#[derive(Default)]
struct FrameRate {
    shown: VecDeque<Instant>,
}

impl FrameRate {
    /// Frames the rate is averaged over: about half a second at 30 fps.
    const WINDOW: usize = 16;

    /// Notes a frame and says the rate over the frames before it.
    fn tick(&mut self) -> String {
        let now = Instant::now();
        let text = match (self.shown.front(), self.shown.len()) {
            (Some(first), count) if now > *first => {
                format!("{:.1} fps", count as f64 / (now - *first).as_secs_f64())
            }
            _ => "-- fps".to_string(),
        };
        if self.shown.len() == Self::WINDOW {
            self.shown.pop_front();
        }
        self.shown.push_back(now);
        text
    }
}
