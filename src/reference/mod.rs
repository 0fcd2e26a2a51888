//! CPU twins of every GPU kernel: plain loops with f64 accumulation, no cleverness.
//! They are the specification; `kernels-tests/` holds each kernel against its twin.

pub mod augment;
pub mod batchnorm;
pub mod concat;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod lowering;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod softmax_ce;
pub mod winograd;
