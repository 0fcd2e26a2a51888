//! What a fusion pass hands the plan: the model's nodes grouped into units, each recorded as
//! one. A unit is a single node, recorded by its own layer, or a chain that a pattern claimed
//! (see [`crate::nn::fusion`]), recorded by a [`Block`] that owns the chain's inner buffers
//! and its legality rules. The plan knows only units, never which layers fuse.

use crate::gpu::{GpuBuffer, GpuContext, GpuError};

use super::layer::LayerKernels;
use super::model::Model;
use super::param::Parameter;

/// A chain of nodes recorded as one.
pub trait Block: Send + Sync {
    /// Records the chain's forward and backward. The backward writes `grad_input` and every
    /// member's parameter gradients, as the members' own backwards would in sequence.
    fn record(&self, ctx: &GpuContext, io: &BlockIo) -> Result<LayerKernels, GpuError>;
}

/// The buffers of a chain: its first member's input and last member's output; what lies
/// between is the block's own.
pub struct BlockIo<'a> {
    /// The chain's input shape, then each member's output shape (batch first).
    pub shapes: Vec<&'a [usize]>,
    pub input: &'a GpuBuffer,
    pub output: &'a GpuBuffer,
    pub grad_output: &'a GpuBuffer,
    /// dL/d(input); `None` where nobody needs it.
    pub grad_input: Option<&'a GpuBuffer>,
    /// Each member's tensors, in the order of its layer's params.
    pub params: Vec<Vec<&'a Parameter>>,
}

/// Nodes recorded as one.
pub struct Unit<'m> {
    /// One node, or a chain in which each node reads the one before and is its only reader.
    pub nodes: Vec<usize>,
    /// How a chain records; `None` for a node recorded by its own layer or join.
    pub block: Option<Box<dyn Block + 'm>>,
    /// The node whose step seed the unit's randomness draws: in a block, its dropout's.
    pub seed_node: usize,
}

impl Unit<'_> {
    /// A node recorded on its own.
    pub fn single(node: usize) -> Self {
        Unit {
            nodes: vec![node],
            block: None,
            seed_node: node,
        }
    }
}

/// The units of a whole model, in node order; nodes the output does not depend on
/// ([`Model::live`]) are in none.
pub struct Fusion<'m> {
    pub units: Vec<Unit<'m>>,
    /// The tensor whose gradient the loss writes as it sums dL/d(logits) per class (the last
    /// layer's bias: its unit records no reduction for it; see
    /// [`super::Plan::grad_logits_sum`]).
    pub loss_sums_into: Option<usize>,
}

impl Fusion<'_> {
    /// Every live node on its own: the plan a fused one is held against.
    pub fn none(model: &Model) -> Fusion<'static> {
        Fusion {
            units: (0..model.nodes.len())
                .filter(|&node| model.live[node])
                .map(Unit::single)
                .collect(),
            loss_sums_into: None,
        }
    }
}
