//! A trained model as an ONNX graph: its model file's nodes as ONNX operators, its checkpoint's
//! tensors as initialisers, so it runs in ONNX Runtime, browsers and phones.
//!
//! The graph reads `pixels`, float32 `[N, C, H, W]` with values 0–255, and normalises them as
//! fer does (x · 1/(255 std) − mean/std per channel, the same f32 operations). It outputs
//! `logits` and their softmax, `probabilities`. Dropout is the identity at inference and is left
//! out, as are the nodes the output does not depend on (the studies' unused branches).

pub mod proto;

use std::collections::{HashMap, HashSet};

use prost::Message;
use safetensors::tensor::{Dtype, SafeTensors};
use thiserror::Error;

use crate::data::ImageSpec;
use crate::nn::spec::{ModelSpec, OpSpec, SpecError, INPUT};
use proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto,
};

/// The operator set the graph is written against (ONNX 1.12; ONNX Runtime reads it since 1.12).
pub const OPSET: i64 = 17;
/// The IR version that opset 17 comes with.
const IR_VERSION: i64 = 8;
/// PyTorch's BatchNorm2d/1d default, which fer's batch norms use.
const BATCH_NORM_EPS: f32 = 1e-5;

/// What stops a model from being exported, in one sentence.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("the checkpoint is not a safetensors file: {0}")]
    Format(String),
    #[error("the checkpoint lacks tensor `{0}`, which the model needs")]
    Missing(String),
    #[error("tensor `{name}` in the checkpoint is {dtype:?}; the model's tensors are F32")]
    Dtype { name: String, dtype: Dtype },
    #[error("tensor `{name}` in the checkpoint has shape {got:?}; the model needs {want:?}")]
    Shape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("tensor `{name}` in the checkpoint holds {value}: its weights diverged")]
    NonFinite { name: String, value: f32 },
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// The ONNX file's bytes for `spec` with the tensors of the safetensors `checkpoint`, and the
/// class names, in output order, as the metadata entry `classes` (a JSON list) where known.
pub fn export(
    spec: &ModelSpec,
    checkpoint: &[u8],
    classes: Option<&[String]>,
) -> Result<Vec<u8>, ExportError> {
    let tensors = SafeTensors::deserialize(checkpoint)
        .map_err(|error| ExportError::Format(error.to_string()))?;
    let shapes: HashMap<String, Vec<usize>> = spec
        .graph()?
        .tensors()
        .into_iter()
        .map(|(name, t)| (name, t.shape))
        .collect();
    let mut writer = GraphWriter {
        // The graph's inputs and outputs and the tensors keep their names; values take theirs
        // from what is left.
        taken: [PIXELS, LOGITS, PROBABILITIES]
            .map(String::from)
            .into_iter()
            .chain(shapes.keys().cloned())
            .collect(),
        shapes,
        ..GraphWriter::default()
    };
    writer.normalise(&spec.input);
    let live = live_nodes(spec);
    // Each value's rank as ONNX computes it (the image is NCHW; a global pool keeps rank 4),
    // to see where a Gemm needs a Flatten.
    let mut rank: HashMap<String, usize> = HashMap::from([(writer.normalised.clone(), 4)]);
    let mut previous = writer.normalised.clone();
    // Each node's output value; a dropout's is its input's.
    let mut values: HashMap<&str, String> = HashMap::from([(INPUT, previous.clone())]);
    for (node, live) in spec.nodes.iter().zip(live) {
        let mut inputs: Vec<String> = if node.inputs.is_empty() {
            vec![previous.clone()]
        } else {
            node.inputs
                .iter()
                .map(|name| values[name.as_str()].clone())
                .collect()
        };
        let output = if !live {
            node.name.clone()
        } else if let OpSpec::Dropout { .. } = node.op {
            inputs[0].clone()
        } else {
            let weights = |suffixes: &[&str]| {
                suffixes
                    .iter()
                    .map(|suffix| writer.initializer(&tensors, &node.name, suffix))
                    .collect::<Result<Vec<String>, ExportError>>()
            };
            let (op_type, extra_inputs, attributes) = operator(&node.op, weights)?;
            // fer's Linear flattens what it reads (googlenet's follows a global pool); Gemm
            // takes rank 2 only.
            if op_type == "Gemm" && rank[&inputs[0]] > 2 {
                let flat = writer.fresh(&format!("{}.flatten", node.name));
                writer.node(&flat, "Flatten", inputs, vec![int("axis", 1)]);
                inputs = vec![flat];
            }
            let output_rank = match op_type {
                "Flatten" | "Gemm" => 2,
                _ => rank[&inputs[0]],
            };
            let output = writer.fresh(&node.name);
            rank.insert(output.clone(), output_rank);
            writer.node(
                &output,
                op_type,
                [inputs, extra_inputs].concat(),
                attributes,
            );
            output
        };
        values.insert(&node.name, output.clone());
        previous = output;
    }
    let classes_count = writer.finish(&previous, spec)?;
    let mut metadata = vec![entry("fer_model", &spec.name)];
    if let Some(classes) = classes {
        let names = serde_json::to_string(classes).expect("strings serialise");
        metadata.push(entry("classes", &names));
    }
    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("fer".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "{}: pixels [N, {}, {}, {}] in 0..255 -> probabilities [N, {classes_count}]",
            spec.name, spec.input.channels, spec.input.height, spec.input.width
        )),
        graph: Some(writer.graph),
        metadata_props: metadata,
    };
    Ok(model.encode_to_vec())
}

