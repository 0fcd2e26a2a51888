use std::sync::Arc;

use bytemuck::Pod;
use serde::Serialize;
use wgpu::util::DeviceExt;

use super::buffer::GpuBuffer;
use super::context::{AdapterSummary, GpuContext};
use super::error::GpuError;
use super::pipeline::Kernel;

/// The least work a kernel launch must do: its arithmetic, and the bytes it must move (every
/// input read once, every output written once). Rates against it say how close a kernel gets
/// to the adapter's peak, whatever its real traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cost {
    pub flops: f64,
    pub bytes: f64,
}

impl Cost {
    /// Bytes of `elements` f32 or u32 values.
    pub fn words(elements: usize) -> f64 {
        4.0 * elements as f64
    }
}

/// One kernel launch, ready to record: pipeline, bind group and grid are fixed when it is
/// built, so recording it each step costs nothing but the command itself.
///
/// Convention: binding 0 is the kernel's uniform `Params`; the storage buffers follow in order.
/// Clones share the bind group and the params buffer.
#[derive(Clone)]
pub struct Dispatch {
    kernel: Arc<Kernel>,
    bind_group: wgpu::BindGroup,
    params: wgpu::Buffer,
    workgroups: [u32; 3],
    cost: Option<Cost>,
}

impl Dispatch {
    pub fn new<P: Pod>(
        ctx: &GpuContext,
        kernel: &Arc<Kernel>,
        params: &P,
        buffers: &[&GpuBuffer],
        workgroups: [u32; 3],
    ) -> Self {
        let params = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&kernel.label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, buffer)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: buffer.binding(),
                }),
        );
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.label),
            layout: &kernel.layout,
            entries: &entries,
        });
        Dispatch {
            kernel: kernel.clone(),
            bind_group,
            params,
            workgroups,
            cost: None,
        }
    }

    /// Attaches the launch's [`Cost`], which the profiler turns into GFLOP/s and GB/s.
    pub fn with_cost(self, cost: Cost) -> Self {
        Dispatch {
            cost: Some(cost),
            ..self
        }
    }

    pub fn cost(&self) -> Option<Cost> {
        self.cost
    }

    /// Replaces the kernel's `Params` (a new dropout seed, an optimizer's step number) for the
    /// next submit, keeping the bind group. `P` must be the type the dispatch was built with.
    pub fn set_params<P: Pod>(&self, ctx: &GpuContext, params: &P) {
        assert_eq!(
            std::mem::size_of::<P>() as u64,
            self.params.size(),
            "set_params on `{}` with a different Params type",
            self.kernel.label
        );
        ctx.queue
            .write_buffer(&self.params, 0, bytemuck::bytes_of(params));
    }

    pub fn label(&self) -> &str {
        &self.kernel.label
    }

    pub fn workgroups(&self) -> [u32; 3] {
        self.workgroups
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        let [x, y, z] = self.workgroups;
        if x * y * z == 0 {
            return;
        }
        pass.set_pipeline(&self.kernel.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(x, y, z);
    }
}

impl GpuContext {
    /// Records `dispatches` in order into one compute pass, submits once and waits.
    pub fn run<'a>(
        &self,
        dispatches: impl IntoIterator<Item = &'a Dispatch>,
    ) -> Result<(), GpuError> {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for dispatch in dispatches {
                dispatch.record(&mut pass);
            }
        }
        self.queue.submit([encoder.finish()]);
        self.wait()
    }
}

/// A grid of `count` workgroups, folded into y when x would pass the 65 535 limit.
/// Shaders linearise it as `wid.x + wid.y * nwg.x` and bounds-check the excess.
pub fn workgroups_1d(count: usize) -> [u32; 3] {
    const MAX: usize = 65_535;
    let rows = count.div_ceil(MAX).max(1);
    [count.div_ceil(rows) as u32, rows as u32, 1]
}

/// The grid of a kernel built on `shaders/quads.wgsl`: `QUAD_WG` (256) invocations per
/// workgroup, four of the `n` elements each.
pub fn quad_workgroups(n: usize) -> [u32; 3] {
    const ELEMENTS_PER_WORKGROUP: usize = 256 * 4;
    workgroups_1d(n.div_ceil(ELEMENTS_PER_WORKGROUP))
}

/// How an elementwise kernel on `shaders/quads.wgsl` covers `n` elements: the quads each
/// invocation walks (the shader's `QUADS_PER_INVOCATION`) and the grid that leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuadGrid {
    pub per_invocation: u32,
    pub workgroups: [u32; 3],
}

impl QuadGrid {
    /// Eight quads per invocation on a software adapter, where each invocation and workgroup
    /// costs fixed work (Adam over the mlp's 304K values on lavapipe: 0.63 ms at one, 0.54 at
    /// two, 0.43 at eight or sixteen); one on a GPU, which wants every thread it can get.
    pub fn new(adapter: &AdapterSummary, n: usize) -> Self {
        let per_invocation = if adapter.is_software() { 8 } else { 1 };
        QuadGrid {
            per_invocation,
            workgroups: quad_workgroups(n.div_ceil(per_invocation as usize)),
        }
    }

    /// The pipeline constant that tells the shader.
    pub fn constant(&self) -> (&'static str, f64) {
        ("QUADS_PER_INVOCATION", self.per_invocation as f64)
    }
}
