//! Reporting layer: metrics against hand-computed and scikit-learn numbers, text layout, JSON
//! round-trips, PNG plots and the results directory.

use fer::data::ImageSpec;
use fer::report::{
    augmentations_png, confusion_png, curves_png, write_atomically, write_results,
    ClassificationReport, ConfusionMatrix, EpochRecord, History, MetricsError, ReportError,
    RunMetrics,
};
use std::fs;
use std::path::PathBuf;

const FER_CLASSES: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise",
];

/// A fresh directory under the system temp dir, unique to this process and test.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fer-report-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_close(actual: f64, expected: f64, what: &str) {
    assert!(
        (actual - expected).abs() < 1e-12,
        "{what}: got {actual}, expected {expected}"
    );
}

// Four classes; "c" is never predicted and "d" has no samples but is predicted once.
//   true: a a a b b c c c      confusion (rows true, columns predicted):
//   pred: a a b b d a b b          a b c d
//                               a [2 1 0 0]  support 3
//                               b [0 1 0 1]  support 2
//                               c [1 2 0 0]  support 3
//                               d [0 0 0 0]  support 0
//                       predicted: 3 4 0 1,  correct 3 of 8
const SMALL_TRUE: [usize; 8] = [0, 0, 0, 1, 1, 2, 2, 2];
const SMALL_PRED: [usize; 8] = [0, 0, 1, 1, 3, 0, 1, 1];
const SMALL_CLASSES: [&str; 4] = ["a", "b", "c", "d"];

fn small_report() -> ClassificationReport {
    ClassificationReport::from_labels(&SMALL_TRUE, &SMALL_PRED, &SMALL_CLASSES).unwrap()
}

#[test]
fn metrics_match_hand_computed_example() {
    let report = small_report();
    assert_close(report.accuracy, 3.0 / 8.0, "accuracy");
    // (precision, recall, f1, support); f1 = 2tp / (2tp + fp + fn).
    let expected = [
        (2.0 / 3.0, 2.0 / 3.0, 4.0 / 6.0, 3), // a: tp 2, fp 1, fn 1
        (1.0 / 4.0, 1.0 / 2.0, 2.0 / 6.0, 2), // b: tp 1, fp 3, fn 1
        (0.0, 0.0, 0.0, 3),                   // c: never predicted, so precision 0 by convention
        (0.0, 0.0, 0.0, 0),                   // d: no samples, so recall 0 by convention
    ];
    for (class, (precision, recall, f1, support)) in report.classes.iter().zip(expected) {
        assert_close(class.scores.precision, precision, &class.class);
        assert_close(class.scores.recall, recall, &class.class);
        assert_close(class.scores.f1, f1, &class.class);
        assert_eq!(class.scores.support, support, "{}", class.class);
    }
    // Macro: plain mean over all four classes, the zero-support one included.
    assert_close(
        report.macro_avg.precision,
        (2.0 / 3.0 + 0.25) / 4.0,
        "macro precision",
    );
    assert_close(
        report.macro_avg.recall,
        (2.0 / 3.0 + 0.5) / 4.0,
        "macro recall",
    );
    assert_close(
        report.macro_avg.f1,
        (2.0 / 3.0 + 1.0 / 3.0) / 4.0,
        "macro f1",
    );
    // Weighted by support 3, 2, 3, 0 over 8; weighted recall always equals accuracy.
    assert_close(
        report.weighted_avg.precision,
        (2.0 + 0.5) / 8.0,
        "weighted precision",
    );
    assert_close(report.weighted_avg.recall, 3.0 / 8.0, "weighted recall");
    assert_close(
        report.weighted_avg.f1,
        (2.0 + 2.0 / 3.0) / 8.0,
        "weighted f1",
    );
    assert_eq!(report.macro_avg.support, 8);
    assert_eq!(report.weighted_avg.support, 8);
}

#[test]
fn text_report_of_hand_computed_example_rounds_like_sklearn() {
    // Numbers from the test above, rounded half-to-even as Python's format does (0.375 -> 0.38).
    let expected = "              precision    recall  f1-score   support

           a       0.67      0.67      0.67         3
           b       0.25      0.50      0.33         2
           c       0.00      0.00      0.00         3
           d       0.00      0.00      0.00         0

    accuracy                           0.38         8
   macro avg       0.23      0.29      0.25         8
weighted avg       0.31      0.38      0.33         8
";
    assert_eq!(small_report().to_string(), expected);
}

