//! batchnorm: training forward (two successive steps, so the running statistics are checked
//! after an update of an update), evaluation forward and backward against the twins, on
//! batch 1 with S > 1, batch 2 with S = 1, channel counts of 1, 3 and 7, odd S (5×7),
//! m > 256 (the strided loops wrap), S = 1 on both of its kernels (columns for short batches,
//! a tree for long ones), and the models' shapes [64, 128] and [4, 8, 12, 12];
//! data around 1000 for the variance method; m = 1; finite differences of the backward twin;
//! a training forward that defers its output to a map (the same statistics, bit for bit).
//!
//! Tolerances, per channel with m = N·S terms, u = 2⁻²⁴, μ, σ² the exact batch statistics:
//! - mean: the training forward takes the statistics of x − s (s the channel's first value, so
//!   |x − s| ≤ 2·max|x − μ|) in one pass: Welford's update per lane (at most m updates, each
//!   a convex step of the running mean rounded four times: two subtractions, a product with a
//!   rounded 1/n, an addition), then at most 10 pairwise merges (Chan, Golub and LeVeque; three
//!   roundings each), and adds s back. A convex step does not grow the error it carries, so
//!   |μ̂ − μ| ≤ δ = γ_{4m+30}·2·max|x − μ| + 2u·|μ|. The 2u·|μ| is rounding μ itself to f32
//!   (near 1000, half an ulp is 3e-5); it dominates there. The columns kernel sums in two
//!   passes, well within the same bound.
//! - variance: the updating algorithm's sum of squared deviations is off by at most ~n·κ·u
//!   relative (Chan, Golub and LeVeque, 1983), κ = √(1 + (μ − s)²/σ²) the condition number of
//!   the shifted data; the merges and the division by m add a few u: |σ̂² − σ²| ≤
//!   γ_{4m+34}·κ·σ² + δ². The shift keeps κ small (|μ − s| is a deviation, not |μ|):
//!   E[x²] − E[x]² would be off by ~γ·μ², which the data around 1000 would expose.
//! - invstd = inverseSqrt(σ̂² + eps) (2 ULP = 4u in WGSL), relative error
//!   ε = (γ_{m+4}·σ² + δ²)/(2(σ² + eps)) + 6u (halved by the square root; rsqrt, +eps,
//!   the twin's rounding to f32).
//! - y = fma(γ·invstd, x − μ̂, β): |γ|·invstd·(δ + |x − μ|·(ε + 4u)) + 3u·(|γ·x̂| + |β|).
//! - backward sums: dβ to γ_m·Σ|dy|, dγ to γ_{m+3}·Σ|dy·x̂| (x̂ costs two roundings, the
//!   product one); dx = k·(m·dy − dβ − x̂·dγ) with k = γ·invstd/m: the two sums' errors
//!   carried through plus γ_8 of the magnitudes of the three terms.
//! - Σdx (SUM_DX, the layer before's bias gradient) against the exact sum of the kernel's own
//!   dx: γ_m·Σ|dx|; where the kernel walks columns, bit for bit column_sum's (rows in order).
//!
//! Each bound holds for any summation order; the f64 twins are exact to well within them.

use fer::gpu::GpuBuffer;
use fer::kernels::batchnorm::{
    backward, eval_forward, train_forward, BackwardBuffers, BatchNormConfig, BatchNormShape,
    Epilogue, EvalForwardBuffers, TrainForwardBuffers, TrainOutput,
};
use fer::kernels::reduce::{channel_sum, sums_columns, ChannelSumShape};
use fer::kernels::walks_columns;
use fer::reference::batchnorm::{self as twin, RunningStats, SavedStats};
use fer::reference::elementwise::{
    dropout as dropout_twin, relu as relu_twin, relu_backward as relu_backward_twin, Dropout,
};
use fer::rng::Rng;

use crate::common::*;

fn shape(batch: usize, channels: usize, spatial: usize) -> BatchNormShape {
    BatchNormShape {
        batch,
        channels,
        spatial,
    }
}

