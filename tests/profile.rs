//! `fer profile` on tiny models: every kernel of the step accounted for, shares that add up, a
//! trace Chrome and Perfetto can open, and JSON from the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use fer::gpu::{GpuContext, GpuOptions};
use fer::nn::models::{build, Architecture, ModelKind};
use fer::profile::{self, Pass, Profile, ProfileSettings};
use fer::train::optimizer::{Optimizer, OptimizerKind, OptimizerSettings};
use fer::train::runner::Runner;

const BATCH: usize = 4;

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

/// The cnn's layer structure at a size lavapipe runs in milliseconds.
fn tiny_cnn() -> Architecture {
    Architecture {
        cnn_channels: [2, 2, 2, 2],
        cnn_hidden: [4, 4],
        ..Architecture::default()
    }
}

fn adam() -> OptimizerSettings {
    OptimizerSettings {
        kind: OptimizerKind::Adam,
        lr: 1e-3,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    }
}

fn profile_tiny_cnn(ctx: &GpuContext, pass: Pass) -> Profile {
    let settings = ProfileSettings {
        model: ModelKind::Cnn,
        architecture: tiny_cnn(),
        optimizer: adam(),
        batch: BATCH,
        warmup_steps: 1,
        steps: 2,
        seed: 1,
        augment: Default::default(),
        pass,
    };
    profile::run(ctx, &settings, None).expect("the profile runs")
}

/// Calls per step of each kernel label, straight from the runner.
fn step_kernels(ctx: &GpuContext) -> BTreeMap<String, usize> {
    let model = build(ctx, ModelKind::Cnn, &tiny_cnn(), 1)
        .expect("the model builds")
        .expect("the cnn has kernels");
    let optimizer = Optimizer::new(ctx, &model, &adam()).expect("the optimizer builds");
    let mut runner = Runner::new(ctx, &model, 0.0).expect("the runner builds");
    let mut calls = BTreeMap::new();
    for dispatch in runner
        .step_dispatches(BATCH, &optimizer)
        .expect("the step's dispatches")
    {
        *calls.entry(dispatch.label().to_string()).or_insert(0) += 1;
    }
    calls
}

#[test]
fn a_profile_accounts_for_every_kernel_and_writes_a_valid_trace() {
    let ctx = gpu();
    let profile = profile_tiny_cnn(&ctx, Pass::Training);

    let expected = step_kernels(&ctx);
    let profiled: BTreeMap<String, usize> = profile
        .kernels
        .iter()
        .map(|k| (k.label.clone(), k.calls_per_step.round() as usize))
        .collect();
    assert_eq!(
        profiled, expected,
        "each kernel of the step, as often as it runs"
    );
    // Without autotuning, convolutions run lowered: im2col and friends, then matmuls.
    for name in [
        "lowering::",
        "batchnorm::",
        "pool::",
        "matmul::",
        "softmax_ce::",
        "optim::",
    ] {
        assert!(
            profiled.keys().any(|label| label.starts_with(name)),
            "no {name} kernel in {profiled:?}"
        );
    }
    let share: f64 = profile.kernels.iter().map(|k| k.share).sum();
    assert!((share - 1.0).abs() < 1e-6, "shares sum to {share}");
    let per_step: f64 = profile.kernels.iter().map(|k| k.ms_per_step).sum();
    assert!((per_step - profile.step.gpu_ms).abs() < 1e-6 * per_step.max(1.0));
    assert!(profile.step.wall_ms > 0.0 && profile.step.overhead > 0.0);
    assert!(
        profile.kernels.iter().all(|k| k.gbs.is_some()),
        "every kernel has a cost"
    );

    let path = std::env::temp_dir().join(format!("fer-profile-{}.json", std::process::id()));
    profile::write_trace(&path, &profile).expect("the trace is written");
    let text = std::fs::read(&path).expect("the trace is readable");
    std::fs::remove_file(&path).expect("the trace is removable");
    let trace: serde_json::Value = serde_json::from_slice(&text).expect("valid JSON");
    let events = trace["traceEvents"]
        .as_array()
        .expect("a traceEvents array");
    let mut slices_by_track: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    let mut names = BTreeSet::new();
    for event in events {
        assert!(event["name"].is_string(), "{event}");
        match event["ph"].as_str() {
            Some("X") => {
                let ts = event["ts"].as_f64().expect("ts");
                let dur = event["dur"].as_f64().expect("dur");
                assert!(ts >= 0.0 && dur >= 0.0, "{event}");
                let pid = event["pid"].as_u64().expect("pid");
                let tid = event["tid"].as_u64().expect("tid");
                slices_by_track
                    .entry((pid, tid))
                    .or_default()
                    .push((ts, dur));
                names.insert(event["name"].as_str().unwrap_or_default().to_string());
            }
            Some("M") => assert!(event["args"]["name"].is_string(), "{event}"),
            other => panic!("unexpected phase {other:?} in {event}"),
        }
    }
    assert_eq!(slices_by_track.len(), 1, "one track: the queue");
    let slices = slices_by_track.values().next().expect("one track");
    let dispatches: usize = expected.values().sum();
    assert_eq!(slices.len(), dispatches * profile.steps);
    for pair in slices.windows(2) {
        let ((ts, dur), (next, _)) = (pair[0], pair[1]);
        assert!(next >= ts + dur - 1e-9, "slices overlap: {pair:?}");
    }
    assert_eq!(names, expected.keys().cloned().collect());
}

