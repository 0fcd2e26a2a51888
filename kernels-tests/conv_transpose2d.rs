//! conv_transpose2d: forward, grad-input, grad-weight and grad-bias against their twins (the
//! scatter definition, not conv2d's) on awkward shapes (batch 3, odd and non-square images,
//! strides 1 to 3, output pixels no input reaches, kernels smaller and larger than the stride,
//! channel counts on and off multiples of 4) and on the unet's up-convolutions; a whole layer
//! on each schedule; then finite-difference checks of every backward twin against the forward
//! twin.
//!
//! Tolerances (|gpu − exact| ≤ γ_terms·Σ|terms|, as kernels-tests/conv2d.rs), with the passes
//! run as the transposed convolution's:
//! - forward, its grad-input plus a bias: Cin products per tap, kh·kw taps, the bias; the
//!   implicit kernel sums Cin·kh·kw products (the taps that miss add exact zeros), the lowered
//!   schedule Cin per patch entry and then the taps, both within Cin·kh·kw + kh·kw + 1 terms;
//! - grad-input, its forward: Cout·kh·kw products;
//! - grad-weight, its grad-weight: N·H·W products and the old value (split-K's two levels, H·W
//!   and N, are fewer);
//! - grad-bias: channel_sum's tree bound (kernels-tests/reduce.rs).

use fer::gpu::{GpuContext, GpuOptions};
use fer::kernels::conv2d_layer::{conv_transpose2d_kernels, Conv2dBuffers, Conv2dSchedule};
use fer::kernels::conv_transpose2d::{
    conv_transpose2d_forward, conv_transpose2d_grad_bias, conv_transpose2d_grad_input,
    conv_transpose2d_grad_weight, ConvTranspose2dOperands, ConvTranspose2dShape,
};
use fer::reference::conv_transpose2d as twin;

use crate::common::*;

/// A shape from PyTorch's numbers in order: `ConvTranspose2d(in, out, (kh, kw), stride,
/// padding)` on a `[batch, in, height, width]` input.
#[allow(clippy::too_many_arguments)]
fn transposed(
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    height: usize,
    width: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride: usize,
    padding: usize,
) -> ConvTranspose2dShape {
    ConvTranspose2dShape {
        batch,
        in_channels,
        out_channels,
        height,
        width,
        kernel_h,
        kernel_w,
        stride,
        padding,
    }
}

/// Shapes that hit every edge of the index arithmetic, with the output size in the comment.
/// In conv2d.wgsl's terms (forward on its grad-input mode, grad-input on its forward mode,
/// grad-weight with x as dY), some take the fast paths: a vec4 of A per reduction step in
/// grad-input when Cout·kh·kw % 4 = 0 and in grad-weight when H·W % 4 = 0; row windows for a
/// 3-wide kernel at stride 1, forward when out_w % 4 = 0, grad-input when W % 4 = 0.
fn awkward_shapes() -> Vec<ConvTranspose2dShape> {
    vec![
        transposed(3, 5, 3, 7, 5, 2, 2, 2, 0), // the unet's k2/s2 → 14×10
        transposed(3, 8, 4, 6, 6, 2, 2, 2, 0), // the same on vec4 both ways → 12×12
        transposed(3, 3, 5, 5, 7, 4, 4, 2, 1), // k4/s2/p1, overlapping windows → 10×14
        transposed(2, 6, 7, 4, 5, 3, 3, 2, 1), // k3/s2/p1 → 7×9
        transposed(2, 3, 5, 6, 8, 3, 3, 1, 1), // k3/s1/p1 on row windows both ways → 6×8
        transposed(1, 2, 3, 4, 3, 5, 5, 3, 2), // stride 3 (GL's negative % hazard) → 10×7
        transposed(2, 3, 2, 3, 4, 1, 1, 2, 0), // kernel < stride: every other pixel is bias → 5×7
        transposed(1, 1, 1, 1, 1, 1, 1, 1, 0), // a single multiply → 1×1
        transposed(1, 10, 11, 3, 5, 2, 3, 2, 1), // a 2×3 kernel, channels past an 8-row strip → 4×9
    ]
}

/// The unet's up-convolutions (decoder3 at its size, decoder1 at a quarter of its channels).
fn model_shapes() -> Vec<ConvTranspose2dShape> {
    vec![
        transposed(2, 512, 256, 6, 6, 2, 2, 2, 0),
        transposed(2, 32, 16, 24, 24, 2, 2, 2, 0),
    ]
}

fn seed(s: &ConvTranspose2dShape) -> u64 {
    [
        s.batch,
        s.in_channels,
        s.out_channels,
        s.height,
        s.width,
        s.kernel_h,
        s.kernel_w,
        s.stride,
        s.padding,
    ]
    .iter()
    .fold(23, |acc, &v| acc * 31 + v as u64)
}

fn expected_forward(
    shape: &ConvTranspose2dShape,
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) -> Expected {
    let mut want = vec![0.0; shape.output_len()];
    twin::forward(shape, x, w, b, &mut want);
    let mut magnitude = vec![0.0; shape.output_len()];
    let abs_b = b.map(abs);
    twin::forward(shape, &abs(x), &abs(w), abs_b.as_deref(), &mut magnitude);
    let taps = shape.kernel_h * shape.kernel_w;
    Expected::new(want, &magnitude, shape.in_channels * taps + taps + 1)
}

