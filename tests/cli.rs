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
