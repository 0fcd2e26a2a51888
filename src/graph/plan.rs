use std::collections::HashMap;

use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::nn::Linear;
use crate::rng::Rng;

use super::error::{GraphError, Size};
use super::fusion::{BlockIo, Fusion, Unit};
use super::join::{sum, JoinIo};
use super::layer::{layer_as, LayerIo, LayerKernels, StepHook};
use super::model::{Model, Op, Value};

impl Model {
    /// Instantiates the model at one batch size, fused by [`crate::nn::fusion::fuse`]: every
    /// activation and gradient buffer, bind group and pipeline is created here, once.
    pub fn plan(&self, ctx: &GpuContext, batch: usize) -> Result<Plan, GraphError> {
        self.plan_with(ctx, batch, &crate::nn::fusion::fuse(self))
    }

    /// Instantiates the model at one batch size as `fusion` groups its nodes.
    pub fn plan_with(
        &self,
        ctx: &GpuContext,
        batch: usize,
        fusion: &Fusion,
    ) -> Result<Plan, GraphError> {
        let shapes = self.shapes(batch)?;
        self.check_binding_sizes(ctx, &shapes)?;
        let units = &fusion.units;
        let values = Values::new(ctx, self, units, &shapes);
        self.reserve_shared_scratch(ctx, units, &values, &shapes)?;
        let mut forward_train = Vec::new();
        let mut forward_eval = Vec::new();
        let mut from_weights = Vec::new();
        let mut backward = Vec::new();
        let mut step_hooks = Vec::new();
        for (u, unit) in units.iter().enumerate() {
            let kernels = self.record_unit(ctx, unit, &values.io(u, unit, self, &shapes))?;
            forward_eval.extend(
                kernels
                    .forward_eval
                    .unwrap_or_else(|| kernels.forward.clone()),
            );
            forward_train.extend(kernels.forward);
            from_weights.extend(kernels.from_weights);
            // The gradients of a value several units read meet before its producer's backward.
            let mut unit_backward = values.gradient_sums(ctx, u, &shapes)?;
            unit_backward.extend(kernels.backward);
            backward.push(unit_backward);
            step_hooks.extend(
                kernels
                    .step_hooks
                    .into_iter()
                    .map(|hook| (unit.seed_node, hook)),
            );
        }
        let logits = self.output().index();
        Ok(Plan {
            batch,
            output_shape: shapes[logits].clone(),
            forward_train,
            forward_eval,
            from_weights,
            backward: backward.into_iter().rev().flatten().collect(),
            step_hooks,
            logits_bias_grad: fusion.loss_sums_into.map(|p| {
                let grad = self.params.get(p).grad();
                grad.view(0, grad.len())
            }),
            logits: values.activation_of[logits],
            grad_logits: values.gradient_of[logits].expect("the logits need their gradient"),
            activations: values.activations,
            gradients: values.gradients,
        })
    }

    /// Allocates the scratch layers share ([`GpuBuffer::transient`]) at the longest any layer
    /// asks for, before any records, so each role is one buffer.
    fn reserve_shared_scratch(
        &self,
        ctx: &GpuContext,
        units: &[Unit],
        values: &Values,
        shapes: &[Vec<usize>],
    ) -> Result<(), GraphError> {
        let mut longest: HashMap<&'static str, usize> = HashMap::new();
        for (u, unit) in units.iter().enumerate() {
            let io = values.io(u, unit, self, shapes);
            for (i, &node) in unit.nodes.iter().enumerate() {
                if let Op::Layer(layer) = &self.nodes[node].op {
                    // A chain's inner members have an input gradient: the block's own.
                    let grad_input = i > 0 || io.grad_inputs[0].is_some();
                    for (role, len) in layer.shared_scratch(ctx, io.shapes[i], grad_input)? {
                        let held = longest.entry(role).or_default();
                        *held = (*held).max(len);
                    }
                }
            }
        }
        for (role, len) in longest {
            GpuBuffer::transient(ctx, role, len);
        }
        Ok(())
    }

