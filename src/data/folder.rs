//! The Kaggle class-folder layout: `<root>/{train,val|validation,test}/<class>/<image file>`.
//!
//! Any folder names are classes and any number of them, as torchvision's `ImageFolder` and
//! Keras's `image_dataset_from_directory` read them: the classes are the folder names of all
//! splits together, sorted, and a label indexes that list. A split may lack a class.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use image::{DynamicImage, ImageError, ImageReader, Limits};

use super::carve::{carve, Carving, ONE_FOLDER_SHARES};
use super::convert::to_spec;
use super::dataset::{require_images, Dataset, LoadReport, SourcedSplit, Split, Splits};
use super::error::{DataError, MAX_CLASSES};
use super::image_spec::ImageSpec;
use super::parallel::map_chunks;

/// The image files of a class-folder dataset, found but not yet decoded.
pub(crate) struct FolderLayout {
    pub root: PathBuf,
    /// Sorted; an [`ImageFile`]'s label indexes this.
    pub class_names: Vec<String>,
    /// Train and val always; test only when a `test/` folder exists or the root is one folder
    /// of class folders.
    pub splits: Vec<SplitFiles>,
    /// How splits the dataset lacks were carved (or why --val-split carved none), for the
    /// load report.
    pub carved: Option<String>,
}

pub(crate) struct SplitFiles {
    pub split: Split,
    pub dir: PathBuf,
    /// Sorted by class, then file name, so loading order is stable.
    pub files: Vec<ImageFile>,
}

