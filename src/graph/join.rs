//! Nodes where values meet: a residual add, a concatenation along channels. The add's sum
//! also serves the gradients of a value that several nodes read.

use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::kernels::concat::{copy_channels, ChannelCopy};
use crate::kernels::elementwise::{add, axpy};
use crate::reference::concat;
use crate::reference::elementwise as twin;

use super::layer::LayerKernels;

/// A node of several inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// The elementwise sum of inputs of one shape (a residual connection); the gradient of
    /// each input is the output's.
    Add,
    /// The inputs one after another along the channel axis (axis 1), as `torch.cat(xs, 1)`;
    /// each input's gradient is its range of the output's.
    Concat,
}

/// The buffers of a join, with their shapes (batch first).
pub struct JoinIo<'a> {
    pub input_shapes: Vec<&'a [usize]>,
    pub inputs: Vec<&'a GpuBuffer>,
    pub output: &'a GpuBuffer,
    pub grad_output: &'a GpuBuffer,
    /// dL/d(each input); `None` where nobody needs it.
    pub grad_inputs: Vec<Option<&'a GpuBuffer>>,
}

/// A concatenation's inputs as [batch, channels, values per channel]: their batch, values per
/// channel and channel counts.
fn channel_runs(shapes: &[&[usize]]) -> (usize, usize, Vec<usize>) {
    let spatial = shapes[0][2..].iter().product();
    let channels = shapes.iter().map(|shape| shape[1]).collect();
    (shapes[0][0], spatial, channels)
}

impl Join {
    /// What it is, as PyTorch would print it.
    pub fn kind(&self) -> String {
        match self {
            Join::Add => "Add()".into(),
            Join::Concat => "Concat(dim=1)".into(),
        }
    }

    /// Its inputs' gradients are its output's (see [`super::Op::passes_gradient`]).
    pub fn passes_gradient(&self) -> bool {
        match self {
            Join::Add => true,
            Join::Concat => false,
        }
    }

    pub fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        match self {
            Join::Add => {
                let first = inputs[0];
                match inputs.iter().find(|shape| **shape != first) {
                    Some(other) => Err(format!("cannot add {first:?} and {other:?}")),
                    None => Ok(first.to_vec()),
                }
            }
            Join::Concat => {
                let first = inputs[0];
                if let Some(flat) = inputs.iter().find(|shape| shape.len() < 2) {
                    return Err(format!("cannot concatenate {flat:?} along channels"));
                }
                // Every axis but the channels.
                let other_axes = |shape: &[usize]| [&shape[..1], &shape[2..]].concat();
                if let Some(other) = inputs.iter().find(|s| other_axes(s) != other_axes(first)) {
                    return Err(format!(
                        "cannot concatenate {first:?} and {other:?}: only the channels may differ"
                    ));
                }
                let mut output = first.to_vec();
                output[1] = inputs.iter().map(|shape| shape[1]).sum();
                Ok(output)
            }
        }
    }

    /// The forward and backward; a join that passes its gradient records no backward.
    pub fn record(&self, ctx: &GpuContext, io: &JoinIo) -> Result<LayerKernels, GpuError> {
        match self {
            Join::Add => {
                let n = io.input_shapes[0].iter().product();
                Ok(LayerKernels {
                    forward: sum(ctx, n, &io.inputs, io.output)?,
                    ..Default::default()
                })
            }
            Join::Concat => {
                let (batch, spatial, channels) = channel_runs(&io.input_shapes);
                let mut kernels = LayerKernels::default();
                let copies = ChannelCopy::concat(batch, spatial, &channels);
                for ((copy, input), grad) in copies.iter().zip(&io.inputs).zip(&io.grad_inputs) {
                    kernels
                        .forward
                        .push(copy_channels(ctx, copy, input, io.output)?);
                    if let Some(grad) = grad {
                        let back = copy.reversed();
                        kernels
                            .backward
                            .push(copy_channels(ctx, &back, io.grad_output, grad)?);
                    }
                }
                Ok(kernels)
            }
        }
    }

    /// The CPU twin of the recorded forward.
    pub fn cpu_forward(&self, shapes: &[&[usize]], inputs: &[&[f32]]) -> Vec<f32> {
        match self {
            Join::Add => cpu_sum(inputs),
            Join::Concat => {
                let (batch, spatial, channels) = channel_runs(shapes);
                concat::concat(batch, spatial, &channels, inputs)
            }
        }
    }

    /// The CPU twin of the backward: each input's gradient.
    pub fn cpu_backward(&self, shapes: &[&[usize]], grad_output: &[f32]) -> Vec<Vec<f32>> {
        match self {
            Join::Add => vec![grad_output.to_vec(); shapes.len()],
            Join::Concat => {
                let (batch, spatial, channels) = channel_runs(shapes);
                concat::concat_backward(batch, spatial, &channels, grad_output)
            }
        }
    }
}

/// `out = parts[0] + parts[1] + …`, added left to right (at least two parts).
pub fn sum(
    ctx: &GpuContext,
    n: usize,
    parts: &[&GpuBuffer],
    out: &GpuBuffer,
) -> Result<Vec<Dispatch>, GpuError> {
    let [first, second, rest @ ..] = parts else {
        panic!("a sum needs two parts or more, not {}", parts.len());
    };
    let mut dispatches = vec![add(ctx, n, first, second, out)?];
    for part in rest {
        dispatches.push(axpy(ctx, n, 1.0, part, out)?);
    }
    Ok(dispatches)
}

/// The CPU twin of [`sum`], in the same order.
pub fn cpu_sum(parts: &[&[f32]]) -> Vec<f32> {
    let mut out = twin::add(parts[0], parts[1]);
    for part in &parts[2..] {
        twin::axpy(1.0, part, &mut out);
    }
    out
}
