//! A convolution layer's kernels (forward, then the weight, bias and input gradients), plain
//! or transposed, on one of three schedules, chosen per shape on this adapter:
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
//! - **lowered, tap-major**: the patches transposed, `colᵀ` of shape `K×B·P`, so every product
//!   covers the whole batch at once (wide products, where the other schedules run one per
//!   image) and col2im's neighbouring pixels read neighbouring entries (the pixel-major col2im
//!   reads entries K apart: 38% of googlenet's step on an H200). It pays a swap of the output
//!   between `[O, B, P]` and NCHW each way.
//!
//! The lowered products, with `P = out_h·out_w`, `K = in_channels·kernel_h·kernel_w` and
//! `col[b] = im2col(x[b])` of shape `P×K`:
//!
//! - forward: `y[b] (O×P) = W (O×K) · col[b]ᵀ + bias` per row;
//! - grad-weight: `dW (O×K) = dYᵀ (O×B·P) · col (B·P×K)`, dY first swapped to `[O, B, P]`; or
//!   split-K, `dW = Σ_b dY[b] (O×P) · col[b] (P×K)`;
//! - grad-input: `dcol[b] (P×K) = dY[b]ᵀ · W`, then `dx = col2im(dcol)`.
//!
//! and tap-major, with `Y'` and `dY'` the output and its gradient as `[O, B·P]`:
//!
//! - forward: `Y' (O×B·P) = W (O×K) · colᵀ (K×B·P) + bias` per row, swapped to NCHW;
//! - grad-weight: `dW (O×K) = dY' (O×B·P) · col (B·P×K)`;
//! - grad-input: `dcolᵀ (K×B·P) = Wᵀ · dY'`, then `dx = col2im(dcolᵀ)`.
//!
//! Inference may run another forward ([`InferenceForward`]): Winograd's F(2×2, 3×3) for a 3×3
//! kernel at stride 1, which has no backward here and so serves evaluation only.
//!
//! A transposed convolution runs the same steps over the convolution it is the transpose of
//! (see [`super::conv_transpose2d`]): its forward is that one's grad-input with the bias added
//! by col2im, its grad-input that one's forward without bias on `im2col(dY)`, and its
//! grad-weight that one's grad-weight with x in dY's place and `im2col(dY)` as the patches.

use super::conv2d::{
    conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight, Conv2dOperands,
    Conv2dShape,
};
use super::conv_transpose2d::{
    conv_transpose2d_forward, conv_transpose2d_grad_bias, conv_transpose2d_grad_input,
    conv_transpose2d_grad_weight, ConvTranspose2dOperands, ConvTranspose2dShape,
};
use super::lowering::{col2im, col_len, col_shape, im2col, swap_batch_channel, PatchLayout};
use super::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use super::reduce::{channel_sum, ChannelSumShape};
use super::winograd;
use crate::gpu::{self, Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::shaders;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv2dSchedule {
    Implicit,
    Lowered,
    LoweredSplitK,
    LoweredTapMajor,
}

impl Conv2dSchedule {
    pub const ALL: [Conv2dSchedule; 4] = [
        Conv2dSchedule::Implicit,
        Conv2dSchedule::Lowered,
        Conv2dSchedule::LoweredSplitK,
        Conv2dSchedule::LoweredTapMajor,
    ];

    /// Whether this schedule can run `shape` here: each scratch matrix of a lowered schedule
    /// (the patches; split-K's per-image products) must fit one storage binding.
    pub fn fits(self, ctx: &GpuContext, shape: &Conv2dShape) -> bool {
        let bindable = |elements: usize| elements <= ctx.summary().max_binding_len();
        let (_, k) = col_shape(shape);
        match self {
            Conv2dSchedule::Implicit => true,
            // Tap-major's other scratch, the output as [O, B·P], is the output's size.
            Conv2dSchedule::Lowered | Conv2dSchedule::LoweredTapMajor => bindable(col_len(shape)),
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
        Layer::Conv(*shape).tuned(ctx, grad_input)
    }

    /// [`Conv2dSchedule::tuned`] for a transposed convolution.
    pub fn tuned_transposed(
        ctx: &GpuContext,
        shape: &ConvTranspose2dShape,
        grad_input: bool,
    ) -> Result<Self, GpuError> {
        Layer::Transposed(*shape).tuned(ctx, grad_input)
    }

    fn name(self) -> &'static str {
        match self {
            Conv2dSchedule::Implicit => "implicit",
            Conv2dSchedule::Lowered => "lowered",
            Conv2dSchedule::LoweredSplitK => "lowered-split-k",
            Conv2dSchedule::LoweredTapMajor => "lowered-tap-major",
        }
    }
}

named_choice!(Conv2dSchedule, "conv2d schedule");

/// How a convolution's inference forward runs: as its training schedule's forward, or by
/// Winograd's F(2×2, 3×3) (`shaders/winograd.wgsl`). Winograd applies to a 3×3 kernel at
/// stride 1: its 16 products have 2.25× fewer multiply-adds than the convolution, for the price
/// of transforming the input and the output, and the weights once per change of the weights
/// (see [`EvalForward`]). Inference only: its backward would need the same transforms again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferenceForward {
    Schedule,
    Winograd,
}

