//! The fusion pass: patterns that claim chains of a model's nodes, and the blocks that record
//! each chain as one, composing the members' own recorders with the options only a chain can
//! give them. The layers know nothing of it; every rule about who may fuse with whom is here.
//!
//! Patterns, tried at each node not yet claimed, in node order:
//! - **normalised**: [Linear | Conv2d] → BatchNorm → [ReLU → [Dropout | MaxPool2d → [Dropout]]].
//!   Batch norm applies the ReLU and dropout as its epilogue; as it sums its input gradient
//!   anyway, it writes the bias gradient of the layer before; a max pool after the ReLU applies
//!   the ReLU's backward (its output is positive exactly where the ReLU passed the winner's
//!   gradient), so batch norm's backward reads no output, and then reads batch norm's input
//!   through batch norm's per-channel map, so the training forward writes no output at all
//!   (where batch norm's kernel can: [`can_defer_output`]). The pool applies the dropout after
//!   it.
//! - **pooled**: MaxPool2d → Dropout, the dropout applied by the pool.
//! - **head**: the Linear that outputs the logits, whose bias gradient the loss writes as it
//!   sums dL/d(logits) per class.
//!
//! A chain continues from a node only to its output's one reader, which reads nothing else;
//! the model's output ends a chain.

use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::graph::{
    layer_as, Block, BlockIo, Fusion, Layer, LayerIo, LayerKernels, Model, Unit, Value,
};
use crate::kernels::batchnorm::can_defer_output;

use super::batchnorm::BatchNormFusion;
use super::pool::{DeferredInput, MaxPoolFusion};
use super::{BatchNorm, BiasGradient, Conv2d, Dropout, Linear, MaxPool2d, Relu};

/// Groups `model`'s nodes into units by the patterns above.
pub fn fuse(model: &Model) -> Fusion<'_> {
    let chains = Chains::new(model);
    // A node the output does not depend on is never run.
    let mut claimed: Vec<bool> = model.live.iter().map(|live| !live).collect();
    let mut units = Vec::new();
    for node in 0..model.nodes.len() {
        if claimed[node] {
            continue;
        }
        let unit = normalised(&chains, node)
            .or_else(|| pooled(&chains, node))
            .unwrap_or_else(|| Unit::single(node));
        for &member in &unit.nodes {
            claimed[member] = true;
        }
        units.push(unit);
    }
    let mut loss_sums_into = None;
    if let Some(last) = units.last_mut() {
        if let Some(head) = head(&chains, last) {
            loss_sums_into = Some(model.nodes[last.nodes[0]].params[1]);
            last.block = Some(Box::new(head));
        }
    }
    Fusion {
        units,
        loss_sums_into,
    }
}

/// The model seen as chains: which node follows which.
struct Chains<'m> {
    model: &'m Model,
    /// Per node, the node a chain may continue to.
    next: Vec<Option<usize>>,
}

impl<'m> Chains<'m> {
    fn new(model: &'m Model) -> Self {
        let readers = model.consumers();
        let next = (0..model.nodes.len())
            .map(
                |node| match readers[Value::of_node(node).index()].as_slice() {
                    &[reader] if model.nodes[reader].inputs.len() == 1 => Some(reader),
                    _ => None,
                },
            )
            .collect();
        Chains { model, next }
    }

    /// Node `node`'s layer as a `T`, if it is one.
    fn layer<T: Layer>(&self, node: usize) -> Option<&'m T> {
        layer_as(self.model.nodes[node].op.layer()?)
    }

    /// The node after `node`, if it is a `T`.
    fn next<T: Layer>(&self, node: usize) -> Option<(usize, &'m T)> {
        let next = self.next[node]?;
        Some((next, self.layer(next)?))
    }
}

/// A layer that adds a bias per channel before a batch norm.
#[derive(Clone, Copy)]
enum Affine<'m> {
    Linear(&'m Linear),
    Conv2d(&'m Conv2d),
}

impl Affine<'_> {
    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        // Batch norm writes the bias gradient as it sums its input gradient.
        let elsewhere = BiasGradient::WrittenElsewhere;
        match self {
            Affine::Linear(linear) => linear.record_with(ctx, io, elsewhere),
            Affine::Conv2d(conv) => conv.record_with(ctx, io, elsewhere),
        }
    }
}

