//! Recipes (built-in and files, flags over them), validation splits carved from datasets that
//! lack them, and test-time augmentation.

use std::fs;
use std::path::Path;

use image::{GrayImage, Luma};

use fer::data::{load_carved, Carving, Dataset, ImageSpec, LoadOptions, Splits};
use fer::gpu::{GpuContext, GpuOptions};
use fer::infer::tta::{self, Tta, TtaChoice};
use fer::infer::Classifier;
use fer::nn::models::{Architecture, ModelChoice, ModelKind};
use fer::rng::Rng;
use fer::train::optimizer::OptimizerKind;
use fer::train::recipe::{Recipe, RecipeError, BUILT_IN};
use fer::train::session::TrainSettings;

mod common;
use common::{fer, refused, scratch, succeeded, train_softmax};

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn settings_json(settings: &TrainSettings) -> serde_json::Value {
    serde_json::to_value(settings).unwrap()
}

#[test]
fn every_built_in_recipe_parses_for_every_model() {
    for (name, _) in BUILT_IN {
        for kind in ModelKind::ALL {
            let text = Recipe::built_in_text(name, &kind.into()).unwrap();
            let recipe = Recipe::parse(text).unwrap_or_else(|e| panic!("{name} {kind:?}: {e}"));
            let mut settings = TrainSettings::study(kind, 0);
            recipe.apply(&mut settings);
            if name == "study" && ModelKind::STUDY.contains(&kind) {
                // The four-model study's recipe is the study defaults, spelled out.
                assert_eq!(
                    settings_json(&settings),
                    settings_json(&TrainSettings::study(kind, 0)),
                    "{kind:?}"
                );
            }
        }
    }
}

#[test]
fn the_study_recipes_hold_the_studies_choices() {
    let study = |kind: ModelKind| {
        let recipe = Recipe::parse(Recipe::built_in_text("study", &kind.into()).unwrap());
        let mut settings = TrainSettings::study(kind, 0);
        recipe.unwrap().apply(&mut settings);
        settings
    };
    let realtime = study(ModelKind::RealtimeCnn);
    assert_eq!(realtime.epochs, 50);
    assert_eq!(realtime.l2.len(), 1);
    assert!(realtime.class_weights.is_some() && realtime.schedule.is_some());
    assert!(realtime.early_stopping.is_some());
    let roglenet = study(ModelKind::Roglenet);
    assert_eq!(roglenet.optimizer.kind, OptimizerKind::Sgd);
    assert_eq!(
        (roglenet.optimizer.momentum, roglenet.epoch.batch_size),
        (0.9, 32)
    );
    let six = Recipe::parse(Recipe::built_in_text("study", &ModelKind::Resnet.into()).unwrap());
    assert_eq!(six.unwrap().val_split, Some(0.25));

    let best = Recipe::parse(Recipe::built_in_text("best", &ModelKind::Cnn.into()).unwrap());
    let best = best.unwrap();
    assert_eq!(best.optimizer, Some(OptimizerKind::Sgd));
    assert_eq!(
        (best.lr, best.momentum, best.nesterov),
        (Some(0.01), Some(0.9), Some(true))
    );
    assert!(best.schedule.is_some() && best.augment.is_some());
    assert_eq!(best.tta, Some(TtaChoice::Given(Tta::Flip)));
}

/// A recipe's `tta` reads as `fer eval --tta` does: `tencrop` alone (the ten crops of a model
/// trained with `load_size`) beside the explicit forms, each printed back as written.
#[test]
fn a_recipe_names_its_test_time_augmentation_as_eval_takes_it() {
    for (text, want) in [
        ("tencrop", TtaChoice::TenCropAtLoadSize),
        ("flip", TtaChoice::Given(Tta::Flip)),
        (
            "tencrop:44@48",
            TtaChoice::Given(Tta::TenCrop {
                crop: 44,
                image: 48,
            }),
        ),
    ] {
        let recipe = Recipe::parse(&format!("load_size = 48\ntta = \"{text}\"\n")).unwrap();
        assert_eq!(recipe.tta, Some(want), "{text}");
        assert_eq!(want.to_string(), text);
    }
}

