//! Host side of the transposed convolution (`torch.nn.ConvTranspose2d`): no shader of its own,
//! but `shaders/conv2d.wgsl`'s three passes over [`ConvTranspose2dShape::conv`], the
//! convolution it is the transpose of, with the roles swapped:
//!
//! | transposed pass | conv2d pass                | A      | B     | C      |
//! |-----------------|----------------------------|--------|-------|--------|
//! | forward         | grad-input, + bias per row | weight | input | output |
//! | grad-input      | forward, no bias           | weight | dY    | dx     |
//! | grad-weight     | grad-weight                | input  | dY    | dW     |
//!
//! The weight `[in, out, kh, kw]` is read as the convolution's OIHW weight unchanged.
//! Grad-bias is a [`channel_sum`] of dY.

use super::conv2d::{Gemm, Pass};
use super::reduce::channel_sum;
use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::reference::conv_transpose2d::bias_view;
pub use crate::reference::conv_transpose2d::ConvTranspose2dShape;

/// The buffers of `output = conv_transpose2d(input, weight) + bias`.
pub struct ConvTranspose2dOperands<'a> {
    /// `[batch, in_channels, height, width]`
    pub input: &'a GpuBuffer,
    /// `[in_channels, out_channels, kernel_h, kernel_w]`
    pub weight: &'a GpuBuffer,
    /// `[out_channels]`, added per output channel.
    pub bias: Option<&'a GpuBuffer>,
    /// `[batch, out_channels, out_height, out_width]`
    pub output: &'a GpuBuffer,
}

/// `output = conv_transpose2d(input, weight) + bias`
/// (`torch.nn.functional.conv_transpose2d`).
pub fn conv_transpose2d_forward(
    ctx: &GpuContext,
    shape: &ConvTranspose2dShape,
    operands: ConvTranspose2dOperands,
) -> Result<Dispatch, GpuError> {
    shape.validate();
    let gemm = Gemm {
        pass: Pass::GradInput,
        a: operands.weight,
        b: operands.input,
        bias: operands.bias,
        c: operands.output,
        accumulate: false,
    };
    gemm.dispatch(ctx, &shape.conv())
}

/// `grad_input = dL/dinput` from `grad_output = dL/doutput`.
pub fn conv_transpose2d_grad_input(
    ctx: &GpuContext,
    shape: &ConvTranspose2dShape,
    weight: &GpuBuffer,
    grad_output: &GpuBuffer,
    grad_input: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    shape.validate();
    let gemm = Gemm {
        pass: Pass::Forward,
        a: weight,
        b: grad_output,
        bias: None,
        c: grad_input,
        accumulate: false,
    };
    gemm.dispatch(ctx, &shape.conv())
}

/// `grad_weight (+)= dL/dweight`, summed over the batch; `accumulate` adds to the old contents.
pub fn conv_transpose2d_grad_weight(
    ctx: &GpuContext,
    shape: &ConvTranspose2dShape,
    accumulate: bool,
    grad_output: &GpuBuffer,
    input: &GpuBuffer,
    grad_weight: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    shape.validate();
    let gemm = Gemm {
        pass: Pass::GradWeight,
        a: input,
        b: grad_output,
        bias: None,
        c: grad_weight,
        accumulate,
    };
    gemm.dispatch(ctx, &shape.conv())
}

/// `grad_bias (+)= Σ_{n,oy,ox} grad_output[n, ·, oy, ox]`: a per-channel sum over
/// `[batch, out_channels, out_height·out_width]`.
pub fn conv_transpose2d_grad_bias(
    ctx: &GpuContext,
    shape: &ConvTranspose2dShape,
    accumulate: bool,
    grad_output: &GpuBuffer,
    grad_bias: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    channel_sum(ctx, &bias_view(shape), accumulate, grad_output, grad_bias)
}
