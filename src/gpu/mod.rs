//! The GPU layer: adapter choice and device ([`GpuContext`]), buffers, the pipeline cache,
//! dispatches recorded into one submit, and timestamp timing.

mod buffer;
mod context;
mod dispatch;
mod error;
mod pipeline;
mod timing;
mod tuning;

pub use buffer::{GpuBuffer, OrPlaceholder};
pub use context::{AdapterSummary, BackendChoice, GpuContext, GpuOptions};
pub use dispatch::{quad_workgroups, workgroups_1d, Cost, Dispatch, QuadGrid};
pub use error::GpuError;
pub use pipeline::{Binding, Kernel, KernelSpec, Shader};
pub use timing::{GpuTimer, TimingSource};
pub(crate) use tuning::fastest;
