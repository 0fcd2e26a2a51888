use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
pub use crate::reference::reduce::ChannelSumShape;
use crate::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    outer: u32,
    channels: u32,
    inner: u32,
    _pad: u32,
}

/// `out[c] = Σ_{o,i} x[o, c, i]` (or `+=` when `accumulate`): one workgroup per channel.
pub fn channel_sum(
    ctx: &GpuContext,
    shape: &ChannelSumShape,
    accumulate: bool,
    x: &GpuBuffer,
    out: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        x.len() >= shape.input_len(),
        "channel_sum: x is too small for {shape:?}"
    );
    assert!(
        out.len() >= shape.channels,
        "channel_sum: out is shorter than {} channels",
        shape.channels
    );
    assert!(shape.inner > 0, "channel_sum: inner must be positive");
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::REDUCE,
        entry: "channel_sum",
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &[
            ("ACCUMULATE", if accumulate { 1.0 } else { 0.0 }),
            (
                "THREADS",
                super::reduction_width(shape.outer * shape.inner) as f64,
            ),
        ],
    })?;
    let params = Params {
        outer: shape.outer as u32,
        channels: shape.channels as u32,
        inner: shape.inner as u32,
        _pad: 0,
    };
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &params,
        &[x, out],
        workgroups_1d(shape.channels),
    )
    .with_cost(Cost {
        flops: shape.input_len() as f64,
        bytes: Cost::words(shape.input_len() + shape.channels * (1 + accumulate as usize)),
    }))
}
