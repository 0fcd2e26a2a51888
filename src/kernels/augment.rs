//! Host side of `shaders/augment.wgsl`: geometric sampling (random affine, flip, crops),
//! colour jitter and random erasing of an NCHW batch. The per-image parameters are drawn on the
//! host by `reference::augment` and written to a small buffer each step
//! ([`Transform::words`], [`JitterDraw::words`], [`erase_words`]); the dispatches keep their
//! bind groups.

use thiserror::Error;

use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
pub use crate::reference::augment::{
    BatchShape, ColorJitter, Fill, JitterDraw, JitterOp, Normalisation, RandomAffine, RandomCrop,
    RandomErasing, RandomResizedCrop, Transform,
};
use crate::shaders;

/// Invocations per workgroup (the shader's `WG`).
const WG: usize = 64;

#[derive(Debug, Error)]
pub enum AugmentError {
    #[error("augmentation: {0}")]
    Invalid(String),
    #[error(transparent)]
    Gpu(#[from] GpuError),
}

fn kernel_dispatch<P: bytemuck::Pod>(
    ctx: &GpuContext,
    entry: &'static str,
    params: &P,
    inputs: &[&GpuBuffer],
    outputs: &[&GpuBuffer],
    workgroups: [u32; 3],
) -> Result<Dispatch, GpuError> {
    let bindings: Vec<Binding> = std::iter::once(Binding::Uniform)
        .chain(inputs.iter().map(|_| Binding::ReadOnly))
        .chain(outputs.iter().map(|_| Binding::ReadWrite))
        .collect();
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::AUGMENT,
        entry,
        bindings: &bindings,
        constants: &[],
    })?;
    let buffers: Vec<&GpuBuffer> = inputs.iter().chain(outputs).copied().collect();
    Ok(Dispatch::new(ctx, &kernel, params, &buffers, workgroups))
}

fn check_len(what: &str, buffer: &GpuBuffer, len: usize) -> Result<(), AugmentError> {
    if buffer.len() < len {
        return Err(AugmentError::Invalid(format!(
            "the {what} buffer holds {} values where {len} are needed",
            buffer.len()
        )));
    }
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SampleParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    fill: u32,
    _pad: u32,
}

