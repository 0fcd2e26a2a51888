//! Host side of `shaders/batchnorm.wgsl`: batch normalisation over `[N, C, S]` with PyTorch's
//! semantics (`torch.nn.BatchNorm1d` / `BatchNorm2d`); the CPU twins in
//! [`crate::reference::batchnorm`] specify what each kernel computes. With an [`Epilogue`], the
//! kernels also apply a following `torch.nn.ReLU`, and a `torch.nn.Dropout` after that, and
//! their gradients, as [`crate::reference::elementwise`]'s relu and dropout twins would.

use crate::gpu::{
    quad_workgroups, workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError,
    KernelSpec,
};
pub use crate::reference::batchnorm::{BatchNormConfig, BatchNormShape};
use crate::reference::elementwise::Dropout;
use crate::shaders;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    count: u32,
    momentum: f32,
    eps: f32,
    unbiased_factor: f32,
    quads: u32,
    dropout_seed_lo: u32,
    dropout_seed_hi: u32,
    dropout_threshold: u32,
    dropout_scale: f32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::BATCHNORM, Params:
        batch, channels, spatial, count, momentum, eps, unbiased_factor, quads,
        dropout_seed_lo, dropout_seed_hi, dropout_threshold, dropout_scale
    )]
}

/// What the kernels apply to batch norm's output on behalf of the layers after it: a ReLU,
/// then (only after the ReLU, whose gate the backward pass reuses) a dropout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue {
    pub relu: bool,
    /// The training forward's mask; evaluation applies none.
    pub dropout: Option<Dropout>,
}

impl Epilogue {
    pub const NONE: Epilogue = Epilogue {
        relu: false,
        dropout: None,
    };

    pub fn relu() -> Self {
        Epilogue {
            relu: true,
            dropout: None,
        }
    }

    /// A ReLU, then `dropout`.
    pub fn relu_dropout(dropout: Dropout) -> Self {
        Epilogue {
            relu: true,
            dropout: Some(dropout),
        }
    }

