//! conv2d: forward, grad-input, grad-weight and grad-bias against their twins on awkward
//! shapes (batch 1, one channel, odd and non-square images, strides that leave input rows
//! unread, 1×1 to 5×5 and non-square kernels, channel counts that are not multiples of 4), on
//! every convolution the studies use (batch 3, odd images) and on some of their layers; a whole
//! layer on each schedule (implicit, lowered to im2col + matmul, lowered with split-K
//! grad-weight) and when each is offered; then finite-difference checks of every backward twin
//! against the forward twin.
//!
//! Tolerances: every output is a dot product accumulated in f32 in some order, so
//! |gpu − exact| ≤ γ_terms·Σ|terms| (Higham §3.1), with Σ|terms| the twin run on absolute
//! values. terms = C·kh·kw + 1 (bias) forward, O·kh·kw + kh·kw grad-input (taps that miss dY
//! add an exact zero; see expected_grad_input), N·OH·OW + 1 (old value) grad-weight; grad-bias
//! is channel_sum's tree bound (kernels-tests/reduce.rs).

use fer::gpu::{GpuBuffer, GpuContext, GpuOptions};
use fer::kernels::conv2d::{
    conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight, Conv2dOperands,
    Conv2dShape,
};
use fer::kernels::conv2d_layer::{
    conv2d_kernels, conv2d_shared_scratch, conv_transpose2d_kernels,
    conv_transpose2d_shared_scratch, Conv2dBuffers, Conv2dKernels, Conv2dSchedule,
};
use fer::kernels::conv_transpose2d::ConvTranspose2dShape;
use fer::reference::conv2d as twin;

use crate::common::*;

