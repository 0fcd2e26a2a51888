//! The six-architecture study's RogleNet, its best (MODELS.md B.6): 48×48 RGB, 7 classes,
//! 76,833,383 parameters. Three pathways on the input, each conv followed by ReLU (3×3 convs
//! to 64; 1×1 to 16 then 3×3 convs to 64; 1×1 to 32 then 5×5 convs to 128), concatenated
//! (256 channels) and max-pooled to 24×24 (m); r = m + residual_conv2(residual_conv1(m));
//! `final_cnn` holds parameters but, as in the study, its output is never used, so it is never
//! run; the study flattens r (147,456 values) into `fc.0` (Linear 512, ReLU, dropout 0.1) and
//! `fc.3`. `fc.0`'s weight alone is 288 MiB.

use super::{conv, linear, max_pool, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec, INPUT};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let w = |channels| width.of(channels);
    let (p1, c1) = convs(
        &mut nodes,
        "pathway1_conv",
        (INPUT, 3),
        &[(32, 3), (64, 3)],
        width,
    );
    let p2 = convs(
        &mut nodes,
        "pathway2_conv1x1",
        (INPUT, 3),
        &[(16, 1)],
        width,
    );
    let (p2, c2) = convs(
        &mut nodes,
        "pathway2_conv3x3",
        (&p2.0, p2.1),
        &[(32, 3), (64, 3)],
        width,
    );
    let p3 = convs(
        &mut nodes,
        "pathway3_conv1x1",
        (INPUT, 3),
        &[(32, 1)],
        width,
    );
    let (p3, c3) = convs(
        &mut nodes,
        "pathway3_conv5x5",
        (&p3.0, p3.1),
        &[(64, 5), (128, 5)],
        width,
    );
    nodes.push_reading("concat", OpSpec::Concat, &[&p1, &p2, &p3]);
    let channels = c1 + c2 + c3;
    nodes.push("pool", max_pool(2));
    nodes.push("residual_conv1.0", conv(channels, w(128), 3, 1, 1));
    nodes.push("residual_conv1.1", OpSpec::Relu);
    nodes.push("residual_conv1.2", conv(w(128), w(128), 3, 1, 1));
    nodes.push("residual_conv2.0", conv(w(128), w(128), 3, 1, 1));
    nodes.push("residual_conv2.1", OpSpec::Relu);
    nodes.push("residual_conv2.2", conv(w(128), channels, 3, 1, 1));
    nodes.push_reading("residual", OpSpec::Add, &["pool", "residual_conv2.2"]);
    nodes.push("final_cnn.0", conv(channels, w(64), 3, 1, 0));
    nodes.push("final_cnn.1", OpSpec::Relu);
    nodes.push("final_cnn.2", OpSpec::Dropout { p: 0.1 });
    nodes.push_reading("flatten", OpSpec::Flatten, &["residual"]);
    nodes.push("fc.0", linear(channels * 24 * 24, w(512)));
    nodes.push("fc.1", OpSpec::Relu);
    nodes.push("fc.2", OpSpec::Dropout { p: 0.1 });
    nodes.push("fc.3", linear(w(512), 7));
    nodes.model(ModelKind::Roglenet, ImageSpec::imagenet_rgb(48, 48))
}

/// An nn.Sequential of 'same' convs (out channels at full width, kernel), each followed by
/// ReLU, named `at` and reading `input` of its channels; returns its output and channels.
fn convs(
    nodes: &mut Nodes,
    at: &str,
    (input, mut channels): (&str, usize),
    layers: &[(usize, usize)],
    width: Width,
) -> (String, usize) {
    let mut last = input.to_string();
    for (i, &(out, kernel)) in layers.iter().enumerate() {
        let out = width.of(out);
        let op = conv(channels, out, kernel, 1, kernel / 2);
        nodes.push_reading(format!("{at}.{}", 2 * i), op, &[&last]);
        nodes.push(format!("{at}.{}", 2 * i + 1), OpSpec::Relu);
        last = format!("{at}.{}", 2 * i + 1);
        channels = out;
    }
    (last, channels)
}
