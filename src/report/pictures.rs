//! The pictures the studies drew beside their curves: how many images each class has in train
//! and val, the validation faces the model got most confidently wrong, and each class's recall
//! across epochs.

use super::history::History;
use super::plot::{
    draw_image, font, lines_png, render, DrawError, Panel, PlotError, Series, PALETTE,
    TRAIN_COLOUR, VAL_COLOUR,
};
use super::run_report::{write_plot, ReportError};
use crate::data::Dataset;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

pub const CLASS_DISTRIBUTION_FILE: &str = "class_distribution.png";
pub const MISCLASSIFIED_FILE: &str = "misclassified.png";
pub const RECALL_FILE: &str = "recall.png";

const DISTRIBUTION_SIZE: (u32, u32) = (1000, 600);
/// The mistakes grid: at most 6×4 faces, each fitted into a 96-pixel square above two lines
/// of text (true → predicted, probability) in a cell wide enough for two class names.
const MISTAKE_COLUMNS: usize = 6;
const MISTAKE_ROWS: usize = 4;
const MISTAKE_FACE: usize = 96;
const MISTAKE_CELL: (usize, usize) = (170, MISTAKE_FACE + 46);
const MISTAKE_HEADER: usize = 44;
const MISTAKE_GAP: usize = 4;

/// Bars of images per class, train and val side by side, each labelled with its count.
pub fn class_distribution_png(
    class_names: &[String],
    train: &[usize],
    val: &[usize],
) -> Result<Vec<u8>, PlotError> {
    const PLOT: &str = "class distribution";
    let classes = class_names.len();
    let highest = train.iter().chain(val).copied().max().unwrap_or(0).max(1);
    render(PLOT, DISTRIBUTION_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Images per class", font(26))
            .margin(16)
            .x_label_area_size(50)
            .y_label_area_size(80)
            // Class c's bars sit either side of x = c; room above the highest for its count.
            .build_cartesian_2d(-0.5..classes as f64 - 0.5, 0.0..highest as f64 * 1.12)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("images")
            .axis_desc_style(font(20))
            .label_style(font(16))
            .y_label_formatter(&|count| format!("{count:.0}"))
            .draw()?;
        for (label, counts, colour, offset) in [
            ("train", train, TRAIN_COLOUR, -0.4),
            ("val", val, VAL_COLOUR, 0.0),
        ] {
            let bar = |(class, &count): (usize, &usize)| {
                let left = class as f64 + offset;
                Rectangle::new([(left, 0.0), (left + 0.4, count as f64)], colour.filled())
            };
            let total: usize = counts.iter().sum();
            chart
                .draw_series(counts.iter().enumerate().map(bar))?
                .label(format!("{label} ({total} images)"))
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 18, y + 6)], colour.filled())
                });
            chart.draw_series(counts.iter().enumerate().map(|(class, &count)| {
                Text::new(
                    count.to_string(),
                    (class as f64 + offset + 0.2, count as f64),
                    font(14).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .label_font(font(18))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        // The class names under their bars, in pixels: the axis has no tick at each class.
        for (class, name) in class_names.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(class as f64, 0.0));
            root.draw_text(
                name,
                &font(18).pos(Pos::new(HPos::Center, VPos::Top)),
                (x, y + 10),
            )?;
        }
        Ok(())
    })
}

/// A validation image the model got wrong: the class it said, and the probability it gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mistake {
    pub index: usize,
    pub truth: usize,
    pub predicted: usize,
    pub probability: f32,
}

/// The images whose prediction is not their label, the most confident first (equal ones in
/// image order).
pub fn most_confident_mistakes(
    labels: &[u8],
    predictions: &[usize],
    probabilities: &[Vec<f32>],
) -> Vec<Mistake> {
    let mut mistakes: Vec<Mistake> = labels
        .iter()
        .zip(predictions)
        .zip(probabilities)
        .enumerate()
        .filter(|(_, ((&truth, &predicted), _))| truth as usize != predicted)
        .map(|(index, ((&truth, &predicted), row))| Mistake {
            index,
            truth: truth as usize,
            predicted,
            probability: row.get(predicted).copied().unwrap_or(0.0),
        })
        .collect();
    mistakes.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    mistakes
}

