//! Runs that survive being stopped: a `fer train` killed with SIGKILL at a random step, or
//! interrupted with Ctrl-C, and resumed with `--resume` ends with the weights of the run never
//! stopped, bit for bit; so does a run resumed between epochs with Adam and a plateau schedule,
//! whose optimizer moments and schedule counters must carry over.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use safetensors::tensor::SafeTensors;

mod common;
use common::TempDir;

/// A tiny run with every random stream on: the mlp (dropout) on 96 synthetic faces, flipped
/// at random, 12 steps an epoch.
fn run_args(seed: u64, epochs: usize, results: &Path) -> Vec<String> {
    let args = [
        "train",
        "--model",
        "mlp",
        "--mlp-hidden",
        "16,8",
        "--synthetic-train",
        "96",
        "--batch-size",
        "8",
        "--flip",
        "--quiet",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend([
        "--seed".into(),
        seed.to_string(),
        "--epochs".into(),
        epochs.to_string(),
        "--results".into(),
        results.display().to_string(),
    ]);
    args
}

fn fer(args: &[String]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .output()
        .expect("the fer binary runs");
    assert!(
        out.status.success(),
        "fer {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the fer binary runs")
}

/// Every tensor of two checkpoints equal, bit for bit (their metadata may list its keys in
/// another order).
fn assert_same_tensors(expected: &Path, got: &Path) {
    let (expected, got) = (fs::read(expected).unwrap(), fs::read(got).unwrap());
    let (expected, got) = (
        SafeTensors::deserialize(&expected).unwrap(),
        SafeTensors::deserialize(&got).unwrap(),
    );
    let mut names = expected.names();
    names.sort();
    let mut got_names = got.names();
    got_names.sort();
    assert_eq!(names, got_names);
    for name in names {
        let (a, b) = (expected.tensor(name).unwrap(), got.tensor(name).unwrap());
        assert!(
            a.data() == b.data(),
            "tensor `{name}` differs from the uninterrupted run's"
        );
    }
}

/// The epochs' losses and accuracies of a run's `metrics.json` (without their times).
fn history(run: &Path) -> Vec<serde_json::Value> {
    let metrics = fs::read_to_string(run.join("mlp").join("metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    let mut epochs = metrics["history"].as_array().unwrap().clone();
    for epoch in &mut epochs {
        epoch.as_object_mut().unwrap().remove("seconds");
    }
    epochs
}

/// The resumed run ends as the uninterrupted one: the same weights and the same history (the
/// training loss of the epoch it was stopped in included).
fn assert_same_run(whole: &Path, resumed: &Path) {
    let model = |run: &Path| run.join("mlp").join("model.safetensors");
    assert_same_tensors(&model(whole), &model(resumed));
    assert_eq!(history(whole), history(resumed));
    // The same bytes too: the metadata keeps one order.
    assert!(fs::read(model(whole)).unwrap() == fs::read(model(resumed)).unwrap());
}

/// The global step a resumable checkpoint holds (none while there is no file yet).
fn checkpoint_step(path: &Path) -> Option<u64> {
    let mut file = fs::File::open(path).ok()?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).ok()?;
    let mut header = vec![0u8; u64::from_le_bytes(length) as usize];
    file.read_exact(&mut header).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&header).ok()?;
    let point: serde_json::Value =
        serde_json::from_str(header["__metadata__"]["fer_resume"].as_str()?).ok()?;
    point["state"]["step"].as_u64()
}

/// A number that differs from run to run, printed so a failure can be replayed.
fn random_below(bound: u64) -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    nanos.subsec_nanos() as u64 % bound
}

const EPOCHS: usize = 3;
const STEPS: u64 = 3 * 12;

