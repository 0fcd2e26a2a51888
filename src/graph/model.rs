//! The model as data: a DAG of named nodes, each a [`Layer`] on one input or a [`Join`] of
//! several, over values (the model's input and each node's output).

use crate::gpu::GpuContext;
use crate::rng::Rng;

use super::error::GraphError;
use super::join::Join;
use super::layer::Layer;
use super::param::{tensor_name, ParamSpec, ParameterPlan, ParameterStore};

/// What a node computes.
pub enum Op {
    /// A layer on one input.
    Layer(Box<dyn Layer>),
    /// A join of several inputs.
    Join(Join),
}

impl Op {
    /// What it is, as PyTorch prints it.
    pub fn kind(&self) -> String {
        match self {
            Op::Layer(layer) => layer.kind(),
            Op::Join(join) => join.kind(),
        }
    }

    /// Its inputs' gradients are its output's gradient, unchanged (a reshape, a residual
    /// add): its backward records nothing and the plan lets those gradients alias.
    pub fn passes_gradient(&self) -> bool {
        match self {
            Op::Layer(layer) => layer.is_reshape(),
            Op::Join(join) => join.passes_gradient(),
        }
    }

    /// Its output is its input's buffer, as another shape (a reshape).
    pub fn is_reshape(&self) -> bool {
        matches!(self, Op::Layer(layer) if layer.is_reshape())
    }

    /// The layer, if the node is one.
    pub fn layer(&self) -> Option<&dyn Layer> {
        match self {
            Op::Layer(layer) => Some(layer.as_ref()),
            Op::Join(_) => None,
        }
    }
}

/// A value of the graph: the model's input, or a node's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(usize);

impl Value {
    /// The batch of images the model reads.
    pub const INPUT: Value = Value(0);

    /// The output of node `index`.
    pub fn of_node(index: usize) -> Value {
        Value(index + 1)
    }

    /// Its position among the model's values: the input is 0, node i's output i + 1.
    pub fn index(self) -> usize {
        self.0
    }

    /// The value at position `index` (see [`Value::index`]).
    pub(super) fn from_index(index: usize) -> Value {
        Value(index)
    }

    /// The node that computes it; `None` for the input.
    pub fn producer(self) -> Option<usize> {
        self.0.checked_sub(1)
    }
}

/// A model's nodes before its tensors exist, in an order where every input comes before the
/// node that reads it; the last node's output is the model's output (the logits).
#[derive(Default)]
pub struct Graph {
    nodes: Vec<(String, Op, Vec<Value>)>,
}

impl Graph {
    pub fn new() -> Self {
        Graph::default()
    }

    /// Layers one after another, each reading the one before (the first reads the input).
    pub fn sequential(layers: Vec<(String, Box<dyn Layer>)>) -> Self {
        let mut graph = Graph::new();
        let mut value = Value::INPUT;
        for (name, layer) in layers {
            value = graph.node(name, Op::Layer(layer), vec![value]);
        }
        graph
    }

    /// Adds `layer` on `input`; returns its output.
    pub fn layer(&mut self, name: impl Into<String>, layer: impl Layer, input: Value) -> Value {
        self.node(name, Op::Layer(Box::new(layer)), vec![input])
    }

    /// Adds a join of `inputs`; returns its output.
    pub fn join(&mut self, name: impl Into<String>, join: Join, inputs: &[Value]) -> Value {
        self.node(name, Op::Join(join), inputs.to_vec())
    }

    /// Adds any node; returns its output.
    pub fn node(&mut self, name: impl Into<String>, op: Op, inputs: Vec<Value>) -> Value {
        self.nodes.push((name.into(), op, inputs));
        Value::of_node(self.nodes.len() - 1)
    }

