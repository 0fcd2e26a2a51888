//! Host side of `shaders/concat.wgsl`: one kernel that copies a range of channels, serving
//! concatenation along channels forward ([`ChannelCopy::concat`]) and backward
//! ([`ChannelCopy::reversed`]).

use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
pub use crate::reference::concat::ChannelCopy;
use crate::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    run: u32,
    src_item: u32,
    src_start: u32,
    dst_item: u32,
    dst_start: u32,
    _pad: [u32; 2],
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::CONCAT, Params:
        batch, run, src_item, src_start, dst_item, dst_start, _pad
    )]
}

/// Does `copy` from `src` into `dst` (twin: [`crate::reference::concat::copy_channels`]).
pub fn copy_channels(
    ctx: &GpuContext,
    copy: &ChannelCopy,
    src: &GpuBuffer,
    dst: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    if let Err(problem) = copy.check() {
        panic!("copy_channels {copy:?}: {problem}");
    }
    assert!(
        src.len() >= copy.src_len() && dst.len() >= copy.dst_len(),
        "copy_channels: src or dst is too small for {copy:?}"
    );
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::CONCAT,
        entry: "copy_channels",
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &[],
    })?;
    let run = copy.channels * copy.spatial;
    let params = Params {
        batch: copy.batch as u32,
        run: run as u32,
        src_item: (copy.src_channels * copy.spatial) as u32,
        src_start: (copy.src_offset * copy.spatial) as u32,
        dst_item: (copy.dst_channels * copy.spatial) as u32,
        dst_start: (copy.dst_offset * copy.spatial) as u32,
        _pad: [0; 2],
    };
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &params,
        &[src, dst],
        workgroups_1d(run.div_ceil(256)),
    )
    .with_cost(Cost {
        flops: 0.0,
        bytes: Cost::words(2 * copy.batch * run),
    }))
}
