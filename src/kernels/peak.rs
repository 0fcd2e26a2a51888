//! Host side of `shaders/peak.wgsl`: the microbenchmarks behind `fer bench peak`. Each call
//! also returns the work it does, so a caller turns a time into a rate without knowing the
//! shader's loop structure.

use crate::gpu::{workgroups_1d, Binding, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec};
use crate::shaders;

/// Invocations per workgroup (`WG` in the shader).
const WORKGROUP: usize = 256;
/// FLOPs of one loop trip of `fma_chains`: 32 vec4 fma's of 2 FLOPs per lane.
const FLOPS_PER_TRIP: f64 = 32.0 * 4.0 * 2.0;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    _pad: [u32; 3],
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::PEAK, Params: count, _pad)]
}

/// A dispatch with the floating-point operations or bytes of memory traffic it performs.
pub struct Work {
    pub dispatch: Dispatch,
    pub amount: f64,
}

fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    bindings: &[Binding],
    count: usize,
    buffers: &[&GpuBuffer],
    workgroups: usize,
) -> Result<Dispatch, GpuError> {
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::PEAK,
        entry,
        bindings,
        constants: &[],
    })?;
    let params = Params {
        count: count as u32,
        _pad: [0; 3],
    };
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &params,
        buffers,
        workgroups_1d(workgroups),
    ))
}

/// Invocations of a grid of `workgroups`, counting those the fold into y rounds up.
fn grid_invocations(workgroups: usize) -> usize {
    let [x, y, z] = workgroups_1d(workgroups);
    (x * y * z) as usize * WORKGROUP
}

/// `workgroups` × 256 invocations, each `trips` × 32 independent vec4 fma's, writing one f32
/// each to a sink of its own. Work: FLOPs.
pub fn fma_chains(ctx: &GpuContext, workgroups: usize, trips: u32) -> Result<Work, GpuError> {
    let invocations = grid_invocations(workgroups);
    let sink = GpuBuffer::zeros(ctx, "fma_chains sink", invocations);
    Ok(Work {
        dispatch: launch(
            ctx,
            "fma_chains",
            &[Binding::Uniform, Binding::ReadWrite],
            trips as usize,
            &[&sink],
            workgroups,
        )?,
        amount: invocations as f64 * trips as f64 * FLOPS_PER_TRIP,
    })
}

/// Grid-stride launches use at most `workgroups`, and no more than the data needs.
fn stride_workgroups(vec4s: usize, workgroups: usize) -> usize {
    vec4s.div_ceil(WORKGROUP).clamp(1, workgroups.max(1))
}

/// `dst = src` over their common length, rounded down to whole vec4's, by at most
/// `workgroups`. Work: bytes read and written.
pub fn copy(
    ctx: &GpuContext,
    src: &GpuBuffer,
    dst: &GpuBuffer,
    workgroups: usize,
) -> Result<Work, GpuError> {
    let vec4s = src.len().min(dst.len()) / 4;
    Ok(Work {
        dispatch: launch(
            ctx,
            "copy",
            &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
            vec4s,
            &[src, dst],
            stride_workgroups(vec4s, workgroups),
        )?,
        amount: 32.0 * vec4s as f64,
    })
}

/// Sums `src` (whole vec4's) into one partial sum per invocation of at most `workgroups`, in a
/// buffer of its own (the dispatch's bind group keeps it alive). Work: bytes read and written.
pub fn read_sum(ctx: &GpuContext, src: &GpuBuffer, workgroups: usize) -> Result<Work, GpuError> {
    let vec4s = src.len() / 4;
    let workgroups = stride_workgroups(vec4s, workgroups);
    let partial = GpuBuffer::zeros(ctx, "read_sum partial sums", grid_invocations(workgroups));
    Ok(Work {
        dispatch: launch(
            ctx,
            "read_sum",
            &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
            vec4s,
            &[src, &partial],
            workgroups,
        )?,
        amount: 16.0 * vec4s as f64 + 4.0 * partial.len() as f64,
    })
}
