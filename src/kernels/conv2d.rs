//! Host side of `shaders/conv2d.wgsl`: forward, grad-input and grad-weight share one implicit
//! GEMM kernel specialised by its MODE constant; grad-bias is a [`channel_sum`].

use crate::gpu::{Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec};
use crate::reference::conv2d::bias_view;
pub use crate::reference::conv2d::Conv2dShape;
use crate::shaders;

use super::reduce::channel_sum;

/// Which product the kernel computes; the value is the shader's MODE.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pass {
    Forward = 0,
    GradInput = 1,
    GradWeight = 2,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    in_channels: u32,
    out_channels: u32,
    height: u32,
    width: u32,
    kernel_h: u32,
    kernel_w: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
    m: u32,
    n: u32,
    k: u32,
    vec4_a: u32,
    _pad: [u32; 2],
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::CONV2D, Params:
        batch, in_channels, out_channels, height, width, kernel_h, kernel_w, padding, out_h,
        out_w, m, n, k, vec4_a, _pad
    )]
}

/// The buffers of `output = conv2d(input, weight) + bias`.
pub struct Conv2dOperands<'a> {
    /// `[batch, in_channels, height, width]`
    pub input: &'a GpuBuffer,
    /// `[out_channels, in_channels, kernel_h, kernel_w]`
    pub weight: &'a GpuBuffer,
    /// `[out_channels]`, added per output channel.
    pub bias: Option<&'a GpuBuffer>,
    /// `[batch, out_channels, out_height, out_width]`
    pub output: &'a GpuBuffer,
}

/// `output = conv2d(input, weight) + bias` (`torch.nn.functional.conv2d`).
pub fn conv2d_forward(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    operands: Conv2dOperands,
) -> Result<Dispatch, GpuError> {
    let Conv2dOperands {
        input,
        weight,
        bias,
        output,
    } = operands;
    let gemm = Gemm {
        pass: Pass::Forward,
        a: weight,
        b: input,
        bias,
        c: output,
        accumulate: false,
    };
    gemm.dispatch(ctx, shape)
}

/// `grad_input = dL/dinput` from `grad_output = dL/doutput` (`torch.nn.grad.conv2d_input`).
pub fn conv2d_grad_input(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    weight: &GpuBuffer,
    grad_output: &GpuBuffer,
    grad_input: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let gemm = Gemm {
        pass: Pass::GradInput,
        a: weight,
        b: grad_output,
        bias: None,
        c: grad_input,
        accumulate: false,
    };
    gemm.dispatch(ctx, shape)
}

/// `grad_weight (+)= dL/dweight`, summed over the batch (`torch.nn.grad.conv2d_weight`);
/// `accumulate` adds to the old contents.
pub fn conv2d_grad_weight(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    accumulate: bool,
    grad_output: &GpuBuffer,
    input: &GpuBuffer,
    grad_weight: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let gemm = Gemm {
        pass: Pass::GradWeight,
        a: grad_output,
        b: input,
        bias: None,
        c: grad_weight,
        accumulate,
    };
    gemm.dispatch(ctx, shape)
}

/// `grad_bias (+)= Σ_{n,oy,ox} grad_output[n, ·, oy, ox]`: a per-channel sum over
/// `[batch, out_channels, out_height·out_width]`.
pub fn conv2d_grad_bias(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    accumulate: bool,
    grad_output: &GpuBuffer,
    grad_bias: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    channel_sum(ctx, &bias_view(shape), accumulate, grad_output, grad_bias)
}

/// One pass as the shader's GEMM: `c (+)= a · b (+ bias per row of c)`. The transposed
/// convolution runs these with the roles swapped (see [`super::conv_transpose2d`]).
pub(super) struct Gemm<'a> {
    pub pass: Pass,
    pub a: &'a GpuBuffer,
    pub b: &'a GpuBuffer,
    /// Per output channel forward, per input channel in grad-input.
    pub bias: Option<&'a GpuBuffer>,
    pub c: &'a GpuBuffer,
    pub accumulate: bool,
}

