//! The `fer` binary end to end: what a person or a script sees.

use std::process::Command;

fn fer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .output()
        .expect("the fer binary runs")
}

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
    let out = fer(&[
        "bench",
        "matmul",
        "--sizes",
        "24",
        "--no-model-shapes",
        "--seconds",
        "0",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = json["measurements"]
        .as_array()
        .expect("a list of measurements");
    assert_eq!(rows.len(), 3, "one row per variant");
    for row in rows {
        assert!(row["gflops"].as_f64().is_some_and(|g| g > 0.0), "{row}");
        assert!(
            row["vs_cpu_twin"].as_f64().is_some_and(|r| r > 0.0),
            "{row}"
        );
    }
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
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).expect("metrics.json"))
            .expect("valid JSON");
    let trained_accuracy = metrics["accuracy"].as_f64().expect("accuracy");

    let checkpoint = dir.join("model.safetensors").to_string_lossy().into_owned();
    let predictions = results
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
    assert!(csv.starts_with("index,true,predicted,p_angry,"));
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
    ]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("/no/such/model.safetensors") && !text.contains("panicked"),
        "{text}"
    );
}
