//! Data augmentation on an NCHW f32 batch (C = 1 or 3), with torchvision's semantics: random
//! affine and horizontal flip, random crop with padding, random resized crop, colour jitter and
//! random erasing.
//!
//! Each image's parameters are drawn on the host from `(seed, image)` with Philox (the
//! counter-based generator dropout uses), so a step's seed fixes the batch's augmentation and
//! the GPU kernels (`kernels::augment`) consume exactly what the twins below consume. Give each
//! transform of a step its own seed.
//!
//! Geometry is one operation, [`sample`]: every geometric transform is a per-image affine map
//! from output pixel indices to input coordinates ([`Transform`]), read with bilinear
//! interpolation from the image extended past a window by a [`Fill`].

use super::elementwise::philox2x32;

/// The shape of an NCHW batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl BatchShape {
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.height * self.width
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same batch at another height and width (a crop's output).
    pub fn resized(&self, height: usize, width: usize) -> BatchShape {
        BatchShape {
            height,
            width,
            ..*self
        }
    }
}

/// Uniform draws for one image of one transform: draw k of image i is
/// `philox2x32([64·i + k, seed >> 32], seed as u32)[0] / 2^32`. A transform makes at most
/// [`Draws::PER_IMAGE`] draws per image, always the same number whatever the values drawn, so
/// each image's stream is independent of the others'.
pub struct Draws {
    seed: u64,
    first: u32,
    taken: u32,
}

impl Draws {
    pub const PER_IMAGE: u32 = 64;

    pub fn new(seed: u64, image: usize) -> Self {
        Draws {
            seed,
            first: (image as u32).wrapping_mul(Self::PER_IMAGE),
            taken: 0,
        }
    }

    /// U[0, 1) with 32 bits of resolution (`torch.rand`).
    pub fn uniform(&mut self) -> f64 {
        assert!(self.taken < Self::PER_IMAGE, "too many draws for one image");
        let counter = [
            self.first.wrapping_add(self.taken),
            (self.seed >> 32) as u32,
        ];
        self.taken += 1;
        philox2x32(counter, self.seed as u32)[0] as f64 / (1u64 << 32) as f64
    }

    /// U[low, high) (`torch.empty(1).uniform_(low, high)`).
    pub fn between(&mut self, (low, high): (f32, f32)) -> f64 {
        low as f64 + (high as f64 - low as f64) * self.uniform()
    }

    /// Uniform in `0..n` (`torch.randint(0, n)`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.uniform() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// How an image is extended past its window, named by the sequence a row `a b c d` continues
/// with on both sides.
#[derive(Clone, Debug, PartialEq)]
pub enum Fill {
    /// `a a a a | a b c d | d d d d`: clamp to the edge (Keras/scipy `nearest`, torchvision
    /// padding `edge`).
    Nearest,
    /// `v v v v | a b c d | v v v v`, each bilinear tap outside the window reading its
    /// channel's `v` (scipy's `grid-constant`; torchvision's `fill`, in the batch's units): one
    /// value per channel, as black is under a per-channel normalisation.
    Constant(Vec<f32>),
    /// `d c b a | a b c d | d c b a`: mirrored with the edge pixel repeated (Keras' and scipy's
    /// `reflect`, torchvision padding `symmetric`).
    Reflect,
    /// `d c b | a b c d | c b a`: mirrored about the edge pixel, not repeating it (scipy's
    /// `mirror`, torchvision padding `reflect`, `torch.nn.functional.pad(mode="reflect")`).
    Mirror,
}

impl Fill {
    /// The index in `0..n` whose value extends a window of `n` pixels to index `t`, or `None`
    /// where the fill's constant is read instead.
    pub fn extend(&self, t: i64, n: i64) -> Option<i64> {
        match self {
            Fill::Nearest => Some(t.clamp(0, n - 1)),
            Fill::Constant(_) => (0..n).contains(&t).then_some(t),
            Fill::Reflect => {
                // Period 2n, symmetric about −1/2: t and −1 − t read the same pixel.
                let m = (if t < 0 { -1 - t } else { t }) % (2 * n);
                Some(if m >= n { 2 * n - 1 - m } else { m })
            }
            Fill::Mirror if n == 1 => Some(0),
            Fill::Mirror => {
                // Period 2n − 2, symmetric about 0: t and −t read the same pixel.
                let period = 2 * n - 2;
                let m = t.abs() % period;
                Some(if m >= n { period - m } else { m })
            }
        }
    }

