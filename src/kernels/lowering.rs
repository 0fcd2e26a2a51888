//! Host side of `shaders/lowering.wgsl`: im2col, col2im and the batch↔channel swap, the
//! memory-bound steps of a convolution lowered to matrix products (see
//! [`Conv2dSchedule::Lowered`](super::conv2d_layer::Conv2dSchedule::Lowered)).

use crate::gpu::{
    quad_workgroups, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
use crate::reference::conv2d::Conv2dShape;
pub use crate::reference::lowering::{col_len, col_shape};
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

/// One launch writing `n` elements of `dst` from `src`; `bytes` is what it moves.
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    stride: usize,
    params: Params,
    (src, dst): (&GpuBuffer, &GpuBuffer),
    bytes: f64,
) -> Result<Dispatch, GpuError> {
    let n = params.n as usize;
    assert!(dst.len() >= n, "{entry}: the output is shorter than {n}");
    assert!(
        u32::try_from(src.len().max(n)).is_ok(),
        "{entry}: more elements than a u32 indexes"
    );
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::LOWERING,
        entry,
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &[("STRIDE", stride as f64)],
    })?;
    let cost = Cost { flops: 0.0, bytes };
    Ok(Dispatch::new(ctx, &kernel, &params, &[src, dst], quad_workgroups(n)).with_cost(cost))
}

/// `col = im2col(input)`: the `[batch·out_h·out_w, in_channels·kernel_h·kernel_w]` patch
/// matrix (see [`crate::reference::lowering::im2col`]).
pub fn im2col(
    ctx: &GpuContext,
    shape: &Conv2dShape,
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
    launch(ctx, "im2col", shape.stride, params, (input, col), bytes)
}

/// `grad_input = col2im(grad_col)`, im2col's adjoint: each input pixel gathers the patch
/// entries that were read from it.
pub fn col2im(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    grad_col: &GpuBuffer,
    grad_input: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    shape.validate();
    assert!(
        grad_col.len() >= col_len(shape),
        "col2im: patch matrix too short"
    );
    let n = shape.input_len();
    let bytes = Cost::words(n + col_len(shape));
    let params = Params::conv(shape, n);
    launch(
        ctx,
        "col2im",
        shape.stride,
        params,
        (grad_col, grad_input),
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
    launch(ctx, "swap_batch_channel", 1, params, (x, y), bytes)
}
