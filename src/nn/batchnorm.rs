use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::graph::{
    CpuBackward, CpuForward, CpuSaved, Init, Layer, LayerIo, LayerKernels, ParamSpec, StepHook,
};
use crate::kernels::batchnorm::{
    backward, eval_forward, reseed_train_forward, train_forward, BackwardBuffers, BatchNormConfig,
    BatchNormShape, Epilogue, EvalForwardBuffers, TrainForwardBuffers, TrainOutput,
};
use crate::reference::batchnorm::{self as twin, RunningStats};
use crate::reference::elementwise::Dropout;

/// Batch normalisation per feature of [N, F] (BatchNorm1d) or per channel of [N, C, H, W]
/// (BatchNorm2d), with PyTorch's defaults: momentum 0.1, eps 1e-5, γ = 1, β = 0.
pub struct BatchNorm {
    pub features: usize,
    pub config: BatchNormConfig,
}

impl BatchNorm {
    pub fn new(features: usize) -> Self {
        BatchNorm {
            features,
            config: BatchNormConfig::default(),
        }
    }

    pub(crate) fn shape(&self, input: &[usize]) -> Result<BatchNormShape, String> {
        match input {
            [batch, features, spatial @ ..] if *features == self.features && spatial.len() <= 2 => {
                Ok(BatchNormShape {
                    batch: *batch,
                    channels: *features,
                    spatial: spatial.iter().product(),
                })
            }
            _ => Err(format!(
                "expects [batch, {f}] or [batch, {f}, height, width]",
                f = self.features
            )),
        }
    }
}

/// What a batch norm applies or leaves on behalf of the layers around it, as a fused block
/// arranges (see [`super::fusion`]); the default is the layer alone.
#[derive(Clone, Copy, Default)]
pub(crate) struct BatchNormFusion<'a> {
    /// A ReLU after it.
    pub relu: bool,
    /// A dropout with this p after the ReLU.
    pub dropout: Option<f32>,
    /// Where the training forward writes, instead of its output, the per-channel map that
    /// gives it ([`TrainOutput::Deferred`]) for the max pool after to apply as it reads.
    pub output_map: Option<&'a GpuBuffer>,
    /// Where backward also writes dx summed per channel: the bias gradient of the layer before.
    pub dx_sum: Option<&'a GpuBuffer>,
    /// The layer after applied the fused ReLU's backward to `grad_output` already.
    pub grad_output_gated: bool,
}