impl InferenceForward {
    const ALL: [InferenceForward; 2] = [InferenceForward::Schedule, InferenceForward::Winograd];

    /// The inference forward for `shape` trained on `schedule`: measured once when autotuning
    /// (the two forwards timed at this batch size, Winograd's without its weight transform,
    /// which an evaluation runs once), else [`Self::usual`].
    pub fn tuned(
        ctx: &GpuContext,
        shape: &Conv2dShape,
        schedule: Conv2dSchedule,
    ) -> Result<Self, GpuError> {
        if !winograd::fits(ctx, shape) {
            return Ok(InferenceForward::Schedule);
        }
        let kernels = [
            &shaders::CONV2D,
            &shaders::LOWERING,
            &shaders::MATMUL,
            &shaders::WINOGRAD,
        ];
        let key = format!(
            "{} evaluation forward against {schedule}",
            Layer::Conv(*shape).key()
        );
        ctx.tuned(&key, &kernels, Self::usual(shape), || {
            let buffers = TuningBuffers::new(ctx, Layer::Conv(*shape));
            let schedule_forward = conv2d_kernels(ctx, shape, schedule, buffers.get(false))?;
            let winograd = winograd_forward(ctx, shape, buffers.operands())?;
            let candidates = [
                (
                    InferenceForward::Schedule,
                    schedule_forward.forward.iter().collect(),
                ),
                (
                    InferenceForward::Winograd,
                    winograd.forward.iter().collect(),
                ),
            ];
            Ok(gpu::fastest(ctx, &candidates)?.unwrap_or(InferenceForward::Schedule))
        })
    }

    /// Winograd where the input has 16 channels or more: on lavapipe the tuner chose it for
    /// every such layer of the cnn, realtime_cnn and resnet, at batch 1 and 64, and for none
    /// with fewer (their first layers, on 1 or 3 channels, whose products are too short).
    fn usual(shape: &Conv2dShape) -> Self {
        match shape.in_channels >= 16 {
            true => InferenceForward::Winograd,
            false => InferenceForward::Schedule,
        }
    }

    /// The inference forward's dispatches, where they differ from the training forward's.
    pub fn forward(
        self,
        ctx: &GpuContext,
        shape: &Conv2dShape,
        operands: Conv2dOperands,
    ) -> Result<Option<EvalForward>, GpuError> {
        match self {
            InferenceForward::Schedule => Ok(None),
            InferenceForward::Winograd => winograd_forward(ctx, shape, operands).map(Some),
        }
    }

