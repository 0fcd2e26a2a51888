//! Host side of every shader: bindings, dispatch geometry and a typed call that returns a
//! [`Dispatch`](crate::gpu::Dispatch) ready to record. One module per `.wgsl` file.

pub mod augment;
pub mod batchnorm;
pub mod concat;
pub mod conv2d;
pub mod conv2d_layer;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod lowering;
pub mod matmul;
pub mod optim;
pub mod peak;
pub mod pool;
pub mod reduce;
pub mod softmax_ce;

/// Invocations per workgroup for a reduction over `count` values per workgroup: a power of two
/// leaving each invocation at least 32 values, at most 256. Small reductions (a Linear layer's
/// batch of 64) then take a few invocations and barriers instead of 256, which matters most on
/// CPU adapters, where a barrier costs more than the additions it separates.
pub fn reduction_width(count: usize) -> u32 {
    let wanted = (count / 32).clamp(1, 256);
    1 << wanted.ilog2()
}

/// Whether a per-channel reduction over `[rows, channels, inner]` walks columns: one invocation
/// per quad of adjacent channels adding its `rows` values in order, instead of a workgroup tree
/// per channel. That pays where each row holds one value per channel (inner = 1: a Linear
/// layer's batch) and the rows are few enough for one invocation to walk (a tree would give its
/// invocations a handful of values each between barriers).
pub fn walks_columns(rows: usize, inner: usize) -> bool {
    inner == 1 && rows <= 1024
}
