use crate::gpu::{GpuContext, GpuError};
use crate::graph::{CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels, ParamSpec};
use crate::kernels::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use crate::kernels::reduce::{channel_sum, ChannelSumShape};
use crate::reference;

use super::BiasGradient;

/// `y = x·Wᵀ + b` on [batch, inputs], as torch.nn.Linear.
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
}

/// The products and sum of one Linear at one batch size, shared by the GPU record and the
/// CPU twin.
struct LinearShapes {
    /// y = x·Wᵀ (+ b).
    forward: MatmulShape,
    /// dW = dyᵀ·x.
    grad_weight: MatmulShape,
    /// db = Σ_batch dy.
    grad_bias: ChannelSumShape,
    /// dx = dy·W.
    grad_input: MatmulShape,
}

impl Linear {
    fn shapes(&self, batch: usize) -> LinearShapes {
        LinearShapes {
            forward: MatmulShape {
                trans_b: true,
                ..MatmulShape::new(batch, self.outputs, self.inputs)
            },
            grad_weight: MatmulShape {
                trans_a: true,
                ..MatmulShape::new(self.outputs, self.inputs, batch)
            },
            grad_bias: ChannelSumShape {
                outer: batch,
                channels: self.outputs,
                inner: 1,
            },
            grad_input: MatmulShape::new(batch, self.inputs, self.outputs),
        }
    }
}

impl Linear {
    /// Records the layer with its bias gradient reduced here or written by another kernel.
    pub(crate) fn record_with(
        &self,
        ctx: &GpuContext,
        io: &LayerIo,
        bias_gradient: BiasGradient,
    ) -> Result<LayerKernels, GpuError> {
        let shapes = self.shapes(io.input_shape[0]);
        let (weight, bias) = (io.params[0], io.params[1]);
        let product = |shape: &MatmulShape, operands| {
            let variant = MatmulVariant::tuned(ctx, shape)?;
            matmul(ctx, variant, shape, Epilogue::default(), operands)
        };
        let forward = product(
            &shapes.forward,
            MatmulOperands {
                a: io.input,
                b: &weight.value,
                bias: Some(&bias.value),
                c: io.output,
            },
        )?;
        let mut backward = vec![product(
            &shapes.grad_weight,
            MatmulOperands {
                a: io.grad_output,
                b: io.input,
                bias: None,
                c: weight.grad(),
            },
        )?];
        if bias_gradient == BiasGradient::Reduced {
            backward.push(channel_sum(
                ctx,
                &shapes.grad_bias,
                false,
                io.grad_output,
                bias.grad(),
            )?);
        }
        if let Some(grad_input) = io.grad_input {
            backward.push(product(
                &shapes.grad_input,
                MatmulOperands {
                    a: io.grad_output,
                    b: &weight.value,
                    bias: None,
                    c: grad_input,
                },
            )?);
        }
        Ok(LayerKernels {
            forward: vec![forward],
            backward,
            ..Default::default()
        })
    }
}

impl Layer for Linear {
    fn kind(&self) -> String {
        format!("Linear({}, {})", self.inputs, self.outputs)
    }

    fn flops(&self, input_shape: &[usize], _output_shape: &[usize]) -> f64 {
        2.0 * (input_shape[0] * self.inputs * self.outputs) as f64
    }

    fn params(&self) -> Vec<ParamSpec> {
        super::weight_and_bias(vec![self.outputs, self.inputs], self.inputs, self.outputs)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [batch, features] if *features == self.inputs => Ok(vec![*batch, self.outputs]),
            _ => Err(format!("expects [batch, {}]", self.inputs)),
        }
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        self.record_with(ctx, io, BiasGradient::Reduced)
    }

    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        let shape = self.shapes(input_shape[0]).forward;
        let mut output = vec![0.0; shape.c_len()];
        let (weight, bias) = (&params[0], &params[1]);
        let epilogue = Epilogue::default();
        reference::matmul::matmul(&shape, input, weight, Some(bias), epilogue, &mut output);
        CpuForward::stateless(output)
    }

    fn cpu_backward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        params: &[Vec<f32>],
    ) -> CpuBackward {
        let shapes = self.shapes(input_shape[0]);
        let product = |shape: &MatmulShape, a, b| {
            let mut c = vec![0.0; shape.c_len()];
            reference::matmul::matmul(shape, a, b, None, Epilogue::default(), &mut c);
            c
        };
        let mut grad_bias = vec![0.0; self.outputs];
        reference::reduce::channel_sum(&shapes.grad_bias, grad_output, false, &mut grad_bias);
        CpuBackward {
            grad_input: product(&shapes.grad_input, grad_output, &params[0]),
            param_grads: vec![product(&shapes.grad_weight, grad_output, input), grad_bias],
        }
    }
}