    /// The shared scratch, by role and length, that [`Self::forward`] asks for.
    pub fn shared_scratch(self, shape: &Conv2dShape) -> Vec<(&'static str, usize)> {
        match self {
            InferenceForward::Schedule => Vec::new(),
            InferenceForward::Winograd => {
                let [_, input, products] = winograd::scratch_lens(shape);
                WINOGRAD_SCRATCH
                    .into_iter()
                    .zip([input, products])
                    .collect()
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            InferenceForward::Schedule => "schedule",
            InferenceForward::Winograd => "winograd",
        }
    }
}

named_choice!(InferenceForward, "inference forward");

/// An inference forward that differs from the training forward: `from_weights` computes
/// tensors from the weights alone into buffers of the layer's own, which `forward` reads on
/// every pass; so they run once per evaluation, and again only after the weights change.
pub struct EvalForward {
    pub from_weights: Vec<Dispatch>,
    pub forward: Vec<Dispatch>,
}

/// The scratch every convolution shares, by role (see [`GpuBuffer::transient`]): each is
/// written and read within one pass of one layer.
const OUTPUT_BY_CHANNEL: &str = "conv2d output by channel";
const GRAD_WEIGHT_PER_IMAGE: &str = "conv2d grad-weight per image";
const PATCH_GRADIENTS: &str = "conv2d patch gradients";
/// Winograd's transformed input and products.
const WINOGRAD_SCRATCH: [&str; 2] = ["conv2d winograd input", "conv2d winograd products"];

/// The scratch convolution `shape`'s kernels on `schedule` share with every other layer's
/// ([`GpuBuffer::transient`]), by role and length: a plan allocates each role once, at the
/// longest any layer asks for, before recording any (recorded in rising order, each growth
/// would allocate anew and leave the shorter buffer bound by the layers before).
pub fn conv2d_shared_scratch(
    shape: &Conv2dShape,
    schedule: Conv2dSchedule,
    grad_input: bool,
) -> Vec<(&'static str, usize)> {
    Layer::Conv(*shape).shared_scratch(schedule, grad_input)
}

/// [`conv2d_shared_scratch`] for a transposed convolution.
pub fn conv_transpose2d_shared_scratch(
    shape: &ConvTranspose2dShape,
    schedule: Conv2dSchedule,
    grad_input: bool,
) -> Vec<(&'static str, usize)> {
    Layer::Transposed(*shape).shared_scratch(schedule, grad_input)
}

/// A layer the schedules can run.
#[derive(Clone, Copy)]
enum Layer {
    Conv(Conv2dShape),
    Transposed(ConvTranspose2dShape),
}

impl Layer {
    /// The convolution whose products the layer runs.
    fn conv(self) -> Conv2dShape {
        match self {
            Layer::Conv(shape) => shape,
            Layer::Transposed(shape) => shape.conv(),
        }
    }

    fn tuned(self, ctx: &GpuContext, grad_input: bool) -> Result<Conv2dSchedule, GpuError> {
        let lowered = Conv2dSchedule::Lowered;
        if !lowered.fits(ctx, &self.conv()) {
            return Ok(Conv2dSchedule::Implicit);
        }
        // Every kernel a schedule's training pass runs: split-K sums its partials on reduce.
        let kernels = [
            &shaders::CONV2D,
            &shaders::LOWERING,
            &shaders::MATMUL,
            &shaders::REDUCE,
        ];
        let key = format!(
            "{}{}",
            self.key(),
            if grad_input { " with grad-input" } else { "" }
        );
        let choice = ctx.tuned(&key, &kernels, lowered, || self.fastest(ctx, grad_input))?;
        // The choice was made at one batch size; at this one its scratch may not fit.
        Ok(if choice.fits(ctx, &self.conv()) {
            choice
        } else {
            lowered
        })
    }

    /// The shared scratch, by role and length, that the layer's kernels on `schedule` ask for
    /// (their [`GpuBuffer::transient`] calls below).
    fn shared_scratch(
        self,
        schedule: Conv2dSchedule,
        grad_input: bool,
    ) -> Vec<(&'static str, usize)> {
        let conv = self.conv();
        let (o, _, k) = lowered_dims(&conv);
        let by_channel = (OUTPUT_BY_CHANNEL, by_channel_len(&conv));
        let per_image = (GRAD_WEIGHT_PER_IMAGE, conv.batch * o * k);
        let patch_gradients = (PATCH_GRADIENTS, col_len(&conv));
        let grad_weight = match schedule {
            Conv2dSchedule::LoweredSplitK => per_image,
            _ => by_channel,
        };
        match (self, schedule) {
            (_, Conv2dSchedule::Implicit) => Vec::new(),
            // Grad-weight's, then grad-input's patch gradients where there is one.
            (Layer::Conv(_), _) => [grad_weight]
                .into_iter()
                .chain(grad_input.then_some(patch_gradients))
                .collect(),
            // The forward is the transposed convolution's grad-input; tap-major keeps its
            // input by channel as its own.
            (Layer::Transposed(_), Conv2dSchedule::LoweredTapMajor) => vec![patch_gradients],
            (Layer::Transposed(_), _) => vec![patch_gradients, grad_weight],
        }
    }