/// Trains uninterrupted, then again stopped by `stop` once its checkpoint (written
/// `--checkpoint-every` `every`: each step, in steps or in a time shorter than one) holds a
/// random step, resumes that one, and compares the final weights. Returns the
/// stopped child's output.
fn stopped_and_resumed(name: &str, seed: u64, every: &str, stop: impl Fn(&mut Child)) -> Output {
    let dir = TempDir::new(name);
    let whole = dir.0.join("whole");
    fer(&run_args(seed, EPOCHS, &whole));
    let stopped = dir.0.join("stopped");
    let mut args = run_args(seed, EPOCHS, &stopped);
    let target = 1 + random_below(STEPS - 2);
    let checkpoint = stopped.join("mlp").join("resume.safetensors");
    let mut child = spawn(
        &[
            args.clone(),
            vec!["--checkpoint-every".into(), every.into()],
        ]
        .concat(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while checkpoint_step(&checkpoint).is_none_or(|step| step < target) {
        assert!(Instant::now() < deadline, "no checkpoint of step {target}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before step {target}"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
    stop(&mut child);
    let output = child.wait_with_output().unwrap();
    let at = checkpoint_step(&checkpoint).unwrap();
    println!("{name}, seed {seed}: stopped after step {target}, resumed from step {at}");
    assert!(at < STEPS, "the run had finished: the stop proved nothing");
    args.push("--resume".into());
    fer(&args);
    assert_same_run(&whole, &stopped);
    output
}

#[test]
fn a_run_killed_at_a_random_step_resumes_to_the_same_weights() {
    for (seed, every) in [(1, "1"), (2, "0.001s")] {
        let output = stopped_and_resumed("kill", seed, every, |child| child.kill().unwrap());
        assert!(!output.status.success());
    }
}

/// Ctrl-C finishes the step, writes the checkpoint and the results so far, says how to resume
/// and exits with 130, as a shell reports a SIGINT.
#[test]
fn ctrl_c_checkpoints_and_the_run_resumes_to_the_same_weights() {
    let output = stopped_and_resumed("ctrl-c", 3, "1", |child| {
        let interrupt = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(interrupt.success());
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("wrote "), "no results written: {stdout}");
    assert!(stdout.contains(" --resume"), "no resume command: {stdout}");
}

/// Adam's moments and step count and ReduceLROnPlateau's counters (patience 0, so the lr
/// drops often) carry across a resumption between epochs; other settings are refused.
#[test]
fn a_run_resumed_between_epochs_keeps_adams_moments_and_the_plateau_schedule() {
    let dir = TempDir::new("epochs");
    let recipe = |epochs, results: &Path| {
        let mut args = run_args(4, epochs, results);
        args.extend(
            [
                "--optimizer",
                "adam",
                "--schedule",
                "plateau:factor=0.5,patience=0",
            ]
            .map(String::from),
        );
        args
    };
    let whole = dir.0.join("whole");
    fer(&recipe(4, &whole));
    let parts = dir.0.join("parts");
    fer(&recipe(2, &parts));
    let mut other = recipe(4, &parts);
    other.extend(["--lr".into(), "0.01".into(), "--resume".into()]);
    let refused = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(&other)
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && message.contains("optimizer.lr 0.001 (now 0.01)"),
        "{message}"
    );
    let mut resumed = recipe(4, &parts);
    resumed.push("--resume".into());
    fer(&resumed);
    assert_same_run(&whole, &parts);
}

/// A run resumed on a dataset of other classes (the same sizes, one class renamed) is refused
/// with the classes named: its weights were trained for the classes it started with.
#[test]
fn a_run_is_not_resumed_on_other_classes() {
    let dir = TempDir::new("classes");
    let dataset = |name: &str, classes: [&str; 3]| {
        let root = dir.0.join(name);
        for split in ["train", "val"] {
            for (index, class) in classes.iter().enumerate() {
                let folder = root.join(split).join(class);
                std::fs::create_dir_all(&folder).unwrap();
                for n in 0..2u8 {
                    image::GrayImage::from_pixel(48, 48, image::Luma([index as u8 * 60 + n]))
                        .save(folder.join(format!("{n}.png")))
                        .unwrap();
                }
            }
        }
        root.display().to_string()
    };
    let first = dataset("first", ["angry", "happy", "sad"]);
    let other = dataset("other", ["angry", "happy", "surprise"]);
    let model = common::linear_model_file(&dir.0, "three", 3);
    let results = dir.0.join("results").display().to_string();
    let train = |data: &str, epochs: &str, resume: bool| {
        let mut args = vec![
            "train",
            "--model-file",
            model.to_str().unwrap(),
            "--data",
            data,
            "--epochs",
            epochs,
            "--results",
            &results,
            "--quiet",
        ];
        if resume {
            args.push("--resume");
        }
        Command::new(env!("CARGO_BIN_EXE_fer"))
            .args(&args)
            .output()
            .unwrap()
    };
    let started = train(&first, "1", false);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let refused = train(&other, "2", true);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && message
                .contains(r#"classes ["angry","happy","sad"] (now ["angry","happy","surprise"])"#),
        "{message}"
    );
}