    fn constants(&self) -> [(&'static str, f64); 2] {
        [
            ("RELU", self.relu as u8 as f64),
            ("DROPOUT", self.dropout.is_some() as u8 as f64),
        ]
    }
}

impl Params {
    fn new(shape: &BatchNormShape, config: &BatchNormConfig, epilogue: &Epilogue) -> Self {
        assert!(
            epilogue.relu || epilogue.dropout.is_none(),
            "batchnorm: a fused dropout needs the fused ReLU before it"
        );
        assert!(
            shape.count() > 0,
            "batchnorm: no values per channel in {shape:?}"
        );
        assert!(
            u32::try_from(shape.len()).is_ok(),
            "batchnorm: {shape:?} has more elements than a u32 indexes"
        );
        let dropout = epilogue.dropout;
        Params {
            batch: shape.batch as u32,
            channels: shape.channels as u32,
            spatial: shape.spatial as u32,
            count: shape.count() as u32,
            momentum: config.momentum,
            eps: config.eps,
            unbiased_factor: shape.unbiased_factor() as f32,
            quads: (shape.spatial % 4 == 0) as u32,
            dropout_seed_lo: dropout.map_or(0, |d| d.seed as u32),
            dropout_seed_hi: dropout.map_or(0, |d| (d.seed >> 32) as u32),
            dropout_threshold: dropout.map_or(0, |d| d.threshold()),
            dropout_scale: dropout.map_or(1.0, |d| d.scale()),
        }
    }
}

/// Flops per element: the mean (1) and variance (3) of the batch statistics, the normalise and
/// affine (4); the backward's two sums (4) and dx (5).
const TRAIN_FORWARD_FLOPS: f64 = 8.0;
const EVAL_FORWARD_FLOPS: f64 = 4.0;
const BACKWARD_FLOPS: f64 = 9.0;

/// Every element of the `[N, C, S]` tensors read or written once, plus the per-channel vectors.
fn cost(
    shape: &BatchNormShape,
    flops_per_element: f64,
    full_tensors: usize,
    channel_vectors: usize,
) -> Cost {
    Cost {
        flops: flops_per_element * shape.len() as f64,
        bytes: Cost::words(full_tensors * shape.len() + channel_vectors * shape.channels),
    }
}

/// An entry point of `shaders/batchnorm.wgsl`, its epilogue, the width of its per-channel
/// workgroup tree if it has one, and whether it also sums dx per channel (backward only).
struct Entry {
    name: &'static str,
    epilogue: Epilogue,
    tree_width: Option<u32>,
    sums_dx: bool,
    /// Training forward leaves y to the layer after ([`TrainOutput::Deferred`]).
    defers_output: bool,
}

/// The entry and grid of a per-channel pass: `columns` (one invocation per quad of channels,
/// no barriers) where [`super::walks_columns`] says so, else `tree` (a workgroup per channel).
fn per_channel(
    shape: &BatchNormShape,
    epilogue: Epilogue,
    sums_dx: bool,
    tree: &'static str,
    columns: &'static str,
) -> (Entry, [u32; 3]) {
    if super::walks_columns(shape.batch, shape.spatial) {
        let entry = Entry {
            name: columns,
            epilogue,
            tree_width: None,
            sums_dx,
            defers_output: false,
        };
        (entry, quad_workgroups(shape.channels))
    } else {
        let entry = Entry {
            name: tree,
            epilogue,
            tree_width: Some(super::reduction_width(shape.count())),
            sums_dx,
            defers_output: false,
        };
        (entry, workgroups_1d(shape.channels))
    }
}

fn kernel_dispatch(
    ctx: &GpuContext,
    entry: Entry,
    cost: Cost,
    params: &Params,
    read_only: &[&GpuBuffer],
    read_write: &[&GpuBuffer],
    workgroups: [u32; 3],
) -> Result<Dispatch, GpuError> {
    let mut bindings = vec![Binding::Uniform];
    bindings.extend(read_only.iter().map(|_| Binding::ReadOnly));
    bindings.extend(read_write.iter().map(|_| Binding::ReadWrite));
    let mut constants = entry.epilogue.constants().to_vec();
    constants.extend(entry.tree_width.map(|width| ("WG", width as f64)));
    if entry.sums_dx {
        constants.push(("SUM_DX", 1.0));
    }
    if entry.defers_output {
        constants.push(("DEFER_OUTPUT", 1.0));
    }
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::BATCHNORM,
        entry: entry.name,
        bindings: &bindings,
        constants: &constants,
    })?;
    let buffers: Vec<&GpuBuffer> = read_only.iter().chain(read_write).copied().collect();
    Ok(Dispatch::new(ctx, &kernel, params, &buffers, workgroups).with_cost(cost))
}

fn assert_len(what: &str, buffer: &GpuBuffer, len: usize, shape: &BatchNormShape) {
    assert!(
        buffer.len() >= len,
        "batchnorm: {what} holds {} values, {shape:?} needs {len}",
        buffer.len()
    );
}

/// Whether a training forward of `shape` can leave its output to the layer after
/// ([`TrainOutput::Deferred`]): only the workgroup entry writes the map, not the columns walker.
pub fn can_defer_output(shape: &BatchNormShape) -> bool {
    !super::walks_columns(shape.batch, shape.spatial)
}

/// Where a training-mode forward pass puts its output.
#[derive(Clone, Copy)]
pub enum TrainOutput<'a> {
    /// y, `[N, C, S]`, through the epilogue.
    Values(&'a GpuBuffer),
    /// Not y but, per channel, the map that gives it: `[C, 4]` holding (γ·invstd, mean, β, 0),
    /// for the layer after to apply as it reads x, with the epilogue's ReLU (a max pool:
    /// [`super::pool::MaxPoolForwardBuffers::batchnorm_map`]). Only for the workgroup entry
    /// (not where [`super::walks_columns`]), with a ReLU and no dropout.
    Deferred(&'a GpuBuffer),
}

/// The buffers of a training-mode forward pass. `running_mean`/`running_var` are updated in
/// place; `saved_mean`/`saved_invstd` are written for [`backward`].
pub struct TrainForwardBuffers<'a> {
    /// `[N, C, S]`
    pub x: &'a GpuBuffer,
    /// `[C]`, PyTorch's `weight`
    pub gamma: &'a GpuBuffer,
    /// `[C]`, PyTorch's `bias`
    pub beta: &'a GpuBuffer,
    pub y: TrainOutput<'a>,
    pub saved_mean: &'a GpuBuffer,
    pub saved_invstd: &'a GpuBuffer,
    pub running_mean: &'a GpuBuffer,
    pub running_var: &'a GpuBuffer,
}

