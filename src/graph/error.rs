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
        "tensor `{tensor}` {shape:?} needs {} in one buffer, more than the {} this adapter can \
         allocate",
        Size(*bytes),
        Size(*limit)
    )]
    TensorTooLarge {
        tensor: String,
        shape: Vec<usize>,
        bytes: u64,
        limit: u64,
    },
    #[error(
        "the model's trainable tensors need {} in one buffer, more than the {} this adapter can \
         allocate; the largest is `{largest}` {shape:?} ({})",
        Size(*bytes),
        Size(*limit),
        Size(*largest_bytes)
    )]
    ParametersTooLarge {
        bytes: u64,
        limit: u64,
        largest: String,
        shape: Vec<usize>,
        largest_bytes: u64,
    },
    #[error(
        "layer `{layer}` ({kind}) binds its tensor {tensor} {piece}, more than the {} this \
         adapter can bind at once",
        Size(*limit)
    )]
    TensorUnbindable {
        layer: String,
        kind: String,
        /// Its name and shape: `` `conv.weight` [32, 1, 5, 5] ``.
        tensor: String,
        /// How it binds the tensor and how large that is: `whole, 300 MiB`.
        piece: String,
        limit: u64,
    },
    #[error("node `{node}`: {why}")]
    Structure { node: String, why: String },
    #[error(
        "layer `{layer}` ({kind}) needs a buffer of {} for its output {shape:?}, more than the \
         {} this adapter can bind: use a smaller batch size",
        Size(*bytes),
        Size(*limit)
    )]
    TooLarge {
        layer: String,
        kind: String,
        shape: Vec<usize>,
        bytes: u64,
        limit: u64,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

/// A size in bytes as an error states it: MiB (rounded up) from 1 MiB, bytes below.
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1 << 20;
        match self.0 {
            bytes if bytes >= MIB => write!(f, "{} MiB", bytes.div_ceil(MIB)),
            bytes => write!(f, "{bytes} bytes"),
        }
    }
}
