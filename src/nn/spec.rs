//! Models as files: a model's graph in the vocabulary of fer's layers, as JSON. The built-in
//! models are written in the same vocabulary, so `fer models --show NAME` prints one as a file
//! a user can edit and train with `--model-file`.
//!
//! ```json
//! { "name": "tiny",
//!   "input": { "channels": 1, "height": 48, "width": 48, "mean": [0.5], "std": [0.5] },
//!   "nodes": [
//!     { "name": "conv", "op": "conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3, "padding": 1 },
//!     { "name": "relu", "op": "relu" },
//!     { "name": "skip", "op": "add", "inputs": ["relu", "conv"] },
//!     { "name": "gap", "op": "global_avg_pool" },
//!     { "name": "fc", "op": "linear", "in_features": 8, "out_features": 7 } ] }
//! ```
//! A node reads the node before it unless it names its `inputs` (`"input"` is the image).
//! Ops and their settings take PyTorch's names (`conv2d`, `kernel_size`, `num_features`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use thiserror::Error;

use crate::data::ImageSpec;
use crate::graph::{Graph, GraphError, Join, Layer, Op, Value};

use super::{
    AvgPool2d, BatchNorm, Conv2d, ConvTranspose2d, Dropout, Flatten, GlobalAvgPool, Linear,
    MaxPool2d, Relu, Sigmoid, Window,
};

/// One operation and its settings, as a model file spells it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum OpSpec {
    Linear {
        in_features: usize,
        out_features: usize,
    },
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    ConvTranspose2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        padding: usize,
    },
    BatchNorm {
        num_features: usize,
    },
    Relu,
    Dropout {
        p: f32,
    },
    MaxPool2d {
        kernel_size: usize,
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default)]
        ceil_mode: bool,
    },
    AvgPool2d {
        kernel_size: usize,
        stride: usize,
        #[serde(default)]
        padding: usize,
        #[serde(default)]
        ceil_mode: bool,
    },
    GlobalAvgPool,
    Flatten,
    Sigmoid,
    Add,
    /// Along channels (PyTorch's `torch.cat(xs, dim=1)`), inputs in order.
    Concat,
}

fn one() -> usize {
    1
}

impl OpSpec {
    /// The graph's node for it.
    pub fn op(&self) -> Op {
        let layer = |layer: Box<dyn Layer>| Op::Layer(layer);
        match *self {
            OpSpec::Linear {
                in_features,
                out_features,
            } => layer(Box::new(Linear {
                inputs: in_features,
                outputs: out_features,
            })),
            OpSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
            } => layer(Box::new(Conv2d {
                in_channels,
                out_channels,
                kernel: kernel_size,
                stride,
                padding,
            })),
            OpSpec::ConvTranspose2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
            } => layer(Box::new(ConvTranspose2d {
                in_channels,
                out_channels,
                kernel: kernel_size,
                stride,
                padding,
            })),
            OpSpec::BatchNorm { num_features } => layer(Box::new(BatchNorm::new(num_features))),
            OpSpec::Relu => layer(Box::new(Relu)),
            OpSpec::Dropout { p } => layer(Box::new(Dropout { p })),
            OpSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
            } => layer(Box::new(MaxPool2d {
                window: Window {
                    kernel: kernel_size,
                    stride,
                    padding,
                    ceil_mode,
                },
            })),
            OpSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
                ceil_mode,
            } => layer(Box::new(AvgPool2d {
                window: Window {
                    kernel: kernel_size,
                    stride,
                    padding,
                    ceil_mode,
                },
            })),
            OpSpec::GlobalAvgPool => layer(Box::new(GlobalAvgPool)),
            OpSpec::Flatten => layer(Box::new(Flatten)),
            OpSpec::Sigmoid => layer(Box::new(Sigmoid)),
            OpSpec::Add => Op::Join(Join::Add),
            OpSpec::Concat => Op::Join(Join::Concat),
        }
    }
}

/// A node of a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Its state-dict prefix.
    pub name: String,
    pub op: OpSpec,
    /// The nodes it reads (`input` is the image); empty: the node before it.
    pub inputs: Vec<String>,
}

/// A whole model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    pub name: String,
    /// What it reads: size, channels and normalisation.
    pub input: ImageSpec,
    pub nodes: Vec<NodeSpec>,
}

/// What is wrong with a model file, in one sentence.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("{0}")]
    Json(String),
    #[error("\"input\": {0}")]
    Input(String),
    #[error("node {index} has no \"name\" (a string)")]
    Unnamed { index: usize },
    #[error("node `{node}`: {why}")]
    Node { node: String, why: String },
    #[error(
        "\"name\" {0:?} must be a plain name (not empty, `.` or `..`, without `/` or `\\`): fer \
         writes the model's results to <results>/<name>/"
    )]
    Name(String),
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Whether `name` can name a model: fer writes its results to a directory of that name, which
/// must neither climb out of the results root nor nest inside it.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// The name by which nodes read the model's input.
pub const INPUT: &str = "input";

/// The most values a tensor or one image's output may hold (2⁴⁰, 4 TiB of f32: past any
/// adapter), so that every size fer adds up stays countable.
const MAX_VALUES: usize = 1 << 40;

