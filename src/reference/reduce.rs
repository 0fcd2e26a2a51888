//! Per-channel sums: the bias gradient of Linear and Conv2d.

/// A tensor viewed as `[outer, channels, inner]` row-major, summed down to `[channels]`.
/// Linear's output `[batch, features]` is `{ outer: batch, channels: features, inner: 1 }`;
/// Conv2d's `[N, O, H, W]` is `{ outer: N, channels: O, inner: H·W }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelSumShape {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
}

impl ChannelSumShape {
    pub fn input_len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    /// Elements summed into each channel.
    pub fn count(&self) -> usize {
        self.outer * self.inner
    }
}

/// `out[c] = Σ_{o,i} x[o, c, i]`, or `out[c] += ...` when `accumulate`. Matches
/// `x.sum(dim=(0, 2))` in PyTorch on the `[outer, channels, inner]` view.
pub fn channel_sum(shape: &ChannelSumShape, x: &[f32], accumulate: bool, out: &mut [f32]) {
    for (c, out) in out.iter_mut().enumerate().take(shape.channels) {
        let mut acc = if accumulate { *out as f64 } else { 0.0 };
        for o in 0..shape.outer {
            for i in 0..shape.inner {
                acc += x[(o * shape.channels + c) * shape.inner + i] as f64;
            }
        }
        *out = acc as f32;
    }
}
