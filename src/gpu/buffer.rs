use std::collections::hash_map::{Entry, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bytemuck::Pod;

use super::context::GpuContext;
use super::error::{innermost_cause, GpuError};

/// A storage buffer of 4-byte elements (f32 or u32), or a view of `len` elements inside one
/// (see [`GpuBuffer::view`]). The allocation is rounded up to 16 bytes so kernels may view any
/// buffer as `array<vec4<f32>>`.
pub struct GpuBuffer {
    buffer: wgpu::Buffer,
    /// Where the elements start in `buffer`, in bytes; 0 unless this is a view.
    offset: u64,
    len: usize,
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

fn padded_bytes(len: usize) -> u64 {
    ((len.max(1) * 4).div_ceil(16) * 16) as u64
}

/// Scratch that a sequence of dispatches uses only between two of its own dispatches, recorded
/// back to back (a convolution's patch gradients, written by a product and read by col2im at
/// once): the dispatches of a submission run in order, so every such sequence can use one
/// buffer per role instead of its own. Each role keeps its longest buffer; a longer request
/// allocates a longer one, and the shorter lives on as long as the dispatches that bind it.
#[derive(Default)]
pub(super) struct Transients {
    held: Mutex<HashMap<&'static str, GpuBuffer>>,
    /// Bytes allocated for every role over the context's life.
    pub(super) allocated: AtomicU64,
}

/// What a kernel binds for an input it may go without: the buffer, or where there is none a
/// one-element placeholder (the kernel, specialised with that input off, never touches it).
pub enum OrPlaceholder<'a> {
    Given(&'a GpuBuffer),
    Placeholder(GpuBuffer),
}

impl std::ops::Deref for OrPlaceholder<'_> {
    type Target = GpuBuffer;

    fn deref(&self) -> &GpuBuffer {
        match self {
            OrPlaceholder::Given(buffer) => buffer,
            OrPlaceholder::Placeholder(buffer) => buffer,
        }
    }
}

impl GpuBuffer {
    /// `buffer`, or a one-element placeholder labelled `label` where it is `None`.
    pub fn or_placeholder<'a>(
        ctx: &GpuContext,
        buffer: Option<&'a GpuBuffer>,
        label: &str,
    ) -> OrPlaceholder<'a> {
        match buffer {
            Some(buffer) => OrPlaceholder::Given(buffer),
            None => OrPlaceholder::Placeholder(GpuBuffer::zeros(ctx, label, 1)),
        }
    }

    pub fn from_slice<T: Pod>(ctx: &GpuContext, label: &str, data: &[T]) -> Self {
        assert_eq!(
            std::mem::size_of::<T>(),
            4,
            "GpuBuffer holds 4-byte elements"
        );
        let size = padded_bytes(data.len());
        let (buffer, allocated) = allocate(ctx, label, size);
        if allocated {
            // The 16-byte tail past the data stays zero, as wgpu creates it.
            ctx.queue
                .write_buffer(&buffer, 0, bytemuck::cast_slice::<T, u8>(data));
        }
        GpuBuffer {
            buffer,
            offset: 0,
            len: data.len(),
        }
    }

    /// `len` elements of the buffer every sequence shares for `role` (see [`Transients`]): only
    /// for scratch written and then read by back-to-back dispatches of one sequence, never
    /// across another's. Its contents are whatever the last sequence left.
    pub fn transient(ctx: &GpuContext, role: &'static str, len: usize) -> GpuBuffer {
        let transients = &ctx.transients;
        let mut pool = transients
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let allocate = || {
            transients
                .allocated
                .fetch_add(padded_bytes(len), Ordering::Relaxed);
            GpuBuffer::zeros(ctx, role, len)
        };
        let shared = match pool.entry(role) {
            Entry::Occupied(held) if held.get().len >= len => held.into_mut(),
            Entry::Occupied(mut held) => {
                held.insert(allocate());
                held.into_mut()
            }
            Entry::Vacant(slot) => slot.insert(allocate()),
        };
        shared.view(0, len)
    }

    /// A buffer of `len` zeros (wgpu zero-initialises new buffers).
    pub fn zeros(ctx: &GpuContext, label: &str, len: usize) -> Self {
        let (buffer, _) = allocate(ctx, label, padded_bytes(len));
        GpuBuffer {
            buffer,
            offset: 0,
            len,
        }
    }

    /// The `len` elements from element `start` on, as a buffer of their own that shares this
    /// one's memory. `start` must keep the view on the adapter's storage-offset alignment,
    /// and the view's 16-byte-rounded extent must not run into another view's.
    pub fn view(&self, start: usize, len: usize) -> GpuBuffer {
        assert!(
            start + len <= self.len,
            "a view past the end of a GpuBuffer"
        );
        GpuBuffer {
            buffer: self.buffer.clone(),
            offset: self.offset + 4 * start as u64,
            len,
        }
    }

    /// What a bind group binds: the elements, rounded up to 16 bytes.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(padded_bytes(self.len)),
        })
    }

    /// The byte offset of the elements in [`GpuBuffer::raw`].
    pub fn offset_bytes(&self) -> u64 {
        self.offset
    }

    /// Number of 4-byte elements.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole wgpu buffer; a view's elements start at [`GpuBuffer::offset_bytes`].
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Queues an overwrite of the first `data.len()` elements; it lands before the next submit.
    pub fn write<T: Pod>(&self, ctx: &GpuContext, data: &[T]) {
        assert!(data.len() <= self.len, "write past the end of a GpuBuffer");
        ctx.queue
            .write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
    }

    /// Copies the buffer back to the host. Blocks until the GPU is done with it.
    pub fn read<T: Pod>(&self, ctx: &GpuContext) -> Result<Vec<T>, GpuError> {
        assert_eq!(
            std::mem::size_of::<T>(),
            4,
            "GpuBuffer holds 4-byte elements"
        );
        let bytes = (self.len * 4) as u64;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes.div_ceil(4) * 4,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.buffer, self.offset, &staging, 0, Some(bytes));
        ctx.queue.submit([encoder.finish()]);
        let bytes = map_read(ctx, &staging, bytes)?;
        Ok(bytemuck::allocation::pod_collect_to_vec(&bytes))
    }
}