    /// The tuning key: the shape without the batch size, so a plan for the last, partial batch
    /// or for evaluation reuses the choice instead of timing every schedule again; but a single
    /// image (`fer predict`, `fer live`) gets its own, since per-image products that small
    /// favour other schedules (on lavapipe, realtime_cnn classified a face in 71–83 ms on
    /// choices made at batch 64 and in 46–51 ms on its own).
    fn key(self) -> String {
        let (kind, [channels, height, width], out_channels) = match self {
            Layer::Conv(s) => ("conv2d", [s.in_channels, s.height, s.width], s.out_channels),
            Layer::Transposed(s) => (
                "conv_transpose2d",
                [s.in_channels, s.height, s.width],
                s.out_channels,
            ),
        };
        let c = self.conv();
        format!(
            "{kind} {channels}x{height}x{width} to {out_channels} kernel {}x{} stride {} padding \
             {}{}",
            c.kernel_h,
            c.kernel_w,
            c.stride,
            c.padding,
            if c.batch == 1 { " single image" } else { "" }
        )
    }

    /// Times a training pass of each schedule that fits (see [`gpu::fastest`]) and returns the
    /// fastest.
    fn fastest(self, ctx: &GpuContext, grad_input: bool) -> Result<Conv2dSchedule, GpuError> {
        let buffers = TuningBuffers::new(ctx, self);
        let kernels = Conv2dSchedule::ALL
            .into_iter()
            .filter(|schedule| schedule.fits(ctx, &self.conv()))
            .map(|schedule| {
                Ok((
                    schedule,
                    self.kernels(ctx, schedule, buffers.get(grad_input))?,
                ))
            })
            .collect::<Result<Vec<_>, GpuError>>()?;
        // A training pass of each: forward, then backward.
        let candidates: Vec<_> = kernels
            .iter()
            .map(|(schedule, k)| (*schedule, k.forward.iter().chain(&k.backward).collect()))
            .collect();
        Ok(gpu::fastest(ctx, &candidates)?.unwrap_or(Conv2dSchedule::Lowered))
    }

    fn kernels(
        self,
        ctx: &GpuContext,
        schedule: Conv2dSchedule,
        buffers: Conv2dBuffers,
    ) -> Result<Conv2dKernels, GpuError> {
        match self {
            Layer::Conv(shape) => conv2d_kernels(ctx, &shape, schedule, buffers),
            Layer::Transposed(shape) => conv_transpose2d_kernels(ctx, &shape, schedule, buffers),
        }
    }
}

/// Zeros of a layer's sizes for timing its kernels.
struct TuningBuffers {
    input: GpuBuffer,
    weight: GpuBuffer,
    bias: GpuBuffer,
    output: GpuBuffer,
    grad_output: GpuBuffer,
    grad_weight: GpuBuffer,
    grad_input: GpuBuffer,
}

impl TuningBuffers {
    fn new(ctx: &GpuContext, layer: Layer) -> Self {
        // The layer's input, weight and output lengths.
        let (input_len, weight_len, output_len, out_channels) = match layer {
            Layer::Conv(s) => (
                s.input_len(),
                s.weight_len(),
                s.output_len(),
                s.out_channels,
            ),
            Layer::Transposed(s) => (
                s.input_len(),
                s.weight_len(),
                s.output_len(),
                s.out_channels,
            ),
        };
        let zeros = |label, len| GpuBuffer::zeros(ctx, label, len);
        TuningBuffers {
            input: zeros("tuning x", input_len),
            weight: zeros("tuning W", weight_len),
            bias: zeros("tuning b", out_channels),
            output: zeros("tuning y", output_len),
            grad_output: zeros("tuning dy", output_len),
            grad_weight: zeros("tuning dW", weight_len),
            grad_input: zeros("tuning dx", input_len),
        }
    }

    fn operands(&self) -> Conv2dOperands<'_> {
        Conv2dOperands {
            input: &self.input,
            weight: &self.weight,
            bias: Some(&self.bias),
            output: &self.output,
        }
    }

