//! The six-architecture study's U-Net (MODELS.md B.4): 48×48 RGB, 7 classes, 7,752,535
//! parameters. Encoder blocks (two 3×3 convs with ReLU; the output is the skip and, max-pooled,
//! the next input) at 64, 128, 256; a 512 bottleneck at 6×6; decoder blocks fed their
//! transposed conv's output then the skip of the same size; a 1×1 `outconv` to 16 channels, a
//! 5×5/2 average pool (22×22) and `fc`.

use super::{conv, linear, max_pool, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let (_, channels) = features(&mut nodes, "", width);
    head(&mut nodes, "", channels);
    nodes.model(ModelKind::Unet, ImageSpec::imagenet_rgb(48, 48))
}

/// The encoder and decoder up to `outconv` ((16, 48, 48) at full width), names prefixed with
/// `prefix`; returns the name of `outconv` and its channels. A decoder block's transposed
/// conv brings it to its skip's channels, and the concat doubles them.
pub fn features(nodes: &mut Nodes, prefix: &str, width: Width) -> (String, usize) {
    let mut channels = 3;
    let mut skips = Vec::new();
    for (block, out) in [(1, 64), (2, 128), (3, 256)] {
        let out = width.of(out);
        let skip = double_conv(nodes, &format!("{prefix}encoder{block}"), channels, out);
        skips.push((skip, out));
        nodes.push(format!("{prefix}pool{block}"), max_pool(2));
        channels = out;
    }
    let bottleneck = width.of(512);
    double_conv(nodes, &format!("{prefix}bottleneck"), channels, bottleneck);
    channels = bottleneck;
    for (block, (skip, out)) in [3, 2, 1].into_iter().zip(skips.into_iter().rev()) {
        let up = OpSpec::ConvTranspose2d {
            in_channels: channels,
            out_channels: out,
            kernel_size: 2,
            stride: 2,
            padding: 0,
        };
        let upconv = format!("{prefix}upconv{block}");
        nodes.push(&upconv, up);
        nodes.push_reading(
            format!("{prefix}concat{block}"),
            OpSpec::Concat,
            &[&upconv, &skip],
        );
        double_conv(nodes, &format!("{prefix}decoder{block}"), 2 * out, out);
        channels = out;
    }
    let out = width.of(16);
    nodes.push(format!("{prefix}outconv"), conv(channels, out, 1, 1, 0));
    (format!("{prefix}outconv"), out)
}

/// The average pool, flatten and `fc` after `outconv` (of `channels`), names prefixed with
/// `prefix`.
pub fn head(nodes: &mut Nodes, prefix: &str, channels: usize) {
    let average = OpSpec::AvgPool2d {
        kernel_size: 5,
        stride: 2,
        padding: 0,
        ceil_mode: false,
    };
    nodes.push(format!("{prefix}avgpool"), average);
    nodes.push(format!("{prefix}flatten"), OpSpec::Flatten);
    nodes.push(format!("{prefix}fc"), linear(channels * 22 * 22, 7));
}

/// Conv 3×3/p1, ReLU, conv 3×3/p1, ReLU, as an nn.Sequential named `at`; returns its output.
fn double_conv(nodes: &mut Nodes, at: &str, in_channels: usize, out_channels: usize) -> String {
    nodes.push(format!("{at}.0"), conv(in_channels, out_channels, 3, 1, 1));
    nodes.push(format!("{at}.1"), OpSpec::Relu);
    nodes.push(format!("{at}.2"), conv(out_channels, out_channels, 3, 1, 1));
    nodes.push(format!("{at}.3"), OpSpec::Relu);
    format!("{at}.3")
}
