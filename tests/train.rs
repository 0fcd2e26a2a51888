//! The engine end to end on small synthetic data: learning, checkpoints, evaluation, errors.

use std::path::PathBuf;

use fer::data::batch::to_normalized_f32;
use fer::data::synthetic::{generate, SplitSizes};
use fer::data::{fer2013, Dataset, ImageSpec};
use fer::gpu::{GpuContext, GpuOptions};
use fer::graph::Model;
use fer::nn::models::{build, spec, Architecture, ModelKind};
use fer::nn::spec::OpSpec;
use fer::train::augmentation::{Augmentation, Augmenter};
use fer::train::checkpoint::{self, CheckpointError};
use fer::train::optimizer::{Optimizer, OptimizerKind, OptimizerSettings};
use fer::train::runner::{EpochSettings, RunError, Runner};
use indicatif::ProgressBar;

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

fn faces(train: usize) -> (Dataset, Dataset) {
    let splits = generate(
        7,
        SplitSizes {
            train,
            val: train / 2,
            test: 0,
        },
        &ImageSpec::study_grey(),
        7,
    )
    .unwrap();
    (splits.train, splits.val)
}

fn adam(lr: f64) -> OptimizerSettings {
    OptimizerSettings {
        kind: OptimizerKind::Adam,
        lr,
        momentum: 0.0,
        nesterov: false,
        weight_decay: 0.0,
    }
}

fn epochs(batch_size: usize) -> EpochSettings {
    EpochSettings {
        batch_size,
        seed: 3,
        augment: Default::default(),
        readback_every: 1,
    }
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fer-train-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn training_lowers_the_loss_and_overfits_a_tiny_set() {
    let ctx = gpu();
    // Random pixels and labels: nothing to generalise, everything to memorise.
    let mut rng = fer::rng::Rng::new(5);
    let images = (0..24 * 2304).map(|_| rng.below(256) as u8).collect();
    let labels = (0..24).map(|_| rng.below(7) as u8).collect();
    let train = Dataset::new(
        ImageSpec::study_grey(),
        fer2013::class_names(),
        images,
        labels,
    );
    let model = build(&ctx, ModelKind::Mlp, &Architecture::default(), 1)
        .unwrap()
        .unwrap();
    let mut optimizer = Optimizer::new(&ctx, &model, &adam(1e-3)).unwrap();
    let mut runner = Runner::new(&ctx, &model, 0.0).unwrap();
    let hidden = ProgressBar::hidden();
    // Batch 10 over 24 images: two full batches and a partial one of 4 every epoch.
    let first = runner
        .train_epoch(&train, &mut optimizer, 1, &epochs(10), &hidden)
        .unwrap();
    let mut last = first;
    for epoch in 2..=40 {
        last = runner
            .train_epoch(&train, &mut optimizer, epoch, &epochs(10), &hidden)
            .unwrap();
    }
    assert!(
        last.loss < first.loss * 0.5,
        "loss {} → {}",
        first.loss,
        last.loss
    );
    let evaluation = runner.evaluate(&train, 7).unwrap();
    assert_eq!(
        evaluation.totals.accuracy, 1.0,
        "a linear model memorises 24 faces"
    );
    assert_eq!(
        evaluation.logits.len(),
        24 * 7,
        "every image evaluated, the partial batch too"
    );
}

/// The study's cnn with a few channels, quick to train on a software adapter.
fn tiny_cnn(ctx: &GpuContext, seed: u64) -> fer::graph::Model {
    let arch = Architecture {
        cnn_channels: [4, 4, 8, 8],
        cnn_hidden: [8, 8],
        ..Architecture::default()
    };
    build(ctx, ModelKind::Cnn, &arch, seed).unwrap().unwrap()
}

/// `model` after one epoch of Adam at `lr` over `train` in batches of 16, with the optimizer
/// and runner that trained it.
fn trained_one_epoch<'a>(
    ctx: &'a GpuContext,
    model: &'a fer::graph::Model,
    train: &Dataset,
    lr: f64,
) -> (Optimizer, Runner<'a>) {
    let mut optimizer = Optimizer::new(ctx, model, &adam(lr)).unwrap();
    let mut runner = Runner::new(ctx, model, 0.0).unwrap();
    runner
        .train_epoch(
            train,
            &mut optimizer,
            1,
            &epochs(16),
            &ProgressBar::hidden(),
        )
        .unwrap();
    (optimizer, runner)
}

