//! The FER2013 CSV: a header naming `emotion`, `pixels` and `Usage`, then one 48 × 48 grey face
//! per row in FER2013's seven classes. Faces are brought to the spec asked for.

use std::fs;
use std::path::Path;

use image::{DynamicImage, GrayImage};

use super::convert::to_spec;
use super::dataset::{require_images, Dataset, LoadReport, SourcedSplit, Split, Splits};
use super::error::DataError;
use super::fer2013::{self, class_from_csv_label};
use super::image_spec::ImageSpec;
use super::parallel::map_chunks;

/// Where the three columns sit in a row, found by name in the header.
struct Columns {
    count: usize,
    emotion: usize,
    pixels: usize,
    usage: usize,
}

/// One split's rows: the images at the spec, their labels and their line numbers in the file.
#[derive(Default)]
struct Rows {
    images: Vec<u8>,
    labels: Vec<u8>,
    lines: Vec<usize>,
}

impl Rows {
    fn append(&mut self, other: Rows) {
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
        self.lines.extend_from_slice(&other.lines);
    }

    fn dataset(self, spec: &ImageSpec) -> Dataset {
        Dataset::new(
            spec.clone(),
            fer2013::class_names(),
            self.images,
            self.labels,
        )
    }
}

/// Reads the whole CSV at `spec`; rows that don't parse are skipped and counted with their line
/// numbers.
pub(crate) fn load(path: &Path, spec: &ImageSpec) -> Result<Splits, DataError> {
    let ([train, val, test], report) = read(path, spec)?;
    let test = test.dataset(spec);
    Ok(Splits {
        train: require_images(train.dataset(spec), Split::Train, path, &report)?,
        val: require_images(val.dataset(spec), Split::Val, path, &report)?,
        test: (!test.is_empty()).then_some(test),
        report,
    })
}

/// One split of the CSV, each image named `csv:LINE`.
pub(crate) fn load_split(
    path: &Path,
    split: Split,
    spec: &ImageSpec,
) -> Result<SourcedSplit, DataError> {
    let ([train, val, test], report) = read(path, spec)?;
    let rows = match split {
        Split::Train => train,
        Split::Val => val,
        Split::Test => test,
    };
    let sources = rows
        .lines
        .iter()
        .map(|line| format!("csv:{line}"))
        .collect();
    Ok(SourcedSplit {
        data: require_images(rows.dataset(spec), split, path, &report)?,
        sources,
        report,
    })
}

/// Every row that parses, by split: train, val, test.
fn read(path: &Path, spec: &ImageSpec) -> Result<([Rows; 3], LoadReport), DataError> {
    let text = fs::read_to_string(path).map_err(|error| DataError::io(path, error))?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|(_, line)| line).unwrap_or_default();
    let columns = parse_header(header).map_err(|reason| DataError::CsvHeader {
        path: path.to_path_buf(),
        reason,
    })?;
    let rows: Vec<(usize, &str)> = lines
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line))
        .collect();

    let chunks = map_chunks(&rows, |chunk| {
        let mut per_split: [Rows; 3] = Default::default();
        let mut report = LoadReport::default();
        for &(line_number, line) in chunk {
            match parse_row(line, &columns) {
                Ok((split, label, face)) => {
                    let (image, was_resized) = to_spec(DynamicImage::ImageLuma8(face), spec);
                    let rows = &mut per_split[split as usize];
                    rows.images.extend_from_slice(&image);
                    rows.labels.push(label);
                    rows.lines.push(line_number);
                    report.resized += usize::from(was_resized);
                }
                Err(reason) => report.record_skip(|| format!("line {line_number}: {reason}")),
            }
        }
        (per_split, report)
    });

    let mut report = LoadReport::default();
    let mut joined: [Rows; 3] = Default::default();
    for (per_split, chunk_report) in chunks {
        report.absorb(chunk_report);
        for (rows, part) in joined.iter_mut().zip(per_split) {
            rows.append(part);
        }
    }
    Ok((joined, report))
}

fn parse_header(header: &str) -> Result<Columns, String> {
    let names: Vec<&str> = header.split(',').map(unquote).collect();
    let find = |wanted: &str| {
        names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| format!("the header has no {wanted} column"))
    };
    Ok(Columns {
        count: names.len(),
        emotion: find("emotion")?,
        pixels: find("pixels")?,
        usage: find("Usage")?,
    })
}

fn parse_row(line: &str, columns: &Columns) -> Result<(Split, u8, GrayImage), String> {
    let fields: Vec<&str> = line.split(',').map(unquote).collect();
    if fields.len() != columns.count {
        return Err(format!(
            "expected {} fields, found {}",
            columns.count,
            fields.len()
        ));
    }
    let emotion = fields[columns.emotion];
    let label = emotion
        .parse::<u8>()
        .ok()
        .and_then(class_from_csv_label)
        .ok_or_else(|| format!("emotion {emotion:?} is not a label from 0 to 6"))?;
    let usage = fields[columns.usage];
    let split = [
        ("Training", Split::Train),
        ("PublicTest", Split::Val),
        ("PrivateTest", Split::Test),
    ]
    .into_iter()
    .find(|(name, _)| name.eq_ignore_ascii_case(usage))
    .map(|(_, split)| split)
    .ok_or_else(|| format!("Usage {usage:?} is not Training, PublicTest or PrivateTest"))?;
    let mut pixels = Vec::with_capacity(fer2013::PIXELS);
    for value in fields[columns.pixels].split_ascii_whitespace() {
        let value = value
            .parse::<u8>()
            .map_err(|_| format!("pixel value {value:?} is not a number from 0 to 255"))?;
        pixels.push(value);
    }
    if pixels.len() != fer2013::PIXELS {
        return Err(format!(
            "expected {} pixel values, found {}",
            fer2013::PIXELS,
            pixels.len()
        ));
    }
    let side = fer2013::SIDE as u32;
    let face = GrayImage::from_raw(side, side, pixels).ok_or("the pixels do not fill a face")?;
    Ok((split, label, face))
}

fn unquote(field: &str) -> &str {
    field.trim().trim_matches('"')
}
