use thiserror::Error;

use crate::gpu::GpuError;

#[derive(Debug, Error)]
pub enum GraphError {
    #[error("layer `{layer}` ({kind}) cannot take input of shape {got:?}: {why}")]
    Shape {
        layer: String,
        kind: String,
        got: Vec<usize>,
        why: String,
    },
    #[error(transparent)]
    Gpu(#[from] GpuError),
}