    /// Refuses here, with the node named, what the device would refuse with a panic: a value
    /// or a tensor over one storage binding, except a Linear's weight, which its products bind
    /// in blocks of rows ([`Linear::weight_row_blocks`]).
    fn check_binding_sizes(
        &self,
        ctx: &GpuContext,
        shapes: &[Vec<usize>],
    ) -> Result<(), GraphError> {
        let adapter = ctx.summary();
        let limit = adapter.max_storage_binding_bytes;
        let fits = |len: usize| len <= adapter.max_binding_len();
        let bytes = |len: usize| len as u64 * 4;
        let producers = std::iter::once(("input".to_string(), "the batch of images".to_string()))
            .chain(
                self.nodes
                    .iter()
                    .map(|node| (node.name.clone(), node.op.kind())),
            );
        for ((layer, kind), shape) in producers.zip(shapes) {
            let len = shape.iter().product();
            if !fits(len) {
                return Err(GraphError::TooLarge {
                    layer,
                    kind,
                    shape: shape.clone(),
                    bytes: bytes(len),
                    limit,
                });
            }
        }
        let live_nodes = self.nodes.iter().zip(&self.live).filter(|(_, live)| **live);
        for (node, _) in live_nodes {
            let linear = node.op.layer().and_then(layer_as::<Linear>);
            for &p in &node.params {
                let param = self.params.get(p);
                let len = param.spec.len();
                if fits(len) {
                    continue;
                }
                let piece = match linear {
                    Some(linear) if linear.weight_row_blocks(adapter).is_some() => continue,
                    Some(linear) => {
                        let rows = adapter.view_alignment();
                        let block = Size(bytes(rows * linear.inputs));
                        format!("in blocks of at least {rows} rows, {block} each")
                    }
                    None => format!("whole, {}", Size(bytes(len))),
                };
                return Err(GraphError::TensorUnbindable {
                    layer: node.name.clone(),
                    kind: node.op.kind(),
                    tensor: format!("`{}` {:?}", param.name, param.spec.shape),
                    piece,
                    limit,
                });
            }
        }
        Ok(())
    }

    fn record_unit(
        &self,
        ctx: &GpuContext,
        unit: &Unit,
        io: &UnitIo,
    ) -> Result<LayerKernels, GraphError> {
        let params = |node: usize| -> Vec<_> {
            let node = &self.nodes[node];
            node.params.iter().map(|&p| self.params.get(p)).collect()
        };
        let output_shape = io.shapes[io.shapes.len() - 1];
        let kernels = match (&unit.block, &self.nodes[unit.nodes[0]].op) {
            (Some(block), _) => block.record(
                ctx,
                &BlockIo {
                    shapes: io.shapes.clone(),
                    input: io.inputs[0],
                    output: io.output,
                    grad_output: io.grad_output,
                    grad_input: io.grad_inputs[0],
                    params: unit.nodes.iter().map(|&node| params(node)).collect(),
                },
            )?,
            (None, Op::Layer(layer)) => layer.record(
                ctx,
                &LayerIo {
                    input_shape: io.shapes[0],
                    output_shape,
                    input: io.inputs[0],
                    output: io.output,
                    grad_output: io.grad_output,
                    grad_input: io.grad_inputs[0],
                    params: params(unit.nodes[0]),
                },
            )?,
            (None, Op::Join(join)) => join.record(
                ctx,
                &JoinIo {
                    input_shapes: io.shapes[..io.inputs.len()].to_vec(),
                    inputs: io.inputs.clone(),
                    output: io.output,
                    grad_output: io.grad_output,
                    grad_inputs: io.grad_inputs.clone(),
                },
            )?,
        };
        Ok(kernels)
    }
}

