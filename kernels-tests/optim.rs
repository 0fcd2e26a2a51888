//! optim: SGD and Adam / AdamW kernels against their twins over five consecutive steps (fresh
//! gradient and a changed lr each step, set through the group without rebuilding the dispatch),
//! on n = 1, 7, 1000 and 70001 (partial quads, not multiples of the 1024-element workgroup), plus two properties
//! PyTorch users know by heart: the first Adam step moves every parameter by ≈ lr, and the first
//! momentum step is a plain SGD step.
//!
//! No finite-difference checks here: an optimizer has no backward pass; what it consumes is a
//! gradient, not something it differentiates.
//!
//! Tolerances are per step: before each step the twin starts from the GPU's state of the step
//! before, so errors do not compound across steps and each bound below is one step's rounding.
//! u = 2⁻²⁴. WGSL rounds +, −, × correctly (error ≤ u relative), allows 2.5 ulp for ÷ (≤ 5u) and
//! for sqrt inherits 1/inverseSqrt (2 + 2.5 ulp, ≤ 9u). `a + b·c` may or may not be fused: 2u.
//! The f32 scalars the host derives in f64 (1 − dampening, 1 − β1, lr / bc1, ...) add u each,
//! and the twin's own final rounding to f32 adds u of its result.

use fer::kernels::optim::{
    adam, sgd, AdamBuffers, AdamConfig, AdamGroup, SgdBuffers, SgdConfig, SgdGroup,
};
use fer::reference::optim::{adam_step, sgd_step};

use crate::common::*;

const SIZES: &[usize] = &[1, 7, 1000, 70_001];
const STEPS: u32 = 5;

/// A learning rate that changes every step, as a schedule would.
fn lr_at(base: f64, step: u32) -> f64 {
    base * (1.0 - 0.1 * (step - 1) as f64)
}

/// Gradients with |g| in [0.5, 1): Adam divides by √v, so this keeps g + wd·p away from the
/// cancellation to ≈ 0 where its rounding error would be amplified (the kink of |g|).
fn grads_away_from_zero(seed: u64, n: usize) -> Vec<f32> {
    random(seed, n)
        .into_iter()
        .map(|r| (0.5 + 0.5 * r.abs()).copysign(r))
        .collect()
}

fn abs(x: f32) -> f64 {
    (x as f64).abs()
}

// ---------------------------------------------------------------------------------------------
// SGD

/// One step's bound, from the operation chain with D = |g| + wd·|p| (the decayed gradient's
/// magnitude, error ≤ 2u·D):
///   buf ← D on step 1 (a copy), else μ·buf + (1 − δ)·d: B = μ|buf| + (1 − δ)·D, error ≤ 5u·B;
///   d ← d + μ·buf (nesterov) or buf: N = D + μ·B or B (D without momentum), error ≤ 7u·N;
///   p ← p − lr·d: error ≤ 2u·|p| + 9u·lr·N (lr rounded, ×, −).
/// With the twin's rounding: p within 3u·|p| + 12u·lr·N, buf within 6u·B.
fn sgd_tolerances(
    config: &SgdConfig,
    lr: f64,
    step: u32,
    param: &[f32],
    grad: &[f32],
    buffer: Option<&[f32]>,
) -> (Vec<f64>, Vec<f64>) {
    let mut tol_param = Vec::with_capacity(param.len());
    let mut tol_buffer = Vec::with_capacity(param.len());
    for i in 0..param.len() {
        let d = abs(grad[i]) + config.weight_decay * abs(param[i]);
        let n = match buffer {
            None => d,
            Some(buffer) => {
                let b = if step == 1 {
                    d
                } else {
                    config.momentum * abs(buffer[i]) + (1.0 - config.dampening) * d
                };
                tol_buffer.push(6.0 * U * b);
                if config.nesterov {
                    d + config.momentum * b
                } else {
                    b
                }
            }
        };
        tol_param.push(3.0 * U * abs(param[i]) + 12.0 * U * lr * n);
    }
    (tol_param, tol_buffer)
}

