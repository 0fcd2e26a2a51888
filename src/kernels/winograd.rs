//! Host side of `shaders/winograd.wgsl`: the three transforms of Winograd's F(2×2, 3×3)
//! around its 16 matrix products (the products and the whole forward pass are in
//! [`super::conv2d_layer`]; the twins and the layouts in [`crate::reference::winograd`]).

use crate::gpu::{
    workgroups_1d, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
use crate::reference::conv2d::Conv2dShape;
pub use crate::reference::winograd::{applies, tile_count, tile_grid, POINTS};
use crate::shaders;

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    channels: u32,
    out_channels: u32,
    height: u32,
    width: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
    tiles_h: u32,
    tiles_w: u32,
    tiles: u32,
    n: u32,
    _pad: u32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::WINOGRAD, Params:
        channels, out_channels, height, width, padding, out_h, out_w, tiles_h, tiles_w, tiles, n,
        _pad
    )]
}

/// The shader's workgroup size: one item per invocation.
const WG: usize = 64;

impl Params {
    /// For `shape`, one item per invocation over `n` items.
    fn new(shape: &Conv2dShape, n: usize) -> Self {
        let (tiles_h, tiles_w) = tile_grid(shape);
        Params {
            channels: shape.in_channels as u32,
            out_channels: shape.out_channels as u32,
            height: shape.height as u32,
            width: shape.width as u32,
            padding: shape.padding as u32,
            out_h: shape.out_height() as u32,
            out_w: shape.out_width() as u32,
            tiles_h: tiles_h as u32,
            tiles_w: tiles_w as u32,
            tiles: tile_count(shape) as u32,
            n: n as u32,
            _pad: 0,
        }
    }
}

/// The lengths of the transformed weights `U [16, C, O]`, the transformed input
/// `V [16, C, T]` and the products `M [16, T, O]`.
pub fn scratch_lens(shape: &Conv2dShape) -> [usize; 3] {
    let (o, c, t) = (shape.out_channels, shape.in_channels, tile_count(shape));
    [POINTS * o * c, POINTS * c * t, POINTS * o * t]
}

/// Whether F(2×2, 3×3) can run `shape` here: a 3×3, stride-1 kernel, each scratch matrix and
/// the output within one storage binding.
pub fn fits(ctx: &GpuContext, shape: &Conv2dShape) -> bool {
    let bindable = |elements: usize| elements <= ctx.summary().max_binding_len();
    applies(shape) && scratch_lens(shape).into_iter().all(bindable) && bindable(shape.output_len())
}

/// One launch of `entry` over `params.n` items, from `buffers[0]` to `buffers[1]` (and
/// winograd_output's bias after them); `cost` is what it moves and adds.
fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    constants: &[(&'static str, f64)],
    params: Params,
    buffers: &[&GpuBuffer],
    cost: Cost,
) -> Result<Dispatch, GpuError> {
    let bindings = [
        Binding::Uniform,
        Binding::ReadOnly,
        Binding::ReadWrite,
        Binding::ReadOnly,
    ];
    let kernel = ctx.kernel(&KernelSpec {
        shader: &shaders::WINOGRAD,
        entry,
        bindings: &bindings[..1 + buffers.len()],
        constants,
    })?;
    let workgroups = workgroups_1d((params.n as usize).div_ceil(WG));
    Ok(Dispatch::new(ctx, &kernel, &params, buffers, workgroups).with_cost(cost))
}

/// `u = G g Gᵀ` of every 3×3 kernel of `weight` (see [`crate::reference::winograd`]).
pub fn transform_weights(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    weight: &GpuBuffer,
    u: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let [u_len, _, _] = scratch_lens(shape);
    assert!(applies(shape), "winograd: {shape:?} is not 3×3 at stride 1");
    assert!(
        weight.len() >= shape.weight_len() && u.len() >= u_len,
        "winograd weights: too short"
    );
    let n = shape.out_channels * shape.in_channels;
    // Per kernel: 9 loads, 16 stores, 2·(3·3) + 4·3 additions.
    let cost = Cost {
        flops: 30.0 * n as f64,
        bytes: Cost::words(shape.weight_len() + u_len),
    };
    launch(
        ctx,
        "winograd_weights",
        &[],
        Params::new(shape, n),
        &[weight, u],
        cost,
    )
}

/// `v = Bᵀ d B` of every 4×4 input tile `d` of every channel.
pub fn transform_input(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    input: &GpuBuffer,
    v: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let [_, v_len, _] = scratch_lens(shape);
    assert!(applies(shape), "winograd: {shape:?} is not 3×3 at stride 1");
    assert!(
        input.len() >= shape.input_len() && v.len() >= v_len,
        "winograd input: too short"
    );
    let n = shape.in_channels * tile_count(shape);
    // Per tile: 4·4 + 4·4 additions; the input read about once (tiles overlap by half).
    let cost = Cost {
        flops: 32.0 * n as f64,
        bytes: Cost::words(shape.input_len() + v_len),
    };
    launch(
        ctx,
        "winograd_input",
        &[],
        Params::new(shape, n),
        &[input, v],
        cost,
    )
}

/// The NCHW output, `Aᵀ m A (+ bias)` for every tile's products `m`.
pub fn transform_output(
    ctx: &GpuContext,
    shape: &Conv2dShape,
    products: &GpuBuffer,
    bias: Option<&GpuBuffer>,
    output: &GpuBuffer,
) -> Result<Dispatch, GpuError> {
    let [_, _, m_len] = scratch_lens(shape);
    assert!(applies(shape), "winograd: {shape:?} is not 3×3 at stride 1");
    assert!(
        products.len() >= m_len && output.len() >= shape.output_len(),
        "winograd output: too short"
    );
    assert!(
        bias.is_none_or(|bias| bias.len() >= shape.out_channels),
        "winograd output: bias shorter than {} channels",
        shape.out_channels
    );
    let n = shape.out_channels * tile_count(shape);
    // Per tile: 2·4·2 + 2·2·2 additions, and the bias.
    let cost = Cost {
        flops: 28.0 * n as f64,
        bytes: Cost::words(m_len + shape.output_len()),
    };
    let constants = [("BIAS", if bias.is_some() { 1.0 } else { 0.0 })];
    let bias = GpuBuffer::or_placeholder(ctx, bias, "no bias");
    let params = Params::new(shape, n);
    let buffers = [products, output, &bias];
    launch(ctx, "winograd_output", &constants, params, &buffers, cost)
}
