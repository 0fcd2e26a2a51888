use crate::gpu::{GpuContext, GpuError};
use crate::graph::{CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels};

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

    fn cpu_forward(
        &self,
        _input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        CpuForward::stateless(input.to_vec())
    }

    fn cpu_backward(
        &self,
        _input_shape: &[usize],
        _input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        CpuBackward {
            grad_input: grad_output.to_vec(),
            param_grads: Vec::new(),
        }
    }
}
