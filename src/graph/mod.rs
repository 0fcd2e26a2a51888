//! The host graph. A model is a static DAG of nodes (layers and joins) whose shapes are known
//! before training starts; a fusion pass groups its nodes into units, and [`Plan`]
//! instantiates it at one batch size, creating every activation and gradient buffer, bind
//! group and pipeline once. A step is then nothing but recording those dispatches into one
//! command encoder.

mod cpu;
mod error;
mod fusion;
mod join;
mod layer;
mod model;
mod param;
mod plan;

pub use cpu::CpuStep;
pub use error::GraphError;
pub use fusion::{Block, BlockIo, Fusion, Unit};
pub use join::{Join, JoinIo};
pub use layer::{
    layer_as, CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels, StepHook,
};
pub use model::{Graph, Model, Node, Op, Value};
pub use param::{FlatParameters, Init, ParamSpec, Parameter, ParameterStore};
pub use plan::{layer_seed, Plan};
