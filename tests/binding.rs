//! Tensors larger than one storage binding, at a small scale: a context whose binding limit the
//! test lowers ([`GpuContext::with_lower_limits`]) records a Linear's weight in blocks of rows
//! and the optimizer's update in chunks, and training must give what the same model gives on
//! an unsplit context; what cannot split is refused in one sentence naming it.
//!
//! Tolerance: the split forward and weight gradients compute each output as the unsplit ones
//! do (same kernel, same terms, same order), and the chunked updates are elementwise, so only
//! the split layer's input gradient differs: its 150 terms are summed in blocks of 64, 64 and
//! 22, a reassociation whose error is at most γ_150·Σ|terms| ≈ 9e-6 of the terms' magnitude
//! (~√150·u ≈ 7e-7 as rounding errors add up in practice). It reaches the parameters through
//! the first layer's gradient and a few updates of lr ≤ 0.1, so 1e-5 of each tensor's
//! magnitude holds it with room, while a block written to the wrong columns, a block that
//! overwrites dx instead of adding to it, or a chunk left out of the update moves some
//! parameter by lr·|g| ≳ 1e-3 of its scale.

use fer::data::{Dataset, ImageSpec};
use fer::gpu::{GpuContext, GpuOptions};
use fer::graph::{Graph, Layer, Model};
use fer::nn::models::{build, Architecture, ModelKind};
use fer::nn::{Conv2d, Flatten, Linear, Relu};
use fer::rng::Rng;
use fer::train::optimizer::{Optimizer, OptimizerKind, OptimizerSettings};
use fer::train::runner::{EpochSettings, Runner};
use indicatif::ProgressBar;

/// The lowered binding limit: 600 floats. `hidden.2`'s weight, [150, 9], is 1350: blocks of
/// 64 rows (600 / 9 = 66, rounded down to any storage-offset alignment up to WebGPU's largest,
/// 64 floats), so three blocks; the flat parameters take four or five chunks.
const LIMIT: u64 = 2400;
const TOLERANCE: f64 = 1e-5;
const BATCH: usize = 3;
/// 1×3×5 grey images.
const IMAGE: [usize; 3] = [1, 3, 5];
const CLASSES: usize = 3;

fn options() -> GpuOptions {
    GpuOptions::from_env().expect("FER_BACKEND is not a known backend")
}

fn unsplit() -> GpuContext {
    GpuContext::new(&options()).expect("binding tests need a GPU adapter (lavapipe will do)")
}

fn limited(binding_bytes: u64, buffer_bytes: u64) -> GpuContext {
    unsplit().with_lower_limits(binding_bytes, buffer_bytes)
}

fn named(name: &str, layer: impl Layer) -> (String, Box<dyn Layer>) {
    (name.to_string(), Box::new(layer))
}

/// Flatten → Linear(15, 9) → ReLU → Linear(9, 150) → ReLU → Linear(150, 3): the wide layer in
/// the middle, so its input gradient is needed.
fn mlp(ctx: &GpuContext) -> Result<Model, fer::graph::GraphError> {
    let linear = |inputs, outputs| Linear { inputs, outputs };
    let graph = Graph::sequential(vec![
        named("flatten", Flatten),
        named("hidden.0", linear(15, 9)),
        named("hidden.1", Relu),
        named("hidden.2", linear(9, 150)),
        named("hidden.3", Relu),
        named("head", linear(150, CLASSES)),
    ]);
    Model::new(ctx, "split mlp", &IMAGE, graph, 5)
}

/// Seven random images: batches of 3, 3 and 1 (the last its own plan).
fn images() -> Dataset {
    let mut rng = Rng::new(9);
    let count = 7;
    let pixels = count * IMAGE.iter().product::<usize>();
    let spec = ImageSpec {
        channels: 1,
        height: IMAGE[1],
        width: IMAGE[2],
        mean: vec![0.5],
        std: vec![0.5],
    };
    Dataset::new(
        spec,
        (0..CLASSES).map(|c| format!("class {c}")).collect(),
        (0..pixels).map(|_| rng.below(256) as u8).collect(),
        (0..count).map(|_| rng.below(CLASSES) as u8).collect(),
    )
}

/// What training left: every tensor and the last step's gradients, in store order, and the
/// dispatch counts of a step (forward, backward, optimizer).
struct Trained {
    values: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    dispatches: [usize; 3],
}

