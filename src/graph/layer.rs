use crate::gpu::{Dispatch, GpuBuffer, GpuContext, GpuError};
use crate::reference::batchnorm::SavedStats;
use crate::reference::elementwise::Dropout;

use super::param::{ParamSpec, Parameter};

/// One layer of a sequential model. It states its tensors and its output shape, then records
/// its kernels once against buffers the [`Plan`](super::Plan) owns.
pub trait Layer: Send + Sync {
    /// What it is, as PyTorch prints it: `Linear(2304, 128)`.
    fn kind(&self) -> String;

    /// Its tensors in PyTorch state_dict order.
    fn params(&self) -> Vec<ParamSpec> {
        Vec::new()
    }

    /// The output shape for an input shape, both with the batch first; `Err` says why not.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String>;

    /// A reshape (Flatten) moves no data: its output and gradients alias its input's.
    fn is_reshape(&self) -> bool {
        false
    }

    /// What this layer would be as a step of another layer's epilogue, if it can be one.
    fn as_epilogue_step(&self) -> Option<EpilogueStep> {
        None
    }

    /// Which layers after this one its kernels can apply as an epilogue, sparing their passes
    /// over memory. The plan then records those layers as nothing, their outputs and gradients
    /// aliasing this layer's, and says in [`LayerIo::fused`] what to apply.
    fn takes_epilogue(&self) -> EpilogueKind {
        EpilogueKind::Nothing
    }

    /// The index (in [`Layer::params`]) of the tensor whose gradient is this layer's output
    /// gradient summed over every axis but the channels (axis 1), if it has one: a bias added
    /// per channel. The plan has the layer after it write that sum where that layer
    /// [`Layer::sums_grad_input`], and the loss where this layer is the last (see
    /// [`super::Plan::grad_logits_sum`]); it says so in [`LayerIo::grad_output_summed`].
    fn grad_output_sum(&self) -> Option<usize> {
        None
    }

    /// Whether this layer's backward can apply the backward of a ReLU that produced its input
    /// (as another layer's epilogue), zeroing its input gradient where that input is not
    /// positive, from what it reads anyway. The plan then has it do so
    /// ([`LayerIo::gate_grad_input`]), and the layer with the ReLU need not read its output
    /// again ([`LayerIo::grad_output_gated`]).
    fn gates_relu_input(&self) -> bool {
        false
    }

    /// Whether this layer's training forward can leave its output, through its fused ReLU, to
    /// the layer after as a per-channel map (a batch norm's statistics), writing nothing of the
    /// output's size ([`LayerIo::output_map`]).
    fn defers_output(&self) -> bool {
        false
    }

    /// Whether this layer's training forward can read such a deferred output: its input's
    /// producer's input through the map ([`LayerIo::deferred_input`]).
    fn reads_deferred_output(&self) -> bool {
        false
    }

    /// Whether this layer's backward can also write its input gradient summed per channel
    /// (to [`LayerIo::grad_input_sum`]), sparing the layer before a reduction of its own.
    fn sums_grad_input(&self) -> bool {
        false
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError>;

    /// The CPU twin of the recorded forward, built only from [`crate::reference`]. `params`
    /// are the layer's tensors in the order of [`Layer::params`]; in training a batch norm
    /// moves its running statistics there, as the GPU kernel does. `seed` is this layer's
    /// step seed, [`layer_seed`](super::layer_seed)`(step seed, layer index)`.
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

/// A layer another may apply to its output (see [`Layer::takes_epilogue`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EpilogueStep {
    Relu,
    /// A dropout with this p.
    Dropout(f32),
}

/// The layers after it that a layer can apply itself (see [`Layer::takes_epilogue`]). Either
/// way its backward pass needs no mask of the dropout's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpilogueKind {
    Nothing,
    /// A ReLU, then a dropout if one follows: the backward pass reads the ReLU's gate off the
    /// stored output, and since a survivor of a positive value is positive, the mask with it.
    ReluThenDropout,
    /// A dropout: the layer marks what it dropped where its backward pass looks (a max pool
    /// gives a dropped window no winner).
    Dropout,
}

/// The layers after a layer that it applies itself, as its [`EpilogueKind`] allows: a ReLU
/// and a dropout with its p. Their outputs and gradients are this layer's `output` and
/// `grad_output`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fused {
    pub relu: bool,
    pub dropout: Option<f32>,
}

/// The buffers a layer reads and writes, with their shapes (batch first).
pub struct LayerIo<'a> {
    pub input_shape: &'a [usize],
    pub output_shape: &'a [usize],
    pub input: &'a GpuBuffer,
    pub output: &'a GpuBuffer,
    /// dL/d(output), written by the layer after this one or by the loss.
    pub grad_output: &'a GpuBuffer,
    /// dL/d(input); `None` for the first layer, whose input gradient nobody needs.
    pub grad_input: Option<&'a GpuBuffer>,
    /// The layer's tensors, in the order of [`Layer::params`].
    pub params: Vec<&'a Parameter>,
    /// The layers after this one that it applies: `output` holds what the last of them would
    /// output and `grad_output` is the gradient of that.
    pub fused: Fused,
    /// Where backward also writes `grad_input` summed per channel (see
    /// [`Layer::sums_grad_input`]): the bias gradient of the layer before.
    pub grad_input_sum: Option<&'a GpuBuffer>,
    /// The layer after this one, or the loss after the last, writes `grad_output` summed per
    /// channel into the gradient of the tensor [`Layer::grad_output_sum`] names; backward
    /// records no reduction for it.
    pub grad_output_summed: bool,
    /// The input is the output of a ReLU that the layer before applies as its epilogue, and
    /// backward applies that ReLU's backward to `grad_input` (see [`Layer::gates_relu_input`]).
    pub gate_grad_input: bool,
    /// The layer after this one applied the backward of this layer's fused ReLU to
    /// `grad_output` already: backward takes it as the gradient of the ReLU's input.
    pub grad_output_gated: bool,
    /// Where the training forward writes, instead of `output`, the per-channel map the layer
    /// after applies as it reads (see [`Layer::defers_output`]); evaluation still writes
    /// `output`.
    pub output_map: Option<&'a GpuBuffer>,
    /// Where the training forward's `input` was never written (see
    /// [`Layer::reads_deferred_output`]): what to read instead.
    pub deferred_input: Option<DeferredInput<'a>>,
}

/// An output left unwritten in training: its layer's input and the map that gives the output
/// from it (a batch norm's: [`crate::kernels::batchnorm::TrainOutput::Deferred`]).
#[derive(Clone, Copy)]
pub struct DeferredInput<'a> {
    pub x: &'a GpuBuffer,
    pub map: &'a GpuBuffer,
}

/// Called before each training step with that step's seed (dropout draws a new mask).
pub type StepHook = Box<dyn Fn(&GpuContext, u64) + Send + Sync>;

/// What a layer records: forward for training, forward for inference where it differs, and
/// backward, which writes the input gradient and every parameter gradient (overwriting them).
#[derive(Default)]
pub struct LayerKernels {
    pub forward: Vec<Dispatch>,
    pub forward_eval: Option<Vec<Dispatch>>,
    pub backward: Vec<Dispatch>,
    /// Called with the step seed of the layer whose randomness they draw: this layer's, or that
    /// of the dropout it applies (see [`Fused`]).
    pub step_hooks: Vec<StepHook>,
}
