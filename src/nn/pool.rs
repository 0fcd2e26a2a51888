use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::graph::{CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels, StepHook};
use crate::kernels::pool::{
    avg_pool2d, avg_pool2d_backward, global_avg_pool, global_avg_pool_backward, max_pool2d,
    max_pool2d_backward, reseed_max_pool2d, GlobalPoolShape, MaxPoolBackwardBuffers,
    MaxPoolForwardBuffers, Pool2dShape, PoolLayout,
};
use crate::reference::elementwise::Dropout;
use crate::reference::pool as twin;

/// A square pooling window as torch.nn.MaxPool2d and AvgPool2d take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: usize,
    pub stride: usize,
    /// On every side: −∞ to a max pool, zeros counted in an average's divisor.
    pub padding: usize,
    /// Round the output size up, keeping a last window that starts inside the input or the
    /// left padding.
    pub ceil_mode: bool,
}

impl Window {
    /// `kernel`×`kernel` windows sliding by `stride`, no padding, floor mode.
    pub fn new(kernel: usize, stride: usize) -> Self {
        Window {
            kernel,
            stride,
            padding: 0,
            ceil_mode: false,
        }
    }

    fn shape(&self, input: &[usize]) -> Result<Pool2dShape, String> {
        let &[batch, channels, height, width] = input else {
            return Err("expects [batch, channels, height, width]".into());
        };
        let shape = Pool2dShape {
            padding: self.padding,
            ceil_mode: self.ceil_mode,
            ..Pool2dShape::new(batch, channels, height, width, self.kernel, self.stride)
        };
        shape.check()?;
        Ok(shape)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let shape = self.shape(input)?;
        Ok(vec![
            shape.batch,
            shape.channels,
            shape.out_height(),
            shape.out_width(),
        ])
    }

    /// As PyTorch prints it, for a pool of this `name`.
    fn kind(&self, name: &str) -> String {
        let ceil = if self.ceil_mode { "True" } else { "False" };
        format!(
            "{name}(kernel_size={}, stride={}, padding={}, ceil_mode={ceil})",
            self.kernel, self.stride, self.padding
        )
    }
}

/// Max over windows, as torch.nn.MaxPool2d (dilation 1).
pub struct MaxPool2d {
    pub window: Window,
}

impl MaxPool2d {
    fn shape(&self, input: &[usize]) -> Result<Pool2dShape, String> {
        self.window.shape(input)
    }
}

/// What a max pool applies on behalf of the layers around it, as a fused block arranges (see
/// [`super::fusion`]); the default is the layer alone.
#[derive(Clone, Copy, Default)]
pub(crate) struct MaxPoolFusion<'a> {
    /// A dropout with this p after it: a dropped window is written as 0 with no winner.
    pub dropout: Option<f32>,
    /// Where its input was never written in training (a batch norm's deferred output): what
    /// to read instead.
    pub deferred_input: Option<DeferredInput<'a>>,
    /// Its input is the output of a ReLU (a batch norm's fused one) whose backward it applies:
    /// its output is positive exactly where that ReLU passed the winner's gradient.
    pub gate_relu: bool,
}

/// An output left unwritten in training: its layer's input and the map that gives the output
/// from it (a batch norm's: [`crate::kernels::batchnorm::TrainOutput::Deferred`]).
#[derive(Clone, Copy)]
pub(crate) struct DeferredInput<'a> {
    pub x: &'a GpuBuffer,
    pub map: &'a GpuBuffer,
}

impl MaxPool2d {
    /// Records the layer with what a fused block has it apply (see [`MaxPoolFusion`]).
    pub(crate) fn record_fused(
        &self,
        ctx: &GpuContext,
        io: &LayerIo,
        fusion: MaxPoolFusion,
    ) -> Result<LayerKernels, GpuError> {
        let shape = self
            .shape(io.input_shape)
            .expect("the plan checked this shape");
        let indices = GpuBuffer::zeros(ctx, "max pool argmax", shape.output_len());
        let layout = PoolLayout::for_adapter(ctx);
        // The dropout it applies, with a step's seed (a placeholder 0 until the first step's
        // hook); inference pools without it.
        let p = fusion.dropout;
        let dropout = p.map(|p| Dropout::new(p, 0));
        let pool = |dropout: Option<&Dropout>, deferred: Option<DeferredInput>| {
            let buffers = MaxPoolForwardBuffers {
                x: deferred.map_or(io.input, |d| d.x),
                y: io.output,
                indices: &indices,
                batchnorm_map: deferred.map(|d| d.map),
            };
            max_pool2d(ctx, &shape, layout, dropout, buffers)
        };
        let forward = pool(dropout.as_ref(), fusion.deferred_input)?;
        // Inference has no dropout, and its batch norm writes its output.
        let differs = p.is_some() || fusion.deferred_input.is_some();
        let forward_eval = differs.then(|| pool(None, None)).transpose()?;
        let backward = match io.grad_input {
            Some(dx) => vec![max_pool2d_backward(
                ctx,
                &shape,
                layout,
                dropout.as_ref(),
                MaxPoolBackwardBuffers {
                    dy: io.grad_output,
                    indices: &indices,
                    dx,
                    relu_gate: fusion.gate_relu.then_some(io.output),
                },
            )?],
            None => Vec::new(),
        };
        let mut step_hooks: Vec<StepHook> = Vec::new();
        if let Some(p) = p {
            let dispatch = forward.clone();
            step_hooks.push(Box::new(move |ctx, seed| {
                reseed_max_pool2d(ctx, &dispatch, &shape, &Dropout::new(p, seed));
            }));
        }
        Ok(LayerKernels {
            forward: vec![forward],
            forward_eval: forward_eval.map(|pool| vec![pool]),
            backward,
            step_hooks,
            ..Default::default()
        })
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> String {
        self.window.kind("MaxPool2d")
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.window.output_shape(input)
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        self.record_fused(ctx, io, MaxPoolFusion::default())
    }

    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let mut output = vec![0.0; shape.output_len()];
        let mut indices = vec![0; shape.output_len()];
        twin::max_pool2d(&shape, input, &mut output, &mut indices);
        CpuForward {
            output,
            saved: CpuSaved::MaxPoolIndices(indices),
        }
    }

