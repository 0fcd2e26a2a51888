//! The decode cache: a class-folder dataset's pixels decoded at one image spec in one binary
//! file, reused while the source files are unchanged. Each spec's size and channels have their
//! own file (`faces-3x222x222.bin`), so caches for several models' specs live side by side;
//! normalisation is applied to batches, not stored, so specs differing only in it share one.
//!
//! Layout (little-endian): magic, version, source fingerprint, skipped and resized counts, the
//! skipped examples, then per split its image count (`u64::MAX` for an absent test split), then
//! per present split its labels and pixels, and last a checksum of everything before it.
//!
//! The fingerprint hashes every image file's path relative to the root, size and modification
//! time (the spec is in the file's name). Scanning already reads these, and a stat is tiny next
//! to a JPEG decode, so the precise key costs almost nothing, and unlike count + total size +
//! newest time it also notices a file moved between class folders (a label change) or replaced
//! by one with an older time.

use std::fs;
use std::path::{Path, PathBuf};

use super::dataset::{CacheStatus, Dataset, LoadReport, Splits};
use super::error::DataError;
use super::folder::{self, FolderLayout};
use super::image_spec::ImageSpec;

const MAGIC: &[u8; 8] = b"FERFACES";
/// Bump when the layout, the decoding or the resize filter changes, so old caches are rebuilt.
/// 2: keyed by the spec, colour to grey by PIL's luma weights.
const VERSION: u32 = 2;
const ABSENT_SPLIT: u64 = u64::MAX;
const CACHE_DIR: &str = ".fer-cache";

/// Loads the dataset at `spec` from a valid cache, or decodes it and writes a new cache.
pub(crate) fn load_or_decode(layout: &FolderLayout, spec: &ImageSpec) -> Result<Splits, DataError> {
    let fingerprint = fingerprint(layout);
    let candidates = cache_paths(&layout.root, spec);
    let mut warnings = Vec::new();
    for path in &candidates {
        match read(path, fingerprint, layout, spec) {
            Ok(Some(mut splits)) => {
                splits.report.cache = CacheStatus::Hit(path.clone());
                return Ok(splits);
            }
            Ok(None) => {}
            Err(reason) => warnings.push(format!(
                "ignored the corrupt cache {}: {reason}; rebuilding it",
                path.display()
            )),
        }
    }
    let mut splits = folder::decode(layout, spec)?;
    let mut write_errors = Vec::new();
    for path in &candidates {
        match write(path, fingerprint, &splits) {
            Ok(()) => {
                splits.report.cache = CacheStatus::Written(path.clone());
                break;
            }
            Err(error) => write_errors.push(format!(
                "could not write the cache {}: {error}",
                path.display()
            )),
        }
    }
    // A read-only dataset root is normal; only failing everywhere is worth a warning.
    if write_errors.len() == candidates.len() {
        splits.report.cache = CacheStatus::WriteFailed;
        warnings.extend(write_errors);
    }
    splits.report.warnings.extend(warnings);
    Ok(splits)
}

/// `.fer-cache/` inside the dataset root first, then the system temp directory under a name
/// derived from the root's absolute path. The root is passed over when its permissions mark it
/// read-only (checked by mode, since a root user could write there anyway, e.g. into a shared
/// copy) or when it lies inside a git work tree, so a cache never lands in a repository.
fn cache_paths(root: &Path, spec: &ImageSpec) -> Vec<PathBuf> {
    let [channels, height, width] = spec.shape();
    let file = format!("faces-{channels}x{height}x{width}.bin");
    let absolute = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let root_hash = hash_bytes(absolute.to_string_lossy().as_bytes());
    let in_temp = std::env::temp_dir()
        .join("fer-cache")
        .join(format!("{root_hash:016x}-{file}"));
    let read_only = fs::metadata(root).is_ok_and(|metadata| metadata.permissions().readonly());
    let in_repository = absolute.ancestors().any(|dir| dir.join(".git").exists());
    if read_only || in_repository {
        vec![in_temp]
    } else {
        vec![root.join(CACHE_DIR).join(file), in_temp]
    }
}

fn fingerprint(layout: &FolderLayout) -> u64 {
    let mut key = Vec::new();
    key.extend_from_slice(&VERSION.to_le_bytes());
    for split in &layout.splits {
        key.extend_from_slice(split.split.name().as_bytes());
        key.push(0);
        for file in &split.files {
            let relative = file.path.strip_prefix(&layout.root).unwrap_or(&file.path);
            key.extend_from_slice(relative.to_string_lossy().as_bytes());
            key.push(0);
            key.extend_from_slice(&file.size.to_le_bytes());
            key.extend_from_slice(&file.modified_nanos.to_le_bytes());
        }
    }
    hash_bytes(&key)
}

