//! What the CLI tests share: running the `fer` binary and reading how it answered, a trained
//! checkpoint and a photo with faces.
// Each test file compiles this module and uses some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub fn fer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .output()
        .expect("the fer binary runs")
}

/// The command's stdout, after asserting it succeeded (its stderr as the message if not).
pub fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The command failed with one sentence on stderr that contains each of `words`.
pub fn refused(out: &Output, words: &[&str]) {
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{text}");
    for word in words {
        assert!(errors[0].contains(word), "no `{word}` in: {text}");
    }
    assert!(!text.contains("panicked"), "{text}");
}

/// A fresh, empty folder in the temp folder, `fer-<test file>-<name>-<pid>-<n>` (n counts
/// within the process, so tests running at once never share one), removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "fer-{}-{name}-{}-{}",
            env!("CARGO_CRATE_NAME"),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An empty folder for one test: `fer-<test file>-<name>-<pid>` in the temp folder.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "fer-{}-{name}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

/// A path as a command-line argument.
pub fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The softmax model trained one step on 16 synthetic faces: its checkpoint, trained once for
/// all the tests of a file.
pub fn trained_softmax() -> PathBuf {
    static TRAINED: OnceLock<PathBuf> = OnceLock::new();
    TRAINED
        .get_or_init(|| train_softmax(&scratch("trained")))
        .clone()
}

/// Trains the softmax one epoch on 16 synthetic faces into `dir`; returns its checkpoint.
pub fn train_softmax(dir: &Path) -> PathBuf {
    succeeded(&fer(&[
        "--no-autotune",
        "train",
        "--model",
        "softmax",
        "--synthetic-train",
        "16",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--results",
        &text(dir),
        "--quiet",
    ]));
    dir.join("softmax/model.safetensors")
}

/// The photo the `rustface` crate ships (the 1927 Solvay conference, 29 faces), found where
/// cargo unpacked the crate (for this host only: the other platforms' crates are not fetched).
pub fn rustface_photo() -> PathBuf {
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let rustc = String::from_utf8_lossy(&rustc.stdout);
    let host = rustc
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc names its host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", host, "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata");
    let manifest = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "rustface")
        .and_then(|package| package["manifest_path"].as_str())
        .expect("rustface is a dependency");
    Path::new(manifest).with_file_name("test.png")
}

/// A model file `<dir>/<name>.json`: 48×48 grey faces, flattened, into one Linear layer of
/// `classes` outputs.
pub fn linear_model_file(dir: &Path, name: &str, classes: usize) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let input = r#"{"channels": 1, "height": 48, "width": 48, "mean": [0.5], "std": [0.5]}"#;
    let nodes = format!(
        r#"[{{"name": "flatten", "op": "flatten"}},
            {{"name": "fc", "op": "linear", "in_features": 2304, "out_features": {classes}}}]"#
    );
    let text = format!(r#"{{"name": "{name}", "input": {input}, "nodes": {nodes}}}"#);
    std::fs::write(&path, text).expect("write the model file");
    path
}
