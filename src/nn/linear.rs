use crate::gpu::{GpuContext, GpuError};
use crate::graph::{Layer, LayerIo, LayerKernels, ParamSpec};
use crate::kernels::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use crate::kernels::reduce::{channel_sum, ChannelSumShape};

/// `y = x·Wᵀ + b` on [batch, inputs], as torch.nn.Linear.
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
}

impl Layer for Linear {
    fn kind(&self) -> String {
        format!("Linear({}, {})", self.inputs, self.outputs)
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
        let batch = io.input_shape[0];
        let (weight, bias) = (io.params[0], io.params[1]);
        let variant = MatmulVariant::preferred(ctx.summary());
        let product = |shape: MatmulShape, operands| {
            matmul(ctx, variant, &shape, Epilogue::default(), operands)
        };
        let forward = product(
            MatmulShape {
                trans_b: true,
                ..MatmulShape::new(batch, self.outputs, self.inputs)
            },
            MatmulOperands {
                a: io.input,
                b: &weight.value,
                bias: Some(&bias.value),
                c: io.output,
            },
        )?;
        // dW = dyᵀ·x, db = Σ_batch dy, dx = dy·W.
        let mut backward = vec![
            product(
                MatmulShape {
                    trans_a: true,
                    ..MatmulShape::new(self.outputs, self.inputs, batch)
                },
                MatmulOperands {
                    a: io.grad_output,
                    b: io.input,
                    bias: None,
                    c: weight.grad(),
                },
            )?,
            channel_sum(
                ctx,
                &ChannelSumShape {
                    outer: batch,
                    channels: self.outputs,
                    inner: 1,
                },
                false,
                io.grad_output,
                bias.grad(),
            )?,
        ];
        if let Some(grad_input) = io.grad_input {
            backward.push(product(
                MatmulShape::new(batch, self.inputs, self.outputs),
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
