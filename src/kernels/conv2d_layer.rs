//! A convolution layer's kernels (forward, then the weight, bias and input gradients) on one of
//! three schedules, chosen per shape on this adapter:
//!
//! - **implicit**: `shaders/conv2d.wgsl`'s implicit GEMM, which gathers the input's patches
//!   inside its loop and needs no scratch memory;
//! - **lowered**: the patches written once as a matrix (`im2col`), then the three products on
//!   the tuned matmul kernels (`shaders/lowering.wgsl`, `shaders/matmul.wgsl`). It costs a
//!   patch matrix per layer and the passes that write and read it, but its products run at
//!   matmul speed (on lavapipe 16–21 GFLOP/s against the implicit kernel's 8–15, so which wins
//!   depends on the layer), and on a real GPU they get the workgroup-tiled kernel;
//! - **lowered, split-K**: the same, but grad-weight as one product per image, summed over the
//!   batch afterwards. The single product leaves only O·K outputs to spread over the adapter
//!   (16×25 for a first layer); per image there are batch times as many, for a short reduction.
//!
//! The lowered products, with `P = out_h·out_w`, `K = in_channels·kernel_h·kernel_w` and
//! `col[b] = im2col(x[b])` of shape `P×K`:
//!
//! - forward: `y[b] (O×P) = W (O×K) · col[b]ᵀ + bias` per row;
//! - grad-weight: `dW (O×K) = dYᵀ (O×B·P) · col (B·P×K)`, dY first swapped to `[O, B, P]`; or
//!   split-K, `dW = Σ_b dY[b] (O×P) · col[b] (P×K)`;
//! - grad-input: `dcol[b] (P×K) = dY[b]ᵀ · W`, then `dx = col2im(dcol)`.

use std::str::FromStr;

use super::conv2d::{
    conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight, Conv2dOperands,
    Conv2dShape,
};
use super::lowering::{col2im, col_len, col_shape, im2col, swap_batch_channel};
use super::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use super::reduce::{channel_sum, ChannelSumShape};
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::shaders;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv2dSchedule {
    Implicit,
    Lowered,
    LoweredSplitK,
}

impl Conv2dSchedule {
    pub const ALL: [Conv2dSchedule; 3] = [
        Conv2dSchedule::Implicit,
        Conv2dSchedule::Lowered,
        Conv2dSchedule::LoweredSplitK,
    ];

    /// Whether this schedule can run `shape` here: each scratch matrix of a lowered schedule
    /// (the patches; split-K's per-image products) must fit one storage binding.
    pub fn fits(self, ctx: &GpuContext, shape: &Conv2dShape) -> bool {
        let binding = ctx.summary().max_storage_binding_bytes;
        let bindable = |elements: usize| 4 * elements as u64 <= binding && elements < 1 << 31;
        let (_, k) = col_shape(shape);
        match self {
            Conv2dSchedule::Implicit => true,
            Conv2dSchedule::Lowered => bindable(col_len(shape)),
            Conv2dSchedule::LoweredSplitK => {
                bindable(col_len(shape)) && bindable(shape.batch * shape.out_channels * k)
            }
        }
    }

    /// The schedule for `shape` on this adapter: measured once when autotuning (each
    /// schedule's whole forward and backward, timed at this batch size), else lowered wherever
    /// it fits.
    pub fn tuned(
        ctx: &GpuContext,
        shape: &Conv2dShape,
        grad_input: bool,
    ) -> Result<Self, GpuError> {
        let lowered = Conv2dSchedule::Lowered;
        if !lowered.fits(ctx, shape) {
            return Ok(Conv2dSchedule::Implicit);
        }
        // Keyed without the batch size: a plan for the last, partial batch or for evaluation
        // reuses the choice instead of timing every schedule again.
        let s = shape;
        let key = format!(
            "conv2d {}x{}x{} to {} kernel {}x{} stride {} padding {}{}",
            s.in_channels,
            s.height,
            s.width,
            s.out_channels,
            s.kernel_h,
            s.kernel_w,
            s.stride,
            s.padding,
            if grad_input { " with grad-input" } else { "" }
        );
        // Every kernel a schedule's training pass runs: split-K sums its partials on reduce.
        let kernels = [
            &shaders::CONV2D,
            &shaders::LOWERING,
            &shaders::MATMUL,
            &shaders::REDUCE,
        ];
        let choice = ctx.tuned(&key, &kernels, lowered, || fastest(ctx, shape, grad_input))?;
        // The choice was made at one batch size; at this one its scratch may not fit.
        Ok(if choice.fits(ctx, shape) {
            choice
        } else {
            lowered
        })
    }

