//! Pooling twins, NCHW f32, with their backward passes:
//! - max pooling with argmax indices, PyTorch `F.max_pool2d(x, k, s, p, ceil_mode=...,
//!   return_indices=True)` (dilation 1; the padding is −∞, so it never wins);
//! - average pooling, `F.avg_pool2d(x, k, s, p, ceil_mode=...)` with `count_include_pad=True`;
//! - adaptive average pooling, `F.adaptive_avg_pool2d(x, (out_height, out_width))`;
//! - global average pooling, `F.adaptive_avg_pool2d(x, 1)` flattened to [N, C].

use std::ops::Range;

/// A square pooling window of side `kernel` sliding by `stride` over an NCHW tensor padded
/// by `padding` on every side, as PyTorch's `MaxPool2d` / `AvgPool2d(kernel, stride,
/// padding, ceil_mode)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Implicit padding on each side: −∞ to a max pool, zeros counted in an average's divisor.
    pub padding: usize,
    /// Round the output size up instead of down, keeping a last window that runs past the
    /// padded input as long as it starts inside the input or the left padding.
    pub ceil_mode: bool,
}

impl Pool2dShape {
    /// `kernel`×`kernel` windows sliding by `stride`, no padding, floor mode; see
    /// [`Self::with_padding`] and [`Self::with_ceil_mode`] for the rest.
    pub fn new(
        batch: usize,
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
    ) -> Self {
        Pool2dShape {
            batch,
            channels,
            height,
            width,
            kernel,
            stride,
            padding: 0,
            ceil_mode: false,
        }
    }

    pub fn with_padding(self, padding: usize) -> Self {
        Pool2dShape { padding, ..self }
    }

    pub fn with_ceil_mode(self) -> Self {
        Pool2dShape {
            ceil_mode: true,
            ..self
        }
    }

    /// PyTorch's rules: a window and a stride of at least 1, padding at most half the window,
    /// and a window that fits the padded input.
    pub fn check(&self) -> Result<(), String> {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        if k == 0 || s == 0 {
            return Err(format!("a {k}×{k} window with stride {s} is empty"));
        }
        if 2 * p > k {
            return Err(format!(
                "padding {p} is more than half of the {k}×{k} window"
            ));
        }
        if k > self.height + 2 * p || k > self.width + 2 * p {
            return Err(format!(
                "a {k}×{k} window does not fit {h}×{w} padded by {p}",
                h = self.height,
                w = self.width
            ));
        }
        Ok(())
    }

    pub fn out_height(&self) -> usize {
        self.out_extent(self.height)
    }

    pub fn out_width(&self) -> usize {
        self.out_extent(self.width)
    }

    /// ⌊(extent + 2p − k)/s⌋ + 1 windows, or ⌈…⌉ + 1 in ceil mode less a last one that
    /// would start in the right padding.
    fn out_extent(&self, extent: usize) -> usize {
        if let Err(problem) = self.check() {
            panic!("pool {self:?}: {problem}");
        }
        let room = extent + 2 * self.padding - self.kernel;
        if !self.ceil_mode {
            return room / self.stride + 1;
        }
        let out = room.div_ceil(self.stride) + 1;
        if (out - 1) * self.stride >= extent + self.padding {
            out - 1
        } else {
            out
        }
    }

    /// Number of (n, c) planes.
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    pub fn input_len(&self) -> usize {
        self.planes() * self.height * self.width
    }

    /// Length of the output and of the index tensor.
    pub fn output_len(&self) -> usize {
        self.planes() * self.out_height() * self.out_width()
    }

    /// True when some input element lies in more than one window.
    pub fn overlapping(&self) -> bool {
        self.kernel > self.stride
    }

    /// True when some window reaches past the input (into the padding, or past it in ceil
    /// mode), so windows must be clipped to the input.
    pub fn clipped(&self) -> bool {
        let reach = |out: usize| (out - 1) * self.stride + self.kernel;
        self.padding > 0
            || reach(self.out_height()) > self.height
            || reach(self.out_width()) > self.width
    }

    /// Along an axis of `extent` input positions, the positions window `o` covers and the
    /// count an average over it divides by: the padded window [o·s, o·s + k) cut at the end
    /// of the right padding (PyTorch's `pool_size`, padding included), then clipped to the
    /// input.
    fn window(&self, o: usize, extent: usize) -> (Range<usize>, usize) {
        let (start, p) = (o * self.stride, self.padding);
        let end = (start + self.kernel).min(extent + 2 * p);
        (start.max(p) - p..end.min(extent + p) - p, end - start)
    }