fn check_sgd(config: SgdConfig, n: usize) {
    let what = format!("sgd {config:?} n={n}");
    let seed = n as u64 * 31 + (config.momentum * 100.0) as u64;
    let base_lr = 0.1;
    let mut param = random(seed, n);
    let mut buffer = (config.momentum != 0.0).then(|| vec![0.0f32; n]);

    let gpu_param = upload(&param);
    let gpu_grad = zeros(n);
    let gpu_buffer = buffer.as_ref().map(|_| zeros(n));
    let group = SgdGroup::new(gpu(), config);
    let updates = sgd(
        gpu(),
        &group,
        SgdBuffers {
            param: &gpu_param,
            grad: &gpu_grad,
            momentum_buffer: gpu_buffer.as_ref(),
        },
    )
    .expect("sgd kernel builds");

    for step in 1..=STEPS {
        let lr = lr_at(base_lr, step);
        let grad = random(seed + 1000 + step as u64, n);
        gpu_grad.write(gpu(), &grad);
        group.set_step(gpu(), step, lr);
        run(&updates.iter().collect::<Vec<_>>());

        let (tol_param, tol_buffer) =
            sgd_tolerances(&config, lr, step, &param, &grad, buffer.as_deref());
        let mut want_param = param.clone();
        let mut want_buffer = buffer.clone();
        sgd_step(
            &config,
            lr,
            step,
            &mut want_param,
            &grad,
            want_buffer.as_deref_mut(),
        );
        param = read(&gpu_param);
        assert_within(
            &format!("{what} step {step} param"),
            &param,
            &want_param,
            &tol_param,
        );
        if let (Some(gpu_buffer), Some(want_buffer)) = (&gpu_buffer, &want_buffer) {
            let got = read(gpu_buffer);
            assert_within(
                &format!("{what} step {step} buf"),
                &got,
                want_buffer,
                &tol_buffer,
            );
            buffer = Some(got);
        }
    }
}

fn sgd_all_sizes(config: SgdConfig) {
    for &n in SIZES {
        check_sgd(config, n);
    }
}

#[test]
fn sgd_plain_matches_reference() {
    sgd_all_sizes(SgdConfig::default());
}

#[test]
fn sgd_weight_decay_matches_reference() {
    sgd_all_sizes(SgdConfig {
        weight_decay: 1e-2,
        ..SgdConfig::default()
    });
}

#[test]
fn sgd_momentum_matches_reference() {
    sgd_all_sizes(SgdConfig {
        momentum: 0.9,
        ..SgdConfig::default()
    });
}

#[test]
fn sgd_momentum_dampening_weight_decay_matches_reference() {
    sgd_all_sizes(SgdConfig {
        momentum: 0.8,
        dampening: 0.3,
        weight_decay: 5e-2,
        nesterov: false,
    });
}

#[test]
fn sgd_nesterov_matches_reference() {
    sgd_all_sizes(SgdConfig {
        momentum: 0.9,
        dampening: 0.0,
        weight_decay: 1e-2,
        nesterov: true,
    });
}

/// PyTorch creates the momentum buffer as a copy of the (decayed) gradient, so step 1 with
/// momentum and dampening is exactly plain SGD, and the buffer holds the undampened gradient.
#[test]
fn first_momentum_step_is_plain_sgd() {
    let n = 300;
    let param = random(7, n);
    let grad = random(8, n);
    let weight_decay = 1e-2;
    let lr = 0.1;
    let step_once = |config: SgdConfig| {
        let gpu_param = upload(&param);
        let gpu_buffer = (config.momentum != 0.0).then(|| zeros(n));
        let group = SgdGroup::new(gpu(), config);
        let updates = sgd(
            gpu(),
            &group,
            SgdBuffers {
                param: &gpu_param,
                grad: &upload(&grad),
                momentum_buffer: gpu_buffer.as_ref(),
            },
        )
        .expect("sgd kernel builds");
        group.set_step(gpu(), 1, lr);
        run(&updates.iter().collect::<Vec<_>>());
        (read(&gpu_param), gpu_buffer.as_ref().map(read))
    };
    let (plain, _) = step_once(SgdConfig {
        weight_decay,
        ..SgdConfig::default()
    });
    let (with_momentum, buffer) = step_once(SgdConfig {
        momentum: 0.9,
        dampening: 0.5,
        weight_decay,
        nesterov: false,
    });
    assert_eq!(
        plain, with_momentum,
        "first momentum step differs from plain SGD"
    );
    // buf = g + wd·p, rounded once or twice (2u·(|g| + wd·|p|)); dampened it would be half that.
    let decayed: Vec<f32> = (0..n)
        .map(|i| (grad[i] as f64 + weight_decay * param[i] as f64) as f32)
        .collect();
    let tolerance: Vec<f64> = (0..n)
        .map(|i| 3.0 * U * (abs(grad[i]) + weight_decay * abs(param[i])))
        .collect();
    let buffer = buffer.expect("momentum buffer");
    assert_within("first momentum buffer", &buffer, &decayed, &tolerance);
}

// ---------------------------------------------------------------------------------------------
// Adam / AdamW

