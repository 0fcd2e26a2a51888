//! elementwise: every kernel against its twin for n = 1, 3 (a partial quad), 255, 257, 1023,
//! 1029 (around the workgroup's 256 quads) and 70 001 (on a software adapter, where each
//! invocation walks 8 quads a grid apart: nine workgroups, the last one partial); values past
//! n left untouched; dropout's mask bit for bit, its statistics and seeding; the grid
//! folding's index math; finite-difference checks of the relu, sigmoid and dropout backward
//! twins.
//!
//! Tolerances: relu, fill and masks are selections, exact. add, scale and dropout's x·(1/(1−p))
//! are one correctly rounded f32 operation (WGSL), and the twin's f32 operation is the same
//! correctly rounded result, so they must match exactly. axpy is two operations the GPU may
//! or may not fuse: within 2u·(|a·x| + |y|) of the once-rounded value.
//!
//! sigmoid: WGSL's exp is within 3 + 2|x| ulp (≤ (6 + 4|x|)u relative) and its division within
//! 2.5 ulp (≤ 5u); e = e^−|x| enters y = e/(1 + e) once and its share (≤ ½) of 1 + e once
//! more, so y is within (9 + 6|x|)u + u (1 + e) + 5u, plus u for the twin's rounding:
//! (16 + 6|x|)u·|y|, and 2^−126 absolute since WGSL may flush subnormal results to zero.
//! The twin is the f32 nearest the exact value, and torch.sigmoid (1/(1 + exp(−x)) in f32)
//! lies within a few ulp of it, so this bounds the distance to torch too. sigmoid_backward
//! is three correctly rounded operations against one rounding: 4u·|dx|, and 2^−126.

use fer::gpu::{workgroups_1d, GpuBuffer};
use fer::kernels::elementwise::{
    add, axpy, dropout, fill, relu, relu_backward, scale, sigmoid, sigmoid_backward, Dropout,
};
use fer::reference::elementwise as twin;

use crate::common::*;

const SIZES: &[usize] = &[1, 3, 255, 257, 1023, 1029, 70_001];

/// U(−1, 1) with a few exact zeros of both signs, where relu's kink is.
fn with_zeros(seed: u64, n: usize) -> Vec<f32> {
    let mut x = random(seed, n);
    for (k, v) in x.iter_mut().enumerate().step_by(7) {
        *v = if k % 2 == 0 { 0.0 } else { -0.0 };
    }
    x
}

#[test]
fn relu_and_backward_match_twin_exactly() {
    for &n in SIZES {
        let x = with_zeros(n as u64, n);
        let dy = random(n as u64 + 1, n);
        let (gx, gdy, y, dx) = (upload(&x), upload(&dy), zeros(n), zeros(n));
        run(&[
            &relu(gpu(), n, &gx, &y).expect("relu builds"),
            &relu_backward(gpu(), n, &gx, &gdy, &dx).expect("relu_backward builds"),
        ]);
        // −0.0 ≤ 0 gives +0.0 on both sides, so even the sign bits agree.
        assert_bits_eq(&format!("relu n={n}"), &read(&y), &twin::relu(&x));
        assert_bits_eq(
            &format!("relu_backward n={n}"),
            &read(&dx),
            &twin::relu_backward(&x, &dy),
        );
    }
}

/// The smallest normal f32: WGSL may flush anything smaller to zero.
const SMALLEST_NORMAL: f64 = f32::MIN_POSITIVE as f64;

/// Zero of both signs, tiny values, the ends of f32's exp range (±88), then U(−12, 12).
fn sigmoid_inputs(n: usize) -> Vec<f32> {
    let special = [
        0.0, -0.0, 1e-7, -1e-7, 20.0, -20.0, 88.0, -88.0, 100.0, -100.0,
    ];
    let mut x: Vec<f32> = random(n as u64 + 3, n).iter().map(|v| 12.0 * v).collect();
    let head = special.len().min(n);
    x[..head].copy_from_slice(&special[..head]);
    x
}

#[test]
fn sigmoid_and_backward_match_twin() {
    for &n in SIZES {
        let x = sigmoid_inputs(n);
        let y = twin::sigmoid(&x);
        let dy = random(n as u64 + 1, n);
        let (gx, gy, gdy, out, dx) = (upload(&x), upload(&y), upload(&dy), zeros(n), zeros(n));
        run(&[
            &sigmoid(gpu(), n, &gx, &out).expect("sigmoid builds"),
            &sigmoid_backward(gpu(), n, &gy, &gdy, &dx).expect("sigmoid_backward builds"),
        ]);
        let tolerance: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| (16.0 + 6.0 * x.abs() as f64) * U * y as f64 + SMALLEST_NORMAL)
            .collect();
        assert_within(&format!("sigmoid n={n}"), &read(&out), &y, &tolerance);
        let want = twin::sigmoid_backward(&y, &dy);
        let tolerance: Vec<f64> = want
            .iter()
            .map(|&v| 4.0 * U * v.abs() as f64 + SMALLEST_NORMAL)
            .collect();
        assert_within(
            &format!("sigmoid_backward n={n}"),
            &read(&dx),
            &want,
            &tolerance,
        );
    }
}

