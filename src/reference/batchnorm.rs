//! Batch normalisation with PyTorch's semantics: `torch.nn.BatchNorm1d` on `[N, F]` and
//! `torch.nn.BatchNorm2d` on `[N, C, H, W]`, both seen as `[N, C, S]` with S = H·W (S = 1 for
//! 1-d). Statistics are per channel over the m = N·S values of that channel.

/// `[batch, channels, spatial]`: a `[N, C, H, W]` tensor has spatial = H·W, a `[N, F]` one has
/// channels = F and spatial = 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchNormShape {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
}

impl BatchNormShape {
    /// Elements of the activation.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// m = N·S, the number of values each channel's statistics are taken over.
    pub fn count(&self) -> usize {
        self.batch * self.spatial
    }

    /// Where the i-th value (0..m) of channel `c` lives in the NCS layout.
    pub fn offset(&self, c: usize, i: usize) -> usize {
        (i / self.spatial * self.channels + c) * self.spatial + i % self.spatial
    }

    /// The factor m/(m−1) that turns the biased batch variance into the unbiased one for the
    /// running statistics. PyTorch errors out on m = 1 in training; fer uses 1 there, so the
    /// running variance decays towards the batch variance (0) instead of becoming NaN.
    pub fn unbiased_factor(&self) -> f64 {
        let m = self.count() as f64;
        m / (m - 1.0).max(1.0)
    }
}

/// PyTorch's defaults: `momentum=0.1`, `eps=1e-5`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormConfig {
    /// Weight of the new batch statistic in the running average.
    pub momentum: f32,
    /// Added to the variance before the square root.
    pub eps: f32,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

/// The per-channel running averages that evaluation normalises with (PyTorch's
/// `running_mean` and `running_var` buffers; the variance is the unbiased one).
#[derive(Clone, Debug, PartialEq)]
pub struct RunningStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

impl RunningStats {
    /// PyTorch's initial values: mean 0, variance 1.
    pub fn new(channels: usize) -> Self {
        RunningStats {
            mean: vec![0.0; channels],
            var: vec![1.0; channels],
        }
    }
}

/// What training mode saves for the backward pass: per channel, the batch mean and
/// 1/sqrt(biased variance + eps).
#[derive(Clone, Debug, PartialEq)]
pub struct SavedStats {
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
}

/// The result of a training-mode forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainForward {
    pub y: Vec<f32>,
    pub saved: SavedStats,
}

/// Gradients of the loss with respect to the input, γ (weight) and β (bias).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormGrads {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
}

/// Training mode (`model.train()`): per channel, the batch mean and biased variance over the
/// m = N·S values (two-pass: mean first, then Σ(x − mean)²), then
/// y = γ·(x − mean)/sqrt(var + eps) + β, and the running statistics move towards the batch's:
/// running_mean ← (1−momentum)·running_mean + momentum·mean,
/// running_var ← (1−momentum)·running_var + momentum·var·m/(m−1).
///
/// With m = 1 the variance is 0 and x − mean is 0, so y = β (finite); see
/// [`BatchNormShape::unbiased_factor`] for the running variance there.
pub fn train_forward(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running: &mut RunningStats,
) -> TrainForward {
    let m = shape.count();
    let momentum = config.momentum as f64;
    let mut y = vec![0.0; shape.len()];
    let mut saved = SavedStats {
        mean: vec![0.0; shape.channels],
        invstd: vec![0.0; shape.channels],
    };
    for c in 0..shape.channels {
        let values = || (0..m).map(|i| x[shape.offset(c, i)] as f64);
        let mean = values().sum::<f64>() / m as f64;
        let var = values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m as f64;
        let invstd = 1.0 / (var + config.eps as f64).sqrt();
        for i in 0..m {
            let o = shape.offset(c, i);
            y[o] = (gamma[c] as f64 * (x[o] as f64 - mean) * invstd + beta[c] as f64) as f32;
        }
        saved.mean[c] = mean as f32;
        saved.invstd[c] = invstd as f32;
        running.mean[c] = ((1.0 - momentum) * running.mean[c] as f64 + momentum * mean) as f32;
        running.var[c] = ((1.0 - momentum) * running.var[c] as f64
            + momentum * var * shape.unbiased_factor()) as f32;
    }
    TrainForward { y, saved }
}

/// Evaluation mode (`model.eval()`): y = γ·(x − running_mean)/sqrt(running_var + eps) + β.
pub fn eval_forward(
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running: &RunningStats,
) -> Vec<f32> {
    let mut y = vec![0.0; shape.len()];
    for c in 0..shape.channels {
        let invstd = 1.0 / (running.var[c] as f64 + config.eps as f64).sqrt();
        for i in 0..shape.count() {
            let o = shape.offset(c, i);
            let centred = x[o] as f64 - running.mean[c] as f64;
            y[o] = (gamma[c] as f64 * centred * invstd + beta[c] as f64) as f32;
        }
    }
    y
}

/// Backward of [`train_forward`] (PyTorch's `native_batch_norm_backward` in training mode),
/// with x̂ = (x − mean)·invstd from the saved statistics:
/// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·invstd/m · (m·dy − dβ − x̂·dγ).
pub fn backward(
    shape: &BatchNormShape,
    x: &[f32],
    dy: &[f32],
    saved: &SavedStats,
    gamma: &[f32],
) -> BatchNormGrads {
    let m = shape.count();
    let mut grads = BatchNormGrads {
        dx: vec![0.0; shape.len()],
        dgamma: vec![0.0; shape.channels],
        dbeta: vec![0.0; shape.channels],
    };
    for (c, &gamma) in gamma.iter().enumerate().take(shape.channels) {
        let (mean, invstd) = (saved.mean[c] as f64, saved.invstd[c] as f64);
        let normalised = |o: usize| (x[o] as f64 - mean) * invstd;
        let (mut dbeta, mut dgamma) = (0.0f64, 0.0f64);
        for i in 0..m {
            let o = shape.offset(c, i);
            dbeta += dy[o] as f64;
            dgamma += dy[o] as f64 * normalised(o);
        }
        let scale = gamma as f64 * invstd / m as f64;
        for i in 0..m {
            let o = shape.offset(c, i);
            grads.dx[o] =
                (scale * (m as f64 * dy[o] as f64 - dbeta - normalised(o) * dgamma)) as f32;
        }
        grads.dgamma[c] = dgamma as f32;
        grads.dbeta[c] = dbeta as f32;
    }
    grads
}