    /// The constants channel by channel, for `channels` channels: the constant fill's values,
    /// or zeros for the fills that read none; `None` when a constant fill has another count.
    pub fn values(&self, channels: usize) -> Option<Vec<f32>> {
        match self {
            Fill::Constant(values) => (values.len() == channels).then(|| values.clone()),
            _ => Some(vec![0.0; channels]),
        }
    }
}

/// Where one image's output pixel `(x, y)` (column, row indices) reads its input: at
/// `(m[0]·x + m[1]·y + m[2], m[3]·x + m[4]·y + m[5])` in input pixel indices, bilinearly, from
/// the image extended past `window` (columns `x0..x0 + w`, rows `y0..y0 + h`, as
/// `[x0, y0, w, h]`) by a [`Fill`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transform {
    pub matrix: [f32; 6],
    pub window: [u32; 4],
}

impl Transform {
    /// Words per image in the GPU's transform buffer: the matrix, the window, two unused.
    pub const WORDS: usize = 12;

    /// Every output pixel reads the input pixel at the same place.
    pub fn identity(height: usize, width: usize) -> Self {
        Transform::shift(0.0, 0.0, height, width)
    }

    /// Output pixel `(x, y)` reads input coordinates `(x + dx, y + dy)`.
    pub fn shift(dx: f64, dy: f64, height: usize, width: usize) -> Self {
        Transform::from_f64([1.0, 0.0, dx, 0.0, 1.0, dy], height, width)
    }

    /// A map computed in f64, rounded once to f32, over the whole `height × width` image.
    fn from_f64(matrix: [f64; 6], height: usize, width: usize) -> Self {
        Transform {
            matrix: matrix.map(|m| m as f32),
            window: [0, 0, width as u32, height as u32],
        }
    }

    /// The per-image transforms as the GPU reads them (`Transform::WORDS` f32 each).
    pub fn words(transforms: &[Transform]) -> Vec<f32> {
        transforms
            .iter()
            .flat_map(|t| {
                let [x0, y0, w, h] = t.window.map(|v| v as f32);
                t.matrix.into_iter().chain([x0, y0, w, h, 0.0, 0.0])
            })
            .collect()
    }
}

/// The batch `x` of shape `input` resampled to `out_height × out_width` per image through
/// `transforms[image]`: bilinear interpolation `top + fy·(bottom − top)` with
/// `top = v00 + fx·(v10 − v00)`, `bottom = v01 + fx·(v11 − v01)` between the four pixels around
/// the point, in f64 and rounded once.
pub fn sample(
    input: BatchShape,
    (out_height, out_width): (usize, usize),
    fill: &Fill,
    transforms: &[Transform],
    x: &[f32],
) -> Vec<f32> {
    assert_eq!(x.len(), input.len(), "sample: x is not the input shape");
    let values = fill
        .values(input.channels)
        .expect("sample: one constant per channel");
    assert_eq!(
        transforms.len(),
        input.batch,
        "sample: one transform per image"
    );
    let mut y = Vec::with_capacity(input.resized(out_height, out_width).len());
    for (image, transform) in transforms.iter().enumerate() {
        let m = transform.matrix.map(|v| v as f64);
        let [x0, y0, w, h] = transform.window.map(|v| v as i64);
        for channel in 0..input.channels {
            let plane = &x[(image * input.channels + channel) * input.height * input.width..]
                [..input.height * input.width];
            let pixel = |column: i64, row: i64| -> f64 {
                match (fill.extend(column - x0, w), fill.extend(row - y0, h)) {
                    (Some(cx), Some(cy)) => {
                        plane[(y0 + cy) as usize * input.width + (x0 + cx) as usize] as f64
                    }
                    _ => values[channel] as f64,
                }
            };
            for out_y in 0..out_height {
                for out_x in 0..out_width {
                    let (ox, oy) = (out_x as f64, out_y as f64);
                    let xs = m[0] * ox + m[1] * oy + m[2];
                    let ys = m[3] * ox + m[4] * oy + m[5];
                    let (left, above) = (xs.floor(), ys.floor());
                    let (fx, fy) = (xs - left, ys - above);
                    let (left, above) = (left as i64, above as i64);
                    let v00 = pixel(left, above);
                    let v10 = pixel(left + 1, above);
                    let v01 = pixel(left, above + 1);
                    let v11 = pixel(left + 1, above + 1);
                    let top = v00 + fx * (v10 - v00);
                    let bottom = v01 + fx * (v11 - v01);
                    y.push((top + fy * (bottom - top)) as f32);
                }
            }
        }
    }
    y
}