/// Two epochs of `settings` over [`images`] on `ctx`.
fn train(ctx: &GpuContext, settings: &OptimizerSettings) -> Trained {
    let model = mlp(ctx).expect("the model builds");
    let data = images();
    let mut optimizer = Optimizer::new(ctx, &model, settings).expect("the optimizer builds");
    let mut runner = Runner::new(ctx, &model, 0.0).expect("the runner builds");
    let epochs = EpochSettings {
        batch_size: BATCH,
        seed: 3,
        augment: Default::default(),
        readback_every: 1,
    };
    for epoch in 1..=2 {
        runner
            .train_epoch(
                &data,
                &mut optimizer,
                epoch,
                &epochs,
                &ProgressBar::hidden(),
            )
            .expect("an epoch trains");
    }
    let phases = runner
        .step_phases(BATCH, &optimizer)
        .expect("the plan exists");
    let dispatches = [
        phases.forward.len(),
        phases.backward.len(),
        phases.optimizer.len(),
    ];
    let read = |buffer: &fer::gpu::GpuBuffer| buffer.read::<f32>(ctx).expect("readback");
    Trained {
        values: model.params.iter().map(|p| read(&p.value)).collect(),
        grads: model.params.iter().map(|p| read(p.grad())).collect(),
        dispatches,
    }
}

fn magnitude(values: &[f32]) -> f64 {
    values.iter().fold(0.0, |m, &v| m.max(v.abs() as f64))
}

/// |split − unsplit| ≤ [`TOLERANCE`]·max|unsplit| over each tensor, naming the worst element.
fn assert_close(what: &str, split: &[Vec<f32>], unsplit: &[Vec<f32>]) {
    for (index, (split, unsplit)) in split.iter().zip(unsplit).enumerate() {
        let bound = TOLERANCE * magnitude(unsplit);
        let (worst, error) = split
            .iter()
            .zip(unsplit)
            .map(|(&s, &u)| (s as f64 - u as f64).abs())
            .enumerate()
            .fold((0, 0.0), |worst, (i, e)| {
                if e > worst.1 || e.is_nan() {
                    (i, e)
                } else {
                    worst
                }
            });
        assert!(
            error <= bound,
            "{what} of tensor {index}, element {worst}: {} split, {} unsplit (error {error:.2e}, \
             bound {bound:.2e})",
            split[worst],
            unsplit[worst]
        );
    }
}

fn check_split_training(settings: OptimizerSettings) {
    let split = train(&limited(LIMIT, u64::MAX), &settings);
    let whole = train(&unsplit(), &settings);
    let [forward, backward, updates] = split.dispatches;
    // hidden.2 in three blocks: two more products forward, four more backward.
    assert_eq!(forward, whole.dispatches[0] + 2, "forward dispatches");
    assert_eq!(backward, whole.dispatches[1] + 4, "backward dispatches");
    assert_eq!(whole.dispatches[2], 1, "one update unsplit");
    assert!(updates > 1, "the update in chunks, not {updates}");
    let name = format!("{:?}", settings.kind);
    assert_close(&format!("{name}: dparam"), &split.grads, &whole.grads);
    assert_close(&format!("{name}: param"), &split.values, &whole.values);
}

#[test]
fn a_split_linear_and_chunked_sgd_train_as_unsplit() {
    check_split_training(OptimizerSettings {
        momentum: 0.9,
        weight_decay: 1e-2,
        ..OptimizerSettings::plain(OptimizerKind::Sgd, 0.1)
    });
}

#[test]
fn a_split_linear_and_chunked_adam_train_as_unsplit() {
    check_split_training(OptimizerSettings::plain(OptimizerKind::Adam, 1e-2));
}

