//! winograd: the three transforms of F(2×2, 3×3) against their twins, then the whole inference
//! forward against the convolution's twin, on every 3×3 stride-1 shape of conv2d's awkward and
//! model shapes (odd outputs, whose last tiles the edge cuts; padding 0, 1 and 2; tile counts
//! off multiples of 4).
//!
//! Tolerances, each γ_n · Σ|terms| with Σ|terms| the twin run on absolute values (matrices
//! included): the weight transform rounds 2 additions per stage of `G g Gᵀ` (the halvings are
//! exact), n = 4; the input transform 1 per stage of `Bᵀ d B`, n = 2; the output transform 2
//! per stage of `Aᵀ m A` and the bias, n = 5. The forward chains them around C products summed
//! in f32: n = 4 + 2 + 1 + C + 5.

use fer::kernels::conv2d::Conv2dOperands;
use fer::kernels::conv2d_layer::InferenceForward;
use fer::kernels::winograd::{self, applies, scratch_lens};
use fer::reference::conv2d::forward as direct;
use fer::reference::winograd::{self as twin, Arithmetic};

use crate::common::*;
use crate::conv2d::{awkward_shapes, conv, model_shapes};
use fer::gpu::{GpuBuffer, GpuContext, GpuOptions};
use fer::kernels::conv2d::Conv2dShape;

fn shapes() -> Vec<Conv2dShape> {
    let mut shapes: Vec<_> = awkward_shapes()
        .into_iter()
        .chain(model_shapes())
        .filter(applies)
        .collect();
    // Padding 2, tiles starting two pixels outside a 2×2 input; a 2×1 output, one tile.
    shapes.push(conv(2, 3, 5, 2, 2, 3, 3, 1, 2));
    shapes.push(conv(1, 4, 6, 4, 3, 3, 3, 1, 0));
    shapes
}

fn f32s(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

fn expected(want: Vec<f64>, magnitude: Vec<f64>, terms: usize) -> Expected {
    Expected::new(f32s(&want), &f32s(&magnitude), terms)
}

#[test]
fn the_shapes_cover_odd_outputs_and_every_padding() {
    let shapes = shapes();
    assert!(shapes
        .iter()
        .any(|s| s.out_height() % 2 == 1 || s.out_width() % 2 == 1));
    for padding in 0..=2 {
        assert!(
            shapes.iter().any(|s| s.padding == padding),
            "padding {padding}"
        );
    }
    assert!(shapes.iter().any(|s| winograd::tile_count(s) % 4 != 0));
}

#[test]
fn the_weight_transform_matches_twin() {
    for (i, shape) in shapes().iter().enumerate() {
        let weight = random(i as u64, shape.weight_len());
        // Garbage first: every entry must be written.
        let u = upload(&random(i as u64 + 50, scratch_lens(shape)[0]));
        let dispatch = winograd::transform_weights(gpu(), shape, &upload(&weight), &u);
        run(&[&dispatch.expect("the weight transform builds")]);
        expected(
            twin::transform_weights(shape, &weight, Arithmetic::Exact),
            twin::transform_weights(shape, &weight, Arithmetic::Magnitude),
            4,
        )
        .check(&format!("weight transform {shape:?}"), &u);
    }
}

#[test]
fn the_input_transform_matches_twin() {
    for (i, shape) in shapes().iter().enumerate() {
        let input = random(i as u64, shape.input_len());
        let v = upload(&random(i as u64 + 50, scratch_lens(shape)[1]));
        let dispatch = winograd::transform_input(gpu(), shape, &upload(&input), &v);
        run(&[&dispatch.expect("the input transform builds")]);
        expected(
            twin::transform_input(shape, &input, Arithmetic::Exact),
            twin::transform_input(shape, &input, Arithmetic::Magnitude),
            2,
        )
        .check(&format!("input transform {shape:?}"), &v);
    }
}

/// Every other shape with a bias.
#[test]
fn the_output_transform_matches_twin() {
    for (i, shape) in shapes().iter().enumerate() {
        let products = random(i as u64, scratch_lens(shape)[2]);
        let bias = (i % 2 == 0).then(|| random(i as u64 + 7, shape.out_channels));
        let y = upload(&random(i as u64 + 50, shape.output_len()));
        let gpu_bias = bias.as_deref().map(upload);
        let dispatch =
            winograd::transform_output(gpu(), shape, &upload(&products), gpu_bias.as_ref(), &y);
        run(&[&dispatch.expect("the output transform builds")]);
        let magnitude_bias = bias.as_deref().map(abs);
        expected(
            twin::transform_output(shape, &products, bias.as_deref(), Arithmetic::Exact),
            twin::transform_output(
                shape,
                &abs(&products),
                magnitude_bias.as_deref(),
                Arithmetic::Magnitude,
            ),
            5,
        )
        .check(
            &format!("output transform {shape:?} bias={}", bias.is_some()),
            &y,
        );
    }
}

/// The forward a plan records for inference on Winograd equals the convolution.
#[test]
fn the_winograd_forward_matches_the_convolution() {
    for (i, shape) in shapes().iter().enumerate() {
        let (x, w, b) = (
            random(i as u64, shape.input_len()),
            random(i as u64 + 1, shape.weight_len()),
            random(i as u64 + 2, shape.out_channels),
        );
        let (gpu_x, gpu_w, gpu_b) = (upload(&x), upload(&w), upload(&b));
        let y = upload(&random(i as u64 + 50, shape.output_len()));
        let operands = Conv2dOperands {
            input: &gpu_x,
            weight: &gpu_w,
            bias: Some(&gpu_b),
            output: &y,
        };
        let eval = InferenceForward::Winograd
            .forward(gpu(), shape, operands)
            .expect("the winograd forward builds")
            .expect("winograd differs from the training forward");
        run(&eval
            .from_weights
            .iter()
            .chain(&eval.forward)
            .collect::<Vec<_>>());
        let mut want = vec![0.0; shape.output_len()];
        direct(shape, &x, &w, Some(&b), &mut want);
        let magnitude = twin::forward(
            shape,
            &abs(&x),
            &abs(&w),
            Some(&abs(&b)),
            Arithmetic::Magnitude,
        );
        Expected::new(want, &f32s(&magnitude), 12 + shape.in_channels)
            .check(&format!("winograd forward {shape:?}"), &y);
    }
}

/// A plan reserves each layer's shared scratch before recording any: the forward must allocate
/// none beyond what it declares (its transformed weights are its own, kept between passes).
#[test]
fn the_winograd_forward_asks_for_the_scratch_it_declares() {
    let options = GpuOptions::from_env().expect("FER_BACKEND is a known backend");
    let ctx = GpuContext::new(&options).expect("a GPU adapter");
    let shape = conv(2, 3, 5, 7, 6, 3, 3, 1, 1);
    for (role, len) in InferenceForward::Winograd.shared_scratch(&shape) {
        GpuBuffer::transient(&ctx, role, len);
    }
    let reserved = ctx.shared_scratch_allocated();
    let zeros = |len| GpuBuffer::zeros(&ctx, "test", len);
    let (input, weight, bias, output) = (
        zeros(shape.input_len()),
        zeros(shape.weight_len()),
        zeros(shape.out_channels),
        zeros(shape.output_len()),
    );
    let operands = Conv2dOperands {
        input: &input,
        weight: &weight,
        bias: Some(&bias),
        output: &output,
    };
    InferenceForward::Winograd
        .forward(&ctx, &shape, operands)
        .expect("the winograd forward builds");
    assert_eq!(
        ctx.shared_scratch_allocated(),
        reserved,
        "the winograd forward allocated shared scratch it did not declare"
    );
}
