//! Host side of `shaders/pool.wgsl`: max pooling with argmax indices and global average
//! pooling, forward and backward. Semantics are those of the twins in `reference::pool`.

use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
pub use crate::reference::pool::{GlobalPoolShape, Pool2dShape};
use crate::shaders;

/// Planes at most this large are averaged by one invocation each; larger ones by a workgroup.
const THREAD_PER_PLANE_MAX: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kernel: u32,
    stride: u32,
    _pad: u32,
}

impl Params {
    fn max_pool(shape: &Pool2dShape) -> Self {
        Params {
            planes: shape.planes() as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            out_height: shape.out_height() as u32,
            out_width: shape.out_width() as u32,
            kernel: shape.kernel as u32,
            stride: shape.stride as u32,
            _pad: 0,
        }
    }

    fn global(shape: &GlobalPoolShape) -> Self {
        Params {
            planes: shape.planes() as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            out_height: 1,
            out_width: 1,
            kernel: 0,
            stride: 0,
            _pad: 0,
        }
    }
}

/// `y` and `indices` (u32, position within the (n, c) plane) of a max pool over `x`.
pub fn max_pool2d(
    ctx: &GpuContext,
    shape: &Pool2dShape,
    x: &GpuBuffer,
    y: &GpuBuffer,
    indices: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        x.len() >= shape.input_len(),
        "max_pool2d: x is too small for {shape:?}"
    );
    assert!(
        y.len() >= shape.output_len(),
        "max_pool2d: y is too small for {shape:?}"
    );
    assert!(
        indices.len() >= shape.output_len(),
        "max_pool2d: indices is too small for {shape:?}"
    );
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::POOL,
        entry: "max_pool2d",
        bindings: &[
            Binding::Uniform,
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadWrite,
        ],
        constants: &[
            ("KERNEL", shape.kernel as f64),
            ("STRIDE", shape.stride as f64),
        ],
    })?;
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &Params::max_pool(shape),
        &[x, y, indices],
        workgroups_1d(shape.output_len().div_ceil(64)),
    )
    .with_cost(Cost {
        // One comparison per window tap.
        flops: (shape.output_len() * shape.kernel * shape.kernel) as f64,
        bytes: Cost::words(shape.input_len() + 2 * shape.output_len()),
    }))
}

/// `dx` (overwritten) from `dy` and the forward's `indices`. Windows that tile the input
/// exactly (the models' case) scatter, one invocation per window; other non-overlapping
/// windows gather without a loop; overlapping ones gather over every window holding an element.
pub fn max_pool2d_backward(
    ctx: &GpuContext,
    shape: &Pool2dShape,
    dy: &GpuBuffer,
    indices: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        dy.len() >= shape.output_len(),
        "max_pool2d_backward: dy is too small for {shape:?}"
    );
    assert!(
        indices.len() >= shape.output_len(),
        "max_pool2d_backward: indices is too small for {shape:?}"
    );
    assert!(
        dx.len() >= shape.input_len(),
        "max_pool2d_backward: dx is too small for {shape:?}"
    );
    // Windows that tile the input exactly scatter from each window; otherwise gather.
    let tiled = shape.kernel == shape.stride
        && shape.height % shape.stride == 0
        && shape.width % shape.stride == 0;
    let window = [
        ("KERNEL", shape.kernel as f64),
        ("STRIDE", shape.stride as f64),
    ];
    let (entry, invocations, constants) = if tiled {
        (
            "max_pool2d_backward_tiled",
            shape.output_len(),
            window[..1].to_vec(),
        )
    } else {
        let overlapping = ("OVERLAPPING", if shape.overlapping() { 1.0 } else { 0.0 });
        (
            "max_pool2d_backward",
            shape.input_len(),
            [&[overlapping][..], &window].concat(),
        )
    };
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::POOL,
        entry,
        bindings: &[
            Binding::Uniform,
            Binding::ReadOnly,
            Binding::ReadOnly,
            Binding::ReadWrite,
        ],
        constants: &constants,
    })?;
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &Params::max_pool(shape),
        &[dy, indices, dx],
        workgroups_1d(invocations.div_ceil(64)),
    )
    .with_cost(Cost {
        // A scatter: data movement only.
        flops: 0.0,
        bytes: Cost::words(2 * shape.output_len() + shape.input_len()),
    }))
}

/// `y[n·C + c]` = mean of plane (n, c) of `x`.
pub fn global_avg_pool(
    ctx: &GpuContext,
    shape: &GlobalPoolShape,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        x.len() >= shape.input_len(),
        "global_avg_pool: x is too small for {shape:?}"
    );
    assert!(
        y.len() >= shape.planes(),
        "global_avg_pool: y is too small for {shape:?}"
    );
    let per_thread = shape.plane_len() <= THREAD_PER_PLANE_MAX;
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::POOL,
        entry: if per_thread {
            "global_avg_pool_thread"
        } else {
            "global_avg_pool_workgroup"
        },
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &[],
    })?;
    let workgroups = if per_thread {
        shape.planes().div_ceil(64)
    } else {
        shape.planes()
    };
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &Params::global(shape),
        &[x, y],
        workgroups_1d(workgroups),
    )
    .with_cost(Cost {
        flops: shape.input_len() as f64,
        bytes: Cost::words(shape.input_len() + shape.planes()),
    }))
}

/// `dx` (overwritten) = `dy[n·C + c] / (height·width)` over each plane.
pub fn global_avg_pool_backward(
    ctx: &GpuContext,
    shape: &GlobalPoolShape,
    dy: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        dy.len() >= shape.planes(),
        "global_avg_pool_backward: dy is too small for {shape:?}"
    );
    assert!(
        dx.len() >= shape.input_len(),
        "global_avg_pool_backward: dx is too small for {shape:?}"
    );
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::POOL,
        entry: "global_avg_pool_backward",
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &[],
    })?;
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &Params::global(shape),
        &[dy, dx],
        workgroups_1d(shape.input_len().div_ceil(256)),
    )
    .with_cost(Cost {
        flops: shape.input_len() as f64,
        bytes: Cost::words(shape.planes() + shape.input_len()),
    }))
}