impl ModelSpec {
    /// Reads a model file's text.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            name: String,
            input: ImageSpec,
            nodes: Vec<Map<String, Json>>,
        }
        let file: File = serde_json::from_str(text).map_err(|e| SpecError::Json(e.to_string()))?;
        if !is_plain_name(&file.name) {
            return Err(SpecError::Name(file.name));
        }
        file.input.check().map_err(SpecError::Input)?;
        let nodes = file
            .nodes
            .into_iter()
            .enumerate()
            .map(|(index, node)| NodeSpec::from_json(index, node))
            .collect::<Result<_, _>>()?;
        let spec = ModelSpec {
            name: file.name,
            input: file.input,
            nodes,
        };
        let graph = spec.graph()?;
        let shapes = graph.shapes(&spec.input.shape(), 1)?;
        // Sizes past counting (out_features 2^64 − 1) would wrap in every figure fer prints.
        let countable = |shape: &[usize]| {
            shape
                .iter()
                .try_fold(1usize, |n, &d| n.checked_mul(d))
                .is_some_and(|n| n <= MAX_VALUES)
        };
        let mut nodes_and_outputs = spec.nodes.iter().zip(&shapes[1..]);
        if let Some((node, shape)) = nodes_and_outputs.find(|(_, s)| !countable(s)) {
            return Err(SpecError::Node {
                node: node.name.clone(),
                why: format!(
                    "its output {shape:?} for one image holds more values than fer counts"
                ),
            });
        }
        if let Some((tensor, spec)) = graph
            .tensors()
            .into_iter()
            .find(|(_, t)| !countable(&t.shape))
        {
            let node = tensor
                .rsplit_once('.')
                .map_or(tensor.as_str(), |(node, _)| node);
            return Err(SpecError::Node {
                node: node.to_string(),
                why: format!(
                    "its tensor `{tensor}` {:?} holds more values than fer counts",
                    spec.shape
                ),
            });
        }
        if let (Some(last), Some(output)) = (spec.nodes.last(), shapes.last()) {
            let why = match output[..] {
                [_, classes] if classes >= 2 => None,
                [_, classes] => Some(format!(
                    "outputs {classes} class{}: a classifier needs at least two",
                    if classes == 1 { "" } else { "es" }
                )),
                _ => Some(format!(
                    "outputs {:?} for one image: a classifier ends in [batch, classes] (a \
                     linear layer, after a flatten or a global pool)",
                    output
                )),
            };
            if let Some(why) = why {
                return Err(SpecError::Node {
                    node: last.name.clone(),
                    why,
                });
            }
        }
        Ok(spec)
    }

    /// The file's text: each node on one line, naming its inputs only where it does not read
    /// the node before.
    pub fn to_json(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|node| {
                let mut fields = Map::new();
                fields.insert("name".into(), Json::String(node.name.clone()));
                // Through text, so an f32 setting is written as its shortest decimal (0.3), not
                // as the f64 a Value would hold (0.30000001192092896).
                let op: Json = serde_json::to_string(&node.op)
                    .and_then(|text| serde_json::from_str(&text))
                    .expect("an op serialises");
                fields.extend(op.as_object().expect("an op is an object").clone());
                if !node.inputs.is_empty() {
                    fields.insert("inputs".into(), serde_json::json!(node.inputs));
                }
                format!("    {}", Json::Object(fields))
            })
            .collect();
        format!(
            "{{\n  \"name\": {},\n  \"input\": {},\n  \"nodes\": [\n{}\n  ]\n}}\n",
            Json::String(self.name.clone()),
            serde_json::to_string(&self.input).expect("an image spec serialises"),
            nodes.join(",\n")
        )
    }

    /// The model's graph, its inputs resolved by name.
    pub fn graph(&self) -> Result<Graph, SpecError> {
        let mut graph = Graph::new();
        let mut previous = Value::INPUT;
        for node in &self.nodes {
            let inputs = if node.inputs.is_empty() {
                vec![previous]
            } else {
                let resolve = |name: &String| match name.as_str() {
                    INPUT => Ok(Value::INPUT),
                    _ => graph.value_of(name).ok_or_else(|| SpecError::Node {
                        node: node.name.clone(),
                        why: format!("reads `{name}`, which no node before it outputs"),
                    }),
                };
                node.inputs.iter().map(resolve).collect::<Result<_, _>>()?
            };
            previous = graph.node(node.name.clone(), node.op.op(), inputs);
        }
        graph.shapes(&self.input.shape(), 1)?;
        Ok(graph)
    }
}

impl NodeSpec {
    fn from_json(index: usize, mut fields: Map<String, Json>) -> Result<Self, SpecError> {
        let name = match fields.remove("name") {
            Some(Json::String(name)) => name,
            _ => return Err(SpecError::Unnamed { index }),
        };
        let invalid = |why: String| SpecError::Node {
            node: name.clone(),
            why,
        };
        if name == INPUT {
            return Err(invalid(format!(
                "`{INPUT}` names the image the model reads; call the node something else"
            )));
        }
        let inputs = match fields.remove("inputs") {
            None => Vec::new(),
            Some(inputs) => serde_json::from_value(inputs)
                .map_err(|_| invalid("\"inputs\" must be a list of node names".into()))?,
        };
        let given: Vec<String> = fields.keys().cloned().collect();
        let op: OpSpec =
            serde_json::from_value(Json::Object(fields)).map_err(|e| invalid(e.to_string()))?;
        // serde ignores unknown fields of an op without settings (`relu`, `flatten`, `add`),
        // where a misspelt `inputs` would silently rewire the model: every key must be one the
        // op writes back.
        let known = serde_json::to_value(&op).expect("an op serialises");
        if let Some(unknown) = given.iter().find(|key| known.get(key.as_str()).is_none()) {
            return Err(invalid(format!("unknown field `{unknown}`")));
        }
        Ok(NodeSpec { name, op, inputs })
    }
}
