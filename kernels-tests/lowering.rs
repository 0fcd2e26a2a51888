//! lowering: im2col, col2im and the batch↔channel swap against their twins on conv2d's awkward
//! and model shapes, then the twins' adjoint identity, which is col2im's gradient check.
//!
//! Tolerances: im2col and the swap copy values, so they must match bit for bit. col2im adds at
//! most kh·kw patch entries and a bias per input pixel in f32: within γ_{kh·kw+1}·Σ|terms| of
//! the twin's f64 sum.

use fer::kernels::lowering::{col2im, col_len, im2col, swap_batch_channel, PatchLayout};
use fer::reference::lowering as twin;

use crate::common::*;
use crate::conv2d::{awkward_shapes, conv, model_shapes};

fn shapes() -> Vec<fer::kernels::conv2d::Conv2dShape> {
    awkward_shapes().into_iter().chain(model_shapes()).collect()
}

const LAYOUTS: [PatchLayout; 2] = [PatchLayout::PixelMajor, PatchLayout::TapMajor];

#[test]
fn im2col_copies_the_twins_patches_exactly() {
    for layout in LAYOUTS {
        for (i, shape) in shapes().iter().enumerate() {
            let x = random(i as u64, shape.input_len());
            // Garbage first: the padding's zeros must be written, not assumed.
            let col = upload(&random(i as u64 + 100, col_len(shape)));
            let dispatch = im2col(gpu(), shape, layout, &upload(&x), &col);
            run(&[&dispatch.expect("im2col builds")]);
            assert_bits_eq(
                &format!("im2col {layout:?} {shape:?}"),
                &read(&col),
                &twin::im2col(shape, layout, &x),
            );
        }
    }
}

/// The tap-major patches are the pixel-major ones transposed, `[K, B·P]` against `[B·P, K]`.
#[test]
fn tap_major_patches_are_the_transpose() {
    let shape = conv(2, 3, 2, 5, 4, 3, 3, 2, 1);
    let x = random(7, shape.input_len());
    let rows = shape.batch * shape.out_height() * shape.out_width();
    let k_len = shape.in_channels * shape.kernel_h * shape.kernel_w;
    let pixel_major = twin::im2col(&shape, PatchLayout::PixelMajor, &x);
    let tap_major = twin::im2col(&shape, PatchLayout::TapMajor, &x);
    for row in 0..rows {
        for k in 0..k_len {
            assert_eq!(tap_major[k * rows + row], pixel_major[row * k_len + k]);
        }
    }
}

/// Every other shape with a bias per channel (the transposed convolution's forward pass).
#[test]
fn col2im_matches_twin() {
    for layout in LAYOUTS {
        for (i, shape) in shapes().iter().enumerate() {
            let col = random(i as u64, col_len(shape));
            let bias = (i % 2 == 1).then(|| random(i as u64 + 200, shape.in_channels));
            let dx = upload(&random(i as u64 + 100, shape.input_len()));
            let gpu_bias = bias.as_deref().map(upload);
            let dispatch = col2im(gpu(), shape, layout, &upload(&col), gpu_bias.as_ref(), &dx);
            run(&[&dispatch.expect("col2im builds")]);
            let want = twin::col2im(shape, layout, &col, bias.as_deref());
            let magnitude =
                twin::col2im(shape, layout, &abs(&col), bias.map(|b| abs(&b)).as_deref());
            let terms = shape.kernel_h * shape.kernel_w + 1;
            let tolerance: Vec<f64> = magnitude.iter().map(|&m| gamma(terms) * m as f64).collect();
            let what = format!("col2im {layout:?} {shape:?} bias={}", gpu_bias.is_some());
            assert_within(&what, &read(&dx), &want, &tolerance);
        }
    }
}

#[test]
fn swap_batch_channel_matches_twin_exactly() {
    // Planes that are and are not whole quads, batch 1, one channel.
    for dims in [
        [1, 1, 1],
        [2, 3, 5],
        [3, 2, 4],
        [1, 7, 9],
        [5, 1, 3],
        [4, 6, 36],
    ] {
        let [batch, channels, spatial] = dims;
        let x = random(spatial as u64, batch * channels * spatial);
        let y = upload(&random(99, x.len()));
        run(&[&swap_batch_channel(gpu(), dims, &upload(&x), &y).expect("swap builds")]);
        let want = twin::swap_batch_channel(batch, channels, spatial, &x);
        assert_eq!(read(&y), want, "swap_batch_channel {dims:?}");
    }
}

/// col2im is im2col's backward: for the linear map x ↦ im2col(x), the gradient of
/// L = ⟨im2col(x), r⟩ is col2im(r), i.e. ⟨im2col(x), r⟩ = ⟨x, col2im(r)⟩ for all x and r.
/// Checked in f64 on random pairs, where the two sides differ only by summation order.
#[test]
fn col2im_twin_is_the_adjoint_of_im2col_twin() {
    for shape in [
        conv(2, 3, 1, 5, 4, 3, 3, 2, 1),
        conv(1, 2, 1, 4, 6, 4, 2, 3, 2),
    ] {
        for layout in LAYOUTS {
            let x = random(1, shape.input_len());
            let r = random(2, col_len(&shape));
            let left = dot(&twin::im2col(&shape, layout, &x), &r);
            let right = dot(&x, &twin::col2im(&shape, layout, &r, None));
            assert!(
                (left - right).abs() <= 1e-6 * left.abs().max(1.0),
                "{layout:?} {shape:?}: ⟨im2col x, r⟩ = {left} but ⟨x, col2im r⟩ = {right}"
            );
        }
    }
}