pub(crate) struct ImageFile {
    pub path: PathBuf,
    pub label: u8,
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch (0 where the OS doesn't say).
    pub modified_nanos: u128,
}

/// Lists every split, class folder and image file under `root`, with sizes and times; a split
/// the dataset lacks is carved as `carving` says ([`super::carve`]).
pub(crate) fn scan(root: &Path, carving: Carving) -> Result<FolderLayout, DataError> {
    let train = root.join("train");
    if !train.is_dir() {
        return scan_one_folder(root, carving.seed);
    }
    let val = match (val_dir(root), carving.val_split) {
        (Err(DataError::MissingValSplit(_)), Some(_)) => None,
        (val, _) => Some(val?),
    };
    let mut split_dirs = vec![(Split::Train, train)];
    split_dirs.extend(val.map(|val| (Split::Val, val)));
    let test = root.join("test");
    if test.is_dir() {
        split_dirs.push((Split::Test, test));
    }
    let class_dirs = split_dirs
        .iter()
        .map(|(_, dir)| class_folders(dir))
        .collect::<Result<Vec<_>, DataError>>()?;
    let class_names = class_set(root, class_dirs.iter().flatten().map(|(name, _)| name))?;
    let mut splits: Vec<SplitFiles> = split_dirs
        .into_iter()
        .zip(&class_dirs)
        .map(|((split, dir), classes)| {
            let files = scan_split(classes, &class_names)?;
            Ok(SplitFiles { split, dir, files })
        })
        .collect::<Result<_, DataError>>()?;
    let has_val = splits.iter().any(|s| s.split == Split::Val);
    let mut carved = carving
        .val_split
        .filter(|_| has_val)
        .map(|share| format!("val/ exists, so --val-split {share} carves nothing"));
    if let (Some(share), false) = (carving.val_split, has_val) {
        let train = std::mem::take(&mut splits[0].files);
        let images = train.len();
        let (train, [val]) = carve_into(train, [share], carving.seed);
        let dir = splits[0].dir.clone();
        if val.is_empty() {
            return Err(DataError::NothingCarved { share, dir, images });
        }
        splits[0].files = train;
        splits.insert(
            1,
            SplitFiles {
                split: Split::Val,
                dir,
                files: val,
            },
        );
        carved = Some(format!(
            "val carved from train: {:.0}% of each class (seed {})",
            share * 100.0,
            carving.seed
        ));
    }
    Ok(FolderLayout {
        root: root.to_path_buf(),
        class_names,
        splits,
        carved,
    })
}

/// A folder whose folders are the classes (no train/): split into train, val and test by
/// [`ONE_FOLDER_SHARES`]. A root with val/ or test/ but no train/ lacks its train split.
fn scan_one_folder(root: &Path, seed: u64) -> Result<FolderLayout, DataError> {
    let missing_train = || DataError::MissingTrainSplit(root.to_path_buf());
    let classes = class_folders(root)?;
    let split_named = |name: &String| ["val", "validation", "test"].contains(&name.as_str());
    if classes.is_empty() || classes.iter().any(|(name, _)| split_named(name)) {
        return Err(missing_train());
    }
    let class_names = class_set(root, classes.iter().map(|(name, _)| name))?;
    let files = scan_split(&classes, &class_names)?;
    let (train, [val, test]) = carve_into(files, ONE_FOLDER_SHARES, seed);
    let split = |split, files| SplitFiles {
        split,
        dir: root.to_path_buf(),
        files,
    };
    Ok(FolderLayout {
        root: root.to_path_buf(),
        class_names,
        splits: vec![
            split(Split::Train, train),
            split(Split::Val, val),
            split(Split::Test, test),
        ],
        carved: Some(format!(
            "one folder of class folders, split 70/15/15 into train/val/test per class \
             (seed {seed})"
        )),
    })
}

/// [`carve`] with as many carved splits as shares.
fn carve_into<const N: usize>(
    files: Vec<ImageFile>,
    shares: [f64; N],
    seed: u64,
) -> (Vec<ImageFile>, [Vec<ImageFile>; N]) {
    let (kept, carved) = carve(files, &shares, seed);
    let carved = carved
        .try_into()
        .unwrap_or_else(|_| unreachable!("carve returns one split per share"));
    (kept, carved)
}

/// `val/` or `validation/` (one of them).
fn val_dir(root: &Path) -> Result<PathBuf, DataError> {
    match (root.join("val"), root.join("validation")) {
        (val, validation) if val.is_dir() && validation.is_dir() => {
            Err(DataError::AmbiguousValSplit(root.to_path_buf()))
        }
        (val, _) if val.is_dir() => Ok(val),
        (_, validation) if validation.is_dir() => Ok(validation),
        _ => Err(DataError::MissingValSplit(root.to_path_buf())),
    }
}

/// Decodes one split of `root` at `spec`, uncached, with each kept image's path; the root needs
/// no other split. Its classes are the split's own folders; a split the dataset lacks is carved
/// as `carving` says, with the classes of the whole dataset.
pub(crate) fn load_split(
    root: &Path,
    split: Split,
    spec: &ImageSpec,
    carving: Carving,
) -> Result<SourcedSplit, DataError> {
    let dir = match split {
        Split::Val => val_dir(root).ok(),
        Split::Train | Split::Test => Some(root.join(split.name())),
    };
    let (class_names, files, dir) = match dir.filter(|dir| dir.is_dir()) {
        Some(dir) => {
            let classes = class_folders(&dir)?;
            let class_names = class_set(root, classes.iter().map(|(name, _)| name))?;
            let files = scan_split(&classes, &class_names)?;
            (class_names, files, dir)
        }
        None => {
            let layout = scan(root, carving)?;
            let found = layout
                .splits
                .into_iter()
                .find(|files| files.split == split)
                .ok_or_else(|| DataError::MissingSplit {
                    split: split.name(),
                    path: root.to_path_buf(),
                })?;
            (layout.class_names, found.files, found.dir)
        }
    };
    let (images, labels, paths, report) = decode_split(&files, spec);
    let data = Dataset::new(spec.clone(), class_names, images, labels);
    Ok(SourcedSplit {
        data: require_images(data, split, &dir, &report)?,
        sources: paths
            .iter()
            .map(|path| path.display().to_string())
            .collect(),
        report,
    })
}

/// Decodes every image of every split at `spec`, skipping (and counting) files that can't be
/// decoded.
pub(crate) fn decode(layout: &FolderLayout, spec: &ImageSpec) -> Result<Splits, DataError> {
    let mut report = LoadReport::default();
    let mut decoded = Vec::with_capacity(layout.splits.len());
    for split_files in &layout.splits {
        let (images, labels, _, split_report) = decode_split(&split_files.files, spec);
        let dataset = Dataset::new(spec.clone(), layout.class_names.clone(), images, labels);
        let split = split_files.split;
        decoded.push(require_images(
            dataset,
            split,
            &split_files.dir,
            &split_report,
        )?);
        report.absorb(split_report);
    }
    let mut decoded = decoded.into_iter();
    match (decoded.next(), decoded.next()) {
        (Some(train), Some(val)) => Ok(Splits {
            train,
            val,
            test: decoded.next(),
            report,
        }),
        _ => unreachable!("scan always lists the train and val splits"),
    }
}

/// The class folders of a split directory, as (name, path), sorted by name. Stray files beside
/// them (notes, archives) are not classes.
fn class_folders(split_dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    Ok(visible_entries(split_dir)?
        .into_iter()
        .filter(|path| path.is_dir())
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            (name.into_owned(), path)
        })
        .collect())
}