    /// Shapes of every value (the input, then each node's output) at batch size `batch`, for
    /// samples of `sample_shape`.
    pub fn shapes(
        &self,
        sample_shape: &[usize],
        batch: usize,
    ) -> Result<Vec<Vec<usize>>, GraphError> {
        check_structure(self)?;
        let nodes = self
            .nodes
            .iter()
            .map(|(name, op, inputs)| (name.as_str(), op, &inputs[..]));
        infer_shapes(nodes, sample_shape, batch)
    }

    /// Every tensor in state_dict order, with its full name (`conv1.weight`).
    pub fn tensors(&self) -> Vec<(String, ParamSpec)> {
        self.nodes
            .iter()
            .filter_map(|(name, op, _)| Some((name, op.layer()?)))
            .flat_map(|(name, layer)| {
                let specs = layer.params();
                specs
                    .into_iter()
                    .map(move |spec| (tensor_name(name, &spec), spec))
            })
            .collect()
    }

    /// Trainable parameters, as PyTorch counts them.
    pub fn parameter_count(&self) -> usize {
        self.tensors()
            .iter()
            .filter(|(_, spec)| spec.trainable)
            .map(|(_, spec)| spec.len())
            .sum()
    }

    /// Forward FLOPs for one sample of `sample_shape` (see [`Layer::flops`]), of the nodes the
    /// output depends on.
    pub fn flops_per_sample(&self, sample_shape: &[usize]) -> Result<f64, GraphError> {
        let shapes = self.shapes(sample_shape, 1)?;
        let live = live_nodes(self.nodes.iter().map(|(_, _, inputs)| &inputs[..]));
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| live[*i])
            .filter_map(|(i, (_, op, inputs))| {
                let layer = op.layer()?;
                Some(layer.flops(&shapes[inputs[0].index()], &shapes[i + 1]))
            })
            .sum())
    }

    /// The value a node of this name outputs.
    pub fn value_of(&self, name: &str) -> Option<Value> {
        self.nodes
            .iter()
            .position(|(node, _, _)| node == name)
            .map(Value::of_node)
    }
}

/// A node of a built model: its graph node and its tensors.
pub struct Node {
    /// State-dict prefix, e.g. `network.0` or `layer0.0.conv1.0`.
    pub name: String,
    pub op: Op,
    /// The values it reads, in order.
    pub inputs: Vec<Value>,
    /// Its tensors' indices in the [`ParameterStore`].
    pub params: Vec<usize>,
}

/// A model: its graph and its tensors, independent of the batch size.
pub struct Model {
    pub name: String,
    /// One sample's shape, e.g. [1, 48, 48].
    pub sample_shape: Vec<usize>,
    pub nodes: Vec<Node>,
    pub params: ParameterStore,
    /// Per node, whether the model's output depends on it. A node it does not (a branch a
    /// study built and never used) keeps its tensors, in the checkpoint and at their initial
    /// values, but is never run.
    pub live: Vec<bool>,
}

impl Model {
    /// Creates the model's tensors with PyTorch's default initialisation drawn from `seed`
    /// (node by node, in order), and checks the graph and every node's shapes once.
    pub fn new(
        ctx: &GpuContext,
        name: &str,
        sample_shape: &[usize],
        graph: Graph,
        seed: u64,
    ) -> Result<Self, GraphError> {
        check_structure(&graph)?;
        let graph_inputs: Vec<Vec<Value>> = graph
            .nodes
            .iter()
            .map(|(_, _, inputs)| inputs.clone())
            .collect();
        let mut rng = Rng::new(seed);
        let mut params = ParameterPlan::default();
        let nodes = graph
            .nodes
            .into_iter()
            .map(|(name, op, inputs)| {
                let specs = op.layer().map(|layer| layer.params()).unwrap_or_default();
                let indices = params.add_layer(&name, specs);
                Node {
                    name,
                    op,
                    inputs,
                    params: indices,
                }
            })
            .collect();
        let live = live_nodes(graph_inputs.iter().map(Vec::as_slice));
        let model = Model {
            name: name.to_string(),
            sample_shape: sample_shape.to_vec(),
            nodes,
            params: params.upload(ctx, &mut rng)?,
            live,
        };
        model.shapes(1)?;
        Ok(model)
    }

