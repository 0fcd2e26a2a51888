//! Using a trained model: self-describing checkpoints, `fer eval` with nothing but one, and
//! `fer predict` on faces, cropped or found by the detector.

use std::collections::HashMap;
use std::path::Path;

use fer::data::synthetic::{generate, SplitSizes};
use fer::data::{fer2013, ImageSpec};
use fer::gpu::{GpuContext, GpuOptions};
use fer::infer::faces::FaceDetector;
use fer::nn::models::{spec, Architecture, ModelChoice, ModelKind};
use fer::train::checkpoint::{self, Description};

mod common;
use common::{fer, refused, rustface_photo, scratch, succeeded, text, trained_softmax};

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

#[test]
fn a_checkpoint_carries_its_model_input_and_classes() {
    let dir = scratch("describe");
    let trained = trained_softmax();
    assert_eq!(
        checkpoint::describe(&trained).unwrap(),
        Some(Description {
            model: ModelKind::Softmax.into(),
            architecture: Architecture::default(),
            input: ImageSpec::study_grey(),
            classes: fer2013::class_names(),
        })
    );

    // A model file's graph travels whole, with an input and classes of its own.
    let ctx = gpu();
    let mut graph = spec(ModelKind::Softmax, &Architecture::default()).unwrap();
    graph.name = "tiny".into();
    let description = Description {
        model: ModelChoice::File(graph.clone()),
        architecture: Architecture::default(),
        input: ImageSpec {
            mean: vec![0.25],
            std: vec![0.75],
            ..ImageSpec::study_grey()
        },
        classes: ["a", "b,c", "d", "e", "f", "g", "h"]
            .map(String::from)
            .to_vec(),
    };
    let model = ModelChoice::File(graph)
        .build(&ctx, &Architecture::default(), 0)
        .unwrap()
        .unwrap();
    let described = dir.join("tiny.safetensors");
    checkpoint::save_described(&ctx, &model, 3, &description, &described).unwrap();
    assert_eq!(checkpoint::describe(&described).unwrap(), Some(description));
    checkpoint::load(&ctx, &model, &described).unwrap();

    let plain = dir.join("plain.safetensors");
    checkpoint::save(&ctx, &model, 3, &plain).unwrap();
    assert_eq!(checkpoint::describe(&plain).unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_needs_only_the_checkpoint_and_an_old_one_needs_its_model() {
    let dir = scratch("eval");
    let trained = trained_softmax();
    let eval = |extra: &[&str], checkpoint: &Path| {
        let mut args = vec!["eval", "--synthetic-train", "16", "--checkpoint"];
        let checkpoint = text(checkpoint);
        args.push(&checkpoint);
        args.extend_from_slice(extra);
        fer(&args)
    };
    let alone = succeeded(&eval(&[], &trained));
    assert!(alone.contains("accuracy"), "{alone}");
    let named = succeeded(&eval(&["--model", "softmax"], &trained));
    assert_eq!(
        alone.lines().last(),
        named.lines().last(),
        "the same loss and accuracy"
    );
    refused(
        &eval(&["--model", "mlp"], &trained),
        &[&text(&trained), "`softmax`", "`mlp`"],
    );

    // A checkpoint as fer wrote them before they described themselves.
    let ctx = gpu();
    let model = ModelChoice::from(ModelKind::Softmax)
        .build(&ctx, &Architecture::default(), 0)
        .unwrap()
        .unwrap();
    checkpoint::load(&ctx, &model, &trained).unwrap();
    let old = dir.join("old.safetensors");
    checkpoint::save(&ctx, &model, 1, &old).unwrap();
    refused(&eval(&[], &old), &[&text(&old), "--model"]);
    let old_named = succeeded(&eval(&["--model", "softmax"], &old));
    assert_eq!(alone.lines().last(), old_named.lines().last());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Synthetic faces as files, `<root>/val/<class>/<n>.png` and nothing else: every third saved
/// larger and in colour, so both commands must bring them to the model's input.
fn face_files(root: &Path) -> usize {
    let splits = generate(
        3,
        SplitSizes {
            train: 4,
            val: 9,
            test: 0,
        },
        &ImageSpec::study_grey(),
    )
    .unwrap();
    let val = &splits.val;
    for index in 0..val.len() {
        let folder = root
            .join("val")
            .join(&val.class_names()[val.labels()[index] as usize]);
        std::fs::create_dir_all(&folder).unwrap();
        let grey = image::GrayImage::from_raw(48, 48, val.image(index).to_vec()).unwrap();
        let image = if index % 3 == 0 {
            image::DynamicImage::ImageLuma8(grey)
                .resize_exact(61, 61, image::imageops::FilterType::Triangle)
                .into_rgb8()
                .into()
        } else {
            image::DynamicImage::ImageLuma8(grey)
        };
        image.save(folder.join(format!("{index}.png"))).unwrap();
    }
    val.len()
}

/// `path → probabilities` from CSV text whose `path_column` names the image and whose
/// probabilities are the columns named `p_*`.
fn probabilities_by_path(csv: &str, path_column: &str) -> HashMap<String, Vec<f64>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let path = header.iter().position(|c| *c == path_column).unwrap();
    let classes: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].starts_with("p_"))
        .collect();
    assert_eq!(classes.len(), 7, "{csv}");
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let row = classes
                .iter()
                .map(|&i| fields[i].parse().unwrap())
                .collect();
            (fields[path].to_string(), row)
        })
        .collect()
}

