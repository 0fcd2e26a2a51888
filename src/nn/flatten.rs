use crate::gpu::{GpuContext, GpuError};
use crate::graph::{Layer, LayerIo, LayerKernels};

/// [N, C, H, W] → [N, C·H·W]: a view, no data moves.
pub struct Flatten;

impl Layer for Flatten {
    fn kind(&self) -> String {
        "Flatten()".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [batch, rest @ ..] if !rest.is_empty() => Ok(vec![*batch, rest.iter().product()]),
            _ => Err("needs a batch dimension and at least one more".into()),
        }
    }

    fn is_reshape(&self) -> bool {
        true
    }

    fn record(&self, _ctx: &GpuContext, _io: &LayerIo) -> Result<LayerKernels, GpuError> {
        Ok(LayerKernels::default())
    }
}