/// `(cos θ, sin θ)` of θ in degrees, exact at multiples of 90° so that quarter turns are exact
/// permutations of the pixels.
fn cos_sin_degrees(degrees: f64) -> (f64, f64) {
    match degrees.rem_euclid(360.0) {
        0.0 => (1.0, 0.0),
        90.0 => (0.0, 1.0),
        180.0 => (-1.0, 0.0),
        270.0 => (0.0, -1.0),
        _ => (degrees.to_radians().cos(), degrees.to_radians().sin()),
    }
}

fn check_range(
    name: &str,
    (low, high): (f32, f32),
    allowed: std::ops::RangeInclusive<f32>,
) -> Result<(), String> {
    if low <= high && allowed.contains(&low) && allowed.contains(&high) {
        Ok(())
    } else {
        Err(format!(
            "{name} range ({low}, {high}) must be ordered and within [{}, {}]",
            allowed.start(),
            allowed.end()
        ))
    }
}

fn check_probability(name: &str, p: f32) -> Result<(), String> {
    check_range(name, (p, p), 0.0..=1.0).map_err(|_| format!("{name} {p} is not a probability"))
}

/// torchvision's `RandomAffine(degrees, translate, scale, shear)` after a
/// `RandomHorizontalFlip(flip)`: per image, angle ~ U(degrees), translation by whole pixels
/// `round(U(−t·W, t·W))`, `round(U(−t·H, t·H))`, scale ~ U(scale), shear ~ U(shear_x), U(shear_y)
/// in degrees, drawn in that order, then a flip iff U[0, 1) < flip. Angles follow
/// `torchvision.transforms.functional.affine` (positive turns clockwise on screen), about the
/// image centre `((W − 1)/2, (H − 1)/2)`.
///
/// Keras' `ImageDataGenerator(rotation_range=r, width_shift_range=s, height_shift_range=s,
/// zoom_range=z, shear_range=k)` maps approximately to degrees (−r, r), translate (s, s),
/// scale (1/(1 + z), 1/(1 − z)) and shear_x (−k, k). Keras' shear is in degrees since Keras 2
/// (radians before) and its matrix `[[1, −sin k], [0, cos k]]` is a shear with a cos k scale
/// (under 0.2% for |k| ≤ 3.6°); Keras' zoom divides where torchvision's scale multiplies and
/// draws x and y zooms independently; Keras shifts by fractional pixels, torchvision by whole
/// ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomAffine {
    pub degrees: (f32, f32),
    /// The largest translation, as fractions of the width and the height.
    pub translate: (f32, f32),
    pub scale: (f32, f32),
    pub shear_x: (f32, f32),
    pub shear_y: (f32, f32),
    /// The probability of a horizontal flip.
    pub flip: f32,
}

impl Default for RandomAffine {
    /// The identity: no rotation, translation, zoom, shear or flip.
    fn default() -> Self {
        RandomAffine {
            degrees: (0.0, 0.0),
            translate: (0.0, 0.0),
            scale: (1.0, 1.0),
            shear_x: (0.0, 0.0),
            shear_y: (0.0, 0.0),
            flip: 0.0,
        }
    }
}

impl RandomAffine {
    /// The `ValueError`s torchvision raises, as a sentence.
    pub fn validate(&self) -> Result<(), String> {
        check_range("rotation", self.degrees, -360.0..=360.0)?;
        check_range(
            "translation",
            (self.translate.0, self.translate.0),
            0.0..=1.0,
        )?;
        check_range(
            "translation",
            (self.translate.1, self.translate.1),
            0.0..=1.0,
        )?;
        check_range("scale", self.scale, f32::MIN_POSITIVE..=f32::MAX)?;
        check_range("shear", self.shear_x, -89.0..=89.0)?;
        check_range("shear", self.shear_y, -89.0..=89.0)?;
        check_probability("flip probability", self.flip)
    }

