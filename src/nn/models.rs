//! The study's models, layer for layer, with PyTorch's state_dict names.

use serde::{Deserialize, Serialize};

use crate::data::ImageSpec;
use crate::gpu::GpuContext;
use crate::graph::{Graph, GraphError, Model};

use super::spec::{ModelSpec, NodeSpec, OpSpec, SpecError};

mod basic_cnn;
mod googlenet;
mod inception;
mod keras_cnn;
mod newnet;
mod realtime_cnn;
mod resnet;
mod roglenet;
mod unet;

/// The study's models classify FER2013's seven expressions.
pub const CLASSES: usize = crate::data::fer2013::CLASS_NAMES.len();

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
    /// The six-architecture study's basic CNN: two conv blocks, two Linear layers (RGB).
    #[value(name = "basic_cnn")]
    BasicCnn,
    /// The six-architecture study's ResNet: residual blocks at 64, 128, 256 channels (RGB).
    Resnet,
    /// The six-architecture study's GoogleNet variation: two inception blocks (RGB).
    Googlenet,
    /// The six-architecture study's U-Net: encoder, bottleneck, decoder with skips (RGB).
    Unet,
    /// The six-architecture study's NewNet: the U-Net's features, then inception blocks (RGB).
    Newnet,
    /// The six-architecture study's RogleNet: three pathways, a residual, a 75M-weight Linear.
    Roglenet,
    /// The real-time study's CNN: four blocks of two convs, global average pooling (grey).
    #[value(name = "realtime_cnn")]
    RealtimeCnn,
    /// The Keras study's CNN on 222×222 RGB faces, 6 classes.
    #[value(name = "keras_cnn")]
    KerasCnn,
}

impl ModelKind {
    /// The four-model study's models, which `fer demo` compares.
    pub const STUDY: [ModelKind; 4] = [
        ModelKind::Baseline,
        ModelKind::Softmax,
        ModelKind::Mlp,
        ModelKind::Cnn,
    ];

    pub const ALL: [ModelKind; 12] = [
        ModelKind::Baseline,
        ModelKind::Softmax,
        ModelKind::Mlp,
        ModelKind::Cnn,
        ModelKind::BasicCnn,
        ModelKind::Resnet,
        ModelKind::Googlenet,
        ModelKind::Unet,
        ModelKind::Newnet,
        ModelKind::Roglenet,
        ModelKind::RealtimeCnn,
        ModelKind::KerasCnn,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Baseline => "baseline",
            ModelKind::Softmax => "softmax",
            ModelKind::Mlp => "mlp",
            ModelKind::Cnn => "cnn",
            ModelKind::BasicCnn => "basic_cnn",
            ModelKind::Resnet => "resnet",
            ModelKind::Googlenet => "googlenet",
            ModelKind::Unet => "unet",
            ModelKind::Newnet => "newnet",
            ModelKind::Roglenet => "roglenet",
            ModelKind::RealtimeCnn => "realtime_cnn",
            ModelKind::KerasCnn => "keras_cnn",
        }
    }
}

/// Architecture knobs; the defaults are the study's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Architecture {
    pub mlp_hidden: [usize; 2],
    pub mlp_dropout: f32,
    pub cnn_channels: [usize; 4],
    pub cnn_hidden: [usize; 2],
    pub cnn_dropout: f32,
    /// The source studies' models (basic_cnn .. keras_cnn) with every channel count and
    /// hidden width divided by this (at least 1 each): the same graph, narrower. 1 is the
    /// study's; the four-model study's mlp and cnn have their own knobs above.
    pub width_divisor: usize,
}