/// The buffers of one unit. For a join, `shapes` holds its inputs' shapes then its output's;
/// for a chain, its input's then each member's output's.
struct UnitIo<'a> {
    shapes: Vec<&'a [usize]>,
    inputs: Vec<&'a GpuBuffer>,
    output: &'a GpuBuffer,
    grad_output: &'a GpuBuffer,
    grad_inputs: Vec<Option<&'a GpuBuffer>>,
}

/// Where every value that crosses between units lives: the input and each unit's output, and
/// their gradients.
///
/// A reshape's output is its input's buffer. A gradient is written by the one unit that
/// reads the value, into the value's gradient buffer; where several read it, each writes a
/// buffer of its own and the plan sums them ([`Values::gradient_sums`]). A unit that passes
/// its gradient (a reshape, a residual add) writes nothing: its input's gradient is its
/// output's buffer. Nobody needs the model input's gradient, nor that of a value computed
/// from the input alone by units without trainable tensors.
struct Values {
    activations: Vec<GpuBuffer>,
    gradients: Vec<GpuBuffer>,
    /// Per value, its index in `activations` (values inside a chain have none: unused).
    activation_of: Vec<usize>,
    /// Per value, its index in `gradients`; `None` for the model's input and the values
    /// inside a chain.
    gradient_of: Vec<Option<usize>>,
    /// Per unit and input, the gradient buffer its backward writes (or passes its own to).
    edge_gradients: Vec<Vec<Option<usize>>>,
    /// Per value read by several units, the buffers to sum into its gradient.
    fan_in: Vec<Vec<usize>>,
    /// Per unit, the value it outputs.
    unit_output: Vec<Value>,
    /// Per unit, the values it reads.
    unit_inputs: Vec<Vec<Value>>,
}