impl Gemm<'_> {
    pub fn dispatch(&self, ctx: &GpuContext, shape: &Conv2dShape) -> Result<Dispatch, GpuError> {
        shape.validate();
        let (oh, ow) = (shape.out_height(), shape.out_width());
        let taps = shape.kernel_h * shape.kernel_w;
        // (m, n, k, grid depth, |a|, |b|, |c|) of the product, by pass.
        let (m, n, k, depth, a_len, b_len, c_len) = match self.pass {
            Pass::Forward => (
                shape.out_channels,
                oh * ow,
                shape.in_channels * taps,
                shape.batch,
                shape.weight_len(),
                shape.input_len(),
                shape.output_len(),
            ),
            Pass::GradInput => (
                shape.in_channels,
                shape.height * shape.width,
                shape.out_channels * taps,
                shape.batch,
                shape.weight_len(),
                shape.output_len(),
                shape.input_len(),
            ),
            Pass::GradWeight => (
                shape.out_channels,
                shape.in_channels * taps,
                shape.batch * oh * ow,
                1,
                shape.output_len(),
                shape.input_len(),
                shape.weight_len(),
            ),
        };
        let what = format!("conv2d {:?}", self.pass);
        assert!(
            self.a.len() >= a_len,
            "{what}: A is too small for {shape:?}"
        );
        assert!(
            self.b.len() >= b_len,
            "{what}: B is too small for {shape:?}"
        );
        assert!(
            self.c.len() >= c_len,
            "{what}: C is too small for {shape:?}"
        );
        assert!(
            self.bias.is_none_or(|bias| bias.len() >= m),
            "{what}: bias is shorter than {m} channels"
        );
        // The shader indexes with i32; a workgroup covers 8 rows and 256 columns of C.
        let largest = a_len.max(b_len).max(c_len);
        assert!(
            largest <= i32::MAX as usize,
            "{what}: {largest} elements exceed i32 indexing"
        );
        let grid = [n.div_ceil(256), m.div_ceil(8), depth];
        assert!(
            grid.iter().all(|&g| g <= 65_535),
            "{what}: grid {grid:?} exceeds 65 535 workgroups on an axis"
        );
        // Where A's rows and the 4-runs of the reduction index sit on 16-byte boundaries, A is
        // read a vec4 at a time: the weight's rows in the forward pass, dY's planes in
        // grad-weight. Grad-input gathers the weight transposed, so never.
        let vec4_a = match self.pass {
            Pass::Forward => k % 4 == 0,
            Pass::GradInput => false,
            Pass::GradWeight => (oh * ow) % 4 == 0,
        };
        // Where an invocation's four columns are neighbours in one image row (four output
        // pixels forward, four input pixels for grad-input), a 3-wide kernel's taps share a
        // window of b (the shader's ROW_WINDOW). Wider kernels spill its registers.
        let row_window = shape.stride == 1
            && shape.kernel_w == 3
            && match self.pass {
                Pass::Forward => ow % 4 == 0,
                Pass::GradInput => shape.width % 4 == 0,
                Pass::GradWeight => false,
            };
        let flag = |on: bool| if on { 1.0 } else { 0.0 };
        let kernel = ctx.kernel(&KernelSpec {
            shader: &shaders::CONV2D,
            entry: "conv2d",
            bindings: &[
                Binding::Uniform,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadWrite,
            ],
            constants: &[
                ("MODE", self.pass as u32 as f64),
                ("STRIDE", shape.stride as f64),
                ("BIAS", flag(self.bias.is_some())),
                ("ACCUMULATE", flag(self.accumulate)),
                ("ROW_WINDOW", flag(row_window)),
            ],
        })?;
        let params = Params {
            batch: shape.batch as u32,
            in_channels: shape.in_channels as u32,
            out_channels: shape.out_channels as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            kernel_h: shape.kernel_h as u32,
            kernel_w: shape.kernel_w as u32,
            padding: shape.padding as u32,
            out_h: oh as u32,
            out_w: ow as u32,
            m: m as u32,
            n: n as u32,
            k: k as u32,
            vec4_a: vec4_a as u32,
            _pad: [0; 2],
        };
        // Each pass is the same number of multiply-adds; accumulating reads C as well.
        let c_passes = if self.accumulate { 2 } else { 1 };
        let cost = Cost {
            flops: shape.flops(),
            bytes: Cost::words(a_len + b_len + c_passes * c_len + self.bias.map_or(0, |_| m)),
        };
        let bias = GpuBuffer::or_placeholder(ctx, self.bias, "no bias");
        Ok(Dispatch::new(
            ctx,
            &kernel,
            &params,
            &[self.a, self.b, &bias, self.c],
            grid.map(|g| g as u32),
        )
        .with_cost(cost))
    }
}