#[test]
fn text_report_matches_sklearn_documentation_example() {
    // scikit-learn's own docstring example for classification_report, output verbatim.
    // By hand: class 0 tp 1 of 2 predicted, 1 true -> P .50 R 1.00 F1 2/3;
    // class 1 tp 0 of 1 predicted, 1 true -> 0 0 0; class 2 tp 2 of 2 predicted, 3 true ->
    // P 1.00 R .67 F1 4/5. Macro P (.5+0+1)/3=.50, R (1+0+2/3)/3=.56, F1 (2/3+0+.8)/3=.49.
    // Weighted by 1,1,3 of 5: P (.5+0+3)/5=.70, R 3/5=.60, F1 (2/3+2.4)/5=.61.
    let report = ClassificationReport::from_labels(
        &[0, 1, 2, 2, 2],
        &[0, 0, 2, 2, 1],
        &["class 0", "class 1", "class 2"],
    )
    .unwrap();
    let expected = "              precision    recall  f1-score   support

     class 0       0.50      1.00      0.67         1
     class 1       0.00      0.00      0.00         1
     class 2       1.00      0.67      0.80         3

    accuracy                           0.60         5
   macro avg       0.50      0.56      0.49         5
weighted avg       0.70      0.60      0.61         5
";
    assert_eq!(report.to_string(), expected);
}

#[test]
fn text_report_has_a_row_per_class_and_the_summary_rows() {
    let labels: Vec<usize> = (0..70).map(|i| i % 7).collect();
    let predicted: Vec<usize> = (0..70).map(|i| (i * 3) % 7).collect();
    let text = ClassificationReport::from_labels(&labels, &predicted, &FER_CLASSES)
        .unwrap()
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 7 + 1 + 3, "{text}");
    assert!(lines[0]
        .trim_start()
        .starts_with("precision    recall  f1-score   support"));
    for (line, class) in lines[2..9].iter().zip(FER_CLASSES) {
        assert_eq!(line.split_whitespace().next(), Some(class), "{text}");
        assert_eq!(line.len(), lines[0].len(), "columns align: {text}");
    }
    assert!(lines[10].trim_start().starts_with("accuracy"));
    assert!(lines[11].trim_start().starts_with("macro avg"));
    assert!(lines[12].starts_with("weighted avg"));
    assert!(lines[12].ends_with("70"));
}

#[test]
fn confusion_matrix_sums_match_supports_and_predictions() {
    let confusion = ConfusionMatrix::from_labels(&SMALL_TRUE, &SMALL_PRED, &SMALL_CLASSES).unwrap();
    assert_eq!(
        confusion.counts(),
        &[
            vec![2, 1, 0, 0],
            vec![0, 1, 0, 1],
            vec![1, 2, 0, 0],
            vec![0, 0, 0, 0]
        ]
    );
    assert_eq!(confusion.total(), 8);
    assert_eq!(confusion.correct(), 3);
    assert_eq!(confusion.support(), vec![3, 2, 3, 0]);
    assert_eq!(confusion.predicted_totals(), vec![3, 4, 0, 1]);
    let table = confusion.to_string();
    assert!(table.lines().nth(2).unwrap().starts_with("b "), "{table}");
    assert_eq!(table.lines().count(), 5, "{table}");
}

#[test]
fn bad_labels_are_errors_not_panics() {
    assert_eq!(
        ConfusionMatrix::from_labels(&[0, 1], &[0], &SMALL_CLASSES),
        Err(MetricsError::LengthMismatch {
            true_len: 2,
            predicted_len: 1
        })
    );
    let out_of_range = ConfusionMatrix::from_labels(&[0, 1], &[0, 4], &SMALL_CLASSES);
    assert_eq!(
        out_of_range,
        Err(MetricsError::LabelOutOfRange {
            which: "predicted",
            label: 4,
            position: 1,
            classes: 4
        })
    );
    assert_eq!(
        ConfusionMatrix::from_labels(&[], &[], &[]),
        Err(MetricsError::NoClasses)
    );
    assert!(matches!(
        ConfusionMatrix::from_counts(&["a", "b"], vec![vec![1, 2], vec![3]]),
        Err(MetricsError::NotSquare { classes: 2, .. })
    ));
    // No samples at all: every ratio is 0 rather than NaN.
    let empty = ClassificationReport::from_labels(&[], &[], &SMALL_CLASSES).unwrap();
    assert_eq!(empty.accuracy, 0.0);
    assert_eq!(empty.weighted_avg.precision, 0.0);
}

