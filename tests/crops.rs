//! `fer train --load-size`: a model reading 44×44 trains on random crops of 48×48 faces, its
//! checkpoint records the load size, and `fer eval` and `fer predict` follow it — the centre
//! crop without TTA (validation's numbers again), the ten crops with `--tta tencrop`. A resume
//! must crop as the run did; load sizes that cannot be cropped from are one sentence.

mod common;

use common::*;
use fer::gpu::{GpuContext, GpuOptions};
use fer::nn::models::{Architecture, ModelChoice};
use fer::nn::spec::ModelSpec;
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

/// Trains `model` one epoch with a flip and `options`, into `results`; stdout.
fn train(model: &str, options: &[&str], results: &std::path::Path) -> String {
    let args = [
        "train",
        "--model-file",
        model,
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
    succeeded(&fer(&[&args[..], options, &FACES].concat()))
}

fn eval(checkpoint: &std::path::Path, tta: &[&str]) -> std::process::Output {
    let args = ["eval", "--checkpoint", &text(checkpoint), "--split", "val"];
    fer(&[&args[..], &FACES, tta].concat())
}

#[test]
fn training_on_random_crops_evaluates_on_the_centre_and_ten_crops() {
    let dir = TempDir::new("load-size");
    let model = tiny_44(&dir.0);
    let trained = train(&model, &["--load-size", "48"], &dir.0.join("results"));
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

    // Resuming the run must crop as it did.
    let results = text(&dir.0.join("results"));
    let resume = [
        &[
            "train",
            "--model-file",
            &model,
            "--augment",
            "flip",
            "--epochs",
            "2",
        ][..],
        &["--batch-size", "8", "--resume", "--results", &results],
        &FACES,
    ]
    .concat();
    refused(&fer(&resume), &["cannot resume", "train_images_read_at"]);

    // A recipe's load size equal to the input crops nothing and records nothing, so ten crops
    // of what it was trained on cannot be named by `tencrop` alone.
    let recipe = dir.0.join("whole.toml");
    std::fs::write(&recipe, "load_size = 44\n").unwrap();
    let whole = train(&model, &["--recipe", &text(&recipe)], &dir.0.join("whole"));
    assert!(whole.contains("epoch 1/1"), "{whole}");
    let whole = dir.0.join("whole/tiny44/model.safetensors");
    assert_eq!(checkpoint::load_size(&whole).unwrap(), None);
    refused(
        &eval(&whole, &["--tta", "tencrop"]),
        &["--tta tencrop", "tencrop:CROP@SIZE"],
    );

    // A checkpoint claiming a load size smaller than its input is refused, not cut from.
    let ctx = GpuContext::new(&GpuOptions::from_env().unwrap()).unwrap();
    let spec = ModelSpec::parse(&std::fs::read_to_string(&model).unwrap()).unwrap();
    let choice = ModelChoice::File(spec);
    let tiny = choice
        .build(&ctx, &Architecture::default(), 0)
        .unwrap()
        .unwrap();
    let claimed = dir.0.join("claimed.safetensors");
    checkpoint::save_described(&ctx, &tiny, 1, &description, Some(40), &claimed).unwrap();
    refused(
        &eval(&claimed, &[]),
        &["claimed.safetensors", "`fer_load_size` `40`"],
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

/// `fer predict` reads a face as `fer eval` does for a checkpoint trained on crops: a 48×48
/// image's centre 44×44, the same probabilities (to the CSV's 6 decimals) as the image in a
/// dataset folder.
#[test]
fn predict_takes_the_centre_crop_as_eval_does() {
    let dir = TempDir::new("predict");
    let model = tiny_44(&dir.0);
    train(&model, &["--load-size", "48"], &dir.0.join("results"));
    let checkpoint = text(&dir.0.join("results/tiny44/model.safetensors"));
    let folder = dir.0.join("faces/val/happy");
    std::fs::create_dir_all(&folder).unwrap();
    let face = folder.join("face.png");
    // A diagonal ramp with a bright square off centre: its crops and resizes all differ.
    let pixels = (0..48 * 48)
        .map(|i| {
            let (row, column) = (i / 48, i % 48);
            let square = (30..40).contains(&row) && (6..16).contains(&column);
            if square {
                255
            } else {
                (2 * row + 3 * column) as u8
            }
        })
        .collect();
    image::GrayImage::from_raw(48, 48, pixels)
        .unwrap()
        .save(&face)
        .unwrap();

    let csv = dir.0.join("predictions.csv");
    let data = text(&dir.0.join("faces"));
    let args = [
        "eval",
        "--checkpoint",
        &checkpoint,
        "--data",
        &data,
        "--split",
        "val",
    ];
    succeeded(&fer(&[&args[..], &["--predictions", &text(&csv)]].concat()));
    let csv = std::fs::read_to_string(&csv).unwrap();
    let row = csv.lines().nth(1).expect("one image");
    let evaluated: Vec<f64> = row.split(',').skip(4).map(|p| p.parse().unwrap()).collect();

    let args = [
        "predict",
        "--checkpoint",
        &checkpoint,
        "--no-detect",
        "--json",
        &text(&face),
    ];
    let json: serde_json::Value = serde_json::from_str(&succeeded(&fer(&args))).unwrap();
    let predicted = &json["images"][0]["faces"][0]["probabilities"];
    let predicted: Vec<f64> = serde_json::from_value(predicted.clone()).unwrap();
    assert_eq!(predicted.len(), evaluated.len(), "{row}");
    for (p, e) in predicted.iter().zip(&evaluated) {
        assert!(
            (p - e).abs() <= 5e-7 + 1e-7,
            "predict {predicted:?}, eval {row}"
        );
    }
}
