//! pool: max pool forward (values and argmax indices) and backward, in both layouts (a window
//! or a row of windows per invocation), alone, with a fused dropout and with the gate of a ReLU
//! before it, with padding and ceil mode; average pool (fixed windows with padding and ceil
//! mode, adaptive windows) and global average pool forward and backward; each against its twin
//! on awkward shapes, plus finite-difference checks of the backward twins.
//!
//! Tolerances:
//! - max pool forward copies one input per output: values (NaN included) and indices exact.
//! - max pool backward without overlap (kernel ≤ stride) copies one dy or writes 0: exact.
//!   With overlap each dx sums at most ⌈k/s⌉² dy terms: γ_{⌈k/s⌉²}·Σ|dy terms|.
//! - a fused dropout adds one multiply by 1/(1 − p) per survivor, the one its twin rounds: the
//!   same bounds.
//! - global average pool: an n-term f32 sum, γ_n·Σ|x|/n, then a division WGSL computes to
//!   2.5 ulp (≤ 5u relative) that the twin rounds once more (≤ u): 6u·|y| on top.
//! - its backward is that division alone: 6u·|dx|.
//! - average pools (fixed and adaptive windows): forward as the global one with an m-term sum,
//!   m the most elements a window holds. Backward sums, per element, dy/count over the t
//!   windows holding it, each division within 5u: (γ_t + 6u)·Σ|dy/count|.

use fer::gpu::{Dispatch, GpuBuffer, GpuError};
use fer::kernels::pool::{
    adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d, avg_pool2d_backward,
    global_avg_pool, global_avg_pool_backward, max_pool2d, max_pool2d_backward, AdaptivePoolShape,
    GlobalPoolShape, MaxPoolBackwardBuffers, MaxPoolForwardBuffers, Pool2dShape, PoolLayout,
};
use fer::reference;
use fer::reference::elementwise::Dropout;
use fer::rng::Rng;

use crate::common::*;

fn pool(
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
) -> Pool2dShape {
    Pool2dShape::new(batch, channels, height, width, kernel, stride)
}

/// Odd sizes with floor-mode remainders, k = s, k > s (overlap), k < s (gaps), batch 1,
/// one channel, a 1×1 plane, the study's 48×48 → 24×24 layer; padded and ceil-mode windows.
fn max_pool_shapes() -> Vec<Pool2dShape> {
    vec![
        pool(2, 3, 24, 24, 3, 2).with_padding(1), // resnet's k3/s2/p1: 24×24 → 12×12
        // Ceil mode drops a last row of windows that would start in the right padding and
        // keeps a last column that starts in the input.
        pool(1, 2, 5, 6, 2, 2).with_padding(1).with_ceil_mode(),
        pool(3, 2, 7, 8, 2, 2).with_ceil_mode(), // last windows run past the input, no padding
        pool(2, 3, 9, 8, 3, 3).with_padding(1).with_ceil_mode(), // k = s but not a tiling
        pool(2, 3, 10, 7, 4, 3).with_padding(2).with_ceil_mode(), // overlapping and clipped
        pool(1, 1, 1, 1, 3, 1).with_padding(1),  // one element among padding
        pool(1, 1, 7, 5, 2, 2),
        pool(1, 1, 7, 5, 3, 2),
        pool(1, 1, 1, 1, 1, 1),
        pool(3, 2, 9, 11, 3, 2),
        pool(2, 3, 13, 11, 3, 1),
        pool(2, 3, 10, 8, 2, 3),
        pool(1, 4, 7, 6, 3, 3),
        pool(2, 5, 48, 48, 2, 2),
        pool(1, 2, 9, 6, 3, 3), // 3×3 windows tiling the input: the per-window scatter
    ]
}

fn seed_of(shape: &Pool2dShape) -> u64 {
    (shape.input_len() * 131 + shape.kernel * 7 + shape.stride) as u64
}

/// Equal, or both NaN: what "exact" means for a copy.
fn assert_exact(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w || (g.is_nan() && w.is_nan()),
            "{what}: element {i} is {g} but the reference says {w}"
        );
    }
}

