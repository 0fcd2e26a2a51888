//! Host side of `shaders/pool.wgsl`: max pooling with argmax indices, average pooling (fixed,
//! adaptive and global windows), forward and backward. Semantics are those of the twins in
//! `reference::pool`.

use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
use crate::reference::elementwise::Dropout;
pub use crate::reference::pool::{AdaptivePoolShape, GlobalPoolShape, Pool2dShape};
use crate::shaders;

/// How the max-pool kernels spread their windows over invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolLayout {
    /// One window per invocation, neighbouring windows in neighbouring lanes (coalesced on a
    /// GPU).
    Windows,
    /// One row of windows per invocation: the plane and row cost one division per row instead
    /// of three per window, which a CPU adapter (no SIMD integer division) pays lane by lane.
    /// On lavapipe it more than halves max pooling's time (scaled cnn: forward 10.5–10.7 →
    /// 5.9–6.0 ms a step, backward 7.6 → 2.7–2.8).
    Rows,
}

impl PoolLayout {
    pub const ALL: [PoolLayout; 2] = [PoolLayout::Windows, PoolLayout::Rows];

    /// Rows on a software adapter, windows on a GPU.
    pub fn for_adapter(ctx: &GpuContext) -> Self {
        if ctx.summary().is_software() {
            PoolLayout::Rows
        } else {
            PoolLayout::Windows
        }
    }

    /// Of a kernel's two entry points (`windows`, and `rows` = the same with `_rows`), the one
    /// for this layout and its grid over `shape`.
    fn kernel(
        self,
        windows: &'static str,
        rows: &'static str,
        shape: &Pool2dShape,
    ) -> (&'static str, [u32; 3]) {
        match self {
            PoolLayout::Windows => (windows, workgroups_1d(shape.output_len().div_ceil(64))),
            PoolLayout::Rows => (
                rows,
                workgroups_1d((shape.planes() * shape.out_height()).div_ceil(64)),
            ),
        }
    }
}

/// The pipeline constants that place `shape`'s windows (`KERNEL`, `STRIDE`, `PADDING`,
/// `CLIPPED`).
fn window_constants(shape: &Pool2dShape) -> [(&'static str, f64); 4] {
    [
        ("KERNEL", shape.kernel as f64),
        ("STRIDE", shape.stride as f64),
        ("PADDING", shape.padding as f64),
        ("CLIPPED", if shape.clipped() { 1.0 } else { 0.0 }),
    ]
}

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
    dropout_seed_lo: u32,
    dropout_seed_hi: u32,
    dropout_threshold: u32,
    dropout_scale: f32,
    channels: u32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::POOL, Params:
        planes, height, width, out_height, out_width, kernel, stride, dropout_seed_lo,
        dropout_seed_hi, dropout_threshold, dropout_scale, channels
    )]
}

impl Params {
    /// A max pool's, with the dropout it applies after itself (see [`max_pool2d`]), or an
    /// average pool's.
    fn windows(shape: &Pool2dShape, dropout: Option<&Dropout>) -> Self {
        Params {
            planes: shape.planes() as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            out_height: shape.out_height() as u32,
            out_width: shape.out_width() as u32,
            kernel: shape.kernel as u32,
            stride: shape.stride as u32,
            dropout_seed_lo: dropout.map_or(0, |d| d.seed as u32),
            dropout_seed_hi: dropout.map_or(0, |d| (d.seed >> 32) as u32),
            dropout_threshold: dropout.map_or(0, Dropout::threshold),
            dropout_scale: dropout.map_or(1.0, Dropout::scale),
            channels: shape.channels as u32,
        }
    }

    fn adaptive(shape: &AdaptivePoolShape) -> Self {
        Params {
            planes: shape.planes() as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            out_height: shape.out_height as u32,
            out_width: shape.out_width as u32,
            kernel: 0,
            stride: 0,
            dropout_seed_lo: 0,
            dropout_seed_hi: 0,
            dropout_threshold: 0,
            dropout_scale: 1.0,
            channels: shape.channels as u32,
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
            dropout_seed_lo: 0,
            dropout_seed_hi: 0,
            dropout_threshold: 0,
            dropout_scale: 1.0,
            channels: shape.channels as u32,
        }
    }
}

/// What max pool forward reads and writes.
pub struct MaxPoolForwardBuffers<'a> {
    pub x: &'a GpuBuffer,
    pub y: &'a GpuBuffer,
    /// u32, each window's winner as its position within the (n, c) plane.
    pub indices: &'a GpuBuffer,
    /// Where `x` is a batch norm's input whose output (with its fused ReLU) was left unwritten,
    /// the map its training forward wrote instead ([`super::batchnorm::TrainOutput::Deferred`]):
    /// the pool reads relu(fma(γ·invstd, x − mean, β)) per channel, the value the batch norm
    /// would have stored.
    pub batchnorm_map: Option<&'a GpuBuffer>,
}

