//! Host side of `shaders/optim.wgsl`: SGD and Adam / AdamW updates of one flat parameter tensor.
//!
//! A tensor larger than one storage binding is updated in several dispatches, each over a
//! binding-sized chunk (see [`binding_chunks`]); the update is elementwise, so the result is
//! the same to the bit. Anything that fits one binding takes one dispatch.
//!
//! A *group* (as in PyTorch's param_groups) owns the config and a 16-byte storage buffer of the
//! per-step scalars (lr, step, bias corrections). Every dispatch of the group binds that buffer,
//! and [`SgdGroup::set_step`] / [`AdamGroup::set_step`] rewrite it with `queue.write_buffer`, so
//! a training step changes lr and step number without new bind groups and reads nothing back.
//! Bias corrections are formed on the host in f64 (as PyTorch does with Python floats when
//! `capturable=False`) and rounded once to f32: an f32 `pow` on the GPU would lose ~1e-4 of
//! 1 − β2^t to cancellation at β2 = 0.999, and WGSL's `pow` has no accuracy guarantee at all.

use std::ops::Range;

use crate::gpu::{
    AdapterSummary, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec, QuadGrid,
};
pub use crate::reference::optim::{AdamConfig, SgdConfig};
use crate::shaders;

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

/// The ranges of a tensor of `n` elements that one update binds: all of it when it fits one
/// storage binding, else chunks as long as a binding holds, each starting on the adapter's
/// view alignment.
fn binding_chunks(adapter: &AdapterSummary, n: usize) -> Vec<Range<usize>> {
    let binding = adapter.max_binding_len();
    let align = adapter.view_alignment();
    let chunk = if n <= binding {
        n.max(1)
    } else {
        (binding / align * align).max(align)
    };
    (0..n)
        .step_by(chunk)
        .map(|start| start..n.min(start + chunk))
        .collect()
}

/// Writes a 16-byte hyper struct; it lands before the next submit.
fn write_hyper<T: bytemuck::Pod>(ctx: &GpuContext, buffer: &GpuBuffer, hyper: T) {
    buffer.write(ctx, &bytemuck::cast::<T, [u32; 4]>(hyper));
}

// ---------------------------------------------------------------------------------------------
// SGD

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    n: u32,
    momentum: f32,
    one_minus_dampening: f32,
    weight_decay: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdHyper {
    lr: f32,
    first_step: u32,
    _pad: [u32; 2],
}

/// An SGD parameter group: its config and the per-step scalars its dispatches read.
pub struct SgdGroup {
    config: SgdConfig,
    hyper: GpuBuffer,
}

impl SgdGroup {
    /// Panics if `config` is one `torch.optim.SGD` rejects (check [`SgdConfig::validate`]).
    /// Until [`SgdGroup::set_step`] it is at step 1 with lr 0, which leaves parameters alone.
    pub fn new(ctx: &GpuContext, config: SgdConfig) -> Self {
        if let Err(problem) = config.validate() {
            panic!("SgdGroup: {problem}");
        }
        let group = SgdGroup {
            config,
            hyper: GpuBuffer::zeros(ctx, "sgd hyper", 4),
        };
        group.set_step(ctx, 1, 0.0);
        group
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// Sets the 1-based step number and the learning rate for the next submit.
    pub fn set_step(&self, ctx: &GpuContext, step: u32, lr: f64) {
        assert!(step >= 1, "optimizer steps count from 1");
        let hyper = SgdHyper {
            lr: lr as f32,
            first_step: (step == 1) as u32,
            _pad: [0; 2],
        };
        write_hyper(ctx, &self.hyper, hyper);
    }
}

/// The tensors one SGD update touches, all of the same length.
pub struct SgdBuffers<'a> {
    pub param: &'a GpuBuffer,
    pub grad: &'a GpuBuffer,
    /// Present exactly when the group's momentum is not 0; its contents before step 1 are
    /// ignored (step 1 overwrites it with the gradient).
    pub momentum_buffer: Option<&'a GpuBuffer>,
}

