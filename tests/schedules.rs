//! Learning-rate schedules against PyTorch's, early stopping against Keras's rules, and both
//! in a short training run.

use fer::report::EpochRecord;
use fer::train::early_stopping::{EarlyStopping, EarlyStoppingState, Monitor, Verdict};
use fer::train::schedule::{RunLength, Schedule, ScheduleState};
use fer::train::session::TrainingState;

// The sequences below are what `python3 scripts/schedule_reference.py` printed with torch
// 2.15.0: the optimizer's lr before each `scheduler.step()`.
/// StepLR(step_size=3, gamma=0.5), lr 0.1, 10 epochs.
const STEP: [f64; 10] = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125];
/// MultiStepLR(milestones=[2, 5, 6], gamma=0.1), lr 0.1, 9 epochs.
const MULTISTEP: [f64; 9] = [
    0.1,
    0.1,
    0.010000000000000002,
    0.010000000000000002,
    0.010000000000000002,
    0.0010000000000000002,
    0.00010000000000000003,
    0.00010000000000000003,
    0.00010000000000000003,
];
/// ExponentialLR(gamma=0.9), lr 0.01, 10 epochs.
const EXPONENTIAL: [f64; 10] = [
    0.01,
    0.009000000000000001,
    0.008100000000000001,
    0.007290000000000001,
    0.006561000000000002,
    0.005904900000000002,
    0.005314410000000002,
    0.004782969000000002,
    0.004304672100000002,
    0.003874204890000002,
];
/// SequentialLR([LinearLR(start_factor=1/3, total_iters=3), CosineAnnealingLR(T_max=9, eta_min=1e-4)], milestones=[3]), lr 0.01, per step: 4 epochs of 3 steps, warmup 1 epoch.
const COSINE_WARMUP: [f64; 12] = [
    0.003333333333333333,
    0.005555555555555556,
    0.0077777777777777776,
    0.01,
    0.009701478472890247,
    0.00884191999343894,
    0.007525000000000001,
    0.005909558479451307,
    0.004190441520548696,
    0.0025750000000000013,
    0.0012580800065610596,
    0.0003985215271097539,
];
/// CosineAnnealingLR(T_max=10), lr 0.01, per step: 5 epochs of 2 steps, no warmup.
const COSINE: [f64; 10] = [
    0.01,
    0.009755282581475769,
    0.009045084971874737,
    0.007938926261462366,
    0.006545084971874737,
    0.005,
    0.003454915028125263,
    0.0020610737385376348,
    0.0009549150281252633,
    0.00024471741852423234,
];
/// OneCycleLR(max_lr=0.01, total_steps=25, cycle_momentum=False), its other defaults: 5 epochs of 5 steps.
const ONE_CYCLE: [f64; 25] = [
    0.0003999999999999993,
    0.0009498110768645929,
    0.0024732892156904525,
    0.004621423934774449,
    0.006902103457804171,
    0.008792851591221286,
    0.00986052072364505,
    0.009979871550490316,
    0.009819815024222052,
    0.009504846320134737,
    0.00904508879153485,
    0.008455319423681345,
    0.007754493889320884,
    0.006965137297768985,
    0.0061126202193628925,
    0.005224343254455968,
    0.004328856355577041,
    0.003454941208465151,
    0.0026306861650082568,
    0.00188258346050237,
    0.0012346777314112658,
    0.0007077932009665415,
    0.0003188643714987268,
    8.039173559862365e-05,
    4e-08,
];
/// OneCycleLR(max_lr=0.1, total_steps=20, pct_start=0.25, div_factor=10, final_div_factor=100, three_phase=True, anneal_strategy='linear', cycle_momentum=False).
const ONE_CYCLE_THREE_PHASE_LINEAR: [f64; 20] = [
    0.01,
    0.0325,
    0.05500000000000001,
    0.0775,
    0.1,
    0.0775,
    0.055,
    0.0325,
    0.009999999999999995,
    0.0091,
    0.0082,
    0.0073,
    0.0063999999999999994,
    0.0055,
    0.0046,
    0.0037,
    0.0027999999999999995,
    0.001899999999999999,
    0.0009999999999999992,
    9.99999999999994e-05,
];
/// The validation losses fed to the plateau schedules, one per epoch.
const PLATEAU_LOSSES: [f64; 18] = [
    1.0, 0.9, 0.8995, 0.899, 0.9, 0.85, 0.86, 0.87, 0.88, 0.84, 0.845, 0.85, 0.86, 0.87, 0.88,
    0.89, 0.9, 0.91,
];
/// ReduceLROnPlateau(factor=0.5, patience=2, threshold=0.01, cooldown=1, min_lr=0.02), lr 0.1, on PLATEAU_LOSSES.
const PLATEAU_MIN_REL: [f64; 18] = [
    0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.02, 0.02, 0.02,
    0.02, 0.02,
];
/// The validation accuracies fed to the max-mode plateau schedule, one per epoch.
const PLATEAU_ACCURACIES: [f64; 14] = [
    0.2, 0.3, 0.35, 0.36, 0.3, 0.31, 0.5, 0.5, 0.5, 0.55, 0.4, 0.4, 0.4, 0.4,
];
/// ReduceLROnPlateau(mode='max', factor=0.1, patience=1, threshold=0.02, threshold_mode='abs'), lr 0.1, on PLATEAU_ACCURACIES.
const PLATEAU_MAX_ABS: [f64; 14] = [
    0.1,
    0.1,
    0.1,
    0.1,
    0.1,
    0.010000000000000002,
    0.010000000000000002,
    0.010000000000000002,
    0.010000000000000002,
    0.0010000000000000002,
    0.0010000000000000002,
    0.0010000000000000002,
    0.00010000000000000003,
    0.00010000000000000003,
];