/// The ONNX operator for one of fer's ops: its type, the initialisers it reads after its data
/// input (named by `weights` from their state-dict suffixes), and its attributes.
fn operator(
    op: &OpSpec,
    mut weights: impl FnMut(&[&str]) -> Result<Vec<String>, ExportError>,
) -> Result<(&'static str, Vec<String>, Vec<AttributeProto>), ExportError> {
    let window = |kernel: usize, stride: usize, padding: usize| {
        vec![
            ints("kernel_shape", &[kernel, kernel]),
            ints("strides", &[stride, stride]),
            ints("pads", &[padding; 4]),
        ]
    };
    let pool = |kernel, stride, padding, ceil_mode: bool| {
        let mut attributes = window(kernel, stride, padding);
        attributes.push(int("ceil_mode", ceil_mode as i64));
        attributes
    };
    Ok(match *op {
        OpSpec::Linear { .. } => (
            "Gemm",
            weights(&["weight", "bias"])?,
            // PyTorch's weight is [out, in]: y = x · Wᵀ + b.
            vec![int("transB", 1)],
        ),
        OpSpec::Conv2d {
            kernel_size,
            stride,
            padding,
            ..
        } => (
            "Conv",
            weights(&["weight", "bias"])?,
            window(kernel_size, stride, padding),
        ),
        OpSpec::ConvTranspose2d {
            kernel_size,
            stride,
            padding,
            ..
        } => (
            "ConvTranspose",
            weights(&["weight", "bias"])?,
            window(kernel_size, stride, padding),
        ),
        OpSpec::BatchNorm { .. } => (
            "BatchNormalization",
            weights(&["weight", "bias", "running_mean", "running_var"])?,
            vec![float("epsilon", BATCH_NORM_EPS)],
        ),
        OpSpec::Relu => ("Relu", vec![], vec![]),
        OpSpec::Sigmoid => ("Sigmoid", vec![], vec![]),
        OpSpec::MaxPool2d {
            kernel_size,
            stride,
            padding,
            ceil_mode,
        } => (
            "MaxPool",
            vec![],
            pool(kernel_size, stride, padding, ceil_mode),
        ),
        OpSpec::AvgPool2d {
            kernel_size,
            stride,
            padding,
            ceil_mode,
        } => {
            let mut attributes = pool(kernel_size, stride, padding, ceil_mode);
            // torch.nn.AvgPool2d's default, which fer follows: padding counts as zeros.
            attributes.push(int("count_include_pad", 1));
            ("AveragePool", vec![], attributes)
        }
        OpSpec::GlobalAvgPool => ("GlobalAveragePool", vec![], vec![]),
        OpSpec::Flatten => ("Flatten", vec![], vec![int("axis", 1)]),
        OpSpec::Add => ("Add", vec![], vec![]),
        OpSpec::Concat => ("Concat", vec![], vec![int("axis", 1)]),
        OpSpec::Dropout { .. } => unreachable!("a dropout is the identity at inference"),
    })
}