/// Every split's class names together, sorted (by code point, as Python's `sorted`); names
/// that differ only in case would be two classes to a program and one to a person, so they are
/// refused.
fn class_set<'a>(
    root: &Path,
    names: impl Iterator<Item = &'a String>,
) -> Result<Vec<String>, DataError> {
    let class_names: Vec<String> = names
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut by_folded_case: HashMap<String, &String> = HashMap::new();
    for name in &class_names {
        if let Some(first) = by_folded_case.insert(name.to_lowercase(), name) {
            return Err(DataError::ClassNameCase {
                root: root.to_path_buf(),
                first: first.clone(),
                second: name.clone(),
            });
        }
    }
    if class_names.len() > MAX_CLASSES {
        return Err(DataError::TooManyClasses {
            root: root.to_path_buf(),
            count: class_names.len(),
        });
    }
    Ok(class_names)
}

fn scan_split(
    classes: &[(String, PathBuf)],
    class_names: &[String],
) -> Result<Vec<ImageFile>, DataError> {
    let mut files = Vec::new();
    for (name, class_dir) in classes {
        // class_set took every name, and refused more than a byte of labels.
        let label = class_names
            .binary_search(name)
            .map_or(0, |index| index as u8);
        let before = files.len();
        for path in visible_entries(class_dir)? {
            // fs::metadata follows symlinks, so linked image files count like real ones.
            let metadata = fs::metadata(&path).map_err(|error| DataError::io(&path, error))?;
            if !metadata.is_file() {
                continue;
            }
            let modified_nanos = metadata
                .modified()
                .ok()
                .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |since| since.as_nanos());
            files.push(ImageFile {
                path,
                label,
                size: metadata.len(),
                modified_nanos,
            });
        }
        if files.len() == before {
            return Err(DataError::EmptyClassFolder(class_dir.clone()));
        }
    }
    files.sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
    Ok(files)
}

/// The entries of `dir` whose names don't start with a dot, sorted by name.
fn visible_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let read_error = |error| DataError::io(dir, error);
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// The images that decoded, their labels and paths, and what was skipped.
fn decode_split(
    files: &[ImageFile],
    spec: &ImageSpec,
) -> (Vec<u8>, Vec<u8>, Vec<PathBuf>, LoadReport) {
    let chunks = map_chunks(files, |chunk| {
        let mut images = Vec::new();
        let mut labels = Vec::with_capacity(chunk.len());
        let mut paths = Vec::with_capacity(chunk.len());
        let mut report = LoadReport::default();
        for file in chunk {
            match open_image(&file.path).map(|decoded| to_spec(decoded, spec)) {
                Ok((image, was_resized)) => {
                    images.extend_from_slice(&image);
                    labels.push(file.label);
                    paths.push(file.path.clone());
                    report.resized += usize::from(was_resized);
                }
                Err(reason) => report.record_skip(|| format!("{}: {reason}", file.path.display())),
            }
        }
        (images, labels, paths, report)
    });
    let (mut images, mut labels, mut paths) = (Vec::new(), Vec::new(), Vec::new());
    let mut report = LoadReport::default();
    for (part_images, part_labels, part_paths, part_report) in chunks {
        images.extend_from_slice(&part_images);
        labels.extend_from_slice(&part_labels);
        paths.extend(part_paths);
        report.absorb(part_report);
    }
    (images, labels, paths, report)
}

/// The largest image a file may be. A photo of a face is far smaller; a header claiming more
/// (a damaged or hostile file) is refused before anything is allocated.
const MAX_IMAGE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Decodes any format the `image` crate reads (sniffed from the bytes, not the extension),
/// within the size limits above; the error is the reason, without the path.
pub fn open_image(path: &Path) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::open(path)
        .map_err(|error| error.to_string())?
        .with_guessed_format()
        .map_err(|error| error.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|error| match error {
        // The decoders' own words can be their internal state (the png crate's chunk types).
        ImageError::Decoding(error) => {
            format!(
                "damaged {} data",
                error.format_hint().to_string().to_uppercase()
            )
        }
        ImageError::Limits(_) => format!(
            "larger than fer decodes ({MAX_IMAGE_SIDE} pixels a side, {} MiB decoded)",
            MAX_DECODE_BYTES >> 20
        ),
        other => other.to_string(),
    })
}