#[test]
fn a_bad_recipe_is_one_sentence_naming_the_key() {
    let named = |text: &str, key: &str| {
        let error = Recipe::parse(text).unwrap_err().to_string();
        assert!(error.contains(&format!("`{key}`")), "{text}: {error}");
        assert!(!error.contains('\n'), "{error}");
    };
    named("lr = 0.1\nlearning_rate = 0.1\n", "learning_rate");
    named("schedule = \"plateau:factor=3\"\n", "schedule");
    named("epochs = -3\n", "epochs");
    named("momentum = 1.5\n", "momentum");
    named("augment = \"spin=3\"\n", "augment");
    named("optimizer = \"adagrad\"\n", "optimizer");
    named("l2 = [\"dense=x\"]\n", "l2");
    named("val_split = 1.0\n", "val_split");
    named("tta = \"fivecrop\"\n", "tta");
    named("load_size = 0\n", "load_size");
    assert_eq!(
        Recipe::built_in_text("bset", &ModelKind::Cnn.into()),
        Err(RecipeError::Unknown("bset".into()))
    );
}

/// The CLI: a recipe file over the study, explicit flags over the recipe.
#[test]
fn flags_override_a_recipe_file() {
    let dir = scratch("override");
    let recipe = dir.join("mine.toml");
    fs::write(
        &recipe,
        "epochs = 3\nlr = 0.05\nmomentum = 0.5\nbatch_size = 8\n",
    )
    .unwrap();
    succeeded(&fer(&[
        "--no-autotune",
        "train",
        "--model",
        "softmax",
        "--recipe",
        &text(&recipe),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--synthetic-train",
        "16",
        "--results",
        &text(&dir),
        "--quiet",
    ]));
    let metrics: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("softmax/metrics.json")).unwrap())
            .unwrap();
    let settings = &metrics["run"]["settings"];
    assert_eq!(settings["epochs"], 1, "the flag wins");
    assert_eq!(settings["epoch"]["batch_size"], 16, "the flag wins");
    assert_eq!(
        settings["optimizer"]["lr"], 0.05,
        "the recipe over the study"
    );
    assert_eq!(settings["optimizer"]["momentum"], 0.5);
    assert_eq!(
        settings["optimizer"]["kind"], "sgd",
        "the study's, untouched"
    );

    let bad = dir.join("bad.toml");
    fs::write(&bad, "epochs = 2\nshedule = \"step\"\n").unwrap();
    refused(
        &fer(&["train", "--model", "softmax", "--recipe", &text(&bad)]),
        &["bad.toml", "`shedule`"],
    );
    refused(
        &fer(&["train", "--model", "softmax", "--recipe", "bset"]),
        &["bset"],
    );
    let shown = succeeded(&fer(&["recipes", "--show", "best"]));
    assert!(Recipe::parse(&shown).is_ok(), "{shown}");
    assert!(succeeded(&fer(&["recipes"])).contains("best"));
}

/// `per_class[c]` PNGs of class `c` under `dir/<class>/`, each a flat grey whose value is unique
/// across the dataset (so each image can be told apart after loading).
fn write_classes(dir: &Path, per_class: &[usize], first_value: &mut u8) {
    for (class, &count) in per_class.iter().enumerate() {
        let folder = dir.join(format!("class{class}"));
        fs::create_dir_all(&folder).unwrap();
        for i in 0..count {
            GrayImage::from_pixel(8, 8, Luma([*first_value]))
                .save(folder.join(format!("{i}.png")))
                .unwrap();
            *first_value += 1;
        }
    }
}

fn spec() -> ImageSpec {
    ImageSpec {
        height: 8,
        width: 8,
        ..ImageSpec::study_grey()
    }
}

fn carved(root: &Path, val_split: Option<f64>, seed: u64) -> Splits {
    let no_cache = LoadOptions { use_cache: false };
    load_carved(root, &spec(), no_cache, Carving { val_split, seed }).unwrap()
}

/// The first pixel of each image: its identity in these datasets.
fn identities(data: &Dataset) -> Vec<u8> {
    (0..data.len()).map(|i| data.image(i)[0]).collect()
}

