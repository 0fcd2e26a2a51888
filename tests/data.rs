//! The dataset layer: class folders, the FER2013 CSV, the decode cache, synthetic faces and
//! batching. Every test builds its own tiny data in a fresh temp directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use fer::data::batch::{labels_u32, shuffled_indices, to_normalized_f32};
use fer::data::fer2013::{self, PIXELS as IMAGE_PIXELS};
use fer::data::synthetic::{self, class_counts, kept_classes, SplitSizes};
use fer::data::{load, load_with_options, CacheStatus, DataError, Dataset, ImageSpec, LoadOptions};
use image::{GrayImage, Luma, Rgb, RgbImage};

mod common;
use common::TempDir;

/// The four-model study's input, which FER2013's faces already are.
fn grey() -> ImageSpec {
    ImageSpec::study_grey()
}

/// A 48×48 face whose every pixel is `value`, so a loaded image says which file it came from.
fn flat_face(value: u8) -> GrayImage {
    GrayImage::from_pixel(48, 48, Luma([value]))
}

fn write_png(path: &Path, value: u8) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    flat_face(value).save(path).unwrap();
}

/// train: angry (2 PNGs, one of them 96×64), happy (a JPEG, an RGB PNG, a corrupt file),
/// surprise (1 PNG); val (or `val_name`): angry, neutral. Classes: angry, happy, neutral,
/// surprise.
fn build_tree(root: &Path, val_name: &str) {
    let train = root.join("train");
    write_png(&train.join("angry/a0.png"), 10);
    fs::create_dir_all(train.join("angry")).unwrap();
    GrayImage::from_pixel(96, 64, Luma([20]))
        .save(train.join("angry/big.png"))
        .unwrap();
    fs::create_dir_all(train.join("happy")).unwrap();
    flat_face(30).save(train.join("happy/h0.jpg")).unwrap();
    RgbImage::from_pixel(48, 48, Rgb([200, 0, 0]))
        .save(train.join("happy/h1.png"))
        .unwrap();
    fs::write(train.join("happy/broken.jpg"), b"not a jpeg at all").unwrap();
    write_png(&train.join("surprise/s0.png"), 60);
    write_png(&root.join(val_name).join("angry/v0.png"), 70);
    write_png(&root.join(val_name).join("neutral/v1.png"), 80);
}

fn no_cache() -> LoadOptions {
    LoadOptions { use_cache: false }
}

#[test]
fn class_folders_load_with_labels_pixels_and_skips() {
    let dir = TempDir::new("folders");
    build_tree(&dir.0, "val");
    let splits = load_with_options(&dir.0, &grey(), no_cache()).unwrap();

    // Every split's class folders, sorted; val's neutral is a class train lacks.
    let classes = ["angry", "happy", "neutral", "surprise"];
    assert_eq!(splits.train.class_names(), classes);
    assert_eq!(splits.val.class_names(), classes);
    // Sorted by class then file name: angry/a0, angry/big, happy/h0, happy/h1, surprise/s0.
    assert_eq!(splits.train.labels(), &[0, 0, 1, 1, 3]);
    assert_eq!(splits.train.class_counts(), [2, 2, 0, 1]);
    assert!(splits.train.image(0).iter().all(|&p| p == 10));
    assert!(
        splits.train.image(1).iter().all(|&p| p == 20),
        "resized image keeps its tone"
    );
    assert!(
        splits.train.image(2).iter().all(|&p| p.abs_diff(30) <= 2),
        "JPEG is lossy"
    );
    // Pure red in PIL's "L": (19595 × 200 + 2¹⁵) >> 16 = 60.
    assert!(splits.train.image(3).iter().all(|&p| p == 60));
    assert_eq!(splits.train.images().len(), 5 * IMAGE_PIXELS);
    assert_eq!(splits.val.labels(), &[0, 2]);
    assert!(splits.test.is_none());

    let report = &splits.report;
    assert_eq!(report.skipped, 1);
    // Named, with a reason a person reads (the decoders' own words can be their state).
    assert!(
        report.skipped_examples[0].contains("broken.jpg")
            && report.skipped_examples[0].ends_with(": damaged JPEG data"),
        "{:?}",
        report.skipped_examples
    );
    assert_eq!(report.resized, 1);
    assert_eq!(report.cache, CacheStatus::NotUsed);
    assert!(splits
        .train
        .summary()
        .starts_with("5 images: angry 2 (40.0%), happy 2 (40.0%), neutral 0 (0.0%)"));
}

