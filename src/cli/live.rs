//! `fer live`: a checkpoint classifying the faces of a video, a folder of frames or a camera,
//! shown in a window (or written to a folder), with a line of totals at the end.

use std::path::PathBuf;

use fer::gpu::GpuContext;
use fer::infer::faces::{DEFAULT_MARGIN, LIVE_MIN_FACE};
use fer::infer::frames::Source;
use fer::infer::live::{self, LiveSettings};
use fer::infer::window::Window;
use fer::infer::Classifier;
use fer::nn::models::{Architecture, ModelChoice};

use super::options;

#[derive(clap::Args)]
pub struct LiveRequest {
    /// A trained model: the model.safetensors `fer train` writes.
    #[arg(long)]
    pub checkpoint: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Write each annotated frame to this folder (frame-000001.png, ...).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Show no window (with --record: record without a display).
    #[arg(long)]
    pub no_window: bool,
    /// Grow each found face's box by this share of its size on every side before cropping.
    #[arg(long, default_value_t = DEFAULT_MARGIN)]
    #[arg(value_parser = options::fraction::<f32>, allow_hyphen_values = true)]
    pub margin: f32,
    /// The smallest face to look for, in pixels (at least 40, the detector's window). Larger
    /// is faster: each frame is searched at 40/min-face of its size.
    #[arg(long, default_value_t = LIVE_MIN_FACE)]
    #[arg(value_parser = options::min_face, allow_hyphen_values = true)]
    pub min_face: u32,
    /// Stop after this many frames.
    #[arg(long)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    pub max_frames: Option<usize>,
    /// Most faces of a frame classified in one GPU batch.
    #[arg(long, default_value_t = 64)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    pub batch_size: usize,
}

/// Where the frames come from: exactly one.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct SourceArgs {
    /// A YUV4MPEG2 video (`ffmpeg -i in.mp4 -pix_fmt yuv420p out.y4m` makes one).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// A folder of frames, shown in file-name order (files that are not images are skipped).
    #[arg(long)]
    pub frames: Option<PathBuf>,
    /// The camera with this index (0: the first); needs fer built with `--features camera`.
    #[arg(long)]
    pub camera: Option<u32>,
}

impl SourceArgs {
    fn source(&self) -> Source {
        match (&self.video, &self.frames, self.camera) {
            (Some(video), _, _) => Source::Video(video.clone()),
            (_, Some(frames), _) => Source::Frames(frames.clone()),
            (_, _, index) => Source::Camera(index.unwrap_or(0)),
        }
    }
}

pub fn live(
    ctx: &GpuContext,
    model: Option<&ModelChoice>,
    architecture: &Architecture,
    request: &LiveRequest,
) -> anyhow::Result<()> {
    let mut window = match request.no_window {
        true => None,
        false => Some(Window::new("fer live (Esc to stop)")?),
    };
    let classifier = Classifier::open(ctx, &request.checkpoint, model, architecture)?;
    if !classifier.self_described {
        eprintln!(
            "checkpoint {} names no classes; assuming {}",
            request.checkpoint.display(),
            classifier.description.classes.join(", ")
        );
    }
    let settings = LiveSettings {
        margin: request.margin,
        min_face: request.min_face,
        max_frames: request.max_frames,
        batch_size: request.batch_size,
    };
    let summary = live::run(
        ctx,
        &classifier,
        request.source.source(),
        &settings,
        window.as_mut(),
        request.record.as_deref(),
    )?;
    if summary.skipped > 0 {
        eprintln!("skipped {} files that are not images", summary.skipped);
    }
    println!(
        "{} frames, {} faces, {:.1} fps, mean latency {:.0} ms (capture to shown){}",
        summary.frames,
        summary.faces,
        summary.fps(),
        summary.mean_latency.as_secs_f64() * 1000.0,
        match &request.record {
            Some(folder) => format!(", recorded to {}", folder.display()),
            None => String::new(),
        }
    );
    Ok(())
}
