//! The six-architecture study's GoogleNet variation (MODELS.md B.3): 48×48 RGB, 7 classes,
//! 100,759 parameters (the unused 1×1 branches included): the inception trunk, global average
//! pooling, `fc`.

use super::inception::{trunk, CHANNELS};
use super::{linear, ModelKind, Nodes};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec() -> ModelSpec {
    let mut nodes = Nodes::default();
    trunk(&mut nodes, None, 3);
    nodes.push("gap", OpSpec::GlobalAvgPool);
    nodes.push("fc", linear(CHANNELS, 7));
    nodes.model(ModelKind::Googlenet, ImageSpec::imagenet_rgb(48, 48))
}
