//! The real-time study's CNN (MODELS.md D) in the reading the twin takes
//! (`scripts/fer_models.py`, `RealtimeCnn`): four blocks (32, 64, 128, 256 channels) of two
//! 3×3 'same' conv → batch norm → ReLU, a max pool 2 and dropout 0.3 between blocks (three of
//! them: 48 → 24 → 12 → 6), global average pooling, fc1 128 → ReLU → dropout 0.3 → fc2 7.
//! Input x/255, 48×48 grey. Names follow the twin: `blockN.0` and `blockN.3` the convs,
//! `blockN.1` and `blockN.4` the batch norms.

use super::{batch_norm, conv, linear, max_pool, ModelKind, Nodes, Width};
use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec};

pub fn spec(width: Width) -> ModelSpec {
    let mut nodes = Nodes::default();
    let mut channels = 1;
    for (block, out) in [(1, 32), (2, 64), (3, 128), (4, 256)] {
        let out = width.of(out);
        for (at, input) in [(0, channels), (3, out)] {
            nodes.push(format!("block{block}.{at}"), conv(input, out, 3, 1, 1));
            nodes.push(format!("block{block}.{}", at + 1), batch_norm(out));
            nodes.push(format!("block{block}.{}", at + 2), OpSpec::Relu);
        }
        if block < 4 {
            nodes.push(format!("pool{block}"), max_pool(2));
            nodes.push(format!("dropout{block}"), OpSpec::Dropout { p: 0.3 });
        }
        channels = out;
    }
    nodes.push("gap", OpSpec::GlobalAvgPool);
    let hidden = width.of(128);
    nodes.push("fc1", linear(channels, hidden));
    nodes.push("relu", OpSpec::Relu);
    nodes.push("dropout", OpSpec::Dropout { p: 0.3 });
    nodes.push("fc2", linear(hidden, 7));
    let input = ImageSpec {
        mean: vec![0.0],
        std: vec![1.0],
        ..ImageSpec::study_grey()
    };
    nodes.model(ModelKind::RealtimeCnn, input)
}