/// The most confident mistakes on `data` as a grid of its faces (at their stored pixels, as
/// the model read them before normalising), each captioned true → predicted and p.
pub fn misclassified_png(
    data: &Dataset,
    predictions: &[usize],
    probabilities: &[Vec<f32>],
) -> Result<Vec<u8>, PlotError> {
    const PLOT: &str = "misclassified faces";
    let mistakes = most_confident_mistakes(data.labels(), predictions, probabilities);
    let shown = &mistakes[..mistakes.len().min(MISTAKE_COLUMNS * MISTAKE_ROWS)];
    let rows = shown.len().div_ceil(MISTAKE_COLUMNS).max(1);
    let size = (
        (MISTAKE_GAP + MISTAKE_COLUMNS * MISTAKE_CELL.0) as u32,
        (MISTAKE_HEADER + rows * MISTAKE_CELL.1) as u32,
    );
    let [channels, height, width] = data.spec().shape();
    let scale = |side: usize| (side * MISTAKE_FACE / height.max(width)).max(1);
    let face = (scale(height), scale(width));
    let names = data.class_names();
    let title = if shown.is_empty() {
        format!("No validation image of {} was misclassified", data.len())
    } else {
        format!(
            "The most confident mistakes on validation: {} shown, {} wrong of {}",
            shown.len(),
            mistakes.len(),
            data.len()
        )
    };
    render(PLOT, size, |root| {
        root.draw_text(&title, &font(22), (MISTAKE_GAP as i32, 10))?;
        for (slot, mistake) in shown.iter().enumerate() {
            let left = MISTAKE_GAP + (slot % MISTAKE_COLUMNS) * MISTAKE_CELL.0;
            let top = MISTAKE_HEADER + (slot / MISTAKE_COLUMNS) * MISTAKE_CELL.1;
            let image = data.image(mistake.index);
            let value = |channel: usize, row: usize, column: usize| {
                image[(channel.min(channels - 1) * height + row) * width + column]
            };
            let centred = left + (MISTAKE_CELL.0 - MISTAKE_GAP - face.1) / 2;
            draw_image(
                root,
                (centred, top),
                (height, width),
                face,
                |row, column| {
                    RGBColor(
                        value(0, row, column),
                        value(1, row, column),
                        value(2, row, column),
                    )
                },
            )?;
            draw_caption(root, left, top + MISTAKE_FACE + 4, names, mistake)?;
        }
        Ok(())
    })
}

fn draw_caption(
    root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    left: usize,
    top: usize,
    names: &[String],
    mistake: &Mistake,
) -> Result<(), DrawError> {
    let centre = (left + (MISTAKE_CELL.0 - MISTAKE_GAP) / 2) as i32;
    let style = font(15).pos(Pos::new(HPos::Center, VPos::Top));
    let label = |class: usize| names.get(class).map_or("?", String::as_str);
    let lines = [
        format!("{} → {}", label(mistake.truth), label(mistake.predicted)),
        format!("p = {:.2}", mistake.probability),
    ];
    for (line, text) in lines.iter().enumerate() {
        root.draw_text(text, &style, (centre, (top + 19 * line) as i32))?;
    }
    Ok(())
}

/// Each class's validation recall in percent against epoch, a line per class, from the
/// epochs that recorded it.
pub fn recall_png(history: &History, class_names: &[String]) -> Result<Vec<u8>, PlotError> {
    let series: Vec<Series> = class_names
        .iter()
        .enumerate()
        .map(|(class, name)| Series {
            label: name.clone(),
            points: history
                .epochs()
                .iter()
                .filter_map(|r| Some((r.epoch as f64, 100.0 * r.val_recall.get(class)?)))
                .collect(),
            colour: PALETTE[class % PALETTE.len()],
        })
        .collect();
    let panel = Panel {
        title: "Recall per class (validation)",
        y_desc: "recall (%)",
        legend: SeriesLabelPosition::LowerRight,
    };
    lines_png("per-class recall", &panel, &series)
}

/// What the pictures of a finished run are drawn from.
pub struct RunPictures<'a> {
    pub train: &'a Dataset,
    pub val: &'a Dataset,
    pub val_predictions: &'a [usize],
    pub val_probabilities: &'a [Vec<f32>],
    pub history: &'a History,
}

/// Writes class_distribution.png, misclassified.png and (when the history recorded it)
/// recall.png into `directory`, and returns their paths.
pub fn write_pictures(directory: &Path, run: &RunPictures) -> Result<Vec<PathBuf>, ReportError> {
    let names = run.train.class_names();
    let mut written = vec![
        write_plot(
            directory,
            CLASS_DISTRIBUTION_FILE,
            class_distribution_png(names, &run.train.class_counts(), &run.val.class_counts()),
        )?,
        write_plot(
            directory,
            MISCLASSIFIED_FILE,
            misclassified_png(run.val, run.val_predictions, run.val_probabilities),
        )?,
    ];
    if run
        .history
        .epochs()
        .iter()
        .any(|r| !r.val_recall.is_empty())
    {
        written.push(write_plot(
            directory,
            RECALL_FILE,
            recall_png(run.history, names),
        )?);
    }
    Ok(written)
}
