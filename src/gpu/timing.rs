use std::time::Instant;

use serde::Serialize;

use super::buffer::map_read;
use super::context::GpuContext;
use super::dispatch::Dispatch;
use super::error::GpuError;

/// Where a duration came from. Timestamp queries time the kernel alone; the wall clock also
/// counts the submit and the wait, so it overstates short kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimingSource {
    Timestamps,
    WallClock,
}

/// Times dispatches one by one, with GPU timestamp queries where the adapter has them.
pub struct GpuTimer {
    queries: Option<Queries>,
}

struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    capacity: u32,
    period_ns: f64,
}

impl GpuTimer {
    /// A timer for up to `capacity` dispatches per call of [`GpuTimer::time`].
    pub fn new(ctx: &GpuContext, capacity: u32) -> Self {
        if !ctx.summary().timestamp_queries {
            return GpuTimer { queries: None };
        }
        let count = capacity * 2;
        let bytes = count as u64 * 8;
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timer"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timer resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let readback = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timer readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        GpuTimer {
            queries: Some(Queries {
                set,
                resolve,
                readback,
                capacity,
                period_ns: ctx.summary().timestamp_period_ns as f64,
            }),
        }
    }

    pub fn source(&self) -> TimingSource {
        match self.queries {
            Some(_) => TimingSource::Timestamps,
            None => TimingSource::WallClock,
        }
    }

    /// Seconds each dispatch took. With timestamps all run in one submit, each in its own
    /// pass; on the wall clock each is submitted and waited for alone.
    pub fn time(&self, ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<Vec<f64>, GpuError> {
        let Some(q) = &self.queries else {
            return dispatches
                .iter()
                .map(|dispatch| {
                    let start = Instant::now();
                    ctx.run([*dispatch])?;
                    Ok(start.elapsed().as_secs_f64())
                })
                .collect();
        };
        let mut seconds = Vec::with_capacity(dispatches.len());
        for chunk in dispatches.chunks(q.capacity as usize) {
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            for (i, dispatch) in chunk.iter().enumerate() {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(dispatch.label()),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &q.set,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                dispatch.record(&mut pass);
            }
            let used = 2 * chunk.len() as u32;
            encoder.resolve_query_set(&q.set, 0..used, &q.resolve, 0);
            encoder.copy_buffer_to_buffer(&q.resolve, 0, &q.readback, 0, Some(used as u64 * 8));
            ctx.queue.submit([encoder.finish()]);
            let bytes = map_read(ctx, &q.readback, used as u64 * 8)?;
            let ticks: Vec<u64> = bytemuck::allocation::pod_collect_to_vec(&bytes);
            seconds.extend(
                ticks
                    .chunks(2)
                    .map(|t| t[1].saturating_sub(t[0]) as f64 * q.period_ns * 1e-9),
            );
        }
        Ok(seconds)
    }
}