/// One SGD update of `param` in place (`torch.optim.SGD`, see `reference::optim::sgd_step`):
/// one dispatch, or one per binding-sized chunk of a larger tensor.
pub fn sgd(
    ctx: &GpuContext,
    group: &SgdGroup,
    buffers: SgdBuffers,
) -> Result<Vec<Dispatch>, GpuError> {
    let SgdBuffers {
        param,
        grad,
        momentum_buffer,
    } = buffers;
    let config = &group.config;
    let n = param.len();
    assert_eq!(grad.len(), n, "sgd: grad length differs from param");
    assert_eq!(
        momentum_buffer.is_some(),
        config.momentum != 0.0,
        "sgd: a momentum buffer is needed exactly when momentum is not 0"
    );
    assert!(
        momentum_buffer.is_none_or(|buffer| buffer.len() == n),
        "sgd: momentum buffer length differs from param"
    );
    binding_chunks(ctx.summary(), n)
        .into_iter()
        .map(|chunk| {
            let len = chunk.len();
            let view = |buffer: &GpuBuffer| buffer.view(chunk.start, len);
            let momentum_chunk = momentum_buffer.map(view);
            let momentum_chunk =
                GpuBuffer::or_placeholder(ctx, momentum_chunk.as_ref(), "no momentum buffer");
            let grid = QuadGrid::new(ctx.summary(), len);
            let kernel = ctx.kernel(&KernelSpec {
                shader: &shaders::OPTIM,
                entry: "sgd_step",
                bindings: &[
                    Binding::Uniform,
                    Binding::ReadOnly,
                    Binding::ReadWrite,
                    Binding::ReadOnly,
                    Binding::ReadWrite,
                ],
                constants: &[
                    ("MOMENTUM", flag(momentum_buffer.is_some())),
                    ("NESTEROV", flag(config.nesterov)),
                    grid.constant(),
                ],
            })?;
            let params = SgdParams {
                n: len as u32,
                momentum: config.momentum as f32,
                one_minus_dampening: (1.0 - config.dampening) as f32,
                weight_decay: config.weight_decay as f32,
            };
            Ok(Dispatch::new(
                ctx,
                &kernel,
                &params,
                &[&group.hyper, &view(param), &view(grad), &momentum_chunk],
                grid.workgroups,
            )
            .with_cost(sgd_cost(len, config)))
        })
        .collect()
}

/// Per element: weight decay 2, momentum 3 (+2 for Nesterov), the step 2; the parameter (and
/// momentum buffer) read and written, the gradient read.
fn sgd_cost(n: usize, config: &SgdConfig) -> Cost {
    let momentum = config.momentum != 0.0;
    let flops = 2.0
        + if config.weight_decay != 0.0 { 2.0 } else { 0.0 }
        + if momentum { 3.0 } else { 0.0 }
        + if config.nesterov { 2.0 } else { 0.0 };
    let values_moved = if momentum { 5 } else { 3 };
    Cost {
        flops: flops * n as f64,
        bytes: Cost::words(values_moved * n),
    }
}

// ---------------------------------------------------------------------------------------------
// Adam / AdamW

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    n: u32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    coupled_decay: f32,
    _pad: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamHyper {
    step_size: f32,
    bias_correction2_sqrt: f32,
    decay: f32,
    _pad: u32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![
        uniform_layout!(shaders::OPTIM, SgdParams: n, momentum, one_minus_dampening, weight_decay),
        uniform_layout!(shaders::OPTIM, SgdHyper: lr, first_step, _pad),
        uniform_layout!(shaders::OPTIM, AdamParams:
            n, one_minus_beta1, beta2, one_minus_beta2, eps, coupled_decay, _pad
        ),
        uniform_layout!(shaders::OPTIM, AdamHyper: step_size, bias_correction2_sqrt, decay, _pad),
    ]
}

/// An Adam / AdamW parameter group: its config and the per-step scalars its dispatches read.
pub struct AdamGroup {
    config: AdamConfig,
    hyper: GpuBuffer,
}

