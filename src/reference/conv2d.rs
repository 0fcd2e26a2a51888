//! 2-d convolution, NCHW activations and OIHW weights, with its three gradients.
//! Semantics of PyTorch's `torch.nn.functional.conv2d` with dilation 1 and groups 1.

use super::reduce::{channel_sum, ChannelSumShape};

/// One convolution layer applied to a batch: `[batch, in_channels, height, width]` in,
/// `[batch, out_channels, out_height, out_width]` out, weight
/// `[out_channels, in_channels, kernel_h, kernel_w]`. Stride and zero padding are the same
/// along both axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2dShape {
    /// `⌊(height + 2·padding − kernel_h) / stride⌋ + 1`, as PyTorch.
    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel_h) / self.stride + 1
    }

    /// `⌊(width + 2·padding − kernel_w) / stride⌋ + 1`, as PyTorch.
    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel_w) / self.stride + 1
    }

    /// Multiply-adds of the forward pass, counted as two flops each (each gradient costs the same).
    pub fn flops(&self) -> f64 {
        2.0 * (self.output_len() * self.in_channels * self.kernel_h * self.kernel_w) as f64
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel_h * self.kernel_w
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_height() * self.out_width()
    }

    /// Why the shape does not describe a convolution with at least one output pixel, if it
    /// does not.
    pub fn check(&self) -> Result<(), String> {
        if self.stride == 0 {
            return Err("a stride of 0 never moves the kernel".into());
        }
        if self.kernel_h == 0 || self.kernel_w == 0 {
            return Err("a kernel of size 0 covers no pixel".into());
        }
        if self.kernel_h > self.height + 2 * self.padding
            || self.kernel_w > self.width + 2 * self.padding
        {
            return Err("the kernel is larger than the padded input".into());
        }
        Ok(())
    }

    /// Panics unless [`check`](Self::check) passes: kernels trust shapes checked when the
    /// graph was built.
    pub fn validate(&self) {
        if let Err(why) = self.check() {
            panic!("conv2d {self:?}: {why}");
        }
    }

    /// Input row and column read by output pixel (oy, ox) through tap (ky, kx), if inside.
    fn source(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy * self.stride + ky).checked_sub(self.padding)?;
        let ix = (ox * self.stride + kx).checked_sub(self.padding)?;
        (iy < self.height && ix < self.width).then_some((iy, ix))
    }

    /// Calls `f(input index, weight index, output index)` for every multiply-add of the
    /// forward pass; the three passes differ only in which index they accumulate into.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = (self.out_height(), self.out_width());
        for n in 0..self.batch {
            for o in 0..self.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let out = ((n * self.out_channels + o) * oh + oy) * ow + ox;
                        for c in 0..self.in_channels {
                            for ky in 0..self.kernel_h {
                                for kx in 0..self.kernel_w {
                                    if let Some((iy, ix)) = self.source(oy, ox, ky, kx) {
                                        let input = ((n * self.in_channels + c) * self.height + iy)
                                            * self.width
                                            + ix;
                                        let weight = ((o * self.in_channels + c) * self.kernel_h
                                            + ky)
                                            * self.kernel_w
                                            + kx;
                                        f(input, weight, out);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `output[n, o, oy, ox] = bias[o] + Σ_{c,ky,kx} weight[o, c, ky, kx] ·
/// input[n, c, oy·s − p + ky, ox·s − p + kx]` (zero outside the input):
/// `torch.nn.functional.conv2d(input, weight, bias, stride, padding)`.
pub fn forward(
    shape: &Conv2dShape,
    input: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    shape.validate();
    let plane = shape.out_height() * shape.out_width();
    let mut acc: Vec<f64> = (0..shape.output_len())
        .map(|i| bias.map_or(0.0, |b| b[i / plane % shape.out_channels] as f64))
        .collect();
    shape.for_each_tap(|x, w, y| acc[y] += input[x] as f64 * weight[w] as f64);
    store(&acc, false, output);
}

/// dL/dinput from dL/doutput: every input pixel collects `weight · grad_output` over the
/// outputs that read it. `torch.nn.grad.conv2d_input`.
pub fn grad_input(
    shape: &Conv2dShape,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    shape.validate();
    let mut acc = vec![0.0f64; shape.input_len()];
    shape.for_each_tap(|x, w, y| acc[x] += weight[w] as f64 * grad_output[y] as f64);
    store(&acc, false, grad_input);
}

/// dL/dweight = Σ over the batch and output pixels of `grad_output · input`, added to
/// `grad_weight`'s old value when `accumulate`. `torch.nn.grad.conv2d_weight`.
pub fn grad_weight(
    shape: &Conv2dShape,
    grad_output: &[f32],
    input: &[f32],
    accumulate: bool,
    grad_weight: &mut [f32],
) {
    shape.validate();
    let mut acc = vec![0.0f64; shape.weight_len()];
    shape.for_each_tap(|x, w, y| acc[w] += grad_output[y] as f64 * input[x] as f64);
    store(&acc, accumulate, grad_weight);
}

/// `dL/dbias[o] = Σ_{n,oy,ox} grad_output[n, o, oy, ox]` (or `+=` when `accumulate`).
pub fn grad_bias(
    shape: &Conv2dShape,
    grad_output: &[f32],
    accumulate: bool,
    grad_bias: &mut [f32],
) {
    channel_sum(&bias_view(shape), grad_output, accumulate, grad_bias);
}

/// grad_output seen as `[batch, out_channels, out_height·out_width]` for a per-channel sum.
pub fn bias_view(shape: &Conv2dShape) -> ChannelSumShape {
    ChannelSumShape {
        outer: shape.batch,
        channels: shape.out_channels,
        inner: shape.out_height() * shape.out_width(),
    }
}

/// `out = acc` in f32, or `out += acc` (added in f64) when `accumulate`.
pub(super) fn store(acc: &[f64], accumulate: bool, out: &mut [f32]) {
    for (out, &acc) in out.iter_mut().zip(acc) {
        *out = if accumulate {
            (*out as f64 + acc) as f32
        } else {
            acc as f32
        };
    }
}