#[test]
fn predict_on_cropped_faces_agrees_with_eval_on_the_same_files() {
    let dir = scratch("agree");
    let trained = trained_softmax();
    let data = dir.join("faces");
    let count = face_files(&data);
    let predictions = dir.join("predictions.csv");
    // The folder holds only the split asked for.
    succeeded(&fer(&[
        "eval",
        "--checkpoint",
        &text(&trained),
        "--data",
        &text(&data),
        "--split",
        "val",
        "--predictions",
        &text(&predictions),
    ]));
    let evaluated = std::fs::read_to_string(&predictions).unwrap();
    assert!(evaluated.starts_with("index,path,true,predicted,p_angry,"));
    let evaluated = probabilities_by_path(&evaluated, "path");

    let predicted = succeeded(&fer(&[
        "predict",
        "--checkpoint",
        &text(&trained),
        "--no-detect",
        "--csv",
        &text(&data.join("val")),
    ]));
    let predicted = probabilities_by_path(&predicted, "file");
    assert_eq!(predicted.len(), count);
    assert_eq!(evaluated.len(), count);
    for (path, row) in &predicted {
        let other = evaluated
            .get(path)
            .unwrap_or_else(|| panic!("eval has no row for {path}"));
        // The same bytes through the same forward pass: only the 6 printed decimals may differ.
        for (p, q) in row.iter().zip(other) {
            assert!((p - q).abs() <= 1e-6, "{path}: {row:?} vs {other:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn predict_finds_the_faces_in_a_photo_and_draws_them() {
    let dir = scratch("photo");
    let trained = trained_softmax();
    let photo = rustface_photo();
    let annotated = dir.join("annotated");
    let out = succeeded(&fer(&[
        "predict",
        "--checkpoint",
        &text(&trained),
        "--json",
        "--annotate",
        &text(&annotated),
        &text(&photo),
    ]));
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let faces = json["images"][0]["faces"].as_array().expect("faces");
    // 29 people face the camera; the detector finds most, and nothing of a face's size is
    // anything else in the photo.
    assert!((20..=32).contains(&faces.len()), "{} faces", faces.len());
    for face in faces {
        let side = face["box"]["width"].as_u64().unwrap();
        assert!((20..200).contains(&side), "{face}");
        assert_eq!(face["top3"].as_array().unwrap().len(), 3);
        let sum: f64 = face["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "{face}");
    }
    let drawn = image::open(annotated.join("test.png")).expect("an annotated PNG");
    let original = image::open(&photo).unwrap();
    assert_eq!(
        (drawn.width(), drawn.height()),
        (original.width(), original.height())
    );
    assert_ne!(drawn.to_rgb8(), original.to_rgb8(), "boxes were drawn");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_blank_or_tiny_image_has_no_face() {
    let mut detector = FaceDetector::new().unwrap();
    let blank =
        image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(240, 180, image::Luma([128])));
    assert!(detector.detect(&blank).is_empty());
    for (width, height) in [
        (0, 0),
        (0, 30),
        (1, 1),
        (2, 40),
        (19, 19),
        (20, 20),
        (21, 20),
    ] {
        let tiny = image::DynamicImage::ImageLuma8(image::GrayImage::new(width, height));
        assert!(detector.detect(&tiny).is_empty(), "{width}×{height}");
    }
}

#[test]
fn predict_says_no_face_per_image_and_refuses_bad_input_in_one_sentence() {
    let dir = scratch("bad");
    let trained = trained_softmax();
    let checkpoint = text(&trained);
    let photos = dir.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    image::GrayImage::from_pixel(100, 80, image::Luma([200]))
        .save(photos.join("wall.png"))
        .unwrap();
    std::fs::write(photos.join("notes.txt"), "not an image").unwrap();
    let out = fer(&["predict", "--checkpoint", &checkpoint, &text(&photos)]);
    let table = succeeded(&out);
    assert!(
        table.contains("wall.png") && table.contains("no face found"),
        "{table}"
    );
    let skipped = String::from_utf8_lossy(&out.stderr);
    assert!(
        skipped.contains("skipped 1 files") && skipped.contains("notes.txt"),
        "{skipped}"
    );

    let missing = text(&dir.join("absent.png"));
    refused(
        &fer(&["predict", "--checkpoint", &checkpoint, &missing]),
        &[&missing],
    );
    let notes = text(&photos.join("notes.txt"));
    refused(
        &fer(&["predict", "--checkpoint", &checkpoint, &notes]),
        &[&notes, "not an image"],
    );
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(
        &fer(&["predict", "--checkpoint", &checkpoint, &text(&empty)]),
        &[&text(&empty)],
    );

    let ctx = gpu();
    let model = ModelChoice::from(ModelKind::Softmax)
        .build(&ctx, &Architecture::default(), 0)
        .unwrap()
        .unwrap();
    let old = dir.join("old.safetensors");
    checkpoint::save(&ctx, &model, 0, &old).unwrap();
    refused(
        &fer(&["predict", "--checkpoint", &text(&old), &text(&photos)]),
        &[&text(&old), "--model"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_names_each_csv_row_by_its_line() {
    let dir = scratch("csv");
    let trained = trained_softmax();
    let face = |value: u8| vec![value.to_string(); 48 * 48].join(" ");
    let csv = dir.join("fer2013.csv");
    let rows = [
        "emotion,pixels,Usage".to_string(),
        format!("3,{},Training", face(10)),
        format!("4,{},PublicTest", face(20)),
        "9,1 2 3,PublicTest".to_string(),
        format!("0,{},PublicTest", face(30)),
    ];
    std::fs::write(&csv, rows.join("\n")).unwrap();
    let predictions = dir.join("predictions.csv");
    succeeded(&fer(&[
        "eval",
        "--checkpoint",
        &text(&trained),
        "--data",
        &text(&csv),
        "--predictions",
        &text(&predictions),
    ]));
    let written = std::fs::read_to_string(&predictions).unwrap();
    let rows: Vec<Vec<&str>> = written
        .lines()
        .skip(1)
        .map(|line| line.split(',').take(3).collect())
        .collect();
    // Line 4 does not parse and is skipped; the others keep their line numbers.
    assert_eq!(
        rows,
        [["0", "csv:3", "sad"], ["1", "csv:5", "angry"]],
        "{written}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