impl AdamGroup {
    /// Panics if `config` is one `torch.optim.Adam` rejects (check [`AdamConfig::validate`]).
    /// Until [`AdamGroup::set_step`] it is at step 1 with lr 0, which leaves parameters alone.
    pub fn new(ctx: &GpuContext, config: AdamConfig) -> Self {
        if let Err(problem) = config.validate() {
            panic!("AdamGroup: {problem}");
        }
        let group = AdamGroup {
            config,
            hyper: GpuBuffer::zeros(ctx, "adam hyper", 4),
        };
        group.set_step(ctx, 1, 0.0);
        group
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Sets the 1-based step number and the learning rate for the next submit.
    pub fn set_step(&self, ctx: &GpuContext, step: u32, lr: f64) {
        let (bias_correction1, bias_correction2) = self.config.bias_corrections(step);
        let decay = if self.config.decoupled {
            1.0 - lr * self.config.weight_decay
        } else {
            1.0
        };
        let hyper = AdamHyper {
            step_size: (lr / bias_correction1) as f32,
            bias_correction2_sqrt: bias_correction2.sqrt() as f32,
            decay: decay as f32,
            _pad: 0,
        };
        write_hyper(ctx, &self.hyper, hyper);
    }
}

/// The tensors one Adam update touches, all of the same length; the moments start at zero.
pub struct AdamBuffers<'a> {
    pub param: &'a GpuBuffer,
    pub grad: &'a GpuBuffer,
    /// First moment m (PyTorch's `exp_avg`).
    pub exp_avg: &'a GpuBuffer,
    /// Second moment v (PyTorch's `exp_avg_sq`).
    pub exp_avg_sq: &'a GpuBuffer,
}

/// One Adam or AdamW update of `param` in place (`torch.optim.Adam` / `AdamW`, see
/// `reference::optim::adam_step`): one dispatch, or one per binding-sized chunk of a larger
/// tensor.
pub fn adam(
    ctx: &GpuContext,
    group: &AdamGroup,
    buffers: AdamBuffers,
) -> Result<Vec<Dispatch>, GpuError> {
    let AdamBuffers {
        param,
        grad,
        exp_avg,
        exp_avg_sq,
    } = buffers;
    let config = &group.config;
    let n = param.len();
    assert!(
        grad.len() == n && exp_avg.len() == n && exp_avg_sq.len() == n,
        "adam: param, grad and moment lengths differ"
    );
    let (beta1, beta2) = config.betas;
    binding_chunks(ctx.summary(), n)
        .into_iter()
        .map(|chunk| {
            let len = chunk.len();
            let view = |buffer: &GpuBuffer| buffer.view(chunk.start, len);
            let grid = QuadGrid::new(ctx.summary(), len);
            let kernel = ctx.kernel(&KernelSpec {
                shader: &shaders::OPTIM,
                entry: "adam_step",
                bindings: &[
                    Binding::Uniform,
                    Binding::ReadOnly,
                    Binding::ReadWrite,
                    Binding::ReadOnly,
                    Binding::ReadWrite,
                    Binding::ReadWrite,
                ],
                constants: &[("DECOUPLED", flag(config.decoupled)), grid.constant()],
            })?;
            let params = AdamParams {
                n: len as u32,
                one_minus_beta1: (1.0 - beta1) as f32,
                beta2: beta2 as f32,
                one_minus_beta2: (1.0 - beta2) as f32,
                eps: config.eps as f32,
                coupled_decay: config.coupled_decay() as f32,
                _pad: [0; 2],
            };
            let buffers = [param, grad, exp_avg, exp_avg_sq].map(view);
            Ok(Dispatch::new(
                ctx,
                &kernel,
                &params,
                &[
                    &group.hyper,
                    &buffers[0],
                    &buffers[1],
                    &buffers[2],
                    &buffers[3],
                ],
                grid.workgroups,
            )
            .with_cost(Cost {
                // Weight decay 2, first moment 3, second moment 4, the step 6.
                flops: 15.0 * len as f64,
                // param, grad, exp_avg, exp_avg_sq read; param and both moments written.
                bytes: Cost::words(7 * len),
            }))
        })
        .collect()
}