    fn get(&self, grad_input: bool) -> Conv2dBuffers<'_> {
        Conv2dBuffers {
            input: &self.input,
            weight: &self.weight,
            bias: &self.bias,
            output: &self.output,
            grad_output: &self.grad_output,
            grad_weight: &self.grad_weight,
            // The same reduction for every schedule, so left out of the comparison.
            grad_bias: None,
            grad_input: grad_input.then_some(&self.grad_input),
        }
    }
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
    /// `None` where another kernel writes it (a batch norm after the layer, summing its
    /// input gradient).
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
    let b = buffers;
    let mut kernels = match schedule {
        Conv2dSchedule::Implicit => {
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
            if let Some(dx) = b.grad_input {
                backward.push(conv2d_grad_input(ctx, shape, b.weight, b.grad_output, dx)?);
            }
            Conv2dKernels { forward, backward }
        }
        Conv2dSchedule::Lowered | Conv2dSchedule::LoweredSplitK => {
            let split_k = schedule == Conv2dSchedule::LoweredSplitK;
            // Kept from forward to grad-weight: the patches are read twice, written once.
            let col = GpuBuffer::zeros(ctx, "conv2d patches", col_len(shape));
            let mut forward = vec![im2col(ctx, shape, PatchLayout::PixelMajor, b.input, &col)?];
            forward.extend(forward_product(
                ctx,
                shape,
                PatchLayout::PixelMajor,
                b.weight,
                &col,
                Some(b.bias),
                b.output,
            )?);
            let mut backward =
                grad_weight_products(ctx, shape, split_k, b.grad_output, &col, b.grad_weight)?;
            if let Some(dx) = b.grad_input {
                backward.extend(grad_input_products(
                    ctx,
                    shape,
                    PatchLayout::PixelMajor,
                    b.weight,
                    b.grad_output,
                    None,
                    dx,
                )?);
            }
            Conv2dKernels { forward, backward }
        }
        Conv2dSchedule::LoweredTapMajor => {
            let col = GpuBuffer::zeros(ctx, "conv2d patches, tap-major", col_len(shape));
            // The output within the forward pass, its gradient within the backward: nothing
            // lives from one to the other, so every layer's can be one.
            let by_channel = GpuBuffer::transient(ctx, OUTPUT_BY_CHANNEL, by_channel_len(shape));
            let mut forward = vec![im2col(ctx, shape, PatchLayout::TapMajor, b.input, &col)?];
            forward.extend(forward_product(
                ctx,
                shape,
                PatchLayout::TapMajor,
                b.weight,
                &col,
                Some(b.bias),
                &by_channel,
            )?);
            forward.push(from_by_channel(ctx, shape, &by_channel, b.output)?);
            let mut backward = vec![to_by_channel(ctx, shape, b.grad_output, &by_channel)?];
            backward.extend(by_channel_grad_weight(
                ctx,
                shape,
                PatchLayout::TapMajor,
                &by_channel,
                &col,
                b.grad_weight,
            )?);
            if let Some(dx) = b.grad_input {
                backward.extend(grad_input_products(
                    ctx,
                    shape,
                    PatchLayout::TapMajor,
                    b.weight,
                    &by_channel,
                    None,
                    dx,
                )?);
            }
            Conv2dKernels { forward, backward }
        }
    };
    if let Some(grad_bias) = b.grad_bias {
        let sum = conv2d_grad_bias(ctx, shape, false, b.grad_output, grad_bias)?;
        kernels.backward.push(sum);
    }
    Ok(kernels)
}