#[test]
fn validation_folder_name_and_test_split_are_accepted() {
    let dir = TempDir::new("validation");
    build_tree(&dir.0, "validation");
    write_png(&dir.0.join("test/sad/t0.png"), 90);
    let splits = load_with_options(&dir.0, &grey(), no_cache()).unwrap();
    // Classes: angry, happy, neutral, sad (from test/), surprise.
    assert_eq!(splits.val.labels(), &[0, 2]);
    let test = splits.test.unwrap();
    assert_eq!(test.labels(), &[3]);
    assert_eq!(test.image(0), &[90; IMAGE_PIXELS][..]);
}

fn error_for(root: &Path) -> (DataError, String) {
    let error = load_with_options(root, &grey(), no_cache()).unwrap_err();
    let message = error.to_string();
    (error, message)
}

#[test]
fn layout_errors_name_the_path() {
    let dir = TempDir::new("errors");
    let missing = dir.0.join("nowhere");
    let (error, message) = error_for(&missing);
    assert!(matches!(error, DataError::MissingRoot(_)));
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );

    let (error, message) = error_for(&dir.0);
    assert!(
        matches!(error, DataError::MissingTrainSplit(_)),
        "{message}"
    );
    assert!(message.contains(&dir.0.display().to_string()), "{message}");

    write_png(&dir.0.join("train/angry/a.png"), 1);
    let (error, _) = error_for(&dir.0);
    assert!(matches!(error, DataError::MissingValSplit(_)));

    write_png(&dir.0.join("val/angry/a.png"), 1);
    let empty = dir.0.join("train/fear");
    fs::create_dir_all(&empty).unwrap();
    let (error, message) = error_for(&dir.0);
    assert!(matches!(error, DataError::EmptyClassFolder(_)), "{message}");
    assert!(message.contains(&empty.display().to_string()), "{message}");
    fs::remove_dir(&empty).unwrap();

    let shouting = dir.0.join("val/ANGRY");
    write_png(&shouting.join("c.png"), 1);
    let (error, message) = error_for(&dir.0);
    assert!(
        matches!(error, DataError::ClassNameCase { .. }),
        "{message}"
    );
    assert!(
        message.contains("\"ANGRY\" and \"angry\"")
            && message.contains(&dir.0.display().to_string()),
        "{message}"
    );
    fs::remove_dir_all(&shouting).unwrap();

    fs::write(dir.0.join("val/angry/a.png"), b"garbage").unwrap();
    let (error, message) = error_for(&dir.0);
    assert!(
        matches!(error, DataError::EmptySplit { split: "val", .. }),
        "{message}"
    );
}

#[test]
fn a_spec_no_image_fits_is_refused_by_every_source() {
    let dir = TempDir::new("bad-spec");
    build_tree(&dir.0, "val");
    let two_channels = ImageSpec {
        channels: 2,
        mean: vec![0.5; 2],
        std: vec![0.5; 2],
        ..grey()
    };
    let error = load(&dir.0, &two_channels).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cannot load images at this spec: 2 channels: images have 1 or 3"
    );
    let sizes = SplitSizes {
        train: 1,
        val: 1,
        test: 0,
    };
    let error = synthetic::generate(1, sizes, &ImageSpec { width: 0, ..grey() }, 7).unwrap_err();
    assert!(matches!(error, DataError::Spec(_)), "{error}");
}

fn csv_row(emotion: u8, value: u8, usage: &str) -> String {
    let pixels = vec![value.to_string(); IMAGE_PIXELS].join(" ");
    format!("{emotion},\"{pixels}\",{usage}\n")
}