/// One step's bounds. With G = |g| + wd·|p| (Adam's L2 term; G = |g| for AdamW), g' = g + wd·p
/// (error ≤ 2u·G), w1 = 1 − β1, w2 = 1 − β2:
///   m' = lerp(m, g', w1): error ≤ 5u·Mm, Mm = |m'| + w1·(G + |m|)  (−, w1 rounded, ×, +, g');
///   v' = β2·v + w2·g'²: error ≤ 8u·V, V = β2·v + w2·G²  (all terms ≥ 0);
///   denom = √v'/√bc2 + eps: relative error ≤ 4u·V/v' (from v') + 9u (sqrt) + u (√bc2 rounded)
///     + 5u (÷) + u (+ eps) = 16u + 4u·V/v';
///   update = s·(m'/denom), s = lr/bc1: error ≤ (s·Mm/denom)·(5u + 16u + 4u·V/v' + 7u)
///     (m', denom, s rounded, ÷, ×);
///   p' = p·decay − update: 2u·|p| (decay rounded, ×) + u·(|p| + |update|) (−).
/// Adding the twin's rounding: p within 4u·|p| + (s·Mm/denom)·(30u + 4u·V/v'), m within 6u·Mm,
/// v within 9u·V. The gradients stay away from zero, so V/v' stays small (about 1 to 5).
fn adam_tolerances(
    config: &AdamConfig,
    lr: f64,
    step: u32,
    old: &AdamState,
    grad: &[f32],
    new: &AdamState,
) -> AdamState<f64> {
    let (beta1, beta2) = config.betas;
    let (w1, w2) = (1.0 - beta1, 1.0 - beta2);
    let (bias_correction1, bias_correction2) = config.bias_corrections(step);
    let step_size = lr / bias_correction1;
    let coupled = config.coupled_decay();
    let n = grad.len();
    let mut tolerance = AdamState {
        param: Vec::with_capacity(n),
        exp_avg: Vec::with_capacity(n),
        exp_avg_sq: Vec::with_capacity(n),
    };
    for (i, &grad) in grad.iter().enumerate() {
        let g = abs(grad) + coupled * abs(old.param[i]);
        let mm = abs(new.exp_avg[i]) + w1 * (g + abs(old.exp_avg[i]));
        let v_magnitude = beta2 * abs(old.exp_avg_sq[i]) + w2 * g * g;
        let v = new.exp_avg_sq[i] as f64;
        let denom = v.sqrt() / bias_correction2.sqrt() + config.eps;
        let update = step_size * mm / denom;
        tolerance
            .param
            .push(4.0 * U * abs(old.param[i]) + update * (30.0 * U + 4.0 * U * v_magnitude / v));
        tolerance.exp_avg.push(6.0 * U * mm);
        tolerance.exp_avg_sq.push(9.0 * U * v_magnitude);
    }
    tolerance
}

/// Parameter and moments of one tensor (or their tolerances).
#[derive(Clone)]
struct AdamState<T = f32> {
    param: Vec<T>,
    exp_avg: Vec<T>,
    exp_avg_sq: Vec<T>,
}

fn check_adam(config: AdamConfig, n: usize) {
    let what = format!("adam {config:?} n={n}");
    let seed = n as u64 * 17 + config.decoupled as u64;
    let base_lr = 1e-2;
    let mut state = AdamState {
        param: random(seed, n),
        exp_avg: vec![0.0; n],
        exp_avg_sq: vec![0.0; n],
    };
    let gpu_param = upload(&state.param);
    let gpu_grad = zeros(n);
    let gpu_exp_avg = zeros(n);
    let gpu_exp_avg_sq = zeros(n);
    let group = AdamGroup::new(gpu(), config);
    let updates = adam(
        gpu(),
        &group,
        AdamBuffers {
            param: &gpu_param,
            grad: &gpu_grad,
            exp_avg: &gpu_exp_avg,
            exp_avg_sq: &gpu_exp_avg_sq,
        },
    )
    .expect("adam kernel builds");

    for step in 1..=STEPS {
        let lr = lr_at(base_lr, step);
        let grad = grads_away_from_zero(seed + 1000 + step as u64, n);
        gpu_grad.write(gpu(), &grad);
        group.set_step(gpu(), step, lr);
        run(&updates.iter().collect::<Vec<_>>());

        let mut want = state.clone();
        adam_step(
            &config,
            lr,
            step,
            &mut want.param,
            &grad,
            &mut want.exp_avg,
            &mut want.exp_avg_sq,
        );
        let tolerance = adam_tolerances(&config, lr, step, &state, &grad, &want);
        state = AdamState {
            param: read(&gpu_param),
            exp_avg: read(&gpu_exp_avg),
            exp_avg_sq: read(&gpu_exp_avg_sq),
        };
        let at = |name: &str| format!("{what} step {step} {name}");
        assert_within(&at("m"), &state.exp_avg, &want.exp_avg, &tolerance.exp_avg);
        assert_within(
            &at("v"),
            &state.exp_avg_sq,
            &want.exp_avg_sq,
            &tolerance.exp_avg_sq,
        );
        assert_within(&at("param"), &state.param, &want.param, &tolerance.param);
    }
}