/// PyTorch computes most schedules recursively (lr ← lr·factor each step), fer in closed form;
/// the two differ by a few roundings of a 53-bit mantissa per step (≈1e-15 relative over these
/// lengths), far inside 1e-12.
fn assert_close(name: &str, fer: &[f64], torch: &[f64]) {
    assert_eq!(fer.len(), torch.len(), "{name}: {fer:?}");
    for (i, (&a, &b)) in fer.iter().zip(torch).enumerate() {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs(),
            "{name}: step {i}: fer {a}, PyTorch {b}\nfer {fer:?}"
        );
    }
}

/// The lr of every step of a run of `run.epochs` epochs at base lr `lr`, a plateau seeing
/// `val_losses` (or `val_accs`) after each epoch; one value per epoch for per-epoch schedules.
fn lrs(spec: &str, lr: f64, run: RunLength, metrics: &[f64]) -> Vec<f64> {
    let schedule = Schedule::parse(spec).unwrap();
    let mut state = ScheduleState::new(lr);
    let mut all = Vec::new();
    for epoch in 0..run.epochs {
        all.extend(schedule.epoch_lrs(&mut state, epoch, run));
        let value = metrics.get(epoch).copied().unwrap_or(f64::NAN);
        schedule.end_epoch(&mut state, &record(epoch + 1, value, value));
    }
    all
}

fn record(epoch: usize, val_loss: f64, val_acc: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        train_loss: 1.0,
        train_acc: 0.5,
        val_loss,
        val_acc,
        seconds: 0.1,
        val_recall: Vec::new(),
    }
}

fn epochs(epochs: usize) -> RunLength {
    RunLength {
        epochs,
        steps_per_epoch: 7,
    }
}

#[test]
fn per_epoch_schedules_match_pytorch() {
    assert_close(
        "step",
        &lrs("step:step_size=3,gamma=0.5", 0.1, epochs(10), &[]),
        &STEP,
    );
    assert_close(
        "multistep",
        &lrs("multistep:milestones=2,5,6,gamma=0.1", 0.1, epochs(9), &[]),
        &MULTISTEP,
    );
    assert_close(
        "exponential",
        &lrs("exponential:gamma=0.9", 0.01, epochs(10), &[]),
        &EXPONENTIAL,
    );
}