/// The shapes every kernel is held against its twin on: (batch, channels, spatial).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 3, 35),   // batch 1, a 5×7 image per channel
    (2, 7, 1),    // the smallest 1-d batch; columns, gathered (7 channels: a partial quad)
    (3, 1, 300),  // one channel, m = 900: a 16-wide workgroup, each invocation sums 57 values
    (9, 2, 1000), // m = 9000: the full 256-wide workgroup (see kernels::reduction_width)
    (64, 128, 1), // BatchNorm1d after a Linear layer of 128: columns, rows of whole quads
    (1100, 3, 1), // S = 1 but a batch too long to walk (kernels::walks_columns): the tree
    (4, 8, 144),  // BatchNorm2d on [4, 8, 12, 12]
    (5, 7, 35),   // nothing a multiple of anything
];

fn seed_of(shape: &BatchNormShape) -> u64 {
    (shape.batch * 1_000_003 + shape.channels * 1009 + shape.spatial) as u64
}

/// `len` values `offset + U(−1, 1)`.
fn data(seed: u64, len: usize, offset: f32) -> Vec<f32> {
    random(seed, len).iter().map(|v| v + offset).collect()
}

/// Exact statistics of one channel and the error bounds the module comment derives.
struct ChannelBounds {
    mean: f64,
    var: f64,
    invstd: f64,
    /// |μ̂ − μ|
    mean_error: f64,
    /// |σ̂² − σ²|
    var_error: f64,
    /// relative error of invstd
    invstd_error: f64,
}

fn channel_bounds(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[f32],
) -> Vec<ChannelBounds> {
    let m = shape.count();
    let eps = config.eps as f64;
    (0..shape.channels)
        .map(|c| {
            let values: Vec<f64> = (0..m).map(|i| x[shape.offset(c, i)] as f64).collect();
            let mean = values.iter().sum::<f64>() / m as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m as f64;
            let max_deviation = values.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
            let mean_error = gamma(4 * m + 30) * 2.0 * max_deviation + 2.0 * U * mean.abs();
            let shift = values[0];
            let condition = (1.0 + (mean - shift).powi(2) / var.max(f64::MIN_POSITIVE)).sqrt();
            let var_error = gamma(4 * m + 34) * condition * var + mean_error * mean_error;
            ChannelBounds {
                mean,
                var,
                invstd: 1.0 / (var + eps).sqrt(),
                mean_error,
                var_error,
                invstd_error: var_error / (2.0 * (var + eps)) + 6.0 * U,
            }
        })
        .collect()
}

/// The running statistics on the GPU, updated in place by each training step.
struct GpuRunning {
    mean: GpuBuffer,
    var: GpuBuffer,
}

impl GpuRunning {
    fn upload(running: &RunningStats) -> Self {
        GpuRunning {
            mean: upload(&running.mean),
            var: upload(&running.var),
        }
    }

    fn read(&self) -> RunningStats {
        RunningStats {
            mean: read(&self.mean),
            var: read(&self.var),
        }
    }
}

/// One training step on the GPU through `epilogue`: uploads x, runs, returns (y, saved
/// statistics); with `defer`, the per-channel map in place of y.
#[allow(clippy::too_many_arguments)]
fn gpu_train_step(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    epilogue: Epilogue,
    x: &[f32],
    gammas: &[f32],
    betas: &[f32],
    running: &GpuRunning,
    defer: bool,
) -> (Vec<f32>, SavedStats) {
    let y_len = if defer {
        4 * shape.channels
    } else {
        shape.len()
    };
    let (y, saved_mean, saved_invstd) =
        (zeros(y_len), zeros(shape.channels), zeros(shape.channels));
    let dispatch = train_forward(
        gpu(),
        shape,
        config,
        epilogue,
        TrainForwardBuffers {
            x: &upload(x),
            gamma: &upload(gammas),
            beta: &upload(betas),
            y: if defer {
                TrainOutput::Deferred(&y)
            } else {
                TrainOutput::Values(&y)
            },
            saved_mean: &saved_mean,
            saved_invstd: &saved_invstd,
            running_mean: &running.mean,
            running_var: &running.var,
        },
    )
    .expect("batchnorm_train_forward builds");
    run(&[&dispatch]);
    let saved = SavedStats {
        mean: read(&saved_mean),
        invstd: read(&saved_invstd),
    };
    (read(&y), saved)
}

