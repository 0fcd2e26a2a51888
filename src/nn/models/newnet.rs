//! The six-architecture study's NewNet (MODELS.md B.5): 48×48 RGB, 7 classes, 7,880,958
//! parameters. The U-Net's features (`enc_dc`, whose average pool and `fc` hold parameters but
//! are never run), the inception trunk on its 16 channels, a 5×5/2 average pool, `conv3`
//! (BasicConv2d 3×3/2 to 16 channels, 11×11) and `fc`.

use super::inception::{basic_conv, channels, trunk};
use super::{linear, unet, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let (features, feature_channels) = unet::features(&mut nodes, "enc_dc.", width);
    unet::head(&mut nodes, "enc_dc.", feature_channels);
    trunk(&mut nodes, Some(&features), feature_channels, width);
    let average = OpSpec::AvgPool2d {
        kernel_size: 5,
        stride: 2,
        padding: 0,
        ceil_mode: false,
    };
    nodes.push("avgpool", average);
    let out = width.of(16);
    basic_conv(&mut nodes, "conv3", None, (channels(width), out), (3, 2, 1));
    nodes.push("flatten", OpSpec::Flatten);
    nodes.push("fc", linear(out * 11 * 11, 7));
    nodes.model(ModelKind::Newnet, ImageSpec::imagenet_rgb(48, 48))
}
