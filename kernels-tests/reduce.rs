//! reduce: channel_sum against its twin on degenerate and large views, with and without
//! accumulation, on both of its kernels (a workgroup tree per channel; column_sum where rows
//! are single values), and column_sum leaving the channels past the end untouched.
//!
//! Tolerance: in the tree, each of the T invocations (T = `reduction_width(count)`, a power of
//! two) adds its ⌈count/T⌉ elements in sequence, the tree adds log₂T levels; column_sum adds
//! its `outer` values in sequence; ACCUMULATE adds one more term. |gpu − exact| ≤
//! γ_{depth}·Σ|terms| (Higham §4.2: the bound of a summation tree is γ of its depth), with
//! Σ|terms| the twin on |x|.

use fer::kernels::reduce::{channel_sum, sums_columns, ChannelSumShape};
use fer::kernels::reduction_width;
use fer::reference;

use crate::common::*;

fn check(outer: usize, channels: usize, inner: usize, accumulate: bool) {
    let shape = ChannelSumShape {
        outer,
        channels,
        inner,
    };
    let seed = (outer * 1_000_003 + channels * 1009 + inner) as u64;
    let x = random(seed, shape.input_len());
    let old = random(seed + 1, channels);

    let mut want = old.clone();
    reference::reduce::channel_sum(&shape, &x, accumulate, &mut want);
    let mut magnitude = abs(&old);
    reference::reduce::channel_sum(&shape, &abs(&x), accumulate, &mut magnitude);
    let depth = if sums_columns(&shape) {
        shape.outer + 1
    } else {
        let threads = reduction_width(shape.count()) as usize;
        shape.count().div_ceil(threads) + threads.ilog2() as usize + 1
    };
    let tolerance: Vec<f64> = magnitude.iter().map(|&m| gamma(depth) * m as f64).collect();

    let out = upload(&old);
    let dispatch =
        channel_sum(gpu(), &shape, accumulate, &upload(&x), &out).expect("channel_sum builds");
    run(&[&dispatch]);
    assert_within(
        &format!("{shape:?} accumulate={accumulate}"),
        &read(&out),
        &want,
        &tolerance,
    );
}

#[test]
fn channel_sum_on_degenerate_views() {
    for (outer, channels, inner) in [(1, 1, 1), (1, 7, 1), (5, 1, 1), (1, 1, 300), (3, 5, 7)] {
        check(outer, channels, inner, false);
    }
}

#[test]
fn channel_sum_linear_bias_views() {
    // [batch, features, 1]: the strided loop walks whole rows; 300 channels > 256 threads.
    for (batch, features) in [(64, 7), (257, 3), (13, 300)] {
        check(batch, features, 1, false);
    }
}

#[test]
fn channel_sum_split_k_partials() {
    // [images, O·K, 1]: whole quads of channels, over several workgroups of quads (1024
    // channels each) and not; and past 1024 rows, where the workgroup tree takes over.
    for (outer, channels) in [(64, 32 * 144), (64, 16 * 25), (3, 1027), (2000, 6)] {
        check(outer, channels, 1, false);
    }
    check(5, 4608, 1, true);
}

/// column_sum writes whole quads; in the last one, the channels past the end must come back as
/// they were.
#[test]
fn column_sum_leaves_the_channels_past_the_end_untouched() {
    for channels in [1, 2, 3, 5, 6, 7] {
        let shape = ChannelSumShape {
            outer: 4,
            channels,
            inner: 1,
        };
        assert!(sums_columns(&shape));
        let sentinel: Vec<f32> = (0..channels + 5).map(|i| 1000.0 + i as f32).collect();
        let out = upload(&sentinel);
        let x = random(channels as u64, shape.input_len());
        run(&[&channel_sum(gpu(), &shape, false, &upload(&x), &out).expect("builds")]);
        assert_eq!(
            read(&out)[channels..],
            sentinel[channels..],
            "channels={channels}"
        );
    }
}

#[test]
fn channel_sum_conv_bias_views() {
    // [N, O, H·W]: inner neither a divisor nor a multiple of 256, and 64·24·24 = 36 864
    // elements per channel reduced over N too.
    check(2, 5, 7 * 5, false);
    check(3, 4, 257, false);
    check(64, 3, 24 * 24, false);
}

#[test]
fn channel_sum_accumulates() {
    check(4, 9, 33, true);
    check(6, 2, 1, true);
    // Enough per channel for a full 256-wide workgroup.
    check(3, 2, 3000, true);
}
