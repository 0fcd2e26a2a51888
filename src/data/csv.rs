//! The FER2013 CSV: a header naming `emotion`, `pixels` and `Usage`, then one face per row.

use std::fs;
use std::path::Path;

use super::classes::{class_from_csv_label, IMAGE_PIXELS};
use super::dataset::{require_images, Dataset, LoadReport, Split, Splits};
use super::error::DataError;
use super::parallel::map_chunks;

/// Where the three columns sit in a row, found by name in the header.
struct Columns {
    count: usize,
    emotion: usize,
    pixels: usize,
    usage: usize,
}

/// Reads the whole CSV; rows that don't parse are skipped and counted with their line numbers.
pub(crate) fn load(path: &Path) -> Result<Splits, DataError> {
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
        let mut per_split: [(Vec<u8>, Vec<u8>); 3] = Default::default();
        let mut report = LoadReport::default();
        for &(line_number, line) in chunk {
            match parse_row(line, &columns) {
                Ok((split, label, pixels)) => {
                    let (images, labels) = &mut per_split[split as usize];
                    images.extend_from_slice(&pixels);
                    labels.push(label);
                }
                Err(reason) => report.record_skip(|| format!("line {line_number}: {reason}")),
            }
        }
        (per_split, report)
    });

    let mut report = LoadReport::default();
    let mut parts: [Vec<Dataset>; 3] = Default::default();
    for (per_split, chunk_report) in chunks {
        report.absorb(chunk_report);
        for (split_parts, (images, labels)) in parts.iter_mut().zip(per_split) {
            split_parts.push(Dataset::new(images, labels));
        }
    }
    let [train, val, test] = parts.map(Dataset::concat);
    Ok(Splits {
        train: require_images(train, Split::Train, path)?,
        val: require_images(val, Split::Val, path)?,
        test: (!test.is_empty()).then_some(test),
        report,
    })
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

fn parse_row(line: &str, columns: &Columns) -> Result<(Split, u8, Vec<u8>), String> {
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
    let mut pixels = Vec::with_capacity(IMAGE_PIXELS);
    for value in fields[columns.pixels].split_ascii_whitespace() {
        let value = value
            .parse::<u8>()
            .map_err(|_| format!("pixel value {value:?} is not a number from 0 to 255"))?;
        pixels.push(value);
    }
    if pixels.len() != IMAGE_PIXELS {
        return Err(format!(
            "expected {IMAGE_PIXELS} pixel values, found {}",
            pixels.len()
        ));
    }
    Ok((split, label, pixels))
}

fn unquote(field: &str) -> &str {
    field.trim().trim_matches('"')
}