impl BatchNorm {
    /// Records the layer with what a fused block has it apply or leave (see
    /// [`BatchNormFusion`]).
    pub(crate) fn record_fused(
        &self,
        ctx: &GpuContext,
        io: &LayerIo,
        fusion: BatchNormFusion,
    ) -> Result<LayerKernels, GpuError> {
        let shape = self
            .shape(io.input_shape)
            .expect("the plan checked this shape");
        let [gamma, beta, running_mean, running_var] = io.params[..] else {
            unreachable!("BatchNorm declares four tensors");
        };
        let saved_mean = GpuBuffer::zeros(ctx, "batchnorm saved mean", self.features);
        let saved_invstd = GpuBuffer::zeros(ctx, "batchnorm saved invstd", self.features);
        // The layers this one applies, with a step's dropout seed (a placeholder 0 until the
        // first step's hook).
        let (relu, dropout) = (fusion.relu, fusion.dropout);
        let epilogue = move |seed| Epilogue {
            relu,
            dropout: dropout.map(|p| Dropout::new(p, seed)),
        };
        let forward = train_forward(
            ctx,
            &shape,
            &self.config,
            epilogue(0),
            TrainForwardBuffers {
                x: io.input,
                gamma: &gamma.value,
                beta: &beta.value,
                y: match fusion.output_map {
                    Some(map) => TrainOutput::Deferred(map),
                    None => TrainOutput::Values(io.output),
                },
                saved_mean: &saved_mean,
                saved_invstd: &saved_invstd,
                running_mean: &running_mean.value,
                running_var: &running_var.value,
            },
        )?;
        let forward_eval = eval_forward(
            ctx,
            &shape,
            &self.config,
            epilogue(0),
            EvalForwardBuffers {
                x: io.input,
                gamma: &gamma.value,
                beta: &beta.value,
                running_mean: &running_mean.value,
                running_var: &running_var.value,
                y: io.output,
            },
        )?;
        // The kernel always writes dx; the first layer's goes to a scratch buffer.
        let scratch;
        let dx = match io.grad_input {
            Some(grad_input) => grad_input,
            None => {
                scratch = GpuBuffer::zeros(ctx, "unused input gradient", shape.len());
                &scratch
            }
        };
        // Where the layer after applied the ReLU's backward, backward takes none.
        let backward_epilogue = if fusion.grad_output_gated {
            Epilogue::NONE
        } else {
            epilogue(0)
        };
        let backward = backward(
            ctx,
            &shape,
            backward_epilogue,
            BackwardBuffers {
                x: io.input,
                y: io.output,
                dy: io.grad_output,
                saved_mean: &saved_mean,
                saved_invstd: &saved_invstd,
                gamma: &gamma.value,
                dx,
                dgamma: gamma.grad(),
                dbeta: beta.grad(),
                dx_sum: fusion.dx_sum,
            },
        )?;
        let mut step_hooks: Vec<StepHook> = Vec::new();
        if dropout.is_some() {
            let (dispatch, config) = (forward.clone(), self.config);
            step_hooks.push(Box::new(move |ctx, seed| {
                reseed_train_forward(ctx, &dispatch, &shape, &config, epilogue(seed));
            }));
        }
        Ok(LayerKernels {
            forward: vec![forward],
            forward_eval: Some(vec![forward_eval]),
            backward: vec![backward],
            step_hooks,
            ..Default::default()
        })
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> String {
        format!(
            "BatchNorm(features={}, eps={}, momentum={})",
            self.features, self.config.eps, self.config.momentum
        )
    }

    fn params(&self) -> Vec<ParamSpec> {
        let tensor = |name, init, trainable| ParamSpec {
            name,
            shape: vec![self.features],
            init: Init::Constant(init),
            trainable,
        };
        vec![
            tensor("weight", 1.0, true),
            tensor("bias", 0.0, true),
            tensor("running_mean", 0.0, false),
            tensor("running_var", 1.0, false),
        ]
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.shape(input).map(|_| input.to_vec())
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        self.record_fused(ctx, io, BatchNormFusion::default())
    }

    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        params: &mut [Vec<f32>],
        training: bool,
        _seed: u64,
    ) -> CpuForward {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let [gamma, beta, running_mean, running_var] = params else {
            unreachable!("BatchNorm declares four tensors");
        };
        let mut running = RunningStats {
            mean: std::mem::take(running_mean),
            var: std::mem::take(running_var),
        };
        let forward = if training {
            let forward =
                twin::train_forward(&shape, &self.config, input, gamma, beta, &mut running);
            CpuForward {
                output: forward.y,
                saved: CpuSaved::BatchNorm(forward.saved),
            }
        } else {
            let y = twin::eval_forward(&shape, &self.config, input, gamma, beta, &running);
            CpuForward::stateless(y)
        };
        (*running_mean, *running_var) = (running.mean, running.var);
        forward
    }

    fn cpu_backward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        saved: &CpuSaved,
        grad_output: &[f32],
        params: &[Vec<f32>],
    ) -> CpuBackward {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let CpuSaved::BatchNorm(saved) = saved else {
            unreachable!("BatchNorm's training forward saves its statistics");
        };
        let grads = twin::backward(&shape, input, grad_output, saved, &params[0]);
        CpuBackward {
            grad_input: grads.dx,
            // The running statistics have no gradient.
            param_grads: vec![grads.dgamma, grads.dbeta, Vec::new(), Vec::new()],
        }
    }
}
