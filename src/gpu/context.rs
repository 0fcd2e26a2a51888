use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::buffer::Transients;
use super::error::{innermost_cause, GpuError};
use super::pipeline::PipelineCache;
use super::tuning::Tuning;

/// A graphics API wgpu can drive; `None` in [`GpuOptions`] means "any, best first".
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl BackendChoice {
    fn backends(self) -> wgpu::Backends {
        match self {
            BackendChoice::Vulkan => wgpu::Backends::VULKAN,
            BackendChoice::Metal => wgpu::Backends::METAL,
            BackendChoice::Dx12 => wgpu::Backends::DX12,
            BackendChoice::Gl => wgpu::Backends::GL,
        }
    }

    fn parse(name: &str) -> Result<Self, GpuError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "vulkan" | "vk" => Ok(BackendChoice::Vulkan),
            "metal" | "mtl" => Ok(BackendChoice::Metal),
            "dx12" | "d3d12" => Ok(BackendChoice::Dx12),
            "gl" | "gles" | "opengl" => Ok(BackendChoice::Gl),
            _ => Err(GpuError::UnknownBackend(name.to_string())),
        }
    }
}

/// Which adapter to open. `FER_BACKEND` and `FER_ADAPTER` set the defaults; CLI flags override.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: Option<BackendChoice>,
    /// Case-insensitive substring of the adapter's name.
    pub adapter: Option<String>,
    /// Time kernel variants per shape on this adapter and remember the fastest
    /// (`FER_AUTOTUNE=1`; the CLI turns it on unless `--no-autotune`).
    pub autotune: bool,
    /// Where autotuned choices persist; default `$XDG_CACHE_HOME/fer/autotune.json`.
    pub autotune_file: Option<std::path::PathBuf>,
    /// How long autotuning may time kernels per model; `None`: until every shape is measured.
    pub tune_budget: Option<std::time::Duration>,
}

impl GpuOptions {
    pub fn from_env() -> Result<Self, GpuError> {
        let backend = match std::env::var("FER_BACKEND") {
            Ok(name) if !name.trim().is_empty() => Some(BackendChoice::parse(&name)?),
            _ => None,
        };
        let adapter = std::env::var("FER_ADAPTER")
            .ok()
            .filter(|s| !s.trim().is_empty());
        let autotune = std::env::var("FER_AUTOTUNE").is_ok_and(|v| v == "1");
        Ok(GpuOptions {
            backend,
            adapter,
            autotune,
            autotune_file: None,
            tune_budget: None,
        })
    }
}

/// What `fer info` prints and what every report records about the adapter it ran on.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub timestamp_queries: bool,
    pub timestamp_period_ns: f32,
    pub subgroups: bool,
    pub shader_f16: bool,
    pub max_workgroup_storage_bytes: u32,
    pub max_invocations_per_workgroup: u32,
    pub max_storage_binding_bytes: u64,
    pub max_buffer_bytes: u64,
    pub max_storage_buffers_per_stage: u32,
    /// Storage bindings must start at a multiple of this many bytes.
    pub storage_offset_alignment: u32,
}

impl AdapterSummary {
    /// The most elements one storage binding holds (a binding rounds up to whole vec4s, see
    /// [`GpuBuffer::binding`](super::GpuBuffer::binding)).
    pub fn max_binding_len(&self) -> usize {
        (self.max_storage_binding_bytes / 16 * 4) as usize
    }

    /// The element offsets a bound view may start at are multiples of this: the
    /// storage-offset alignment, and at least a vec4 (kernels read storage as vec4s).
    pub fn view_alignment(&self) -> usize {
        (self.storage_offset_alignment as usize / 4).max(4)
    }

    /// A software rasteriser such as lavapipe or WARP: slow, so demos and benches scale down.
    pub fn is_software(&self) -> bool {
        self.device_type == "Cpu"
    }