    fn cpu_backward(
        &self,
        input_shape: &[usize],
        _input: &[f32],
        saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let CpuSaved::MaxPoolIndices(indices) = saved else {
            unreachable!("MaxPool2d's CPU forward saves its argmax");
        };
        let mut grad_input = vec![0.0; shape.input_len()];
        twin::max_pool2d_backward(&shape, grad_output, indices, &mut grad_input);
        CpuBackward {
            grad_input,
            param_grads: Vec::new(),
        }
    }
}

/// Mean over each channel's plane, [N, C, H, W] → [N, C] (adaptive_avg_pool2d to 1, flattened).
pub struct GlobalAvgPool;

impl GlobalAvgPool {
    fn shape(input: &[usize]) -> GlobalPoolShape {
        let &[batch, channels, height, width] = input else {
            unreachable!("the plan checked this shape");
        };
        GlobalPoolShape {
            batch,
            channels,
            height,
            width,
        }
    }
}

impl Layer for GlobalAvgPool {
    fn kind(&self) -> String {
        "GlobalAvgPool()".into()
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        match input {
            [batch, channels, _, _] => Ok(vec![*batch, *channels]),
            _ => Err("expects [batch, channels, height, width]".into()),
        }
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        let shape = Self::shape(io.input_shape);
        let backward = match io.grad_input {
            Some(dx) => vec![global_avg_pool_backward(ctx, &shape, io.grad_output, dx)?],
            None => Vec::new(),
        };
        Ok(LayerKernels {
            forward: vec![global_avg_pool(ctx, &shape, io.input, io.output)?],
            backward,
            ..Default::default()
        })
    }

    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        let shape = Self::shape(input_shape);
        let mut output = vec![0.0; shape.planes()];
        twin::global_avg_pool(&shape, input, &mut output);
        CpuForward::stateless(output)
    }

    fn cpu_backward(
        &self,
        input_shape: &[usize],
        _input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        let shape = Self::shape(input_shape);
        let mut grad_input = vec![0.0; shape.input_len()];
        twin::global_avg_pool_backward(&shape, grad_output, &mut grad_input);
        CpuBackward {
            grad_input,
            param_grads: Vec::new(),
        }
    }
}

/// Mean over windows, as torch.nn.AvgPool2d (count_include_pad: padding counts as zeros in
/// the divisor, always k²).
pub struct AvgPool2d {
    pub window: Window,
}

impl Layer for AvgPool2d {
    fn kind(&self) -> String {
        self.window.kind("AvgPool2d")
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        self.window.output_shape(input)
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        let shape = self
            .window
            .shape(io.input_shape)
            .expect("the plan checked this shape");
        let backward = match io.grad_input {
            Some(dx) => vec![avg_pool2d_backward(
                ctx,
                &shape,
                PoolLayout::for_adapter(ctx),
                io.grad_output,
                dx,
            )?],
            None => Vec::new(),
        };
        Ok(LayerKernels {
            forward: vec![avg_pool2d(ctx, &shape, io.input, io.output)?],
            backward,
            ..Default::default()
        })
    }

    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        _params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        let shape = self
            .window
            .shape(input_shape)
            .expect("the plan checked this shape");
        let mut output = vec![0.0; shape.output_len()];
        twin::avg_pool2d(&shape, input, &mut output);
        CpuForward::stateless(output)
    }

    fn cpu_backward(
        &self,
        input_shape: &[usize],
        _input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        _params: &[Vec<f32>],
    ) -> CpuBackward {
        let shape = self
            .window
            .shape(input_shape)
            .expect("the plan checked this shape");
        let mut grad_input = vec![0.0; shape.input_len()];
        twin::avg_pool2d_backward(&shape, grad_output, &mut grad_input);
        CpuBackward {
            grad_input,
            param_grads: Vec::new(),
        }
    }
}
