//! `fer train --dry-run`: the run's memory and step cost against the adapter's limits, from
//! the figures `fer models` lists, with nothing allocated and nothing trained.

use fer::gpu::AdapterSummary;
use fer::nn::models::{Architecture, ModelChoice};
use fer::nn::spec::INPUT;
use fer::train::optimizer::{OptimizerKind, OptimizerSettings};

use super::models::{summarize, Memory, ModelSummary, ADAM_STATES};

/// A training step's FLOPs per forward FLOP: the backward pass takes about two forwards (the
/// gradient of the input and of the weights, each a product the size of the forward's).
const STEP_PER_FORWARD: f64 = 3.0;

/// Tensors of optimizer state per trainable tensor, as [`fer::train::optimizer::Optimizer`]
/// allocates them: Adam's two moments, SGD's momentum buffer when it has momentum.
fn optimizer_states(optimizer: &OptimizerSettings) -> u64 {
    match optimizer.kind {
        OptimizerKind::Adam | OptimizerKind::Adamw => ADAM_STATES,
        OptimizerKind::Sgd => u64::from(optimizer.momentum != 0.0),
    }
}

/// What a dry run looks at.
pub struct DryRun<'a> {
    pub model: &'a ModelChoice,
    pub architecture: &'a Architecture,
    pub batch: usize,
    pub optimizer: &'a OptimizerSettings,
}

/// The figures `fer models` lists for `request` on `adapter`: `None` for a model with nothing
/// on the GPU.
fn summary(adapter: &AdapterSummary, request: &DryRun) -> anyhow::Result<Option<ModelSummary>> {
    let Some(spec) = request.model.spec(request.architecture) else {
        return Ok(None);
    };
    let states = optimizer_states(request.optimizer);
    Ok(Some(summarize(
        &spec,
        request.batch,
        states,
        Some(bind_limit(adapter)),
    )?))
}

/// Prints the plan of `request` against `adapter`; an error (one sentence) if it cannot fit.
pub fn dry_run(adapter: &AdapterSummary, request: &DryRun) -> anyhow::Result<()> {
    let name = request.model.name();
    let Some(summary) = summary(adapter, request)? else {
        println!("model `{name}` counts labels on the CPU: nothing to allocate on the GPU");
        return Ok(());
    };
    let states = optimizer_states(request.optimizer);
    let memory = &summary.memory;
    let mib = |bytes: u64| format!("{:>9.1} MiB", bytes as f64 / (1 << 20) as f64);
    let optimizer = format!("{:?}", request.optimizer.kind).to_lowercase();
    println!(
        "dry run: model `{name}` at batch {} on {} ({})",
        request.batch, adapter.name, adapter.backend
    );
    for (what, bytes, note) in [
        ("weights", memory.weights, String::new()),
        ("gradients", memory.gradients, String::new()),
        (
            "optimizer state",
            memory.optimizer,
            format!("{optimizer}: {states} per trainable value"),
        ),
        (
            "activations",
            memory.activations,
            "each node's output and its gradient (an upper bound: fused blocks keep fewer)".into(),
        ),
        (
            "convolutions",
            memory.convolutions,
            "patch matrices and their gradients, and Winograd's transformed weights, input and \
             products, if the tuner lowers every convolution and evaluates every 3×3 one by \
             Winograd"
                .into(),
        ),
        (
            "scratch",
            memory.scratch,
            "the batch's images, labels and loss records".into(),
        ),
        (
            "total",
            memory.total(),
            "wgpu does not report the adapter's memory: only its limits below are checked".into(),
        ),
    ] {
        println!(
            "{}",
            format!("  {what:<16} {}  {note}", mib(bytes)).trim_end()
        );
    }
    println!(
        "  limits           {} MiB per buffer, {} MiB per binding",
        adapter.max_buffer_bytes >> 20,
        adapter.max_storage_binding_bytes >> 20
    );
    println!(
        "  largest binding  {}  `{}` output (trainable tensors: {})",
        mib(memory.largest_output.bytes),
        memory.largest_output.name,
        mib(memory.gradients).trim()
    );
    let forward = summary.flops_per_image * request.batch as f64;
    println!(
        "  step             {:>9.3} GFLOP  (forward {:.3} GFLOP × {STEP_PER_FORWARD} for the \
         backward pass)",
        STEP_PER_FORWARD * forward / 1e9,
        forward / 1e9
    );
    if let Some(reason) = misfit(memory, adapter) {
        return Err(does_not_fit(adapter, request, &reason));
    }
    println!("fits: every buffer is within this adapter's limits");
    Ok(())
}

/// The dry run's verdict alone, as a run checks it before loading its data: a model of huge
/// images would otherwise spend minutes resizing every image before the plan refused it.
pub fn refuse_misfit(adapter: &AdapterSummary, request: &DryRun) -> anyhow::Result<()> {
    let reason = summary(adapter, request)?.and_then(|summary| misfit(&summary.memory, adapter));
    match reason {
        Some(reason) => Err(does_not_fit(adapter, request, &reason)),
        None => Ok(()),
    }
}

fn does_not_fit(adapter: &AdapterSummary, request: &DryRun, reason: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "model `{}` does not fit {} at batch {}: {reason}",
        request.model.name(),
        adapter.name,
        request.batch
    )
}

/// The most one buffer that a kernel binds whole may hold.
fn bind_limit(adapter: &AdapterSummary) -> u64 {
    adapter
        .max_storage_binding_bytes
        .min(adapter.max_buffer_bytes)
}

/// Why the plan cannot be allocated on `adapter`, if it cannot: the trainable tensors live in
/// one buffer (each kernel binds a tensor's slice, and a Linear weight over one binding is split
/// into blocks of rows), and each kernel binds a node's output whole.
fn misfit(memory: &Memory, adapter: &AdapterSummary) -> Option<String> {
    let mib = |bytes: u64| bytes.div_ceil(1 << 20);
    if memory.gradients > adapter.max_buffer_bytes {
        return Some(format!(
            "its trainable tensors need {} MiB in one buffer (`{}` alone {} MiB), over the {} \
             MiB this adapter can allocate: use a smaller model or another adapter (--adapter \
             NAME, or FER_BACKEND)",
            mib(memory.gradients),
            memory.largest_tensor.name,
            mib(memory.largest_tensor.bytes),
            adapter.max_buffer_bytes >> 20
        ));
    }
    let largest = &memory.largest_output;
    let limit = bind_limit(adapter);
    (largest.bytes > limit).then(|| {
        let what = match largest.name.as_str() {
            INPUT => "the batch of images is".to_string(),
            node => format!("node `{node}` outputs"),
        };
        format!(
            "{what} {} MiB, over the {} MiB this adapter can bind: use a smaller --batch-size, \
             or another adapter (--adapter NAME, or FER_BACKEND)",
            mib(largest.bytes),
            limit >> 20
        )
    })
}
