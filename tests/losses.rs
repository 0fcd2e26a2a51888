//! The training loss and the optimizer's parameter groups as a run wires them: class weights
//! weigh training steps and not evaluation, and an L2 penalty decays only its tensors.

use fer::data::synthetic::{generate, SplitSizes};
use fer::data::ImageSpec;
use fer::gpu::{GpuContext, GpuOptions};
use fer::graph::Model;
use fer::nn::models::{build, Architecture, ModelKind};
use fer::reference::optim::{sgd_step, SgdConfig};
use fer::reference::softmax_ce as twin;
use fer::rng::Rng;
use fer::train::loss::Loss;
use fer::train::optimizer::{L2Penalty, Optimizer, OptimizerKind, OptimizerSettings};
use fer::train::runner::{EpochSettings, Runner};
use indicatif::ProgressBar;

/// f32 unit roundoff.
const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

fn model(ctx: &GpuContext, kind: ModelKind) -> Model {
    let small = Architecture {
        mlp_hidden: [16, 8],
        ..Architecture::default()
    };
    build(ctx, kind, &small, 2).unwrap().unwrap()
}

/// One epoch at lr 0 (the parameters stay put, so its loss is over the logits evaluation
/// reads back) in one batch: the training loss must be the weighted twin's, the evaluation
/// loss the unweighted one's. The softmax model has no dropout or batch norm, so training and
/// evaluation compute the same logits.
#[test]
fn class_weights_weigh_training_and_not_evaluation() {
    let ctx = gpu();
    let sizes = SplitSizes {
        train: 20,
        val: 0,
        test: 0,
    };
    let train = generate(4, sizes, &ImageSpec::study_grey(), 7)
        .unwrap()
        .train;
    let model = model(&ctx, ModelKind::Softmax);
    let weights = vec![0.5, 4.0, 1.0, 2.0, 1.0, 0.25, 3.0];
    let losses = [
        Loss {
            label_smoothing: 0.1,
            focal_gamma: 0.0,
            class_weights: Some(weights.clone()),
        },
        Loss {
            label_smoothing: 0.0,
            focal_gamma: 2.0,
            class_weights: Some(weights.clone()),
        },
    ];
    for loss in losses {
        let still = OptimizerSettings::plain(OptimizerKind::Sgd, 0.0);
        let mut optimizer = Optimizer::new(&ctx, &model, &still).unwrap();
        let mut runner = Runner::with_loss(&ctx, &model, loss.clone()).unwrap();
        let epoch = EpochSettings {
            batch_size: train.len(),
            seed: 1,
            augment: Default::default(),
            readback_every: 1,
        };
        let fit = runner
            .train_epoch(&train, &mut optimizer, 1, &epoch, &ProgressBar::hidden())
            .unwrap();
        let evaluation = runner.evaluate(&train, train.len()).unwrap();
        let labels: Vec<u32> = train.labels().iter().map(|&l| l as u32).collect();
        let ce = loss.over(train.len(), 7);
        let weighted = twin::loss(&ce, &evaluation.logits, &labels, Some(&weights));
        let unweighted = twin::loss(&ce, &evaluation.logits, &labels, None);
        // Each row's loss is within ≈ (5C + 24 + C + 4)·u of the twin's (relative to its
        // weights, kernels-tests/softmax_ce.rs), the 20-row sums add γ_20: under 100u in all,
        // for the focal loss's pow a few hundred u; 1e-4 relative is ample, and far below the
        // gap between the weighted and unweighted values.
        assert!(
            (weighted - unweighted).abs() > 1e-2 * unweighted,
            "the weights must matter"
        );
        for (what, got, want) in [
            ("training", fit.loss, weighted),
            ("evaluation", evaluation.totals.loss, unweighted),
        ] {
            assert!(
                (got - want).abs() <= 1e-4 * want,
                "{loss:?}: {what} loss {got}, the twin says {want}"
            );
        }
    }
}

/// The trainable tensors' ranges of the flat storage and whether each is a Linear weight
/// (the only 2-D tensors of the mlp; its batch norms have 1-D weights).
fn tensors(model: &Model) -> Vec<(std::ops::Range<usize>, bool)> {
    let flat = model.params.trainable().expect("trainable tensors");
    model
        .params
        .iter()
        .filter(|p| p.spec.trainable)
        .map(|p| {
            let start = ((p.value.offset_bytes() - flat.values.offset_bytes()) / 4) as usize;
            (start..start + p.spec.len(), p.spec.shape.len() == 2)
        })
        .collect()
}

