//! PNG plots drawn in memory: training curves, the confusion matrix as a heat map, and a grid
//! of augmented training images; and the pieces other plots draw with (lines against epochs,
//! images scaled into tiles, the font and the canvas).
//!
//! Text is rasterised from DejaVu Sans embedded in the binary, so plotting works on machines
//! with no font packages installed.

use super::confusion::ConfusionMatrix;
use super::history::{EpochRecord, History};
use crate::data::ImageSpec;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::ops::Range;
use std::sync::OnceLock;

/// Why a plot could not be drawn or encoded.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("the embedded DejaVu Sans font could not be parsed")]
    Font,
    #[error("drawing the {plot} failed: {reason}")]
    Draw { plot: &'static str, reason: String },
    #[error("encoding the {plot} as PNG failed: {reason}")]
    Encode {
        plot: &'static str,
        reason: image::ImageError,
    },
}

const CURVES_SIZE: (u32, u32) = (1400, 560);
const CONFUSION_SIZE: (u32, u32) = (900, 820);
/// The augmentation grid: at most 8×8 images, each drawn about 96 pixels wide.
const GRID_COLUMNS: usize = 8;
const GRID_ROWS: usize = 8;
const GRID_TILE: usize = 96;
const GRID_GAP: usize = 4;
/// Characters of the caption per line (font 16 on an 804-pixel-wide grid).
const GRID_CAPTION_CHARS: usize = 90;
const LINES_SIZE: (u32, u32) = (1000, 620);
/// Matplotlib's "tab10" colours, for one line or bar per class or run; train and val take the
/// first two.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
pub(super) const TRAIN_COLOUR: RGBColor = PALETTE[0];
pub(super) const VAL_COLOUR: RGBColor = PALETTE[1];

/// Loss (left panel) and accuracy in percent (right panel) against epoch, train and validation.
pub fn curves_png(history: &History) -> Result<Vec<u8>, PlotError> {
    const PLOT: &str = "training curves";
    let epochs = history.epochs();
    let series = |label: &str, colour, pick: fn(&EpochRecord) -> f64| Series {
        label: label.to_string(),
        points: epochs.iter().map(|r| (r.epoch as f64, pick(r))).collect(),
        colour,
    };
    let loss = [
        series("train", TRAIN_COLOUR, |r| r.train_loss),
        series("val", VAL_COLOUR, |r| r.val_loss),
    ];
    let accuracy = [
        series("train", TRAIN_COLOUR, |r| 100.0 * r.train_acc),
        series("val", VAL_COLOUR, |r| 100.0 * r.val_acc),
    ];
    render(PLOT, CURVES_SIZE, |root| {
        let (left, right) = root.split_horizontally(CURVES_SIZE.0 / 2);
        // Loss usually falls and accuracy rises, so each legend goes where its curves are not.
        let loss_panel = Panel {
            title: "Loss",
            y_desc: "loss",
            legend: SeriesLabelPosition::UpperRight,
        };
        let accuracy_panel = Panel {
            title: "Accuracy",
            y_desc: "accuracy (%)",
            legend: SeriesLabelPosition::LowerRight,
        };
        draw_panel(&left, &loss_panel, &loss)?;
        draw_panel(&right, &accuracy_panel, &accuracy)
    })
}

/// One panel of lines against epoch, a line per series.
pub(super) fn lines_png(
    plot: &'static str,
    panel: &Panel,
    series: &[Series],
) -> Result<Vec<u8>, PlotError> {
    render(plot, LINES_SIZE, |root| draw_panel(root, panel, series))
}

