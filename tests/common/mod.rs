//! What the CLI tests share: running the `fer` binary and reading how it answered.

use std::path::PathBuf;
use std::process::{Command, Output};

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