/// Creates a zeroed buffer of `bytes` inside its own error scopes, and says whether it
/// could. One over the adapter's limits or past its memory is kept as a fault naming `label`
/// and its size, which the next [`GpuContext::wait`] or [`GpuContext::guard`] returns; the
/// buffer is then an invalid one, whose later uses wgpu refuses without effect.
fn allocate(ctx: &GpuContext, label: &str, bytes: u64) -> (wgpu::Buffer, bool) {
    let out_of_memory = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes,
        usage: USAGE,
        mapped_at_creation: false,
    });
    let invalid = pollster::block_on(validation.pop());
    let exhausted = pollster::block_on(out_of_memory.pop());
    let Some(error) = exhausted.or(invalid) else {
        return (buffer, true);
    };
    ctx.record_fault(GpuError::Allocation {
        label: label.to_string(),
        bytes,
        limit: ctx.summary().max_buffer_bytes,
        cause: innermost_cause(&error),
    });
    (buffer, false)
}

/// Maps the first `bytes` of a MAP_READ buffer whose copy is already submitted, waits for the
/// GPU, and copies them out.
pub(super) fn map_read(
    ctx: &GpuContext,
    staging: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<u8>, GpuError> {
    let slice = staging.slice(..bytes);
    let (sender, receiver) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |result| {
        let _ = sender.send(result);
    });
    ctx.wait()?;
    receiver.recv().map_err(|_| GpuError::Validation {
        what: "buffer readback".into(),
        message: "the map callback never ran".into(),
    })??;
    let data = slice
        .get_mapped_range()
        .map_err(|error| GpuError::Validation {
            what: "buffer readback".into(),
            message: error.to_string(),
        })?
        .to_vec();
    staging.unmap();
    Ok(data)
}