/// Runs the GPU forward in each layout on `x` (through a batch norm's `map` where given) and
/// holds values and indices exactly to `want`.
fn check_gpu_max_pool(
    what: &str,
    shape: &Pool2dShape,
    dropout: Option<&Dropout>,
    (x, map): (&[f32], Option<&[f32]>),
    (want_y, want_indices): (&[f32], &[u32]),
) {
    let (x, map) = (upload(x), map.map(upload));
    for layout in PoolLayout::ALL {
        let y = zeros(shape.output_len());
        let indices = zeros(shape.output_len());
        let buffers = MaxPoolForwardBuffers {
            x: &x,
            y: &y,
            indices: &indices,
            batchnorm_map: map.as_ref(),
        };
        let dispatch =
            max_pool2d(gpu(), shape, layout, dropout, buffers).expect("max_pool2d builds");
        run(&[&dispatch]);
        let what = format!("{what} {layout:?} {shape:?}");
        assert_exact(&format!("{what} y"), &read(&y), want_y);
        assert_eq!(read_u32(&indices), want_indices, "{what}: indices");
    }
}

/// The GPU forward against the twin, exactly.
fn check_max_pool_forward(what: &str, shape: &Pool2dShape, x: &[f32]) {
    let mut want_y = vec![0.0; shape.output_len()];
    let mut want_indices = vec![0; shape.output_len()];
    reference::pool::max_pool2d(shape, x, &mut want_y, &mut want_indices);
    check_gpu_max_pool(what, shape, None, (x, None), (&want_y, &want_indices));
}

#[test]
fn max_pool_forward_matches_reference() {
    for shape in max_pool_shapes() {
        check_max_pool_forward(
            "random",
            &shape,
            &random(seed_of(&shape), shape.input_len()),
        );
    }
}

/// Values on a grid of five levels, so most windows hold tied maxima; a whole plane of −∞
/// exercises the "no element beats the start" case.
#[test]
fn max_pool_forward_ties_pick_the_first_maximum() {
    for shape in [pool(2, 3, 9, 7, 2, 2), pool(1, 2, 8, 9, 3, 2)] {
        let mut x: Vec<f32> = random(seed_of(&shape), shape.input_len())
            .iter()
            .map(|v| (v * 2.0).round())
            .collect();
        let plane = shape.height * shape.width;
        x[..plane].fill(f32::NEG_INFINITY);
        check_max_pool_forward("tied", &shape, &x);
    }
}

#[test]
fn max_pool_forward_propagates_nan() {
    let shape = pool(2, 2, 9, 7, 3, 2);
    let mut x = random(seed_of(&shape), shape.input_len());
    let mut rng = Rng::new(17);
    let len = x.len();
    for _ in 0..len / 6 {
        x[rng.below(len)] = f32::NAN;
    }
    check_max_pool_forward("NaN", &shape, &x);
}

/// The twin's tie and NaN rules, checked by hand against PyTorch's documented behaviour.
#[test]
fn max_pool_twin_follows_pytorch_on_ties_and_nan() {
    let shape = pool(1, 1, 2, 4, 2, 2);
    let nan = f32::NAN;
    let cases: [([f32; 8], [u32; 2]); 2] = [
        // Window 0 holds 3 at indices 1 and 4; window 1 holds 3 at indices 2 and 7.
        ([1.0, 3.0, 3.0, 0.0, 3.0, 2.0, 1.0, 3.0], [1, 2]),
        // NaN beats any number; among NaNs the last in window order wins.
        ([nan, 1.0, 5.0, nan, 2.0, nan, nan, 0.0], [5, 6]),
    ];
    for (x, want_indices) in cases {
        let mut y = [0.0; 2];
        let mut indices = [0; 2];
        reference::pool::max_pool2d(&shape, &x, &mut y, &mut indices);
        assert_eq!(indices, want_indices, "{x:?}");
        let want_y: Vec<f32> = want_indices.iter().map(|&i| x[i as usize]).collect();
        assert_exact("twin y", &y, &want_y);
    }
}

/// The bound on a GPU dx routed from `dy` by `indices`: exact without overlap, else the
/// rounding of a sum of at most ⌈k/s⌉² routed terms.
fn routed_tolerance(shape: &Pool2dShape, dy: &[f32], indices: &[u32]) -> Vec<f64> {
    let abs_dy: Vec<f32> = dy.iter().map(|v| v.abs()).collect();
    let mut magnitude = vec![0.0; shape.input_len()];
    reference::pool::max_pool2d_backward(shape, &abs_dy, indices, &mut magnitude);
    let windows_per_element = shape.kernel.div_ceil(shape.stride).pow(2);
    let factor = if shape.overlapping() {
        gamma(windows_per_element)
    } else {
        0.0
    };
    magnitude.iter().map(|&m| factor * m as f64).collect()
}

