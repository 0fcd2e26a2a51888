//! Host side of `shaders/softmax_ce.wgsl`: fused softmax cross-entropy (or focal loss) forward, the
//! accumulating reduction into a stats buffer, and backward, and [`softmax_ce_train`], all
//! three in one dispatch for a training step, which needs no readback; the stats buffer is read
//! once per epoch (zero it with [`fill`](crate::kernels::elementwise::fill)).

use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
pub use crate::reference::softmax_ce::{CrossEntropy, ROW_STATS};
use crate::shaders;

/// Rows per workgroup (`WG` in the shader).
const WORKGROUP: usize = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    label_smoothing: f32,
    scale: f32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::SOFTMAX_CE, Params: rows, classes, label_smoothing, scale)]
}

/// What the loss reads: logits `[rows, classes]` f32, labels `[rows]` u32, and the optional
/// class weight `[classes]` f32.
pub struct SoftmaxCeInputs<'a> {
    pub logits: &'a GpuBuffer,
    pub labels: &'a GpuBuffer,
    pub weight: Option<&'a GpuBuffer>,
}

/// Flops per logit of the log-softmax: the max, the shifted exponential and its sum (a few for
/// the exp, counted as 4 in all); the backward adds the probability and its difference.
const FORWARD_FLOPS_PER_LOGIT: f64 = 4.0;
const BACKWARD_FLOPS_PER_LOGIT: f64 = 6.0;

/// A kernel reading the logits, labels and class weight and writing `outputs` (bound after
/// them), over `workgroups`, with `constants` besides WEIGHTED and GAMMA.
#[allow(clippy::too_many_arguments)] // one launch of any of the four entries, spelled out
fn loss_kernel(
    ctx: &GpuContext,
    entry: &'static str,
    ce: &CrossEntropy,
    scale: f32,
    inputs: &SoftmaxCeInputs,
    outputs: &[&GpuBuffer],
    constants: &[(&'static str, f64)],
    workgroups: [u32; 3],
) -> Result<Dispatch, GpuError> {
    let SoftmaxCeInputs {
        logits,
        labels,
        weight,
    } = *inputs;
    assert!(ce.classes > 0, "{entry}: {ce:?} has no classes");
    assert!(
        logits.len() >= ce.logits_len(),
        "{entry}: logits too small for {ce:?}"
    );
    assert!(
        labels.len() >= ce.rows,
        "{entry}: labels too small for {ce:?}"
    );
    assert!(
        weight.is_none_or(|w| w.len() >= ce.classes),
        "{entry}: weight shorter than {} classes",
        ce.classes
    );
    assert!(
        !(ce.is_focal() && ce.label_smoothing != 0.0),
        "{entry}: {ce:?} is a focal loss, which has no label smoothing"
    );
    let focal = ce.is_focal().then_some(("GAMMA", ce.focal_gamma as f64));
    // The uniform, logits, labels, weight.
    let mut bindings = vec![
        Binding::Uniform,
        Binding::ReadOnly,
        Binding::ReadOnly,
        Binding::ReadOnly,
    ];
    bindings.extend(outputs.iter().map(|_| Binding::ReadWrite));
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::SOFTMAX_CE,
        entry,
        bindings: &bindings,
        constants: &[
            &[("WEIGHTED", if weight.is_some() { 1.0 } else { 0.0 })],
            // Cross-entropy leaves GAMMA at its default: the pipeline it always had.
            focal.as_slice(),
            constants,
        ]
        .concat(),
    })?;
    let params = Params {
        rows: ce.rows as u32,
        classes: ce.classes as u32,
        label_smoothing: ce.label_smoothing,
        scale,
    };
    let weight = GpuBuffer::or_placeholder(ctx, weight, "no weight");
    let buffers: Vec<&GpuBuffer> = [logits, labels, &weight]
        .into_iter()
        .chain(outputs.iter().copied())
        .collect();
    Ok(Dispatch::new(ctx, &kernel, &params, &buffers, workgroups))
}

/// One invocation per row, writing `output` (the forward's records or the backward's dlogits).
fn per_row(
    ctx: &GpuContext,
    entry: &'static str,
    ce: &CrossEntropy,
    scale: f32,
    inputs: &SoftmaxCeInputs,
    output: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let workgroups = workgroups_1d(ce.rows.div_ceil(WORKGROUP));
    loss_kernel(ctx, entry, ce, scale, inputs, &[output], &[], workgroups)
}

/// What a per-row kernel reads (logits, labels, the class weight) and writes (`output_len`).
fn per_row_cost(
    ce: &CrossEntropy,
    inputs: &SoftmaxCeInputs,
    flops_per_logit: f64,
    output_len: usize,
) -> Cost {
    Cost {
        flops: flops_per_logit * ce.logits_len() as f64,
        bytes: Cost::words(
            ce.logits_len() + ce.rows + inputs.weight.map_or(0, |_| ce.classes) + output_len,
        ),
    }
}