#[test]
fn csv_maps_labels_and_skips_malformed_rows() {
    let dir = TempDir::new("csv");
    let path = dir.0.join("fer2013.csv");
    let mut text = String::from("emotion,pixels,Usage\n");
    text += &csv_row(4, 11, "Training"); // CSV 4 = sad.
    text += &csv_row(6, 22, "PublicTest"); // CSV 6 = neutral.
    text += "3,1 2 3,Training\n"; // Line 4: too few pixels.
    text += &csv_row(5, 33, "PrivateTest"); // CSV 5 = surprise.
    fs::write(&path, text).unwrap();

    let splits = load(&path, &grey()).unwrap();
    assert_eq!(splits.train.class_names(), fer2013::CLASS_NAMES);
    assert_eq!(splits.train.labels(), &[5]);
    assert_eq!(splits.train.image(0), &[11; IMAGE_PIXELS][..]);
    assert_eq!(splits.val.labels(), &[4]);
    assert_eq!(splits.test.as_ref().unwrap().labels(), &[6]);
    assert_eq!(splits.report.skipped, 1);
    assert!(splits.report.skipped_examples[0].starts_with("line 4:"));

    // Every training row unreadable: the error says why, not only that none was read.
    let mut text = String::from("emotion,pixels,Usage\n");
    text += "3,1 2 3,Training\n";
    text += &csv_row(6, 22, "PublicTest");
    fs::write(&path, text).unwrap();
    let error = load(&path, &grey()).unwrap_err().to_string();
    assert!(
        error.ends_with(
            "has no readable images (1 unreadable items were skipped, e.g. line 2: expected 2304 \
             pixel values, found 3)"
        ),
        "{error}"
    );

    fs::write(&path, "emotion,Usage\n").unwrap();
    assert!(matches!(
        load(&path, &grey()),
        Err(DataError::CsvHeader { .. })
    ));
}

fn cache_file(root: &Path) -> PathBuf {
    root.join(".fer-cache/faces-1x48x48.bin")
}

fn bump_mtime(path: &Path) {
    let later = SystemTime::now() + Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(later)
        .unwrap();
}

#[test]
fn cache_round_trips_and_invalidates() {
    let dir = TempDir::new("cache");
    build_tree(&dir.0, "val");
    let decoded = load(&dir.0, &grey()).unwrap();
    assert_eq!(
        decoded.report.cache,
        CacheStatus::Written(cache_file(&dir.0))
    );

    let cached = load(&dir.0, &grey()).unwrap();
    assert_eq!(cached.report.cache, CacheStatus::Hit(cache_file(&dir.0)));
    assert_eq!(cached.train, decoded.train);
    assert_eq!(cached.val, decoded.val);
    assert_eq!(cached.test, decoded.test);
    assert_eq!(
        cached.report.skipped, 1,
        "the cache remembers what was skipped"
    );
    assert_eq!(
        cached.report.skipped_examples,
        decoded.report.skipped_examples
    );

    bump_mtime(&dir.0.join("train/angry/a0.png"));
    assert!(matches!(
        load(&dir.0, &grey()).unwrap().report.cache,
        CacheStatus::Written(_)
    ));
    assert!(matches!(
        load(&dir.0, &grey()).unwrap().report.cache,
        CacheStatus::Hit(_)
    ));

    write_png(&dir.0.join("train/sad/new.png"), 99);
    let grown = load(&dir.0, &grey()).unwrap();
    assert!(matches!(grown.report.cache, CacheStatus::Written(_)));
    assert_eq!(grown.train.len(), 6);

    // Truncated, then bit-flipped: both are noticed, reported and rebuilt.
    let bytes = fs::read(cache_file(&dir.0)).unwrap();
    fs::write(cache_file(&dir.0), &bytes[..bytes.len() / 2]).unwrap();
    let rebuilt = load(&dir.0, &grey()).unwrap();
    assert!(matches!(rebuilt.report.cache, CacheStatus::Written(_)));
    assert!(
        rebuilt.report.warnings[0].contains("corrupt cache"),
        "{:?}",
        rebuilt.report.warnings
    );
    assert_eq!(rebuilt.train, grown.train);
    let mut flipped = fs::read(cache_file(&dir.0)).unwrap();
    let middle = flipped.len() - 100;
    flipped[middle] ^= 0x40;
    fs::write(cache_file(&dir.0), flipped).unwrap();
    let rebuilt = load(&dir.0, &grey()).unwrap();
    assert!(matches!(rebuilt.report.cache, CacheStatus::Written(_)));
    assert_eq!(rebuilt.train, grown.train);
    assert!(matches!(
        load(&dir.0, &grey()).unwrap().report.cache,
        CacheStatus::Hit(_)
    ));
}

