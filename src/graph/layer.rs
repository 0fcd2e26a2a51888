use std::any::Any;

use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::reference::batchnorm::SavedStats;
use crate::reference::elementwise::Dropout;

use super::param::{ParamSpec, Parameter};

/// One operation of a model with a single input: it states its tensors and its output shape,
/// then records its kernels once against buffers the [`Plan`](super::Plan) owns. A layer
/// knows nothing of the layers around it: fusing it with its neighbours is the business of
/// the fusion pass ([`super::Fusion`]), which composes the layers' own recorders.
pub trait Layer: Any + Send + Sync {
    /// What it is, as PyTorch prints it: `Linear(2304, 128)`.
    fn kind(&self) -> String;

    /// Its tensors in PyTorch state_dict order.
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// The output shape for an input shape, both with the batch first; `Err` says why not.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String>;

    /// Forward FLOPs at these shapes, counted as PyTorch users count them: 2 per
    /// multiply-add of a convolution or a product, nothing for the rest.
    fn flops(&self, _input_shape: &[usize], _output_shape: &[usize]) -> f64 {
        0.0
    }

    /// A reshape (Flatten) moves no data: its output and gradients alias its input's.
    fn is_reshape(&self) -> bool {
        false
    }

    /// The scratch its kernels share with other layers' ([`GpuBuffer::transient`]), by role
    /// and length, for an input of `input_shape` with or without an input gradient. The plan
    /// allocates each role once, at the longest any layer asks for, before any records.
    fn shared_scratch(
        &self,
        _ctx: &GpuContext,
        _input_shape: &[usize],
        _grad_input: bool,
    ) -> Result<Vec<(&'static str, usize)>, GpuError> {
        Ok(Vec::new())
    }

    /// Records the forward and backward kernels on its own, against `io`.
    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError>;

    /// The CPU twin of the recorded forward, built only from [`crate::reference`]. `params`
    /// are the layer's tensors in the order of [`Layer::params`]; in training a batch norm
    /// moves its running statistics there, as the GPU kernel does. `seed` is this layer's
    /// step seed, [`layer_seed`](super::layer_seed)`(step seed, node index)`.
    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        params: &mut [Vec<f32>],
        training: bool,
        seed: u64,
    ) -> CpuForward;

    /// The CPU twin of the recorded backward, after a training-mode [`Layer::cpu_forward`]
    /// that saved `saved`.
    fn cpu_backward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        saved: &CpuSaved,
        grad_output: &[f32],
        params: &[Vec<f32>],
    ) -> CpuBackward;
}

/// `layer` as the concrete layer `T`, if it is one (for fusion patterns).
pub fn layer_as<T: Layer>(layer: &dyn Layer) -> Option<&T> {
    (layer as &dyn Any).downcast_ref::<T>()
}

/// What a CPU forward keeps for its backward besides the input.
pub enum CpuSaved {
    Nothing,
    BatchNorm(SavedStats),
    MaxPoolIndices(Vec<u32>),
    DropoutMask(Dropout),
}

pub struct CpuForward {
    pub output: Vec<f32>,
    pub saved: CpuSaved,
}

impl CpuForward {
    /// An output whose backward needs nothing but the input.
    pub fn stateless(output: Vec<f32>) -> Self {
        CpuForward {
            output,
            saved: CpuSaved::Nothing,
        }
    }
}

pub struct CpuBackward {
    /// dL/d(input); computed even for the first layer, where the GPU skips it.
    pub grad_input: Vec<f32>,
    /// dL/d(tensor) in the order of [`Layer::params`], empty for non-trainable tensors.
    pub param_grads: Vec<Vec<f32>>,
}

/// The buffers a layer reads and writes, with their shapes (batch first).
pub struct LayerIo<'a> {
    pub input_shape: &'a [usize],
    pub output_shape: &'a [usize],
    pub input: &'a GpuBuffer,
    pub output: &'a GpuBuffer,
    /// dL/d(output), written by the layer after this one or by the loss.
    pub grad_output: &'a GpuBuffer,
    /// dL/d(input); `None` where nobody needs it (the model's input, and what only leads
    /// to it).
    pub grad_input: Option<&'a GpuBuffer>,
    /// The layer's tensors, in the order of [`Layer::params`].
    pub params: Vec<&'a Parameter>,
}

/// Called before each training step with that step's seed (dropout draws a new mask).
pub type StepHook = Box<dyn Fn(&GpuContext, u64) + Send + Sync>;

/// What a layer records: forward for training, forward for inference where it differs, and
/// backward, which writes the input gradient and every parameter gradient (overwriting them).
#[derive(Default)]
pub struct LayerKernels {
    pub forward: Vec<Dispatch>,
    pub forward_eval: Option<Vec<Dispatch>>,
    /// What the inference forward reads that depends on the parameters alone (Winograd's
    /// transformed weights): run before it once per evaluation (see [`Plan::record_forward`]).
    ///
    /// [`Plan::record_forward`]: super::Plan::record_forward
    pub from_weights: Vec<Dispatch>,
    pub backward: Vec<Dispatch>,
    /// Called with the step seed of the node whose randomness they draw: this layer's, or in
    /// a fused block that of the dropout it applies.
    pub step_hooks: Vec<StepHook>,
}