fn sample_history() -> History {
    (1..=12)
        .map(|epoch| {
            let progress = epoch as f64 / 12.0;
            EpochRecord {
                epoch,
                train_loss: 1.9 - 1.1 * progress,
                train_acc: 0.25 + 0.45 * progress,
                val_loss: 1.85 - 0.8 * progress + 0.05 * (epoch % 3) as f64,
                val_acc: 0.27 + 0.35 * progress,
                seconds: 31.5,
                val_recall: Vec::new(),
            }
        })
        .collect::<Vec<_>>()
        .into()
}

fn sample_metrics() -> RunMetrics {
    let labels: Vec<usize> = (0..700).map(|i| i % 7).collect();
    // Mostly right, with each class confused with its neighbour now and then.
    let predicted: Vec<usize> = (0..700)
        .map(|i| if i % 5 == 0 { (i + 1) % 7 } else { i % 7 })
        .collect();
    let confusion = ConfusionMatrix::from_labels(&labels, &predicted, &FER_CLASSES).unwrap();
    let run = serde_json::json!({
        "adapter": "test adapter",
        "command": ["fer", "train", "--model", "vgg-small"],
        "hyperparameters": {"learning_rate": 0.001, "batch_size": 64},
    });
    RunMetrics::new("vgg-small", confusion, sample_history(), run)
}

/// serde_json (without its `float_roundtrip` feature) may parse a float one ulp away from the
/// one it wrote, so floats are compared with a tolerance and everything else exactly.
fn assert_same_metrics(back: &RunMetrics, metrics: &RunMetrics) {
    assert_eq!(back.model, metrics.model);
    assert_eq!(back.confusion_matrix, metrics.confusion_matrix);
    assert_eq!(back.run, metrics.run);
    assert_close(back.accuracy, metrics.accuracy, "accuracy");
    assert_eq!(back.report.to_string(), metrics.report.to_string());
    let history = back.history.epochs().iter().zip(metrics.history.epochs());
    assert_eq!(back.history.epochs().len(), metrics.history.epochs().len());
    for (read, written) in history {
        assert_eq!(read.epoch, written.epoch);
        assert_close(read.train_loss, written.train_loss, "train_loss");
        assert_close(read.train_acc, written.train_acc, "train_acc");
        assert_close(read.val_loss, written.val_loss, "val_loss");
        assert_close(read.val_acc, written.val_acc, "val_acc");
        assert_close(read.seconds, written.seconds, "seconds");
    }
}

#[test]
fn metrics_json_round_trips() {
    let metrics = sample_metrics();
    let json = serde_json::to_string(&metrics).unwrap();
    let back: RunMetrics = serde_json::from_str(&json).unwrap();
    assert_same_metrics(&back, &metrics);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["history"].as_array().map(Vec::len), Some(12));
    assert_eq!(value["report"]["classes"][0]["class"], "angry");
    assert!(value["report"]["macro_avg"]["f1"].is_f64());
    assert_eq!(value["run"]["hyperparameters"]["batch_size"], 64);
}

#[test]
fn confusion_matrix_json_must_be_square() {
    let json = r#"{"class_names": ["a", "b"], "counts": [[1, 2], [3]]}"#;
    let error = serde_json::from_str::<ConfusionMatrix>(json).unwrap_err();
    assert!(error.to_string().contains("2 rows"), "{error}");
}

fn decode_png(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory_with_format(bytes, image::ImageFormat::Png).unwrap()
}

#[test]
fn plots_are_decodable_pngs_with_content() {
    let metrics = sample_metrics();
    for (png, name) in [
        (curves_png(&metrics.history).unwrap(), "curves"),
        (
            confusion_png(&metrics.confusion_matrix).unwrap(),
            "confusion",
        ),
    ] {
        let image = decode_png(&png).to_rgb8();
        assert!(image.width() >= 800 && image.height() >= 500, "{name}");
        // Not a blank canvas: a good share of pixels is not white.
        let inked = image
            .pixels()
            .filter(|pixel| pixel.0 != [255, 255, 255])
            .count();
        assert!(inked > 10_000, "{name}: only {inked} non-white pixels");
    }
}

#[test]
fn curves_survive_empty_and_diverged_histories() {
    assert!(curves_png(&History::new()).is_ok());
    let mut diverged = History::new();
    for epoch in 1..=3 {
        diverged.push(EpochRecord {
            epoch,
            train_loss: if epoch == 3 { f64::NAN } else { 1.0 },
            train_acc: 0.5,
            val_loss: f64::INFINITY,
            val_acc: 0.4,
            seconds: 1.0,
            val_recall: Vec::new(),
        });
    }
    decode_png(&curves_png(&diverged).unwrap());
}

