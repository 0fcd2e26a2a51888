//! The Kaggle class-folder layout: `<root>/{train,val|validation,test}/<class>/<image file>`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use image::imageops::{self, FilterType};
use image::{ImageReader, Limits};

use super::classes::{class_index, IMAGE_PIXELS, IMAGE_SIDE};
use super::dataset::{require_images, Dataset, LoadReport, Split, Splits};
use super::error::DataError;
use super::parallel::map_chunks;

/// The image files of a class-folder dataset, found but not yet decoded.
pub(crate) struct FolderLayout {
    pub root: PathBuf,
    /// Train and val always; test only when a `test/` folder exists.
    pub splits: Vec<SplitFiles>,
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

/// Lists every split, class folder and image file under `root`, with sizes and times.
pub(crate) fn scan(root: &Path) -> Result<FolderLayout, DataError> {
    let train = root.join("train");
    if !train.is_dir() {
        return Err(DataError::MissingTrainSplit(root.to_path_buf()));
    }
    let val = match (root.join("val"), root.join("validation")) {
        (val, validation) if val.is_dir() && validation.is_dir() => {
            return Err(DataError::AmbiguousValSplit(root.to_path_buf()))
        }
        (val, _) if val.is_dir() => val,
        (_, validation) if validation.is_dir() => validation,
        _ => return Err(DataError::MissingValSplit(root.to_path_buf())),
    };
    let mut split_dirs = vec![(Split::Train, train), (Split::Val, val)];
    let test = root.join("test");
    if test.is_dir() {
        split_dirs.push((Split::Test, test));
    }
    let splits = split_dirs
        .into_iter()
        .map(|(split, dir)| {
            let files = scan_split(&dir)?;
            Ok(SplitFiles { split, dir, files })
        })
        .collect::<Result<_, DataError>>()?;
    Ok(FolderLayout {
        root: root.to_path_buf(),
        splits,
    })
}

/// Decodes every image of every split, skipping (and counting) files that can't be decoded.
pub(crate) fn decode(layout: &FolderLayout) -> Result<Splits, DataError> {
    let mut report = LoadReport::default();
    let mut decoded = Vec::with_capacity(layout.splits.len());
    for split_files in &layout.splits {
        let (dataset, split_report) = decode_split(&split_files.files);
        report.absorb(split_report);
        decoded.push(require_images(
            dataset,
            split_files.split,
            &split_files.dir,
        )?);
    }
    let mut decoded = decoded.into_iter();
    Ok(Splits {
        train: decoded.next().unwrap_or_default(),
        val: decoded.next().unwrap_or_default(),
        test: decoded.next(),
        report,
    })
}

fn scan_split(dir: &Path) -> Result<Vec<ImageFile>, DataError> {
    let mut files = Vec::new();
    for class_dir in visible_entries(dir)? {
        if !class_dir.is_dir() {
            continue; // Stray files beside the class folders (notes, archives) are not images.
        }
        let name = class_dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let label = class_index(name).ok_or_else(|| DataError::UnknownClassFolder {
            path: class_dir.clone(),
        })?;
        let before = files.len();
        for path in visible_entries(&class_dir)? {
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
            return Err(DataError::EmptyClassFolder(class_dir));
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

fn decode_split(files: &[ImageFile]) -> (Dataset, LoadReport) {
    let chunks = map_chunks(files, |chunk| {
        let mut images = Vec::with_capacity(chunk.len() * IMAGE_PIXELS);
        let mut labels = Vec::with_capacity(chunk.len());
        let mut report = LoadReport::default();
        for file in chunk {
            match decode_face(&file.path) {
                Ok((face, was_resized)) => {
                    images.extend_from_slice(&face);
                    labels.push(file.label);
                    report.resized += usize::from(was_resized);
                }
                Err(reason) => report.record_skip(|| format!("{}: {reason}", file.path.display())),
            }
        }
        (Dataset::new(images, labels), report)
    });
    let mut report = LoadReport::default();
    let mut parts = Vec::with_capacity(chunks.len());
    for (part, part_report) in chunks {
        parts.push(part);
        report.absorb(part_report);
    }
    (Dataset::concat(parts), report)
}

/// The largest image a face file may be. A photo of a face is far smaller; a header claiming
/// more (a damaged or hostile file) is refused before anything is allocated.
const MAX_IMAGE_SIDE: u32 = 16_384;
const MAX_DECODE_BYTES: u64 = 256 << 20;

/// Decodes any format the `image` crate reads (sniffed from the bytes, not the extension) to
/// 8-bit luma, resized to 48 × 48 with a triangle (bilinear) filter when it isn't already.
fn decode_face(path: &Path) -> Result<(Vec<u8>, bool), String> {
    let mut reader = ImageReader::open(path)
        .map_err(|error| error.to_string())?
        .with_guessed_format()
        .map_err(|error| error.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|error| error.to_string())?;
    let gray = decoded.into_luma8();
    let side = IMAGE_SIDE as u32;
    if gray.dimensions() == (side, side) {
        return Ok((gray.into_raw(), false));
    }
    let resized = imageops::resize(&gray, side, side, FilterType::Triangle);
    Ok((resized.into_raw(), true))
}