/// `--l2 dense=λ` with SGD: a step decays each Linear weight by wd + 2λ (Keras's gradient of
/// λ·Σw², coupled) and every other tensor (biases, batch norm) by wd alone, each tensor held
/// against the twin's step with that decay. The mlp's tensors alternate, so the step is six
/// dispatches of two groups; without the penalty it is one.
#[test]
fn an_l2_penalty_decays_only_the_tensors_it_chooses() {
    let ctx = gpu();
    let model = model(&ctx, ModelKind::Mlp);
    let settings = OptimizerSettings {
        momentum: 0.9,
        weight_decay: 1e-3,
        ..OptimizerSettings::plain(OptimizerKind::Sgd, 0.5)
    };
    let plain = Optimizer::new(&ctx, &model, &settings).unwrap();
    assert_eq!(plain.dispatches().len(), 1, "one group is one dispatch");
    let lambda = 0.05;
    let dense: L2Penalty = format!("dense={lambda}").parse().unwrap();
    let mut optimizer = Optimizer::with_l2(&ctx, &model, &settings, &[dense]).unwrap();
    assert_eq!(optimizer.dispatches().len(), 6);

    let flat = model.params.trainable().unwrap();
    let before: Vec<f32> = flat.values.read(&ctx).unwrap();
    let grads = Rng::new(9).uniform_vec(flat.len, -1.0, 1.0);
    flat.grads.write(&ctx, &grads);
    optimizer.prepare_step(&ctx);
    ctx.run(optimizer.dispatches()).unwrap();
    let after: Vec<f32> = flat.values.read(&ctx).unwrap();

    for (range, is_dense) in tensors(&model) {
        let config = SgdConfig {
            momentum: 0.9,
            weight_decay: 1e-3 + if is_dense { 2.0 * lambda } else { 0.0 },
            ..SgdConfig::default()
        };
        let mut want = before[range.clone()].to_vec();
        let mut buffer = vec![0.0; range.len()];
        sgd_step(
            &config,
            0.5,
            1,
            &mut want,
            &grads[range.clone()],
            Some(&mut buffer),
        );
        for (k, i) in range.enumerate() {
            // The first momentum step is p − lr·(g + wd·p): within 3u·|p| + 12u·lr·D,
            // D = |g| + wd·|p| (kernels-tests/optim.rs).
            let d = grads[i].abs() as f64 + config.weight_decay * before[i].abs() as f64;
            let tolerance = 3.0 * U * want[k].abs() as f64 + 12.0 * U * 0.5 * d;
            let error = (after[i] as f64 - want[k] as f64).abs();
            assert!(
                error <= tolerance,
                "element {i} (dense: {is_dense}): {} but the twin says {} (tolerance {tolerance:e})",
                after[i],
                want[k]
            );
        }
    }
}

/// What the optimizer refuses, in one sentence, and what it takes together.
#[test]
fn l2_penalties_that_cannot_apply_are_refused_and_adamw_takes_one() {
    let ctx = gpu();
    let model = model(&ctx, ModelKind::Mlp);
    let sgd = OptimizerSettings::plain(OptimizerKind::Sgd, 0.1);
    let conv: L2Penalty = "conv=1e-4".parse().unwrap();
    let error = Optimizer::with_l2(&ctx, &model, &sgd, &[conv])
        .err()
        .expect("the mlp has no conv");
    assert_eq!(
        error.to_string(),
        "invalid optimizer settings: --l2 conv chooses no trainable tensor of model `mlp`"
    );
    // AdamW's decoupled decay and an L2 penalty on the gradient go together (the update is
    // held against its twin in kernels-tests/optim.rs).
    let adamw = OptimizerSettings {
        weight_decay: 0.01,
        ..OptimizerSettings::plain(OptimizerKind::Adamw, 1e-3)
    };
    let dense: L2Penalty = "dense=1e-4".parse().unwrap();
    assert!(Optimizer::with_l2(&ctx, &model, &adamw, &[dense]).is_ok());
}