/// A transposed convolution layer's dispatches (see [`super::conv_transpose2d`]): the same
/// buffers, the weight `[in_channels, out_channels, kernel_h, kernel_w]`.
pub fn conv_transpose2d_kernels(
    ctx: &GpuContext,
    shape: &ConvTranspose2dShape,
    schedule: Conv2dSchedule,
    buffers: Conv2dBuffers,
) -> Result<Conv2dKernels, GpuError> {
    shape.validate();
    let b = buffers;
    let mut kernels = match schedule {
        Conv2dSchedule::Implicit => {
            let operands = ConvTranspose2dOperands {
                input: b.input,
                weight: b.weight,
                bias: Some(b.bias),
                output: b.output,
            };
            let forward = vec![conv_transpose2d_forward(ctx, shape, operands)?];
            let mut backward = vec![conv_transpose2d_grad_weight(
                ctx,
                shape,
                false,
                b.grad_output,
                b.input,
                b.grad_weight,
            )?];
            if let Some(dx) = b.grad_input {
                backward.push(conv_transpose2d_grad_input(
                    ctx,
                    shape,
                    b.weight,
                    b.grad_output,
                    dx,
                )?);
            }
            Conv2dKernels { forward, backward }
        }
        Conv2dSchedule::Lowered | Conv2dSchedule::LoweredSplitK => {
            let split_k = schedule == Conv2dSchedule::LoweredSplitK;
            // In the terms of the convolution transposed: x is its dY, dY its input.
            let conv = shape.conv();
            let forward = grad_input_products(
                ctx,
                &conv,
                PatchLayout::PixelMajor,
                b.weight,
                b.input,
                Some(b.bias),
                b.output,
            )?;
            // The patches of dY, written once for grad-weight and grad-input.
            let col = GpuBuffer::zeros(ctx, "conv_transpose2d dy patches", col_len(&conv));
            let mut backward = vec![im2col(
                ctx,
                &conv,
                PatchLayout::PixelMajor,
                b.grad_output,
                &col,
            )?];
            backward.extend(grad_weight_products(
                ctx,
                &conv,
                split_k,
                b.input,
                &col,
                b.grad_weight,
            )?);
            if let Some(dx) = b.grad_input {
                backward.extend(forward_product(
                    ctx,
                    &conv,
                    PatchLayout::PixelMajor,
                    b.weight,
                    &col,
                    None,
                    dx,
                )?);
            }
            Conv2dKernels { forward, backward }
        }
        Conv2dSchedule::LoweredTapMajor => {
            // In the terms of the convolution transposed, as above. The input as [O, B·P] is
            // kept from forward to grad-weight, then holds grad-input's product.
            let conv = shape.conv();
            let by_channel = GpuBuffer::zeros(
                ctx,
                "conv_transpose2d input by channel",
                by_channel_len(&conv),
            );
            let mut forward = vec![to_by_channel(ctx, &conv, b.input, &by_channel)?];
            forward.extend(grad_input_products(
                ctx,
                &conv,
                PatchLayout::TapMajor,
                b.weight,
                &by_channel,
                Some(b.bias),
                b.output,
            )?);
            let col = GpuBuffer::zeros(
                ctx,
                "conv_transpose2d dy patches, tap-major",
                col_len(&conv),
            );
            let mut backward = vec![im2col(
                ctx,
                &conv,
                PatchLayout::TapMajor,
                b.grad_output,
                &col,
            )?];
            backward.extend(by_channel_grad_weight(
                ctx,
                &conv,
                PatchLayout::TapMajor,
                &by_channel,
                &col,
                b.grad_weight,
            )?);
            if let Some(dx) = b.grad_input {
                backward.extend(forward_product(
                    ctx,
                    &conv,
                    PatchLayout::TapMajor,
                    b.weight,
                    &col,
                    None,
                    &by_channel,
                )?);
                backward.push(from_by_channel(ctx, &conv, &by_channel, dx)?);
            }
            Conv2dKernels { forward, backward }
        }
    };
    if let Some(grad_bias) = b.grad_bias {
        let sum = conv_transpose2d_grad_bias(ctx, shape, false, b.grad_output, grad_bias)?;
        kernels.backward.push(sum);
    }
    Ok(kernels)
}

/// One product on the matmul variant tuned for its shape.
fn product(
    ctx: &GpuContext,
    shape: MatmulShape,
    epilogue: Epilogue,
    operands: MatmulOperands,
) -> Result<Vec<Dispatch>, GpuError> {
    let variant = MatmulVariant::tuned(ctx, &shape)?;
    matmul(ctx, variant, &shape, epilogue, operands)
}

/// The lowered forward product of convolution `shape` from patches laid out as `layout`:
/// pixel-major, `output[b] = weight · col[b]ᵀ (+ bias per row)` per image into the NCHW output;
/// tap-major, `output = weight · colᵀ (+ bias per row)` in one product into the output as
/// `[O, B·P]` (see [`from_by_channel`]).
fn forward_product(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    layout: PatchLayout,
    weight: &GpuBuffer,
    col: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    output: &GpuBuffer,
) -> Result<Vec<Dispatch>, GpuError> {
    let (o, p, k) = lowered_dims(shape);
    let forward_shape = match layout {
        PatchLayout::PixelMajor => MatmulShape {
            batch: shape.batch,
            trans_b: true,
            broadcast_a: true,
            ..MatmulShape::new(o, p, k)
        },
        PatchLayout::TapMajor => MatmulShape::new(o, shape.batch * p, k),
    };
    let per_row = Epilogue {
        bias_per_row: true,
        ..Epilogue::default()
    };
    let operands = MatmulOperands {
        a: weight,
        b: col,
        bias,
        c: output,
    };
    product(ctx, forward_shape, per_row, operands)
}

