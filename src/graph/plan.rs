use crate::gpu::{Dispatch, GpuBuffer, GpuContext};
use crate::rng::Rng;

use super::error::GraphError;
use super::layer::{DeferredInput, EpilogueKind, EpilogueStep, Fused, Layer, LayerIo, StepHook};
use super::param::{ParameterPlan, ParameterStore};

pub(super) struct Node {
    /// State-dict prefix, e.g. `network.0` or `fc1`.
    pub(super) name: String,
    pub(super) layer: Box<dyn Layer>,
    /// Its tensors' indices in the [`ParameterStore`].
    pub(super) params: Vec<usize>,
}

/// A sequential model: its layers and their tensors, independent of the batch size.
pub struct Model {
    pub name: String,
    /// One sample's shape, e.g. [1, 48, 48].
    pub sample_shape: Vec<usize>,
    pub(super) nodes: Vec<Node>,
    pub params: ParameterStore,
}

impl Model {
    /// Creates the model's tensors with PyTorch's default initialisation drawn from `seed`, and
    /// checks every layer's shapes once.
    pub fn new(
        ctx: &GpuContext,
        name: &str,
        sample_shape: &[usize],
        layers: Vec<(String, Box<dyn Layer>)>,
        seed: u64,
    ) -> Result<Self, GraphError> {
        let mut rng = Rng::new(seed);
        let mut params = ParameterPlan::default();
        let nodes = layers
            .into_iter()
            .map(|(name, layer)| {
                let indices = params.add_layer(&name, layer.params(), &mut rng);
                Node {
                    name,
                    layer,
                    params: indices,
                }
            })
            .collect();
        let model = Model {
            name: name.to_string(),
            sample_shape: sample_shape.to_vec(),
            nodes,
            params: params.upload(ctx),
        };
        model.shapes(1)?;
        Ok(model)
    }

    /// Shapes of the input and of every layer's output at batch size `batch`.
    pub fn shapes(&self, batch: usize) -> Result<Vec<Vec<usize>>, GraphError> {
        let mut shapes = vec![[&[batch][..], &self.sample_shape].concat()];
        for node in &self.nodes {
            let input = shapes.last().expect("starts with the input shape");
            let output = node
                .layer
                .output_shape(input)
                .map_err(|why| GraphError::Shape {
                    layer: node.name.clone(),
                    kind: node.layer.kind(),
                    got: input.clone(),
                    why,
                })?;
            shapes.push(output);
        }
        Ok(shapes)
    }