/// Known values, f32-rounded: σ(0) = ½, σ(±2), σ(40) rounds to 1, and σ(−100) ≈ e^−100 =
/// 3.72e−44, a subnormal the twin keeps to its spacing of 1.4e−45.
#[test]
fn sigmoid_twin_known_values() {
    let y = twin::sigmoid(&[0.0, 2.0, -2.0, 40.0, -100.0]);
    assert_eq!(y[..4], [0.5, 0.880_797_1, 0.119_202_92, 1.0]);
    assert!((y[4] as f64 - (-100.0f64).exp()).abs() < 1e-45, "{}", y[4]);
}

fn gpu_dropout(n: usize, d: &Dropout, x: &[f32]) -> Vec<f32> {
    let y = zeros(n);
    run(&[&dropout(gpu(), n, d, &upload(x), &y).expect("dropout builds")]);
    read(&y)
}

#[test]
fn dropout_matches_twin_bit_for_bit() {
    for &n in SIZES {
        for p in [0.0, 0.1, 0.5, 0.9, 1.0] {
            // The seed's high word is part of the counter, so exercise it too.
            let d = Dropout::new(p, 0x1234_5678_9abc_def0 ^ n as u64);
            let x = random(n as u64, n);
            assert_bits_eq(
                &format!("dropout n={n} {d:?}"),
                &gpu_dropout(n, &d, &x),
                &twin::dropout(&d, &x),
            );
        }
    }
}

#[test]
fn dropout_with_p_zero_is_identity() {
    let x = random(5, 257);
    assert_bits_eq("p = 0", &gpu_dropout(257, &Dropout::new(0.0, 42), &x), &x);
}

/// The kept count is Binomial(n, 1/2): within 5σ = 5·√(n/4) of n/2 unless the hash is biased.
#[test]
fn dropout_keeps_half_at_p_half() {
    let n = 100_000;
    let y = gpu_dropout(n, &Dropout::new(0.5, 7), &vec![1.0; n]);
    assert!(
        y.iter().all(|&v| v == 0.0 || v == 2.0),
        "survivors scale by 2"
    );
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
    let sigma = (n as f64 * 0.25).sqrt();
    assert!(
        (kept - n as f64 / 2.0).abs() <= 5.0 * sigma,
        "kept {kept} of {n}"
    );
}

/// Same seed, same mask (forward and backward agree); a seed differing in either word gives
/// an unrelated mask: about half the elements differ.
#[test]
fn dropout_mask_follows_the_seed() {
    let n = 20_000;
    let ones = vec![1.0; n];
    let mask = |seed| gpu_dropout(n, &Dropout::new(0.5, seed), &ones);
    let base = mask(0xdead_beef_0000_0001);
    assert_bits_eq("same seed", &mask(0xdead_beef_0000_0001), &base);
    let sigma = (n as f64 * 0.25).sqrt();
    for other in [0xdead_beef_0000_0002, 0xdead_bef0_0000_0001] {
        let differ = mask(other)
            .iter()
            .zip(&base)
            .filter(|(a, b)| a != b)
            .count() as f64;
        assert!(
            (differ - n as f64 / 2.0).abs() <= 5.0 * sigma,
            "seed {other:#x}: {differ} of {n} elements differ"
        );
    }
}

/// Random123's known-answer vectors for philox2x32-10 (kat_vectors).
#[test]
fn philox_twin_matches_random123_known_answers() {
    assert_eq!(twin::philox2x32([0, 0], 0), [0xff1dae59, 0x6cd10df2]);
    assert_eq!(
        twin::philox2x32([0xffffffff, 0xffffffff], 0xffffffff),
        [0x2c3f628b, 0xab4fd7ad]
    );
    assert_eq!(
        twin::philox2x32([0x243f6a88, 0x85a308d3], 0x13198a2e),
        [0xdd7ce038, 0xf62a4c12]
    );
}

#[test]
fn add_scale_fill_axpy_match_twin() {
    for &n in SIZES {
        let x = random(n as u64, n);
        let y = random(n as u64 + 1, n);
        let (gx, gy, z) = (upload(&x), upload(&y), zeros(n));
        let a = -0.7f32;
        let scaled = upload(&x);
        let filled = zeros(n);
        run(&[
            &add(gpu(), n, &gx, &gy, &z).expect("add builds"),
            &scale(gpu(), n, a, &scaled).expect("scale builds"),
            &fill(gpu(), n, 2.5, &filled).expect("fill builds"),
            &axpy(gpu(), n, a, &gx, &gy).expect("axpy builds"),
        ]);
        assert_bits_eq(&format!("add n={n}"), &read(&z), &twin::add(&x, &y));
        let mut want = x.clone();
        twin::scale(a, &mut want);
        assert_bits_eq(&format!("scale n={n}"), &read(&scaled), &want);
        assert_bits_eq(&format!("fill n={n}"), &read(&filled), &vec![2.5; n]);
        let mut want = y.clone();
        twin::axpy(a, &x, &mut want);
        let tolerance: Vec<f64> = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| 2.0 * U * ((a * x).abs() + y.abs()) as f64)
            .collect();
        assert_within(&format!("axpy n={n}"), &read(&gy), &want, &tolerance);
    }
}

