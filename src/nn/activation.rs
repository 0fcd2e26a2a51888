use crate::gpu::{GpuContext, GpuError};
use crate::graph::{CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels, StepHook};
use crate::kernels::elementwise::{
    dropout, relu, relu_backward, reseed_dropout, sigmoid, sigmoid_backward, Dropout as Mask,
};
use crate::reference::elementwise as twin;

/// max(x, 0), as torch.nn.ReLU.
pub struct Relu;

impl Layer for Relu {
    fn kind(&self) -> String {
        "ReLU()".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        let n = io.input_shape.iter().product();
        let backward = match io.grad_input {
            Some(dx) => vec![relu_backward(ctx, n, io.input, io.grad_output, dx)?],
            None => Vec::new(),
        };
        Ok(LayerKernels {
            forward: vec![relu(ctx, n, io.input, io.output)?],
            backward,
            ..Default::default()
        })
    }

    fn cpu_forward(
        &self,
        _input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        CpuForward::stateless(twin::relu(input))
    }

    fn cpu_backward(
        &self,
        _input_shape: &[usize],
        input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        CpuBackward {
            grad_input: twin::relu_backward(input, grad_output),
            param_grads: Vec::new(),
        }
    }
}

/// Zeroes each element with probability p in training and scales survivors by 1/(1−p), as
/// torch.nn.Dropout; the identity in evaluation. A new mask every step.
pub struct Dropout {
    pub p: f32,
}

/// The mask of a step: drawn from the layer's step seed in training, keep-all (p = 0) in
/// evaluation.
fn step_mask(p: f32, training: bool, seed: u64) -> Mask {
    if training {
        Mask::new(p, seed)
    } else {
        Mask::new(0.0, seed)
    }
}

impl Layer for Dropout {
    fn kind(&self) -> String {
        format!("Dropout(p={})", self.p)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        if (0.0..1.0).contains(&self.p) {
            Ok(input.to_vec())
        } else {
            Err(format!("p = {} is outside [0, 1)", self.p))
        }
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        let n: usize = io.input_shape.iter().product();
        // A placeholder seed until the first step's hook.
        let mask = step_mask(self.p, true, 0);
        let forward = dropout(ctx, n, &mask, io.input, io.output)?;
        // Backward applies the same mask to the gradient.
        let backward = match io.grad_input {
            Some(dx) => Some(dropout(ctx, n, &mask, io.grad_output, dx)?),
            None => None,
        };
        let identity = dropout(ctx, n, &step_mask(self.p, false, 0), io.input, io.output)?;
        let p = self.p;
        let (reseed_forward, reseed_backward) = (forward.clone(), backward.clone());
        let hook: StepHook = Box::new(move |ctx, seed| {
            let mask = step_mask(p, true, seed);
            reseed_dropout(ctx, &reseed_forward, n, &mask);
            if let Some(backward) = &reseed_backward {
                reseed_dropout(ctx, backward, n, &mask);
            }
        });
        Ok(LayerKernels {
            forward: vec![forward],
            forward_eval: Some(vec![identity]),
            backward: backward.into_iter().collect(),
            step_hooks: vec![hook],
            ..Default::default()
        })
    }

    fn cpu_forward(
        &self,
        _input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        training: bool,
        seed: u64,
    ) -> CpuForward {
        let mask = step_mask(self.p, training, seed);
        CpuForward {
            output: twin::dropout(&mask, input),
            saved: CpuSaved::DropoutMask(mask),
        }
    }

    fn cpu_backward(
        &self,
        _input_shape: &[usize],
        _input: &[f32],
        saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        let CpuSaved::DropoutMask(mask) = saved else {
            unreachable!("Dropout's CPU forward saves its mask");
        };
        // The same mask applied to the gradient, as the recorded backward.
        CpuBackward {
            grad_input: twin::dropout(mask, grad_output),
            param_grads: Vec::new(),
        }
    }
}

/// 1/(1 + e^−x), as torch.nn.Sigmoid.
pub struct Sigmoid;

impl Layer for Sigmoid {
    fn kind(&self) -> String {
        "Sigmoid()".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok(input.to_vec())
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        let n = io.input_shape.iter().product();
        // The backward reads the forward's output, as PyTorch's.
        let backward = match io.grad_input {
            Some(dx) => vec![sigmoid_backward(ctx, n, io.output, io.grad_output, dx)?],
            None => Vec::new(),
        };
        Ok(LayerKernels {
            forward: vec![sigmoid(ctx, n, io.input, io.output)?],
            backward,
            ..Default::default()
        })
    }

    fn cpu_forward(
        &self,
        _input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        CpuForward::stateless(twin::sigmoid(input))
    }

    fn cpu_backward(
        &self,
        _input_shape: &[usize],
        input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        CpuBackward {
            grad_input: twin::sigmoid_backward(&twin::sigmoid(input), grad_output),
            param_grads: Vec::new(),
        }
    }
}