/// Cells coloured by the share of their true class (so rare classes stay visible), labelled
/// with raw counts; true classes run down, predicted classes across.
pub fn confusion_png(confusion: &ConfusionMatrix) -> Result<Vec<u8>, PlotError> {
    const PLOT: &str = "confusion matrix";
    let names = confusion.class_names();
    let classes = names.len();
    let support = confusion.support();
    render(PLOT, CONFUSION_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("Confusion matrix (colour: share of true class)", font(26))
            .margin(16)
            .x_label_area_size(60)
            .y_label_area_size(110)
            // A segmented range over integers includes its end, so `0..classes - 1` has `classes`
            // segments (`classes` is at least 1: a confusion matrix always has a class).
            .build_cartesian_2d(
                (0..classes - 1).into_segmented(),
                (0..classes - 1).into_segmented(),
            )?;
        // Row 0 is drawn at the top, so the y coordinate of true class `row` is `classes-1-row`.
        let flip = |index: usize| classes - 1 - index;
        let name_at = |value: &SegmentValue<usize>, flipped: bool| match value {
            SegmentValue::CenterOf(index) if *index < classes => {
                names[if flipped { flip(*index) } else { *index }].clone()
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .axis_desc_style(font(22))
            .label_style(font(18))
            .x_labels(classes)
            .y_labels(classes)
            .x_label_formatter(&|value| name_at(value, false))
            .y_label_formatter(&|value| name_at(value, true))
            .draw()?;
        for (row, counts) in confusion.counts().iter().enumerate() {
            for (column, &count) in counts.iter().enumerate() {
                let share = if support[row] == 0 {
                    0.0
                } else {
                    count as f64 / support[row] as f64
                };
                let y = flip(row);
                chart.draw_series([Rectangle::new(
                    [
                        (SegmentValue::Exact(column), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(column + 1), SegmentValue::Exact(y + 1)),
                    ],
                    heat(share).filled(),
                )])?;
                // White text on dark cells, black on light ones.
                let text_colour = if share > 0.5 { WHITE } else { BLACK };
                chart.draw_series([Text::new(
                    count.to_string(),
                    (SegmentValue::CenterOf(column), SegmentValue::CenterOf(y)),
                    font(20)
                        .color(&text_colour)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )])?;
            }
        }
        Ok(())
    })
}

/// The first images of a normalised `[images, c, h, w]` batch of `spec`'s images, brought back
/// to pixel values (x·std + mean, clamped to [0, 1]) and laid out row by row under `caption`
/// (wrapped after commas), each enlarged by a whole factor (nearest pixel) so that small faces
/// stay visible.
pub fn augmentations_png(
    batch: &[f32],
    spec: &ImageSpec,
    caption: &str,
) -> Result<Vec<u8>, PlotError> {
    const PLOT: &str = "augmented images";
    let [channels, height, width] = spec.shape();
    let image_len = channels * height * width;
    let images = (batch.len() / image_len.max(1)).min(GRID_COLUMNS * GRID_ROWS);
    let rows = images.div_ceil(GRID_COLUMNS).max(1);
    let zoom = (GRID_TILE / height.max(width)).max(1);
    let (tile_w, tile_h) = (width * zoom + GRID_GAP, height * zoom + GRID_GAP);
    let mut lines = vec![String::new()];
    for item in caption.split_inclusive(',') {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + item.len() > GRID_CAPTION_CHARS {
            lines.push(item.to_string());
        } else {
            line.push_str(item);
        }
    }
    let header = 40 + 22 * lines.len();
    let size = (
        (GRID_GAP + GRID_COLUMNS * tile_w) as u32,
        (header + GRID_GAP + rows * tile_h) as u32,
    );
    let pixel = |image: usize, channel: usize, row: usize, column: usize| -> u8 {
        let c = channel.min(channels - 1);
        let x = batch[image * image_len + (c * height + row) * width + column];
        ((x * spec.std[c] + spec.mean[c]).clamp(0.0, 1.0) * 255.0).round() as u8
    };
    render(PLOT, size, |root| {
        let title = "The first training batch, augmented";
        root.draw_text(title, &font(24), (GRID_GAP as i32, 8))?;
        for (i, line) in lines.iter().enumerate() {
            root.draw_text(line, &font(16), (GRID_GAP as i32, 38 + 22 * i as i32))?;
        }
        for image in 0..images {
            let left = GRID_GAP + (image % GRID_COLUMNS) * tile_w;
            let top = header + GRID_GAP + (image / GRID_COLUMNS) * tile_h;
            let size = (height * zoom, width * zoom);
            draw_image(root, (left, top), (height, width), size, |row, column| {
                RGBColor(
                    pixel(image, 0, row, column),
                    pixel(image, 1, row, column),
                    pixel(image, 2, row, column),
                )
            })?;
        }
        Ok(())
    })
}

/// Draws a `source` (height, width) image scaled to `size` (height, width) by the nearest
/// pixel, its top-left corner at `at` (x, y); `pixel(row, column)` is the source's colour.
pub(super) fn draw_image(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    at: (usize, usize),
    source: (usize, usize),
    size: (usize, usize),
    pixel: impl Fn(usize, usize) -> RGBColor,
) -> Result<(), DrawError> {
    for y in 0..size.0 {
        for x in 0..size.1 {
            let colour = pixel(y * source.0 / size.0, x * source.1 / size.1);
            root.draw_pixel(((at.0 + x) as i32, (at.1 + y) as i32), &colour)?;
        }
    }
    Ok(())
}

pub(super) struct Panel {
    pub title: &'static str,
    pub y_desc: &'static str,
    pub legend: SeriesLabelPosition,
}

/// A line of a panel: its legend label, its (epoch, value) points and its colour.
pub(super) struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub colour: RGBColor,
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    panel: &Panel,
    series: &[Series],
) -> Result<(), DrawError> {
    let all_points = || series.iter().flat_map(|line| &line.points);
    let x_range = epoch_range(all_points().map(|&(epoch, _)| epoch));
    let y_range = padded_range(all_points().map(|&(_, y)| y));
    let y_decimals = decimals_for(&y_range);
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, font(26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, y_range)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(panel.y_desc)
        .axis_desc_style(font(20))
        .label_style(font(16))
        // Epochs are whole numbers; ticks that fall between them stay unlabelled.
        .x_label_formatter(&|&epoch| {
            if epoch.fract() == 0.0 {
                format!("{epoch:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|value| format!("{value:.*}", y_decimals))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for line in series {
        let colour = line.colour;
        // A diverged run logs NaN or infinity; such epochs are left out rather than failing.
        let finite: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|p| p.1.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(finite.clone(), colour.stroke_width(3)))?
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], colour.stroke_width(3)));
        chart.draw_series(
            finite
                .into_iter()
                .map(|point| Circle::new(point, 4, colour.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .label_font(font(18))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(panel.legend.clone())
        .draw()?;
    Ok(())
}

/// Epochs are counted from 1; an empty or one-epoch history still gets a readable axis. A
/// little room each side keeps the first and last markers whole.
fn epoch_range(epochs: impl Iterator<Item = f64>) -> Range<f64> {
    let last = epochs.fold(2.0, f64::max);
    let pad = 0.02 * (last - 1.0);
    (1.0 - pad)..(last + pad)
}

/// The span of the finite values, widened by 5% each side (or to a unit span when flat).
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (low, high) = values
        .filter(|value| value.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), value| {
            (low.min(value), high.max(value))
        });
    if low > high {
        return 0.0..1.0;
    }
    let pad = if high > low { 0.05 * (high - low) } else { 0.5 };
    (low - pad)..(high + pad)
}

/// Enough decimals to tell apart ticks about a tenth of `range` apart, and no more.
fn decimals_for(range: &Range<f64>) -> usize {
    let tick_step = (range.end - range.start) / 10.0;
    (-tick_step.log10()).ceil().clamp(0.0, 6.0) as usize
}

/// White through to a saturated blue as `share` goes from 0 to 1.
fn heat(share: f64) -> RGBColor {
    let blend = |from: f64, to: f64| (from + (to - from) * share.clamp(0.0, 1.0)).round() as u8;
    RGBColor(blend(247.0, 8.0), blend(251.0, 48.0), blend(255.0, 107.0))
}

pub(super) fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size).into_font().color(&BLACK)
}

/// Plotters' error type, reduced to its message so that drawing code can use `?` throughout.
pub(super) struct DrawError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(error: DrawingAreaErrorKind<E>) -> Self {
        Self(error.to_string())
    }
}

/// Registers the embedded font once per process; plotters keeps it in a global table.
pub(crate) fn ensure_font_registered() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered = *REGISTERED.get_or_init(|| {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .is_ok()
    });
    if registered {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}

/// Draws on a white RGB canvas of `size` and returns it encoded as PNG.
pub(super) fn render(
    plot: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), DrawError>,
) -> Result<Vec<u8>, PlotError> {
    ensure_font_registered()?;
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(DrawError::from)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(DrawError::from));
        drawn.map_err(|DrawError(reason)| PlotError::Draw { plot, reason })?;
    }
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, size.0, size.1, ExtendedColorType::Rgb8)
        .map_err(|reason| PlotError::Encode { plot, reason })?;
    Ok(png)
}