#[test]
fn read_only_root_caches_in_temp_dir() {
    let dir = TempDir::new("read-only");
    build_tree(&dir.0, "val");
    let set_read_only = |read_only: bool| {
        let mut permissions = fs::metadata(&dir.0).unwrap().permissions();
        permissions.set_readonly(read_only);
        fs::set_permissions(&dir.0, permissions).unwrap();
    };
    set_read_only(true);
    let first = load(&dir.0, &grey()).map(|splits| splits.report.cache);
    let second = load(&dir.0, &grey()).map(|splits| splits.report.cache);
    set_read_only(false);

    let CacheStatus::Written(path) = first.unwrap() else {
        panic!("the first load writes a cache");
    };
    assert!(
        path.starts_with(std::env::temp_dir()) && !path.starts_with(&dir.0),
        "{path:?}"
    );
    assert!(!dir.0.join(".fer-cache").exists());
    assert_eq!(second.unwrap(), CacheStatus::Hit(path.clone()));
    fs::remove_file(path).unwrap();
}

fn mean_image(dataset: &Dataset, class: u8) -> Vec<f64> {
    let mut sum = vec![0.0; IMAGE_PIXELS];
    let mut count = 0.0;
    for index in (0..dataset.len()).filter(|&i| dataset.labels()[i] == class) {
        for (total, &pixel) in sum.iter_mut().zip(dataset.image(index)) {
            *total += f64::from(pixel);
        }
        count += 1.0;
    }
    sum.iter().map(|total| total / count).collect()
}

/// A model of fewer than seven classes gets FER2013's commonest (six: all but disgust, as the
/// Keras study's folder) in FER2013's order and proportions; the same faces otherwise. One
/// class works; none or more than seven is one sentence pointing to a dataset.
#[test]
fn synthetic_faces_come_in_the_models_class_count() {
    let sizes = SplitSizes {
        train: 600,
        val: 0,
        test: 0,
    };
    let six = synthetic::generate(2, sizes, &grey(), 6).unwrap().train;
    assert_eq!(
        six.class_names(),
        ["angry", "fear", "happy", "neutral", "sad", "surprise"]
    );
    assert_eq!(kept_classes(6).unwrap(), [0, 2, 3, 4, 5, 6]);
    let counts = six.class_counts();
    assert_eq!(counts, class_counts(600, &[0, 2, 3, 4, 5, 6]));
    assert_eq!(counts.iter().sum::<usize>(), 600);
    // happy keeps the largest share: 7215 of the 28273 faces left, so 153 of 600.
    assert_eq!(counts[2], 153);
    assert!(six.labels().iter().all(|&label| label < 6));

    let one = synthetic::generate(2, sizes, &grey(), 1).unwrap().train;
    assert_eq!(one.class_names(), ["happy"]);
    assert_eq!(one.class_counts(), [600]);

    for classes in [0, 8] {
        let error = synthetic::generate(2, sizes, &grey(), classes).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "synthetic faces come in FER2013's 7 expressions, so a model of {classes} \
                 classes needs a dataset of its own (--data)"
            )
        );
    }
}

#[test]
fn synthetic_faces_are_deterministic_imbalanced_and_class_dependent() {
    let sizes = SplitSizes {
        train: 1400,
        val: 350,
        test: 0,
    };
    let splits = synthetic::generate(7, sizes, &grey(), 7).unwrap();
    let again = synthetic::generate(7, sizes, &grey(), 7).unwrap();
    let other = synthetic::generate(8, sizes, &grey(), 7).unwrap();
    assert_eq!(splits.train, again.train);
    assert_eq!(splits.val, again.val);
    assert_ne!(splits.train, other.train);
    assert!(splits.test.is_none());

    let counts = splits.train.class_counts();
    assert_eq!(counts, class_counts(1400, &kept_classes(7).unwrap()));
    assert_eq!(counts.iter().sum::<usize>(), 1400);
    // FER2013's shares: happy most (25.1%), disgust fewest (1.5%).
    assert_eq!(counts[3], 352);
    assert_eq!(counts[1], 21);
    assert_eq!(splits.val.class_counts().iter().sum::<usize>(), 350);

    // Mean faces differ where the expressions do (mouth, brows, eyes) more than noise allows.
    let happy = mean_image(&splits.train, 3);
    for class in [0u8, 2, 4, 5, 6] {
        let mean = mean_image(&splits.train, class);
        let distance: f64 = happy
            .iter()
            .zip(&mean)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(distance > 40.0, "class {class} vs happy: {distance}");
    }
    let pixels = splits.train.images();
    let spread =
        pixels.iter().filter(|&&p| p < 30).count() + pixels.iter().filter(|&&p| p > 225).count();
    assert!(spread > 0, "lighting varies widely");
}

