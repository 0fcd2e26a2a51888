//! The six-architecture study's basic CNN (MODELS.md B.1): 48×48 RGB, 7 classes, 1,187,399
//! parameters. Its dropout comes *before* each max pool, as the study has it.

use super::{batch_norm, conv, linear, max_pool, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let mut channels = 3;
    for (block, out) in [(1, width.of(16)), (2, width.of(32))] {
        nodes.push(format!("conv{block}"), conv(channels, out, 3, 1, 1));
        nodes.push(format!("bn{block}"), batch_norm(out));
        nodes.push(format!("relu{block}"), OpSpec::Relu);
        nodes.push(format!("dropout{block}"), OpSpec::Dropout { p: 0.1 });
        nodes.push(format!("pool{block}"), max_pool(2));
        channels = out;
    }
    nodes.push("flatten", OpSpec::Flatten);
    let hidden = width.of(256);
    nodes.push("fc1", linear(channels * 12 * 12, hidden));
    nodes.push("bn3", batch_norm(hidden));
    nodes.push("relu3", OpSpec::Relu);
    nodes.push("dropout3", OpSpec::Dropout { p: 0.1 });
    nodes.push("fc2", linear(hidden, 7));
    nodes.model(ModelKind::BasicCnn, ImageSpec::imagenet_rgb(48, 48))
}
