//! `fer demo` reproduces the four-model study's ordering on its synthetic faces: the majority
//! baseline below the softmax, the softmax below the mlp, the mlp below the cnn. Ignored: on
//! lavapipe the scaled cnn alone trains for several minutes (`cargo test --release --test demo
//! -- --ignored`; the README's demo table is a run of the same command).

mod common;

use common::{fer, succeeded, text, TempDir};

/// Each model's validation accuracy from the demo's closing table.
fn accuracies(table: &str) -> Vec<(String, f64)> {
    let header = table
        .lines()
        .position(|line| line.starts_with("model") && line.contains("val accuracy"))
        .expect("the closing table");
    table
        .lines()
        .skip(header + 1)
        .map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            // model, parameters, faces, epochs, accuracy, seconds, "s"
            assert_eq!(columns.len(), 7, "a table row: {line}");
            (
                columns[0].to_string(),
                columns[4].parse().expect("an accuracy"),
            )
        })
        .collect()
}

#[test]
#[ignore = "trains the four models: minutes on a software adapter"]
fn the_demo_reproduces_the_studys_ordering() {
    let results = TempDir::new("demo");
    let out = fer(&["demo", "--seed", "0", "--results", &text(&results.0)]);
    let stdout = succeeded(&out);
    // The table, for `--nocapture` runs that record it.
    println!("{stdout}");
    let rows = accuracies(&stdout);
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["baseline", "softmax", "mlp", "cnn"], "{stdout}");
    for pair in rows.windows(2) {
        let ((lower, below), (higher, above)) = (&pair[0], &pair[1]);
        assert!(
            below < above,
            "{lower} {below} is not below {higher} {above}:\n{stdout}"
        );
    }
}