    /// Image `image`'s transform for a batch of `height × width` images.
    pub fn draw(&self, seed: u64, image: usize, height: usize, width: usize) -> Transform {
        let mut draws = Draws::new(seed, image);
        let angle = draws.between(self.degrees);
        let max_dx = self.translate.0 as f64 * width as f64;
        let max_dy = self.translate.1 as f64 * height as f64;
        let tx = (-max_dx + 2.0 * max_dx * draws.uniform()).round_ties_even();
        let ty = (-max_dy + 2.0 * max_dy * draws.uniform()).round_ties_even();
        let scale = draws.between(self.scale);
        let (shear_x, shear_y) = (draws.between(self.shear_x), draws.between(self.shear_y));
        let flip = draws.uniform() < self.flip as f64;

        // torchvision's _get_inverse_affine_matrix with the centre at the origin: the inverse
        // of rotation·scale·shear, then of the translation.
        let (cos_r, sin_r) = cos_sin_degrees(angle);
        let (cos_ry, sin_ry) = cos_sin_degrees(angle - shear_y);
        let (cos_y, _) = cos_sin_degrees(shear_y);
        let (cos_x, sin_x) = cos_sin_degrees(shear_x);
        let tan_x = sin_x / cos_x;
        let a = cos_ry / cos_y;
        let b = -cos_ry * tan_x / cos_y - sin_r;
        let c = sin_ry / cos_y;
        let d = -sin_ry * tan_x / cos_y + cos_r;
        let [m0, m1, m3, m4] = [d, -b, -c, a].map(|m| m / scale);
        let m2 = m0 * -tx + m1 * -ty;
        let m5 = m3 * -tx + m4 * -ty;
        // In pixel indices, about the centre: x_in = M·(x_out − centre) + centre.
        let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
        let mut matrix = [
            m0,
            m1,
            m2 + cx - m0 * cx - m1 * cy,
            m3,
            m4,
            m5 + cy - m3 * cx - m4 * cy,
        ];
        if flip {
            // The flip came first, so its inverse comes last: x_in ← W − 1 − x_in.
            matrix[0] = -matrix[0];
            matrix[1] = -matrix[1];
            matrix[2] = (width as f64 - 1.0) - matrix[2];
        }
        Transform::from_f64(matrix, height, width)
    }
}

/// torchvision's `RandomCrop(size, padding, fill, padding_mode)`: the image padded by `padding`
/// on every side, then a `height × width` crop at row `U{0..=H + 2p − height}`, column
/// `U{0..=W + 2p − width}`, drawn in that order. The padding is [`sample`]'s fill: torchvision's
/// `constant` is [`Fill::Constant`], `edge` [`Fill::Nearest`], `reflect` [`Fill::Mirror`] and
/// `symmetric` [`Fill::Reflect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCrop {
    pub height: usize,
    pub width: usize,
    pub padding: usize,
}

impl RandomCrop {
    pub fn validate(&self, height: usize, width: usize) -> Result<(), String> {
        let (padded_h, padded_w) = (height + 2 * self.padding, width + 2 * self.padding);
        if self.height == 0 || self.width == 0 || self.height > padded_h || self.width > padded_w {
            return Err(format!(
                "a {}×{} crop does not fit the {padded_h}×{padded_w} padded image",
                self.height, self.width
            ));
        }
        Ok(())
    }

    pub fn draw(&self, seed: u64, image: usize, height: usize, width: usize) -> Transform {
        let mut draws = Draws::new(seed, image);
        let top = draws.below(height + 2 * self.padding - self.height + 1);
        let left = draws.below(width + 2 * self.padding - self.width + 1);
        let p = self.padding as f64;
        Transform::shift(left as f64 - p, top as f64 - p, height, width)
    }
}

/// A `(top, left, height, width)` box of `area·U(scale)` pixels with aspect ratio (height over
/// width) `exp(U(ln ratio))`, as torchvision's RandomResizedCrop and RandomErasing draw it: up
/// to ten tries of four draws, the first whose box `fits` placed uniformly.
fn random_box(
    draws: &mut Draws,
    (height, width): (usize, usize),
    scale: (f32, f32),
    ratio: (f32, f32),
    fits: impl Fn(usize, usize) -> bool,
) -> Option<[usize; 4]> {
    let area = (height * width) as f64;
    let log_ratio = ((ratio.0 as f64).ln(), (ratio.1 as f64).ln());
    for _ in 0..10 {
        let target = area * draws.between(scale);
        let aspect = (log_ratio.0 + (log_ratio.1 - log_ratio.0) * draws.uniform()).exp();
        let box_h = (target * aspect).sqrt().round_ties_even() as usize;
        let box_w = (target / aspect).sqrt().round_ties_even() as usize;
        let (top, left) = (draws.uniform(), draws.uniform());
        if fits(box_h, box_w) {
            let top = (top * (height - box_h + 1) as f64) as usize;
            let left = (left * (width - box_w + 1) as f64) as usize;
            return Some([top, left, box_h, box_w]);
        }
    }
    None
}

