//! `fer train --load-size`: a model reading 44×44 trains on random crops of 48×48 faces, its
//! checkpoint records the load size, and `fer eval` follows it — the centre crop without TTA
//! (validation's numbers again), the ten crops with `--tta tencrop`.

mod common;

use common::*;
use fer::train::checkpoint;

/// A conv, its ReLU and a classifier over every position (so that each crop scores its own):
/// small, and it reads 44×44.
fn tiny_44(dir: &std::path::Path) -> String {
    let graph = serde_json::json!({
        "name": "tiny44",
        "input": {"channels": 1, "height": 44, "width": 44, "mean": [0.5], "std": [0.5]},
        "nodes": [
            {"name": "conv", "op": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3},
            {"name": "relu", "op": "relu"},
            {"name": "flat", "op": "flatten"},
            {"name": "fc", "op": "linear", "in_features": 2 * 42 * 42, "out_features": 7},
        ],
    });
    let file = dir.join("tiny44.json");
    std::fs::write(&file, graph.to_string()).unwrap();
    text(&file)
}

/// The number after `key` in `text` (`val_loss 1.9459`).
fn number_after(text: &str, key: &str) -> f64 {
    let (_, rest) = text
        .split_once(&format!("{key} "))
        .unwrap_or_else(|| panic!("no `{key}` in:\n{text}"));
    let word = rest.split_whitespace().next().unwrap();
    word.parse().unwrap_or_else(|_| panic!("`{key} {word}`"))
}

const FACES: [&str; 4] = ["--synthetic-train", "32", "--seed", "3"];

/// Trains `model` one epoch at `load_size` with a flip, into `results`; stdout.
fn train(model: &str, load_size: &str, results: &std::path::Path) -> String {
    let args = [
        "train",
        "--model-file",
        model,
        "--load-size",
        load_size,
        "--augment",
        "flip",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--quiet",
        "--results",
        &text(results),
    ];
    succeeded(&fer(&[&args[..], &FACES].concat()))
}

fn eval(checkpoint: &std::path::Path, tta: &[&str]) -> std::process::Output {
    let args = ["eval", "--checkpoint", &text(checkpoint), "--split", "val"];
    fer(&[&args[..], &FACES, tta].concat())
}

#[test]
fn training_on_random_crops_evaluates_on_the_centre_and_ten_crops() {
    let dir = TempDir::new("load-size");
    let model = tiny_44(&dir.0);
    let trained = train(&model, "48", &dir.0.join("results"));
    let checkpoint = dir.0.join("results/tiny44/model.safetensors");
    assert_eq!(checkpoint::load_size(&checkpoint).unwrap(), Some(48));
    let description = checkpoint::describe(&checkpoint).unwrap().unwrap();
    assert_eq!(description.input.shape(), [1, 44, 44]);

    // The checkpoint alone says how to read the faces: validation's centre crops again.
    // `fer eval`'s last line: `loss 1.9459  accuracy 0.1250`.
    let centre = succeeded(&eval(&checkpoint, &[]));
    let centre = centre.lines().last().unwrap();
    for (val, evaluated) in [("val_loss", "loss"), ("val_acc", "accuracy")] {
        assert_eq!(
            format!("{:.4}", number_after(&trained, val)),
            format!("{:.4}", number_after(centre, evaluated)),
            "{val}:\n{trained}\n{centre}"
        );
    }
    let ten = eval(&checkpoint, &["--tta", "tencrop"]);
    let tencrop = succeeded(&ten);
    let tencrop = tencrop.lines().last().unwrap();
    assert!(
        String::from_utf8_lossy(&ten.stderr).contains("test-time augmentation: tencrop:44@48"),
        "{}",
        String::from_utf8_lossy(&ten.stderr)
    );
    assert_ne!(
        number_after(tencrop, "loss"),
        number_after(centre, "loss"),
        "ten crops scored as the centre one"
    );

    // A load size equal to the input crops nothing and records nothing, so ten crops of what
    // it was trained on cannot be named by `tencrop` alone.
    let whole = train(&model, "44", &dir.0.join("whole"));
    assert!(whole.contains("epoch 1/1"), "{whole}");
    let whole = dir.0.join("whole/tiny44/model.safetensors");
    assert_eq!(checkpoint::load_size(&whole).unwrap(), None);
    refused(
        &eval(&whole, &["--tta", "tencrop"]),
        &["--tta tencrop", "tencrop:CROP@SIZE"],
    );

    let smaller = [
        &["train", "--model-file", &model, "--load-size", "40"][..],
        &FACES,
    ]
    .concat();
    refused(&fer(&smaller), &["--load-size 40", "smaller", "tiny44"]);
    let baseline = [
        &["train", "--model", "baseline", "--load-size", "52"][..],
        &FACES,
    ]
    .concat();
    refused(&fer(&baseline), &["--load-size 52", "baseline"]);
}
