use thiserror::Error;

/// Everything that can go wrong between fer and the GPU, each as one sentence a user can act on.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found{backends}. On Linux without a GPU, install Mesa's software Vulkan \
         driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`); on macOS Metal \
         and on Windows DX12 are built in"
    )]
    NoAdapter { backends: String },
    #[error("no GPU adapter matches `{wanted}`; available: {available}")]
    NoMatchingAdapter { wanted: String, available: String },
    #[error("unknown backend `{0}`: expected one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),
    #[error("the adapter `{adapter}` refused to create a device: {source}")]
    RequestDevice {
        adapter: String,
        source: wgpu::RequestDeviceError,
    },
    #[error("waiting for the GPU failed: {0}")]
    Poll(#[from] wgpu::PollError),
    #[error("reading a buffer back from the GPU failed: {0}")]
    Map(#[from] wgpu::BufferAsyncError),
    #[error("the GPU reported an error while running `{what}`: {message}")]
    Validation { what: String, message: String },
}