fn check_scale_ratio(scale: (f32, f32), ratio: (f32, f32)) -> Result<(), String> {
    check_range("scale", scale, 0.0..=1.0)?;
    check_range("ratio", ratio, f32::MIN_POSITIVE..=f32::MAX)
}

/// torchvision's `RandomResizedCrop(size, scale, ratio, antialias=False)`: a box as
/// [`random_box`] draws it (torchvision's fallback, a centre crop clamped to the ratio range,
/// after ten misses), resized to `height × width` bilinearly (`align_corners=False`: output pixel
/// x reads `left + (x + 1/2)·w/width − 1/2`). Sample it with [`Fill::Nearest`], which clamps to
/// the box's edge as PyTorch's resize does.
///
/// torchvision's draws are `U(scale)`, `U(ln ratio)`, then the top and left only for a box that
/// fits; here every try takes four draws, so a step's draws do not depend on its misses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomResizedCrop {
    pub height: usize,
    pub width: usize,
    pub scale: (f32, f32),
    pub ratio: (f32, f32),
}

impl RandomResizedCrop {
    pub fn validate(&self) -> Result<(), String> {
        if self.height == 0 || self.width == 0 {
            return Err("a resized crop needs a size of at least 1×1".into());
        }
        check_scale_ratio(self.scale, self.ratio)
    }

    pub fn draw(&self, seed: u64, image: usize, height: usize, width: usize) -> Transform {
        let mut draws = Draws::new(seed, image);
        let fits = |h: usize, w: usize| 0 < h && h <= height && 0 < w && w <= width;
        let [top, left, box_h, box_w] =
            random_box(&mut draws, (height, width), self.scale, self.ratio, fits)
                .unwrap_or_else(|| self.centre_box(height, width));
        let (sy, sx) = (
            box_h as f64 / self.height as f64,
            box_w as f64 / self.width as f64,
        );
        let matrix = [
            sx,
            0.0,
            left as f64 + 0.5 * sx - 0.5,
            0.0,
            sy,
            top as f64 + 0.5 * sy - 0.5,
        ];
        Transform {
            window: [left, top, box_w, box_h].map(|v| v as u32),
            ..Transform::from_f64(matrix, height, width)
        }
    }

    /// torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio.
    fn centre_box(&self, height: usize, width: usize) -> [usize; 4] {
        let (low, high) = (self.ratio.0 as f64, self.ratio.1 as f64);
        let ratio = width as f64 / height as f64;
        let (box_h, box_w) = if ratio < low {
            ((width as f64 / low).round_ties_even() as usize, width)
        } else if ratio > high {
            (height, (height as f64 * high).round_ties_even() as usize)
        } else {
            (height, width)
        };
        [(height - box_h) / 2, (width - box_w) / 2, box_h, box_w]
    }
}

/// torchvision's `RandomErasing(p, scale, ratio, value)`: with probability p, a box as
/// [`random_box`] draws it among those smaller than the image in both sides is set to `value`
/// (in the batch's units) in every channel; no box after ten misses. Each image takes one draw
/// for p, then its tries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RandomErasing {
    pub p: f32,
    pub scale: (f32, f32),
    pub ratio: (f32, f32),
    pub value: f32,
}

impl RandomErasing {
    pub fn validate(&self) -> Result<(), String> {
        check_probability("erasing probability", self.p)?;
        check_scale_ratio(self.scale, self.ratio)
    }

    /// Image `image`'s box as `[top, left, height, width]`, all zero where nothing is erased.
    pub fn draw(&self, seed: u64, image: usize, height: usize, width: usize) -> [u32; 4] {
        let mut draws = Draws::new(seed, image);
        if draws.uniform() >= self.p as f64 {
            return [0; 4];
        }
        let fits = |h: usize, w: usize| h < height && w < width;
        random_box(&mut draws, (height, width), self.scale, self.ratio, fits)
            .map_or([0; 4], |b| b.map(|v| v as u32))
    }
}