impl Values {
    fn new(ctx: &GpuContext, model: &Model, units: &[Unit], shapes: &[Vec<usize>]) -> Self {
        let count = shapes.len();
        let len = |v: Value| shapes[v.index()].iter().product::<usize>();
        let unit_output: Vec<Value> = units
            .iter()
            .map(|unit| Value::of_node(*unit.nodes.last().expect("a unit has a node")))
            .collect();
        let unit_inputs: Vec<Vec<Value>> = units
            .iter()
            .map(|unit| model.nodes[unit.nodes[0]].inputs.clone())
            .collect();
        let passes = |u: usize| {
            units[u].block.is_none() && model.nodes[units[u].nodes[0]].op.passes_gradient()
        };
        // Activations: a reshape's output aliases its input's buffer.
        let mut activations = vec![GpuBuffer::zeros(ctx, "input", len(Value::INPUT))];
        let mut activation_of = vec![0; count];
        for (u, unit) in units.iter().enumerate() {
            let out = unit_output[u];
            let node = &model.nodes[unit.nodes[0]];
            if unit.block.is_none() && node.op.is_reshape() {
                activation_of[out.index()] = activation_of[node.inputs[0].index()];
            } else {
                let label = format!("{} output", model.nodes[*unit.nodes.last().unwrap()].name);
                activations.push(GpuBuffer::zeros(ctx, &label, len(out)));
                activation_of[out.index()] = activations.len() - 1;
            }
        }
        // Which values need a gradient: those a trainable tensor or such a value leads to.
        let mut needs_gradient = vec![false; count];
        for (u, unit) in units.iter().enumerate() {
            let trainable = unit.nodes.iter().any(|&node| {
                model.nodes[node]
                    .params
                    .iter()
                    .any(|&p| model.params.get(p).spec.trainable)
            });
            let downstream = unit_inputs[u].iter().any(|v| needs_gradient[v.index()]);
            needs_gradient[unit_output[u].index()] = trainable || downstream;
        }
        // Gradients, from the last value back, so that a unit passing its gradient finds its
        // output's already placed.
        let mut readers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); count];
        for (u, inputs) in unit_inputs.iter().enumerate() {
            for (slot, v) in inputs.iter().enumerate() {
                readers[v.index()].push((u, slot));
            }
        }
        let crossing: Vec<bool> = (0..count)
            .map(|index| index == 0 || unit_output.iter().any(|v| v.index() == index))
            .collect();
        let mut gradients = Vec::new();
        let mut gradient_of = vec![None; count];
        let mut edge_gradients: Vec<Vec<Option<usize>>> = unit_inputs
            .iter()
            .map(|inputs| vec![None; inputs.len()])
            .collect();
        let mut fan_in = vec![Vec::new(); count];
        for index in (0..count).rev() {
            let Some(producer) = Value::from_index(index).producer() else {
                continue; // the model's input
            };
            if !crossing[index] {
                continue;
            }
            let label = format!("{} output grad", model.nodes[producer].name);
            let n = shapes[index].iter().product();
            let mut new_gradient = |label: String| {
                gradients.push(GpuBuffer::zeros(ctx, &label, n));
                gradients.len() - 1
            };
            if !needs_gradient[index] {
                // Its producer has no tensor to train and nothing before it does: its backward
                // writes nothing, and its readers leave this buffer as it is.
                gradient_of[index] = Some(new_gradient(label));
                continue;
            }
            let edges = &readers[index];
            // The model's output (the loss writes its gradient), or a value nobody reads (a
            // gradient of zeros), or one that several read: a buffer of its own.
            if edges.len() != 1 {
                gradient_of[index] = Some(new_gradient(label.clone()));
            }
            for &(u, slot) in edges {
                let buffer = if passes(u) {
                    gradient_of[unit_output[u].index()]
                        .expect("a unit passing its gradient has an output that needs one")
                } else if edges.len() == 1 {
                    new_gradient(label.clone())
                } else {
                    let reader = &model.nodes[units[u].nodes[0]].name;
                    new_gradient(format!("{label} from {reader}"))
                };
                edge_gradients[u][slot] = Some(buffer);
                if edges.len() == 1 {
                    gradient_of[index] = Some(buffer);
                } else {
                    fan_in[index].push(buffer);
                }
            }
        }
        Values {
            activations,
            gradients,
            activation_of,
            gradient_of,
            edge_gradients,
            fan_in,
            unit_output,
            unit_inputs,
        }
    }

    /// The buffers of unit `u`.
    fn io<'a>(
        &'a self,
        u: usize,
        unit: &Unit,
        model: &Model,
        shapes: &'a [Vec<usize>],
    ) -> UnitIo<'a> {
        let inputs = &self.unit_inputs[u];
        let output = self.unit_output[u];
        // A chain's inner values, then its output; a join's inputs, then its output.
        let mut io_shapes: Vec<&[usize]> = inputs
            .iter()
            .map(|v| shapes[v.index()].as_slice())
            .collect();
        io_shapes.extend(
            unit.nodes
                .iter()
                .map(|&node| shapes[Value::of_node(node).index()].as_slice()),
        );
        debug_assert_eq!(model.nodes[unit.nodes[0]].inputs, *inputs);
        let gradient = |slot: Option<usize>| slot.map(|g| &self.gradients[g]);
        UnitIo {
            shapes: io_shapes,
            inputs: inputs
                .iter()
                .map(|v| &self.activations[self.activation_of[v.index()]])
                .collect(),
            output: &self.activations[self.activation_of[output.index()]],
            grad_output: gradient(self.gradient_of[output.index()])
                .expect("every unit's output has a gradient buffer"),
            grad_inputs: self.edge_gradients[u]
                .iter()
                .map(|&g| gradient(g))
                .collect(),
        }
    }

    /// The sum of the gradients that several units wrote for the output of unit `u`, if
    /// several read it.
    fn gradient_sums(
        &self,
        ctx: &GpuContext,
        u: usize,
        shapes: &[Vec<usize>],
    ) -> Result<Vec<Dispatch>, GpuError> {
        let index = self.unit_output[u].index();
        let parts: Vec<&GpuBuffer> = self.fan_in[index]
            .iter()
            .map(|&g| &self.gradients[g])
            .collect();
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let total = &self.gradients[self.gradient_of[index].expect("summed gradients are needed")];
        sum(ctx, shapes[index].iter().product(), &parts, total)
    }
}