/// Convolution `shape`'s forward by Winograd's F(2×2, 3×3): the weights transformed into a
/// buffer of the layer's own (once per evaluation), then per pass the input transformed, one
/// product per point of the 4×4 transform domain, `M[ξ] (T×O) = V[ξ]ᵀ (T×C) ·
/// U[ξ] (C×O)` over the batch's T tiles, then the output transformed into NCHW with the bias.
/// A row per tile keeps all O columns' lanes busy where a single image has few tiles (on
/// lavapipe, the cnn's products at batch 1 took 4–32% less time than as O rows by T columns).
fn winograd_forward(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    operands: Conv2dOperands,
) -> Result<EvalForward, GpuError> {
    let [u_len, v_len, m_len] = winograd::scratch_lens(shape);
    let u = GpuBuffer::zeros(ctx, "conv2d winograd weights", u_len);
    // Each written and read within this layer's pass: every layer's can be one.
    let [v, m] = [(WINOGRAD_SCRATCH[0], v_len), (WINOGRAD_SCRATCH[1], m_len)]
        .map(|(role, len)| GpuBuffer::transient(ctx, role, len));
    let products_shape = MatmulShape {
        batch: winograd::POINTS,
        trans_a: true,
        ..MatmulShape::new(
            winograd::tile_count(shape),
            shape.out_channels,
            shape.in_channels,
        )
    };
    let products = MatmulOperands {
        a: &v,
        b: &u,
        bias: None,
        c: &m,
    };
    let mut forward = vec![winograd::transform_input(ctx, shape, operands.input, &v)?];
    forward.extend(product(ctx, products_shape, Epilogue::default(), products)?);
    forward.push(winograd::transform_output(
        ctx,
        shape,
        &m,
        operands.bias,
        operands.output,
    )?);
    Ok(EvalForward {
        from_weights: vec![winograd::transform_weights(
            ctx,
            shape,
            operands.weight,
            &u,
        )?],
        forward,
    })
}

/// The lowered grad-weight of convolution `shape`: `grad_weight = Σ_b grad_output[b] · col[b]`,
/// as one product over `grad_output` swapped to `[O, B, P]`, or per image and then summed
/// (`split_k`).
fn grad_weight_products(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    split_k: bool,
    grad_output: &GpuBuffer,
    col: &GpuBuffer,
    grad_weight: &GpuBuffer,
) -> Result<Vec<Dispatch>, GpuError> {
    let batch = shape.batch;
    let (o, p, k) = lowered_dims(shape);
    Ok(if split_k {
        // Written by the products and summed straight after: every layer's can be one.
        let per_image = GpuBuffer::transient(ctx, GRAD_WEIGHT_PER_IMAGE, batch * o * k);
        let sum_over_batch = ChannelSumShape {
            outer: batch,
            channels: o * k,
            inner: 1,
        };
        let mut dispatches = product(
            ctx,
            MatmulShape {
                batch,
                ..MatmulShape::new(o, k, p)
            },
            Epilogue::default(),
            MatmulOperands {
                a: grad_output,
                b: col,
                bias: None,
                c: &per_image,
            },
        )?;
        dispatches.push(channel_sum(
            ctx,
            &sum_over_batch,
            false,
            &per_image,
            grad_weight,
        )?);
        dispatches
    } else {
        // Swapped and read straight after: the buffer every layer shares.
        let grad_by_channel = GpuBuffer::transient(ctx, OUTPUT_BY_CHANNEL, by_channel_len(shape));
        let mut dispatches = vec![to_by_channel(ctx, shape, grad_output, &grad_by_channel)?];
        dispatches.extend(by_channel_grad_weight(
            ctx,
            shape,
            PatchLayout::PixelMajor,
            &grad_by_channel,
            col,
            grad_weight,
        )?);
        dispatches
    })
}