/// What follows a batch norm's ReLU in a chain.
#[derive(Clone, Copy)]
enum AfterRelu<'m> {
    Nothing,
    Dropout(f32),
    MaxPool(&'m MaxPool2d, Option<f32>),
}

/// [Affine] → BatchNorm → [ReLU → [Dropout | MaxPool2d → [Dropout]]].
struct Normalised<'m> {
    affine: Option<Affine<'m>>,
    batch_norm: &'m BatchNorm,
    relu: bool,
    after_relu: AfterRelu<'m>,
}

fn normalised<'m>(chains: &Chains<'m>, node: usize) -> Option<Unit<'m>> {
    let affine = chains
        .layer::<Linear>(node)
        .map(Affine::Linear)
        .or_else(|| chains.layer::<Conv2d>(node).map(Affine::Conv2d));
    let (batch_norm_node, batch_norm) = match affine {
        Some(_) => chains.next::<BatchNorm>(node)?,
        None => (node, chains.layer::<BatchNorm>(node)?),
    };
    let mut nodes: Vec<usize> = affine.map(|_| node).into_iter().collect();
    nodes.push(batch_norm_node);
    let mut seed_node = node;
    let mut after_relu = AfterRelu::Nothing;
    let relu = chains.next::<Relu>(batch_norm_node);
    if let Some((relu_node, _)) = relu {
        nodes.push(relu_node);
        if let Some((dropout_node, dropout)) = chains.next::<Dropout>(relu_node) {
            nodes.push(dropout_node);
            seed_node = dropout_node;
            after_relu = AfterRelu::Dropout(dropout.p);
        } else if let Some((pool_node, pool)) = chains.next::<MaxPool2d>(relu_node) {
            nodes.push(pool_node);
            let dropout = chains.next::<Dropout>(pool_node);
            if let Some((dropout_node, _)) = dropout {
                nodes.push(dropout_node);
                seed_node = dropout_node;
            }
            after_relu = AfterRelu::MaxPool(pool, dropout.map(|(_, d)| d.p));
        }
    }
    if nodes.len() == 1 {
        return None; // a batch norm alone
    }
    let block = Normalised {
        affine,
        batch_norm,
        relu: relu.is_some(),
        after_relu,
    };
    Some(Unit {
        nodes,
        block: Some(Box::new(block)),
        seed_node,
    })
}

impl Block for Normalised<'_> {
    fn record(&self, ctx: &GpuContext, io: &BlockIo) -> Result<LayerKernels, GpuError> {
        let zeros = |what: &str, shape: &[usize]| {
            GpuBuffer::zeros(ctx, what, shape.iter().product::<usize>())
        };
        let mut members = Vec::new();
        // The affine layer's output and its gradient are the block's own.
        let at = self.affine.is_some() as usize; // batch norm's position in the chain
        let affine_output = self.affine.map(|_| {
            (
                zeros("affine output", io.shapes[1]),
                zeros("affine output grad", io.shapes[1]),
            )
        });
        let (x, dx) = match &affine_output {
            Some((output, grad)) => (output, Some(grad)),
            None => (io.input, io.grad_input),
        };
        if let (Some(affine), Some((output, grad))) = (self.affine, &affine_output) {
            members.push(affine.record(
                ctx,
                &LayerIo {
                    input_shape: io.shapes[0],
                    output_shape: io.shapes[1],
                    input: io.input,
                    output,
                    grad_output: grad,
                    grad_input: io.grad_input,
                    params: io.params[0].clone(),
                },
            )?);
        }
        let shape = io.shapes[at + 1];
        let batch_norm_io = |output, grad_output| LayerIo {
            input_shape: io.shapes[at],
            output_shape: shape,
            input: x,
            output,
            grad_output,
            grad_input: dx,
            params: io.params[at].clone(),
        };
        let fusion = BatchNormFusion {
            relu: self.relu,
            // The bias gradient of the affine layer.
            dx_sum: self.affine.map(|_| io.params[0][1].grad()),
            ..BatchNormFusion::default()
        };
        match self.after_relu {
            AfterRelu::Nothing | AfterRelu::Dropout(_) => {
                let dropout = match self.after_relu {
                    AfterRelu::Dropout(p) => Some(p),
                    _ => None,
                };
                members.push(self.batch_norm.record_fused(
                    ctx,
                    &batch_norm_io(io.output, io.grad_output),
                    BatchNormFusion { dropout, ..fusion },
                )?);
            }
            AfterRelu::MaxPool(pool, dropout) => {
                // Batch norm's output (evaluation writes it; training only where it cannot
                // defer it) and its gradient, which the pool writes with the ReLU's applied.
                let (output, grad) = (
                    zeros("batch norm output", shape),
                    zeros("batch norm output grad", shape),
                );
                let statistics = self
                    .batch_norm
                    .shape(shape)
                    .expect("the plan checked this shape");
                let map = can_defer_output(&statistics).then(|| {
                    GpuBuffer::zeros(ctx, "batch norm output map", 4 * statistics.channels)
                });
                members.push(self.batch_norm.record_fused(
                    ctx,
                    &batch_norm_io(&output, &grad),
                    BatchNormFusion {
                        output_map: map.as_ref(),
                        grad_output_gated: true,
                        ..fusion
                    },
                )?);
                members.push(pool.record_fused(
                    ctx,
                    &LayerIo {
                        input_shape: shape,
                        output_shape: io.shapes[io.shapes.len() - 1],
                        input: &output,
                        output: io.output,
                        grad_output: io.grad_output,
                        grad_input: Some(&grad),
                        params: Vec::new(),
                    },
                    MaxPoolFusion {
                        dropout,
                        deferred_input: map.as_ref().map(|map| DeferredInput { x, map }),
                        gate_relu: true,
                    },
                )?);
            }
        }
        Ok(in_sequence(members))
    }
}