/// Runs max pool backward on the GPU in each layout and holds dx to `want` within `tolerance`.
fn check_max_pool_backward(
    shape: &Pool2dShape,
    dropout: Option<&Dropout>,
    buffers: (&[f32], &[u32], Option<&[f32]>),
    want: &[f32],
    tolerance: &[f64],
) {
    let (dy, indices, relu_gate) = buffers;
    let (dy, indices) = (upload(dy), upload_u32(indices));
    let y = relu_gate.map(upload);
    for layout in PoolLayout::ALL {
        let dx = upload(&vec![f32::NAN; shape.input_len()]); // every element must be written
        let buffers = MaxPoolBackwardBuffers {
            dy: &dy,
            indices: &indices,
            dx: &dx,
            relu_gate: y.as_ref(),
        };
        let dispatch = max_pool2d_backward(gpu(), shape, layout, dropout, buffers)
            .expect("max_pool2d_backward builds");
        run(&[&dispatch]);
        let what = format!("dx {layout:?} {shape:?}");
        assert_within(&what, &read(&dx), want, tolerance);
    }
}

/// The output sizes PyTorch gives (its formula, and the models' layers), and its refusals.
#[test]
fn pool_shape_follows_pytorch_sizes_and_rules() {
    let sizes = |shape: Pool2dShape| (shape.out_height(), shape.out_width());
    assert_eq!(sizes(pool(1, 1, 24, 24, 3, 2).with_padding(1)), (12, 12));
    assert_eq!(sizes(pool(1, 1, 6, 6, 5, 1)), (2, 2));
    assert_eq!(sizes(pool(1, 1, 48, 48, 5, 2)), (22, 22));
    assert_eq!(sizes(pool(1, 1, 7, 8, 2, 2)), (3, 4));
    assert_eq!(sizes(pool(1, 1, 7, 8, 2, 2).with_ceil_mode()), (4, 4));
    // Ceil mode would give 3 columns over 2 + 3 + 2 (padded); the third would start in the
    // right padding, so PyTorch drops it.
    assert_eq!(
        sizes(pool(1, 1, 2, 3, 2, 2).with_padding(1).with_ceil_mode()),
        (2, 2)
    );
    assert_eq!(
        sizes(pool(1, 1, 10, 7, 4, 3).with_padding(2).with_ceil_mode()),
        (4, 3)
    );
    for refused in [
        pool(1, 1, 5, 5, 3, 1).with_padding(2), // padding over half the window
        pool(1, 1, 2, 5, 5, 1).with_padding(1), // window taller than the padded input
        pool(1, 1, 5, 5, 0, 1),
        pool(1, 1, 5, 5, 2, 0),
    ] {
        assert!(refused.check().is_err(), "{refused:?} passes the check");
    }
    assert!(pool(1, 1, 1, 1, 3, 1).with_padding(1).check().is_ok());
}

/// The padding is −∞: it never wins, even against negative inputs, and a window's index is
/// within the unpadded plane. Checked by hand: windows cover rows {0}, {1} and columns {0},
/// {1, 2} of x = [[−5, −3, −4], [−2, −6, −1]].
#[test]
fn max_pool_twin_never_picks_the_padding() {
    let shape = pool(1, 1, 2, 3, 2, 2).with_padding(1);
    let x = [-5.0, -3.0, -4.0, -2.0, -6.0, -1.0];
    let (mut y, mut indices) = ([0.0; 4], [0; 4]);
    reference::pool::max_pool2d(&shape, &x, &mut y, &mut indices);
    assert_eq!(y, [-5.0, -3.0, -2.0, -1.0]);
    assert_eq!(indices, [0, 1, 3, 5]);
}

#[test]
fn max_pool_backward_matches_reference() {
    for shape in max_pool_shapes() {
        let x = random(seed_of(&shape), shape.input_len());
        let dy = random(seed_of(&shape) + 1, shape.output_len());
        let mut y = vec![0.0; shape.output_len()];
        let mut indices = vec![0; shape.output_len()];
        reference::pool::max_pool2d(&shape, &x, &mut y, &mut indices);
        let mut want = vec![0.0; shape.input_len()];
        reference::pool::max_pool2d_backward(&shape, &dy, &indices, &mut want);
        let tolerance = routed_tolerance(&shape, &dy, &indices);
        check_max_pool_backward(&shape, None, (&dy, &indices, None), &want, &tolerance);
    }
}

