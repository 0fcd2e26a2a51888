//! `fer models`: the built-in models with their size and cost, or one of them as a model file.

use fer::graph::GraphError;
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
    /// Bytes at `batch` images: every tensor, the trainable ones' gradients, Adam's two moments,
    /// and each node output with its gradient (an upper bound: fused blocks keep fewer).
    pub memory: Memory,
}

#[derive(Serialize)]
pub struct Memory {
    pub batch: usize,
    pub weights: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
}

/// The summary of a built-in model's spec.
pub fn summarize(spec: &ModelSpec, batch: usize) -> Result<ModelSummary, GraphError> {
    let graph = spec.graph().map_err(|error| GraphError::Structure {
        node: spec.name.clone(),
        why: error.to_string(),
    })?;
    let input = spec.input.shape();
    let shapes = graph.shapes(&input, batch)?;
    let tensors = graph.tensors();
    let bytes = |values: usize| values as u64 * 4;
    let trainable = graph.parameter_count();
    let values: usize = shapes[1..]
        .iter()
        .map(|s| s.iter().product::<usize>())
        .sum();
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
            optimizer: 2 * bytes(trainable),
            activations: 2 * bytes(values),
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