#[test]
fn val_split_carves_a_stratified_seeded_share_of_train() {
    let root = scratch("val-split");
    let mut value = 0;
    write_classes(&root.join("train"), &[20, 8, 4], &mut value);
    let error = fer::data::load(&root, &spec()).unwrap_err().to_string();
    assert!(error.contains("--val-split"), "{error}");

    let splits = carved(&root, Some(0.25), 7);
    // round(n · 0.25) per class: 5 of 20, 2 of 8, 1 of 4.
    assert_eq!(splits.val.class_counts(), [5, 2, 1]);
    assert_eq!(splits.train.class_counts(), [15, 6, 3]);
    assert!(splits.test.is_none());
    assert!(splits.report.carved.is_some());
    let mut all = [identities(&splits.train), identities(&splits.val)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..32).collect::<Vec<u8>>(), "each image in one split");

    assert_eq!(
        identities(&carved(&root, Some(0.25), 7).val),
        identities(&splits.val)
    );
    assert_ne!(
        identities(&carved(&root, Some(0.25), 8).val),
        identities(&splits.val),
        "another seed draws other images"
    );
    // The cache keys the carving: a second seed must not read the first seed's split back.
    let cached = |seed| {
        let carving = Carving {
            val_split: Some(0.25),
            seed,
        };
        load_carved(&root, &spec(), LoadOptions::default(), carving).unwrap()
    };
    let first = identities(&cached(7).val);
    assert_eq!(first, identities(&splits.val));
    assert_ne!(identities(&cached(8).val), first);
    // A share that rounds to no image in every class is said so, not reported as an empty
    // val folder: 0.02 of 20, 8 and 4.
    let no_cache = LoadOptions { use_cache: false };
    let carving = Carving {
        val_split: Some(0.02),
        seed: 7,
    };
    let error = load_carved(&root, &spec(), no_cache, carving)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("--val-split 0.02 carves no image out of the 32 in")
            && error.ends_with("raise it"),
        "{error}"
    );
    // With a val folder the share is not used, and the load report says so.
    write_classes(&root.join("val"), &[2, 2, 2], &mut value);
    let splits = carved(&root, Some(0.25), 7);
    assert_eq!(splits.val.len(), 6);
    assert_eq!(
        splits.report.carved.as_deref(),
        Some("val/ exists, so --val-split 0.25 carves nothing")
    );
}

#[test]
fn one_folder_of_class_folders_splits_70_15_15() {
    let root = scratch("one-folder");
    let mut value = 0;
    write_classes(&root, &[20, 40, 3], &mut value);
    let splits = carved(&root, None, 0);
    let test = splits.test.as_ref().expect("a test split");
    // round(n · 0.15) for val, then for test; 3 × 0.15 rounds to 0.
    assert_eq!(splits.val.class_counts(), [3, 6, 0]);
    assert_eq!(test.class_counts(), [3, 6, 0]);
    assert_eq!(splits.train.class_counts(), [14, 28, 3]);
    let mut all = [
        identities(&splits.train),
        identities(&splits.val),
        identities(test),
    ]
    .concat();
    all.sort_unstable();
    assert_eq!(all, (0..63).collect::<Vec<u8>>());
}

