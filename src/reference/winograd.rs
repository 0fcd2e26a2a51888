//! Winograd's minimal filtering F(2×2, 3×3) (Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks", 2016): a 3×3, stride-1 convolution as 16 matrix products
//! over 4×4 tiles of the input, each tile giving a 2×2 block of the output, with 16
//! multiplications per block and input channel where the direct convolution has 36. Twins of
//! `shaders/winograd.wgsl`.
//!
//! With `g` one 3×3 kernel, `d` one 4×4 input tile and `m` the 4×4 products summed over the
//! input channels:
//!
//! - `U = G g Gᵀ`, stored `[16, C, O]`;
//! - `V = Bᵀ d B`, stored `[16, C, T]`, tile `t = (b·tiles_h + ty)·tiles_w + tx` reading the
//!   input from row `2·ty − padding`, column `2·tx − padding` (zeros outside);
//! - `M[ξ] = V[ξ]ᵀ · U[ξ]` for each of the 16 points `ξ = 4·row + column`, `[16, T, O]`: a
//!   row per tile, so that a batch of one image, a few tiles, still has O columns;
//! - `y = Aᵀ m A (+ bias)`, the 2×2 block at row `2·ty`, column `2·tx` of the NCHW output,
//!   its entries past the output's edge dropped.

use super::conv2d::Conv2dShape;

const G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];
const B_T: [[f64; 4]; 4] = [
    [1.0, 0.0, -1.0, 0.0],
    [0.0, 1.0, 1.0, 0.0],
    [0.0, -1.0, 1.0, 0.0],
    [0.0, 1.0, 0.0, -1.0],
];
const A_T: [[f64; 4]; 2] = [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];

/// The points of the transform domain: a 4×4 tile.
pub const POINTS: usize = 16;

/// What a transform computes: the value, or the bound on what an f32 evaluation of it rounds,
/// the same sums over the absolute values of the matrices and operands (Σ|terms|).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    Exact,
    Magnitude,
}

impl Arithmetic {
    fn of(self, x: f64) -> f64 {
        match self {
            Arithmetic::Exact => x,
            Arithmetic::Magnitude => x.abs(),
        }
    }
}

/// Whether F(2×2, 3×3) computes `shape`: a 3×3 kernel at stride 1, any padding.
pub fn applies(shape: &Conv2dShape) -> bool {
    shape.kernel_h == 3 && shape.kernel_w == 3 && shape.stride == 1
}

/// `(tiles_h, tiles_w)`: 2×2 output blocks down and across one image, the last ones cut off
/// by the output's edge when its size is odd.
pub fn tile_grid(shape: &Conv2dShape) -> (usize, usize) {
    (
        shape.out_height().div_ceil(2),
        shape.out_width().div_ceil(2),
    )
}

/// `T`, the tiles of the whole batch: the products' number of columns.
pub fn tile_count(shape: &Conv2dShape) -> usize {
    let (tiles_h, tiles_w) = tile_grid(shape);
    shape.batch * tiles_h * tiles_w
}

/// `L x Lᵀ` for an `R×N` matrix `L` and an `N×N` tile `x`.
fn sandwich<const R: usize, const N: usize>(
    l: &[[f64; N]; R],
    x: &[[f64; N]; N],
    arithmetic: Arithmetic,
) -> [[f64; R]; R] {
    let mut out = [[0.0; R]; R];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, entry) in row.iter_mut().enumerate() {
            for a in 0..N {
                for b in 0..N {
                    *entry +=
                        arithmetic.of(l[i][a]) * arithmetic.of(x[a][b]) * arithmetic.of(l[j][b]);
                }
            }
        }
    }
    out
}

/// `U[ξ, c, o] = (G g Gᵀ)[ξ]` for every kernel `g = weight[o, c]`.
pub fn transform_weights(shape: &Conv2dShape, weight: &[f32], arithmetic: Arithmetic) -> Vec<f64> {
    assert!(
        applies(shape),
        "winograd: {shape:?} is not a 3×3 stride-1 convolution"
    );
    let (o_count, c_count) = (shape.out_channels, shape.in_channels);
    let mut u = vec![0.0; POINTS * o_count * c_count];
    for o in 0..o_count {
        for c in 0..c_count {
            let kernel = &weight[(o * c_count + c) * 9..][..9];
            let g = std::array::from_fn(|ky| std::array::from_fn(|kx| kernel[ky * 3 + kx] as f64));
            let transformed = sandwich(&G, &g, arithmetic);
            for (xi, value) in transformed.iter().flatten().enumerate() {
                u[(xi * c_count + c) * o_count + o] = *value;
            }
        }
    }
    u
}

