//! The pictures beside a run's curves (class distribution, misclassified faces, per-class
//! recall) and `fer report`, which puts runs side by side.

use fer::data::{Dataset, ImageSpec};
use fer::report::{
    class_distribution_png, misclassified_png, most_confident_mistakes, recall_png, write_results,
    ConfusionMatrix, EpochRecord, History, RunMetrics,
};
use std::fs;
use std::path::{Path, PathBuf};

mod common;
use common::{fer, scratch};

fn decode_png(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
}

fn pixels_of(image: &image::RgbImage, colour: [u8; 3]) -> usize {
    image.pixels().filter(|p| p.0 == colour).count()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Bars stand on one axis at one scale and are equally wide, so each split's ink is its total
/// count times a constant, plus its legend swatch (19×13 pixels at most): train's 45 images
/// against val's 13 give a ratio of 45/13 within a few percent.
#[test]
fn class_distribution_bars_are_as_tall_as_their_counts() {
    let png = class_distribution_png(&names(&["a", "b", "c"]), &[30, 3, 12], &[8, 1, 4]).unwrap();
    let image = decode_png(&png);
    assert_eq!(image.dimensions(), (1000, 600));
    let train = pixels_of(&image, [31, 119, 180]) as f64;
    let val = pixels_of(&image, [255, 127, 14]) as f64;
    assert!(val > 2_000.0, "val bars drawn: {val} pixels");
    let ratio = train / val;
    assert!(
        (ratio / (45.0 / 13.0) - 1.0).abs() < 0.05,
        "train/val ink {ratio}, counts 45/13"
    );
}

/// Five 4×4 grey faces, each its own grey; three are wrong with probabilities 0.5, 0.9 and
/// 0.7. The grid shows exactly those three, the 0.9 one in the first cell.
#[test]
fn misclassified_faces_are_the_mistakes_most_confident_first() {
    let spec = ImageSpec {
        channels: 1,
        height: 4,
        width: 4,
        mean: vec![0.5],
        std: vec![0.5],
    };
    let greys = [30u8, 70, 110, 150, 190];
    let images: Vec<u8> = greys.iter().flat_map(|&grey| [grey; 16]).collect();
    let data = Dataset::new(spec, names(&["x", "y"]), images, vec![0, 1, 0, 1, 0]);
    let predictions = [1, 1, 1, 0, 0];
    let probabilities = [
        vec![0.5, 0.5],
        vec![0.2, 0.8],
        vec![0.1, 0.9],
        vec![0.7, 0.3],
        vec![0.6, 0.4],
    ];
    let order: Vec<usize> = most_confident_mistakes(data.labels(), &predictions, &probabilities)
        .iter()
        .map(|mistake| mistake.index)
        .collect();
    assert_eq!(order, [2, 3, 0]);

    let image = decode_png(&misclassified_png(&data, &predictions, &probabilities).unwrap());
    // One row of six 170-pixel cells after a 4-pixel gap, under a 44-pixel header.
    assert_eq!(image.dimensions(), (4 + 6 * 170, 44 + 96 + 46));
    for (index, &grey) in greys.iter().enumerate() {
        let count = pixels_of(&image, [grey; 3]);
        if order.contains(&index) {
            // Each 4×4 face fitted into 96×96.
            assert!(count >= 96 * 96, "face {index}: {count} pixels");
        } else {
            // Antialiased text may hold a few pixels of any grey.
            assert!(
                count < 300,
                "face {index} was right: {count} pixels of its grey"
            );
        }
    }
    // The first cell's face, centred in it: (170 - 4 - 96) / 2 = 35 from the cell's left.
    assert_eq!(image.get_pixel(4 + 35 + 48, 44 + 48).0, [greys[2]; 3]);
}

fn record(epoch: usize, val_acc: f64, val_recall: Vec<f64>) -> EpochRecord {
    EpochRecord {
        epoch,
        train_loss: 1.0,
        train_acc: 0.5,
        val_loss: 1.2,
        val_acc,
        seconds: 2.0,
        val_recall,
    }
}

/// Three classes' lines, each in its palette colour; a class's line is absent when no epoch
/// recorded it.
#[test]
fn recall_has_a_line_per_class() {
    let history: History = (1..=4)
        .map(|epoch| {
            record(
                epoch,
                0.5,
                vec![0.1 * epoch as f64, 0.5, 0.9 - 0.2 * epoch as f64],
            )
        })
        .collect::<Vec<_>>()
        .into();
    let classes = names(&["a", "b", "c"]);
    let image = decode_png(&recall_png(&history, &classes).unwrap());
    assert_eq!(image.dimensions(), (1000, 620));
    for colour in [[31, 119, 180], [255, 127, 14], [44, 160, 44]] {
        assert!(pixels_of(&image, colour) > 1_000, "{colour:?}");
    }
    let unrecorded: History = vec![record(1, 0.5, Vec::new())].into();
    let image = decode_png(&recall_png(&unrecorded, &classes).unwrap());
    assert!(
        pixels_of(&image, [44, 160, 44]) < 400,
        "only the legend's swatch"
    );
}

/// The baseline predicts its majority class for every image: that class's recall is 1 and
/// every other's 0, recorded in metrics.json; every picture of the run is written.
#[test]
fn a_run_writes_its_pictures_and_records_recall() {
    let results = scratch("run");
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
    let dir = results.join("baseline");
    for (file, size) in [
        ("class_distribution.png", (1000, 600)),
        ("recall.png", (1000, 620)),
    ] {
        let image = decode_png(&fs::read(dir.join(file)).unwrap());
        assert_eq!(image.dimensions(), size, "{file}");
    }
    decode_png(&fs::read(dir.join("misclassified.png")).unwrap());
    let metrics: RunMetrics =
        serde_json::from_slice(&fs::read(dir.join("metrics.json")).unwrap()).unwrap();
    let recall = &metrics.history.epochs()[0].val_recall;
    assert_eq!(recall.len(), 7);
    let majority = recall
        .iter()
        .position(|&r| r == 1.0)
        .expect("one class at 1");
    for (class, &r) in recall.iter().enumerate() {
        assert_eq!(r, if class == majority { 1.0 } else { 0.0 }, "{recall:?}");
    }
    fs::remove_dir_all(&results).unwrap();
}

/// A finished run as `fer train` leaves it: `accuracy` right of 4 images, a history ending at
/// `last_acc` with a NaN loss (as the baseline's), the time and parameters in `run`.
fn write_run(root: &Path, model: &str, correct: usize, last_acc: f64) -> PathBuf {
    let predicted: Vec<usize> = (0..4)
        .map(|i| if i < correct { i % 2 } else { 1 - i % 2 })
        .collect();
    let confusion = ConfusionMatrix::from_labels(&[0, 1, 0, 1], &predicted, &["a", "b"]).unwrap();
    let mut history: Vec<EpochRecord> =
        vec![record(1, 0.9, vec![1.0, 0.8]), record(2, last_acc, vec![])];
    history[1].val_loss = f64::NAN;
    let run = serde_json::json!({"wall_seconds": 12.5, "parameters": 1234});
    let metrics = RunMetrics::new(model, confusion, history.into(), run);
    write_results(root, &metrics).unwrap()
}

#[test]
fn report_puts_runs_side_by_side() {
    let root = scratch("report");
    let first = write_run(&root, "first", 3, 0.75);
    let second = write_run(&root, "second", 1, 0.25);
    let (first, second) = (first.to_string_lossy(), second.to_string_lossy());
    let out_dir = root.join("out");
    let out = fer(&[
        "report",
        &first,
        &second,
        "--out",
        &out_dir.to_string_lossy(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 3, "{table}");
    assert!(
        rows[0].contains("macro-F1") && rows[0].contains("parameters"),
        "{table}"
    );
    for (row, (run, accuracy)) in rows[1..]
        .iter()
        .zip([(&first, "0.7500"), (&second, "0.2500")])
    {
        assert!(row.starts_with(run.as_ref()), "{table}");
        for cell in [accuracy, "0.9000 (1)", "12.5 s", "1234"] {
            assert!(row.contains(cell), "no {cell} in {row}");
        }
    }
    let image = decode_png(&fs::read(out_dir.join("comparison.png")).unwrap());
    assert_eq!(image.dimensions(), (1000, 620));

    let out = fer(&[
        "report",
        &first,
        &second,
        "--json",
        "--out",
        &out_dir.to_string_lossy(),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json[1]["model"], "second");
    assert_eq!(json[1]["accuracy"], 0.25);
    assert_eq!(json[0]["best_epoch"], 1);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_bad_run_is_one_sentence_naming_it() {
    let root = scratch("bad-run");
    let not_metrics = root.join("notes.json");
    fs::write(&not_metrics, "{\"model\": 3}").unwrap();
    for (run, named) in [
        (root.join("missing"), root.join("missing")),
        (root.clone(), root.join("metrics.json")),
        (not_metrics.clone(), not_metrics),
    ] {
        let out = fer(&[
            "report",
            &run.to_string_lossy(),
            "--out",
            &root.to_string_lossy(),
        ]);
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stderr);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("error: ") && text.contains(&*named.to_string_lossy()),
            "{text}"
        );
    }
    assert!(!root.join("comparison.png").exists());
    fs::remove_dir_all(&root).unwrap();
}
