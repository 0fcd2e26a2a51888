//! The Keras study's CNN (MODELS.md C): 222×222 RGB, 6 classes, 1,281,670 parameters. A
//! 'same' 3×3 conv then three 'valid' ones (64 channels each), each ReLU then max pool 2
//! (222 → 111 → 54 → 26 → 12), flatten 9216, Dense 128 and 64 with ReLU, Dense 6. Input x/255.
//! Names follow the twin (`scripts/fer_models.py`, `KerasCnn`): `conv1`..`conv4`,
//! `fc1`..`fc3`.

use super::{conv, linear, max_pool, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let mut channels = 3;
    for (i, (out, padding)) in [(32, 1), (64, 0), (64, 0), (64, 0)].into_iter().enumerate() {
        let (i, out) = (i + 1, width.of(out));
        nodes.push(format!("conv{i}"), conv(channels, out, 3, 1, padding));
        nodes.push(format!("relu{i}"), OpSpec::Relu);
        nodes.push(format!("pool{i}"), max_pool(2));
        channels = out;
    }
    nodes.push("flatten", OpSpec::Flatten);
    let mut features = channels * 12 * 12;
    for (i, out) in [(1, 128), (2, 64)] {
        let out = width.of(out);
        nodes.push(format!("fc{i}"), linear(features, out));
        nodes.push(format!("relu_fc{i}"), OpSpec::Relu);
        features = out;
    }
    nodes.push("fc3", linear(features, 6));
    let input = ImageSpec {
        channels: 3,
        height: 222,
        width: 222,
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
    };
    nodes.model(ModelKind::KerasCnn, input)
}
