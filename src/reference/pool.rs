//! Pooling twins, NCHW f32: max pooling with argmax indices (PyTorch
//! `F.max_pool2d(x, kernel, stride, return_indices=True)`: padding 0, dilation 1, floor mode)
//! and global average pooling (`F.adaptive_avg_pool2d(x, 1)` flattened to [N, C]), with their
//! backward passes.

/// A square max-pool window of side `kernel` sliding by `stride` over an NCHW tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl Pool2dShape {
    /// Floor mode: windows that would run past the bottom edge are dropped.
    pub fn out_height(&self) -> usize {
        self.out_extent(self.height)
    }

    /// Floor mode: windows that would run past the right edge are dropped.
    pub fn out_width(&self) -> usize {
        self.out_extent(self.width)
    }

    fn out_extent(&self, extent: usize) -> usize {
        assert!(
            self.kernel >= 1 && self.stride >= 1 && self.kernel <= extent,
            "max pool: a {k}×{k} window with stride {s} does not fit {h}×{w}",
            k = self.kernel,
            s = self.stride,
            h = self.height,
            w = self.width
        );
        (extent - self.kernel) / self.stride + 1
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

/// `y[p, oy, ox] = max of x[p, oy·s .. oy·s+k, ox·s .. ox·s+k]` for each plane p, and
/// `indices[p, oy, ox]` = where that maximum sits in its plane, `iy·width + ix`.
///
/// Like PyTorch's CPU and CUDA kernels (`if (val > maxval || isnan(val))`): among tied maxima
/// the first in row-major window order wins, and a NaN wins over any number, the last NaN in
/// window order winning among several.
pub fn max_pool2d(shape: &Pool2dShape, x: &[f32], y: &mut [f32], indices: &mut [u32]) {
    let (h, w) = (shape.height, shape.width);
    let (oh, ow) = (shape.out_height(), shape.out_width());
    for plane in 0..shape.planes() {
        let x = &x[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = f32::NEG_INFINITY;
                let mut best_index = oy * shape.stride * w + ox * shape.stride;
                for iy in oy * shape.stride..oy * shape.stride + shape.kernel {
                    for ix in ox * shape.stride..ox * shape.stride + shape.kernel {
                        let value = x[iy * w + ix];
                        if value > best || value.is_nan() {
                            best = value;
                            best_index = iy * w + ix;
                        }
                    }
                }
                let out = (plane * oh + oy) * ow + ox;
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