/// A ReLU's output as the input (half of it 0, so some windows win with 0): backward with the
/// ReLU's gate against the max pool's backward, then the ReLU's.
#[test]
fn max_pool_backward_applies_the_relu_gate_of_its_input() {
    let mut gated_windows = 0;
    for shape in max_pool_shapes() {
        let x = reference::elementwise::relu(&random(seed_of(&shape), shape.input_len()));
        let dy = random(seed_of(&shape) + 1, shape.output_len());
        let mut y = vec![0.0; shape.output_len()];
        let mut indices = vec![0; shape.output_len()];
        reference::pool::max_pool2d(&shape, &x, &mut y, &mut indices);
        gated_windows += y.iter().filter(|&&v| v == 0.0).count();
        let mut routed = vec![0.0; shape.input_len()];
        reference::pool::max_pool2d_backward(&shape, &dy, &indices, &mut routed);
        let want = reference::elementwise::relu_backward(&x, &routed);
        let tolerance = routed_tolerance(&shape, &dy, &indices);
        check_max_pool_backward(&shape, None, (&dy, &indices, Some(&y)), &want, &tolerance);
    }
    assert!(
        gated_windows > 0,
        "no window won with 0: the gate goes untested"
    );
}

/// What a max pool with a fused dropout gives for the plain pool's `y` and `indices`: the
/// dropout's output, and u32::MAX, no winner, for each dropped window.
fn dropped_windows(dropout: &Dropout, y: &[f32], indices: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let indices = indices
        .iter()
        .enumerate()
        .map(|(i, &winner)| {
            if dropout.keeps(i as u32) {
                winner
            } else {
                u32::MAX
            }
        })
        .collect();
    (reference::elementwise::dropout(dropout, y), indices)
}

/// Max pool then dropout, as one kernel: the forward against the twins run one after the
/// other (a dropped window's index is u32::MAX), the backward against their backward passes
/// (dropout's, then max pool's with the plain indices), on every shape and in both layouts.
#[test]
fn max_pool_with_fused_dropout_matches_pool_then_dropout() {
    for shape in max_pool_shapes() {
        let dropout = Dropout::new(0.25, seed_of(&shape) ^ 0x5eed);
        let x = random(seed_of(&shape), shape.input_len());
        let dy = random(seed_of(&shape) + 1, shape.output_len());
        let mut pooled = vec![0.0; shape.output_len()];
        let mut indices = vec![0; shape.output_len()];
        reference::pool::max_pool2d(&shape, &x, &mut pooled, &mut indices);
        let (want_y, want_indices) = dropped_windows(&dropout, &pooled, &indices);
        let dropped = want_indices.iter().filter(|&&i| i == u32::MAX).count();
        assert!(
            dropped > 0 || shape.output_len() < 8,
            "{shape:?}: the mask drops nothing"
        );
        let dy_pooled = reference::elementwise::dropout(&dropout, &dy);
        let mut want_dx = vec![0.0; shape.input_len()];
        reference::pool::max_pool2d_backward(&shape, &dy_pooled, &indices, &mut want_dx);
        let tolerance = routed_tolerance(&shape, &dy_pooled, &indices);
        let want = (&want_y[..], &want_indices[..]);
        check_gpu_max_pool("dropout", &shape, Some(&dropout), (&x, None), want);
        // Backward takes no mask (any seed will do): the indices hold it.
        check_max_pool_backward(
            &shape,
            Some(&Dropout::new(0.25, 0)),
            (&dy, &want_indices, None),
            &want_dx,
            &tolerance,
        );
    }
}

/// A batch norm's input through its deferred map (scale, mean, β, 0) per channel, then the
/// ReLU, against the twin on that output computed on the CPU, alone and with a dropout. The
/// values are multiples of 1/16 with power-of-two scales, so every step is exact in f32 and a
/// fused or unfused multiply-add gives the same bits.
#[test]
fn max_pool_reads_a_batch_norm_output_through_its_map() {
    for shape in max_pool_shapes() {
        let seed = seed_of(&shape) + 7;
        let sixteenths = |n: usize, seed: u64| -> Vec<f32> {
            let mut rng = Rng::new(seed);
            (0..n)
                .map(|_| (rng.below(65) as f32 - 32.0) / 16.0)
                .collect()
        };
        let x = sixteenths(shape.input_len(), seed);
        let (means, betas) = (
            sixteenths(shape.channels, seed + 1),
            sixteenths(shape.channels, seed + 2),
        );
        let scales: Vec<f32> = (0..shape.channels)
            .map(|c| [0.5, 2.0, -1.0, 0.25][c % 4])
            .collect();
        let map: Vec<f32> = (0..shape.channels)
            .flat_map(|c| [scales[c], means[c], betas[c], 0.0])
            .collect();
        let plane = shape.height * shape.width;
        let normalised: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i / plane % shape.channels;
                (scales[c] * (v - means[c]) + betas[c]).max(0.0)
            })
            .collect();
        let mut want_y = vec![0.0; shape.output_len()];
        let mut want_indices = vec![0; shape.output_len()];
        reference::pool::max_pool2d(&shape, &normalised, &mut want_y, &mut want_indices);
        let inputs = (&x[..], Some(&map[..]));
        check_gpu_max_pool("map", &shape, None, inputs, (&want_y, &want_indices));
        let dropout = Dropout::new(0.25, seed);
        let (dropped_y, dropped_indices) = dropped_windows(&dropout, &want_y, &want_indices);
        let want = (&dropped_y[..], &dropped_indices[..]);
        check_gpu_max_pool("map and dropout", &shape, Some(&dropout), inputs, want);
    }
}

