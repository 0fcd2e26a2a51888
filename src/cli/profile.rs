//! `fer profile`: sizes the model for the adapter, runs the profiler, prints and writes.

use std::path::PathBuf;

use anyhow::Context;

use fer::bench::peak::measure_peak;
use fer::gpu::GpuContext;
use fer::nn::models::{Architecture, ModelKind};
use fer::profile::{self, Pass, PeakFigures, ProfileSettings};

use fer::train::augmentation::Augmentation;
use fer::train::optimizer::OptimizerSettings;

use super::train::DemoScale;

pub struct ProfileRequest {
    pub model: ModelKind,
    pub batch: usize,
    pub warmup: usize,
    pub steps: usize,
    /// The study's cnn even on a software adapter.
    pub full: bool,
    pub seed: u64,
    pub json: bool,
    pub trace: Option<PathBuf>,
    pub augment: Augmentation,
    pub pass: Pass,
}

pub fn profile(ctx: &GpuContext, request: &ProfileRequest) -> anyhow::Result<()> {
    let architecture = if request.full {
        Architecture::default()
    } else {
        let scale = DemoScale::for_adapter(ctx);
        if let (Some(note), ModelKind::Cnn) = (scale.note, request.model) {
            eprintln!("{note} (or pass --full)");
        }
        scale.architecture
    };
    let settings = ProfileSettings {
        model: request.model,
        architecture,
        optimizer: OptimizerSettings::study(request.model),
        batch: request.batch,
        warmup_steps: request.warmup,
        steps: request.steps,
        seed: request.seed,
        augment: request.augment.clone(),
        pass: request.pass,
    };
    // Rates are stated as a fraction of what this adapter attains (`fer bench peak`); the
    // better of its two bandwidth kernels is the memory roof.
    let peak = measure_peak(ctx)?;
    let roof = PeakFigures {
        gflops: peak.gflops,
        gbs: peak.copy_gbs.max(peak.read_gbs),
    };
    let result = profile::run(ctx, &settings, Some(roof))?;
    if request.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", profile::table(&result));
    }
    if let Some(path) = &request.trace {
        profile::write_trace(path, &result)
            .with_context(|| format!("cannot write the trace to {}", path.display()))?;
        eprintln!(
            "wrote {} (open in ui.perfetto.dev or chrome://tracing)",
            path.display()
        );
    }
    Ok(())
}