#[test]
fn per_step_schedules_match_pytorch() {
    let run = |epochs, steps_per_epoch| RunLength {
        epochs,
        steps_per_epoch,
    };
    assert_close(
        "cosine with warmup",
        &lrs("cosine:warmup=1,eta_min=1e-4", 0.01, run(4, 3), &[]),
        &COSINE_WARMUP,
    );
    assert_close("cosine", &lrs("cosine", 0.01, run(5, 2), &[]), &COSINE);
    // One-cycle ignores the optimizer's lr: it starts from max_lr / div_factor.
    assert_close(
        "onecycle",
        &lrs("onecycle:max_lr=0.01", 0.5, run(5, 5), &[]),
        &ONE_CYCLE,
    );
    assert_close(
        "onecycle, three phases, linear",
        &lrs(
            "onecycle:max_lr=0.1,pct_start=0.25,div_factor=10,final_div_factor=100,three_phase,anneal=linear",
            0.5,
            run(4, 5),
            &[],
        ),
        &ONE_CYCLE_THREE_PHASE_LINEAR,
    );
}

#[test]
fn plateau_matches_pytorch() {
    let run = epochs(PLATEAU_LOSSES.len());
    assert_close(
        "plateau on val_loss",
        &lrs(
            "plateau:factor=0.5,patience=2,threshold=0.01,cooldown=1,min_lr=0.02",
            0.1,
            run,
            &PLATEAU_LOSSES,
        ),
        &PLATEAU_MIN_REL,
    );
    let run = epochs(PLATEAU_ACCURACIES.len());
    assert_close(
        "plateau on val_acc",
        &lrs(
            "plateau:monitor=val_acc,factor=0.1,patience=1,threshold=0.02,threshold_mode=abs",
            0.1,
            run,
            &PLATEAU_ACCURACIES,
        ),
        &PLATEAU_MAX_ABS,
    );
}

#[test]
fn a_switch_rebases_the_schedule_and_plateau_keeps_its_counters() {
    let schedule = Schedule::parse("step:step_size=2,gamma=0.5").unwrap();
    let mut state = ScheduleState::new(1e-3);
    assert_eq!(schedule.epoch_lrs(&mut state, 1, epochs(4)), [1e-3]);
    state.rebase(0.1);
    assert_eq!(schedule.epoch_lrs(&mut state, 2, epochs(4)), [0.05]);

    let plateau = Schedule::parse("plateau:patience=0").unwrap();
    let mut state = ScheduleState::new(1e-3);
    plateau.end_epoch(&mut state, &record(1, 0.5, 0.0));
    state.rebase(0.1);
    plateau.end_epoch(&mut state, &record(2, 0.6, 0.0));
    assert_eq!(state.best, Some(0.5), "the best carries over the switch");
    // The reduction applies to the new optimizer's lr.
    let lr = plateau.epoch_lrs(&mut state, 2, epochs(4))[0];
    assert!((lr - 0.01).abs() < 1e-15, "{lr}");
}

#[test]
fn bad_schedules_are_one_sentence_naming_the_key() {
    for (spec, words) in [
        ("step:gama=0.5", "`gama`"),
        ("step:gamma=-1", "`gamma` must be a number above 0"),
        ("plateau:factor=1", "`factor` must be between 0 and 1"),
        ("plateau:mode=up", "`mode` must be min or max"),
        (
            "multistep:milestones=5,3",
            "`milestones` must be increasing",
        ),
        ("onecycle", "`max_lr`"),
        ("warmup", "unknown schedule `warmup`"),
    ] {
        let error = Schedule::parse(spec).unwrap_err();
        assert!(error.contains(words), "{spec}: {error}");
        assert!(!error.contains('\n'), "{spec}: {error}");
    }
    let error = Schedule::parse("cosine:warmup=3")
        .unwrap()
        .check(3)
        .unwrap_err();
    assert!(error.contains("warmup of 3 epochs"), "{error}");
}

