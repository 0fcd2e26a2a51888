//! Host side of every shader: bindings, dispatch geometry and a typed call that returns a
//! [`Dispatch`](crate::gpu::Dispatch) ready to record. One module per `.wgsl` file.

pub mod batchnorm;
pub mod conv2d;
pub mod elementwise;
pub mod matmul;
pub mod optim;
pub mod peak;
pub mod pool;
pub mod reduce;
pub mod softmax_ce;