/// `x` with each image's box (`[top, left, height, width]`) set to `value` in every channel.
pub fn erase(shape: BatchShape, boxes: &[[u32; 4]], value: f32, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), shape.len(), "erase: x is not the shape");
    assert_eq!(boxes.len(), shape.batch, "erase: one box per image");
    let plane = shape.height * shape.width;
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let [top, left, h, w] = boxes[i / (shape.channels * plane)].map(|v| v as usize);
            let (row, column) = ((i % plane) / shape.width, i % shape.width);
            let inside = (top..top + h).contains(&row) && (left..left + w).contains(&column);
            if inside {
                value
            } else {
                v
            }
        })
        .collect()
}

/// The four adjustments of torchvision's `ColorJitter`, as the GPU numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JitterOp {
    Brightness = 0,
    Contrast = 1,
    Saturation = 2,
    Hue = 3,
}

impl JitterOp {
    const ALL: [JitterOp; 4] = [
        JitterOp::Brightness,
        JitterOp::Contrast,
        JitterOp::Saturation,
        JitterOp::Hue,
    ];
}

/// torchvision's `ColorJitter` with factor ranges given directly: its `brightness=b` is
/// `Some((max(0, 1 − b), 1 + b))`, likewise contrast and saturation, and `hue=h` is
/// `Some((−h, h))`; `None` leaves the adjustment out. Per image, the four run in a uniformly
/// random order (torchvision's `randperm(4)`; here a Fisher–Yates shuffle of three draws), each
/// with its factor drawn from its range (four more draws, brightness first), on pixel values
/// in [0, 1]:
///   brightness b:  clamp(b·x, 0, 1)
///   contrast c:    clamp(c·x + (1 − c)·m, 0, 1), m the image's mean grey level at that point
///   saturation s:  clamp(s·x + (1 − s)·grey(x), 0, 1), grey = 0.2989 r + 0.587 g + 0.114 b
///   hue h:         the hue of HSV turned by h (a fraction of the circle), torchvision's
///                  `_rgb2hsv` and `_hsv2rgb`
/// A normalised batch is brought back to [0, 1] first and normalised again after
/// ([`Normalisation`]). Saturation and hue need RGB.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ColorJitter {
    pub brightness: Option<(f32, f32)>,
    pub contrast: Option<(f32, f32)>,
    pub saturation: Option<(f32, f32)>,
    pub hue: Option<(f32, f32)>,
}

impl ColorJitter {
    fn range(&self, op: JitterOp) -> Option<(f32, f32)> {
        match op {
            JitterOp::Brightness => self.brightness,
            JitterOp::Contrast => self.contrast,
            JitterOp::Saturation => self.saturation,
            JitterOp::Hue => self.hue,
        }
    }

    /// torchvision's `ValueError`s, and the refusal of saturation or hue for a grey batch.
    pub fn validate(&self, channels: usize) -> Result<(), String> {
        if channels != 1 && channels != 3 {
            return Err(format!(
                "colour jitter works on 1 or 3 channels, not {channels}"
            ));
        }
        if channels == 1 && (self.saturation.is_some() || self.hue.is_some()) {
            return Err(
                "saturation and hue jitter need RGB images, but the batch is grey (1 channel)"
                    .into(),
            );
        }
        for (name, range) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            range.map_or(Ok(()), |r| check_range(name, r, 0.0..=f32::MAX))?;
        }
        self.hue
            .map_or(Ok(()), |r| check_range("hue", r, -0.5..=0.5))
    }

    /// Image `image`'s order and factors.
    pub fn draw(&self, seed: u64, image: usize) -> JitterDraw {
        let mut draws = Draws::new(seed, image);
        let mut order = JitterOp::ALL;
        for i in (1..order.len()).rev() {
            order.swap(i, draws.below(i + 1));
        }
        let factors = JitterOp::ALL.map(|op| {
            let u = draws.uniform();
            self.range(op)
                .map(|(low, high)| (low as f64 + (high as f64 - low as f64) * u) as f32)
        });
        JitterDraw {
            steps: order.map(|op| factors[op as usize].map(|factor| (op, factor))),
        }
    }
}

/// One image's colour jitter: the adjustments in the order they apply, `None` for those left
/// out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JitterDraw {
    pub steps: [Option<(JitterOp, f32)>; 4],
}

impl JitterDraw {
    /// Words per image in the GPU's buffer: four op codes (4 = none) and their four factors.
    pub const WORDS: usize = 8;

