use crate::gpu::{GpuContext, GpuError};
use crate::graph::{Layer, LayerIo, LayerKernels, StepHook};
use crate::kernels::elementwise::{dropout, relu, relu_backward, reseed_dropout, Dropout as Mask};

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
}

/// Zeroes each element with probability p in training and scales survivors by 1/(1−p), as
/// torch.nn.Dropout; the identity in evaluation. A new mask every step.
pub struct Dropout {
    pub p: f32,
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
        let mask = Mask::new(self.p, 0);
        let forward = dropout(ctx, n, &mask, io.input, io.output)?;
        // Backward applies the same mask to the gradient.
        let backward = match io.grad_input {
            Some(dx) => Some(dropout(ctx, n, &mask, io.grad_output, dx)?),
            None => None,
        };
        let identity = dropout(ctx, n, &Mask::new(0.0, 0), io.input, io.output)?;
        let p = self.p;
        let (reseed_forward, reseed_backward) = (forward.clone(), backward.clone());
        let hook: StepHook = Box::new(move |ctx, seed| {
            let mask = Mask::new(p, seed);
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
        })
    }
}
