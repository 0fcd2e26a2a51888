//! Optimizer updates over one flat parameter tensor: `torch.optim.SGD` and `torch.optim.Adam` /
//! `AdamW`, with PyTorch's defaults `foreach=False` (the single-tensor formulas of
//! `torch/optim/sgd.py::_single_tensor_sgd` and `torch/optim/adam.py::_single_tensor_adam`),
//! `maximize=False`, `amsgrad=False`.
//!
//! Hyperparameters are f64 like PyTorch's Python floats: derived scalars (1 − β1, bias
//! corrections, lr / bias_correction1) are formed in f64 and only then rounded to f32, as
//! PyTorch does when it hands a Python scalar to an f32 tensor op. The learning rate is not part
//! of a config because schedules change it every step.

/// `torch.optim.SGD`'s hyperparameters other than lr. `Default` is PyTorch's default.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SgdConfig {
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

impl SgdConfig {
    /// The `ValueError`s `torch.optim.SGD.__init__` raises, as a sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.momentum < 0.0 {
            return Err(format!("invalid SGD momentum {}", self.momentum));
        }
        if self.weight_decay < 0.0 {
            return Err(format!("invalid SGD weight decay {}", self.weight_decay));
        }
        if self.nesterov && (self.momentum <= 0.0 || self.dampening != 0.0) {
            return Err("Nesterov momentum requires a momentum and zero dampening".into());
        }
        Ok(())
    }
}

/// `torch.optim.Adam`'s hyperparameters other than lr; `decoupled` makes it `torch.optim.AdamW`
/// (PyTorch's `decoupled_weight_decay`). `Default` is Adam's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub betas: (f64, f64),
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the parameter (p ← p·(1 − lr·wd)) instead of adding wd·p to the gradient.
    pub decoupled: bool,
    /// λ of an L2 penalty λ·Σp² in the loss (Keras's `kernel_regularizer`): adds 2λ·p to the
    /// gradient, beside a decoupled decay too (torch: the penalty's autograd gradient).
    pub l2: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            l2: 0.0,
        }
    }
}

impl AdamConfig {
    /// `torch.optim.AdamW`'s defaults (weight decay 1e-2).
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            decoupled: true,
            ..AdamConfig::default()
        }
    }

    /// The `ValueError`s `torch.optim.Adam.__init__` raises, as a sentence.
    pub fn validate(&self) -> Result<(), String> {
        let (beta1, beta2) = self.betas;
        if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
            return Err(format!("invalid Adam betas ({beta1}, {beta2})"));
        }
        if self.eps < 0.0 {
            return Err(format!("invalid Adam epsilon {}", self.eps));
        }
        if self.weight_decay < 0.0 {
            return Err(format!("invalid Adam weight decay {}", self.weight_decay));
        }
        if self.l2 < 0.0 {
            return Err(format!("invalid L2 penalty {}", self.l2));
        }
        Ok(())
    }

    /// What the gradient gains per unit of the parameter: 2λ of the L2 penalty, and Adam's
    /// (not AdamW's) weight decay.
    pub fn coupled_decay(&self) -> f64 {
        2.0 * self.l2
            + if self.decoupled {
                0.0
            } else {
                self.weight_decay
            }
    }

    /// `(1 − β1^t, 1 − β2^t)` for the 1-based step `t`, in f64 as PyTorch computes them.
    pub fn bias_corrections(&self, step: u32) -> (f64, f64) {
        assert!(step >= 1, "optimizer steps count from 1");
        let (beta1, beta2) = self.betas;
        (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32))
    }
}

/// One SGD step (`_single_tensor_sgd`), `step` counting from 1:
///   g ← g + wd·p;
///   with momentum: buf ← g on the first step (PyTorch clones g into the new buffer, so
///   dampening does not apply), else buf ← momentum·buf + (1 − dampening)·g;
///   g ← g + momentum·buf if nesterov, else buf;
///   p ← p − lr·g.
/// `momentum_buffer` must be given exactly when momentum ≠ 0.
pub fn sgd_step(
    config: &SgdConfig,
    lr: f64,
    step: u32,
    param: &mut [f32],
    grad: &[f32],
    mut momentum_buffer: Option<&mut [f32]>,
) {
    assert!(step >= 1, "optimizer steps count from 1");
    assert_eq!(param.len(), grad.len(), "sgd: param and grad lengths");
    assert_eq!(
        momentum_buffer.is_some(),
        config.momentum != 0.0,
        "sgd: a momentum buffer is needed exactly when momentum is not 0"
    );
    for i in 0..param.len() {
        let p = param[i] as f64;
        let mut d = grad[i] as f64 + config.weight_decay * p;
        if let Some(buffer) = momentum_buffer.as_deref_mut() {
            // The buffer is f32 state: later terms use its stored (rounded) value, as PyTorch's.
            buffer[i] = if step == 1 {
                d as f32
            } else {
                (config.momentum * buffer[i] as f64 + (1.0 - config.dampening) * d) as f32
            };
            let buf = buffer[i] as f64;
            d = if config.nesterov {
                d + config.momentum * buf
            } else {
                buf
            };
        }
        param[i] = (p - lr * d) as f32;
    }
}

/// One Adam / AdamW step (`_single_tensor_adam`), `step` counting from 1:
///   g ← g + 2λ·p (an L2 penalty's gradient);
///   AdamW: p ← p·(1 − lr·wd);  Adam: g ← g + wd·p;
///   m ← β1·m + (1 − β1)·g   (PyTorch writes m.lerp_(g, 1 − β1): the same value);
///   v ← β2·v + (1 − β2)·g²;
///   p ← p − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + eps).
pub fn adam_step(
    config: &AdamConfig,
    lr: f64,
    step: u32,
    param: &mut [f32],
    grad: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
) {
    let n = param.len();
    assert!(
        grad.len() == n && exp_avg.len() == n && exp_avg_sq.len() == n,
        "adam: param, grad and state lengths differ"
    );
    let (beta1, beta2) = config.betas;
    let (bias_correction1, bias_correction2) = config.bias_corrections(step);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.sqrt();
    for i in 0..n {
        let mut p = param[i] as f64;
        let mut g = grad[i] as f64 + 2.0 * config.l2 * p;
        if config.decoupled {
            p *= 1.0 - lr * config.weight_decay;
        } else {
            g += config.weight_decay * p;
        }
        // The moments are f32 state: the update uses their stored (rounded) values, as PyTorch's.
        exp_avg[i] = (beta1 * exp_avg[i] as f64 + (1.0 - beta1) * g) as f32;
        exp_avg_sq[i] = (beta2 * exp_avg_sq[i] as f64 + (1.0 - beta2) * g * g) as f32;
        let denom = (exp_avg_sq[i] as f64).sqrt() / bias_correction2_sqrt + config.eps;
        param[i] = (p - step_size * exp_avg[i] as f64 / denom) as f32;
    }
}