    pub fn words(draws: &[JitterDraw]) -> Vec<f32> {
        draws
            .iter()
            .flat_map(|draw| {
                let codes = draw
                    .steps
                    .map(|s| s.map_or(4.0, |(op, _)| op as u32 as f32));
                let factors = draw.steps.map(|s| s.map_or(0.0, |(_, f)| f));
                codes.into_iter().chain(factors)
            })
            .collect()
    }
}

/// How the batch's values relate to pixel values p in [0, 1]: x = (p − mean)/std per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// Values that are already pixel values.
    pub fn none(channels: usize) -> Self {
        Normalisation {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }
}

/// torchvision's `rgb_to_grayscale` weights.
fn grey(rgb: &[f64]) -> f64 {
    match rgb {
        [r, g, b] => 0.2989 * r + 0.587 * g + 0.114 * b,
        [v] => *v,
        _ => unreachable!("1 or 3 channels"),
    }
}

/// torchvision's `_blend`: `clamp(ratio·a + (1 − ratio)·b, 0, 1)`.
fn blend(a: f64, b: f64, ratio: f64) -> f64 {
    (ratio * a + (1.0 - ratio) * b).clamp(0.0, 1.0)
}

/// torchvision's `adjust_hue` of one pixel: `_rgb2hsv`, h ← (h + factor) mod 1, `_hsv2rgb`.
fn turn_hue(rgb: &mut [f64], factor: f64) {
    let [r, g, b] = [rgb[0], rgb[1], rgb[2]];
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    let chroma = max - min;
    let s = chroma / if max == min { 1.0 } else { max };
    let divisor = if max == min { 1.0 } else { chroma };
    let (rc, gc, bc) = (
        (max - r) / divisor,
        (max - g) / divisor,
        (max - b) / divisor,
    );
    let h = if max == r {
        bc - gc
    } else if max == g {
        2.0 + rc - bc
    } else {
        4.0 + gc - rc
    };
    let h = ((h / 6.0 + 1.0) % 1.0 + factor).rem_euclid(1.0);
    let sector = (h * 6.0).floor();
    let f = h * 6.0 - sector;
    let v = max;
    let p = (v * (1.0 - s)).clamp(0.0, 1.0);
    let q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
    let t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
    let turned = match sector as i64 % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    };
    rgb.copy_from_slice(&turned);
}

/// `x` with each image jittered by `draws[image]`, in f64 and rounded once.
pub fn color_jitter(
    shape: BatchShape,
    normalisation: &Normalisation,
    draws: &[JitterDraw],
    x: &[f32],
) -> Vec<f32> {
    assert_eq!(x.len(), shape.len(), "color_jitter: x is not the shape");
    assert_eq!(draws.len(), shape.batch, "color_jitter: one draw per image");
    let (channels, plane) = (shape.channels, shape.height * shape.width);
    let (mean, std) = (&normalisation.mean, &normalisation.std);
    let mut y = Vec::with_capacity(x.len());
    for (image, draw) in draws.iter().enumerate() {
        let values = &x[image * channels * plane..][..channels * plane];
        // Pixel-major: pixels[p] holds pixel p's channels, as pixel values.
        let mut pixels: Vec<Vec<f64>> = (0..plane)
            .map(|p| {
                (0..channels)
                    .map(|c| values[c * plane + p] as f64 * std[c] as f64 + mean[c] as f64)
                    .collect()
            })
            .collect();
        for &(op, factor) in draw.steps.iter().flatten() {
            let factor = factor as f64;
            let level = match op {
                JitterOp::Contrast => pixels.iter().map(|p| grey(p)).sum::<f64>() / plane as f64,
                _ => 0.0,
            };
            for pixel in &mut pixels {
                let grey_level = grey(pixel);
                match op {
                    JitterOp::Brightness => {
                        pixel.iter_mut().for_each(|v| *v = blend(*v, 0.0, factor))
                    }
                    JitterOp::Contrast => {
                        pixel.iter_mut().for_each(|v| *v = blend(*v, level, factor))
                    }
                    JitterOp::Saturation => pixel
                        .iter_mut()
                        .for_each(|v| *v = blend(*v, grey_level, factor)),
                    JitterOp::Hue => turn_hue(pixel, factor),
                }
            }
        }
        for c in 0..channels {
            y.extend(
                pixels
                    .iter()
                    .map(|p| ((p[c] - mean[c] as f64) / std[c] as f64) as f32),
            );
        }
    }
    y
}
