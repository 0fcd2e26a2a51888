use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::graph::{Layer, LayerIo, LayerKernels};
use crate::kernels::pool::{
    global_avg_pool, global_avg_pool_backward, max_pool2d, max_pool2d_backward, GlobalPoolShape,
    Pool2dShape,
};

/// Max over k×k windows with stride s (no padding, floor mode), as torch.nn.MaxPool2d.
pub struct MaxPool2d {
    pub kernel: usize,
    pub stride: usize,
}

impl MaxPool2d {
    fn shape(&self, input: &[usize]) -> Result<Pool2dShape, String> {
        let &[batch, channels, height, width] = input else {
            return Err("expects [batch, channels, height, width]".into());
        };
        if self.kernel == 0 || self.stride == 0 || self.kernel > height || self.kernel > width {
            return Err(format!("a {0}×{0} window does not fit", self.kernel));
        }
        Ok(Pool2dShape {
            batch,
            channels,
            height,
            width,
            kernel: self.kernel,
            stride: self.stride,
        })
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> String {
        format!(
            "MaxPool2d(kernel_size={}, stride={})",
            self.kernel, self.stride
        )
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

    fn record(&self, ctx: &GpuContext, io: &LayerIo) -> Result<LayerKernels, GpuError> {
        let shape = self
            .shape(io.input_shape)
            .expect("the plan checked this shape");
        let indices = GpuBuffer::zeros(ctx, "max pool argmax", shape.output_len());
        let forward = max_pool2d(ctx, &shape, io.input, io.output, &indices)?;
        let backward = match io.grad_input {
            Some(dx) => vec![max_pool2d_backward(
                ctx,
                &shape,
                io.grad_output,
                &indices,
                dx,
            )?],
            None => Vec::new(),
        };
        Ok(LayerKernels {
            forward: vec![forward],
            backward,
            ..Default::default()
        })
    }
}

/// Mean over each channel's plane, [N, C, H, W] → [N, C] (adaptive_avg_pool2d to 1, flattened).
pub struct GlobalAvgPool;

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
        let &[batch, channels, height, width] = io.input_shape else {
            unreachable!("the plan checked this shape");
        };
        let shape = GlobalPoolShape {
            batch,
            channels,
            height,
            width,
        };
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
}