/// Which nodes the output (the last node) depends on.
fn live_nodes(spec: &ModelSpec) -> Vec<bool> {
    let index: HashMap<&str, usize> = spec
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (node.name.as_str(), i))
        .collect();
    let mut live = vec![false; spec.nodes.len()];
    if let Some(last) = live.last_mut() {
        *last = true;
    }
    for i in (0..spec.nodes.len()).rev() {
        if !live[i] {
            continue;
        }
        let node = &spec.nodes[i];
        if node.inputs.is_empty() && i > 0 {
            live[i - 1] = true;
        }
        for input in &node.inputs {
            if let Some(&j) = index.get(input.as_str()) {
                live[j] = true;
            }
        }
    }
    live
}

/// The graph's input, and its outputs.
const PIXELS: &str = "pixels";
const LOGITS: &str = "logits";
const PROBABILITIES: &str = "probabilities";

#[derive(Default)]
struct GraphWriter {
    graph: GraphProto,
    /// Each tensor's shape in the model, by state-dict name.
    shapes: HashMap<String, Vec<usize>>,
    /// The value holding the normalised input.
    normalised: String,
    /// Every name a value or tensor of the graph has, or is kept for: ONNX defines each once.
    taken: HashSet<String>,
}

impl GraphWriter {
    /// `wanted`, or where the graph already has that name (a node called `logits`, or
    /// `fc.weight` beside the tensor), the first of `wanted_1`, `wanted_2`, ... it has not.
    fn fresh(&mut self, wanted: &str) -> String {
        let name = std::iter::once(wanted.to_string())
            .chain((1..).map(|n| format!("{wanted}_{n}")))
            .find(|name| !self.taken.contains(name))
            .expect("some suffix is free");
        self.taken.insert(name.clone());
        name
    }

    /// `pixels` · scale + offset per channel, with fer's f32 scale 1/(255 std) and offset
    /// −mean/std.
    fn normalise(&mut self, input: &ImageSpec) {
        let [channels, height, width] = input.shape();
        self.graph.name = Some("fer".into());
        self.graph.input.push(value_info(
            PIXELS,
            &[
                Dim::Batch,
                Dim::Size(channels),
                Dim::Size(height),
                Dim::Size(width),
            ],
        ));
        let (scale, offset): (Vec<f32>, Vec<f32>) = input
            .mean
            .iter()
            .zip(&input.std)
            .map(|(&mean, &std)| (1.0 / (255.0 * std), -mean / std))
            .unzip();
        let per_channel = [1, channels, 1, 1];
        let [scale_name, offset_name, product, normalised] = [
            "normalise.scale",
            "normalise.offset",
            "normalise.mul",
            "normalise",
        ]
        .map(|name| self.fresh(name));
        self.constant(&scale_name, &per_channel, &scale);
        self.constant(&offset_name, &per_channel, &offset);
        let inputs = |a: &str, b: &str| vec![a.to_string(), b.to_string()];
        self.node(&product, "Mul", inputs(PIXELS, &scale_name), vec![]);
        self.node(&normalised, "Add", inputs(&product, &offset_name), vec![]);
        self.normalised = normalised;
    }