/// The lowered grad-input of convolution `shape`: the patch gradients as `layout` lays them out,
/// then `grad_input = col2im(them) (+ bias per channel)`. Pixel-major, `dcol[b] =
/// grad_output[b]ᵀ · weight` per image, from the NCHW gradient; tap-major, `dcolᵀ = weightᵀ ·
/// dY'` in one product, from the gradient as `[O, B·P]`.
fn grad_input_products(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    layout: PatchLayout,
    weight: &GpuBuffer,
    grad_output: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    grad_input: &GpuBuffer,
) -> Result<Vec<Dispatch>, GpuError> {
    let (o, p, k) = lowered_dims(shape);
    // Written by the product and read by col2im straight after: every layer's can be one.
    let grad_col = GpuBuffer::transient(ctx, PATCH_GRADIENTS, col_len(shape));
    let (grad_col_shape, a, b) = match layout {
        PatchLayout::PixelMajor => (
            MatmulShape {
                batch: shape.batch,
                trans_a: true,
                broadcast_b: true,
                ..MatmulShape::new(p, k, o)
            },
            grad_output,
            weight,
        ),
        PatchLayout::TapMajor => (
            MatmulShape {
                trans_a: true,
                ..MatmulShape::new(k, shape.batch * p, o)
            },
            weight,
            grad_output,
        ),
    };
    let operands = MatmulOperands {
        a,
        b,
        bias: None,
        c: &grad_col,
    };
    let mut dispatches = product(ctx, grad_col_shape, Epilogue::default(), operands)?;
    dispatches.push(col2im(ctx, shape, layout, &grad_col, bias, grad_input)?);
    Ok(dispatches)
}

/// The length of convolution `shape`'s output (or its gradient) as `[O, B·P]`.
fn by_channel_len(shape: &Conv2dShape) -> usize {
    let (o, p, _) = lowered_dims(shape);
    o * shape.batch * p
}

/// `by_channel = tensor` (NCHW, convolution `shape`'s output) as `[O, B·P]`.
fn to_by_channel(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    tensor: &GpuBuffer,
    by_channel: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let (o, p, _) = lowered_dims(shape);
    swap_batch_channel(ctx, [shape.batch, o, p], tensor, by_channel)
}

/// `tensor` (NCHW, convolution `shape`'s output) from `by_channel`, the same as `[O, B·P]`.
fn from_by_channel(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    by_channel: &GpuBuffer,
    tensor: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let (o, p, _) = lowered_dims(shape);
    swap_batch_channel(ctx, [o, shape.batch, p], by_channel, tensor)
}

/// The grad-weight of convolution `shape` in one product over the batch: `grad_weight = dY' ·
/// col`, with `dY'` the output's gradient as `[O, B·P]` and `col` the patches as `layout` lays
/// them out.
fn by_channel_grad_weight(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    layout: PatchLayout,
    grad_by_channel: &GpuBuffer,
    col: &GpuBuffer,
    grad_weight: &GpuBuffer,
) -> Result<Vec<Dispatch>, GpuError> {
    let (o, p, k) = lowered_dims(shape);
    let grad_weight_shape = MatmulShape {
        trans_b: layout == PatchLayout::TapMajor,
        ..MatmulShape::new(o, k, shape.batch * p)
    };
    let operands = MatmulOperands {
        a: grad_by_channel,
        b: col,
        bias: None,
        c: grad_weight,
    };
    product(ctx, grad_weight_shape, Epilogue::default(), operands)
}

/// `(O, P, K)` of the lowered products: output channels, output pixels per image, patch length.
fn lowered_dims(shape: &Conv2dShape) -> (usize, usize, usize) {
    (
        shape.out_channels,
        shape.out_height() * shape.out_width(),
        shape.in_channels * shape.kernel_h * shape.kernel_w,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(batch: usize) -> Layer {
        Layer::Conv(Conv2dShape {
            batch,
            in_channels: 32,
            out_channels: 64,
            height: 24,
            width: 24,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            padding: 1,
        })
    }

    /// The tuner remembers choices by name: each reads back as itself.
    #[test]
    fn choices_read_back_from_their_names() {
        for schedule in Conv2dSchedule::ALL {
            assert_eq!(schedule.to_string().parse(), Ok(schedule));
        }
        for forward in InferenceForward::ALL {
            assert_eq!(forward.to_string().parse(), Ok(forward));
        }
        let unknown = "fft".parse::<InferenceForward>();
        assert_eq!(unknown, Err("unknown inference forward `fft`".to_string()));
    }

    /// Batches share a choice, the last partial one included; a single image has its own.
    #[test]
    fn a_single_image_is_tuned_apart_from_batches() {
        assert_eq!(layer(64).key(), layer(37).key());
        assert_eq!(layer(2).key(), layer(64).key());
        assert_ne!(layer(1).key(), layer(64).key());
        assert!(layer(1).key().starts_with(&layer(64).key()));
    }
}