#[test]
fn batches_are_normalized_and_shuffled_deterministically() {
    let mut images = vec![0u8; 2 * IMAGE_PIXELS];
    images[IMAGE_PIXELS..].fill(255);
    images[1] = 51; // Image 0, row 0, column 1.
    let dataset = Dataset::new(grey(), fer2013::class_names(), images, vec![2, 6]);

    let batch = to_normalized_f32(&dataset, &[1, 0]);
    assert_eq!(batch.len(), 2 * IMAGE_PIXELS);
    assert!((batch[0] - 1.0).abs() < 1e-6);
    assert!((batch[IMAGE_PIXELS] + 1.0).abs() < 1e-6);
    let expected = (51.0 / 255.0 - 0.5) / 0.5;
    assert!((batch[IMAGE_PIXELS + 1] - expected).abs() < 1e-6);
    assert_eq!(labels_u32(&dataset, &[1, 0]), vec![6, 2]);

    let order = shuffled_indices(100, 3, 0);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_eq!(order, shuffled_indices(100, 3, 0));
    assert_ne!(order, shuffled_indices(100, 3, 1));
    assert_ne!(order, shuffled_indices(100, 4, 0));
}

/// Loads the real FER2013 folders named by FER2013_DIR and checks the published counts.
/// Run with `FER2013_DIR=... cargo test --release --test data -- --ignored --nocapture`.
#[test]
#[ignore = "needs the real FER2013 folders in FER2013_DIR"]
fn real_fer2013_loads() {
    let Some(root) = std::env::var_os("FER2013_DIR") else {
        eprintln!("FER2013_DIR is not set; skipping");
        return;
    };
    for attempt in ["first", "second"] {
        let started = Instant::now();
        let splits = load(&root, &grey()).unwrap();
        eprintln!(
            "{attempt} load: {:.2} s, cache {:?}, skipped {}\n  train {}\n  val   {}",
            started.elapsed().as_secs_f64(),
            splits.report.cache,
            splits.report.skipped,
            splits.train.summary(),
            splits.val.summary()
        );
        assert_eq!(
            splits.train.class_counts(),
            [3995, 436, 4097, 7215, 4965, 4830, 3171]
        );
        assert_eq!(
            splits.val.class_counts(),
            [467, 56, 496, 895, 607, 653, 415]
        );
        assert_eq!(splits.report.skipped, 0);
    }
}

/// Writes one flat PNG per `(split, class)` pair, `per_class` of them, so the class folders
/// are all the test lays out.
fn write_classes(root: &Path, split: &str, classes: &[&str], per_class: usize) {
    for (index, class) in classes.iter().enumerate() {
        for file in 0..per_class {
            write_png(
                &root.join(split).join(class).join(format!("{file}.png")),
                index as u8,
            );
        }
    }
}

