use std::ops::Range;

use crate::gpu::{AdapterSummary, GpuBuffer, GpuContext, GpuError};
use crate::graph::{CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels, ParamSpec};
use crate::kernels::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use crate::kernels::reduce::{channel_sum, ChannelSumShape};
use crate::reference;

use super::BiasGradient;

/// `y = x·Wᵀ + b` on [batch, inputs], as torch.nn.Linear.
///
/// A weight larger than one storage binding is recorded in blocks of whole rows (output
/// features; each block contiguous in the [outputs, inputs] weight): a block's forward writes
/// its columns of y, its grad-weight reads its columns of dy into its rows of dW, and the
/// blocks' grad-inputs add up into dx. Each output is computed as without blocks, so the
/// forward and the weight gradient are the same; dx sums its terms block by block.
pub struct Linear {
    pub inputs: usize,
    pub outputs: usize,
}

/// The products of one Linear at one batch size over `rows` rows of its weight (all of them,
/// or one block).
struct LinearProducts {
    /// y[:, rows] = x·W[rows]ᵀ (+ b[rows]).
    forward: MatmulShape,
    /// dW[rows] = dy[:, rows]ᵀ·x.
    grad_weight: MatmulShape,
    /// dx (+)= dy[:, rows]·W[rows].
    grad_input: MatmulShape,
}

impl Linear {
    fn products(&self, batch: usize, rows: usize) -> LinearProducts {
        // y's and dy's rows are `outputs` apart, however many columns a block covers.
        let row_stride = Some(self.outputs);
        LinearProducts {
            forward: MatmulShape {
                trans_b: true,
                ldc: row_stride,
                ..MatmulShape::new(batch, rows, self.inputs)
            },
            grad_weight: MatmulShape {
                trans_a: true,
                lda: row_stride,
                ..MatmulShape::new(rows, self.inputs, batch)
            },
            grad_input: MatmulShape {
                lda: row_stride,
                ..MatmulShape::new(batch, self.inputs, rows)
            },
        }
    }

    /// db = Σ_batch dy.
    fn grad_bias(&self, batch: usize) -> ChannelSumShape {
        ChannelSumShape {
            outer: batch,
            channels: self.outputs,
            inner: 1,
        }
    }

    /// The blocks of weight rows its products bind at once: one block when the weight fits one
    /// storage binding, else as many rows as a binding holds, each block starting on a row
    /// that keeps its views of the weight, the bias, y and dy on the adapter's alignment.
    /// `None` when even that many rows are over the limit.
    pub fn weight_row_blocks(&self, adapter: &AdapterSummary) -> Option<Vec<Range<usize>>> {
        let binding = adapter.max_binding_len();
        let align = adapter.view_alignment();
        let rows = if self.outputs * self.inputs <= binding {
            self.outputs.max(1)
        } else {
            binding / self.inputs / align * align
        };
        (rows > 0).then(|| {
            (0..self.outputs)
                .step_by(rows)
                .map(|start| start..self.outputs.min(start + rows))
                .collect()
        })
    }

    /// Records the layer with its bias gradient reduced here or written by another kernel.
    pub(crate) fn record_with(
        &self,
        ctx: &GpuContext,
        io: &LayerIo,
        bias_gradient: BiasGradient,
    ) -> Result<LayerKernels, GpuError> {
        let batch = io.input_shape[0];
        let (weight, bias) = (io.params[0], io.params[1]);
        let blocks = self
            .weight_row_blocks(ctx.summary())
            .expect("the plan refuses a Linear whose weight does not split");
        let product = |shape: &MatmulShape, epilogue, operands: MatmulOperands<'_>| {
            let variant = MatmulVariant::tuned(ctx, shape)?;
            matmul(ctx, variant, shape, epilogue, operands)
        };
        let plain = Epilogue::default();
        let mut forward = Vec::new();
        let mut grad_weight = Vec::new();
        let mut grad_input = Vec::new();
        for (index, rows) in blocks.into_iter().enumerate() {
            let products = self.products(batch, rows.len());
            let weight_rows = |buffer: &GpuBuffer| {
                buffer.view(rows.start * self.inputs, rows.len() * self.inputs)
            };
            // The block's columns of y or dy: from its first column to the end of its last row.
            let columns = |buffer: &GpuBuffer| buffer.view(rows.start, products.forward.c_len());
            let block_weight = weight_rows(&weight.value);
            let block_grad_output = columns(io.grad_output);
            forward.extend(product(
                &products.forward,
                plain,
                MatmulOperands {
                    a: io.input,
                    b: &block_weight,
                    bias: Some(&bias.value.view(rows.start, rows.len())),
                    c: &columns(io.output),
                },
            )?);
            grad_weight.extend(product(
                &products.grad_weight,
                plain,
                MatmulOperands {
                    a: &block_grad_output,
                    b: io.input,
                    bias: None,
                    c: &weight_rows(weight.grad()),
                },
            )?);
            if let Some(dx) = io.grad_input {
                // The first block writes dx; the others add to it.
                let epilogue = Epilogue {
                    accumulate: index > 0,
                    ..plain
                };
                grad_input.extend(product(
                    &products.grad_input,
                    epilogue,
                    MatmulOperands {
                        a: &block_grad_output,
                        b: &block_weight,
                        bias: None,
                        c: dx,
                    },
                )?);
            }
        }
        let mut backward = grad_weight;
        if bias_gradient == BiasGradient::Reduced {
            backward.push(channel_sum(
                ctx,
                &self.grad_bias(batch),
                false,
                io.grad_output,
                bias.grad(),
            )?);
        }
        backward.extend(grad_input);
        Ok(LayerKernels {
            forward,
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
        let shape = self.products(input_shape[0], self.outputs).forward;
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
        let batch = input_shape[0];
        let products = self.products(batch, self.outputs);
        let product = |shape: &MatmulShape, a, b| {
            let mut c = vec![0.0; shape.c_len()];
            reference::matmul::matmul(shape, a, b, None, Epilogue::default(), &mut c);
            c
        };
        let mut grad_bias = vec![0.0; self.outputs];
        let by_output = self.grad_bias(batch);
        reference::reduce::channel_sum(&by_output, grad_output, false, &mut grad_bias);
        CpuBackward {
            grad_input: product(&products.grad_input, grad_output, &params[0]),
            param_grads: vec![
                product(&products.grad_weight, grad_output, input),
                grad_bias,
            ],
        }
    }
}
