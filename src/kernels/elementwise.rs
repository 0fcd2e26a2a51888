//! Host side of `shaders/elementwise.wgsl`: relu, sigmoid, dropout, add, scale, fill and axpy
//! over the first `n` elements of their buffers, one invocation per four elements.

use crate::gpu::{Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec, QuadGrid};
pub use crate::reference::elementwise::Dropout;
use crate::shaders;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    threshold: u32,
    a: f32,
    _pad: [u32; 3],
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::ELEMENTWISE, Params: n, seed_lo, seed_hi, threshold, a, _pad)]
}

/// The cost of one element: `flops` and the f32 values read plus written for it.
fn per_element(flops: f64, values_moved: usize) -> Cost {
    Cost {
        flops,
        bytes: Cost::words(values_moved),
    }
}

/// One elementwise launch: `inputs` are read-only, `outputs` read-write, bound in that order;
/// `element` is the cost of one of the `n` elements.
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    n: usize,
    element: Cost,
    params: Params,
    inputs: &[&GpuBuffer],
    outputs: &[&GpuBuffer],
) -> Result<Dispatch, GpuError> {
    for buffer in inputs.iter().chain(outputs) {
        assert!(
            buffer.len() >= n,
            "{entry}: a buffer of {} elements is shorter than n = {n}",
            buffer.len()
        );
    }
    let bindings: Vec<Binding> = std::iter::once(Binding::Uniform)
        .chain(inputs.iter().map(|_| Binding::ReadOnly))
        .chain(outputs.iter().map(|_| Binding::ReadWrite))
        .collect();
    let grid = QuadGrid::new(ctx.summary(), n);
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::ELEMENTWISE,
        entry,
        bindings: &bindings,
        constants: &[grid.constant()],
    })?;
    let buffers: Vec<&GpuBuffer> = inputs.iter().chain(outputs).copied().collect();
    let params = Params {
        n: n as u32,
        ..params
    };
    Ok(
        Dispatch::new(ctx, &kernel, &params, &buffers, grid.workgroups).with_cost(Cost {
            flops: element.flops * n as f64,
            bytes: element.bytes * n as f64,
        }),
    )
}

/// `y = relu(x)` (`torch.relu`).
pub fn relu(
    ctx: &GpuContext,
    n: usize,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    launch(
        ctx,
        "relu",
        n,
        per_element(1.0, 2),
        Params::default(),
        &[x],
        &[y],
    )
}

/// `dx = x > 0 ? dy : 0` (PyTorch's `threshold_backward`, gradient 0 at x = 0).
pub fn relu_backward(
    ctx: &GpuContext,
    n: usize,
    x: &GpuBuffer,
    dy: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    launch(
        ctx,
        "relu_backward",
        n,
        per_element(1.0, 3),
        Params::default(),
        &[x, dy],
        &[dx],
    )
}

/// `y = sigmoid(x)` (`torch.sigmoid`).
pub fn sigmoid(
    ctx: &GpuContext,
    n: usize,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    // exp, an addition, a division and a select.
    launch(
        ctx,
        "sigmoid",
        n,
        per_element(4.0, 2),
        Params::default(),
        &[x],
        &[y],
    )
}

/// `dx = dy·(1 − y)·y` from the forward's output `y` (PyTorch's `sigmoid_backward`).
pub fn sigmoid_backward(
    ctx: &GpuContext,
    n: usize,
    y: &GpuBuffer,
    dy: &GpuBuffer,
    dx: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    launch(
        ctx,
        "sigmoid_backward",
        n,
        per_element(3.0, 3),
        Params::default(),
        &[y, dy],
        &[dx],
    )
}

/// `y = dropout(x)` in training mode, mask drawn from `(dropout.seed, i)` as
/// [`Dropout`] specifies. The backward pass is the same call on `(dy, dx)` with the same
/// `Dropout`: the mask is recomputed, never stored.
pub fn dropout(
    ctx: &GpuContext,
    n: usize,
    dropout: &Dropout,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    // The mask's hash is integer work; the float work is one multiply.
    launch(
        ctx,
        "dropout",
        n,
        per_element(1.0, 2),
        dropout_params(n, dropout),
        &[x],
        &[y],
    )
}

/// Points a dispatch made by [`dropout`] at another mask (a new step's seed) in place.
pub fn reseed_dropout(ctx: &GpuContext, dispatch: &Dispatch, n: usize, dropout: &Dropout) {
    dispatch.set_params(ctx, &dropout_params(n, dropout));
}

fn dropout_params(n: usize, dropout: &Dropout) -> Params {
    Params {
        n: n as u32,
        seed_lo: dropout.seed as u32,
        seed_hi: (dropout.seed >> 32) as u32,
        threshold: dropout.threshold(),
        a: dropout.scale(),
        ..Params::default()
    }
}

/// `z = x + y`: a residual block's sum, or two gradients of a value that feeds two consumers
/// summed into a third buffer (in place, `y += x`, is [`axpy`] with a = 1).
pub fn add(
    ctx: &GpuContext,
    n: usize,
    x: &GpuBuffer,
    y: &GpuBuffer,
    z: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    launch(
        ctx,
        "add",
        n,
        per_element(1.0, 3),
        Params::default(),
        &[x, y],
        &[z],
    )
}

/// `x = a·x`, in place.
pub fn scale(ctx: &GpuContext, n: usize, a: f32, x: &GpuBuffer) -> Result<Dispatch, GpuError> {
    let params = Params {
        a,
        ..Params::default()
    };
    launch(ctx, "scale", n, per_element(1.0, 2), params, &[], &[x])
}

/// `x = value` everywhere (e.g. zeroing the loss statistics at the start of an epoch).
pub fn fill(ctx: &GpuContext, n: usize, value: f32, x: &GpuBuffer) -> Result<Dispatch, GpuError> {
    let params = Params {
        a: value,
        ..Params::default()
    };
    launch(ctx, "fill", n, per_element(0.0, 1), params, &[], &[x])
}

/// `y = a·x + y` (e.g. summing gradients that meet at a branch).
pub fn axpy(
    ctx: &GpuContext,
    n: usize,
    a: f32,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let params = Params {
        a,
        ..Params::default()
    };
    launch(ctx, "axpy", n, per_element(2.0, 3), params, &[x], &[y])
}