/// A deferred output (a workgroup per channel only): the saved and running statistics bit for
/// bit those of the full forward, and per channel the map (γ·invstd, mean, β, 0) in place of y.
#[test]
fn train_forward_can_defer_its_output_to_a_map() {
    let config = BatchNormConfig::default();
    for &(batch, channels, spatial) in SHAPES {
        if walks_columns(batch, spatial) {
            continue;
        }
        let shape = shape(batch, channels, spatial);
        let seed = seed_of(&shape);
        let (gammas, betas) = (random(seed, channels), random(seed + 1, channels));
        let x = data(seed + 10, shape.len(), 0.0);
        let running = RunningStats {
            mean: random(seed + 2, channels),
            var: Rng::new(seed + 3).uniform_vec(channels, 0.5, 1.5),
        };
        let step = |gpu_running: &GpuRunning, defer: bool| {
            let epilogue = Epilogue::relu();
            gpu_train_step(
                &shape,
                &config,
                epilogue,
                &x,
                &gammas,
                &betas,
                gpu_running,
                defer,
            )
        };
        let (full_running, deferred_running) =
            (GpuRunning::upload(&running), GpuRunning::upload(&running));
        let (_, saved) = step(&full_running, false);
        let (map, deferred_saved) = step(&deferred_running, true);
        let what = format!("{shape:?}");
        assert_eq!(deferred_saved.mean, saved.mean, "saved mean, {what}");
        assert_eq!(deferred_saved.invstd, saved.invstd, "saved invstd, {what}");
        let (full, deferred) = (full_running.read(), deferred_running.read());
        assert_eq!(deferred.mean, full.mean, "running mean, {what}");
        assert_eq!(deferred.var, full.var, "running var, {what}");
        let want: Vec<f32> = (0..channels)
            .flat_map(|c| [gammas[c] * saved.invstd[c], saved.mean[c], betas[c], 0.0])
            .collect();
        assert_eq!(map, want, "map, {what}");
    }
}

/// Two training steps on fresh data with random γ, β and running statistics, GPU against twin.
fn check_training(shape: BatchNormShape, offset: f32) {
    let config = BatchNormConfig::default();
    let momentum = config.momentum as f64;
    let seed = seed_of(&shape);
    let (c_count, m) = (shape.channels, shape.count());
    let gammas = random(seed, c_count);
    let betas = random(seed + 1, c_count);
    let mut running = RunningStats {
        mean: random(seed + 2, c_count),
        var: Rng::new(seed + 3).uniform_vec(c_count, 0.5, 1.5),
    };
    let gpu_running = GpuRunning::upload(&running);
    // Bounds on the GPU's running statistics, carried from step to step.
    let mut running_mean_tol = vec![0.0f64; c_count];
    let mut running_var_tol = vec![0.0f64; c_count];
    for step in 0..2 {
        let what = format!("{shape:?} offset {offset} step {step}");
        let x = data(seed + 10 + step, shape.len(), offset);
        let old = running.clone();
        let want = twin::train_forward(&shape, &config, &x, &gammas, &betas, &mut running);
        let (y, saved) = gpu_train_step(
            &shape,
            &config,
            Epilogue::NONE,
            &x,
            &gammas,
            &betas,
            &gpu_running,
            false,
        );
        let bounds = channel_bounds(&shape, &config, &x);

        let mut y_tol = vec![0.0; shape.len()];
        for (c, b) in bounds.iter().enumerate() {
            let g = gammas[c].abs() as f64;
            for i in 0..m {
                let o = shape.offset(c, i);
                let deviation = (x[o] as f64 - b.mean).abs();
                y_tol[o] = g * b.invstd * (b.mean_error + deviation * (b.invstd_error + 4.0 * U))
                    + 3.0 * U * (g * deviation * b.invstd + betas[c].abs() as f64);
            }
        }
        assert_within(&format!("y, {what}"), &y, &want.y, &y_tol);
        let mean_tol: Vec<f64> = bounds
            .iter()
            .map(|b| b.mean_error + U * b.mean.abs())
            .collect();
        assert_within(
            &format!("saved mean, {what}"),
            &saved.mean,
            &want.saved.mean,
            &mean_tol,
        );
        let invstd_tol: Vec<f64> = bounds.iter().map(|b| b.invstd_error * b.invstd).collect();
        assert_within(
            &format!("saved invstd, {what}"),
            &saved.invstd,
            &want.saved.invstd,
            &invstd_tol,
        );

        // Blends of the old value and the batch statistic: the batch statistic's error scaled
        // by momentum, the old error by 1 − momentum, and four roundings of each term.
        for (c, b) in bounds.iter().enumerate() {
            let keep = 1.0 - momentum;
            running_mean_tol[c] = keep * running_mean_tol[c]
                + momentum * (b.mean_error + 4.0 * U * b.mean.abs())
                + 4.0 * U * keep * old.mean[c].abs() as f64;
            let factor = shape.unbiased_factor();
            running_var_tol[c] = keep * running_var_tol[c]
                + momentum * factor * (b.var_error + 4.0 * U * b.var)
                + 4.0 * U * keep * old.var[c].abs() as f64;
        }
    }
    let what = format!("{shape:?} offset {offset} after two steps");
    let got = gpu_running.read();
    assert_within(
        &format!("running mean, {what}"),
        &got.mean,
        &running.mean,
        &running_mean_tol,
    );
    assert_within(
        &format!("running var, {what}"),
        &got.var,
        &running.var,
        &running_var_tol,
    );
}