    fn name(self) -> &'static str {
        match self {
            Conv2dSchedule::Implicit => "implicit",
            Conv2dSchedule::Lowered => "lowered",
            Conv2dSchedule::LoweredSplitK => "lowered-split-k",
        }
    }
}

impl std::fmt::Display for Conv2dSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Conv2dSchedule {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|schedule| schedule.name() == name)
            .ok_or_else(|| format!("unknown conv2d schedule `{name}`"))
    }
}

/// Times a training pass of each schedule that fits (see [`gpu::fastest`]) and returns the
/// fastest.
fn fastest(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    grad_input: bool,
) -> Result<Conv2dSchedule, GpuError> {
    let zeros = |label, len| GpuBuffer::zeros(ctx, label, len);
    let input = zeros("tuning x", shape.input_len());
    let weight = zeros("tuning W", shape.weight_len());
    let bias = zeros("tuning b", shape.out_channels);
    let output = zeros("tuning y", shape.output_len());
    let grad_output = zeros("tuning dy", shape.output_len());
    let grad_weight = zeros("tuning dW", shape.weight_len());
    let grad_input_buffer = zeros("tuning dx", shape.input_len());
    let buffers = Conv2dBuffers {
        input: &input,
        weight: &weight,
        bias: &bias,
        output: &output,
        grad_output: &grad_output,
        grad_weight: &grad_weight,
        // The same reduction for every schedule, so left out of the comparison.
        grad_bias: None,
        grad_input: grad_input.then_some(&grad_input_buffer),
    };
    let kernels = Conv2dSchedule::ALL
        .into_iter()
        .filter(|schedule| schedule.fits(ctx, shape))
        .map(|schedule| Ok((schedule, conv2d_kernels(ctx, shape, schedule, buffers)?)))
        .collect::<Result<Vec<_>, GpuError>>()?;
    // A training pass of each: forward, then backward.
    let candidates: Vec<_> = kernels
        .iter()
        .map(|(schedule, k)| (*schedule, k.forward.iter().chain(&k.backward).collect()))
        .collect();
    Ok(gpu::fastest(ctx, &candidates)?.unwrap_or(Conv2dSchedule::Lowered))
}

/// Everything a convolution layer reads and writes. `grad_input` is `None` for a first layer,
/// whose input gradient nobody needs.
#[derive(Clone, Copy)]
pub struct Conv2dBuffers<'a> {
    pub input: &'a GpuBuffer,
    pub weight: &'a GpuBuffer,
    pub bias: &'a GpuBuffer,
    pub output: &'a GpuBuffer,
    pub grad_output: &'a GpuBuffer,
    pub grad_weight: &'a GpuBuffer,
    /// `None` where the layer after sums the output gradient itself (see
    /// [`crate::graph::Layer::grad_output_sum`]).
    pub grad_bias: Option<&'a GpuBuffer>,
    pub grad_input: Option<&'a GpuBuffer>,
}

/// A layer's dispatches in recording order; backward overwrites every gradient.
pub struct Conv2dKernels {
    pub forward: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
}

pub fn conv2d_kernels(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    schedule: Conv2dSchedule,
    buffers: Conv2dBuffers,
) -> Result<Conv2dKernels, GpuError> {
    let mut kernels = match schedule {
        Conv2dSchedule::Implicit => implicit(ctx, shape, &buffers)?,
        Conv2dSchedule::Lowered => lowered(ctx, shape, &buffers, false)?,
        Conv2dSchedule::LoweredSplitK => lowered(ctx, shape, &buffers, true)?,
    };
    if let Some(grad_bias) = buffers.grad_bias {
        let sum = conv2d_grad_bias(ctx, shape, false, buffers.grad_output, grad_bias)?;
        kernels.backward.push(sum);
    }
    Ok(kernels)
}