/// Each kernel writes whole quads; in the last one, the values past n must come back as they
/// were (the buffer may be longer than n, e.g. a plan's buffer reused for a shorter batch).
#[test]
fn values_past_n_are_left_untouched() {
    for n in [1, 2, 3, 5, 6, 7] {
        let len = n + 6;
        let sentinel: Vec<f32> = (0..len).map(|i| 1000.0 + i as f32).collect();
        let x = random(n as u64, len);
        let gx = upload(&x);
        let outputs: Vec<GpuBuffer> = (0..9).map(|_| upload(&sentinel)).collect();
        let d = Dropout::new(0.5, 7);
        run(&[
            &relu(gpu(), n, &gx, &outputs[0]).expect("relu builds"),
            &relu_backward(gpu(), n, &gx, &gx, &outputs[1]).expect("relu_backward builds"),
            &dropout(gpu(), n, &d, &gx, &outputs[2]).expect("dropout builds"),
            &add(gpu(), n, &gx, &gx, &outputs[3]).expect("add builds"),
            &scale(gpu(), n, 2.0, &outputs[4]).expect("scale builds"),
            &fill(gpu(), n, 0.0, &outputs[5]).expect("fill builds"),
            &axpy(gpu(), n, 1.0, &gx, &outputs[6]).expect("axpy builds"),
            &sigmoid(gpu(), n, &gx, &outputs[7]).expect("sigmoid builds"),
            &sigmoid_backward(gpu(), n, &gx, &gx, &outputs[8]).expect("sigmoid_backward builds"),
        ]);
        for (k, output) in outputs.iter().enumerate() {
            let got = read(output);
            assert_ne!(
                got[..n],
                sentinel[..n],
                "kernel {k}, n={n}: nothing was written"
            );
            assert_bits_eq(
                &format!("kernel {k}, n={n}, past n"),
                &got[n..],
                &sentinel[n..],
            );
        }
    }
}

/// The grid past 65 535 workgroups, as index math: a GPU run needs > 16.7M elements (~1.5 s on
/// lavapipe). The shader's `(wid.x + wid.y·nwg.x)·256 + lid` must reach every element of
/// `count` workgroups with no grid dimension over the limit; the excess is bounds-checked.
#[test]
fn folded_grid_covers_every_workgroup() {
    for count in [1, 65_535, 65_536, 131_071, 200_000, 1 << 20] {
        let [x, y, z] = workgroups_1d(count);
        assert!(
            x <= 65_535 && y <= 65_535 && z == 1,
            "{count}: grid {x}×{y}"
        );
        let linear = x as usize * y as usize;
        assert!(linear >= count, "{count}: grid {x}×{y} is too small");
        // Rows are balanced, so the idle tail is less than one row of workgroups.
        assert!(
            linear - count < y as usize,
            "{count}: grid {x}×{y} wastes too much"
        );
    }
}

#[test]
fn relu_backward_twin_is_gradient_of_relu_twin() {
    // Inputs at least 0.1 from the kink, so a step of 1e-2 never crosses it.
    let x: Vec<f32> = random(3, 64)
        .iter()
        .map(|&v| if v >= 0.0 { v + 0.1 } else { v - 0.1 })
        .collect();
    let r = random(4, 64);
    let numeric = numeric_gradient(&x, 1e-2, |x| dot(&twin::relu(x), &r));
    // Piecewise linear: central differences are exact up to rounding.
    assert_gradient(
        "relu dx",
        &twin::relu_backward(&x, &r),
        &numeric,
        1e-5,
        1e-5,
    );
}

#[test]
fn dropout_backward_twin_is_gradient_of_dropout_twin() {
    let d = Dropout::new(0.3, 99);
    let x = random(5, 256);
    let r = random(6, 256);
    let numeric = numeric_gradient(&x, 1e-2, |x| dot(&twin::dropout(&d, x), &r));
    // Linear in x: exact up to rounding.
    assert_gradient("dropout dx", &twin::dropout(&d, &r), &numeric, 1e-5, 1e-5);
}

/// Central differences of Σ σ(x)·r with a step of 1/100: truncation h²/6·max|σ‴| = h²/48
/// ≈ 2e−6, and the f32 rounding of σ (≤ u) over 2h ≈ 6e−6; one output moves per probe.
#[test]
fn sigmoid_backward_twin_is_gradient_of_sigmoid_twin() {
    let x: Vec<f32> = random(7, 64).iter().map(|v| 6.0 * v).collect();
    let r = random(8, 64);
    let numeric = numeric_gradient(&x, 1e-2, |x| dot(&twin::sigmoid(x), &r));
    let analytic = twin::sigmoid_backward(&twin::sigmoid(&x), &r);
    assert_gradient("sigmoid dx", &analytic, &numeric, 2e-5, 1e-5);
}
