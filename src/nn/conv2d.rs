use crate::gpu::{GpuContext, GpuError};
use crate::graph::{CpuBackward, CpuForward, CpuSaved, Layer, LayerIo, LayerKernels, ParamSpec};
use crate::kernels::conv2d::{Conv2dOperands, Conv2dShape};
use crate::kernels::conv2d_layer::{
    conv2d_kernels, conv2d_shared_scratch, Conv2dBuffers, Conv2dSchedule, InferenceForward,
};
use crate::reference::conv2d as twin;

use super::BiasGradient;

/// 2-d convolution on NCHW with a square kernel, as torch.nn.Conv2d (dilation 1, groups 1).
pub struct Conv2d {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    fn shape(&self, input: &[usize]) -> Result<Conv2dShape, String> {
        let &[batch, channels, height, width] = input else {
            return Err(format!(
                "expects [batch, {}, height, width]",
                self.in_channels
            ));
        };
        if channels != self.in_channels {
            return Err(format!("expects {} input channels", self.in_channels));
        }
        let shape = Conv2dShape {
            batch,
            in_channels: channels,
            out_channels: self.out_channels,
            height,
            width,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            stride: self.stride,
            padding: self.padding,
        };
        shape.check()?;
        Ok(shape)
    }

    /// The training schedule and the inference forward tuned for `shape` on this adapter.
    fn tuned(
        ctx: &GpuContext,
        shape: &Conv2dShape,
        grad_input: bool,
    ) -> Result<(Conv2dSchedule, InferenceForward), GpuError> {
        let schedule = Conv2dSchedule::tuned(ctx, shape, grad_input)?;
        Ok((schedule, InferenceForward::tuned(ctx, shape, schedule)?))
    }
}

impl Conv2d {
    /// Records the layer with its bias gradient reduced here or written by another kernel.
    pub(crate) fn record_with(
        &self,
        ctx: &GpuContext,
        io: &LayerIo,
        bias_gradient: BiasGradient,
    ) -> Result<LayerKernels, GpuError> {
        let shape = self
            .shape(io.input_shape)
            .expect("the plan checked this shape");
        let (weight, bias) = (io.params[0], io.params[1]);
        let (schedule, inference) = Self::tuned(ctx, &shape, io.grad_input.is_some())?;
        let buffers = Conv2dBuffers {
            input: io.input,
            weight: &weight.value,
            bias: &bias.value,
            output: io.output,
            grad_output: io.grad_output,
            grad_weight: weight.grad(),
            grad_bias: (bias_gradient == BiasGradient::Reduced).then(|| bias.grad()),
            grad_input: io.grad_input,
        };
        let kernels = conv2d_kernels(ctx, &shape, schedule, buffers)?;
        let operands = Conv2dOperands {
            input: io.input,
            weight: &weight.value,
            bias: Some(&bias.value),
            output: io.output,
        };
        let eval = inference.forward(ctx, &shape, operands)?;
        Ok(LayerKernels {
            forward: kernels.forward,
            forward_eval: eval.as_ref().map(|eval| eval.forward.clone()),
            from_weights: eval.map(|eval| eval.from_weights).unwrap_or_default(),
            backward: kernels.backward,
            ..Default::default()
        })
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> String {
        format!(
            "Conv2d({}, {}, kernel_size=({k}, {k}), stride=({s}, {s}), padding=({p}, {p}))",
            self.in_channels,
            self.out_channels,
            k = self.kernel,
            s = self.stride,
            p = self.padding
        )
    }

    fn flops(&self, _input_shape: &[usize], output_shape: &[usize]) -> f64 {
        let taps = self.in_channels * self.kernel * self.kernel;
        2.0 * (taps * output_shape.iter().product::<usize>()) as f64
    }

    fn params(&self) -> Vec<ParamSpec> {
        let k = self.kernel;
        let fan_in = self.in_channels * k * k;
        super::weight_and_bias(
            vec![self.out_channels, self.in_channels, k, k],
            fan_in,
            self.out_channels,
        )
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let shape = self.shape(input)?;
        Ok(vec![
            shape.batch,
            self.out_channels,
            shape.out_height(),
            shape.out_width(),
        ])
    }

    fn shared_scratch(
        &self,
        ctx: &GpuContext,
        input_shape: &[usize],
        grad_input: bool,
    ) -> Result<Vec<(&'static str, usize)>, GpuError> {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let (schedule, inference) = Self::tuned(ctx, &shape, grad_input)?;
        let mut scratch = conv2d_shared_scratch(&shape, schedule, grad_input);
        scratch.extend(inference.shared_scratch(&shape));
        Ok(scratch)
    }

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        self.record_with(ctx, io, BiasGradient::Reduced)
    }

    fn cpu_forward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        params: &mut [Vec<f32>],
        _training: bool,
        _seed: u64,
    ) -> CpuForward {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let mut output = vec![0.0; shape.output_len()];
        twin::forward(&shape, input, &params[0], Some(&params[1]), &mut output);
        CpuForward::stateless(output)
    }

    fn cpu_backward(
        &self,
        input_shape: &[usize],
        input: &[f32],
        _saved: &CpuSaved,
        grad_output: &[f32],
        params: &[Vec<f32>],
    ) -> CpuBackward {
        let shape = self
            .shape(input_shape)
            .expect("the plan checked this shape");
        let mut grad_weight = vec![0.0; shape.weight_len()];
        twin::grad_weight(&shape, grad_output, input, false, &mut grad_weight);
        let mut grad_bias = vec![0.0; self.out_channels];
        twin::grad_bias(&shape, grad_output, false, &mut grad_bias);
        let mut grad_input = vec![0.0; shape.input_len()];
        twin::grad_input(&shape, &params[0], grad_output, &mut grad_input);
        CpuBackward {
            grad_input,
            param_grads: vec![grad_weight, grad_bias],
        }
    }
}