fn adam_all_sizes(config: AdamConfig) {
    for &n in SIZES {
        check_adam(config, n);
    }
}

#[test]
fn adam_matches_reference() {
    adam_all_sizes(AdamConfig::default());
}

#[test]
fn adam_l2_weight_decay_matches_reference() {
    adam_all_sizes(AdamConfig {
        weight_decay: 1e-2,
        ..AdamConfig::default()
    });
}

#[test]
fn adamw_matches_reference() {
    adam_all_sizes(AdamConfig {
        weight_decay: 0.1,
        ..AdamConfig::adamw()
    });
}

/// An L2 penalty on the gradient beside AdamW's decoupled decay (Keras's kernel_regularizer
/// under AdamW), and beside Adam's coupled decay.
#[test]
fn l2_penalty_with_adamw_and_adam_matches_reference() {
    for config in [AdamConfig::adamw(), AdamConfig::default()] {
        adam_all_sizes(AdamConfig {
            weight_decay: 0.05,
            l2: 0.03,
            ..config
        });
    }
}

/// β1 = 0.5 takes torch.lerp's other branch (weight ≥ 0.5); eps near |g| makes eps matter.
#[test]
fn adam_low_beta1_large_eps_matches_reference() {
    adam_all_sizes(AdamConfig {
        betas: (0.5, 0.9),
        eps: 0.1,
        weight_decay: 1e-2,
        decoupled: false,
        l2: 0.0,
    });
}

/// The first Adam step, by hand: m1 = (1 − β1)·g, v1 = (1 − β2)·g², bc1 = 1 − β1,
/// bc2 = 1 − β2, so step_size = lr/(1 − β1) and denom = √((1 − β2)·g²)/√(1 − β2) + eps
/// = |g| + eps, and p1 = p0 − lr/(1 − β1)·(1 − β1)·g/(|g| + eps) = p0 − lr·sign(g)/(1 + eps/|g|):
/// every parameter moves by lr (to 1e-8 relative at eps = 1e-8), whatever its gradient's size.
/// This is the algebra of torch.optim.Adam's first step (derived here, not run against PyTorch).
/// AdamW first decays p0 by (1 − lr·wd).
#[test]
fn first_adam_step_moves_each_parameter_by_lr() {
    let n = 500;
    let lr = 1e-3;
    let param = random(21, n);
    // Gradients over six decades, so "by lr whatever the size" is tested.
    let grad: Vec<f32> = grads_away_from_zero(22, n)
        .iter()
        .enumerate()
        .map(|(i, g)| g * 10f32.powi(i as i32 % 6 - 3))
        .collect();
    for config in [AdamConfig::default(), AdamConfig::adamw()] {
        let gpu_param = upload(&param);
        let group = AdamGroup::new(gpu(), config);
        let updates = adam(
            gpu(),
            &group,
            AdamBuffers {
                param: &gpu_param,
                grad: &upload(&grad),
                exp_avg: &zeros(n),
                exp_avg_sq: &zeros(n),
            },
        )
        .expect("adam kernel builds");
        group.set_step(gpu(), 1, lr);
        run(&updates.iter().collect::<Vec<_>>());
        let decay = if config.decoupled {
            1.0 - lr * config.weight_decay
        } else {
            1.0
        };
        let want: Vec<f32> = (0..n)
            .map(|i| {
                let g = grad[i] as f64;
                (param[i] as f64 * decay - lr * g.signum() / (1.0 + config.eps / g.abs())) as f32
            })
            .collect();
        // The bound of adam_tolerances at step 1 (m = v = 0, so Mm = 2·w1·|g|, V/v' = 1):
        // 4u·|p| + (lr/w1)·2w1·|g|/|g|·34u = 4u·|p| + 68u·lr.
        let tolerance: Vec<f64> = param
            .iter()
            .map(|&p| 4.0 * U * abs(p) + 68.0 * U * lr)
            .collect();
        assert_within(
            &format!("first step of {config:?}"),
            &read(&gpu_param),
            &want,
            &tolerance,
        );
    }
}