/// MaxPool2d → Dropout.
struct Pooled<'m> {
    pool: &'m MaxPool2d,
    dropout: f32,
}

fn pooled<'m>(chains: &Chains<'m>, node: usize) -> Option<Unit<'m>> {
    let pool = chains.layer::<MaxPool2d>(node)?;
    let (dropout_node, dropout) = chains.next::<Dropout>(node)?;
    Some(Unit {
        nodes: vec![node, dropout_node],
        block: Some(Box::new(Pooled {
            pool,
            dropout: dropout.p,
        })),
        seed_node: dropout_node,
    })
}

impl Block for Pooled<'_> {
    fn record(&self, ctx: &GpuContext, io: &BlockIo) -> Result<LayerKernels, GpuError> {
        let fusion = MaxPoolFusion {
            dropout: Some(self.dropout),
            ..MaxPoolFusion::default()
        };
        self.pool.record_fused(ctx, &single(io), fusion)
    }
}

/// The Linear that outputs the logits, its bias gradient left to the loss.
struct Head<'m>(&'m Linear);

/// The last unit as a head, if it is a Linear on its own.
fn head<'m>(chains: &Chains<'m>, last: &Unit) -> Option<Head<'m>> {
    match (&last.block, last.nodes.as_slice()) {
        (None, &[node]) => chains.layer::<Linear>(node).map(Head),
        _ => None,
    }
}

impl Block for Head<'_> {
    fn record(&self, ctx: &GpuContext, io: &BlockIo) -> Result<LayerKernels, GpuError> {
        self.0
            .record_with(ctx, &single(io), BiasGradient::WrittenElsewhere)
    }
}

/// The buffers of a block of one layer.
fn single<'a>(io: &BlockIo<'a>) -> LayerIo<'a> {
    LayerIo {
        input_shape: io.shapes[0],
        output_shape: io.shapes[io.shapes.len() - 1],
        input: io.input,
        output: io.output,
        grad_output: io.grad_output,
        grad_input: io.grad_input,
        params: io.params[0].clone(),
    }
}

/// Members' kernels as one: forwards in order, backwards in reverse.
fn in_sequence(members: Vec<LayerKernels>) -> LayerKernels {
    let mut chain = LayerKernels {
        forward_eval: Some(Vec::new()),
        ..LayerKernels::default()
    };
    let mut backwards = Vec::new();
    for member in members {
        let eval = member
            .forward_eval
            .unwrap_or_else(|| member.forward.clone());
        chain.forward_eval.as_mut().expect("set above").extend(eval);
        chain.forward.extend(member.forward);
        chain.from_weights.extend(member.from_weights);
        backwards.push(member.backward);
        chain.step_hooks.extend(member.step_hooks);
    }
    chain.backward = backwards.into_iter().rev().flatten().collect();
    chain
}
