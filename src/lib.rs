//! fer: a GPU training engine for facial-expression recognition. Every kernel is a WGSL compute
//! shader run through wgpu, with a plain CPU twin in [`reference`](mod@reference) that
//! specifies it.

pub mod bench;
pub mod data;
pub mod fsutil;
pub mod gpu;
pub mod graph;
pub mod infer;
pub mod kernels;
pub mod nn;
pub mod onnx;
pub mod profile;
pub mod reference;
pub mod report;
pub mod rng;
pub mod shaders;
pub mod train;
