//! Lowering a convolution to matrix products: im2col, its adjoint col2im, and the swap of a
//! tensor's first two axes. Twins of `shaders/lowering.wgsl`.

use super::conv2d::Conv2dShape;

/// The patch matrix of a batch: one row per (image, output pixel), one column per
/// (input channel, ky, kx). `[batch · out_h · out_w, in_channels · kernel_h · kernel_w]`.
pub fn col_shape(shape: &Conv2dShape) -> (usize, usize) {
    (
        shape.batch * shape.out_height() * shape.out_width(),
        shape.in_channels * shape.kernel_h * shape.kernel_w,
    )
}

pub fn col_len(shape: &Conv2dShape) -> usize {
    let (rows, columns) = col_shape(shape);
    rows * columns
}

/// How the patch matrix lies in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchLayout {
    /// `[B·P, K]`: a row per (image, output pixel), its patch contiguous.
    PixelMajor,
    /// `[K, B·P]`, the transpose: a row per (channel, tap), the whole batch's pixels contiguous,
    /// so one product covers the batch and col2im's neighbouring pixels read neighbouring
    /// entries.
    TapMajor,
}

impl PatchLayout {
    /// Where entry (row, k) of the `[B·P, K]` patch matrix of `shape` lies.
    pub fn index(self, shape: &Conv2dShape, row: usize, k: usize) -> usize {
        let (rows, columns) = col_shape(shape);
        match self {
            PatchLayout::PixelMajor => row * columns + k,
            PatchLayout::TapMajor => k * rows + row,
        }
    }
}

/// Visits every (col index, input index or None in the padding) pair of the patch matrix
/// laid out as `layout`.
fn for_each_tap(
    shape: &Conv2dShape,
    layout: PatchLayout,
    mut visit: impl FnMut(usize, Option<usize>),
) {
    let (oh, ow) = (shape.out_height(), shape.out_width());
    let (kh, kw) = (shape.kernel_h, shape.kernel_w);
    let mut row = 0;
    for b in 0..shape.batch {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut k = 0;
                for c in 0..shape.in_channels {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * shape.stride + ky).checked_sub(shape.padding);
                            let ix = (ox * shape.stride + kx).checked_sub(shape.padding);
                            let source = match (iy, ix) {
                                (Some(iy), Some(ix)) if iy < shape.height && ix < shape.width => {
                                    Some(
                                        ((b * shape.in_channels + c) * shape.height + iy)
                                            * shape.width
                                            + ix,
                                    )
                                }
                                _ => None,
                            };
                            visit(layout.index(shape, row, k), source);
                            k += 1;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// `col[(b, oy, ox), (c, ky, kx)] = x[b, c, oy·s − p + ky, ox·s − p + kx]`, 0 in the padding,
/// laid out as `layout`.
pub fn im2col(shape: &Conv2dShape, layout: PatchLayout, input: &[f32]) -> Vec<f32> {
    let mut col = vec![0.0; col_len(shape)];
    for_each_tap(shape, layout, |i, source| {
        if let Some(source) = source {
            col[i] = input[source];
        }
    });
    col
}

/// im2col's adjoint: every patch entry of `col` (laid out as `layout`) added back onto the
/// input pixel it was read from, onto `bias[c]` for channel c where given.
pub fn col2im(
    shape: &Conv2dShape,
    layout: PatchLayout,
    col: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let plane = shape.height * shape.width;
    let mut sums: Vec<f64> = (0..shape.input_len())
        .map(|i| bias.map_or(0.0, |b| b[i / plane % shape.in_channels] as f64))
        .collect();
    for_each_tap(shape, layout, |i, source| {
        if let Some(source) = source {
            sums[source] += col[i] as f64;
        }
    });
    sums.into_iter().map(|v| v as f32).collect()
}

/// `y[c, b, s] = x[b, c, s]`.
pub fn swap_batch_channel(batch: usize, channels: usize, spatial: usize, x: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; batch * channels * spatial];
    for b in 0..batch {
        for c in 0..channels {
            for s in 0..spatial {
                y[(c * batch + b) * spatial + s] = x[(b * channels + c) * spatial + s];
            }
        }
    }
    y
}