    /// `Sequential(...)`-style listing, one layer a line.
    pub fn describe(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("  ({}): {}", node.name, node.layer.kind()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Which layers apply the ones after them as an epilogue ([`Layer::takes_epilogue`]): a
    /// ReLU right after, then a dropout right after that; or a dropout right after.
    fn epilogues(&self) -> Epilogues {
        let count = self.nodes.len();
        let mut epilogues = Epilogues {
            fused: vec![Fused::default(); count],
            absorbed: vec![false; count],
            seed_layer: (0..count).collect(),
        };
        let step = |i: usize| self.nodes.get(i).and_then(|n| n.layer.as_epilogue_step());
        for (i, node) in self.nodes.iter().enumerate() {
            // Where a dropout may follow: right after, or after the ReLU right after.
            let dropout_at = match (node.layer.takes_epilogue(), step(i + 1)) {
                (EpilogueKind::ReluThenDropout, Some(EpilogueStep::Relu)) => {
                    epilogues.fused[i].relu = true;
                    epilogues.absorbed[i + 1] = true;
                    i + 2
                }
                (EpilogueKind::Dropout, _) => i + 1,
                _ => continue,
            };
            if let Some(EpilogueStep::Dropout(p)) = step(dropout_at) {
                epilogues.fused[i].dropout = Some(p);
                epilogues.absorbed[dropout_at] = true;
                epilogues.seed_layer[i] = dropout_at;
            }
        }
        epilogues
    }

    /// Per layer, the store index of its tensor ([`Layer::grad_output_sum`]) whose gradient
    /// another writes as the per-channel sum of the layer's output gradient: the layer right
    /// after it where that one [`Layer::sums_grad_input`] (neither applied as another's
    /// epilogue), or for the last layer the loss (see [`Plan::grad_logits_sum`]).
    fn summed_elsewhere(&self, absorbed: &[bool]) -> Vec<Option<usize>> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let tensor = node.layer.grad_output_sum()?;
                let by_next = |next: &Node| !absorbed[i + 1] && next.layer.sums_grad_input();
                let summed = !absorbed[i]
                    && !node.layer.is_reshape()
                    && self.nodes.get(i + 1).is_none_or(by_next);
                summed.then(|| node.params[tensor])
            })
            .collect()
    }

    /// Per layer, whether the layer right after its fused ReLU applies that ReLU's backward
    /// ([`Layer::gates_relu_input`]). Not where a dropout follows the ReLU: that layer's input
    /// is then the dropout's output.
    fn relu_gated_after(&self, fused: &[Fused], absorbed: &[bool]) -> Vec<bool> {
        (0..self.nodes.len())
            .map(|i| {
                let gates = |next: &Node| !absorbed[i + 2] && next.layer.gates_relu_input();
                fused[i].relu
                    && fused[i].dropout.is_none()
                    && self.nodes.get(i + 2).is_some_and(gates)
            })
            .collect()
    }

    /// Per layer, whether its training forward leaves its output to the layer after its fused
    /// ReLU ([`Layer::defers_output`], [`Layer::reads_deferred_output`]): only where that layer
    /// also applies the ReLU's backward, so that nothing reads the unwritten output.
    fn deferred_outputs(&self, relu_gated_after: &[bool]) -> Vec<bool> {
        (0..self.nodes.len())
            .map(|i| {
                relu_gated_after[i]
                    && self.nodes[i].layer.defers_output()
                    && self.nodes[i + 2].layer.reads_deferred_output()
            })
            .collect()
    }

    /// Instantiates the model at one batch size: every activation and gradient buffer, bind
    /// group and pipeline is created here, once.
    pub fn plan(&self, ctx: &GpuContext, batch: usize) -> Result<Plan, GraphError> {
        let shapes = self.shapes(batch)?;
        let len = |shape: &Vec<usize>| shape.iter().product::<usize>();
        // Refuse here, with the layer named, what the device would refuse with a panic.
        let adapter = ctx.summary();
        let limit = adapter
            .max_storage_binding_bytes
            .min(adapter.max_buffer_bytes);
        let producers = std::iter::once(("input".to_string(), "the batch of images".to_string()))
            .chain(
                self.nodes
                    .iter()
                    .map(|node| (node.name.clone(), node.layer.kind())),
            );
        for ((layer, kind), shape) in producers.zip(&shapes) {
            let bytes = (len(shape) * 4) as u64;
            if bytes > limit {
                return Err(GraphError::TooLarge {
                    layer,
                    kind,
                    shape: shape.clone(),
                    mib: bytes.div_ceil(1 << 20),
                    limit_mib: limit >> 20,
                });
            }
        }
        let Epilogues {
            fused,
            absorbed,
            seed_layer,
        } = self.epilogues();
        // Activation i is the input of node i; the output of a reshape or of a layer another
        // applies as its epilogue aliases its input.
        let mut slot_of = vec![0usize; shapes.len()];
        let mut activations = vec![GpuBuffer::zeros(ctx, "input", len(&shapes[0]))];
        let mut gradients = vec![GpuBuffer::zeros(ctx, "grad input", len(&shapes[0]))];
        for (i, node) in self.nodes.iter().enumerate() {
            if node.layer.is_reshape() || absorbed[i] {
                slot_of[i + 1] = slot_of[i];
            } else {
                let label = format!("{} output", node.name);
                activations.push(GpuBuffer::zeros(ctx, &label, len(&shapes[i + 1])));
                gradients.push(GpuBuffer::zeros(
                    ctx,
                    &format!("{label} grad"),
                    len(&shapes[i + 1]),
                ));
                slot_of[i + 1] = activations.len() - 1;
            }
        }
        let summed_elsewhere = self.summed_elsewhere(&absorbed);
        let relu_gated_after = self.relu_gated_after(&fused, &absorbed);
        // Per channel (γ·invstd, mean, β, 0) of each deferred output.
        let output_maps: Vec<Option<GpuBuffer>> = self
            .deferred_outputs(&relu_gated_after)
            .into_iter()
            .enumerate()
            .map(|(i, deferred)| {
                let label = format!("{} output map", self.nodes[i].name);
                deferred.then(|| GpuBuffer::zeros(ctx, &label, 4 * shapes[i + 1][1]))
            })
            .collect();
        let mut forward_train = Vec::new();
        let mut forward_eval = Vec::new();
        let mut backward = Vec::new();
        let mut step_hooks = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if node.layer.is_reshape() || absorbed[i] {
                continue;
            }
            // A layer applying an epilogue writes where the last layer of it would.
            let (input, output) = (slot_of[i], slot_of[i + 1]);
            let io = LayerIo {
                input_shape: &shapes[i],
                output_shape: &shapes[i + 1],
                input: &activations[input],
                output: &activations[output],
                grad_output: &gradients[output],
                // Nobody reads the gradient of the model's input.
                grad_input: (input != 0).then(|| &gradients[input]),
                params: node.params.iter().map(|&p| self.params.get(p)).collect(),
                fused: fused[i],
                grad_input_sum: i
                    .checked_sub(1)
                    .and_then(|before| summed_elsewhere[before])
                    .map(|p| self.params.get(p).grad()),
                grad_output_summed: summed_elsewhere[i].is_some(),
                gate_grad_input: i
                    .checked_sub(2)
                    .is_some_and(|before| relu_gated_after[before]),
                grad_output_gated: relu_gated_after[i],
                output_map: output_maps[i].as_ref(),
                deferred_input: i.checked_sub(2).and_then(|before| {
                    let map = output_maps[before].as_ref()?;
                    Some(DeferredInput {
                        x: &activations[slot_of[before]],
                        map,
                    })
                }),
            };
            let kernels = node.layer.record(ctx, &io)?;
            forward_eval.extend(
                kernels
                    .forward_eval
                    .unwrap_or_else(|| kernels.forward.clone()),
            );
            forward_train.extend(kernels.forward);
            backward.push(kernels.backward);
            step_hooks.extend(
                kernels
                    .step_hooks
                    .into_iter()
                    .map(|hook| (seed_layer[i], hook)),
            );
        }
        let logits = slot_of[shapes.len() - 1];
        let logits_bias = summed_elsewhere.last().copied().flatten();
        Ok(Plan {
            batch,
            output_shape: shapes[shapes.len() - 1].clone(),
            forward_train,
            forward_eval,
            backward: backward.into_iter().rev().flatten().collect(),
            step_hooks,
            logits,
            logits_bias_grad: logits_bias.map(|p| {
                let grad = self.params.get(p).grad();
                grad.view(0, grad.len())
            }),
            activations,
            gradients,
        })
    }
}

/// Per layer: what it applies after itself, whether another layer applies it (so it records
/// nothing), and whose step seed its hooks draw.
struct Epilogues {
    fused: Vec<Fused>,
    absorbed: Vec<bool>,
    seed_layer: Vec<usize>,
}

/// A model instantiated at one batch size: its buffers and the dispatches of a step.
pub struct Plan {
    pub batch: usize,
    pub output_shape: Vec<usize>,
    forward_train: Vec<Dispatch>,
    forward_eval: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    /// Each with the index of the layer that made it.
    step_hooks: Vec<(usize, StepHook)>,
    logits: usize,
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
        &self.gradients[self.logits]
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

    /// The forward pass in training or inference mode, in order.
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

    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>, training: bool) {
        for dispatch in self.forward_dispatches(training) {
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