/// A Linear whose every block of aligned rows is over the limit, and a convolution, which
/// binds its weight whole, are refused when planned, naming the layer, the tensor and sizes.
#[test]
fn tensors_that_cannot_split_are_refused_naming_them() {
    let ctx = limited(LIMIT, u64::MAX);
    let refusal = |sample: &[usize], name: &str, layer: Box<dyn Layer>| {
        let graph = Graph::sequential(vec![(name.to_string(), layer)]);
        let model = Model::new(&ctx, "too wide", sample, graph, 1).expect("the model builds");
        model.plan(&ctx, 1).err().expect("refused").to_string()
    };
    // 160 inputs: four rows (the least alignment) are 2560 bytes.
    let linear = Linear {
        inputs: 160,
        outputs: 7,
    };
    let text = refusal(&[160], "fc", Box::new(linear));
    assert!(
        text.starts_with("layer `fc` (Linear(160, 7)) binds its tensor `fc.weight` [7, 160] in blocks of at least")
            && text.ends_with("more than the 2400 bytes this adapter can bind at once"),
        "{text}"
    );
    let conv = Conv2d {
        in_channels: 1,
        out_channels: 32,
        kernel: 5,
        stride: 1,
        padding: 0,
    };
    let text = refusal(&[1, 6, 6], "conv", Box::new(conv));
    assert!(
        text.contains("`conv.weight` [32, 1, 5, 5] whole, 3200 bytes, more than the 2400 bytes"),
        "{text}"
    );
}

/// A tensor over the buffer limit, and flat storage over it, are refused when the model is
/// built: the buffer, not a binding, is then the limit.
#[test]
fn parameters_over_one_buffer_are_refused_naming_the_largest() {
    let text = mlp(&limited(u64::MAX, 5000))
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(
        text,
        "tensor `hidden.2.weight` [150, 9] needs 5400 bytes in one buffer, more than the 5000 \
         bytes this adapter can allocate"
    );
    // 2,097 floats before alignment: over 6000 bytes, though each tensor is under.
    let text = mlp(&limited(u64::MAX, 6000))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        text.starts_with("the model's trainable tensors need")
            && text.ends_with(
                "more than the 6000 bytes this adapter can allocate; the largest is \
                 `hidden.2.weight` [150, 9] (5400 bytes)"
            ),
        "{text}"
    );
}

/// RogleNet's 288 MiB `fc.0.weight` is over lavapipe's (and wgpu's default) 128 MiB binding:
/// it now builds and plans, its update in chunks.
#[test]
fn roglenet_plans_with_its_largest_weight_over_one_binding() {
    let ctx = unsplit();
    let model = build(&ctx, ModelKind::Roglenet, &Architecture::default(), 0)
        .expect("roglenet builds")
        .expect("a GPU model");
    model.plan(&ctx, 1).expect("roglenet plans");
    let sgd = OptimizerSettings {
        momentum: 0.9,
        ..OptimizerSettings::plain(OptimizerKind::Sgd, 1e-3)
    };
    let optimizer = Optimizer::new(&ctx, &model, &sgd).expect("the optimizer builds");
    let flat = model.params.trainable().expect("trainable tensors");
    let binding = ctx.summary().max_binding_len();
    assert_eq!(
        optimizer.dispatches().len(),
        flat.len.div_ceil(binding).max(1)
    );
}

/// RogleNet's evaluation forward at batch 1 on the real limits, its `fc.0` in blocks of rows,
/// against the CPU graph. Slow (the twin's 2.5 GFLOP in f64 loops, 293 MiB read back):
/// `cargo test --release --test binding -- --ignored`. Tolerance: as in tests/graph.rs, f32
/// sums of up to 147,456 terms against f64, bounded relative to the logits' magnitude by
/// 5e-5 there; the blocks change no sum of the forward.
#[test]
#[ignore]
fn roglenet_logits_match_the_cpu_graph_with_its_largest_weight_split() {
    let ctx = unsplit();
    let model = build(&ctx, ModelKind::Roglenet, &Architecture::default(), 0)
        .expect("roglenet builds")
        .expect("a GPU model");
    let plan = model.plan(&ctx, 1).expect("roglenet plans");
    let input = Rng::new(4).uniform_vec(plan.input().len(), -1.0, 1.0);
    plan.input().write(&ctx, &input);
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    plan.record_forward(&mut encoder.begin_compute_pass(&Default::default()), false);
    ctx.queue.submit([encoder.finish()]);
    let gpu: Vec<f32> = plan.logits().read(&ctx).expect("readback");
    let mut params: Vec<Vec<f32>> = model
        .params
        .iter()
        .map(|p| p.value.read(&ctx).expect("readback"))
        .collect();
    let cpu = model
        .cpu_forward(&mut params, &input, false, 0)
        .expect("the CPU forward runs");
    let bound = 5e-5 * magnitude(&cpu);
    for (class, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert!(
            (g - c).abs() as f64 <= bound,
            "logit {class}: GPU {g}, CPU {c}, bound {bound:.2e}"
        );
    }
}