#[test]
fn an_inference_profile_times_the_forward_pass_alone() {
    let ctx = gpu();
    let profile = profile_tiny_cnn(&ctx, Pass::Inference);
    let model = build(&ctx, ModelKind::Cnn, &tiny_cnn(), 1)
        .expect("the model builds")
        .expect("the cnn has kernels");
    let mut runner = Runner::new(&ctx, &model, 0.0).expect("the runner builds");
    let mut expected = BTreeMap::new();
    for dispatch in runner
        .inference_dispatches(BATCH)
        .expect("the forward's dispatches")
    {
        *expected.entry(dispatch.label().to_string()).or_insert(0) += 1;
    }
    let profiled: BTreeMap<String, usize> = profile
        .kernels
        .iter()
        .map(|k| (k.label.clone(), k.calls_per_step.round() as usize))
        .collect();
    assert_eq!(profiled, expected, "the inference forward's kernels");
    for training_only in ["softmax_ce::", "optim::", "lowering::col2im"] {
        assert!(
            !profiled
                .keys()
                .any(|label| label.starts_with(training_only)),
            "{training_only} ran in an inference profile: {profiled:?}"
        );
    }
    assert!(profile.step.gpu_ms > 0.0 && profile.step.wall_ms > 0.0);
    assert_eq!(profile.pass, Pass::Inference);
}