fn check_eval(shape: BatchNormShape) {
    let config = BatchNormConfig::default();
    let seed = seed_of(&shape) + 20;
    let c_count = shape.channels;
    let x = random(seed, shape.len());
    let gammas = random(seed + 1, c_count);
    let betas = random(seed + 2, c_count);
    let running = RunningStats {
        mean: random(seed + 3, c_count),
        var: Rng::new(seed + 4).uniform_vec(c_count, 0.1, 2.0),
    };
    let want = twin::eval_forward(&shape, &config, &x, &gammas, &betas, &running);
    // A view followed by values of its buffer's own: the last, partial quad must leave them.
    let sentinel = 7.0;
    let whole = upload(&vec![sentinel; shape.len() + 4]);
    let y = whole.view(0, shape.len());
    let dispatch = eval_forward(
        gpu(),
        &shape,
        &config,
        Epilogue::NONE,
        EvalForwardBuffers {
            x: &upload(&x),
            gamma: &upload(&gammas),
            beta: &upload(&betas),
            running_mean: &upload(&running.mean),
            running_var: &upload(&running.var),
            y: &y,
        },
    )
    .expect("batchnorm_eval_forward builds");
    run(&[&dispatch]);
    // No sums: inverseSqrt (4u), + eps, γ·invstd, x − mean, the product (u each) and the twin's
    // rounding bound the scaled term by 8u; the fma's addition and the rounding of y add 3u.
    let mut tolerance = vec![0.0; shape.len()];
    for c in 0..c_count {
        let invstd = 1.0 / (running.var[c] as f64 + config.eps as f64).sqrt();
        for i in 0..shape.count() {
            let o = shape.offset(c, i);
            let scaled = (gammas[c] as f64 * (x[o] as f64 - running.mean[c] as f64) * invstd).abs();
            tolerance[o] = 8.0 * U * scaled + 3.0 * U * (scaled + betas[c].abs() as f64);
        }
    }
    let got = read(&whole);
    assert_within(
        &format!("eval y, {shape:?}"),
        &got[..shape.len()],
        &want,
        &tolerance,
    );
    assert!(
        got[shape.len()..].iter().all(|&v| v == sentinel),
        "eval {shape:?} wrote past its output"
    );
}

/// Backward on the GPU from the twin's saved statistics (both sides see the same f32 inputs);
/// `fused` is the forward's epilogue and output when it had one (the output gates dy). With
/// `sum_dx`, also the kernel's Σdx per channel.
fn gpu_backward(
    shape: &BatchNormShape,
    x: &[f32],
    dy: &[f32],
    saved: &SavedStats,
    gammas: &[f32],
    fused: Option<(Epilogue, &[f32])>,
    sum_dx: bool,
) -> (twin::BatchNormGrads, Option<Vec<f32>>) {
    let (dx, dgamma, dbeta, dx_sum) = (
        zeros(shape.len()),
        zeros(shape.channels),
        zeros(shape.channels),
        zeros(shape.channels),
    );
    let gx = upload(x);
    let y = fused.map(|(_, output)| upload(output));
    let dispatch = backward(
        gpu(),
        shape,
        fused.map_or(Epilogue::NONE, |(epilogue, _)| epilogue),
        BackwardBuffers {
            x: &gx,
            // Unread without the ReLU.
            y: y.as_ref().unwrap_or(&gx),
            dy: &upload(dy),
            saved_mean: &upload(&saved.mean),
            saved_invstd: &upload(&saved.invstd),
            gamma: &upload(gammas),
            dx: &dx,
            dgamma: &dgamma,
            dbeta: &dbeta,
            dx_sum: sum_dx.then_some(&dx_sum),
        },
    )
    .expect("batchnorm_backward builds");
    run(&[&dispatch]);
    let grads = twin::BatchNormGrads {
        dx: read(&dx),
        dgamma: read(&dgamma),
        dbeta: read(&dbeta),
    };
    (grads, sum_dx.then(|| read(&dx_sum)))
}

