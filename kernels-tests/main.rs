//! Every GPU kernel held against its CPU twin in `src/reference/`, on a real adapter
//! (lavapipe in CI), plus finite-difference checks of every backward twin and naga
//! validation of every shader. One file per kernel family.

mod common;

mod augment;
mod batchnorm;
mod concat;
mod conv2d;
mod conv_transpose2d;
mod elementwise;
mod lowering;
mod matmul;
mod optim;
mod pool;
mod reduce;
mod shaders;
mod softmax_ce;
mod winograd;