fn expected_grad_input(shape: &ConvTranspose2dShape, w: &[f32], dy: &[f32]) -> Expected {
    let mut want = vec![0.0; shape.input_len()];
    twin::grad_input(shape, w, dy, &mut want);
    let mut magnitude = vec![0.0; shape.input_len()];
    twin::grad_input(shape, &abs(w), &abs(dy), &mut magnitude);
    let terms = shape.out_channels * shape.kernel_h * shape.kernel_w;
    Expected::new(want, &magnitude, terms)
}

fn expected_grad_weight(
    shape: &ConvTranspose2dShape,
    dy: &[f32],
    x: &[f32],
    old: &[f32],
    accumulate: bool,
) -> Expected {
    let mut want = old.to_vec();
    twin::grad_weight(shape, dy, x, accumulate, &mut want);
    let mut magnitude = abs(old);
    twin::grad_weight(shape, &abs(dy), &abs(x), accumulate, &mut magnitude);
    let terms = shape.batch * shape.height * shape.width + 1;
    Expected::new(want, &magnitude, terms)
}

fn expected_grad_bias(
    shape: &ConvTranspose2dShape,
    dy: &[f32],
    old: &[f32],
    accumulate: bool,
) -> Expected {
    let mut want = old.to_vec();
    twin::grad_bias(shape, dy, accumulate, &mut want);
    let mut magnitude = abs(old);
    twin::grad_bias(shape, &abs(dy), accumulate, &mut magnitude);
    let terms = (shape.batch * shape.out_height() * shape.out_width()).div_ceil(256) + 9;
    Expected::new(want, &magnitude, terms)
}

/// Each pass alone, outputs filled with garbage first so every element must be written; the
/// bias (forward) and accumulation (grad-weight and grad-bias) on every other shape.
#[test]
fn each_pass_matches_the_twins() {
    for (i, shape) in awkward_shapes().iter().chain(&model_shapes()).enumerate() {
        let s = seed(shape);
        let x = random(s, shape.input_len());
        let w = random(s + 1, shape.weight_len());
        let b = (i % 2 == 0).then(|| random(s + 2, shape.out_channels));
        let dy = random(s + 3, shape.output_len());
        let old_w = random(s + 5, shape.weight_len());
        let old_b = random(s + 6, shape.out_channels);
        let accumulate = i % 2 == 1;
        let (gx, gw, gdy) = (upload(&x), upload(&w), upload(&dy));
        let gb = b.as_deref().map(upload);
        let output = upload(&random(s + 4, shape.output_len()));
        let grad_input = upload(&random(s + 7, shape.input_len()));
        let (grad_weight, grad_bias) = (upload(&old_w), upload(&old_b));

        let operands = ConvTranspose2dOperands {
            input: &gx,
            weight: &gw,
            bias: gb.as_ref(),
            output: &output,
        };
        let ctx = gpu();
        let dispatches = [
            conv_transpose2d_forward(ctx, shape, operands),
            conv_transpose2d_grad_input(ctx, shape, &gw, &gdy, &grad_input),
            conv_transpose2d_grad_weight(ctx, shape, accumulate, &gdy, &gx, &grad_weight),
            conv_transpose2d_grad_bias(ctx, shape, accumulate, &gdy, &grad_bias),
        ]
        .map(|dispatch| dispatch.expect("conv_transpose2d builds"));
        run(&dispatches.iter().collect::<Vec<_>>());

        let what = |name: &str| {
            format!(
                "{name} {shape:?} bias={} accumulate={accumulate}",
                b.is_some()
            )
        };
        expected_forward(shape, &x, &w, b.as_deref()).check(&what("forward"), &output);
        expected_grad_input(shape, &w, &dy).check(&what("grad_input"), &grad_input);
        expected_grad_weight(shape, &dy, &x, &old_w, accumulate)
            .check(&what("grad_weight"), &grad_weight);
        expected_grad_bias(shape, &dy, &old_b, accumulate).check(&what("grad_bias"), &grad_bias);
    }
}

