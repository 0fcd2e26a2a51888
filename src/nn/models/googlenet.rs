//! The six-architecture study's GoogleNet variation (MODELS.md B.3): 48×48 RGB, 7 classes,
//! 100,759 parameters (the unused 1×1 branches included): the inception trunk, global average
//! pooling, `fc`.

use super::inception::{channels, trunk};
use super::{linear, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    trunk(&mut nodes, None, 3, width);
    nodes.push("gap", OpSpec::GlobalAvgPool);
    nodes.push("fc", linear(channels(width), 7));
    nodes.model(ModelKind::Googlenet, ImageSpec::imagenet_rgb(48, 48))
}