    /// What to tell a person once when fer lands on a software adapter, where nothing else
    /// would say why a run is slow: the speed to expect and how to get something faster.
    /// `None` on a hardware adapter. The speeds are the README's, measured on 2 cores.
    pub fn software_notice(&self) -> Option<String> {
        if !self.is_software() {
            return None;
        }
        let mesa = mesa_major_version(&self.driver_info);
        let slower = if self.backend == "Gl" {
            ", and about 4× that through GL".to_string()
        } else if let Some(major) = mesa.filter(|&major| major < 25) {
            format!(", and about 5× that with Mesa {major}")
        } else {
            String::new()
        };
        let faster_software = if slower.is_empty() {
            ""
        } else {
            ", or install Mesa 25 or newer's lavapipe (its Vulkan driver: on Debian bookworm, \
             mesa-vulkan-drivers from bookworm-backports, and libvulkan1)"
        };
        Some(format!(
            "note: {} through {} is a software adapter, the CPU emulating a GPU: on 2 cores with \
             Mesa 25's lavapipe a FER2013 epoch takes about 3 s for the mlp and an hour for the \
             study's cnn{slower}. For speed, use a GPU with its driver{faster_software}.",
            self.name, self.backend
        ))
    }
}

/// The major version in a driver description such as `4.5 (Core Profile) Mesa 25.0.7-2`.
fn mesa_major_version(driver_info: &str) -> Option<u32> {
    let (_, version) = driver_info.split_once("Mesa ")?;
    version.split('.').next()?.parse().ok()
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "adapter          {}", self.name)?;
        writeln!(f, "backend          {}", self.backend)?;
        writeln!(f, "device type      {}", self.device_type)?;
        writeln!(f, "driver           {} ({})", self.driver, self.driver_info)?;
        writeln!(
            f,
            "timestamps       {} (period {} ns)",
            yes_no(self.timestamp_queries),
            self.timestamp_period_ns
        )?;
        writeln!(f, "subgroups        {}", yes_no(self.subgroups))?;
        writeln!(f, "shader f16       {}", yes_no(self.shader_f16))?;
        writeln!(
            f,
            "workgroup memory {} KiB, {} invocations per workgroup",
            self.max_workgroup_storage_bytes / 1024,
            self.max_invocations_per_workgroup
        )?;
        writeln!(
            f,
            "storage binding  {} MiB max, {} per stage; buffer {} MiB max",
            self.max_storage_binding_bytes >> 20,
            self.max_storage_buffers_per_stage,
            self.max_buffer_bytes >> 20
        )
    }
}

/// The device fer runs on, with its queue and the cache of compiled kernels.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    summary: AdapterSummary,
    pub(super) pipelines: PipelineCache,
    pub(super) tuning: Tuning,
    pub(super) transients: Transients,
    faults: Faults,
}

/// The first fault the device reported outside an error scope (wgpu's default would panic),
/// a buffer that could not be allocated, or the device's loss; kept until fer next waits for
/// the GPU or leaves a [`GpuContext::guard`], which return it as an error.
#[derive(Clone, Default)]
pub(super) struct Faults(Arc<Mutex<Option<GpuError>>>);

impl Faults {
    /// Keeps `fault` unless an earlier one is kept: the first explains the rest.
    pub(super) fn record(&self, fault: GpuError) {
        let mut first = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        first.get_or_insert(fault);
    }

    fn take(&self) -> Option<GpuError> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// A wgpu error outside any scope, as fer's: an out-of-memory or a validation error.
fn uncaptured(error: wgpu::Error) -> GpuError {
    let what = "running GPU work".to_string();
    match error {
        wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory {
            what,
            cause: innermost_cause(&error),
        },
        _ => GpuError::Validation {
            what,
            message: innermost_cause(&error),
        },
    }
}

impl GpuContext {
    /// Opens the best adapter the options allow: hardware before software, and Vulkan, Metal or
    /// DX12 before GL (the GL path compiles kernels slowly and lacks timestamps).
    pub fn new(options: &GpuOptions) -> Result<Self, GpuError> {
        pollster::block_on(Self::new_async(options))
    }

    async fn new_async(options: &GpuOptions) -> Result<Self, GpuError> {
        let backends = options
            .backend
            .map_or(wgpu::Backends::all(), BackendChoice::backends);
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = backends;
        let instance = wgpu::Instance::new(descriptor);
        let mut adapters = instance.enumerate_adapters(backends).await;
        if adapters.is_empty() {
            return Err(GpuError::NoAdapter {
                backends: options
                    .backend
                    .map(|b| format!(" for backend {b:?}"))
                    .unwrap_or_default(),
            });
        }
        if let Some(wanted) = &options.adapter {
            let needle = wanted.to_lowercase();
            let available = adapters
                .iter()
                .map(|a| {
                    let info = a.get_info();
                    format!("{} ({:?})", info.name, info.backend)
                })
                .collect::<Vec<_>>()
                .join(", ");
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
            if adapters.is_empty() {
                return Err(GpuError::NoMatchingAdapter {
                    wanted: wanted.clone(),
                    available,
                });
            }
        }
        adapters.sort_by_key(|a| preference(&a.get_info()));
        let adapter = adapters.swap_remove(0);
        let tuning = Tuning::new(
            options.autotune,
            options.autotune_file.clone(),
            options.tune_budget,
        );
        Self::open(adapter, tuning).await
    }

