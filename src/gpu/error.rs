use thiserror::Error;

/// What to try when the adapter cannot hold what a run asks of it.
const SMALLER_OR_ANOTHER: &str =
    "use a smaller --batch-size, or another adapter (--adapter NAME, or FER_BACKEND)";

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
    #[error(
        "cannot allocate GPU buffer `{label}` of {} MiB (this adapter's largest is {} MiB): \
         {cause}; {SMALLER_OR_ANOTHER}",
        mib(*bytes),
        mib(*limit)
    )]
    Allocation {
        label: String,
        bytes: u64,
        limit: u64,
        cause: String,
    },
    #[error("the GPU ran out of memory while {what}: {cause}; {SMALLER_OR_ANOTHER}")]
    OutOfMemory { what: String, cause: String },
    #[error(
        "the GPU device was lost while {what} ({reason}): its driver reset or gave up; run \
         again, or on another adapter (--adapter NAME, or FER_BACKEND)"
    )]
    DeviceLost { what: String, reason: String },
}

/// Bytes in MiB, rounded up so that a buffer over a limit never reads as equal to it.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}

/// The innermost cause of a wgpu error: one line such as "Buffer size 9 is greater than the
/// maximum buffer size (8)", where the error's own text is a multi-line tree.
pub(super) fn innermost_cause(error: &wgpu::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string().trim().to_string()
}