#[test]
fn a_checkpoint_round_trips_and_reproduces_evaluation() {
    let ctx = gpu();
    let (train, val) = faces(32);
    let model = tiny_cnn(&ctx, 1);
    let (optimizer, mut runner) = trained_one_epoch(&ctx, &model, &train, 1e-3);
    let before = runner.evaluate(&val, 16).unwrap();
    let path = temp_path("cnn.safetensors");
    checkpoint::save(&ctx, &model, optimizer.steps(), &path).unwrap();
    // Each batch norm carries PyTorch's step count, an I64 scalar beside its running mean.
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let running_means: Vec<&str> = model
        .params
        .iter()
        .filter_map(|p| p.name.strip_suffix(".running_mean"))
        .collect();
    assert!(!running_means.is_empty());
    for layer in running_means {
        let count = file
            .tensor(&format!("{layer}.num_batches_tracked"))
            .unwrap();
        assert_eq!(count.dtype(), safetensors::Dtype::I64);
        assert_eq!(count.shape(), &[] as &[usize]);
        assert_eq!(count.data(), &optimizer.steps().to_le_bytes(), "{layer}");
    }

    let restored = tiny_cnn(&ctx, 99);
    checkpoint::load(&ctx, &restored, &path).unwrap();
    let after = Runner::new(&ctx, &restored, 0.0)
        .unwrap()
        .evaluate(&val, 5)
        .unwrap();
    assert_eq!(before.totals.accuracy, after.totals.accuracy);
    // Batch size changes only the grouping, not one image's arithmetic: identical logits.
    assert_eq!(before.logits, after.logits);
    for (a, b) in model.params.iter().zip(restored.params.iter()) {
        assert_eq!(
            a.value.read::<f32>(&ctx).unwrap(),
            b.value.read::<f32>(&ctx).unwrap(),
            "{}",
            a.name
        );
    }
}