/// `y` (`input.batch × C × out_height × out_width`) = `x` resampled through each image's
/// [`Transform`] in `transforms` (`Transform::WORDS` values per image), as
/// `reference::augment::sample` specifies. Refuses a constant fill without one value per
/// channel.
pub fn sample(
    ctx: &GpuContext,
    input: BatchShape,
    (out_height, out_width): (usize, usize),
    fill: &Fill,
    transforms: &GpuBuffer,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, AugmentError> {
    let output = input.resized(out_height, out_width);
    check_len("transform", transforms, input.batch * Transform::WORDS)?;
    check_len("input", x, input.len())?;
    check_len("output", y, output.len())?;
    let values = fill.values(input.channels).ok_or_else(|| {
        AugmentError::Invalid(format!(
            "a constant fill needs one value per channel ({}), not {fill:?}",
            input.channels
        ))
    })?;
    let params = SampleParams {
        batch: input.batch as u32,
        channels: input.channels as u32,
        height: input.height as u32,
        width: input.width as u32,
        out_height: out_height as u32,
        out_width: out_width as u32,
        fill: match fill {
            Fill::Nearest => 0,
            Fill::Constant(_) => 1,
            Fill::Reflect => 2,
            Fill::Mirror => 3,
        },
        _pad: 0,
    };
    // The bind group keeps the buffer alive as long as the dispatch.
    let fill_values = GpuBuffer::from_slice(ctx, "sample fill values", &values);
    let pixels = output.batch * out_height * out_width;
    let dispatch = kernel_dispatch(
        ctx,
        "sample",
        &params,
        &[transforms, x, &fill_values],
        &[y],
        workgroups_1d(pixels.div_ceil(WG)),
    )?;
    // Four taps and three lerps (6 flops) per output value.
    Ok(dispatch.with_cost(Cost {
        flops: 6.0 * output.len() as f64,
        bytes: Cost::words(input.len() + output.len()),
    }))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct JitterParams {
    batch: u32,
    channels: u32,
    plane: u32,
    contrast: u32,
    mean: [f32; 4],
    deviation: [f32; 4],
}

/// `y` = `x` colour-jittered per image by `draws` (`JitterDraw::WORDS` values per image, from
/// `ColorJitter::draw`), as `reference::augment::color_jitter` specifies. Refuses saturation or hue on a
/// grey batch, and a normalisation that is not one mean and one positive std per channel.
pub fn color_jitter(
    ctx: &GpuContext,
    shape: BatchShape,
    jitter: &ColorJitter,
    normalisation: &Normalisation,
    draws: &GpuBuffer,
    x: &GpuBuffer,
    y: &GpuBuffer,
) -> Result<Dispatch, AugmentError> {
    jitter
        .validate(shape.channels)
        .map_err(AugmentError::Invalid)?;
    let (mean, std) = (&normalisation.mean, &normalisation.std);
    if mean.len() != shape.channels || std.len() != shape.channels || !std.iter().all(|&s| s > 0.0)
    {
        return Err(AugmentError::Invalid(format!(
            "colour jitter needs {} means and positive stds, one per channel, not {mean:?} and \
             {std:?}",
            shape.channels
        )));
    }
    check_len("jitter draw", draws, shape.batch * JitterDraw::WORDS)?;
    check_len("input", x, shape.len())?;
    check_len("output", y, shape.len())?;
    let mut params = JitterParams {
        batch: shape.batch as u32,
        channels: shape.channels as u32,
        plane: (shape.height * shape.width) as u32,
        contrast: jitter.contrast.is_some() as u32,
        mean: [0.0; 4],
        deviation: [1.0; 4],
    };
    params.mean[..mean.len()].copy_from_slice(mean);
    params.deviation[..std.len()].copy_from_slice(std);
    let dispatch = kernel_dispatch(
        ctx,
        "color_jitter",
        &params,
        &[draws, x],
        &[y],
        workgroups_1d(shape.batch),
    )?;
    Ok(dispatch.with_cost(Cost {
        flops: 0.0,
        bytes: Cost::words(2 * shape.len()),
    }))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EraseParams {
    n: u32,
    channels: u32,
    height: u32,
    width: u32,
    value: f32,
    _pad: [u32; 3],
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![
        uniform_layout!(shaders::AUGMENT, SampleParams:
            batch, channels, height, width, out_height, out_width, fill, _pad
        ),
        uniform_layout!(shaders::AUGMENT, JitterParams:
            batch, channels, plane, contrast, mean, deviation
        ),
        uniform_layout!(shaders::AUGMENT, EraseParams: n, channels, height, width, value, _pad),
    ]
}

/// The boxes `RandomErasing::draw` returns, as the erase kernel reads them.
pub fn erase_words(boxes: &[[u32; 4]]) -> Vec<u32> {
    boxes.iter().flatten().copied().collect()
}

/// `x` with each image's box in `boxes` ([`erase_words`]) set to `value`, in place.
pub fn erase(
    ctx: &GpuContext,
    shape: BatchShape,
    value: f32,
    boxes: &GpuBuffer,
    x: &GpuBuffer,
) -> Result<Dispatch, AugmentError> {
    check_len("erase box", boxes, 4 * shape.batch)?;
    check_len("batch", x, shape.len())?;
    let params = EraseParams {
        n: shape.len() as u32,
        channels: shape.channels as u32,
        height: shape.height as u32,
        width: shape.width as u32,
        value,
        _pad: [0; 3],
    };
    let dispatch = kernel_dispatch(
        ctx,
        "erase",
        &params,
        &[boxes],
        &[x],
        workgroups_1d(shape.len().div_ceil(WG)),
    )?;
    Ok(dispatch.with_cost(Cost {
        flops: 0.0,
        bytes: Cost::words(2 * shape.len()),
    }))
}
