//! `fer bench infer`: the options, and the tables for people.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::bail;

use fer::bench::infer::{self, Frame, ModelRow, Models, Options, Report};
use fer::gpu::GpuContext;
use fer::infer::faces::LIVE_MIN_FACE;
use fer::nn::models::ModelKind;

use super::options;

#[derive(clap::Args)]
pub struct InferRequest {
    /// Built-in models to measure, with fresh weights (speed does not depend on them); default:
    /// all but the baseline.
    #[arg(long, value_delimiter = ',', value_enum, conflicts_with = "checkpoint")]
    pub models: Vec<ModelKind>,
    /// Measure the model this checkpoint holds instead.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Batch sizes to measure images/s at.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64, 256])]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    pub batch: Vec<usize>,
    /// The frame to decode, search and draw on (default: a generated 640×480 JPEG, where no
    /// face is found and the centre square is classified as one).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// The smallest face the detector looks for, in pixels (default: `fer live`'s).
    #[arg(long, default_value_t = LIVE_MIN_FACE)]
    #[arg(value_parser = options::min_face, allow_hyphen_values = true)]
    pub min_face: u32,
    /// Timed runs per measurement (default: 10 on a GPU; on a software adapter 5 at batch 1
    /// and 1 at larger batches).
    #[arg(long)]
    #[arg(value_parser = options::at_least::<1>, allow_hyphen_values = true)]
    pub runs: Option<usize>,
    /// Print JSON for scripts instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn bench_infer(ctx: &GpuContext, request: &InferRequest) -> anyhow::Result<()> {
    if request.models.contains(&ModelKind::Baseline) {
        bail!("--models baseline: the baseline counts classes and classifies no image");
    }
    if let Some(path) = &request.checkpoint {
        if fer::train::checkpoint::describe(path)?.is_none() {
            bail!(
                "checkpoint {} does not say which model it holds (it was written before fer \
                 checkpoints described themselves): measure its model with --models NAME \
                 instead, as the speed does not depend on the weights",
                path.display()
            );
        }
    }
    let models = match (&request.checkpoint, request.models.is_empty()) {
        (Some(path), _) => Models::Checkpoint(path.clone()),
        (None, true) => Models::BuiltIn(
            ModelKind::ALL
                .into_iter()
                .filter(|&kind| kind != ModelKind::Baseline)
                .collect(),
        ),
        (None, false) => Models::BuiltIn(request.models.clone()),
    };
    let options = Options {
        models,
        batches: request.batch.clone(),
        frame: request.image.clone(),
        runs: request.runs,
        min_face: request.min_face,
    };
    let json = request.json;
    let report = infer::run(
        ctx,
        &options,
        |frame| {
            if !json {
                print!("{}", frame_table(ctx, frame));
                println!("{}", model_header(&options.batches));
            }
        },
        |row| {
            if !json {
                println!("{}", model_row(row));
            }
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", notes(&report));
    }
    Ok(())
}

/// The adapter, the frame and its model-independent stages.
fn frame_table(ctx: &GpuContext, frame: &Frame) -> String {
    let summary = ctx.summary();
    let mut text = format!(
        "fer bench infer on {} ({})\n",
        summary.name, summary.backend
    );
    let found = match frame.faces_found {
        0 => "no face found: the centre square classified as one".to_string(),
        n => format!("{n} faces found and classified"),
    };
    let _ = writeln!(
        text,
        "frame: {}, {}×{}, {found}; median of {} runs",
        frame.source, frame.width, frame.height, frame.runs
    );
    let _ = writeln!(
        text,
        "decode {:.2} ms   detect {:.2} ms (faces from {} px)   draw {:.2} ms",
        frame.decode_ms, frame.detect_ms, frame.min_face, frame.draw_ms
    );
    text
}

fn model_header(batches: &[usize]) -> String {
    let mut header = format!(
        "{:<14} {:>10} {:>9} {:>12} {:>10} {:>9}",
        "model", "input", "crop ms", "classify ms", "frame ms", "frames/s"
    );
    for batch in batches {
        let _ = write!(header, " {:>11}", format!("img/s b{batch}"));
    }
    header
}

fn model_row(row: &ModelRow) -> String {
    let input: Vec<String> = row.input.iter().map(usize::to_string).collect();
    let mut text = format!(
        "{:<14} {:>10} {:>9.2} {:>12.2} {:>10.2} {:>9.1}",
        row.model,
        input.join("×"),
        row.crop_ms,
        row.classify_ms,
        row.frame_ms,
        1e3 / row.frame_ms
    );
    for throughput in &row.throughput {
        match throughput {
            Some(t) => write!(text, " {:>11.1}", t.images_per_s),
            None => write!(text, " {:>11}", "-"),
        }
        .unwrap_or_default();
    }
    text
}

/// What the table's columns are, and the models that did not fit a batch size.
fn notes(report: &Report) -> String {
    let mut text = String::from(
        "(wall clock; classify: the frame's faces in one batch, upload to probabilities read \
         back; frame: decode + detect + crop + classify + draw)\n",
    );
    for row in &report.models {
        let _ = writeln!(
            text,
            "({}: first call {:.0} ms, building its plan{})",
            row.model,
            row.first_call_ms,
            row.note
                .as_ref()
                .map_or(String::new(), |note| format!("; {note}"))
        );
    }
    text
}
