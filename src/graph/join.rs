//! Nodes where values meet: a residual add. The same sum serves the gradients of a value that
//! several nodes read.

use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::kernels::elementwise::{add, axpy};
use crate::reference::elementwise as twin;

use super::layer::LayerKernels;

/// A node of several inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Join {
    /// The elementwise sum of inputs of one shape (a residual connection); the gradient of
    /// each input is the output's.
    Add,
}

/// The buffers of a join, with their shapes (batch first).
pub struct JoinIo<'a> {
    pub input_shapes: Vec<&'a [usize]>,
    pub inputs: Vec<&'a GpuBuffer>,
    pub output: &'a GpuBuffer,
}

impl Join {
    /// What it is, as PyTorch would print it.
    pub fn kind(&self) -> String {
        match self {
            Join::Add => "Add()".into(),
        }
    }

    /// Its inputs' gradients are its output's (see [`super::Op::passes_gradient`]).
    pub fn passes_gradient(&self) -> bool {
        match self {
            Join::Add => true,
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
        }
    }

    /// The forward; a join that passes its gradient records no backward.
    pub fn record(&self, ctx: &GpuContext, io: &JoinIo) -> Result<LayerKernels, GpuError> {
        let n = io.input_shapes[0].iter().product();
        match self {
            Join::Add => Ok(LayerKernels {
                forward: sum(ctx, n, &io.inputs, io.output)?,
                ..Default::default()
            }),
        }
    }

    /// The CPU twin of the recorded forward.
    pub fn cpu_forward(&self, inputs: &[&[f32]]) -> Vec<f32> {
        match self {
            Join::Add => cpu_sum(inputs),
        }
    }

    /// The CPU twin of the backward: each input's gradient.
    pub fn cpu_backward(&self, inputs: usize, grad_output: &[f32]) -> Vec<Vec<f32>> {
        match self {
            Join::Add => vec![grad_output.to_vec(); inputs],
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
