//! What the six-architecture study's GoogleNet and NewNet share (MODELS.md B.3, B.5):
//! BasicConv2d (conv with its bias → batch norm → ReLU, named `conv` and `bn` as
//! torchvision's) and the inception trunk: `conv1` (BasicConv2d 3×3 to 64), `inception1`,
//! dropout 0.1, `inception2`, dropout 0.1. An inception block has four branches of 16
//! channels and concatenates the 3×3, 5×5 and 7×7 ones (48 channels); its `branch1x1` holds
//! parameters but is not concatenated, as in the study, so it is never run.

use super::{batch_norm, conv, Nodes, Width};
use crate::nn::spec::OpSpec;

/// Channels out of an inception block: three branches of 16 (48 at full width).
pub fn channels(width: Width) -> usize {
    3 * width.of(16)
}

/// A BasicConv2d named `at` reading `input` (the node before where `None`); returns its output.
pub fn basic_conv(
    nodes: &mut Nodes,
    at: &str,
    input: Option<&str>,
    (in_channels, out_channels): (usize, usize),
    (kernel, stride, padding): (usize, usize, usize),
) -> String {
    let op = conv(in_channels, out_channels, kernel, stride, padding);
    match input {
        Some(input) => nodes.push_reading(format!("{at}.conv"), op, &[input]),
        None => nodes.push(format!("{at}.conv"), op),
    }
    nodes.push(format!("{at}.bn"), batch_norm(out_channels));
    nodes.push(format!("{at}.relu"), OpSpec::Relu);
    format!("{at}.relu")
}

/// The trunk on `input` (the node before where `None`) of `in_channels`; returns its output.
pub fn trunk(nodes: &mut Nodes, input: Option<&str>, in_channels: usize, width: Width) -> String {
    let mut channels = width.of(64);
    let mut x = basic_conv(nodes, "conv1", input, (in_channels, channels), (3, 1, 1));
    for block in [1, 2] {
        inception(nodes, &format!("inception{block}"), &x, channels, width);
        nodes.push(format!("drop{block}"), OpSpec::Dropout { p: 0.1 });
        x = format!("drop{block}");
        channels = self::channels(width);
    }
    x
}

/// An inception block named `at` reading `input`; the node after it reads its concat.
fn inception(nodes: &mut Nodes, at: &str, input: &str, in_channels: usize, width: Width) {
    let (branch, reduced) = (width.of(16), width.of(32));
    basic_conv(
        nodes,
        &format!("{at}.branch1x1"),
        Some(input),
        (in_channels, branch),
        (1, 1, 0),
    );
    let branches: Vec<String> = [3, 5, 7]
        .into_iter()
        .map(|k| {
            let name = format!("{at}.branch{k}x{k}");
            let first = basic_conv(
                nodes,
                &format!("{name}.0"),
                Some(input),
                (in_channels, reduced),
                (1, 1, 0),
            );
            basic_conv(
                nodes,
                &format!("{name}.1"),
                Some(&first),
                (reduced, branch),
                (k, 1, k / 2),
            )
        })
        .collect();
    let inputs: Vec<&str> = branches.iter().map(String::as_str).collect();
    nodes.push_reading(format!("{at}.concat"), OpSpec::Concat, &inputs);
}