/// `y` and `indices` of a max pool. With `dropout`, `y` is that dropout of the max pool's
/// output, and a dropped window's index is `u32::MAX`, which routes it no gradient in
/// [`max_pool2d_backward`] (twin: the max pool, then
/// [`crate::reference::elementwise::dropout`]).
pub fn max_pool2d(
    ctx: &GpuContext,
    shape: &Pool2dShape,
    layout: PoolLayout,
    dropout: Option<&Dropout>,
    buffers: MaxPoolForwardBuffers,
) -> Result<Dispatch, GpuError> {
    let MaxPoolForwardBuffers {
        x,
        y,
        indices,
        batchnorm_map,
    } = buffers;
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
    if let Some(map) = batchnorm_map {
        assert!(
            map.len() >= 4 * shape.channels,
            "max_pool2d: the batch norm map is too small for {shape:?}"
        );
    }
    let (entry, grid) = layout.kernel("max_pool2d", "max_pool2d_rows", shape);
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::POOL,
        entry,
        bindings: &[
            Binding::Uniform,
            Binding::ReadOnly,
            Binding::ReadWrite,
            Binding::ReadWrite,
            Binding::ReadOnly,
        ],
        constants: &[
            &window_constants(shape)[..],
            &[
                ("DROPOUT", if dropout.is_some() { 1.0 } else { 0.0 }),
                (
                    "BATCHNORM_PROLOGUE",
                    if batchnorm_map.is_some() { 1.0 } else { 0.0 },
                ),
            ],
        ]
        .concat(),
    })?;
    let map = GpuBuffer::or_placeholder(ctx, batchnorm_map, "max pool no batch norm map");
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &Params::windows(shape, dropout),
        &[x, y, indices, &map],
        grid,
    )
    .with_cost(Cost {
        // One comparison per window tap.
        flops: (shape.output_len() * shape.kernel * shape.kernel) as f64,
        bytes: Cost::words(shape.input_len() + 2 * shape.output_len()),
    }))
}

/// Points a dispatch made by [`max_pool2d`] with a dropout at another mask (a new step's
/// seed) in place.
pub fn reseed_max_pool2d(
    ctx: &GpuContext,
    dispatch: &Dispatch,
    shape: &Pool2dShape,
    dropout: &Dropout,
) {
    dispatch.set_params(ctx, &Params::windows(shape, Some(dropout)));
}

/// What max pool backward reads and writes.
pub struct MaxPoolBackwardBuffers<'a> {
    pub dy: &'a GpuBuffer,
    /// The forward's.
    pub indices: &'a GpuBuffer,
    /// Overwritten.
    pub dx: &'a GpuBuffer,
    /// The forward's output, where a ReLU produced its input and this kernel applies that
    /// ReLU's backward: `dx` is then the gradient of the ReLU's input, a window's gradient
    /// reaching its winner only where the output is positive (twin: the max pool's backward,
    /// then [`crate::reference::elementwise::relu_backward`]).
    pub relu_gate: Option<&'a GpuBuffer>,
}