#[test]
fn write_results_writes_all_four_files() {
    let root = scratch_dir("write-results");
    let metrics = sample_metrics();
    let directory = write_results(&root, &metrics).unwrap();
    assert_eq!(directory, root.join("vgg-small"));

    let json = fs::read_to_string(directory.join("metrics.json")).unwrap();
    assert_same_metrics(
        &serde_json::from_str::<RunMetrics>(&json).unwrap(),
        &metrics,
    );

    let text = fs::read_to_string(directory.join("report.txt")).unwrap();
    assert!(text.contains(&metrics.report.to_string()), "{text}");
    assert!(
        text.contains(&metrics.confusion_matrix.to_string()),
        "{text}"
    );
    assert!(text.contains("weighted avg"));

    for png in ["curves.png", "confusion.png"] {
        let bytes = fs::read(directory.join(png)).unwrap();
        assert!(bytes.len() > 10_000, "{png} is only {} bytes", bytes.len());
        decode_png(&bytes);
    }

    // Writing again replaces the files and leaves no temporary files behind.
    write_results(&root, &metrics).unwrap();
    let mut names: Vec<String> = fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["confusion.png", "curves.png", "metrics.json", "report.txt"]
    );
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn atomic_write_replaces_content_and_leaves_no_temp_files() {
    let root = scratch_dir("atomic");
    let path = root.join("note.txt");
    write_atomically(&path, b"first").unwrap();
    write_atomically(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 1);

    // A missing directory fails with an error naming the path, and leaves nothing behind.
    let missing = root.join("no-such-dir").join("note.txt");
    let error = write_atomically(&missing, b"x").unwrap_err();
    assert!(matches!(error, ReportError::Write { .. }));
    assert!(error.to_string().contains("no-such-dir"), "{error}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn model_names_that_escape_the_results_root_are_rejected() {
    let root = scratch_dir("bad-model");
    for name in ["", "..", "a/b", "../up"] {
        let mut metrics = sample_metrics();
        metrics.model = name.to_string();
        let error = write_results(&root, &metrics).unwrap_err();
        assert!(
            matches!(error, ReportError::InvalidModelName { .. }),
            "{name:?}: {error}"
        );
    }
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    fs::remove_dir_all(&root).unwrap();
}

/// Each image of the batch drawn whole, at its pixel values: ten uniformly coloured RGB images
/// (a full row of eight and two more) normalised by ImageNet's mean and std come back as their
/// colours, each over at least its enlarged area; a grey image comes back grey.
#[test]
fn the_augmentation_grid_shows_each_image_at_its_pixel_values() {
    let spec = ImageSpec::imagenet_rgb(6, 4);
    let colour = |image: usize| [10 * image as u8, 255 - 20 * image as u8, 128];
    let mut batch = Vec::new();
    for image in 0..10 {
        for c in 0..3 {
            let value = (colour(image)[c] as f32 / 255.0 - spec.mean[c]) / spec.std[c];
            batch.extend([value; 24]);
        }
    }
    let caption = "--augment crop=4,rotate=20,shift=0.1,shear=10,zoom=0.2,flip=0.5,\
                   brightness=0.3,contrast=0.3,saturation=0.2,hue=0.05,erase=0.5";
    let png = augmentations_png(&batch, &spec, caption).unwrap();
    let image = decode_png(&png).to_rgb8();
    // 96 / 6: each image is drawn 16 times larger, 64×96 pixels.
    for i in 0..10 {
        let count = image.pixels().filter(|p| p.0 == colour(i)).count();
        assert!(count >= 64 * 96, "image {i}: {count} pixels of its colour");
    }

    let grey = ImageSpec::study_grey();
    let png = augmentations_png(&vec![0.2; 48 * 48], &grey, "--augment flip=0.5").unwrap();
    let image = decode_png(&png).to_rgb8();
    // (0.2·0.5 + 0.5)·255 = 153.
    let count = image.pixels().filter(|p| p.0 == [153; 3]).count();
    // Antialiased caption text may hold a few pixels of that grey too.
    assert!(
        (96 * 96..96 * 96 + 500).contains(&count),
        "one grey face drawn twice as large: {count} pixels of its grey"
    );
}