#[test]
fn class_folders_take_any_names_and_any_count() {
    let dir = TempDir::new("any-classes");
    // Sorted by code point, as Python's sorted() and torchvision's ImageFolder sort them.
    let three = ["Zebra crossing", "cat", "été"];
    write_classes(&dir.0, "train", &three, 2);
    write_classes(&dir.0, "val", &three[1..], 1);
    let splits = load_with_options(&dir.0, &grey(), no_cache()).unwrap();
    assert_eq!(splits.train.class_names(), three);
    assert_eq!(splits.train.labels(), &[0, 0, 1, 1, 2, 2]);
    assert_eq!(splits.val.labels(), &[1, 2]);
    assert!(splits.train.image(2).iter().all(|&p| p == 1), "cat's PNG");
    assert_eq!(
        splits.val.summary(),
        "2 images: Zebra crossing 0 (0.0%), cat 1 (50.0%), été 1 (50.0%)"
    );

    let dir = TempDir::new("six-classes");
    let six = [
        "buildings",
        "forest",
        "glacier",
        "mountain",
        "sea",
        "street",
    ];
    write_classes(&dir.0, "train", &six[..5], 1);
    // The sixth class only in val still has its place in the sorted list.
    write_classes(&dir.0, "val", &six, 1);
    let splits = load_with_options(&dir.0, &grey(), no_cache()).unwrap();
    assert_eq!(splits.train.class_count(), 6);
    assert_eq!(splits.train.class_names(), six);
    assert_eq!(splits.train.class_counts(), [1, 1, 1, 1, 1, 0]);
    assert_eq!(splits.val.labels(), &[0, 1, 2, 3, 4, 5]);
}

/// A spec of the given channels and size, normalised to [−1, 1].
fn spec(channels: usize, height: usize, width: usize) -> ImageSpec {
    ImageSpec {
        channels,
        height,
        width,
        mean: vec![0.5; channels],
        std: vec![0.5; channels],
    }
}

#[test]
fn colour_and_grey_images_are_read_as_the_spec_asks() {
    let dir = TempDir::new("channels");
    // A 3 × 2 RGB image; PIL's convert("L") gives (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16.
    let colours = [
        [200, 0, 0],
        [0, 200, 0],
        [0, 0, 200],
        [10, 20, 30],
        [255, 255, 255],
        [128, 64, 200],
    ];
    let pil_l = [60, 117, 23, 18, 255, 99];
    let rgb = RgbImage::from_fn(3, 2, |x, y| Rgb(colours[(y * 3 + x) as usize]));
    rgb.save(dir.0.join("colour.png")).unwrap();
    let grey_pixels = [1, 2, 3, 4, 5, 6];
    GrayImage::from_fn(3, 2, |x, y| Luma([grey_pixels[(y * 3 + x) as usize]]))
        .save(dir.0.join("grey.png"))
        .unwrap();
    fs::create_dir_all(dir.0.join("train/colour")).unwrap();
    fs::create_dir_all(dir.0.join("train/grey")).unwrap();
    fs::copy(dir.0.join("colour.png"), dir.0.join("train/colour/c.png")).unwrap();
    fs::copy(dir.0.join("grey.png"), dir.0.join("train/grey/g.png")).unwrap();
    // A flat colour JPEG: lossy, but a flat patch decodes within a step or two.
    fs::create_dir_all(dir.0.join("val/colour")).unwrap();
    RgbImage::from_pixel(3, 2, Rgb([200, 0, 0]))
        .save(dir.0.join("val/colour/c.jpg"))
        .unwrap();

    let as_grey = load_with_options(&dir.0, &spec(1, 2, 3), no_cache()).unwrap();
    assert_eq!(as_grey.train.image(0), pil_l);
    assert_eq!(as_grey.train.image(1), grey_pixels, "grey stays as it is");
    assert!(
        as_grey.val.image(0).iter().all(|&p| p.abs_diff(60) <= 2),
        "{:?}",
        as_grey.val.image(0)
    );
    assert_eq!(as_grey.report.resized, 0);

    let as_rgb = load_with_options(&dir.0, &spec(3, 2, 3), no_cache()).unwrap();
    // Channel planes: every red, then every green, then every blue.
    let planes: Vec<u8> = (0..3)
        .flat_map(|c| colours.iter().map(move |colour| colour[c]))
        .collect();
    assert_eq!(as_rgb.train.image(0), planes);
    assert_eq!(
        as_rgb.train.image(1),
        [grey_pixels; 3].concat(),
        "grey becomes three equal channels"
    );
}

