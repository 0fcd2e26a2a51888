//! The six-architecture study's ResNet (MODELS.md B.2), "ResNet(ResidualBlock, [2, 2, 2])":
//! 48×48 RGB, 7 classes, 2,792,199 parameters. `conv1` 7×7/2 → batch norm → ReLU, a padded
//! 3×3/2 max pool, `layer0` (64 channels), `layer1` (128), `layer2` (256, stride 2), a 5×5/1
//! average pool and `fc`. A block is ReLU(conv2(conv1(x)) + shortcut), the shortcut a 1×1
//! conv + batch norm (`downsample`, after `conv2` in the state_dict as in the twin) where the
//! stride or the channel count changes.

use super::{batch_norm, conv, linear, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let mut channels = width.of(64);
    nodes.push("conv1.0", conv(3, channels, 7, 2, 3));
    nodes.push("conv1.1", batch_norm(channels));
    nodes.push("conv1.2", OpSpec::Relu);
    nodes.push(
        "maxpool",
        OpSpec::MaxPool2d {
            kernel_size: 3,
            stride: 2,
            padding: 1,
            ceil_mode: false,
        },
    );
    let mut input = "maxpool".to_string();
    for (layer, out, stride) in [(0, 64, 1), (1, 128, 1), (2, 256, 2)] {
        let out = width.of(out);
        for block in 0..2 {
            let stride = if block == 0 { stride } else { 1 };
            let at = format!("layer{layer}.{block}");
            input = residual_block(&mut nodes, &at, &input, channels, out, stride);
            channels = out;
        }
    }
    nodes.push(
        "avgpool",
        OpSpec::AvgPool2d {
            kernel_size: 5,
            stride: 1,
            padding: 0,
            ceil_mode: false,
        },
    );
    nodes.push("flatten", OpSpec::Flatten);
    nodes.push("fc", linear(channels * 2 * 2, 7));
    nodes.model(ModelKind::Resnet, ImageSpec::imagenet_rgb(48, 48))
}

/// One residual block named `at`, reading node `input`; returns the name of its output.
fn residual_block(
    nodes: &mut Nodes,
    at: &str,
    input: &str,
    in_channels: usize,
    out_channels: usize,
    stride: usize,
) -> String {
    nodes.push_reading(
        format!("{at}.conv1.0"),
        conv(in_channels, out_channels, 3, stride, 1),
        &[input],
    );
    nodes.push(format!("{at}.conv1.1"), batch_norm(out_channels));
    nodes.push(format!("{at}.conv1.2"), OpSpec::Relu);
    nodes.push(
        format!("{at}.conv2.0"),
        conv(out_channels, out_channels, 3, 1, 1),
    );
    nodes.push(format!("{at}.conv2.1"), batch_norm(out_channels));
    let residual = format!("{at}.conv2.1");
    let shortcut = if stride != 1 || in_channels != out_channels {
        nodes.push_reading(
            format!("{at}.downsample.0"),
            conv(in_channels, out_channels, 1, stride, 0),
            &[input],
        );
        nodes.push(format!("{at}.downsample.1"), batch_norm(out_channels));
        format!("{at}.downsample.1")
    } else {
        input.to_string()
    };
    nodes.push_reading(format!("{at}.add"), OpSpec::Add, &[&residual, &shortcut]);
    nodes.push(format!("{at}.relu"), OpSpec::Relu);
    format!("{at}.relu")
}
