//! Every WGSL file of `shaders/`, embedded in the binary.

use crate::gpu::Shader;

macro_rules! shaders {
    ($($name:ident => $file:literal),* $(,)?) => {
        $(pub static $name: Shader = Shader {
            name: $file,
            source: include_str!(concat!("../shaders/", $file, ".wgsl")),
        };)*
        /// All shaders, for validation and listings.
        pub static ALL: &[&Shader] = &[$(&$name),*];
    };
}

shaders! {
    MATMUL => "matmul",
    CONV2D => "conv2d",
    REDUCE => "reduce",
    POOL => "pool",
    BATCHNORM => "batchnorm",
    SOFTMAX_CE => "softmax_ce",
    ELEMENTWISE => "elementwise",
    OPTIM => "optim",
    PEAK => "peak",
}