/// Keras: `wait` counts epochs since the best; stop once it reaches `patience` without an
/// improvement of more than `min_delta`.
#[test]
fn early_stopping_follows_keras() {
    let stopping = EarlyStopping::parse("val_loss:patience=2,min_delta=0.05").unwrap();
    assert!(stopping.restore_best_weights);
    let mut state = EarlyStoppingState::default();
    let verdicts: Vec<Verdict> = [1.0, 0.9, 0.88, 0.86, 0.7, 0.8]
        .iter()
        .enumerate()
        .map(|(i, &loss)| stopping.update(&mut state, i + 1, loss))
        .collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Improved { previous: None },
            Verdict::Improved {
                previous: Some(1.0)
            },
            // 0.88 and 0.86 beat 0.9, but not by more than 0.05.
            Verdict::NotImproved,
            Verdict::Stop,
            // (Training would have stopped; the rule goes on as Keras's would.)
            Verdict::Improved {
                previous: Some(0.9)
            },
            Verdict::NotImproved,
        ]
    );
    assert_eq!(state.best_epoch, Some(5));

    let accuracy = EarlyStopping::parse("val_acc:restore=false").unwrap();
    assert_eq!((accuracy.monitor, accuracy.patience), (Monitor::ValAcc, 0));
    let mut state = EarlyStoppingState::default();
    assert!(matches!(
        accuracy.update(&mut state, 1, 0.5),
        Verdict::Improved { .. }
    ));
    assert!(matches!(
        accuracy.update(&mut state, 2, 0.6),
        Verdict::Improved { .. }
    ));
    assert_eq!(accuracy.update(&mut state, 3, 0.6), Verdict::Stop);
    assert!(EarlyStopping::parse("loss:patience=2")
        .unwrap_err()
        .contains("val_loss or val_acc"));
}

#[test]
fn the_training_state_round_trips_through_json() {
    let schedule = Schedule::parse("plateau:patience=0").unwrap();
    let mut state = TrainingState {
        epoch: 3,
        step: 42,
        schedule: ScheduleState::new(0.1),
        early_stopping: EarlyStoppingState::default(),
    };
    schedule.end_epoch(&mut state.schedule, &record(1, 0.5, 0.0));
    schedule.end_epoch(&mut state.schedule, &record(2, 0.7, 0.0));
    EarlyStopping::parse("val_loss")
        .unwrap()
        .update(&mut state.early_stopping, 1, 0.5);
    let json = serde_json::to_string(&state).unwrap();
    let back: TrainingState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state, "{json}");
}

fn gpu() -> fer::gpu::GpuContext {
    let options = fer::gpu::GpuOptions::from_env().expect("FER_BACKEND");
    fer::gpu::GpuContext::new(&options).expect("a GPU adapter")
}

/// The trainable parameters of a softmax model after one epoch of SGD built at `built_lr`,
/// with `set_lr` then given `scheduled` when there is one.
fn softmax_after_one_epoch(built_lr: f64, scheduled: Option<Vec<f64>>) -> Vec<f32> {
    use fer::data::synthetic::{generate, SplitSizes};
    use fer::nn::models::{build, Architecture, ModelKind};
    use fer::train::optimizer::{Optimizer, OptimizerKind, OptimizerSettings};
    use fer::train::runner::{EpochSettings, Runner};
    let ctx = gpu();
    let sizes = SplitSizes {
        train: 20,
        val: 0,
        test: 0,
    };
    let spec = fer::data::ImageSpec::study_grey();
    let train = generate(5, sizes, &spec, 7).unwrap().train;
    let model = build(&ctx, ModelKind::Softmax, &Architecture::default(), 1)
        .unwrap()
        .unwrap();
    let settings = OptimizerSettings::plain(OptimizerKind::Sgd, built_lr);
    let mut optimizer = Optimizer::new(&ctx, &model, &settings).unwrap();
    if let Some(lrs) = scheduled {
        optimizer.set_lr(lrs);
    }
    let epoch = EpochSettings {
        batch_size: 8,
        seed: 1,
        augment: Default::default(),
        readback_every: 10,
    };
    let mut runner = Runner::new(&ctx, &model, 0.0).unwrap();
    let hidden = indicatif::ProgressBar::hidden();
    runner
        .train_epoch(&train, &mut optimizer, 1, &epoch, &hidden)
        .unwrap();
    model.params.trainable().unwrap().values.read(&ctx).unwrap()
}

