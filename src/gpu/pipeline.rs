use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::context::GpuContext;
use super::error::GpuError;

/// One `.wgsl` file, embedded in the binary.
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// How a kernel sees the buffer at binding `i` of group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binding {
    Uniform,
    ReadOnly,
    ReadWrite,
}

/// Everything that identifies a compiled kernel: file, entry point, buffer bindings and the
/// values of its override constants (tile sizes, transposes, fused epilogues).
pub struct KernelSpec<'a> {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub bindings: &'a [Binding],
    pub constants: &'a [(&'static str, f64)],
}

impl KernelSpec<'_> {
    /// `shader::entry[NAME=value,...]`: the name the profiler and benches report.
    pub fn label(&self) -> String {
        let mut label = format!("{}::{}", self.shader.name, self.entry);
        if !self.constants.is_empty() {
            let constants: Vec<String> = self
                .constants
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            label.push_str(&format!("[{}]", constants.join(",")));
        }
        label
    }
}

/// A compiled compute pipeline and the layout its bind groups must follow.
pub struct Kernel {
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Compiled kernels by label: each is built once per context and shared.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    kernels: Mutex<HashMap<String, Arc<Kernel>>>,
}

impl GpuContext {
    /// The kernel `spec` names, compiled on first use. Shader errors come back as values.
    pub fn kernel(&self, spec: &KernelSpec) -> Result<Arc<Kernel>, GpuError> {
        let label = spec.label();
        if let Some(kernel) = lock(&self.pipelines.kernels).get(&label) {
            return Ok(kernel.clone());
        }
        let module = self.module(spec.shader)?;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = spec
            .bindings
            .iter()
            .enumerate()
            .map(|(i, binding)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match binding {
                        Binding::Uniform => wgpu::BufferBindingType::Uniform,
                        Binding::ReadOnly => wgpu::BufferBindingType::Storage { read_only: true },
                        Binding::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(&label),
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&label),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&label),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(spec.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: spec.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation {
                what: label,
                message: error.to_string(),
            });
        }
        let kernel = Arc::new(Kernel {
            label: label.clone(),
            pipeline,
            layout,
        });
        lock(&self.pipelines.kernels).insert(label, kernel.clone());
        Ok(kernel)
    }

    fn module(&self, shader: &'static Shader) -> Result<Arc<wgpu::ShaderModule>, GpuError> {
        if let Some(module) = lock(&self.pipelines.modules).get(shader.name) {
            return Ok(module.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(shader.source.into()),
            });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Validation {
                what: format!("shaders/{}.wgsl", shader.name),
                message: error.to_string(),
            });
        }
        let module = Arc::new(module);
        lock(&self.pipelines.modules).insert(shader.name, module.clone());
        Ok(module)
    }
}

/// The cache holds no invariants a panicking thread could break, so a poisoned lock is usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