/// A shuffled grid of values 1/64 apart, probed with steps of 1/512: no window's argmax can
/// change, so each output moves exactly with its input and the differences are exact.
#[test]
fn max_pool_backward_twin_is_the_gradient_of_the_forward_twin() {
    for shape in [
        pool(2, 3, 7, 9, 2, 2),
        pool(1, 2, 9, 8, 3, 2),
        pool(1, 1, 8, 7, 2, 3),
        pool(1, 2, 9, 8, 3, 2).with_padding(1),
        pool(2, 1, 7, 8, 3, 2).with_padding(1).with_ceil_mode(),
    ] {
        let mut x: Vec<f32> = (0..shape.input_len())
            .map(|i| (i as f32 - 100.0) / 64.0)
            .collect();
        Rng::new(seed_of(&shape)).shuffle(&mut x);
        let r = random(seed_of(&shape) + 1, shape.output_len()); // dL/dy
        let forward = |x: &[f32]| {
            let mut y = vec![0.0; shape.output_len()];
            let mut indices = vec![0; shape.output_len()];
            reference::pool::max_pool2d(&shape, x, &mut y, &mut indices);
            (y, indices)
        };
        let (_, indices) = forward(&x);
        let mut analytic = vec![0.0; shape.input_len()];
        reference::pool::max_pool2d_backward(&shape, &r, &indices, &mut analytic);
        let numeric = numeric_gradient(&x, 1.0 / 512.0, |x| dot(&forward(x).0, &r));
        assert_gradient(&format!("dx {shape:?}"), &analytic, &numeric, 1e-6, 1e-6);
    }
}

/// Planes from 1×1 to 48×48 on both sides of the one-invocation-per-plane limit (256),
/// plane counts below and above a workgroup, odd H·W.
fn global_pool_shapes() -> Vec<GlobalPoolShape> {
    [
        (1, 1, 1, 1),
        (1, 1, 7, 5),
        (2, 5, 3, 3),
        (4, 37, 3, 3),
        (2, 3, 16, 16),
        (3, 4, 17, 19),
        (1, 2, 48, 48),
    ]
    .into_iter()
    .map(|(batch, channels, height, width)| GlobalPoolShape {
        batch,
        channels,
        height,
        width,
    })
    .collect()
}

#[test]
fn global_avg_pool_matches_reference() {
    for shape in global_pool_shapes() {
        let x = random(shape.input_len() as u64, shape.input_len());
        let mut want = vec![0.0; shape.planes()];
        reference::pool::global_avg_pool(&shape, &x, &mut want);
        let abs_x: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let mut mean_abs = vec![0.0; shape.planes()];
        reference::pool::global_avg_pool(&shape, &abs_x, &mut mean_abs);
        let tolerance: Vec<f64> = want
            .iter()
            .zip(&mean_abs)
            .map(|(&y, &m)| gamma(shape.plane_len()) * m as f64 + 6.0 * U * y.abs() as f64)
            .collect();

        let y = upload(&vec![f32::NAN; shape.planes()]);
        let dispatch =
            global_avg_pool(gpu(), &shape, &upload(&x), &y).expect("global_avg_pool builds");
        run(&[&dispatch]);
        assert_within(&format!("y {shape:?}"), &read(&y), &want, &tolerance);
    }
}