#[test]
fn a_wrong_checkpoint_is_refused_with_the_tensor_named() {
    let ctx = gpu();
    let arch = Architecture::default();
    let softmax = build(&ctx, ModelKind::Softmax, &arch, 0).unwrap().unwrap();
    let mlp = build(&ctx, ModelKind::Mlp, &arch, 0).unwrap().unwrap();
    let path = temp_path("softmax.safetensors");
    checkpoint::save(&ctx, &softmax, 0, &path).unwrap();
    let error = checkpoint::load(&ctx, &mlp, &path).unwrap_err();
    assert!(
        matches!(error, CheckpointError::Missing { ref name, .. } if name == "fc1.weight"),
        "{error}"
    );

    let wide = Architecture {
        mlp_hidden: [64, 64],
        ..Architecture::default()
    };
    let mlp_path = temp_path("mlp.safetensors");
    checkpoint::save(&ctx, &mlp, 0, &mlp_path).unwrap();
    let narrow = build(&ctx, ModelKind::Mlp, &wide, 0).unwrap().unwrap();
    let error = checkpoint::load(&ctx, &narrow, &mlp_path).unwrap_err();
    assert!(
        error.to_string().contains("fc1.weight") && error.to_string().contains("[128, 2304]"),
        "{error}"
    );

    // A batch-norm count that is not PyTorch's I64 scalar.
    let bad_count = temp_path("bad-count.safetensors");
    rewrite_tensor(&mlp_path, &bad_count, "bn1.num_batches_tracked", |_| {
        (
            safetensors::Dtype::F32,
            vec![1],
            1.0f32.to_le_bytes().to_vec(),
        )
    });
    let error = checkpoint::load(&ctx, &mlp, &bad_count).unwrap_err();
    assert!(
        matches!(error, CheckpointError::Count { ref name, .. } if name == "bn1.num_batches_tracked"),
        "{error}"
    );

    let garbage = temp_path("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    let error = checkpoint::load(&ctx, &softmax, &garbage).unwrap_err();
    assert!(matches!(error, CheckpointError::Format { .. }), "{error}");
    let error = checkpoint::load(&ctx, &softmax, &temp_path("absent.safetensors")).unwrap_err();
    assert!(matches!(error, CheckpointError::Read { .. }), "{error}");
}

/// Copies a checkpoint with one tensor replaced by `replace(its bytes)`.
fn rewrite_tensor(
    from: &PathBuf,
    to: &PathBuf,
    name: &str,
    replace: impl Fn(&[u8]) -> (safetensors::Dtype, Vec<usize>, Vec<u8>),
) {
    let bytes = std::fs::read(from).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(n, view)| {
            if n == name {
                let (dtype, shape, data) = replace(view.data());
                (n, dtype, shape, data)
            } else {
                (n, view.dtype(), view.shape().to_vec(), view.data().to_vec())
            }
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, dtype, shape, data)| {
            let view = safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap();
            (n.clone(), view)
        })
        .collect();
    std::fs::write(to, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

/// Every trainable tensor is a view of one flat buffer, on the adapter's storage-offset
/// alignment and clear of its neighbours; one dispatch updates them all, and the padding
/// between them stays zero through training (zero value, zero gradient).
#[test]
fn one_dispatch_updates_every_tensor_and_the_padding_stays_zero() {
    let ctx = gpu();
    let (train, _) = faces(32);
    let model = tiny_cnn(&ctx, 3);
    let flat = model
        .params
        .trainable()
        .expect("the cnn has trainable tensors");
    let align = ctx.summary().storage_offset_alignment as u64;
    let mut used = vec![false; flat.len];
    for param in model.params.iter().filter(|p| p.spec.trainable) {
        let offset = param.value.offset_bytes();
        assert_eq!(offset % align.max(16), 0, "{} at byte {offset}", param.name);
        let start = offset as usize / 4;
        let extent = param.spec.len().div_ceil(4) * 4;
        for slot in &mut used[start..start + extent] {
            assert!(!*slot, "{} overlaps another tensor", param.name);
            *slot = true;
        }
    }
    let (optimizer, _) = trained_one_epoch(&ctx, &model, &train, 1e-2);
    assert_eq!(optimizer.dispatches().len(), 1);
    let values: Vec<f32> = flat.values.read(&ctx).unwrap();
    let mut occupied = vec![false; flat.len];
    for param in model.params.iter().filter(|p| p.spec.trainable) {
        let start = param.value.offset_bytes() as usize / 4;
        occupied[start..start + param.spec.len()].fill(true);
    }
    let moved = (0..flat.len)
        .filter(|&i| occupied[i] && values[i] != 0.0)
        .count();
    assert!(moved > 0, "training changed no parameter");
    if let Some(i) = (0..flat.len).find(|&i| !occupied[i] && values[i] != 0.0) {
        panic!("padding element {i} became {}", values[i]);
    }
}

#[test]
fn one_step_lowers_the_loss_on_its_batch() {
    let ctx = gpu();
    let (train, _) = faces(16);
    let model = build(&ctx, ModelKind::Softmax, &Architecture::default(), 2)
        .unwrap()
        .unwrap();
    let sgd = OptimizerSettings {
        kind: OptimizerKind::Sgd,
        lr: 0.01,
        ..adam(0.0)
    };
    let mut optimizer = Optimizer::new(&ctx, &model, &sgd).unwrap();
    let mut runner = Runner::new(&ctx, &model, 0.0).unwrap();
    let hidden = ProgressBar::hidden();
    // One batch holds the whole set, so each epoch's loss is measured before its one update.
    let before = runner
        .train_epoch(&train, &mut optimizer, 1, &epochs(16), &hidden)
        .unwrap();
    let after = runner
        .train_epoch(&train, &mut optimizer, 2, &epochs(16), &hidden)
        .unwrap();
    assert!(
        after.loss < before.loss,
        "loss {} → {}",
        before.loss,
        after.loss
    );
}

#[test]
fn a_diverging_run_stops_with_the_step() {
    let ctx = gpu();
    let (train, _) = faces(32);
    let model = build(&ctx, ModelKind::Softmax, &Architecture::default(), 2)
        .unwrap()
        .unwrap();
    let reckless = OptimizerSettings {
        kind: OptimizerKind::Sgd,
        lr: f64::MAX,
        ..adam(0.0)
    };
    let mut optimizer = Optimizer::new(&ctx, &model, &reckless).unwrap();
    let mut runner = Runner::new(&ctx, &model, 0.0).unwrap();
    let error = (1..=5)
        .find_map(|epoch| {
            runner
                .train_epoch(
                    &train,
                    &mut optimizer,
                    epoch,
                    &epochs(8),
                    &ProgressBar::hidden(),
                )
                .err()
        })
        .expect("an infinite learning rate (as f32) diverges");
    assert!(matches!(error, RunError::Diverged { .. }), "{error}");
    assert!(error.to_string().contains("by step"), "{error}");
}

/// The softmax model with `classes` outputs, as a model file would change it.
fn softmax_with(ctx: &GpuContext, classes: usize) -> Model {
    let mut model = spec(ModelKind::Softmax, &Architecture::default()).unwrap();
    let Some(OpSpec::Linear { out_features, .. }) = model.nodes.last_mut().map(|node| &mut node.op)
    else {
        panic!("the softmax model ends in its linear layer");
    };
    *out_features = classes;
    let graph = model.graph().unwrap();
    Model::new(ctx, "softmax6", &model.input.shape(), graph, 0).unwrap()
}

#[test]
fn a_model_is_refused_data_of_another_class_count_or_shape() {
    let ctx = gpu();
    let (faces, _) = faces(8);
    let six = softmax_with(&ctx, 6);
    let mut runner = Runner::new(&ctx, &six, 0.0).unwrap();
    let error = runner.evaluate(&faces, 4).err().expect("7 classes into 6");
    let error = error.to_string();
    assert!(
        error.starts_with(
            "model `softmax6` predicts 6 classes, but the dataset has 7: give the model's last \
             linear layer out_features 7"
        ),
        "{error}"
    );
    // Six classes of the same faces fit (labels 6 become 5).
    let labels = faces.labels().iter().map(|&label| label.min(5)).collect();
    let names = fer2013::class_names()[..6].to_vec();
    let fitting = Dataset::new(faces.spec().clone(), names, faces.images().to_vec(), labels);
    assert_eq!(runner.evaluate(&fitting, 4).unwrap().logits.len(), 8 * 6);

    let rgb = generate(
        7,
        SplitSizes {
            train: 8,
            val: 0,
            test: 0,
        },
        &ImageSpec::imagenet_rgb(48, 48),
        7,
    )
    .unwrap()
    .train;
    let error = runner.evaluate(&rgb, 4).err().expect("RGB into grey");
    assert!(
        matches!(error, RunError::ImageShape { .. }) && error.to_string().contains("3×48×48"),
        "{error}"
    );
}

/// Training step `step`'s batch of `data`'s images 0..5 under `augment`, read back from the
/// GPU, for a run seeded `seed`.
fn augmented_batch(
    runner: &mut Runner,
    data: &Dataset,
    augment: &Augmentation,
    seed: u64,
    step: u64,
) -> Vec<f32> {
    let settings = EpochSettings {
        seed,
        augment: augment.clone(),
        ..epochs(5)
    };
    runner
        .augmented_batch(data, &[0, 1, 2, 3, 4], &settings, step)
        .unwrap()
}

/// The augmented batch in the model's input equals the twins' pipeline: bit for bit with an
/// even number of out-of-place stages (crop and flip move by whole pixels, so every bilinear
/// weight is 0 or 1; erasing copies), and within roundoff with an odd one, where brightness
/// maps each value x to ((x·std + mean)·b clamped − mean)/std: five f32 roundings of values
/// below 2 in magnitude, divided by std ½, so under 5·4u per value. The same run seed and
/// step give the same batch, another step or seed another; no augmentation uploads the batch
/// as it is.
#[test]
fn augmentation_is_the_twins_pipeline_seeded_per_run_and_step() {
    let ctx = gpu();
    let model = tiny_cnn(&ctx, 1);
    let (train, _) = faces(12);
    let mut runner = Runner::new(&ctx, &model, 0.0).unwrap();
    let plain = to_normalized_f32(&train, &[0, 1, 2, 3, 4]);
    let none = Augmentation::default();
    assert_eq!(augmented_batch(&mut runner, &train, &none, 3, 0), plain);

    for (text, tolerance) in [
        ("crop=3,flip,erase=1", 0.0),
        (
            "crop=3,flip,brightness=0.4,erase=1",
            20.0 / (1u64 << 24) as f64,
        ),
    ] {
        let augment: Augmentation = text.parse().unwrap();
        let got = augmented_batch(&mut runner, &train, &augment, 3, 7);
        let twin = Augmenter::new(&augment, train.spec(), train.spec())
            .unwrap()
            .expect("an augmentation");
        let want = twin.augment_on_cpu(&plain, 3, 7);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() as f64 <= tolerance,
                "{text}: value {i} is {g}, the twins say {w}"
            );
        }
        assert_ne!(got, plain, "{text} changed nothing");

        let mut again = Runner::new(&ctx, &model, 0.0).unwrap();
        assert_eq!(augmented_batch(&mut again, &train, &augment, 3, 7), got);
        for (seed, step) in [(3, 8), (4, 7)] {
            let other = augmented_batch(&mut runner, &train, &augment, seed, step);
            let changed = other.iter().zip(&got).filter(|(a, b)| a != b).count();
            assert!(
                changed > got.len() / 4,
                "{text}: seed {seed} step {step} changed only {changed} values"
            );
        }
    }
}
