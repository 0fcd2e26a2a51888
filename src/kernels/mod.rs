//! Host side of every shader: bindings, dispatch geometry and a typed call that returns a
//! [`Dispatch`](crate::gpu::Dispatch) ready to record. One module per `.wgsl` file.

use crate::gpu::Shader;

/// A `#[repr(C)]` struct the host uploads to a shader, as Rust lays it out. A test holds each
/// against the WGSL struct of the same name as naga lays it out, so the two cannot drift apart
/// (a swapped or added field would otherwise be read as a neighbour's value, silently).
#[doc(hidden)]
pub struct UniformLayout {
    pub shader: &'static Shader,
    /// The struct's name, the same in Rust and WGSL.
    pub name: &'static str,
    pub size: usize,
    /// Each field's name (the same in WGSL) and offset; padding (`_*`) is left out, as its
    /// shape differs (`_pad: [u32; 2]` against `_pad0`, `_pad1`).
    pub fields: Vec<(&'static str, usize)>,
}

/// `uniform_layout!(shaders::FILE, Struct: every, field, _pad)`: the [`UniformLayout`] of a
/// struct the host module declares. Every field must be named, padding too: the list is checked
/// exhaustive at compile time, so a field added in Rust cannot be missed by the test.
macro_rules! uniform_layout {
    ($shader:expr, $name:ident: $($field:ident),+ $(,)?) => {{
        fn _names_every_field(value: $name) {
            let $name { $($field: _),+ } = value;
        }
        $crate::kernels::UniformLayout {
            shader: &$shader,
            name: stringify!($name),
            size: std::mem::size_of::<$name>(),
            fields: [$((stringify!($field), std::mem::offset_of!($name, $field))),+]
                .into_iter()
                .filter(|(field, _)| !field.starts_with('_'))
                .collect(),
        }
    }};
}

/// `Display` and `FromStr` for a kernel choice the tuner remembers on disk by name: its
/// `name()`, and back by finding that name among its `ALL`; `$what` names the family in the
/// error for a name that is none of them.
macro_rules! named_choice {
    ($choice:ty, $what:literal) => {
        impl std::fmt::Display for $choice {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $choice {
            type Err = String;

            fn from_str(name: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|choice| choice.name() == name)
                    .ok_or_else(|| format!("unknown {} `{name}`", $what))
            }
        }
    };
}

pub mod augment;
pub mod batchnorm;
pub mod concat;
pub mod conv2d;
pub mod conv2d_layer;
pub mod conv_transpose2d;
pub mod elementwise;
pub mod lowering;
pub mod matmul;
pub mod optim;
pub mod peak;
pub mod pool;
pub mod reduce;
pub mod softmax_ce;
pub mod winograd;

/// Invocations per workgroup for a reduction over `count` values per workgroup: a power of two
/// leaving each invocation at least 32 values, at most 256. Small reductions (a Linear layer's
/// batch of 64) then take a few invocations and barriers instead of 256, which matters most on
/// CPU adapters, where a barrier costs more than the additions it separates.
pub fn reduction_width(count: usize) -> u32 {
    let wanted = (count / 32).clamp(1, 256);
    1 << wanted.ilog2()
}

/// Whether a per-channel reduction over `[rows, channels, inner]` walks columns: one invocation
/// per quad of adjacent channels adding its `rows` values in order, instead of a workgroup tree
/// per channel. That pays where each row holds one value per channel (inner = 1: a Linear
/// layer's batch) and the rows are few enough for one invocation to walk (a tree would give its
/// invocations a handful of values each between barriers).
pub fn walks_columns(rows: usize, inner: usize) -> bool {
    inner == 1 && rows <= 1024
}

/// Every struct the kernels upload, for the layout test in `kernels-tests/shaders.rs`.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<UniformLayout> {
    [
        augment::uniform_layouts(),
        batchnorm::uniform_layouts(),
        concat::uniform_layouts(),
        conv2d::uniform_layouts(),
        elementwise::uniform_layouts(),
        lowering::uniform_layouts(),
        matmul::uniform_layouts(),
        optim::uniform_layouts(),
        peak::uniform_layouts(),
        pool::uniform_layouts(),
        reduce::uniform_layouts(),
        softmax_ce::uniform_layouts(),
        winograd::uniform_layouts(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