/// Training mode, per channel (a workgroup each, or columns walked where
/// [`super::walks_columns`] says): batch statistics, y (through the epilogue), the saved
/// statistics and the running statistics in one dispatch (twin:
/// [`crate::reference::batchnorm::train_forward`]).
pub fn train_forward(
    ctx: &GpuContext,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    epilogue: Epilogue,
    buffers: TrainForwardBuffers,
) -> Result<Dispatch, GpuError> {
    let TrainForwardBuffers {
        x,
        gamma,
        beta,
        y,
        saved_mean,
        saved_invstd,
        running_mean,
        running_var,
    } = buffers;
    let params = Params::new(shape, config, &epilogue);
    assert_len("x", x, shape.len(), shape);
    let (y, deferred) = match y {
        TrainOutput::Values(y) => {
            assert_len("y", y, shape.len(), shape);
            (y, false)
        }
        TrainOutput::Deferred(map) => {
            assert!(
                epilogue.relu && epilogue.dropout.is_none() && can_defer_output(shape),
                "batchnorm: a deferred output needs a ReLU, no dropout, and a workgroup per channel"
            );
            assert_len("the deferred output's map", map, 4 * shape.channels, shape);
            (map, true)
        }
    };
    for (what, buffer) in [
        ("gamma", gamma),
        ("beta", beta),
        ("saved_mean", saved_mean),
        ("saved_invstd", saved_invstd),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ] {
        assert_len(what, buffer, shape.channels, shape);
    }
    let (mut entry, workgroups) = per_channel(
        shape,
        epilogue,
        false,
        "batchnorm_train_forward",
        "batchnorm_columns_train_forward",
    );
    entry.defers_output = deferred;
    kernel_dispatch(
        ctx,
        entry,
        // x, y (or only x); gamma, beta, saved mean and invstd, running mean and var (read and
        // written).
        cost(shape, TRAIN_FORWARD_FLOPS, 2 - usize::from(deferred), 8),
        &params,
        &[x, gamma, beta],
        &[y, saved_mean, saved_invstd, running_mean, running_var],
        workgroups,
    )
}

/// Points a dispatch made by [`train_forward`] at another dropout mask (a new step's seed) in
/// place; `epilogue` is the one it was made with, with the new mask.
pub fn reseed_train_forward(
    ctx: &GpuContext,
    dispatch: &Dispatch,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    epilogue: Epilogue,
) {
    dispatch.set_params(ctx, &Params::new(shape, config, &epilogue));
}

/// The buffers of an evaluation-mode forward pass.
pub struct EvalForwardBuffers<'a> {
    pub x: &'a GpuBuffer,
    pub gamma: &'a GpuBuffer,
    pub beta: &'a GpuBuffer,
    pub running_mean: &'a GpuBuffer,
    pub running_var: &'a GpuBuffer,
    pub y: &'a GpuBuffer,
}

