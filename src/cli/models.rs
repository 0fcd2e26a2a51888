//! `fer models`: the built-in models with their size and cost, or one of them as a model file.

use fer::graph::GraphError;
use fer::kernels::softmax_ce::ROW_STATS;
use fer::nn::models::{spec, Architecture, ModelKind};
use fer::nn::spec::ModelSpec;
use serde::Serialize;

/// What one model holds and costs, as `fer models` lists it.
#[derive(Serialize)]
pub struct ModelSummary {
    pub name: String,
    /// [channels, height, width].
    pub input: [usize; 3],
    pub classes: usize,
    pub parameters: usize,
    /// Forward FLOPs per image (2 per multiply-add of convolutions and products).
    pub flops_per_image: f64,
    /// Bytes at `batch` images: every tensor, the trainable ones' gradients, the optimizer's
    /// state, each node output with its gradient (an upper bound: fused blocks keep fewer),
    /// and the batch's images, labels and loss records.
    pub memory: Memory,
}

#[derive(Serialize)]
pub struct Memory {
    pub batch: usize,
    pub weights: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
    pub scratch: u64,
    /// The largest node output, which must fit one binding.
    pub largest_output: LargestOutput,
}

#[derive(Serialize)]
pub struct LargestOutput {
    pub node: String,
    pub bytes: u64,
}

impl Memory {
    pub fn total(&self) -> u64 {
        self.weights + self.gradients + self.optimizer + self.activations + self.scratch
    }
}

/// Tensors of optimizer state per trainable tensor: Adam's two moments, the optimizer `fer
/// models` counts (the study's for every model but the softmax).
pub const ADAM_STATES: u64 = 2;

/// The summary of a model's spec, with `optimizer_states` tensors of optimizer state per
/// trainable tensor.
pub fn summarize(
    spec: &ModelSpec,
    batch: usize,
    optimizer_states: u64,
) -> Result<ModelSummary, GraphError> {
    let graph = spec.graph().map_err(|error| GraphError::Structure {
        node: spec.name.clone(),
        why: error.to_string(),
    })?;
    let input = spec.input.shape();
    let shapes = graph.shapes(&input, batch)?;
    let tensors = graph.tensors();
    let bytes = |values: usize| values as u64 * 4;
    let trainable = graph.parameter_count();
    let values = |shape: &Vec<usize>| shape.iter().product::<usize>();
    let outputs: Vec<(&str, usize)> = spec
        .nodes
        .iter()
        .zip(&shapes[1..])
        .map(|(node, shape)| (node.name.as_str(), values(shape)))
        .collect();
    let (largest, largest_values) = outputs
        .iter()
        .copied()
        .max_by_key(|&(_, values)| values)
        .unwrap_or(("input", values(&shapes[0])));
    Ok(ModelSummary {
        name: spec.name.clone(),
        input,
        classes: shapes.last().expect("an output")[1],
        parameters: trainable,
        flops_per_image: graph.flops_per_sample(&input)?,
        memory: Memory {
            batch,
            weights: bytes(tensors.iter().map(|(_, t)| t.len()).sum()),
            gradients: bytes(trainable),
            optimizer: optimizer_states * bytes(trainable),
            activations: 2 * bytes(outputs.iter().map(|&(_, values)| values).sum()),
            scratch: bytes(values(&shapes[0]) + batch * (1 + ROW_STATS)),
            largest_output: LargestOutput {
                node: largest.to_string(),
                bytes: bytes(largest_values),
            },
        },
    })
}

/// Every built-in model with a graph (not the baseline), at the study's architecture.
pub fn built_in() -> Vec<ModelSpec> {
    ModelKind::ALL
        .iter()
        .filter_map(|&kind| spec(kind, &Architecture::default()))
        .collect()
}

/// The table `fer models` prints.
pub fn table(summaries: &[ModelSummary]) -> String {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let mut out = format!(
        "{:<13} {:>11} {:>7} {:>12} {:>11}   memory at batch {} (MiB): {:>8} {:>8} {:>8} {:>11}\n",
        "model",
        "input",
        "classes",
        "parameters",
        "GFLOP/image",
        summaries.first().map_or(0, |s| s.memory.batch),
        "weights",
        "grads",
        "adam",
        "activations"
    );
    for s in summaries {
        let [c, h, w] = s.input;
        let m = &s.memory;
        out += &format!(
            "{:<13} {:>11} {:>7} {:>12} {:>11.3}   {:>27} {:>8.1} {:>8.1} {:>8.1} {:>11.1}\n",
            s.name,
            format!("{c}×{h}×{w}"),
            s.classes,
            s.parameters,
            s.flops_per_image / 1e9,
            "",
            mib(m.weights),
            mib(m.gradients),
            mib(m.optimizer),
            mib(m.activations),
        );
    }
    out
}