#[test]
fn global_avg_pool_backward_matches_reference() {
    for shape in global_pool_shapes() {
        let dy = random(shape.planes() as u64 + 5, shape.planes());
        let mut want = vec![0.0; shape.input_len()];
        reference::pool::global_avg_pool_backward(&shape, &dy, &mut want);
        let tolerance: Vec<f64> = want.iter().map(|&v| 6.0 * U * v.abs() as f64).collect();

        let dx = upload(&vec![f32::NAN; shape.input_len()]);
        let dispatch = global_avg_pool_backward(gpu(), &shape, &upload(&dy), &dx)
            .expect("global_avg_pool_backward builds");
        run(&[&dispatch]);
        assert_within(&format!("dx {shape:?}"), &read(&dx), &want, &tolerance);
    }
}

/// The mean is linear, so central differences are exact but for the rounding of the f32
/// outputs: one output moves per probe, by ≤ 2 ulps of a value ≤ 1, over a step of 1/4.
#[test]
fn global_avg_pool_backward_twin_is_the_gradient_of_the_forward_twin() {
    let shape = GlobalPoolShape {
        batch: 2,
        channels: 3,
        height: 5,
        width: 7,
    };
    let x = random(41, shape.input_len());
    let r = random(42, shape.planes()); // dL/dy
    let forward = |x: &[f32]| {
        let mut y = vec![0.0; shape.planes()];
        reference::pool::global_avg_pool(&shape, x, &mut y);
        y
    };
    let mut analytic = vec![0.0; shape.input_len()];
    reference::pool::global_avg_pool_backward(&shape, &r, &mut analytic);
    let numeric = numeric_gradient(&x, 0.125, |x| dot(&forward(x), &r));
    assert_gradient("dx", &analytic, &numeric, 1e-5, 1e-5);
}

/// Windows with padding 0 and 1, floor and ceil mode (with a last window past the input, and
/// PyTorch's rule dropping one that would start in the right padding), k > s, k < s, the
/// models' k5/s1 on 6×6 and k5/s2 on 48×48, batch 3, 5 channels, a 1×1 plane.
fn avg_pool_shapes() -> Vec<Pool2dShape> {
    vec![
        pool(3, 5, 7, 9, 3, 2).with_padding(1),
        pool(2, 3, 6, 6, 5, 1),
        pool(2, 4, 48, 48, 5, 2),
        pool(1, 2, 5, 6, 2, 2).with_padding(1).with_ceil_mode(),
        pool(2, 3, 7, 8, 3, 2).with_ceil_mode(),
        pool(2, 3, 10, 7, 4, 3).with_padding(2).with_ceil_mode(),
        pool(3, 2, 9, 11, 2, 3),
        pool(1, 1, 1, 1, 1, 1),
    ]
}

/// Inputs that shrink, keep and grow the plane, overlapping windows (10 → 3), batch 3,
/// 5 channels.
fn adaptive_shapes() -> Vec<AdaptivePoolShape> {
    [
        (3, 5, 7, 9, 3, 4),
        (2, 3, 10, 10, 3, 3),
        (1, 2, 5, 7, 5, 7),
        (2, 3, 4, 3, 7, 5),
        (2, 4, 48, 48, 2, 3),
        (1, 1, 1, 1, 2, 2),
    ]
    .into_iter()
    .map(
        |(batch, channels, height, width, out_height, out_width)| AdaptivePoolShape {
            batch,
            channels,
            height,
            width,
            out_height,
            out_width,
        },
    )
    .collect()
}