/// SUM_DX: the same dx, dγ, dβ bits as without it, and Σdx per channel of that dx: within
/// γ_m·Σ|dx| of its exact sum, and where the kernel walks columns, column_sum's bits.
fn check_dx_sum(shape: &BatchNormShape, x: &[f32], dy: &[f32], saved: &SavedStats, g: &[f32]) {
    let what = format!("{shape:?}");
    let (plain, _) = gpu_backward(shape, x, dy, saved, g, None, false);
    let (got, dx_sum) = gpu_backward(shape, x, dy, saved, g, None, true);
    let dx_sum = dx_sum.expect("asked for");
    assert_bits_eq(&format!("dx with SUM_DX, {what}"), &got.dx, &plain.dx);
    assert_bits_eq(
        &format!("dgamma with SUM_DX, {what}"),
        &got.dgamma,
        &plain.dgamma,
    );
    assert_bits_eq(
        &format!("dbeta with SUM_DX, {what}"),
        &got.dbeta,
        &plain.dbeta,
    );
    let view = ChannelSumShape {
        outer: shape.batch,
        channels: shape.channels,
        inner: shape.spatial,
    };
    let mut exact = vec![0.0; shape.channels];
    fer::reference::reduce::channel_sum(&view, &got.dx, false, &mut exact);
    let mut magnitude = vec![0.0; shape.channels];
    fer::reference::reduce::channel_sum(&view, &abs(&got.dx), false, &mut magnitude);
    let tolerance: Vec<f64> = magnitude
        .iter()
        .map(|&m| gamma(shape.count()) * m as f64)
        .collect();
    assert_within(&format!("dx sum, {what}"), &dx_sum, &exact, &tolerance);
    if sums_columns(&view) {
        let summed = zeros(shape.channels);
        let dispatch =
            channel_sum(gpu(), &view, false, &upload(&got.dx), &summed).expect("column_sum builds");
        run(&[&dispatch]);
        assert_bits_eq(
            &format!("dx sum vs column_sum, {what}"),
            &dx_sum,
            &read(&summed),
        );
    }
}

fn check_backward(shape: BatchNormShape, offset: f32) {
    let config = BatchNormConfig::default();
    let seed = seed_of(&shape) + 30;
    let m = shape.count();
    let x = data(seed, shape.len(), offset);
    let dy = random(seed + 1, shape.len());
    let gammas = random(seed + 2, shape.channels);
    let betas = random(seed + 3, shape.channels);
    let mut running = RunningStats::new(shape.channels);
    let saved = twin::train_forward(&shape, &config, &x, &gammas, &betas, &mut running).saved;
    let want = twin::backward(&shape, &x, &dy, &saved, &gammas);
    let (got, _) = gpu_backward(&shape, &x, &dy, &saved, &gammas, None, false);
    check_dx_sum(&shape, &x, &dy, &saved, &gammas);

    let (mut dx_tol, mut dgamma_tol, mut dbeta_tol) = (
        vec![0.0; shape.len()],
        vec![0.0; shape.channels],
        vec![0.0; shape.channels],
    );
    for c in 0..shape.channels {
        let (mean, invstd) = (saved.mean[c] as f64, saved.invstd[c] as f64);
        let normalised = |o: usize| (x[o] as f64 - mean) * invstd;
        let offsets = || (0..m).map(|i| shape.offset(c, i));
        dbeta_tol[c] = gamma(m) * offsets().map(|o| dy[o].abs() as f64).sum::<f64>();
        dgamma_tol[c] = gamma(m + 3)
            * offsets()
                .map(|o| (dy[o] as f64 * normalised(o)).abs())
                .sum::<f64>();
        let (dbeta, dgamma) = (want.dbeta[c].abs() as f64, want.dgamma[c].abs() as f64);
        let k = (gammas[c] as f64 * invstd / m as f64).abs();
        for o in offsets() {
            let xhat = normalised(o).abs();
            let terms = m as f64 * dy[o].abs() as f64 + dbeta + xhat * dgamma;
            dx_tol[o] = k * (dbeta_tol[c] + xhat * dgamma_tol[c] + gamma(8) * terms);
        }
    }
    let what = format!("{shape:?} offset {offset}");
    assert_within(
        &format!("dbeta, {what}"),
        &got.dbeta,
        &want.dbeta,
        &dbeta_tol,
    );
    assert_within(
        &format!("dgamma, {what}"),
        &got.dgamma,
        &want.dgamma,
        &dgamma_tol,
    );
    assert_within(&format!("dx, {what}"), &got.dx, &want.dx, &dx_tol);
}