/// A whole layer on one schedule: forward, then every gradient, each against its twin.
/// Outputs and gradients start as garbage, so each must be overwritten.
fn check_layer(shape: &ConvTranspose2dShape, schedule: Conv2dSchedule) {
    let s = seed(shape);
    let (x, w, b) = (
        random(s, shape.input_len()),
        random(s + 1, shape.weight_len()),
        random(s + 2, shape.out_channels),
    );
    let dy = random(s + 3, shape.output_len());
    let (output, grad_weight, grad_bias, grad_input) = (
        upload(&random(s + 4, shape.output_len())),
        upload(&random(s + 5, shape.weight_len())),
        upload(&random(s + 6, shape.out_channels)),
        upload(&random(s + 7, shape.input_len())),
    );
    let (gx, gw, gb, gdy) = (upload(&x), upload(&w), upload(&b), upload(&dy));
    let buffers = Conv2dBuffers {
        input: &gx,
        weight: &gw,
        bias: &gb,
        output: &output,
        grad_output: &gdy,
        grad_weight: &grad_weight,
        grad_bias: Some(&grad_bias),
        grad_input: Some(&grad_input),
    };
    let kernels =
        conv_transpose2d_kernels(gpu(), shape, schedule, buffers).expect("the layer builds");
    run(&kernels
        .forward
        .iter()
        .chain(&kernels.backward)
        .collect::<Vec<_>>());
    let what = |name: &str| format!("{schedule} {name} {shape:?}");
    let zero_weight = vec![0.0; shape.weight_len()];
    let zero_bias = vec![0.0; shape.out_channels];
    expected_forward(shape, &x, &w, Some(&b)).check(&what("forward"), &output);
    expected_grad_weight(shape, &dy, &x, &zero_weight, false)
        .check(&what("grad_weight"), &grad_weight);
    expected_grad_bias(shape, &dy, &zero_bias, false).check(&what("grad_bias"), &grad_bias);
    expected_grad_input(shape, &w, &dy).check(&what("grad_input"), &grad_input);
}

#[test]
fn every_schedule_runs_a_whole_layer_like_the_twins() {
    for schedule in Conv2dSchedule::ALL {
        for shape in awkward_shapes().iter().chain(&model_shapes()) {
            check_layer(shape, schedule);
        }
    }
}

/// Autotuning (on a context of its own) builds and times every schedule's whole transposed
/// layer and picks one that runs the layer like the twins.
#[test]
fn a_tuned_schedule_runs_the_layer_like_the_twins() {
    let file = std::env::temp_dir().join(format!(
        "fer-autotune-conv-transpose2d-{}.json",
        std::process::id()
    ));
    let options = GpuOptions {
        autotune: true,
        autotune_file: Some(file.clone()),
        ..GpuOptions::from_env().expect("FER_BACKEND is not a known backend")
    };
    let ctx = GpuContext::new(&options).expect("a GPU adapter");
    let shape = transposed(3, 5, 3, 7, 5, 2, 2, 2, 0);
    let schedule = Conv2dSchedule::tuned_transposed(&ctx, &shape, true).expect("tuning runs");
    let _ = std::fs::remove_file(&file);
    check_layer(&shape, schedule);
}

#[test]
fn shapes_follow_pytorch_and_refuse_a_cropped_output() {
    let unet = transposed(32, 512, 256, 6, 6, 2, 2, 2, 0);
    assert_eq!((unet.out_height(), unet.out_width()), (12, 12));
    let k4 = transposed(1, 1, 1, 5, 7, 4, 4, 2, 1);
    assert_eq!((k4.out_height(), k4.out_width()), (10, 14));
    assert!(transposed(1, 1, 1, 1, 1, 2, 2, 2, 1).check().is_err());
    assert!(transposed(1, 1, 1, 3, 3, 2, 2, 0, 0).check().is_err());
    assert!(transposed(1, 1, 1, 1, 1, 3, 3, 1, 1).check().is_ok());
}

/// Each backward twin against central differences of `L = Σ forward(x, w, b) · r`; bilinear in
/// (x, w) and linear in b, so 1e-4 is far above the rounding and below any missing term (see
/// kernels-tests/conv2d.rs).
#[test]
fn backward_twins_are_the_gradients_of_the_forward_twin() {
    for shape in [
        transposed(2, 2, 3, 3, 4, 2, 2, 2, 0),
        transposed(1, 3, 2, 3, 3, 4, 3, 2, 1),
        transposed(1, 2, 2, 2, 3, 3, 3, 3, 2),
    ] {
        let s = seed(&shape);
        let x = random(s, shape.input_len());
        let w = random(s + 1, shape.weight_len());
        let b = random(s + 2, shape.out_channels);
        let r = random(s + 3, shape.output_len()); // dL/dy
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; shape.output_len()];
            twin::forward(&shape, x, w, Some(b), &mut y);
            dot(&y, &r)
        };

        let mut dx = vec![0.0; shape.input_len()];
        twin::grad_input(&shape, &w, &r, &mut dx);
        let mut dw = vec![0.0; shape.weight_len()];
        twin::grad_weight(&shape, &r, &x, false, &mut dw);
        let mut db = vec![0.0; shape.out_channels];
        twin::grad_bias(&shape, &r, false, &mut db);

        let what = |name: &str| format!("{name} {shape:?}");
        let numeric_x = numeric_gradient(&x, 1e-2, |x| loss(x, &w, &b));
        assert_gradient(&what("dx"), &dx, &numeric_x, 1e-4, 1e-4);
        let numeric_w = numeric_gradient(&w, 1e-2, |w| loss(&x, w, &b));
        assert_gradient(&what("dw"), &dw, &numeric_w, 1e-4, 1e-4);
        let numeric_b = numeric_gradient(&b, 1e-2, |b| loss(&x, &w, b));
        assert_gradient(&what("db"), &db, &numeric_b, 1e-4, 1e-4);
    }
}
