//! Transposed 2-d convolution, NCHW activations and `[in, out, kh, kw]` weights, with its three
//! gradients. Semantics of PyTorch's `torch.nn.ConvTranspose2d` with output padding 0,
//! dilation 1 and groups 1, written from its definition: every input pixel scatters its
//! value, times the kernel, onto the output window it covers.

use super::conv2d::{store, Conv2dShape};
use super::reduce::{channel_sum, ChannelSumShape};

/// One transposed convolution applied to a batch: `[batch, in_channels, height, width]` in,
/// `[batch, out_channels, out_height, out_width]` out, weight
/// `[in_channels, out_channels, kernel_h, kernel_w]`. Stride and padding are the same along
/// both axes; the padding crops the scattered result's border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dShape {
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

impl ConvTranspose2dShape {
    /// `(height − 1)·stride − 2·padding + kernel_h`, as PyTorch.
    pub fn out_height(&self) -> usize {
        (self.height - 1) * self.stride + self.kernel_h - 2 * self.padding
    }

    /// `(width − 1)·stride − 2·padding + kernel_w`, as PyTorch.
    pub fn out_width(&self) -> usize {
        (self.width - 1) * self.stride + self.kernel_w - 2 * self.padding
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.height * self.width
    }

    pub fn weight_len(&self) -> usize {
        self.in_channels * self.out_channels * self.kernel_h * self.kernel_w
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_height() * self.out_width()
    }

    /// Why the shape describes no transposed convolution (a zero size, or a padding that crops
    /// the whole output), if it does not.
    pub fn check(&self) -> Result<(), String> {
        let sizes = [
            ("batch", self.batch),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("the input's height", self.height),
            ("the input's width", self.width),
            ("kernel_size", self.kernel_h),
            ("kernel_size", self.kernel_w),
            ("stride", self.stride),
        ];
        if let Some((size, _)) = sizes.iter().find(|(_, value)| *value == 0) {
            return Err(format!("{size} is 0"));
        }
        let cropped =
            |size: usize, kernel: usize| (size - 1) * self.stride + kernel <= 2 * self.padding;
        if cropped(self.height, self.kernel_h) || cropped(self.width, self.kernel_w) {
            return Err(format!(
                "padding {} crops the whole {}×{} output",
                self.padding,
                (self.height - 1) * self.stride + self.kernel_h,
                (self.width - 1) * self.stride + self.kernel_w,
            ));
        }
        Ok(())
    }

    /// Panics unless [`check`](Self::check) passes: kernels trust shapes checked when the
    /// graph was built.
    pub fn validate(&self) {
        if let Err(why) = self.check() {
            panic!("conv_transpose2d {self:?}: {why}");
        }
    }

    /// The convolution this is the transpose of: from the output's size to the input's, with
    /// the same weight read as OIHW. Its grad-input is this forward pass, its forward this
    /// grad-input, and its grad-weight with input and output gradient swapped this grad-weight.
    pub fn conv(&self) -> Conv2dShape {
        Conv2dShape {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            height: self.out_height(),
            width: self.out_width(),
            kernel_h: self.kernel_h,
            kernel_w: self.kernel_w,
            stride: self.stride,
            padding: self.padding,
        }
    }

    /// Output row and column that input pixel (iy, ix) reaches through tap (ky, kx), if not
    /// cropped.
    fn target(&self, iy: usize, ix: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
        let oy = (iy * self.stride + ky).checked_sub(self.padding)?;
        let ox = (ix * self.stride + kx).checked_sub(self.padding)?;
        (oy < self.out_height() && ox < self.out_width()).then_some((oy, ox))
    }

    /// Calls `f(input index, weight index, output index)` for every multiply-add of the
    /// forward scatter; the three passes differ only in which index they accumulate into.
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (oh, ow) = (self.out_height(), self.out_width());
        for n in 0..self.batch {
            for c in 0..self.in_channels {
                for iy in 0..self.height {
                    for ix in 0..self.width {
                        let input =
                            ((n * self.in_channels + c) * self.height + iy) * self.width + ix;
                        for o in 0..self.out_channels {
                            for ky in 0..self.kernel_h {
                                for kx in 0..self.kernel_w {
                                    if let Some((oy, ox)) = self.target(iy, ix, ky, kx) {
                                        let weight = ((c * self.out_channels + o) * self.kernel_h
                                            + ky)
                                            * self.kernel_w
                                            + kx;
                                        let out = ((n * self.out_channels + o) * oh + oy) * ow + ox;
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

/// `output[n, o, iy·s − p + ky, ix·s − p + kx] += input[n, c, iy, ix] · weight[c, o, ky, kx]`
/// over every input pixel and tap that lands inside the output, plus `bias[o]`:
/// `torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding)`.
pub fn forward(
    shape: &ConvTranspose2dShape,
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
/// output pixels it was scattered onto.
pub fn grad_input(
    shape: &ConvTranspose2dShape,
    weight: &[f32],
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    shape.validate();
    let mut acc = vec![0.0f64; shape.input_len()];
    shape.for_each_tap(|x, w, y| acc[x] += weight[w] as f64 * grad_output[y] as f64);
    store(&acc, false, grad_input);
}

/// dL/dweight = Σ over the batch and input pixels of `input · grad_output`, added to
/// `grad_weight`'s old value when `accumulate`.
pub fn grad_weight(
    shape: &ConvTranspose2dShape,
    grad_output: &[f32],
    input: &[f32],
    accumulate: bool,
    grad_weight: &mut [f32],
) {
    shape.validate();
    let mut acc = vec![0.0f64; shape.weight_len()];
    shape.for_each_tap(|x, w, y| acc[w] += input[x] as f64 * grad_output[y] as f64);
    store(&acc, accumulate, grad_weight);
}

/// `dL/dbias[o] = Σ_{n,oy,ox} grad_output[n, o, oy, ox]` (or `+=` when `accumulate`).
pub fn grad_bias(
    shape: &ConvTranspose2dShape,
    grad_output: &[f32],
    accumulate: bool,
    grad_bias: &mut [f32],
) {
    channel_sum(&bias_view(shape), grad_output, accumulate, grad_bias);
}

/// grad_output seen as `[batch, out_channels, out_height·out_width]` for a per-channel sum.
pub fn bias_view(shape: &ConvTranspose2dShape) -> ChannelSumShape {
    ChannelSumShape {
        outer: shape.batch,
        channels: shape.out_channels,
        inner: shape.out_height() * shape.out_width(),
    }
}