/// `dx` from `dy` and the forward's `indices`. Windows that tile the input exactly (the
/// models' usual case) scatter, spread over invocations by `layout`; other non-overlapping windows
/// gather without a loop; overlapping ones gather over every window holding an element. With
/// the forward's `dropout`, `dy` is the gradient of the dropout's output (any seed: the
/// indices hold the mask).
pub fn max_pool2d_backward(
    ctx: &GpuContext,
    shape: &Pool2dShape,
    layout: PoolLayout,
    dropout: Option<&Dropout>,
    buffers: MaxPoolBackwardBuffers,
) -> Result<Dispatch, GpuError> {
    let MaxPoolBackwardBuffers {
        dy,
        indices,
        dx,
        relu_gate,
    } = buffers;
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
        && shape.padding == 0
        && shape.height % shape.stride == 0
        && shape.width % shape.stride == 0;
    if let Some(y) = relu_gate {
        assert!(
            y.len() >= shape.output_len(),
            "max_pool2d_backward: y is too small for {shape:?}"
        );
    }
    let gate = ("RELU_GATE", if relu_gate.is_some() { 1.0 } else { 0.0 });
    let window = [&[gate][..], &window_constants(shape)].concat();
    let (entry, grid, constants) = if tiled {
        let (entry, grid) = layout.kernel(
            "max_pool2d_backward_tiled",
            "max_pool2d_backward_tiled_rows",
            shape,
        );
        (entry, grid, window)
    } else {
        let overlapping = ("OVERLAPPING", if shape.overlapping() { 1.0 } else { 0.0 });
        (
            "max_pool2d_backward",
            workgroups_1d(shape.input_len().div_ceil(64)),
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
            Binding::ReadOnly,
        ],
        constants: &constants,
    })?;
    let y = GpuBuffer::or_placeholder(ctx, relu_gate, "max pool backward no gate");
    Ok(Dispatch::new(
        ctx,
        &kernel,
        &Params::windows(shape, dropout),
        &[dy, indices, dx, &y],
        grid,
    )
    .with_cost(Cost {
        // A scatter: data movement only.
        flops: 0.0,
        bytes: Cost::words(
            (2 + usize::from(relu_gate.is_some())) * shape.output_len() + shape.input_len(),
        ),
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

/// Which way an average pool runs: one invocation per output window, or backward, per input
/// element or row of elements.
#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Backward(PoolLayout),
}

/// One average-pool launch over the planes `params` describes, its windows placed by
/// `constants`; `buffers` are (x, y) forward and (dy, dx) backward.
fn average(
    ctx: &GpuContext,
    direction: Direction,
    constants: &[(&'static str, f64)],
    params: &Params,
    buffers: [&GpuBuffer; 2],
) -> Result<Dispatch, GpuError> {
    let input_len = (params.planes * params.height * params.width) as usize;
    let output_len = (params.planes * params.out_height * params.out_width) as usize;
    let (entry, invocations) = match direction {
        Direction::Forward => ("avg_pool2d", output_len),
        Direction::Backward(PoolLayout::Windows) => ("avg_pool2d_backward", input_len),
        Direction::Backward(PoolLayout::Rows) => (
            "avg_pool2d_backward_rows",
            (params.planes * params.height) as usize,
        ),
    };
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::POOL,
        entry,
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants,
    })?;
    Ok(Dispatch::new(
        ctx,
        &kernel,
        params,
        &buffers,
        workgroups_1d(invocations.div_ceil(64)),
    )
    .with_cost(Cost {
        // An addition per input element in a window, a division per window (or the reverse).
        flops: (input_len + output_len) as f64,
        bytes: Cost::words(input_len + output_len),
    }))
}

/// `y` = `x` averaged over `shape`'s windows (`AvgPool2d(k, s, p, ceil_mode)` with
/// `count_include_pad`).
pub fn avg_pool2d(
    ctx: &GpuContext,
    shape: &Pool2dShape,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        x.len() >= shape.input_len() && y.len() >= shape.output_len(),
        "avg_pool2d: x or y is too small for {shape:?}"
    );
    average(
        ctx,
        Direction::Forward,
        &window_constants(shape),
        &Params::windows(shape, None),
        [x, y],
    )
}

/// `dx` (overwritten) from `dy` of [`avg_pool2d`], each element or row of elements
/// (`layout`) gathering from the windows that hold it. On lavapipe rows take about half the
/// time (unet's k5/s2 over 32×16×48×48: 41 → 22 ms; resnet's k5/s1 over 32×256×6×6: 7.5 → 5.0).
pub fn avg_pool2d_backward(
    ctx: &GpuContext,
    shape: &Pool2dShape,
    layout: PoolLayout,
    dy: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        dy.len() >= shape.output_len() && dx.len() >= shape.input_len(),
        "avg_pool2d_backward: dy or dx is too small for {shape:?}"
    );
    average(
        ctx,
        Direction::Backward(layout),
        &window_constants(shape),
        &Params::windows(shape, None),
        [dy, dx],
    )
}

/// `y` = `x` averaged over PyTorch's adaptive windows. To 1×1 this is [`global_avg_pool`].
pub fn adaptive_avg_pool2d(
    ctx: &GpuContext,
    shape: &AdaptivePoolShape,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    if let Some(global) = shape.global() {
        return global_avg_pool(ctx, &global, x, y);
    }
    assert!(
        x.len() >= shape.input_len() && y.len() >= shape.output_len(),
        "adaptive_avg_pool2d: x or y is too small for {shape:?}"
    );
    average(
        ctx,
        Direction::Forward,
        &[("ADAPTIVE", 1.0)],
        &Params::adaptive(shape),
        [x, y],
    )
}

/// `dx` (overwritten) from `dy` of [`adaptive_avg_pool2d`], laid out as
/// [`avg_pool2d_backward`]. From 1×1 this is [`global_avg_pool_backward`].
pub fn adaptive_avg_pool2d_backward(
    ctx: &GpuContext,
    shape: &AdaptivePoolShape,
    layout: PoolLayout,
    dy: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    if let Some(global) = shape.global() {
        return global_avg_pool_backward(ctx, &global, dy, dx);
    }
    assert!(
        dy.len() >= shape.output_len() && dx.len() >= shape.input_len(),
        "adaptive_avg_pool2d_backward: dy or dx is too small for {shape:?}"
    );
    average(
        ctx,
        Direction::Backward(layout),
        &[("ADAPTIVE", 1.0)],
        &Params::adaptive(shape),
        [dy, dx],
    )
}
