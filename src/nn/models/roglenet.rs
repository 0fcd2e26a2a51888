//! The six-architecture study's RogleNet, its best (MODELS.md B.6): 48×48 RGB, 7 classes,
//! 76,833,383 parameters. Three pathways on the input, each conv followed by ReLU (3×3 convs
//! to 64; 1×1 to 16 then 3×3 convs to 64; 1×1 to 32 then 5×5 convs to 128), concatenated
//! (256 channels) and max-pooled to 24×24 (m); r = m + residual_conv2(residual_conv1(m));
//! `final_cnn` holds parameters but, as in the study, its output is never used, so it is never
//! run; the study flattens r (147,456 values) into `fc.0` (Linear 512, ReLU, dropout 0.1) and
//! `fc.3`. `fc.0`'s weight alone is 288 MiB.

use super::{conv, linear, max_pool, ModelKind, Nodes};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec, INPUT};

pub fn spec() -> ModelSpec {
    let mut nodes = Nodes::default();
    let p1 = convs(
        &mut nodes,
        "pathway1_conv",
        INPUT,
        &[(3, 32, 3), (32, 64, 3)],
    );
    let p2 = convs(&mut nodes, "pathway2_conv1x1", INPUT, &[(3, 16, 1)]);
    let p2 = convs(
        &mut nodes,
        "pathway2_conv3x3",
        &p2,
        &[(16, 32, 3), (32, 64, 3)],
    );
    let p3 = convs(&mut nodes, "pathway3_conv1x1", INPUT, &[(3, 32, 1)]);
    let p3 = convs(
        &mut nodes,
        "pathway3_conv5x5",
        &p3,
        &[(32, 64, 5), (64, 128, 5)],
    );
    nodes.push_reading("concat", OpSpec::Concat, &[&p1, &p2, &p3]);
    nodes.push("pool", max_pool(2));
    nodes.push("residual_conv1.0", conv(256, 128, 3, 1, 1));
    nodes.push("residual_conv1.1", OpSpec::Relu);
    nodes.push("residual_conv1.2", conv(128, 128, 3, 1, 1));
    nodes.push("residual_conv2.0", conv(128, 128, 3, 1, 1));
    nodes.push("residual_conv2.1", OpSpec::Relu);
    nodes.push("residual_conv2.2", conv(128, 256, 3, 1, 1));
    nodes.push_reading("residual", OpSpec::Add, &["pool", "residual_conv2.2"]);
    nodes.push("final_cnn.0", conv(256, 64, 3, 1, 0));
    nodes.push("final_cnn.1", OpSpec::Relu);
    nodes.push("final_cnn.2", OpSpec::Dropout { p: 0.1 });
    nodes.push_reading("flatten", OpSpec::Flatten, &["residual"]);
    nodes.push("fc.0", linear(256 * 24 * 24, 512));
    nodes.push("fc.1", OpSpec::Relu);
    nodes.push("fc.2", OpSpec::Dropout { p: 0.1 });
    nodes.push("fc.3", linear(512, 7));
    nodes.model(ModelKind::Roglenet, ImageSpec::imagenet_rgb(48, 48))
}

/// An nn.Sequential of 'same' convs (in, out, kernel), each followed by ReLU, named `at` and
/// reading `input`; returns its output.
fn convs(nodes: &mut Nodes, at: &str, input: &str, layers: &[(usize, usize, usize)]) -> String {
    let mut last = input.to_string();
    for (i, &(in_channels, out_channels, kernel)) in layers.iter().enumerate() {
        let op = conv(in_channels, out_channels, kernel, 1, kernel / 2);
        nodes.push_reading(format!("{at}.{}", 2 * i), op, &[&last]);
        nodes.push(format!("{at}.{}", 2 * i + 1), OpSpec::Relu);
        last = format!("{at}.{}", 2 * i + 1);
    }
    last
}
