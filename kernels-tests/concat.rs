//! concat: the channel-range copy against its twin, as concatenation's forward (each input
//! into its range of the output) and backward (each input's range of the gradient out), on
//! NCHW and [N, C] tensors, one channel to many, runs within and across workgroups; a copy
//! between two offsets leaving the rest of its destination alone; a finite-difference check of
//! the backward twin.
//!
//! Tolerance: copies are exact, so results must match bit for bit.

use fer::kernels::concat::{copy_channels, ChannelCopy};
use fer::reference::concat as twin;

use crate::common::*;

/// (batch, spatial, channels of each input): batch 3 with 5, 1 and 3 channels over a 7×5
/// plane, [N, C] inputs (spatial 1), a 48×48 plane (runs over many workgroups), one input.
const CASES: &[(usize, usize, &[usize])] = &[
    (3, 35, &[5, 1, 3]),
    (2, 1, &[4, 7]),
    (1, 48 * 48, &[2, 3]),
    (3, 5, &[1]),
];

#[test]
fn concat_forward_and_backward_match_twin() {
    for &(batch, spatial, channels) in CASES {
        let copies = ChannelCopy::concat(batch, spatial, channels);
        let inputs: Vec<Vec<f32>> = copies
            .iter()
            .enumerate()
            .map(|(i, copy)| random(i as u64 + 1, copy.src_len()))
            .collect();
        let slices: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let want = twin::concat(batch, spatial, channels, &slices);
        let output = upload(&vec![f32::NAN; want.len()]); // every element must be written
        let gpu_inputs: Vec<_> = inputs.iter().map(|x| upload(x)).collect();
        let forward: Vec<_> = copies
            .iter()
            .zip(&gpu_inputs)
            .map(|(copy, x)| copy_channels(gpu(), copy, x, &output).expect("copy builds"))
            .collect();
        run(&forward.iter().collect::<Vec<_>>());
        let what = format!("batch {batch}, spatial {spatial}, channels {channels:?}");
        assert_bits_eq(&format!("y {what}"), &read(&output), &want);

        let dy = random(7, want.len());
        let gpu_dy = upload(&dy);
        let want_dx = twin::concat_backward(batch, spatial, channels, &dy);
        let dx: Vec<_> = copies
            .iter()
            .map(|copy| upload(&vec![f32::NAN; copy.src_len()]))
            .collect();
        let backward: Vec<_> = copies
            .iter()
            .zip(&dx)
            .map(|(copy, dx)| {
                copy_channels(gpu(), &copy.reversed(), &gpu_dy, dx).expect("copy builds")
            })
            .collect();
        run(&backward.iter().collect::<Vec<_>>());
        for (i, (dx, want)) in dx.iter().zip(&want_dx).enumerate() {
            assert_bits_eq(&format!("dx{i} {what}"), &read(dx), want);
        }
    }
}

/// Channels 2..5 of a 6-channel tensor into channels 1..4 of a 5-channel one, batch 3: the
/// destination's other channels keep their values.
#[test]
fn copy_between_offsets_leaves_the_rest_alone() {
    let copy = ChannelCopy {
        batch: 3,
        spatial: 9,
        channels: 3,
        src_channels: 6,
        src_offset: 2,
        dst_channels: 5,
        dst_offset: 1,
    };
    let src = random(1, copy.src_len());
    let before: Vec<f32> = (0..copy.dst_len()).map(|i| 1000.0 + i as f32).collect();
    let mut want = before.clone();
    twin::copy_channels(&copy, &src, &mut want);
    let dst = upload(&before);
    run(&[&copy_channels(gpu(), &copy, &upload(&src), &dst).expect("copy builds")]);
    assert_bits_eq("dst", &read(&dst), &want);
    assert_ne!(want, before, "the copy changed nothing");
}

#[test]
fn copy_check_refuses_ranges_outside_their_tensors() {
    let copy = ChannelCopy {
        batch: 1,
        spatial: 4,
        channels: 3,
        src_channels: 3,
        src_offset: 0,
        dst_channels: 5,
        dst_offset: 2,
    };
    assert!(copy.check().is_ok());
    assert!(ChannelCopy {
        dst_offset: 3,
        ..copy
    }
    .check()
    .is_err());
    assert!(copy.reversed().check().is_ok());
    assert!(ChannelCopy {
        src_channels: 2,
        ..copy
    }
    .check()
    .is_err());
}

/// A copy is linear with slope 1 or 0: central differences are exact.
#[test]
fn concat_backward_twin_is_the_gradient_of_concat() {
    let (batch, spatial, channels) = (2, 6, &[3, 2][..]);
    let lens: Vec<usize> = channels.iter().map(|c| batch * spatial * c).collect();
    let x = random(3, lens.iter().sum());
    let r = random(4, x.len()); // dL/dy
    let dx = twin::concat_backward(batch, spatial, channels, &r);
    let analytic: Vec<f32> = dx.concat();
    let numeric = numeric_gradient(&x, 0.125, |x| {
        let (first, second) = x.split_at(lens[0]);
        dot(
            &twin::concat(batch, spatial, channels, &[first, second]),
            &r,
        )
    });
    assert_gradient("dx", &analytic, &numeric, 1e-6, 1e-6);
}
