//! Host side of `shaders/lowering.wgsl`: im2col, col2im and the batch↔channel swap, the
//! memory-bound steps of a convolution lowered to matrix products (see
//! [`Conv2dSchedule::Lowered`](super::conv2d_layer::Conv2dSchedule::Lowered)).

use crate::gpu::{
    quad_workgroups, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
use crate::reference::conv2d::Conv2dShape;
pub use crate::reference::lowering::{col_len, col_shape, PatchLayout};
use crate::shaders;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    kernel_h: u32,
    kernel_w: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
    spatial: u32,
    n: u32,
    _pad: u32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::LOWERING, Params:
        batch, channels, height, width, kernel_h, kernel_w, padding, out_h, out_w, spatial, n,
        _pad
    )]
}

impl Params {
    fn conv(shape: &Conv2dShape, n: usize) -> Self {
        Params {
            batch: shape.batch as u32,
            channels: shape.in_channels as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            kernel_h: shape.kernel_h as u32,
            kernel_w: shape.kernel_w as u32,
            padding: shape.padding as u32,
            out_h: shape.out_height() as u32,
            out_w: shape.out_width() as u32,
            n: n as u32,
            ..Params::default()
        }
    }
}

/// One launch writing `n` elements of `dst` from `src` (and reading `extra`, bound after them);
/// `bytes` is what it moves.
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    constants: &[(&'static str, f64)],
    params: Params,
    (src, dst, extra): (&GpuBuffer, &GpuBuffer, Option<&GpuBuffer>),
    bytes: f64,
) -> Result<Dispatch, GpuError> {
    let n = params.n as usize;
    assert!(dst.len() >= n, "{entry}: the output is shorter than {n}");
    assert!(
        u32::try_from(src.len().max(n)).is_ok(),
        "{entry}: more elements than a u32 indexes"
    );
    let bindings = [
        Binding::Uniform,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ];
    let buffers: Vec<&GpuBuffer> = [src, dst].into_iter().chain(extra).collect();
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::LOWERING,
        entry,
        bindings: &bindings[..1 + buffers.len()],
        constants,
    })?;
    let cost = Cost { flops: 0.0, bytes };
    Ok(Dispatch::new(ctx, &kernel, &params, &buffers, quad_workgroups(n)).with_cost(cost))
}

/// The shader's constant for `layout`.
fn tap_major(layout: PatchLayout) -> (&'static str, f64) {
    let on = layout == PatchLayout::TapMajor;
    ("TAP_MAJOR", if on { 1.0 } else { 0.0 })
}

/// `col = im2col(input)`: the `[batch·out_h·out_w, in_channels·kernel_h·kernel_w]` patch
/// matrix, or its transpose (see [`crate::reference::lowering::im2col`]).
pub fn im2col(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    layout: PatchLayout,
    input: &GpuBuffer,
    col: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    shape.validate();
    assert!(input.len() >= shape.input_len(), "im2col: input too short");
    let n = col_len(shape);
    // Each patch entry is written once; the input is read about kernel_h·kernel_w times, mostly
    // from cache, so count it once.
    let bytes = Cost::words(n + shape.input_len());
    let params = Params::conv(shape, n);
    let constants = [("STRIDE", shape.stride as f64), tap_major(layout)];
    launch(ctx, "im2col", &constants, params, (input, col, None), bytes)
}

/// `grad_input = col2im(grad_col) (+ bias per channel)`, im2col's adjoint: each input pixel
/// gathers the patch entries that were read from it, `grad_col` laid out as `layout`.
pub fn col2im(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    layout: PatchLayout,
    grad_col: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    grad_input: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    shape.validate();
    assert!(
        grad_col.len() >= col_len(shape),
        "col2im: patch matrix too short"
    );
    assert!(
        bias.is_none_or(|bias| bias.len() >= shape.in_channels),
        "col2im: bias is shorter than {} channels",
        shape.in_channels
    );
    let n = shape.input_len();
    let bias_len = bias.map_or(0, |_| shape.in_channels);
    let bytes = Cost::words(n + col_len(shape) + bias_len);
    let params = Params::conv(shape, n);
    let constants = [
        ("STRIDE", shape.stride as f64),
        ("BIAS", if bias.is_some() { 1.0 } else { 0.0 }),
        tap_major(layout),
    ];
    let bias = GpuBuffer::or_placeholder(ctx, bias, "no bias");
    launch(
        ctx,
        "col2im",
        &constants,
        params,
        (grad_col, grad_input, Some(&bias)),
        bytes,
    )
}

/// `y[c, b, s] = x[b, c, s]`: a `[batch, channels, spatial]` tensor with its first two axes
/// swapped.
pub fn swap_batch_channel(
    ctx: &GpuContext,
    [batch, channels, spatial]: [usize; 3],
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let n = batch * channels * spatial;
    assert!(n > 0, "swap_batch_channel: empty tensor");
    assert!(x.len() >= n, "swap_batch_channel: input too short");
    let params = Params {
        batch: batch as u32,
        channels: channels as u32,
        spatial: spatial as u32,
        n: n as u32,
        ..Params::default()
    };
    let bytes = Cost::words(2 * n);
    launch(ctx, "swap_batch_channel", &[], params, (x, y, None), bytes)
}