#[test]
fn the_optimizer_steps_at_the_scheduled_lrs() {
    // Three steps (batches of 8, 8 and 4): the last scheduled lr holds for the third.
    let built_at_0_05 = softmax_after_one_epoch(0.05, None);
    let scheduled = softmax_after_one_epoch(1e-4, Some(vec![0.05, 0.05]));
    assert_eq!(built_at_0_05, scheduled);
    let slower_first_step = softmax_after_one_epoch(0.05, Some(vec![0.01, 0.05]));
    assert_ne!(built_at_0_05, slower_first_step);
}

fn fer_train(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_fer"))
        .arg("train")
        .args(args)
        .output()
        .expect("the fer binary runs")
}

#[test]
fn early_stopping_stops_and_ends_with_the_best_epochs_weights() {
    let results = std::env::temp_dir().join(format!("fer-schedules-{}", std::process::id()));
    // No epoch can beat the first by 1000, so training stops after the second and restores
    // the first's weights.
    let out = fer_train(&[
        "--model",
        "softmax",
        "--synthetic-train",
        "48",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--schedule",
        "step:step_size=1,gamma=0.5",
        "--switch-to-sgd",
        "2:lr=0.05,momentum=0.9",
        "--early-stopping",
        "val_loss:patience=0,min_delta=1000",
        "--results",
        &results.to_string_lossy(),
        "--quiet",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The second epoch runs the switched SGD's lr, halved once by the step schedule.
    assert!(
        text.contains("lr 1.000e-2 → 2.500e-2  switching to a fresh SGD (lr 0.05, momentum 0.9)"),
        "{text}"
    );
    assert!(
        text.contains(
            "early stopping: val_loss did not improve by 1000 for 0 epochs; restored epoch 1's \
             weights (val_loss "
        ),
        "{text}"
    );
    assert!(!text.contains("epoch 3/4"), "{text}");
    let dir = results.join("softmax");
    // Both describe themselves, so `fer eval`, `predict` and `live` need only the file.
    let described: Vec<_> = ["model.safetensors", "best.safetensors"]
        .iter()
        .map(|file| {
            fer::train::checkpoint::describe(&dir.join(file))
                .unwrap_or_else(|error| panic!("{file}: {error}"))
                .unwrap_or_else(|| panic!("{file} does not describe itself"))
        })
        .collect();
    assert_eq!(described[0].classes, described[1].classes);
    assert_eq!(described[0].input, described[1].input);
    assert!(!described[1].classes.is_empty());
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    let history = metrics["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    let (first, second) = (&history[0], &history[1]);
    assert_ne!(first["val_loss"], second["val_loss"], "the epochs differ");
    // The final evaluation is the first epoch's, to the bit: the same weights and kernels.
    assert_eq!(metrics["run"]["val_loss"], first["val_loss"]);
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    assert!((accuracy - first["val_acc"].as_f64().unwrap()).abs() < 1e-12);
    let state = &metrics["run"]["training_state"];
    assert_eq!(state["early_stopping"]["best_epoch"], 1);
    assert_eq!(state["epoch"], 2);
    let _ = std::fs::remove_dir_all(&results);
}

#[test]
fn bad_callback_options_are_one_sentence_naming_the_option_and_key() {
    for (args, words) in [
        (
            &["--schedule", "plateau:patience=-1"][..],
            &["--schedule", "`patience` must be a whole number"][..],
        ),
        (
            &["--early-stopping", "val_loss:patiense=3"],
            &[
                "--early-stopping",
                "`patiense`",
                "patience, min_delta, restore",
            ],
        ),
        (
            &["--switch-to-sgd", "3:nesterov"],
            &["--switch-to-sgd", "`nesterov` needs a `momentum`"],
        ),
        (
            &["--switch-to-sgd", "12", "--epochs", "3"],
            &["switch to SGD at epoch 12 comes after the last of the 3 epochs"],
        ),
    ] {
        let mut all = vec!["--model", "softmax", "--synthetic-train", "8", "--quiet"];
        all.extend(args);
        let out = fer_train(&all);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        for word in words {
            assert!(text.contains(word), "{args:?}: {text}");
        }
        assert!(!text.contains("panicked"), "{text}");
    }
}