    fn windows(&self) -> Windows {
        Windows {
            planes: self.planes(),
            height: self.height,
            width: self.width,
            rows: (0..self.out_height())
                .map(|o| self.window(o, self.height))
                .collect(),
            columns: (0..self.out_width())
                .map(|o| self.window(o, self.width))
                .collect(),
        }
    }
}

/// An NCHW input averaged over `out_height`×`out_width` adaptive windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptivePoolShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_height: usize,
    pub out_width: usize,
}

impl AdaptivePoolShape {
    /// Every size at least 1 (PyTorch also allows an output larger than the input).
    pub fn check(&self) -> Result<(), String> {
        if [self.height, self.width, self.out_height, self.out_width].contains(&0) {
            return Err(format!(
                "cannot pool {}×{} to {}×{}",
                self.height, self.width, self.out_height, self.out_width
            ));
        }
        Ok(())
    }

    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    pub fn input_len(&self) -> usize {
        self.planes() * self.height * self.width
    }

    pub fn output_len(&self) -> usize {
        self.planes() * self.out_height * self.out_width
    }

    /// The 1×1 output is a global average pool's.
    pub fn global(&self) -> Option<GlobalPoolShape> {
        (self.out_height == 1 && self.out_width == 1).then_some(GlobalPoolShape {
            batch: self.batch,
            channels: self.channels,
            height: self.height,
            width: self.width,
        })
    }

    /// PyTorch's windows: window o of `out` over `extent` positions covers
    /// [⌊o·extent/out⌋, ⌈(o + 1)·extent/out⌉) and divides by its length.
    fn window(o: usize, extent: usize, out: usize) -> (Range<usize>, usize) {
        let (start, end) = (o * extent / out, ((o + 1) * extent).div_ceil(out));
        (start..end, end - start)
    }

    fn windows(&self) -> Windows {
        Windows {
            planes: self.planes(),
            height: self.height,
            width: self.width,
            rows: (0..self.out_height)
                .map(|o| Self::window(o, self.height, self.out_height))
                .collect(),
            columns: (0..self.out_width)
                .map(|o| Self::window(o, self.width, self.out_width))
                .collect(),
        }
    }
}

/// The NCHW input of a global average pool; the output is [batch, channels].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalPoolShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl GlobalPoolShape {
    /// Number of (n, c) planes, which is also the output length.
    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Elements averaged into each output.
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    pub fn input_len(&self) -> usize {
        self.planes() * self.plane_len()
    }
}

/// `y[p, oy, ox]` = max of plane p of `x` over window (oy, ox) clipped to the input (the
/// padding is −∞ and never wins), and `indices[p, oy, ox]` = where that maximum sits in its
/// plane, `iy·width + ix`.
///
/// Like PyTorch's CPU and CUDA kernels (`if (val > maxval || isnan(val))`): among tied maxima
/// the first in row-major window order wins, and a NaN wins over any number, the last NaN in
/// window order winning among several; a window of −∞ gives its first input element.
pub fn max_pool2d(shape: &Pool2dShape, x: &[f32], y: &mut [f32], indices: &mut [u32]) {
    let (h, w) = (shape.height, shape.width);
    let windows = shape.windows();
    for plane in 0..shape.planes() {
        let x = &x[plane * h * w..(plane + 1) * h * w];
        for (oy, (rows, _)) in windows.rows.iter().enumerate() {
            for (ox, (columns, _)) in windows.columns.iter().enumerate() {
                let mut best = f32::NEG_INFINITY;
                let mut best_index = rows.start * w + columns.start;
                for iy in rows.clone() {
                    for ix in columns.clone() {
                        let value = x[iy * w + ix];
                        if value > best || value.is_nan() {
                            best = value;
                            best_index = iy * w + ix;
                        }
                    }
                }
                let out = (plane * windows.rows.len() + oy) * windows.columns.len() + ox;
                y[out] = best;
                indices[out] = best_index as u32;
            }
        }
    }
}

/// `dx = ∂L/∂x` from `dy = ∂L/∂y` and the forward's indices: each dy goes to the element that
/// won its window, summed where overlapping windows (kernel > stride) share a winner; every
/// other element gets 0. This is PyTorch's `max_pool2d_with_indices_backward`.
pub fn max_pool2d_backward(shape: &Pool2dShape, dy: &[f32], indices: &[u32], dx: &mut [f32]) {
    let plane_len = shape.height * shape.width;
    let out_plane_len = shape.out_height() * shape.out_width();
    let mut acc = vec![0.0f64; plane_len];
    for plane in 0..shape.planes() {
        acc.fill(0.0);
        for out in plane * out_plane_len..(plane + 1) * out_plane_len {
            acc[indices[out] as usize] += dy[out] as f64;
        }
        for (dx, &acc) in dx[plane * plane_len..(plane + 1) * plane_len]
            .iter_mut()
            .zip(&acc)
        {
            *dx = acc as f32;
        }
    }
}