fn write(path: &Path, fingerprint: u64, splits: &Splits) -> std::io::Result<()> {
    let report = &splits.report;
    let examples = report.skipped_examples.join("\n");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&fingerprint.to_le_bytes());
    bytes.extend_from_slice(&(report.skipped as u64).to_le_bytes());
    bytes.extend_from_slice(&(report.resized as u64).to_le_bytes());
    bytes.extend_from_slice(&(examples.len() as u64).to_le_bytes());
    bytes.extend_from_slice(examples.as_bytes());
    let datasets = [Some(&splits.train), Some(&splits.val), splits.test.as_ref()];
    for dataset in datasets {
        let count = dataset.map_or(ABSENT_SPLIT, |dataset| dataset.len() as u64);
        bytes.extend_from_slice(&count.to_le_bytes());
    }
    for dataset in datasets.into_iter().flatten() {
        bytes.extend_from_slice(dataset.labels());
        bytes.extend_from_slice(dataset.images());
    }
    bytes.extend_from_slice(&hash_bytes(&bytes).to_le_bytes());

    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    crate::fsutil::write_atomically(path, &bytes)
}

/// `Ok(None)` when there is no cache or it belongs to other source files or another version;
/// `Err` with the reason when the file is damaged (one of another spec has the wrong length).
fn read(
    path: &Path,
    fingerprint: u64,
    layout: &FolderLayout,
    spec: &ImageSpec,
) -> Result<Option<Splits>, String> {
    let Ok(bytes) = fs::read(path) else {
        return Ok(None);
    };
    let mut reader = Reader { bytes: &bytes };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err("it does not start with the cache magic".into());
    }
    if reader.u64_from(4)? != u64::from(VERSION) || reader.u64()? != fingerprint {
        return Ok(None);
    }
    let (body, checksum) = bytes.split_at(bytes.len().saturating_sub(8));
    if checksum.len() != 8 || hash_bytes(body).to_le_bytes() != checksum {
        return Err("it is truncated or its checksum does not match".into());
    }
    let mut report = LoadReport {
        skipped: reader.count()?,
        resized: reader.count()?,
        ..LoadReport::default()
    };
    let examples_len = reader.count()?;
    let examples =
        std::str::from_utf8(reader.take(examples_len)?).map_err(|error| error.to_string())?;
    report.skipped_examples = examples.lines().map(str::to_owned).collect();
    let counts = [reader.u64()?, reader.u64()?, reader.u64()?];
    let image_len: usize = spec.shape().iter().product();
    let classes = layout.class_names.len();
    let mut datasets = Vec::new();
    for count in counts {
        if count == ABSENT_SPLIT {
            datasets.push(None);
            continue;
        }
        let count = usize::try_from(count).map_err(|error| error.to_string())?;
        let labels = reader.take(count)?.to_vec();
        let images = reader.take(
            count
                .checked_mul(image_len)
                .ok_or("image count overflows")?,
        )?;
        if labels.iter().any(|&label| label as usize >= classes) {
            return Err("it holds a label that is not a class index".into());
        }
        datasets.push(Some(Dataset::new(
            spec.clone(),
            layout.class_names.clone(),
            images.to_vec(),
            labels,
        )));
    }
    if reader.bytes.len() != 8 {
        return Err("its length does not match its counts".into());
    }
    let [train, val, test] = [0, 1, 2].map(|index| datasets[index].take());
    match (train, val) {
        (Some(train), Some(val)) => Ok(Some(Splits {
            train,
            val,
            test,
            report,
        })),
        _ => Err("it lacks the train or val split".into()),
    }
}

/// Reads little-endian fields off the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.bytes.len() {
            return Err("it is truncated".into());
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    /// A little-endian unsigned integer of `width` bytes (at most 8).
    fn u64_from(&mut self, width: usize) -> Result<u64, String> {
        let mut buffer = [0u8; 8];
        buffer[..width].copy_from_slice(self.take(width)?);
        Ok(u64::from_le_bytes(buffer))
    }

    fn u64(&mut self) -> Result<u64, String> {
        self.u64_from(8)
    }

    fn count(&mut self) -> Result<usize, String> {
        usize::try_from(self.u64()?).map_err(|error| error.to_string())
    }
}

/// A fast 64-bit hash, eight bytes at a step: enough to key and checksum a cache, not a
/// cryptographic digest. Each step is a bijection of the state, so any single changed word
/// changes the result.
fn hash_bytes(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01B3;
    let mut state = 0xCBF2_9CE4_8422_2325 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut buffer = [0u8; 8];
        buffer.copy_from_slice(word);
        state = (state ^ u64::from_le_bytes(buffer))
            .wrapping_mul(PRIME)
            .rotate_left(29);
    }
    for &byte in words.remainder() {
        state = (state ^ u64::from(byte))
            .wrapping_mul(PRIME)
            .rotate_left(29);
    }
    // SplitMix64's finalizer spreads the last steps over every bit.
    state = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    state ^ (state >> 31)
}
