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

/// Why the demo's table breaks the study's ordering, if it does.
fn ordering_broken(table: &str) -> Option<String> {
    let rows = accuracies(table);
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    if names != ["baseline", "softmax", "mlp", "cnn"] {
        return Some(format!("the models are {names:?}"));
    }
    rows.windows(2).find_map(|pair| {
        let ((lower, below), (higher, above)) = (&pair[0], &pair[1]);
        (below >= above).then(|| format!("{lower} {below} is not below {higher} {above}"))
    })
}

#[test]
#[ignore = "trains the four models: minutes on a software adapter"]
fn the_demo_reproduces_the_studys_ordering() {
    let results = TempDir::new("demo");
    let out = fer(&["demo", "--seed", "0", "--results", &text(&results.0)]);
    let stdout = succeeded(&out);
    // The table, for `--nocapture` runs that record it.
    println!("{stdout}");
    if let Some(why) = ordering_broken(&stdout) {
        panic!("{why}:\n{stdout}");
    }
}

/// The check itself, on tables written here: the README's run passes, a softmax below or level
/// with the baseline (what the faces before last round gave) and a missing model fail.
#[test]
fn the_ordering_check_reads_the_table() {
    let table = |softmax: &str, cnn_row: bool| {
        format!(
            "model          parameters   faces  epochs   val accuracy   train time\n\
             baseline                0    2800      10         0.2514        0.0 s\n\
             softmax             16135    2800      10         {softmax}        1.8 s\n\
             mlp                304135    2800      10         0.3629       10.1 s\n{}",
            if cnn_row {
                "cnn                102631    2800      10         0.7229      417.8 s\n"
            } else {
                ""
            }
        )
    };
    assert_eq!(ordering_broken(&table("0.2786", true)), None);
    let below = ordering_broken(&table("0.2400", true)).expect("softmax below the baseline");
    assert!(
        below.contains("baseline 0.2514 is not below softmax 0.24"),
        "{below}"
    );
    assert!(
        ordering_broken(&table("0.2514", true)).is_some(),
        "a tie is no ordering"
    );
    assert!(ordering_broken(&table("0.2786", false)).is_some());
}