#[test]
fn the_cli_prints_a_profile_as_json_and_refuses_the_baseline() {
    let fer = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_fer"))
            .args(args)
            .output()
            .expect("the fer binary runs")
    };
    let out = fer(&[
        "profile", "--model", "softmax", "--steps", "1", "--warmup", "1", "--batch", "8", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let kernels = json["kernels"].as_array().expect("a list of kernels");
    assert!(!kernels.is_empty());
    assert!(kernels
        .iter()
        .all(|k| k["label"].is_string() && k["share"].is_f64()));
    assert!(json["step"]["gpu_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    assert!(json["timing"].is_string());

    let out = fer(&["profile", "--model", "baseline"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("runs no GPU kernels"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn kernels_carry_their_minimum_cost() {
    use fer::gpu::{Cost, GpuBuffer};
    use fer::kernels::conv2d::{conv2d_forward, Conv2dOperands, Conv2dShape};
    use fer::kernels::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};

    let ctx = gpu();
    let buffer = |len| GpuBuffer::zeros(&ctx, "operand", len);
    let (m, n, k) = (3, 5, 7);
    let (a, b, bias, c) = (buffer(m * k), buffer(k * n), buffer(n), buffer(m * n));
    let operands = MatmulOperands {
        a: &a,
        b: &b,
        bias: Some(&bias),
        c: &c,
    };
    let shape = MatmulShape::new(m, n, k);
    let product = matmul(
        &ctx,
        MatmulVariant::Naive,
        &shape,
        Epilogue::default(),
        operands,
    )
    .expect("the matmul builds");
    assert_eq!(
        product[0].cost(),
        Some(Cost {
            flops: (2 * m * n * k) as f64,
            bytes: (4 * (m * k + k * n + n + m * n)) as f64,
        })
    );

    let shape = Conv2dShape {
        batch: 2,
        in_channels: 3,
        out_channels: 4,
        height: 6,
        width: 6,
        kernel_h: 3,
        kernel_w: 3,
        stride: 1,
        padding: 1,
    };
    let (input, weight, output) = (
        buffer(shape.input_len()),
        buffer(shape.weight_len()),
        buffer(shape.output_len()),
    );
    let operands = Conv2dOperands {
        input: &input,
        weight: &weight,
        bias: None,
        output: &output,
    };
    let conv = conv2d_forward(&ctx, &shape, operands).expect("the conv builds");
    let cost = conv.cost().expect("a cost");
    assert_eq!(cost.flops, (2 * 2 * 4 * 3 * 3 * 3 * 6 * 6) as f64);
    assert_eq!(
        cost.bytes,
        (4 * (shape.input_len() + shape.weight_len() + shape.output_len())) as f64
    );
}

/// A step slowed by something else on the machine is not charged to its kernels: each dispatch
/// of the typical step takes its median time over the steps, in the steps' order.
#[test]
fn the_typical_step_takes_each_dispatch_at_its_median() {
    let dispatch = |label: &str, seconds| profile::TimedDispatch {
        label: label.to_string(),
        seconds,
        cost: None,
    };
    let step = |a, b| vec![dispatch("a", a), dispatch("b", b)];
    let timeline = [step(1.0, 5.0), step(9.0, 4.0), step(2.0, 6.0)];
    let typical = profile::typical_step(&timeline);
    let got: Vec<(&str, f64)> = typical
        .iter()
        .map(|d| (d.label.as_str(), d.seconds))
        .collect();
    assert_eq!(got, [("a", 2.0), ("b", 5.0)]);
    assert!(profile::typical_step(&[]).is_empty());
}

/// With `augment`, the step starts with the augmentation's kernels, each profiled on its own
/// (two geometric samplings, the jitter, the erasing), and the table states their share.
#[test]
fn augmentation_is_profiled_as_its_own_kernels() {
    let ctx = gpu();
    let settings = ProfileSettings {
        model: ModelKind::Cnn,
        architecture: tiny_cnn(),
        optimizer: adam(),
        batch: BATCH,
        warmup_steps: 1,
        steps: 1,
        seed: 1,
        augment: "crop=2,flip,brightness=0.2,erase=0.5".parse().unwrap(),
        pass: Pass::Training,
    };
    let profile = profile::run(&ctx, &settings, None).expect("the profile runs");
    let calls = |label: &str| {
        profile
            .kernels
            .iter()
            .find(|k| k.label == label)
            .map_or(0.0, |k| k.calls_per_step)
    };
    assert_eq!(calls("augment::sample"), 2.0);
    assert_eq!(calls("augment::color_jitter"), 1.0);
    assert_eq!(calls("augment::erase"), 1.0);
    assert_eq!(
        profile.timeline[0][0].label, "augment::sample",
        "the step starts with the augmentation"
    );
    let table = profile::table(&profile);
    assert!(
        table.contains("augmentation (crop=2,flip=0.5,brightness=0.2,erase=0.5): "),
        "{table}"
    );
}
