//! The `fer` binary end to end: what a person or a script sees.

mod common;
use common::fer;

#[test]
fn info_names_the_adapter_and_its_limits() {
    let out = fer(&["info"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for field in [
        "adapter",
        "backend",
        "timestamps",
        "subgroups",
        "workgroup memory",
        "storage binding",
    ] {
        assert!(text.contains(field), "`fer info` lacks `{field}`:\n{text}");
    }
}

#[test]
fn info_json_is_machine_readable() {
    let out = fer(&["info", "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(json["name"].is_string());
    assert!(json["max_storage_binding_bytes"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn an_unknown_adapter_is_one_clear_sentence() {
    let out = fer(&["info", "--adapter", "no-such-gpu-anywhere"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("no GPU adapter matches `no-such-gpu-anywhere`"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn bench_matmul_json_reports_every_variant() {
    let json = fer_json(&[
        "bench",
        "matmul",
        "--sizes",
        "24",
        "--no-model-shapes",
        "--seconds",
        "0",
        "--json",
    ]);
    let rows = json["measurements"]
        .as_array()
        .expect("a list of measurements");
    assert_eq!(
        rows.len(),
        fer::kernels::matmul::MatmulVariant::ALL.len(),
        "one row per variant"
    );
    for row in rows {
        assert!(row["gflops"].as_f64().is_some_and(|g| g > 0.0), "{row}");
        assert!(
            row["vs_cpu_twin"].as_f64().is_some_and(|r| r > 0.0),
            "{row}"
        );
    }
    // A size no adapter binds (40 GB a matrix) is one sentence, not an abort allocating the
    // CPU twin's matrices.
    let out = fer(&["bench", "matmul", "--sizes", "100000", "--no-model-shapes"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("--sizes 100000: a 100000×100000 matrix is 38146.97 MiB")
            && text.contains("the largest square it binds is"),
        "{text}"
    );
}

/// Runs `fer` with `args`, which must succeed, and parses its stdout as JSON.
fn fer_json(args: &[&str]) -> serde_json::Value {
    let out = fer(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON")
}

fn assert_positive(json: &serde_json::Value, fields: &[&str]) {
    for field in fields {
        assert!(
            json[field].as_f64().is_some_and(|value| value > 0.0),
            "`{field}` is not a positive number in {json}"
        );
    }
}

#[test]
fn bench_peak_json_reports_flops_and_bandwidth() {
    let json = fer_json(&[
        "bench",
        "peak",
        "--buffer-mib",
        "1",
        "--fma-workgroups",
        "4",
        "--runs",
        "2",
        "--json",
    ]);
    let peak = &json["peak"];
    assert_positive(peak, &["gflops", "copy_gbs", "read_gbs"]);
    assert!(peak["timing"].is_string(), "{peak}");
    let kernels = json["measurements"].as_array().expect("a list of kernels");
    assert_eq!(kernels.len(), 3, "fma, copy and read");
}

#[test]
fn bench_step_json_reports_throughput_and_phases() {
    let json = fer_json(&[
        "bench", "step", "--model", "softmax", "--steps", "2", "--json",
    ]);
    let rows = json["measurements"]
        .as_array()
        .expect("a list of batch sizes");
    assert_eq!(rows.len(), 3, "the default batch sizes 64, 128 and 256");
    for row in rows {
        assert_positive(
            row,
            &[
                "train_images_per_s",
                "inference_images_per_s",
                "step_ms",
                "forward_ms",
                "backward_ms",
                "optimizer_ms",
                "inference_ms",
            ],
        );
    }
    assert!(json["scaled"].is_null(), "softmax is never scaled down");
}

#[test]
fn the_baseline_has_no_loss_to_print() {
    let results = std::env::temp_dir().join(format!("fer-cli-baseline-{}", std::process::id()));
    let out = fer(&[
        "train",
        "--model",
        "baseline",
        "--synthetic-train",
        "48",
        "--results",
        &results.to_string_lossy(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("epoch 1/1  train_loss n/a  train_acc ") && text.contains("val_loss n/a"),
        "{text}"
    );
    assert!(!text.contains("NaN"), "{text}");
}

#[test]
fn train_then_eval_reproduces_the_validation_numbers() {
    let results = std::env::temp_dir().join(format!("fer-cli-test-{}", std::process::id()));
    let results_arg = results.to_string_lossy().into_owned();
    let out = fer(&[
        "train",
        "--model",
        "mlp",
        "--synthetic-train",
        "96",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--results",
        &results_arg,
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("epoch 2/2  train_loss"), "{text}");
    let dir = results.join("mlp");
    for file in [
        "metrics.json",
        "report.txt",
        "curves.png",
        "confusion.png",
        "model.safetensors",
    ] {
        assert!(dir.join(file).is_file(), "no {file} in {}", dir.display());
    }
    assert!(
        !dir.join("augmentations.png").exists(),
        "no augmentation, no picture of it"
    );
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).expect("metrics.json"))
            .expect("valid JSON");
    let trained_accuracy = metrics["accuracy"].as_f64().expect("accuracy");

    let checkpoint = dir.join("model.safetensors").to_string_lossy().into_owned();
    // In folders that do not exist yet: eval makes them, as mkdir -p would.
    let predictions = results
        .join("eval")
        .join("val")
        .join("predictions.csv")
        .to_string_lossy()
        .into_owned();
    let out = fer(&[
        "eval",
        "--model",
        "mlp",
        "--checkpoint",
        &checkpoint,
        "--synthetic-train",
        "96",
        "--split",
        "val",
        "--predictions",
        &predictions,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("accuracy {trained_accuracy:.4}")),
        "trained {trained_accuracy}:\n{text}"
    );
    let csv = std::fs::read_to_string(&predictions).expect("predictions written");
    assert_eq!(
        csv.lines().count(),
        1 + 24,
        "a header and one row per validation image"
    );
    assert!(csv.starts_with("index,path,true,predicted,p_angry,"));
}

#[test]
fn bad_inputs_are_one_clear_sentence() {
    let out = fer(&[
        "train",
        "--model",
        "mlp",
        "--data",
        "/no/such/folder",
        "--quiet",
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("/no/such/folder") && !text.contains("panicked"),
        "{text}"
    );

    let out = fer(&[
        "eval",
        "--model",
        "cnn",
        "--checkpoint",
        "/no/such/model.safetensors",
        "--synthetic-train",
        "8",
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("/no/such/model.safetensors") && !text.contains("panicked"),
        "{text}"
    );
    // Said once: the file's sentence carries the OS's reason, and nothing repeats it.
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );

    let file = std::env::temp_dir().join(format!("fer-cli-results-file-{}", std::process::id()));
    std::fs::write(&file, "").unwrap();
    let out = fer(&[
        "train",
        "--model",
        "softmax",
        "--synthetic-train",
        "8",
        "--results",
        &file.to_string_lossy(),
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains(&format!(
                "--results {} is a file: name a folder",
                file.display()
            )),
        "{text}"
    );
    // The same file as a checkpoint: not a safetensors file, said so.
    let out = fer(&[
        "eval",
        "--checkpoint",
        &file.to_string_lossy(),
        "--synthetic-train",
        "8",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("is not a safetensors file: it is shorter than a safetensors header"),
        "{text}"
    );
    let _ = std::fs::remove_file(&file);

    let out = fer(&[
        "train",
        "--model",
        "mlp",
        "--optimizer",
        "adam",
        "--momentum",
        "0.9",
        "--synthetic-train",
        "8",
        "--results",
        &std::env::temp_dir()
            .join("fer-cli-adam-momentum")
            .to_string_lossy(),
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("momentum and nesterov are SGD's settings, and the optimizer is adam"),
        "{text}"
    );

    let out = fer(&["profile", "--model", "mlp", "--warmup", "0"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("'--warmup <WARMUP>': must be a whole number of at least 1"),
        "{text}"
    );
}

/// A model of one output is refused when its file is read: its softmax is always 1, so its
/// loss would be 0 and its accuracy 1 whatever it learned.
#[test]
fn a_model_of_one_class_is_refused() {
    let dir = std::env::temp_dir().join(format!("fer-cli-one-class-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = common::linear_model_file(&dir, "one", 1);
    let results = dir.join("results");
    let out = fer(&[
        "train",
        "--model-file",
        &model.to_string_lossy(),
        "--synthetic-train",
        "16",
        "--results",
        &results.to_string_lossy(),
        "--quiet",
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && text.contains("node `fc`: outputs 1 class: a classifier needs at least two"),
        "{text}"
    );
    assert!(!results.join("one").join("model.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model file may be TOML (by its extension): the same model as its JSON.
#[test]
fn a_model_file_may_be_toml() {
    let dir = std::env::temp_dir().join(format!("fer-cli-toml-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let nodes = [
        (
            "flatten",
            r#"{"name": "flatten", "op": "flatten"}"#,
            "name = \"flatten\"\nop = \"flatten\"",
        ),
        (
            "fc",
            r#"{"name": "fc", "op": "linear", "in_features": 2304, "out_features": 7}"#,
            "name = \"fc\"\nop = \"linear\"\nin_features = 2304\nout_features = 7",
        ),
    ];
    let input = r#"{"channels": 1, "height": 48, "width": 48, "mean": [0.5], "std": [0.5]}"#;
    let json: Vec<&str> = nodes.iter().map(|(_, json, _)| *json).collect();
    std::fs::write(
        dir.join("tiny.json"),
        format!(
            r#"{{"name": "tiny", "input": {input}, "nodes": [{}]}}"#,
            json.join(", ")
        ),
    )
    .unwrap();
    let tables: Vec<String> = nodes
        .iter()
        .map(|(_, _, toml)| format!("[[nodes]]\n{toml}\n"))
        .collect();
    std::fs::write(
        dir.join("tiny.toml"),
        format!(
            "name = \"tiny\"\n\n[input]\nchannels = 1\nheight = 48\nwidth = 48\nmean = [0.5]\n\
             std = [0.5]\n\n{}",
            tables.join("\n")
        ),
    )
    .unwrap();
    let dry_run = |file: &str| {
        let out = fer(&[
            "train",
            "--model-file",
            &dir.join(file).to_string_lossy(),
            "--synthetic-train",
            "16",
            "--dry-run",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json = dry_run("tiny.json");
    assert!(json.contains("fits"), "{json}");
    assert_eq!(dry_run("tiny.toml"), json);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_software_adapter_is_announced_once_with_what_to_expect() {
    let out = fer(&["info", "--json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let text = String::from_utf8_lossy(&out.stderr);
    let notices = text.matches("is a software adapter").count();
    if json["device_type"] == "Cpu" {
        assert_eq!(notices, 1, "{text}");
        assert!(
            text.contains("a FER2013 epoch takes") && text.contains("use a GPU"),
            "{text}"
        );
    } else {
        assert_eq!(notices, 0, "{text}");
    }
}

/// A class-folder dataset of six scene classes, one 48×48 grey PNG per class and split.
fn six_class_folders(root: &std::path::Path) {
    let classes = [
        "buildings",
        "forest",
        "glacier",
        "mountain",
        "sea",
        "street",
    ];
    for split in ["train", "val"] {
        for (index, class) in classes.iter().enumerate() {
            let folder = root.join(split).join(class);
            std::fs::create_dir_all(&folder).expect("class folder");
            image::GrayImage::from_pixel(48, 48, image::Luma([index as u8 * 40]))
                .save(folder.join("0.png"))
                .expect("a PNG");
        }
    }
}

#[test]
fn the_dataset_names_the_classes_and_a_model_of_another_count_is_refused() {
    let root = std::env::temp_dir().join(format!("fer-cli-six-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    six_class_folders(&root.join("data"));
    let data = root.join("data").to_string_lossy().into_owned();
    let results = root.join("results").to_string_lossy().into_owned();
    let train = |model: &str| {
        fer(&[
            "train",
            "--model",
            model,
            "--data",
            &data,
            "--results",
            &results,
            "--quiet",
        ])
    };

    let out = train("baseline");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(root.join("results/baseline/report.txt")).expect("report");
    for class in ["buildings", "glacier", "street"] {
        assert!(report.contains(class), "{report}");
    }
    assert!(!report.contains("angry"), "{report}");

    let out = train("mlp");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        text.matches("model `mlp` predicts 7 classes, but the dataset has 6")
            .count(),
        1,
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    let _ = std::fs::remove_dir_all(&root);
}

/// `--augment` (with `--flip` as its shorthand) trains on augmented batches, records the
/// augmentation in the settings and draws the first batch; a bad key, and saturation for a
/// grey model, are one sentence each before any data is loaded.
#[test]
fn training_with_augmentation_records_and_draws_it() {
    let results = std::env::temp_dir().join(format!("fer-cli-augment-{}", std::process::id()));
    let out = fer(&[
        "train",
        "--model",
        "mlp",
        "--synthetic-train",
        "40",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--augment",
        "rotate=10,crop=2,erase=0.5",
        "--flip",
        "--results",
        &results.to_string_lossy(),
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = results.join("mlp");
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).expect("metrics.json"))
            .expect("valid JSON");
    let augment = &metrics["run"]["settings"]["epoch"]["augment"];
    assert_eq!(augment["rotate"], 10.0, "{augment}");
    assert_eq!(augment["flip"], 0.5, "{augment}");
    let png = std::fs::read(dir.join("augmentations.png")).expect("augmentations.png");
    let picture = image::load_from_memory(&png).expect("a PNG").to_rgb8();
    // Two rows of eight 96-pixel faces under the caption.
    assert!(picture.width() >= 8 * 96 && picture.height() >= 2 * 96);

    for (augment, model, says) in [
        ("rotation=10", "mlp", "unknown augmentation `rotation`"),
        (
            "saturation=0.2",
            "cnn",
            "saturation and hue need RGB images",
        ),
    ] {
        let out = fer(&[
            "train",
            "--model",
            model,
            "--augment",
            augment,
            "--data",
            "/no/such/folder",
        ]);
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(says) && !text.contains("/no/such/folder") && !text.contains("panicked"),
            "{text}"
        );
    }
}