/// A fused ReLU, and a fused ReLU then dropout, must give exactly what the unfused kernels
/// and the separate layers' twins give: the forward output bit for bit (the same selects and
/// the same mask of the same element index), and backward on the gradient the separate
/// backward passes would hand it bit for bit. Over the quad path (whole-vec4 planes), the
/// scalar path, a partial last quad, and 1-d columns gathered and whole.
#[test]
fn fused_epilogues_are_the_kernels_then_the_layers_bit_for_bit() {
    let config = BatchNormConfig::default();
    for shape in [
        shape(3, 4, 8),
        shape(64, 5, 1),
        shape(2, 3, 7),
        shape(16, 12, 1),
    ] {
        let seed = seed_of(&shape) + 40;
        let x = random(seed, shape.len());
        let dy = random(seed + 1, shape.len());
        let gammas = random(seed + 2, shape.channels);
        let betas = random(seed + 3, shape.channels);
        let fresh = || GpuRunning::upload(&RunningStats::new(shape.channels));
        let (plain, saved) = gpu_train_step(
            &shape,
            &config,
            Epilogue::NONE,
            &x,
            &gammas,
            &betas,
            &fresh(),
            false,
        );
        let mask = Dropout::new(0.3, seed + 4);
        for epilogue in [Epilogue::relu(), Epilogue::relu_dropout(mask)] {
            let what = format!("{shape:?} {epilogue:?}");
            let (fused, _) = gpu_train_step(
                &shape,
                &config,
                epilogue,
                &x,
                &gammas,
                &betas,
                &fresh(),
                false,
            );
            let relu = relu_twin(&plain);
            let (want, through) = match epilogue.dropout {
                Some(mask) => (dropout_twin(&mask, &relu), dropout_twin(&mask, &dy)),
                None => (relu.clone(), dy.clone()),
            };
            assert_bits_eq(&format!("forward {what}"), &fused, &want);
            assert!(fused.contains(&0.0) && fused.iter().any(|&v| v > 0.0));
            if epilogue.dropout.is_some() {
                let dropped = (0..relu.len()).filter(|&i| relu[i] > 0.0 && fused[i] == 0.0);
                assert!(dropped.count() > 0, "{what}: the mask dropped nothing");
            }

            let gated = relu_backward_twin(&plain, &through);
            let (want, _) = gpu_backward(&shape, &x, &gated, &saved, &gammas, None, false);
            let fused = Some((epilogue, &fused[..]));
            let (got, _) = gpu_backward(&shape, &x, &dy, &saved, &gammas, fused, false);
            assert_bits_eq(&format!("dx {what}"), &got.dx, &want.dx);
            assert_bits_eq(&format!("dgamma {what}"), &got.dgamma, &want.dgamma);
            assert_bits_eq(&format!("dbeta {what}"), &got.dbeta, &want.dbeta);
        }
    }
}

#[test]
fn train_forward_matches_reference_over_two_steps() {
    for &(n, c, s) in SHAPES {
        check_training(shape(n, c, s), 0.0);
    }
}

/// Values 1000 + U(−1, 1): the bounds above depend on the spread, not on 1000, so a one-pass
/// E[x²] − E[x]² (or an unshifted mean) would fail them.
#[test]
fn train_forward_is_accurate_far_from_zero() {
    check_training(shape(4, 3, 25), 1000.0);
    check_training(shape(64, 5, 1), 1000.0);
}

#[test]
fn eval_forward_matches_reference() {
    for &(n, c, s) in SHAPES {
        check_eval(shape(n, c, s));
    }
}

#[test]
fn backward_matches_reference() {
    for &(n, c, s) in SHAPES {
        check_backward(shape(n, c, s), 0.0);
    }
    check_backward(shape(4, 3, 25), 1000.0);
}