/// An average pool as the tests see it: the sizes, the twins, the GPU calls and the most
/// elements per window (m) and windows per element (t) the tolerances need.
trait Average: std::fmt::Debug {
    fn lens(&self) -> (usize, usize);
    fn twin(&self, x: &[f32], y: &mut [f32]);
    fn twin_backward(&self, dy: &[f32], dx: &mut [f32]);
    fn on_gpu(&self, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch, GpuError>;
    fn on_gpu_backward(
        &self,
        layout: PoolLayout,
        dy: &GpuBuffer,
        dx: &GpuBuffer,
    ) -> Result<Dispatch, GpuError>;
    fn most_per_window(&self) -> usize;
    fn most_windows_per_element(&self) -> usize;
}

impl Average for Pool2dShape {
    fn lens(&self) -> (usize, usize) {
        (self.input_len(), self.output_len())
    }
    fn twin(&self, x: &[f32], y: &mut [f32]) {
        reference::pool::avg_pool2d(self, x, y)
    }
    fn twin_backward(&self, dy: &[f32], dx: &mut [f32]) {
        reference::pool::avg_pool2d_backward(self, dy, dx)
    }
    fn on_gpu(&self, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch, GpuError> {
        avg_pool2d(gpu(), self, x, y)
    }
    fn on_gpu_backward(
        &self,
        layout: PoolLayout,
        dy: &GpuBuffer,
        dx: &GpuBuffer,
    ) -> Result<Dispatch, GpuError> {
        avg_pool2d_backward(gpu(), self, layout, dy, dx)
    }
    fn most_per_window(&self) -> usize {
        self.kernel * self.kernel
    }
    fn most_windows_per_element(&self) -> usize {
        self.kernel.div_ceil(self.stride).pow(2)
    }
}

impl Average for AdaptivePoolShape {
    fn lens(&self) -> (usize, usize) {
        (self.input_len(), self.output_len())
    }
    fn twin(&self, x: &[f32], y: &mut [f32]) {
        reference::pool::adaptive_avg_pool2d(self, x, y)
    }
    fn twin_backward(&self, dy: &[f32], dx: &mut [f32]) {
        reference::pool::adaptive_avg_pool2d_backward(self, dy, dx)
    }
    fn on_gpu(&self, x: &GpuBuffer, y: &GpuBuffer) -> Result<Dispatch, GpuError> {
        adaptive_avg_pool2d(gpu(), self, x, y)
    }
    fn on_gpu_backward(
        &self,
        layout: PoolLayout,
        dy: &GpuBuffer,
        dx: &GpuBuffer,
    ) -> Result<Dispatch, GpuError> {
        adaptive_avg_pool2d_backward(gpu(), self, layout, dy, dx)
    }
    // A window spans at most ⌈extent/out⌉ + 1 positions per axis, and a position lies in at
    // most ⌈out/extent⌉ + 1 windows.
    fn most_per_window(&self) -> usize {
        (self.height.div_ceil(self.out_height) + 1) * (self.width.div_ceil(self.out_width) + 1)
    }
    fn most_windows_per_element(&self) -> usize {
        (self.out_height.div_ceil(self.height) + 1) * (self.out_width.div_ceil(self.width) + 1)
    }
}

/// Forward and backward (in both layouts) of `pool` on the GPU against its twins, every
/// output written.
fn check_average(pool: &dyn Average, seed: u64) {
    let (input_len, output_len) = pool.lens();
    let x = random(seed, input_len);
    let mut want = vec![0.0; output_len];
    pool.twin(&x, &mut want);
    let mut mean_abs = vec![0.0; output_len];
    pool.twin(&abs(&x), &mut mean_abs);
    let tolerance: Vec<f64> = want
        .iter()
        .zip(&mean_abs)
        .map(|(&y, &m)| gamma(pool.most_per_window()) * m as f64 + 6.0 * U * y.abs() as f64)
        .collect();
    let y = upload(&vec![f32::NAN; output_len]);
    run(&[&pool.on_gpu(&upload(&x), &y).expect("average pool builds")]);
    assert_within(&format!("y {pool:?}"), &read(&y), &want, &tolerance);

    let dy = random(seed + 1, output_len);
    let mut want = vec![0.0; input_len];
    pool.twin_backward(&dy, &mut want);
    let mut shares = vec![0.0; input_len];
    pool.twin_backward(&abs(&dy), &mut shares);
    let factor = gamma(pool.most_windows_per_element()) + 6.0 * U;
    let tolerance: Vec<f64> = shares.iter().map(|&m| factor * m as f64).collect();
    let dy = upload(&dy);
    for layout in PoolLayout::ALL {
        let dx = upload(&vec![f32::NAN; input_len]);
        run(&[&pool
            .on_gpu_backward(layout, &dy, &dx)
            .expect("average pool backward builds")]);
        assert_within(
            &format!("dx {layout:?} {pool:?}"),
            &read(&dx),
            &want,
            &tolerance,
        );
    }
}

#[test]
fn avg_pool_matches_reference() {
    for shape in avg_pool_shapes() {
        check_average(&shape, seed_of(&shape));
    }
}

#[test]
fn adaptive_avg_pool_matches_reference() {
    for shape in adaptive_shapes() {
        check_average(&shape, shape.input_len() as u64 + 3);
    }
}

/// PyTorch's values, by hand: count_include_pad divides a corner of 3×3 ones by 9 (4/9),
/// ceil mode's last window over [[3], [6]] divides by the 2 elements it reaches, adaptive
/// windows of 5 → 3 are [0, 2), [1, 4), [3, 5).
#[test]
fn average_twins_follow_pytorch_by_hand() {
    let mut y = [0.0; 9];
    reference::pool::avg_pool2d(&pool(1, 1, 3, 3, 3, 1).with_padding(1), &[1.0; 9], &mut y);
    let (corner, edge) = (4.0 / 9.0, 6.0 / 9.0);
    assert_eq!(
        y,
        [corner, edge, corner, edge, 1.0, edge, corner, edge, corner]
    );
    let mut y = [0.0; 2];
    let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    reference::pool::avg_pool2d(&pool(1, 1, 2, 3, 2, 2).with_ceil_mode(), &x, &mut y);
    assert_eq!(y, [3.0, 4.5]);
    let mut y = [0.0; 3];
    let adaptive = AdaptivePoolShape {
        batch: 1,
        channels: 1,
        height: 1,
        width: 5,
        out_height: 1,
        out_width: 3,
    };
    reference::pool::adaptive_avg_pool2d(&adaptive, &[1.0, 2.0, 3.0, 4.0, 5.0], &mut y);
    assert_eq!(y, [1.5, 3.0, 4.5]);
}

/// To 1×1 the adaptive pool is the global one: the same bits from the twins, and from the GPU
/// (planes past 256 elements take the global pool's workgroup tree, whose order a
/// window-per-invocation sum would not reproduce).
#[test]
fn adaptive_avg_pool_to_one_is_the_global_pool() {
    for global in global_pool_shapes() {
        let adaptive = AdaptivePoolShape {
            batch: global.batch,
            channels: global.channels,
            height: global.height,
            width: global.width,
            out_height: 1,
            out_width: 1,
        };
        let x = random(global.input_len() as u64 + 11, global.input_len());
        let (mut want, mut got) = (vec![0.0; global.planes()], vec![0.0; global.planes()]);
        reference::pool::global_avg_pool(&global, &x, &mut want);
        reference::pool::adaptive_avg_pool2d(&adaptive, &x, &mut got);
        assert_bits_eq(&format!("twin {adaptive:?}"), &got, &want);

        let gx = upload(&x);
        let (global_y, adaptive_y) = (zeros(global.planes()), zeros(global.planes()));
        let dy = upload(&random(global.planes() as u64, global.planes()));
        let (global_dx, adaptive_dx) = (zeros(global.input_len()), zeros(global.input_len()));
        run(&[
            &global_avg_pool(gpu(), &global, &gx, &global_y).expect("global pool builds"),
            &adaptive_avg_pool2d(gpu(), &adaptive, &gx, &adaptive_y).expect("adaptive builds"),
            &global_avg_pool_backward(gpu(), &global, &dy, &global_dx)
                .expect("global backward builds"),
            &adaptive_avg_pool2d_backward(gpu(), &adaptive, PoolLayout::Rows, &dy, &adaptive_dx)
                .expect("adaptive backward builds"),
        ]);
        let what = format!("{adaptive:?}");
        assert_bits_eq(&format!("y {what}"), &read(&adaptive_y), &read(&global_y));
        assert_bits_eq(
            &format!("dx {what}"),
            &read(&adaptive_dx),
            &read(&global_dx),
        );
    }
}

/// Average pools are linear: central differences are exact but for the f32 rounding of the
/// outputs (≤ u each for values ≤ 1): at most t outputs move per probe, so the error is at
/// most t·2u/(2·step) = t·8u with a step of 1/8, under 1e-5 for the t ≤ 4 here.
#[test]
fn average_backward_twins_are_the_gradients_of_the_forward_twins() {
    let fixed = [
        pool(2, 3, 7, 9, 3, 2).with_padding(1),
        pool(1, 2, 7, 8, 3, 2).with_ceil_mode(),
        pool(1, 2, 6, 6, 5, 1),
    ];
    let adaptive = [adaptive_shapes()[0], adaptive_shapes()[1]];
    let pools = fixed
        .iter()
        .map(|shape| shape as &dyn Average)
        .chain(adaptive.iter().map(|shape| shape as &dyn Average));
    for pool in pools {
        let (input_len, output_len) = pool.lens();
        let x = random(input_len as u64, input_len);
        let r = random(output_len as u64, output_len); // dL/dy
        let forward = |x: &[f32]| {
            let mut y = vec![0.0; output_len];
            pool.twin(x, &mut y);
            y
        };
        let mut analytic = vec![0.0; input_len];
        pool.twin_backward(&r, &mut analytic);
        let numeric = numeric_gradient(&x, 0.125, |x| dot(&forward(x), &r));
        assert_gradient(&format!("dx {pool:?}"), &analytic, &numeric, 1e-5, 1e-5);
    }
}
