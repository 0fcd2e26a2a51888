use crate::gpu::{
    quad_workgroups, workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError,
    KernelSpec,
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

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::REDUCE, Params: outer, channels, inner, _pad)]
}

/// Whether [`channel_sum`] runs as `column_sum`: one invocation per four channels, each adding
/// its column of `outer` values in order, where rows are single values and there are few.
pub fn sums_columns(shape: &ChannelSumShape) -> bool {
    super::walks_columns(shape.outer, shape.inner)
}

/// `out[c] = Σ_{o,i} x[o, c, i]` (or `+=` when `accumulate`): one workgroup per channel, or
/// column_sum (see [`sums_columns`]).
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
    // column_sum has no workgroup tree, so no THREADS.
    let (entry, threads, workgroups) = if sums_columns(shape) {
        ("column_sum", None, quad_workgroups(shape.channels))
    } else {
        let threads = super::reduction_width(shape.outer * shape.inner);
        ("channel_sum", Some(threads), workgroups_1d(shape.channels))
    };
    let mut constants = vec![("ACCUMULATE", if accumulate { 1.0 } else { 0.0 })];
    constants.extend(threads.map(|threads| ("THREADS", threads as f64)));
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::REDUCE,
        entry,
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &constants,
    })?;
    let params = Params {
        outer: shape.outer as u32,
        channels: shape.channels as u32,
        inner: shape.inner as u32,
        _pad: 0,
    };
    Ok(
        Dispatch::new(ctx, &kernel, &params, &[x, out], workgroups).with_cost(Cost {
            flops: shape.input_len() as f64,
            bytes: Cost::words(shape.input_len() + shape.channels * (1 + accumulate as usize)),
        }),
    )
}