    async fn open(adapter: wgpu::Adapter, tuning: Tuning) -> Result<Self, GpuError> {
        let info = adapter.get_info();
        let wanted = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::SUBGROUP
            | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("fer"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|source| GpuError::RequestDevice {
                adapter: info.name.clone(),
                source,
            })?;
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            timestamp_queries: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            timestamp_period_ns: queue.get_timestamp_period(),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            max_workgroup_storage_bytes: limits.max_compute_workgroup_storage_size,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
            max_storage_buffers_per_stage: limits.max_storage_buffers_per_shader_stage,
            storage_offset_alignment: limits.min_storage_buffer_offset_alignment,
        };
        let faults = Faults::default();
        let sink = faults.clone();
        device.on_uncaptured_error(Arc::new(move |error| sink.record(uncaptured(error))));
        let sink = faults.clone();
        device.set_device_lost_callback(move |reason, message| {
            sink.record(GpuError::DeviceLost {
                what: "running GPU work".into(),
                reason: format!("{reason:?}: {message}"),
            })
        });
        Ok(GpuContext {
            device,
            queue,
            summary,
            pipelines: PipelineCache::default(),
            tuning,
            transients: Transients::default(),
            faults,
        })
    }

    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// Bytes allocated so far for the scratch that layers share
    /// ([`GpuBuffer::transient`](super::GpuBuffer::transient)),
    /// counting each buffer a longer request replaced.
    pub fn shared_scratch_allocated(&self) -> u64 {
        self.transients
            .allocated
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A testing knob: fer plans as if the adapter bound at most `storage_binding_bytes` at
    /// once and allocated at most `buffer_bytes` in one buffer, so that a small model takes
    /// the paths of tensors too large for the real limits (split products, chunked updates,
    /// the errors where nothing splits). It never raises a limit.
    pub fn with_lower_limits(mut self, storage_binding_bytes: u64, buffer_bytes: u64) -> Self {
        let summary = &mut self.summary;
        summary.max_storage_binding_bytes =
            storage_binding_bytes.min(summary.max_storage_binding_bytes);
        summary.max_buffer_bytes = buffer_bytes.min(summary.max_buffer_bytes);
        self
    }

    /// Blocks until every submitted command has finished; the first fault the device
    /// reported since the last check (a failed allocation, an error, its loss) is the error.
    pub fn wait(&self) -> Result<(), GpuError> {
        let polled = self.device.poll(wgpu::PollType::wait_indefinitely());
        if let Some(fault) = self.faults.take() {
            return Err(fault);
        }
        polled?;
        Ok(())
    }

    /// Runs `work` (allocating buffers, building a plan) inside wgpu error scopes, so that an
    /// out-of-memory or validation error it causes comes back as an error saying `what` was
    /// being done (`"building the plan for batch 64"`), or naming the buffer that could not
    /// be allocated, instead of reaching wgpu's default handler.
    pub fn guard<T, E: From<GpuError>>(
        &self,
        what: &str,
        work: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let out_of_memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = work();
        // Popped innermost first; on native the futures are ready at once.
        let invalid = pollster::block_on(validation.pop());
        let exhausted = pollster::block_on(out_of_memory.pop());
        if let Some(fault) = self.faults.take() {
            return Err(fault.into());
        }
        if let Some(error) = exhausted {
            return Err(GpuError::OutOfMemory {
                what: what.to_string(),
                cause: innermost_cause(&error),
            }
            .into());
        }
        if let Some(error) = invalid {
            return Err(GpuError::Validation {
                what: what.to_string(),
                message: innermost_cause(&error),
            }
            .into());
        }
        result
    }

    /// Keeps `fault` for the next [`GpuContext::wait`] or [`GpuContext::guard`] to return.
    pub(super) fn record_fault(&self, fault: GpuError) {
        self.faults.record(fault);
    }
}

/// Lower is better: device class first, then the backend.
fn preference(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let device = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (device, backend)
}