#[allow(clippy::too_many_arguments)] // the nine numbers of a shape, in PyTorch's order
pub(crate) fn conv(
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    height: usize,
    width: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride: usize,
    padding: usize,
) -> Conv2dShape {
    Conv2dShape {
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

/// Shapes that hit every edge of the kernel's index arithmetic.
pub(crate) fn awkward_shapes() -> Vec<Conv2dShape> {
    vec![
        conv(1, 1, 3, 7, 5, 3, 3, 1, 1), // batch 1, one input channel, odd image
        conv(2, 3, 5, 7, 5, 3, 3, 2, 1), // stride 2 with padding
        conv(2, 3, 7, 8, 6, 3, 3, 2, 0), // stride 2 leaving the last row and column unread
        conv(2, 5, 7, 6, 6, 1, 1, 1, 0), // 1×1
        conv(2, 3, 7, 9, 7, 5, 5, 1, 2), // 5×5 "same"
        conv(1, 7, 5, 9, 11, 5, 5, 2, 2), // 5×5 stride 2
        conv(2, 3, 5, 7, 6, 3, 1, 1, 1), // non-square kernel
        conv(1, 2, 3, 4, 5, 4, 4, 3, 2), // even kernel, stride 3, padding ≥ half the kernel
        conv(1, 1, 1, 1, 1, 1, 1, 1, 0), // a single multiply
        conv(2, 10, 11, 9, 8, 3, 3, 1, 1), // channels past one 8-row strip, in both directions
        // 3-wide kernels at stride 1 on rows of whole quads take conv2d.wgsl's row window:
        conv(1, 2, 9, 5, 8, 3, 3, 1, 1), // forward and grad-input, both padded edges, two strips
        conv(2, 3, 4, 6, 10, 3, 3, 1, 0), // forward only (out_w 8, width 10), no padding
        conv(1, 3, 5, 5, 8, 2, 3, 1, 0), // grad-input only (width 8, out_w 6), a 2×3 kernel
        // Every convolution of the studies (MODELS.md B–D) at batch 3 on odd images, with
        // channel counts off and on multiples of 4 (on: A read a vec4 at a time, forward when
        // C·kh·kw % 4 = 0, grad-weight when out_h·out_w % 4 = 0):
        conv(3, 3, 5, 13, 11, 7, 7, 2, 3), // resnet conv1, 7×7/s2/p3
        conv(3, 4, 6, 15, 16, 7, 7, 2, 3), // the same, both on vec4 (8×8 out)
        conv(3, 5, 6, 7, 9, 1, 1, 1, 0),   // 1×1 (downsample, inception and unet 1×1)
        conv(3, 8, 5, 6, 6, 1, 1, 1, 0),   // 1×1, both on vec4
        conv(3, 5, 7, 9, 7, 1, 1, 2, 0),   // resnet downsample 1×1/s2 (5×4 out: vec4 grad-weight)
        conv(3, 5, 6, 9, 11, 3, 3, 2, 1),  // 3×3/s2/p1 (resnet, newnet conv3)
        conv(3, 4, 6, 8, 8, 3, 3, 2, 1),   // the same, both on vec4 (4×4 out)
        conv(3, 5, 3, 7, 9, 5, 5, 1, 2),   // googlenet, roglenet 5×5/p2
        conv(3, 3, 5, 9, 7, 7, 7, 1, 3),   // googlenet 7×7/p3
        conv(3, 3, 5, 9, 11, 3, 3, 1, 0),  // Keras "valid" and roglenet final_cnn, 3×3/p0
        conv(3, 5, 6, 7, 10, 3, 3, 1, 0),  // the same with row windows forward (out_w 8)
        conv(3, 5, 3, 5, 12, 3, 3, 1, 1),  // 3×3/p1 with row windows both ways (width 12)
    ]
}

/// The studies' layers (48×48 faces) at batch 2, some on smaller images.
pub(crate) fn model_shapes() -> Vec<Conv2dShape> {
    vec![
        conv(2, 1, 32, 24, 24, 3, 3, 1, 1),
        conv(2, 64, 128, 12, 12, 3, 3, 1, 1),
        conv(2, 3, 64, 48, 48, 7, 7, 2, 3),    // resnet conv1
        conv(2, 128, 256, 12, 12, 1, 1, 2, 0), // resnet layer2's downsample
    ]
}

fn seed(shape: &Conv2dShape) -> u64 {
    let s = shape;
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
    .fold(17, |acc, &v| acc * 31 + v as u64)
}

/// The twin's forward and its error bound: C·kh·kw products and the bias per output.
fn expected_forward(shape: &Conv2dShape, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Expected {
    let mut want = vec![0.0; shape.output_len()];
    twin::forward(shape, x, w, b, &mut want);
    let mut magnitude = vec![0.0; shape.output_len()];
    let abs_b = b.map(abs);
    twin::forward(shape, &abs(x), &abs(w), abs_b.as_deref(), &mut magnitude);
    let terms = shape.in_channels * shape.kernel_h * shape.kernel_w + 1;
    Expected::new(want, &magnitude, terms)
}

/// The twin's grad-input and its bound: O·kh·kw products per input pixel. The lowered
/// schedule sums them in two levels (O per patch entry, then ≤ kh·kw taps), whose error is
/// within γ of the sum of the two lengths; O·kh·kw + kh·kw covers both schedules.
fn expected_grad_input(shape: &Conv2dShape, w: &[f32], dy: &[f32]) -> Expected {
    let mut want = vec![0.0; shape.input_len()];
    twin::grad_input(shape, w, dy, &mut want);
    let mut magnitude = vec![0.0; shape.input_len()];
    twin::grad_input(shape, &abs(w), &abs(dy), &mut magnitude);
    let taps = shape.kernel_h * shape.kernel_w;
    Expected::new(want, &magnitude, shape.out_channels * taps + taps)
}

/// The twin's grad-weight (+ the old value) and its bound: N·OH·OW products per weight.
fn expected_grad_weight(
    shape: &Conv2dShape,
    dy: &[f32],
    x: &[f32],
    old: &[f32],
    accumulate: bool,
) -> Expected {
    let mut want = old.to_vec();
    twin::grad_weight(shape, dy, x, accumulate, &mut want);
    let mut magnitude = abs(old);
    twin::grad_weight(shape, &abs(dy), &abs(x), accumulate, &mut magnitude);
    let terms = shape.batch * shape.out_height() * shape.out_width() + 1;
    Expected::new(want, &magnitude, terms)
}

/// The twin's grad-bias and channel_sum's tree bound (kernels-tests/reduce.rs).
fn expected_grad_bias(shape: &Conv2dShape, dy: &[f32], old: &[f32], accumulate: bool) -> Expected {
    let mut want = old.to_vec();
    twin::grad_bias(shape, dy, accumulate, &mut want);
    let mut magnitude = abs(old);
    twin::grad_bias(shape, &abs(dy), accumulate, &mut magnitude);
    let terms = (shape.batch * shape.out_height() * shape.out_width()).div_ceil(256) + 9;
    Expected::new(want, &magnitude, terms)
}

fn check_forward(shape: &Conv2dShape, with_bias: bool) {
    let s = seed(shape);
    let x = random(s, shape.input_len());
    let w = random(s + 1, shape.weight_len());
    let b = with_bias.then(|| random(s + 2, shape.out_channels));
    let expected = expected_forward(shape, &x, &w, b.as_deref());

    let output = zeros(shape.output_len());
    let gpu_b = b.as_deref().map(upload);
    let dispatch = conv2d_forward(
        gpu(),
        shape,
        Conv2dOperands {
            input: &upload(&x),
            weight: &upload(&w),
            bias: gpu_b.as_ref(),
            output: &output,
        },
    )
    .expect("conv2d forward builds");
    run(&[&dispatch]);
    expected.check(&format!("forward {shape:?} bias={with_bias}"), &output);
}

fn check_grad_input(shape: &Conv2dShape) {
    let s = seed(shape);
    let w = random(s + 1, shape.weight_len());
    let dy = random(s + 3, shape.output_len());
    let expected = expected_grad_input(shape, &w, &dy);

    // Filled with garbage first: every element must be overwritten.
    let dx = upload(&random(s + 4, shape.input_len()));
    let dispatch = conv2d_grad_input(gpu(), shape, &upload(&w), &upload(&dy), &dx)
        .expect("conv2d grad-input builds");
    run(&[&dispatch]);
    expected.check(&format!("grad_input {shape:?}"), &dx);
}

fn check_grad_weight(shape: &Conv2dShape, accumulate: bool) {
    let s = seed(shape);
    let x = random(s, shape.input_len());
    let dy = random(s + 3, shape.output_len());
    let old = random(s + 5, shape.weight_len());
    let expected = expected_grad_weight(shape, &dy, &x, &old, accumulate);

    let dw = upload(&old);
    let dispatch = conv2d_grad_weight(gpu(), shape, accumulate, &upload(&dy), &upload(&x), &dw)
        .expect("conv2d grad-weight builds");
    run(&[&dispatch]);
    expected.check(
        &format!("grad_weight {shape:?} accumulate={accumulate}"),
        &dw,
    );
}

fn check_grad_bias(shape: &Conv2dShape, accumulate: bool) {
    let s = seed(shape);
    let dy = random(s + 3, shape.output_len());
    let old = random(s + 6, shape.out_channels);
    let expected = expected_grad_bias(shape, &dy, &old, accumulate);

    let db = upload(&old);
    let dispatch = conv2d_grad_bias(gpu(), shape, accumulate, &upload(&dy), &db)
        .expect("conv2d grad-bias builds");
    run(&[&dispatch]);
    expected.check(&format!("grad_bias {shape:?} accumulate={accumulate}"), &db);
}

/// A layer on one schedule with its operands, every output starting as garbage (so each must
/// be overwritten), and the twins' values to check them against.
struct LayerCase {
    shape: Conv2dShape,
    schedule: Conv2dSchedule,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    dy: Vec<f32>,
    output: GpuBuffer,
    grad_weight: GpuBuffer,
    grad_bias: GpuBuffer,
    grad_input: GpuBuffer,
    kernels: Conv2dKernels,
}

impl LayerCase {
    fn new(shape: &Conv2dShape, schedule: Conv2dSchedule) -> Self {
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
        let kernels = conv2d_kernels(
            gpu(),
            shape,
            schedule,
            Conv2dBuffers {
                input: &gx,
                weight: &gw,
                bias: &gb,
                output: &output,
                grad_output: &gdy,
                grad_weight: &grad_weight,
                grad_bias: Some(&grad_bias),
                grad_input: Some(&grad_input),
            },
        )
        .expect("conv2d layer builds");
        LayerCase {
            shape: *shape,
            schedule,
            x,
            w,
            b,
            dy,
            output,
            grad_weight,
            grad_bias,
            grad_input,
            kernels,
        }
    }

    /// The forward output and every gradient against the twins.
    fn check(&self) {
        let (shape, schedule) = (&self.shape, self.schedule);
        let what = |name: &str| format!("{schedule} {name} {shape:?}");
        let zero_weight = vec![0.0; shape.weight_len()];
        let zero_bias = vec![0.0; shape.out_channels];
        expected_forward(shape, &self.x, &self.w, Some(&self.b))
            .check(&what("forward"), &self.output);
        expected_grad_weight(shape, &self.dy, &self.x, &zero_weight, false)
            .check(&what("grad_weight"), &self.grad_weight);
        expected_grad_bias(shape, &self.dy, &zero_bias, false)
            .check(&what("grad_bias"), &self.grad_bias);
        expected_grad_input(shape, &self.w, &self.dy).check(&what("grad_input"), &self.grad_input);
    }
}

/// A whole layer on one schedule: forward, then every gradient, each against its twin.
fn check_layer(shape: &Conv2dShape, schedule: Conv2dSchedule) {
    let case = LayerCase::new(shape, schedule);
    run(&case
        .kernels
        .forward
        .iter()
        .chain(&case.kernels.backward)
        .collect::<Vec<_>>());
    case.check();
}

#[test]
fn forward_matches_reference() {
    for (i, shape) in awkward_shapes().iter().enumerate() {
        check_forward(shape, i % 2 == 0);
    }
}

#[test]
fn grad_input_matches_reference() {
    for shape in &awkward_shapes() {
        check_grad_input(shape);
    }
}

#[test]
fn grad_weight_matches_reference() {
    for (i, shape) in awkward_shapes().iter().enumerate() {
        check_grad_weight(shape, i % 2 == 1);
    }
}

#[test]
fn grad_bias_matches_reference() {
    for (i, shape) in awkward_shapes().iter().enumerate() {
        check_grad_bias(shape, i % 2 == 1);
    }
}

/// Layers share the scratch that lives only inside one forward or one backward pass
/// (`GpuBuffer::transient`): two layers of each schedule, recorded as a plan records them
/// (forwards in order, backwards in reverse, in one submission), each still matches its twins,
/// the larger second so that it grows the shared buffers the first one bound.
#[test]
fn layers_in_one_pass_share_their_scratch_safely() {
    let (first, second) = (
        conv(2, 3, 4, 7, 6, 3, 3, 1, 1),
        conv(3, 5, 6, 9, 8, 3, 3, 1, 1),
    );
    for schedule in Conv2dSchedule::ALL {
        let (a, b) = (
            LayerCase::new(&first, schedule),
            LayerCase::new(&second, schedule),
        );
        run(&a
            .kernels
            .forward
            .iter()
            .chain(&b.kernels.forward)
            .chain(&b.kernels.backward)
            .chain(&a.kernels.backward)
            .collect::<Vec<_>>());
        a.check();
        b.check();
    }
}

#[test]
fn every_schedule_runs_a_whole_layer_like_the_twins() {
    for schedule in Conv2dSchedule::ALL {
        for shape in awkward_shapes().iter().chain(&model_shapes()) {
            check_layer(shape, schedule);
        }
    }
}

/// The study's fourth convolution: split-K's per-image products (512·4608 values, 9.4 MB an
/// image) outgrow a storage binding 14 times sooner than the patches (36·4608 values), so at
/// the first batch whose products overflow this adapter's binding (15 on a 128 MiB binding,
/// 228 on a 2 GiB one) split-K is not offered and the plain lowering still is; at batch 1 both
/// fit, and the implicit schedule, which needs no scratch, fits any batch.
#[test]
fn a_lowered_schedule_is_offered_only_where_its_scratch_fits_a_binding() {
    let limit = gpu().summary().max_storage_binding_bytes;
    let layer = |batch| conv(batch, 512, 512, 6, 6, 3, 3, 1, 1);
    let products_per_image = 4 * 512 * 4608;
    let overflowing = (limit / products_per_image + 1) as usize;
    assert!(Conv2dSchedule::Lowered.fits(gpu(), &layer(overflowing)));
    assert!(Conv2dSchedule::LoweredTapMajor.fits(gpu(), &layer(overflowing)));
    assert!(!Conv2dSchedule::LoweredSplitK.fits(gpu(), &layer(overflowing)));
    assert!(Conv2dSchedule::LoweredSplitK.fits(gpu(), &layer(overflowing - 1)));
    assert!(Conv2dSchedule::LoweredSplitK.fits(gpu(), &layer(1)));
    assert!(Conv2dSchedule::Implicit.fits(gpu(), &layer(4 * overflowing)));
}

#[test]
fn model_layers_match_reference() {
    for shape in &model_shapes() {
        check_forward(shape, true);
        check_grad_input(shape);
        check_grad_weight(shape, false);
        check_grad_bias(shape, false);
    }
}

/// Each backward twin against central differences of `L = Σ forward(x, w, b) · r`. L is
/// bilinear in (x, w) and linear in b, so the differences are exact up to the f32 rounding of
/// the outputs: 1e-4 absolute and relative is far above that and far below any missing term.
#[test]
fn backward_twins_are_the_gradients_of_the_forward_twin() {
    for shape in [
        conv(2, 2, 3, 5, 4, 3, 3, 2, 1),
        conv(1, 3, 2, 4, 5, 3, 2, 1, 1),
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

/// What a plan allocates ahead for a layer's shared scratch (`conv2d_shared_scratch`) is what
/// the layer's kernels then ask for, on every schedule, plain and transposed, with and without
/// an input gradient: on a context of its own, each case a larger batch than the last (so no
/// buffer held is long enough), recording the layer after reserving its scratch allocates
/// nothing more.
#[test]
fn a_layer_asks_for_the_shared_scratch_it_declares() {
    let options = GpuOptions::from_env().expect("FER_BACKEND is a known backend");
    let ctx = GpuContext::new(&options).expect("a GPU adapter");
    let zeros = |len| GpuBuffer::zeros(&ctx, "test", len);
    let mut batch = 0;
    for transposed in [false, true] {
        for schedule in Conv2dSchedule::ALL {
            for grad_input in [false, true] {
                batch += 1;
                let plain = conv(batch, 3, 5, 7, 6, 3, 3, 2, 1);
                // The same channels the other way: 3 → 5, stride 2, onto 7×6 maps' worth.
                let transpose = ConvTranspose2dShape {
                    batch,
                    in_channels: 3,
                    out_channels: 5,
                    height: 4,
                    width: 3,
                    kernel_h: 3,
                    kernel_w: 3,
                    stride: 2,
                    padding: 1,
                };
                let (needs, lens) = match transposed {
                    false => (
                        conv2d_shared_scratch(&plain, schedule, grad_input),
                        (plain.input_len(), plain.weight_len(), plain.output_len()),
                    ),
                    true => (
                        conv_transpose2d_shared_scratch(&transpose, schedule, grad_input),
                        (
                            transpose.input_len(),
                            transpose.weight_len(),
                            transpose.output_len(),
                        ),
                    ),
                };
                for (role, len) in needs {
                    GpuBuffer::transient(&ctx, role, len);
                }
                let reserved = ctx.shared_scratch_allocated();
                let (input, weight, output) = (zeros(lens.0), zeros(lens.1), zeros(lens.2));
                let (bias, grad_output) = (zeros(5), zeros(lens.2));
                let (grad_weight, grad_bias, dx) = (zeros(lens.1), zeros(5), zeros(lens.0));
                let buffers = Conv2dBuffers {
                    input: &input,
                    weight: &weight,
                    bias: &bias,
                    output: &output,
                    grad_output: &grad_output,
                    grad_weight: &grad_weight,
                    grad_bias: Some(&grad_bias),
                    grad_input: grad_input.then_some(&dx),
                };
                let recorded = match transposed {
                    false => conv2d_kernels(&ctx, &plain, schedule, buffers),
                    true => conv_transpose2d_kernels(&ctx, &transpose, schedule, buffers),
                };
                recorded.expect("the layer records");
                assert_eq!(
                    ctx.shared_scratch_allocated(),
                    reserved,
                    "{} on {schedule}, grad-input {grad_input}: recording allocated shared \
                     scratch it did not declare",
                    if transposed { "transposed" } else { "conv2d" },
                );
            }
        }
    }
}