    /// The tensor `<node>.<suffix>` of the checkpoint as an initialiser, checked against the
    /// shape the model gives it; returns its name.
    fn initializer(
        &mut self,
        tensors: &SafeTensors,
        node: &str,
        suffix: &str,
    ) -> Result<String, ExportError> {
        let name = format!("{node}.{suffix}");
        let want = self
            .shapes
            .get(&name)
            .cloned()
            .ok_or_else(|| ExportError::Missing(name.clone()))?;
        let view = tensors
            .tensor(&name)
            .map_err(|_| ExportError::Missing(name.clone()))?;
        if view.dtype() != Dtype::F32 {
            return Err(ExportError::Dtype {
                name,
                dtype: view.dtype(),
            });
        }
        if view.shape() != want {
            return Err(ExportError::Shape {
                name,
                got: view.shape().to_vec(),
                want,
            });
        }
        let values: Vec<f32> = bytemuck::allocation::pod_collect_to_vec(view.data());
        if let Some(&value) = values.iter().find(|v| !v.is_finite()) {
            return Err(ExportError::NonFinite { name, value });
        }
        self.graph.initializer.push(TensorProto {
            dims: want.iter().map(|&d| d as i64).collect(),
            data_type: Some(proto::FLOAT),
            name: Some(name.clone()),
            raw_data: Some(view.data().to_vec()),
        });
        Ok(name)
    }

    fn constant(&mut self, name: &str, shape: &[usize], values: &[f32]) {
        self.graph.initializer.push(TensorProto {
            dims: shape.iter().map(|&d| d as i64).collect(),
            data_type: Some(proto::FLOAT),
            name: Some(name.into()),
            raw_data: Some(bytemuck::cast_slice(values).to_vec()),
        });
    }

    /// A node named as its output value.
    fn node(
        &mut self,
        name: &str,
        op_type: &str,
        inputs: Vec<String>,
        attributes: Vec<AttributeProto>,
    ) {
        self.graph.node.push(NodeProto {
            input: inputs,
            output: vec![name.into()],
            name: Some(name.into()),
            op_type: Some(op_type.into()),
            attribute: attributes,
        });
    }

    /// Declares `logits` (the value `last`) and their softmax as the outputs; returns the
    /// number of classes.
    fn finish(&mut self, last: &str, spec: &ModelSpec) -> Result<usize, ExportError> {
        let shapes = spec
            .graph()?
            .shapes(&spec.input.shape(), 1)
            .map_err(SpecError::Graph)?;
        let classes = shapes.last().and_then(|s| s.last()).copied().unwrap_or(0);
        self.node(LOGITS, "Identity", vec![last.into()], vec![]);
        self.node(
            PROBABILITIES,
            "Softmax",
            vec![LOGITS.into()],
            vec![int("axis", 1)],
        );
        for name in [LOGITS, PROBABILITIES] {
            let info = value_info(name, &[Dim::Batch, Dim::Size(classes)]);
            self.graph.output.push(info);
        }
        Ok(classes)
    }
}

enum Dim {
    /// The batch, chosen at run time.
    Batch,
    Size(usize),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|dim| match dim {
            Dim::Batch => Dimension {
                dim_value: None,
                dim_param: Some("N".into()),
            },
            Dim::Size(size) => Dimension {
                dim_value: Some(*size as i64),
                dim_param: None,
            },
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(proto::FLOAT),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

fn entry(key: &str, value: &str) -> StringStringEntryProto {
    StringStringEntryProto {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

fn int(name: &str, value: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(value),
        r#type: Some(proto::ATTRIBUTE_INT),
        ..Default::default()
    }
}

fn float(name: &str, value: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        f: Some(value),
        r#type: Some(proto::ATTRIBUTE_FLOAT),
        ..Default::default()
    }
}

fn ints(name: &str, values: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        ints: values.iter().map(|&v| v as i64).collect(),
        r#type: Some(proto::ATTRIBUTE_INTS),
        ..Default::default()
    }
}