    /// The model's output: the last node's.
    pub fn output(&self) -> Value {
        Value::of_node(self.nodes.len() - 1)
    }

    /// Shapes of every value (the input, then each node's output) at batch size `batch`.
    pub fn shapes(&self, batch: usize) -> Result<Vec<Vec<usize>>, GraphError> {
        let nodes = self
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), &n.op, &n.inputs[..]));
        infer_shapes(nodes, &self.sample_shape, batch)
    }

    /// Per value, the live nodes that read it, once per input that does (in node order).
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut consumers = vec![Vec::new(); self.nodes.len() + 1];
        for (i, node) in self.nodes.iter().enumerate().filter(|(i, _)| self.live[*i]) {
            for input in &node.inputs {
                consumers[input.index()].push(i);
            }
        }
        consumers
    }
}

/// Per node (given each node's inputs, in order), whether the last node's output depends on
/// it.
fn live_nodes<'a>(inputs: impl Iterator<Item = &'a [Value]>) -> Vec<bool> {
    let inputs: Vec<&[Value]> = inputs.collect();
    let mut live = vec![false; inputs.len()];
    if let Some(last) = live.last_mut() {
        *last = true;
    }
    for node in (0..inputs.len()).rev() {
        if live[node] {
            for producer in inputs[node].iter().filter_map(|v| v.producer()) {
                live[producer] = true;
            }
        }
    }
    live
}

/// Shapes of the input at batch size `batch` and of each node's output, checked node by node.
fn infer_shapes<'a>(
    nodes: impl Iterator<Item = (&'a str, &'a Op, &'a [Value])>,
    sample_shape: &[usize],
    batch: usize,
) -> Result<Vec<Vec<usize>>, GraphError> {
    let mut shapes = vec![[&[batch][..], sample_shape].concat()];
    for (name, op, inputs) in nodes {
        let inputs: Vec<&[usize]> = inputs
            .iter()
            .map(|v| shapes[v.index()].as_slice())
            .collect();
        let output = match op {
            Op::Layer(layer) => layer.output_shape(inputs[0]),
            Op::Join(join) => join.output_shape(&inputs),
        }
        .map_err(|why| GraphError::Shape {
            layer: name.to_string(),
            kind: op.kind(),
            got: inputs
                .iter()
                .map(|shape| format!("{shape:?}"))
                .collect::<Vec<_>>()
                .join(" and "),
            why,
        })?;
        shapes.push(output);
    }
    Ok(shapes)
}

/// Every input names an earlier value, every node has a name of its own, a layer one input
/// and a join at least two, and the model's output feeds no node.
fn check_structure(graph: &Graph) -> Result<(), GraphError> {
    let invalid = |node: &str, why: String| GraphError::Structure {
        node: node.to_string(),
        why,
    };
    if graph.nodes.is_empty() {
        return Err(invalid("(none)", "a model needs at least one node".into()));
    }
    let mut seen = std::collections::HashSet::new();
    let last = Value::of_node(graph.nodes.len() - 1);
    for (i, (name, op, inputs)) in graph.nodes.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            return Err(invalid(name, "another node has the same name".into()));
        }
        let arity_ok = match op {
            Op::Layer(_) => inputs.len() == 1,
            Op::Join(_) => inputs.len() >= 2,
        };
        if !arity_ok {
            let wants = if op.layer().is_some() {
                "one input"
            } else {
                "two or more inputs"
            };
            return Err(invalid(
                name,
                format!("{} takes {wants}, not {}", op.kind(), inputs.len()),
            ));
        }
        if let Some(late) = inputs.iter().find(|v| v.index() > i) {
            return Err(invalid(
                name,
                format!("reads value {} before it is computed", late.index()),
            ));
        }
        if inputs.contains(&last) {
            return Err(invalid(
                name,
                "reads the model's output (the last node's), which must feed no node".into(),
            ));
        }
    }
    Ok(())
}