impl Default for Architecture {
    fn default() -> Self {
        Architecture {
            mlp_hidden: [128, 64],
            mlp_dropout: 0.3,
            cnn_channels: [64, 128, 512, 512],
            cnn_hidden: [256, 512],
            cnn_dropout: 0.25,
            width_divisor: 1,
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

/// A built-in model's width: its channel counts and hidden widths divided by
/// [`Architecture::width_divisor`].
#[derive(Clone, Copy)]
struct Width(usize);

impl Width {
    /// `channels` at this width, never below one (a divisor of 0 counts as 1).
    fn of(self, channels: usize) -> usize {
        (channels / self.0.max(1)).max(1)
    }
}

/// A model's nodes as they are written, each reading the one before unless it names its
/// inputs.
#[derive(Default)]
struct Nodes(Vec<NodeSpec>);

impl Nodes {
    fn push(&mut self, name: impl AsRef<str>, op: OpSpec) {
        self.push_reading(name, op, &[]);
    }

    fn push_reading(&mut self, name: impl AsRef<str>, op: OpSpec, inputs: &[&str]) {
        self.0.push(NodeSpec {
            name: name.as_ref().to_string(),
            op,
            inputs: inputs.iter().map(|input| input.to_string()).collect(),
        });
    }

    fn model(self, kind: ModelKind, input: ImageSpec) -> ModelSpec {
        ModelSpec {
            name: kind.name().to_string(),
            input,
            nodes: self.0,
        }
    }
}

fn linear(in_features: usize, out_features: usize) -> OpSpec {
    OpSpec::Linear {
        in_features,
        out_features,
    }
}

/// A square convolution.
fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> OpSpec {
    OpSpec::Conv2d {
        in_channels,
        out_channels,
        kernel_size: kernel,
        stride,
        padding,
    }
}

fn batch_norm(num_features: usize) -> OpSpec {
    OpSpec::BatchNorm { num_features }
}

/// Non-overlapping max pooling, no padding.
fn max_pool(kernel: usize) -> OpSpec {
    OpSpec::MaxPool2d {
        kernel_size: kernel,
        stride: kernel,
        padding: 0,
        ceil_mode: false,
    }
}

/// A GPU model's graph as a model file would spell it; `None` for the baseline, which has no
/// nodes.
pub fn spec(kind: ModelKind, arch: &Architecture) -> Option<ModelSpec> {
    let pixels: usize = ImageSpec::study_grey().shape().iter().product();
    let mut nodes = Nodes::default();
    let width = Width(arch.width_divisor);
    match kind {
        ModelKind::Baseline => return None,
        ModelKind::Softmax => {
            nodes.push("flatten", OpSpec::Flatten);
            nodes.push("linear", linear(pixels, CLASSES));
        }
        ModelKind::Mlp => {
            let [h1, h2] = arch.mlp_hidden;
            let p = arch.mlp_dropout;
            nodes.push("flatten", OpSpec::Flatten);
            let mut features = pixels;
            for (i, hidden) in [(1, h1), (2, h2)] {
                nodes.push(format!("fc{i}"), linear(features, hidden));
                nodes.push(
                    format!("bn{i}"),
                    OpSpec::BatchNorm {
                        num_features: hidden,
                    },
                );
                nodes.push(format!("relu{i}"), OpSpec::Relu);
                nodes.push(format!("dropout{i}"), OpSpec::Dropout { p });
                features = hidden;
            }
            nodes.push("fc3", linear(features, CLASSES));
        }
        ModelKind::Cnn => nodes = cnn(arch),
        ModelKind::BasicCnn => return Some(basic_cnn::spec(width)),
        ModelKind::Resnet => return Some(resnet::spec(width)),
        ModelKind::Googlenet => return Some(googlenet::spec(width)),
        ModelKind::Unet => return Some(unet::spec(width)),
        ModelKind::Newnet => return Some(newnet::spec(width)),
        ModelKind::Roglenet => return Some(roglenet::spec(width)),
        ModelKind::RealtimeCnn => return Some(realtime_cnn::spec(width)),
        ModelKind::KerasCnn => return Some(keras_cnn::spec(width)),
    }
    Some(nodes.model(kind, ImageSpec::study_grey()))
}

/// Names follow an `nn.Sequential` of the same layers: `network.0` is the first conv, ...
fn cnn(arch: &Architecture) -> Nodes {
    let mut ops = Vec::new();
    let [mut channels, mut side, _] = ImageSpec::study_grey().shape();
    let p = arch.cnn_dropout;
    for (block, &out) in arch.cnn_channels.iter().enumerate() {
        let (kernel_size, padding) = if block == 0 { (5, 2) } else { (3, 1) };
        ops.extend([
            conv(channels, out, kernel_size, 1, padding),
            batch_norm(out),
            OpSpec::Relu,
            max_pool(2),
            OpSpec::Dropout { p },
        ]);
        channels = out;
        side /= 2;
    }
    ops.push(OpSpec::Flatten);
    let mut features = channels * side * side;
    for &hidden in &arch.cnn_hidden {
        ops.extend([
            linear(features, hidden),
            OpSpec::BatchNorm {
                num_features: hidden,
            },
            OpSpec::Relu,
            OpSpec::Dropout { p },
        ]);
        features = hidden;
    }
    ops.push(linear(features, CLASSES));
    let mut nodes = Nodes::default();
    for (i, op) in ops.into_iter().enumerate() {
        nodes.push(format!("network.{i}"), op);
    }
    nodes
}

/// Builds a GPU model with its tensors initialised from `seed`; `None` for the baseline.
pub fn build(
    ctx: &GpuContext,
    kind: ModelKind,
    arch: &Architecture,
    seed: u64,
) -> Result<Option<Model>, GraphError> {
    spec(kind, arch)
        .map(|spec| build_spec(ctx, &spec, seed))
        .transpose()
}

/// Builds the model a (checked) spec describes, its tensors initialised from `seed`.
fn build_spec(ctx: &GpuContext, spec: &ModelSpec, seed: u64) -> Result<Model, GraphError> {
    Model::new(
        ctx,
        &spec.name,
        &spec.input.shape(),
        checked_graph(spec)?,
        seed,
    )
}

/// A parsed or built-in spec's graph: its names and inputs are already checked.
fn checked_graph(spec: &ModelSpec) -> Result<Graph, GraphError> {
    spec.graph().map_err(|error| match error {
        SpecError::Graph(error) => error,
        other => unreachable!("a parsed or built-in spec is well formed: {other}"),
    })
}

/// What to train or evaluate: a built-in model, or a graph from a model file.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelChoice {
    BuiltIn(ModelKind),
    File(ModelSpec),
}

impl From<ModelKind> for ModelChoice {
    fn from(kind: ModelKind) -> Self {
        ModelChoice::BuiltIn(kind)
    }
}

impl ModelChoice {
    /// Its name, which also names its results folder.
    pub fn name(&self) -> &str {
        match self {
            ModelChoice::BuiltIn(kind) => kind.name(),
            ModelChoice::File(spec) => &spec.name,
        }
    }

    /// Its graph as a model file spells it; `None` for the baseline.
    pub fn spec(&self, arch: &Architecture) -> Option<ModelSpec> {
        match self {
            ModelChoice::BuiltIn(kind) => spec(*kind, arch),
            ModelChoice::File(spec) => Some(spec.clone()),
        }
    }

    /// The images it reads. The baseline reads none (it counts labels), so any spec serves
    /// it, and it gets the study's, the smallest to load.
    pub fn input(&self, arch: &Architecture) -> ImageSpec {
        self.spec(arch)
            .map_or_else(ImageSpec::study_grey, |spec| spec.input)
    }

    /// How many classes it predicts. The baseline predicts whichever classes its labels
    /// have, so FER2013's seven.
    pub fn classes(&self, arch: &Architecture) -> Result<usize, GraphError> {
        let Some(spec) = self.spec(arch) else {
            return Ok(crate::data::fer2013::CLASS_NAMES.len());
        };
        let shapes = checked_graph(&spec)?.shapes(&spec.input.shape(), 1)?;
        Ok(shapes
            .last()
            .map_or(0, |output| output[1..].iter().product()))
    }

    /// Builds it with its tensors initialised from `seed`; `None` for the baseline.
    pub fn build(
        &self,
        ctx: &GpuContext,
        arch: &Architecture,
        seed: u64,
    ) -> Result<Option<Model>, GraphError> {
        self.spec(arch)
            .map(|spec| build_spec(ctx, &spec, seed))
            .transpose()
    }
}

/// A built-in model as its name, a model file's as the file.
impl Serialize for ModelChoice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ModelChoice::BuiltIn(kind) => kind.serialize(serializer),
            ModelChoice::File(spec) => {
                let file: serde_json::Value =
                    serde_json::from_str(&spec.to_json()).map_err(serde::ser::Error::custom)?;
                file.serialize(serializer)
            }
        }
    }
}