/// `V[ξ, c, t] = (Bᵀ d B)[ξ]` for every input tile `d` of channel `c`.
pub fn transform_input(shape: &Conv2dShape, input: &[f32], arithmetic: Arithmetic) -> Vec<f64> {
    assert!(
        applies(shape),
        "winograd: {shape:?} is not a 3×3 stride-1 convolution"
    );
    let (tiles_h, tiles_w) = tile_grid(shape);
    let tiles = tile_count(shape);
    let (channels, height, width) = (shape.in_channels, shape.height, shape.width);
    let mut v = vec![0.0; POINTS * channels * tiles];
    for c in 0..channels {
        for t in 0..tiles {
            let (b, ty, tx) = (t / (tiles_h * tiles_w), t / tiles_w % tiles_h, t % tiles_w);
            let d: [[f64; 4]; 4] = std::array::from_fn(|dy| {
                std::array::from_fn(|dx| {
                    let iy = (2 * ty + dy).checked_sub(shape.padding);
                    let ix = (2 * tx + dx).checked_sub(shape.padding);
                    match (iy, ix) {
                        (Some(iy), Some(ix)) if iy < height && ix < width => {
                            input[((b * channels + c) * height + iy) * width + ix] as f64
                        }
                        _ => 0.0,
                    }
                })
            });
            let transformed = sandwich(&B_T, &d, arithmetic);
            for (xi, value) in transformed.iter().flatten().enumerate() {
                v[(xi * channels + c) * tiles + t] = *value;
            }
        }
    }
    v
}

/// `M[ξ] = V[ξ]ᵀ · U[ξ]`, summed over the input channels.
pub fn products(shape: &Conv2dShape, u: &[f64], v: &[f64]) -> Vec<f64> {
    let (o_count, c_count, tiles) = (shape.out_channels, shape.in_channels, tile_count(shape));
    let mut m = vec![0.0; POINTS * o_count * tiles];
    for xi in 0..POINTS {
        for o in 0..o_count {
            for c in 0..c_count {
                let weight = u[(xi * c_count + c) * o_count + o];
                for t in 0..tiles {
                    m[(xi * tiles + t) * o_count + o] += weight * v[(xi * c_count + c) * tiles + t];
                }
            }
        }
    }
    m
}

/// The NCHW output from the products: `y = Aᵀ m A + bias[o]` for every tile of channel `o`.
pub fn transform_output(
    shape: &Conv2dShape,
    products: &[f32],
    bias: Option<&[f32]>,
    arithmetic: Arithmetic,
) -> Vec<f64> {
    assert!(
        applies(shape),
        "winograd: {shape:?} is not a 3×3 stride-1 convolution"
    );
    let (tiles_h, tiles_w) = tile_grid(shape);
    let tiles = tile_count(shape);
    let (out_channels, out_h, out_w) = (shape.out_channels, shape.out_height(), shape.out_width());
    let mut y = vec![0.0; shape.output_len()];
    for o in 0..out_channels {
        let bias = bias.map_or(0.0, |bias| arithmetic.of(bias[o] as f64));
        for t in 0..tiles {
            let (b, ty, tx) = (t / (tiles_h * tiles_w), t / tiles_w % tiles_h, t % tiles_w);
            let m: [[f64; 4]; 4] = std::array::from_fn(|row| {
                std::array::from_fn(|column| {
                    products[((row * 4 + column) * tiles + t) * out_channels + o] as f64
                })
            });
            let block = sandwich(&A_T, &m, arithmetic);
            for (dy, row) in block.iter().enumerate() {
                for (dx, value) in row.iter().enumerate() {
                    let (oy, ox) = (2 * ty + dy, 2 * tx + dx);
                    if oy < out_h && ox < out_w {
                        y[((b * out_channels + o) * out_h + oy) * out_w + ox] = value + bias;
                    }
                }
            }
        }
    }
    y
}

/// The whole forward pass through the transforms, in f64 between them: equal to
/// [`super::conv2d::forward`] up to rounding (with `Exact`), or the magnitude an f32 evaluation
/// rounds (with `Magnitude`).
pub fn forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    arithmetic: Arithmetic,
) -> Vec<f64> {
    let u = transform_weights(shape, weight, arithmetic);
    let v = transform_input(shape, input, arithmetic);
    let m = products(shape, &u, &v);
    // Stored as f32 between the product and the output transform, as on the GPU.
    let m: Vec<f32> = m.iter().map(|&x| x as f32).collect();
    transform_output(shape, &m, bias, arithmetic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::conv2d;

    /// The transforms compose to the convolution, odd output sizes and every padding included.
    #[test]
    fn the_transforms_compose_to_the_convolution() {
        for (height, width, padding) in [(5, 6, 1), (4, 4, 0), (3, 7, 2), (6, 5, 1)] {
            let shape = Conv2dShape {
                batch: 2,
                in_channels: 3,
                out_channels: 2,
                height,
                width,
                kernel_h: 3,
                kernel_w: 3,
                stride: 1,
                padding,
            };
            let wave = |len: usize, phase: f32| -> Vec<f32> {
                (0..len).map(|i| (i as f32 * 0.37 + phase).sin()).collect()
            };
            let input = wave(shape.input_len(), 0.1);
            let weight = wave(shape.weight_len(), 1.3);
            let bias = [0.25, -0.5];
            let mut direct = vec![0.0; shape.output_len()];
            conv2d::forward(&shape, &input, &weight, Some(&bias), &mut direct);
            let winograd = forward(&shape, &input, &weight, Some(&bias), Arithmetic::Exact);
            for (i, (&want, &got)) in direct.iter().zip(&winograd).enumerate() {
                assert!(
                    (want as f64 - got).abs() < 1e-5,
                    "{height}×{width} padding {padding}: output {i} is {got}, direct says {want}"
                );
            }
        }
    }
}