/// Writes each row's record `[l_i, w_i, correct, 1]` into `records` (`[rows, ROW_STATS]`);
/// see [`crate::reference::softmax_ce`] for `l_i`. `correct` is `argmax == label`, ties going
/// to the first maximum as `torch.argmax`.
pub fn softmax_ce_forward(
    ctx: &GpuContext,
    ce: &CrossEntropy,
    inputs: &SoftmaxCeInputs,
    records: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        records.len() >= ce.row_stats_len(),
        "softmax_ce_forward: records too small for {ce:?}"
    );
    let cost = per_row_cost(ce, inputs, FORWARD_FLOPS_PER_LOGIT, ce.row_stats_len());
    per_row(ctx, "softmax_ce_forward", ce, 1.0, inputs, records).map(|d| d.with_cost(cost))
}

/// Adds the column sums of `rows` records into `stats` = `[loss_sum, weight_sum,
/// correct_count, rows]`: it accumulates, so an epoch's mean loss is `loss_sum / weight_sum`
/// and its accuracy `correct_count / rows`. Counts are exact up to 2^24. One workgroup, fixed
/// summation order: the same inputs give the same bits every run.
pub fn softmax_ce_accumulate(
    ctx: &GpuContext,
    rows: usize,
    records: &GpuBuffer,
    stats: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        records.len() >= rows * ROW_STATS,
        "softmax_ce_accumulate: records too small for {rows} rows"
    );
    assert!(
        stats.len() >= ROW_STATS,
        "softmax_ce_accumulate: stats holds {ROW_STATS} values"
    );
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::SOFTMAX_CE,
        entry: "softmax_ce_accumulate",
        bindings: &[Binding::Uniform, Binding::ReadOnly, Binding::ReadWrite],
        constants: &[],
    })?;
    let params = Params {
        rows: rows as u32,
        classes: 0,
        label_smoothing: 0.0,
        scale: 0.0,
    };
    Ok(
        Dispatch::new(ctx, &kernel, &params, &[records, stats], [1, 1, 1]).with_cost(Cost {
            flops: (rows * ROW_STATS) as f64,
            // The records, then the stats read and written back.
            bytes: Cost::words(rows * ROW_STATS + 2 * ROW_STATS),
        }),
    )
}

/// Writes `scale · ∂loss/∂logits` of this batch's mean loss into `dlogits` (`[rows, classes]`),
/// as [`crate::reference::softmax_ce::backward`]. Needs only the inputs: the divisor
/// `Σ_j w_j` is summed inside the kernel, so it may be recorded right after the forward.
pub fn softmax_ce_backward(
    ctx: &GpuContext,
    ce: &CrossEntropy,
    scale: f32,
    inputs: &SoftmaxCeInputs,
    dlogits: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    assert!(
        dlogits.len() >= ce.logits_len(),
        "softmax_ce_backward: dlogits too small for {ce:?}"
    );
    let cost = per_row_cost(ce, inputs, BACKWARD_FLOPS_PER_LOGIT, ce.logits_len());
    per_row(ctx, "softmax_ce_backward", ce, scale, inputs, dlogits).map(|d| d.with_cost(cost))
}

/// A training step's loss in one dispatch: [`softmax_ce_forward`]'s records added into
/// `stats` as [`softmax_ce_accumulate`] adds them, and [`softmax_ce_backward`]'s `dlogits`,
/// bit for bit what the three give (the per-row records are not kept), and where `dlogits_sum`
/// is given, `dlogits` summed over the rows per class (the gradient of the bias of the layer
/// that made the logits; column_sum's bits). One workgroup walks all the rows, which suits a
/// training batch (tens to thousands of rows of a few classes).
pub fn softmax_ce_train(
    ctx: &GpuContext,
    ce: &CrossEntropy,
    scale: f32,
    inputs: &SoftmaxCeInputs,
    dlogits: &GpuBuffer,
    stats: &GpuBuffer,
    dlogits_sum: Option<&GpuBuffer>,
) -> Result<Dispatch, GpuError> {
    assert!(
        dlogits.len() >= ce.logits_len(),
        "softmax_ce_train: dlogits too small for {ce:?}"
    );
    assert!(
        dlogits_sum.is_none_or(|sum| sum.len() >= ce.classes),
        "softmax_ce_train: dlogits_sum shorter than {} classes",
        ce.classes
    );
    assert!(
        stats.len() >= ROW_STATS,
        "softmax_ce_train: stats holds {ROW_STATS} values"
    );
    let forward = per_row_cost(ce, inputs, FORWARD_FLOPS_PER_LOGIT, 0);
    let backward = per_row_cost(ce, inputs, BACKWARD_FLOPS_PER_LOGIT, ce.logits_len());
    let cost = Cost {
        flops: forward.flops + backward.flops,
        // The inputs once, dlogits written, the stats read and written back.
        bytes: backward.bytes + Cost::words(2 * ROW_STATS),
    };
    let sum = GpuBuffer::or_placeholder(ctx, dlogits_sum, "no dlogits sum");
    let sums: &[(&str, f64)] = match dlogits_sum {
        Some(_) => &[("SUM_DLOGITS", 1.0)],
        None => &[],
    };
    let dispatch = loss_kernel(
        ctx,
        "softmax_ce_train",
        ce,
        scale,
        inputs,
        &[dlogits, stats, &sum],
        sums,
        [1, 1, 1],
    )?;
    Ok(dispatch.with_cost(cost))
}