fn implicit(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    b: &Conv2dBuffers,
) -> Result<Conv2dKernels, GpuError> {
    let operands = Conv2dOperands {
        input: b.input,
        weight: b.weight,
        bias: Some(b.bias),
        output: b.output,
    };
    let forward = vec![conv2d_forward(ctx, shape, operands)?];
    let mut backward = vec![conv2d_grad_weight(
        ctx,
        shape,
        false,
        b.grad_output,
        b.input,
        b.grad_weight,
    )?];
    if let Some(grad_input) = b.grad_input {
        backward.push(conv2d_grad_input(
            ctx,
            shape,
            b.weight,
            b.grad_output,
            grad_input,
        )?);
    }
    Ok(Conv2dKernels { forward, backward })
}

/// One product on the matmul variant tuned for its shape.
fn product(
    ctx: &GpuContext,
    shape: MatmulShape,
    epilogue: Epilogue,
    operands: MatmulOperands,
) -> Result<Dispatch, GpuError> {
    let variant = MatmulVariant::tuned(ctx, &shape)?;
    matmul(ctx, variant, &shape, epilogue, operands)
}

fn lowered(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    b: &Conv2dBuffers,
    split_k: bool,
) -> Result<Conv2dKernels, GpuError> {
    let batch = shape.batch;
    let (o, p) = (shape.out_channels, shape.out_height() * shape.out_width());
    let k = shape.in_channels * shape.kernel_h * shape.kernel_w;
    // Kept from forward to grad-weight: the patches are read twice, written once.
    let col = GpuBuffer::zeros(ctx, "conv2d patches", col_len(shape));

    let forward_shape = MatmulShape {
        batch,
        trans_b: true,
        broadcast_a: true,
        ..MatmulShape::new(o, p, k)
    };
    let per_row = Epilogue {
        bias_per_row: true,
        ..Epilogue::default()
    };
    let forward = vec![
        im2col(ctx, shape, b.input, &col)?,
        product(
            ctx,
            forward_shape,
            per_row,
            MatmulOperands {
                a: b.weight,
                b: &col,
                bias: Some(b.bias),
                c: b.output,
            },
        )?,
    ];

    let mut backward = if split_k {
        let per_image = GpuBuffer::zeros(ctx, "conv2d grad-weight per image", batch * o * k);
        let sum_over_batch = ChannelSumShape {
            outer: batch,
            channels: o * k,
            inner: 1,
        };
        vec![
            product(
                ctx,
                MatmulShape {
                    batch,
                    ..MatmulShape::new(o, k, p)
                },
                Epilogue::default(),
                MatmulOperands {
                    a: b.grad_output,
                    b: &col,
                    bias: None,
                    c: &per_image,
                },
            )?,
            channel_sum(ctx, &sum_over_batch, false, &per_image, b.grad_weight)?,
        ]
    } else {
        let grad_output_by_channel = GpuBuffer::zeros(ctx, "conv2d dy by channel", o * batch * p);
        vec![
            swap_batch_channel(ctx, [batch, o, p], b.grad_output, &grad_output_by_channel)?,
            product(
                ctx,
                MatmulShape::new(o, k, batch * p),
                Epilogue::default(),
                MatmulOperands {
                    a: &grad_output_by_channel,
                    b: &col,
                    bias: None,
                    c: b.grad_weight,
                },
            )?,
        ]
    };
    if let Some(grad_input) = b.grad_input {
        let grad_col = GpuBuffer::zeros(ctx, "conv2d patch gradients", col_len(shape));
        let grad_col_shape = MatmulShape {
            batch,
            trans_a: true,
            broadcast_b: true,
            ..MatmulShape::new(p, k, o)
        };
        backward.push(product(
            ctx,
            grad_col_shape,
            Epilogue::default(),
            MatmulOperands {
                a: b.grad_output,
                b: b.weight,
                bias: None,
                c: &grad_col,
            },
        )?);
        backward.push(col2im(ctx, shape, &grad_col, None, grad_input)?);
    }
    Ok(Conv2dKernels { forward, backward })
}