/// `y[p] = mean of x[p, :, :]` for each (n, c) plane p, as `F.adaptive_avg_pool2d(x, 1)`.
pub fn global_avg_pool(shape: &GlobalPoolShape, x: &[f32], y: &mut [f32]) {
    let n = shape.plane_len();
    for (plane, y) in y[..shape.planes()].iter_mut().enumerate() {
        let sum: f64 = x[plane * n..(plane + 1) * n]
            .iter()
            .map(|&v| v as f64)
            .sum();
        *y = (sum / n as f64) as f32;
    }
}

/// `dx[p, iy, ix] = dy[p] / (height·width)`: the mean's gradient, spread evenly over the plane.
pub fn global_avg_pool_backward(shape: &GlobalPoolShape, dy: &[f32], dx: &mut [f32]) {
    let n = shape.plane_len();
    for (plane, &dy) in dy[..shape.planes()].iter().enumerate() {
        dx[plane * n..(plane + 1) * n].fill((dy as f64 / n as f64) as f32);
    }
}

/// Rectangular windows over each (n, c) plane, each averaged by its own count: along each
/// axis, window o's input positions and its divisor.
struct Windows {
    planes: usize,
    height: usize,
    width: usize,
    rows: Vec<(Range<usize>, usize)>,
    columns: Vec<(Range<usize>, usize)>,
}

impl Windows {
    /// `y[p, oy, ox]` = Σ x[p, rows(oy), columns(ox)] / (count(oy)·count(ox)).
    fn average(&self, x: &[f32], y: &mut [f32]) {
        let plane_len = self.height * self.width;
        let mut out = 0;
        for plane in 0..self.planes {
            let x = &x[plane * plane_len..(plane + 1) * plane_len];
            for (rows, row_count) in &self.rows {
                for (columns, column_count) in &self.columns {
                    let mut sum = 0.0f64;
                    for iy in rows.clone() {
                        for ix in columns.clone() {
                            sum += x[iy * self.width + ix] as f64;
                        }
                    }
                    y[out] = (sum / (row_count * column_count) as f64) as f32;
                    out += 1;
                }
            }
        }
    }

    /// The gradient of [`Self::average`]: each window's dy / count added to every input
    /// element in it.
    fn average_backward(&self, dy: &[f32], dx: &mut [f32]) {
        let plane_len = self.height * self.width;
        let mut acc = vec![0.0f64; plane_len];
        let mut out = 0;
        for plane in 0..self.planes {
            acc.fill(0.0);
            for (rows, row_count) in &self.rows {
                for (columns, column_count) in &self.columns {
                    let share = dy[out] as f64 / (row_count * column_count) as f64;
                    for iy in rows.clone() {
                        for ix in columns.clone() {
                            acc[iy * self.width + ix] += share;
                        }
                    }
                    out += 1;
                }
            }
            for (dx, &acc) in dx[plane * plane_len..(plane + 1) * plane_len]
                .iter_mut()
                .zip(&acc)
            {
                *dx = acc as f32;
            }
        }
    }
}

/// `F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad=True)`: each output is the sum of
/// its window's input elements divided by the window's size in the padded input (a window
/// that ceil mode lets run past the padding counts only up to its end).
pub fn avg_pool2d(shape: &Pool2dShape, x: &[f32], y: &mut [f32]) {
    shape.windows().average(x, y);
}

/// `dx = ∂L/∂x` of [`avg_pool2d`]: each dy shared out over its window by the same divisor.
pub fn avg_pool2d_backward(shape: &Pool2dShape, dy: &[f32], dx: &mut [f32]) {
    shape.windows().average_backward(dy, dx);
}

/// `F.adaptive_avg_pool2d(x, (out_height, out_width))`: each output is the mean of its
/// window (see [`AdaptivePoolShape`]); at 1×1 the same values as [`global_avg_pool`].
pub fn adaptive_avg_pool2d(shape: &AdaptivePoolShape, x: &[f32], y: &mut [f32]) {
    shape.windows().average(x, y);
}

/// `dx = ∂L/∂x` of [`adaptive_avg_pool2d`], summed where windows overlap.
pub fn adaptive_avg_pool2d_backward(shape: &AdaptivePoolShape, dy: &[f32], dx: &mut [f32]) {
    shape.windows().average_backward(dy, dx);
}