/// A model instantiated at one batch size: its buffers and the dispatches of a step.
pub struct Plan {
    pub batch: usize,
    pub output_shape: Vec<usize>,
    forward_train: Vec<Dispatch>,
    forward_eval: Vec<Dispatch>,
    /// What `forward_eval` reads that the parameters alone determine.
    from_weights: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    /// Each with the node whose step seed it takes.
    step_hooks: Vec<(usize, StepHook)>,
    logits: usize,
    grad_logits: usize,
    /// The gradient of the last layer's bias, which the loss writes (see
    /// [`Plan::grad_logits_sum`]).
    logits_bias_grad: Option<GpuBuffer>,
    activations: Vec<GpuBuffer>,
    gradients: Vec<GpuBuffer>,
}

impl Plan {
    /// Where a batch of normalised images goes, [batch, sample_shape...].
    pub fn input(&self) -> &GpuBuffer {
        &self.activations[0]
    }

    /// The model's output, [batch, classes].
    pub fn logits(&self) -> &GpuBuffer {
        &self.activations[self.logits]
    }

    /// Where the loss writes dL/d(logits) before [`Plan::record_backward`].
    pub fn grad_logits(&self) -> &GpuBuffer {
        &self.gradients[self.grad_logits]
    }

    /// Where the loss also writes dL/d(logits) summed over the batch per class, if the last
    /// layer adds a bias per class: that sum is the bias's gradient, and the backward pass
    /// leaves it to the loss (`softmax_ce_train` writes it in the same dispatch).
    pub fn grad_logits_sum(&self) -> Option<&GpuBuffer> {
        self.logits_bias_grad.as_ref()
    }

    /// Gives every layer that draws randomness per step (dropout) its seed for this step,
    /// [`layer_seed`]`(seed, layer index)`.
    pub fn prepare_step(&self, ctx: &GpuContext, seed: u64) {
        for (layer, hook) in &self.step_hooks {
            hook(ctx, layer_seed(seed, *layer));
        }
    }

    /// The forward pass in training or inference mode, in order; in inference mode after
    /// [`Plan::from_weights_dispatches`] ran since the weights last changed.
    pub fn forward_dispatches(&self, training: bool) -> &[Dispatch] {
        if training {
            &self.forward_train
        } else {
            &self.forward_eval
        }
    }

    /// The backward pass, last layer first.
    pub fn backward_dispatches(&self) -> &[Dispatch] {
        &self.backward
    }

    /// What the inference forward reads that the parameters alone determine (Winograd's
    /// transformed weights), computed into buffers of the plan's own.
    pub fn from_weights_dispatches(&self) -> &[Dispatch] {
        &self.from_weights
    }

    /// The forward pass in training or inference mode; in inference mode, first what it
    /// derives from the weights, so it is right whatever changed them.
    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>, training: bool) {
        let derived: &[Dispatch] = if training { &[] } else { &self.from_weights };
        for dispatch in derived.iter().chain(self.forward_dispatches(training)) {
            dispatch.record(pass);
        }
    }

    /// The inference forward pass alone, for a caller that ran [`Plan::record_forward`] in
    /// inference mode on this plan since the weights last changed (the later batches of one
    /// evaluation; every call of a classifier, whose weights never change).
    pub fn record_inference_again(&self, pass: &mut wgpu::ComputePass<'_>) {
        for dispatch in &self.forward_eval {
            dispatch.record(pass);
        }
    }

    pub fn record_backward(&self, pass: &mut wgpu::ComputePass<'_>) {
        for dispatch in &self.backward {
            dispatch.record(pass);
        }
    }
}

/// The seed layer `layer` draws from in the step whose seed is `step_seed`: distinct per layer
/// and per step, so no two dropout layers share a mask.
pub fn layer_seed(step_seed: u64, layer: usize) -> u64 {
    Rng::new(step_seed ^ (layer as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}