/// One value per channel (batch 1, S = 1): PyTorch raises "Expected more than 1 value per
/// channel when training". fer's kernels give finite results instead: the variance is 0,
/// x − mean is exactly 0, so y = β, invstd = 1/sqrt(eps), dx = 0 and dγ = 0, and the running
/// variance decays by (1 − momentum) (unbiased factor 1). Layers should still refuse m = 1.
#[test]
fn one_value_per_channel_gives_finite_output() {
    let shape = shape(1, 3, 1);
    let config = BatchNormConfig::default();
    let x = [0.5, -2.0, 1000.25];
    let gammas = [1.5, -0.5, 2.0];
    let betas = [0.25, -1.0, 3.0];
    let mut running = RunningStats::new(3);
    let gpu_running = GpuRunning::upload(&running);
    let want = twin::train_forward(&shape, &config, &x, &gammas, &betas, &mut running);
    let (y, saved) = gpu_train_step(
        &shape,
        &config,
        Epilogue::NONE,
        &x,
        &gammas,
        &betas,
        &gpu_running,
        false,
    );
    assert_eq!(y, betas, "y = β exactly");
    assert_eq!(want.y, betas, "the twin agrees");
    assert_eq!(saved.mean, x, "the mean of one value is that value");
    let invstd = (1.0 / (config.eps as f64).sqrt()) as f32;
    assert_close(
        "saved invstd",
        &saved.invstd,
        &[invstd; 3],
        6.0 * U * invstd as f64,
    );
    // (1 − momentum)·1 + momentum·0, a few roundings.
    let got = gpu_running.read();
    assert_close("running var", &got.var, &running.var, 4.0 * U);
    assert_close("running mean", &got.mean, &running.mean, 4.0 * U * 1000.25);

    let dy = [0.75, -0.25, 1.0];
    let (got, _) = gpu_backward(&shape, &x, &dy, &saved, &gammas, None, false);
    assert_eq!(got.dx, [0.0; 3], "dx = 0: y does not depend on x");
    assert_eq!(got.dgamma, [0.0; 3], "dγ = Σ dy·x̂ with x̂ = 0");
    assert_eq!(got.dbeta, dy, "dβ = dy");
    assert_eq!(twin::backward(&shape, &x, &dy, &saved, &gammas), got);
}

/// The backward twin against central differences of the training-forward twin, for the loss
/// Σ y·r. Errors of the numeric gradient: truncation h²/6·|f'''| with h = 2⁻⁸ and
/// |f'''| ~ Σ|r|/σ³ ≲ 10 here (σ ≈ 0.5), about 3e-5; and the f32 rounding of y in the loss,
/// ≲ n·u·max|y·r|/(2h) ≈ 3e-5 for n ≤ 20 values. ATOL leaves a factor of three.
#[test]
fn backward_twin_matches_finite_differences() {
    const ATOL: f64 = 2e-4;
    const RTOL: f64 = 1e-4;
    for shape in [shape(2, 2, 10), shape(6, 3, 1)] {
        let config = BatchNormConfig::default();
        let seed = seed_of(&shape) + 40;
        let x = random(seed, shape.len());
        let gammas = random(seed + 1, shape.channels);
        let betas = random(seed + 2, shape.channels);
        let r = random(seed + 3, shape.len());
        let loss = |x: &[f32], gammas: &[f32], betas: &[f32]| {
            let mut running = RunningStats::new(shape.channels);
            dot(
                &twin::train_forward(&shape, &config, x, gammas, betas, &mut running).y,
                &r,
            )
        };
        let mut running = RunningStats::new(shape.channels);
        let saved = twin::train_forward(&shape, &config, &x, &gammas, &betas, &mut running).saved;
        let grads = twin::backward(&shape, &x, &r, &saved, &gammas);
        let h = 1.0 / 256.0;
        let numeric_x = numeric_gradient(&x, h, |x| loss(x, &gammas, &betas));
        let numeric_gamma = numeric_gradient(&gammas, h, |g| loss(&x, g, &betas));
        let numeric_beta = numeric_gradient(&betas, h, |b| loss(&x, &gammas, b));
        assert_gradient(&format!("dx {shape:?}"), &grads.dx, &numeric_x, ATOL, RTOL);
        assert_gradient(
            &format!("dgamma {shape:?}"),
            &grads.dgamma,
            &numeric_gamma,
            ATOL,
            RTOL,
        );
        assert_gradient(
            &format!("dbeta {shape:?}"),
            &grads.dbeta,
            &numeric_beta,
            ATOL,
            RTOL,
        );
    }
}
