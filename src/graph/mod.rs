//! The host graph. A model is a static sequence of layers whose shapes are known before
//! training starts; [`Plan`] instantiates it at one batch size, creating every activation and
//! gradient buffer, bind group and pipeline once. A step is then nothing but recording those
//! dispatches into one command encoder.

mod cpu;
mod error;
mod layer;
mod param;
mod plan;

pub use cpu::CpuStep;
pub use error::GraphError;
pub use layer::{
    CpuBackward, CpuForward, CpuSaved, DeferredInput, EpilogueKind, EpilogueStep, Fused, Layer,
    LayerIo, LayerKernels, StepHook,
};
pub use param::{FlatParameters, Init, ParamSpec, Parameter, ParameterStore};
pub use plan::{layer_seed, Model, Plan};
