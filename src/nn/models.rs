//! The study's models, layer for layer, with PyTorch's state_dict names.

use serde::Serialize;

use crate::gpu::GpuContext;
use crate::graph::{GraphError, Layer, Model};

use super::{BatchNorm, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Relu};

/// 48×48 grayscale faces.
pub const SAMPLE_SHAPE: [usize; 3] = [1, 48, 48];
pub const CLASSES: usize = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Always the most frequent training class.
    Baseline,
    /// Flatten → Linear(2304, 7).
    Softmax,
    /// Three Linear layers with BatchNorm, ReLU and Dropout between them.
    Mlp,
    /// Four Conv-BatchNorm-ReLU-MaxPool-Dropout blocks, then three Linear layers.
    Cnn,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::Baseline,
        ModelKind::Softmax,
        ModelKind::Mlp,
        ModelKind::Cnn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Baseline => "baseline",
            ModelKind::Softmax => "softmax",
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
        }
    }
}

/// Architecture knobs; the defaults are the study's.
#[derive(Clone, Debug, Serialize)]
pub struct Architecture {
    pub mlp_hidden: [usize; 2],
    pub mlp_dropout: f32,
    pub cnn_channels: [usize; 4],
    pub cnn_hidden: [usize; 2],
    pub cnn_dropout: f32,
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture {
            mlp_hidden: [128, 64],
            mlp_dropout: 0.3,
            cnn_channels: [64, 128, 512, 512],
            cnn_hidden: [256, 512],
            cnn_dropout: 0.25,
        }
    }
}

impl Architecture {
    /// The study's models with a narrower cnn (channels 16-32-64-64, hidden 64-64), for
    /// software adapters, where the full cnn takes hours an epoch.
    pub fn scaled_for_software() -> Self {
        Architecture {
            cnn_channels: [16, 32, 64, 64],
            cnn_hidden: [64, 64],
            ..Architecture::default()
        }
    }

    /// What a person is told when this cnn stands in for the study's on a software adapter.
    pub fn scaled_cnn_note(&self) -> String {
        let study = Architecture::default();
        format!(
            "software adapter: cnn scaled to channels {:?} and hidden {:?} (the study's is {:?} \
             and {:?})",
            self.cnn_channels, self.cnn_hidden, study.cnn_channels, study.cnn_hidden
        )
    }
}

type Layers = Vec<(String, Box<dyn Layer>)>;

fn named(name: impl Into<String>, layer: impl Layer + 'static) -> (String, Box<dyn Layer>) {
    (name.into(), Box::new(layer))
}

/// The layers of a GPU model; `None` for the baseline, which has none.
pub fn layers(kind: ModelKind, arch: &Architecture) -> Option<Layers> {
    let pixels: usize = SAMPLE_SHAPE.iter().product();
    match kind {
        ModelKind::Baseline => None,
        ModelKind::Softmax => Some(vec![
            named("flatten", Flatten),
            named(
                "linear",
                Linear {
                    inputs: pixels,
                    outputs: CLASSES,
                },
            ),
        ]),
        ModelKind::Mlp => {
            let [h1, h2] = arch.mlp_hidden;
            let p = arch.mlp_dropout;
            Some(vec![
                named("flatten", Flatten),
                named(
                    "fc1",
                    Linear {
                        inputs: pixels,
                        outputs: h1,
                    },
                ),
                named("bn1", BatchNorm::new(h1)),
                named("relu1", Relu),
                named("dropout1", Dropout { p }),
                named(
                    "fc2",
                    Linear {
                        inputs: h1,
                        outputs: h2,
                    },
                ),
                named("bn2", BatchNorm::new(h2)),
                named("relu2", Relu),
                named("dropout2", Dropout { p }),
                named(
                    "fc3",
                    Linear {
                        inputs: h2,
                        outputs: CLASSES,
                    },
                ),
            ])
        }
        ModelKind::Cnn => Some(cnn(arch)),
    }
}

/// Indices follow an `nn.Sequential` of the same layers: `network.0` is the first conv, ...
fn cnn(arch: &Architecture) -> Layers {
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    let mut channels = SAMPLE_SHAPE[0];
    let mut side = SAMPLE_SHAPE[1];
    for (block, &out) in arch.cnn_channels.iter().enumerate() {
        let (kernel, padding) = if block == 0 { (5, 2) } else { (3, 1) };
        layers.push(Box::new(Conv2d {
            in_channels: channels,
            out_channels: out,
            kernel,
            stride: 1,
            padding,
        }));
        layers.push(Box::new(BatchNorm::new(out)));
        layers.push(Box::new(Relu));
        layers.push(Box::new(MaxPool2d {
            kernel: 2,
            stride: 2,
        }));
        layers.push(Box::new(Dropout {
            p: arch.cnn_dropout,
        }));
        channels = out;
        side /= 2;
    }
    layers.push(Box::new(Flatten));
    let mut features = channels * side * side;
    for &hidden in &arch.cnn_hidden {
        layers.push(Box::new(Linear {
            inputs: features,
            outputs: hidden,
        }));
        layers.push(Box::new(BatchNorm::new(hidden)));
        layers.push(Box::new(Relu));
        layers.push(Box::new(Dropout {
            p: arch.cnn_dropout,
        }));
        features = hidden;
    }
    layers.push(Box::new(Linear {
        inputs: features,
        outputs: CLASSES,
    }));
    layers
        .into_iter()
        .enumerate()
        .map(|(i, layer)| (format!("network.{i}"), layer))
        .collect()
}

/// Builds a GPU model with its tensors initialised from `seed`; `None` for the baseline.
pub fn build(
    ctx: &GpuContext,
    kind: ModelKind,
    arch: &Architecture,
    seed: u64,
) -> Result<Option<Model>, GraphError> {
    layers(kind, arch)
        .map(|layers| Model::new(ctx, kind.name(), &SAMPLE_SHAPE, layers, seed))
        .transpose()
}