#[test]
fn ten_crops_are_the_corners_the_centre_and_their_mirror_images() {
    assert_eq!("flip".parse(), Ok(Tta::Flip));
    assert_eq!(
        "tencrop:44".parse(),
        Ok(Tta::TenCrop {
            crop: 44,
            image: 48
        })
    );
    assert_eq!(
        "tencrop:3@5".parse(),
        Ok(Tta::TenCrop { crop: 3, image: 5 })
    );
    assert!("tencrop:48".parse::<Tta>().is_err());
    assert!("fivecrop".parse::<Tta>().is_err());

    // One 2-channel 5×5 image whose pixel (c, y, x) is 100c + 10y + x.
    let input = ImageSpec {
        height: 3,
        width: 3,
        ..ImageSpec::study_grey()
    };
    let pixels: Vec<u8> = (0..2 * 25)
        .map(|i| (100 * (i / 25) + 10 * (i % 25 / 5) + i % 5) as u8)
        .collect();
    let image = tta::crop(&pixels, [2, 5, 5], 1, 2, 3);
    assert_eq!(
        image,
        [12, 13, 14, 22, 23, 24, 32, 33, 34, 112, 113, 114, 122, 123, 124, 132, 133, 134]
    );
    assert_eq!(
        tta::mirror(&image[..9], [1, 3, 3]),
        [14, 13, 12, 24, 23, 22, 34, 33, 32]
    );

    let grey: Vec<u8> = pixels[..25].to_vec();
    let data = Dataset::new(
        ImageSpec {
            height: 5,
            width: 5,
            ..ImageSpec::study_grey()
        },
        vec!["a".into()],
        grey,
        vec![0],
    );
    let tencrop = Tta::TenCrop { crop: 3, image: 5 };
    assert!(tencrop.image_spec(&ImageSpec::study_grey()).is_err());
    let views = tencrop.views(&data, &input);
    let mut top_left: Vec<(u8, u8)> = views
        .iter()
        .map(|view| (view.image(0)[0], view.image(0)[2]))
        .collect();
    top_left.sort_unstable();
    // Each crop's first row starts at a corner or the centre (offsets 0, 2 and the centre 1),
    // once as is (left < right) and once mirrored.
    assert_eq!(
        top_left,
        [
            (0, 2),
            (2, 0),
            (2, 4),
            (4, 2),
            (11, 13),
            (13, 11),
            (20, 22),
            (22, 20),
            (22, 24),
            (24, 22)
        ]
    );
}

fn gpu() -> GpuContext {
    GpuContext::new(&GpuOptions::from_env().expect("FER_BACKEND")).expect("a GPU adapter")
}

#[test]
fn flip_tta_averages_the_probabilities_of_the_image_and_its_mirror_image() {
    let dir = scratch("tta");
    let checkpoint = train_softmax(&dir);
    let ctx = gpu();
    let model = ModelChoice::from(ModelKind::Softmax);
    let classifier = Classifier::open(&ctx, &checkpoint, Some(&model), &Architecture::default())
        .expect("the checkpoint opens");
    // Three noise images (a face could be its own mirror image), batch 2 for a ragged batch.
    let spec = ImageSpec::study_grey();
    let mut rng = Rng::new(5);
    let images: Vec<u8> = (0..3 * 48 * 48).map(|_| rng.below(256) as u8).collect();
    let mirrored: Vec<u8> = images
        .chunks_exact(48)
        .flat_map(|row| row.iter().rev().copied())
        .collect();
    let classes = classifier.description.classes.clone();
    let data = Dataset::new(spec, classes, images.clone(), vec![0, 3, 6]);
    let plain = classifier.probabilities(&ctx, images, 2).unwrap();
    let flipped = classifier.probabilities(&ctx, mirrored, 2).unwrap();
    let averaged = classifier
        .averaged_probabilities(&ctx, &data, 2, &Tta::Flip)
        .unwrap();
    let mut largest_change = 0f32;
    for ((average, a), b) in averaged.iter().zip(&plain).zip(&flipped) {
        for c in 0..average.len() {
            // Both passes run the same kernels on the same batches, so each probability is
            // reproduced bit for bit; the mean in f64 and this one in f32 each round once, to
            // within an ulp of a value below 1 (1.2e-7) between them.
            assert!(
                (average[c] - (a[c] + b[c]) / 2.0).abs() <= 1.2e-7,
                "{average:?}"
            );
            largest_change = largest_change.max((a[c] - b[c]).abs());
        }
    }
    assert!(
        largest_change > 1e-4,
        "the mirror image must change the output"
    );

    let out = fer(&[
        "--no-autotune",
        "eval",
        "--checkpoint",
        &text(&checkpoint),
        "--synthetic-train",
        "16",
        "--tta",
        "flip",
    ]);
    assert!(succeeded(&out).contains("accuracy"));
    refused(
        &fer(&[
            "eval",
            "--checkpoint",
            &text(&checkpoint),
            "--synthetic-train",
            "16",
            "--tta",
            "tencrop:44",
        ]),
        &["--tta tencrop:44@48", "48×48"],
    );
}