#[test]
fn every_source_resizes_to_the_spec() {
    let dir = TempDir::new("resize");
    write_png(&dir.0.join("train/flat/f.png"), 77);
    // Brightness rising left to right.
    fs::create_dir_all(dir.0.join("val/ramp")).unwrap();
    GrayImage::from_fn(48, 48, |x, _| Luma([(x * 5) as u8]))
        .save(dir.0.join("val/ramp/r.png"))
        .unwrap();
    let big = ImageSpec::imagenet_rgb(222, 222);
    let splits = load_with_options(&dir.0, &big, no_cache()).unwrap();
    assert_eq!(splits.train.image_len(), 3 * 222 * 222);
    assert_eq!(splits.report.resized, 2);
    assert!(
        splits.train.image(0).iter().all(|&p| p == 77),
        "flat stays flat"
    );
    let ramp = splits.val.image(0);
    for row in ramp.chunks_exact(222) {
        assert!(row.windows(2).all(|pair| pair[0] <= pair[1]), "{row:?}");
        assert!(row[0] < 10 && row[221] > 225, "the ramp spans the row");
    }
    assert_eq!(
        &ramp[..222 * 222],
        &ramp[2 * 222 * 222..],
        "grey: equal channels"
    );

    let csv = dir.0.join("fer2013.csv");
    let text = String::from("emotion,pixels,Usage\n")
        + &csv_row(3, 40, "Training")
        + &csv_row(0, 50, "PublicTest");
    fs::write(&csv, text).unwrap();
    let splits = load(&csv, &big).unwrap();
    assert_eq!(splits.train.image(0), vec![40; 3 * 222 * 222]);
    assert_eq!(splits.report.resized, 2);

    let sizes = SplitSizes {
        train: 7,
        val: 1,
        test: 0,
    };
    let faces = synthetic::generate(3, sizes, &big, 7).unwrap().train;
    let small = synthetic::generate(3, sizes, &grey(), 7).unwrap().train;
    assert_eq!(faces.images().len(), 7 * 3 * 222 * 222);
    assert_eq!(
        faces.labels(),
        small.labels(),
        "the same faces at every spec"
    );
}

#[test]
fn caches_of_two_specs_live_side_by_side() {
    let dir = TempDir::new("two-caches");
    build_tree(&dir.0, "val");
    let big = ImageSpec::imagenet_rgb(222, 222);
    let small = load(&dir.0, &grey()).unwrap();
    let large = load(&dir.0, &big).unwrap();
    let big_file = dir.0.join(".fer-cache/faces-3x222x222.bin");
    assert_eq!(small.report.cache, CacheStatus::Written(cache_file(&dir.0)));
    assert_eq!(large.report.cache, CacheStatus::Written(big_file.clone()));
    assert_eq!(large.train.image_len(), 3 * 222 * 222);

    for (spec, decoded, file) in [
        (grey(), &small, cache_file(&dir.0)),
        (big, &large, big_file),
    ] {
        let cached = load(&dir.0, &spec).unwrap();
        assert_eq!(cached.report.cache, CacheStatus::Hit(file));
        assert_eq!(cached.train, decoded.train);
        assert_eq!(cached.val, decoded.val);
    }

    // Normalisation is not in the bytes: another mean and std reuse the cache and carry theirs.
    let recentred = ImageSpec {
        mean: vec![0.2],
        std: vec![0.3],
        ..grey()
    };
    let cached = load(&dir.0, &recentred).unwrap();
    assert_eq!(cached.report.cache, CacheStatus::Hit(cache_file(&dir.0)));
    assert_eq!(cached.train.images(), small.train.images());
    assert_eq!(cached.train.spec(), &recentred);
}

#[test]
fn batches_normalise_each_channel_by_its_mean_and_std() {
    let spec = ImageSpec::imagenet_rgb(1, 2);
    // One image, channel planes [r0 r1] [g0 g1] [b0 b1].
    let image = vec![0, 255, 51, 102, 153, 204];
    let dataset = Dataset::new(spec.clone(), vec!["only".into()], image.clone(), vec![0]);
    let batch = to_normalized_f32(&dataset, &[0]);
    for (i, (&x, &value)) in image.iter().zip(&batch).enumerate() {
        let channel = i / 2;
        let expected =
            (f64::from(x) / 255.0 - f64::from(spec.mean[channel])) / f64::from(spec.std[channel]);
        // f32 rounding of a value below 3 in magnitude, twice: well under 1e-6.
        assert!(
            (f64::from(value) - expected).abs() < 1e-6,
            "value {i}: {value} vs {expected}"
        );
    }
}