/// Evaluation mode, elementwise with the running statistics
/// (twin: [`crate::reference::batchnorm::eval_forward`]). The epilogue's dropout, the identity
/// in evaluation, is left out.
pub fn eval_forward(
    ctx: &GpuContext,
    shape: &BatchNormShape,
    config: &BatchNormConfig,
    epilogue: Epilogue,
    buffers: EvalForwardBuffers,
) -> Result<Dispatch, GpuError> {
    let epilogue = Epilogue {
        dropout: None,
        ..epilogue
    };
    let EvalForwardBuffers {
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        y,
    } = buffers;
    let params = Params::new(shape, config, &epilogue);
    for (what, buffer) in [("x", x), ("y", y)] {
        assert_len(what, buffer, shape.len(), shape);
    }
    for (what, buffer) in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ] {
        assert_len(what, buffer, shape.channels, shape);
    }
    kernel_dispatch(
        ctx,
        Entry {
            name: "batchnorm_eval_forward",
            epilogue,
            tree_width: None,
            sums_dx: false,
            defers_output: false,
        },
        // x, y; gamma, beta, running mean and var.
        cost(shape, EVAL_FORWARD_FLOPS, 2, 4),
        &params,
        &[x, gamma, beta, running_mean, running_var],
        &[y],
        quad_workgroups(shape.len()),
    )
}

/// The buffers of the backward pass: inputs as in [`train_forward`], outputs overwritten.
pub struct BackwardBuffers<'a> {
    pub x: &'a GpuBuffer,
    /// The forward's output, which gates `dy` when a ReLU is fused (read only then).
    pub y: &'a GpuBuffer,
    /// The gradient of the forward's output (after the epilogue, if any).
    pub dy: &'a GpuBuffer,
    pub saved_mean: &'a GpuBuffer,
    pub saved_invstd: &'a GpuBuffer,
    pub gamma: &'a GpuBuffer,
    pub dx: &'a GpuBuffer,
    pub dgamma: &'a GpuBuffer,
    pub dbeta: &'a GpuBuffer,
    /// Where Σdx per channel goes, if wanted: the bias gradient of the layer before (twin:
    /// [`crate::reference::reduce::channel_sum`] of dx).
    pub dx_sum: Option<&'a GpuBuffer>,
}

/// Backward of [`train_forward`] with the same epilogue (whose dropout seed it does not need),
/// per channel as it: dβ, dγ and dx (and Σdx) in one dispatch (twin:
/// [`crate::reference::batchnorm::backward`]).
pub fn backward(
    ctx: &GpuContext,
    shape: &BatchNormShape,
    epilogue: Epilogue,
    buffers: BackwardBuffers,
) -> Result<Dispatch, GpuError> {
    let BackwardBuffers {
        x,
        y,
        dy,
        saved_mean,
        saved_invstd,
        gamma,
        dx,
        dgamma,
        dbeta,
        dx_sum,
    } = buffers;
    // Momentum and eps play no part in the backward pass.
    let params = Params::new(shape, &BatchNormConfig::default(), &epilogue);
    for (what, buffer) in [("x", x), ("y", y), ("dy", dy), ("dx", dx)] {
        assert_len(what, buffer, shape.len(), shape);
    }
    for (what, buffer) in [
        ("saved_mean", saved_mean),
        ("saved_invstd", saved_invstd),
        ("gamma", gamma),
        ("dgamma", dgamma),
        ("dbeta", dbeta),
    ] {
        assert_len(what, buffer, shape.channels, shape);
    }
    let sums_dx = dx_sum.is_some();
    if let Some(dx_sum) = dx_sum {
        assert_len("dx_sum", dx_sum, shape.channels, shape);
    }
    let dx_sum = GpuBuffer::or_placeholder(ctx, dx_sum, "batchnorm no dx sum");
    let relu = epilogue.relu;
    let (entry, workgroups) = per_channel(
        shape,
        epilogue,
        sums_dx,
        "batchnorm_backward",
        "batchnorm_columns_backward",
    );
    kernel_dispatch(
        ctx,
        entry,
        // x, dy, dx (and y with the ReLU); saved mean and invstd, gamma, dgamma, dbeta (and Σdx).
        cost(
            shape,
            BACKWARD_FLOPS + sums_dx as u8 as f64,
            3 + relu as usize,
            5 + sums_dx as usize,
        ),
        &params,
        &[x, dy, saved_mean, saved_invstd, gamma, y],
        &[dx, dgamma, dbeta, &dx_sum],
        workgroups,
    )
}
