use thiserror::Error;

use crate::gpu::GpuError;

#[derive(Debug, Error)]
pub enum GraphError {
    #[error("layer `{layer}` ({kind}) cannot take input of shape {got}: {why}")]
    Shape {
        layer: String,
        kind: String,
        /// The input shapes, e.g. `[64, 32, 12, 12]`, or two joined by "and".
        got: String,
        why: String,
    },
    #[error(
        "the model's trainable tensors need {mib} MiB in one buffer (the optimizer updates them \
         in one dispatch), more than the {limit_mib} MiB this adapter can bind; the largest is \
         `{largest}` {shape:?} ({largest_mib} MiB): splitting tensors across bindings is not \
         done yet"
    )]
    ParametersTooLarge {
        mib: u64,
        limit_mib: u64,
        largest: String,
        shape: Vec<usize>,
        largest_mib: u64,
    },
    #[error("node `{node}`: {why}")]
    Structure { node: String, why: String },
    #[error(
        "layer `{layer}` ({kind}) needs a buffer of {mib} MiB for its output {shape:?}, more \
         than the {limit_mib} MiB this adapter can bind: use a smaller batch size"
    )]
    TooLarge {
        layer: String,
        kind: String,
        shape: Vec<usize>,
        mib: u64,
        limit_mib: u64,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}
