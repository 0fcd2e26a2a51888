//! Host side of every shader: bindings, dispatch geometry and a typed call that returns a
//! [`Dispatch`](crate::gpu::Dispatch) ready to record. One module per `.wgsl` file.

pub mod batchnorm;
pub mod conv2d;
pub mod conv2d_layer;
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
