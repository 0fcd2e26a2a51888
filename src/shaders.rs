//! Every WGSL file of `shaders/`, embedded in the binary.

use crate::gpu::Shader;

macro_rules! shaders {
    ($($name:ident => $file:literal $(after $($prelude:literal),+)?),* $(,)?) => {
        $(pub static $name: Shader = Shader {
            name: $file,
            // WGSL has no includes: a shared prelude is prepended to the file's text.
            source: concat!(
                $($(include_str!(concat!("../shaders/", $prelude, ".wgsl")),)+)?
                include_str!(concat!("../shaders/", $file, ".wgsl"))
            ),
        };)*
        /// All shaders, for validation and listings.
        pub static ALL: &[&Shader] = &[$(&$name),*];
        /// Every .wgsl file the shaders are made of (a prelude once per shader that uses it).
        pub static FILES: &[&str] = &[$($file, $($($prelude,)+)?)*];
    };
}

shaders! {
    MATMUL => "matmul",
    AUGMENT => "augment",
    CONV2D => "conv2d",
    CONCAT => "concat",
    LOWERING => "lowering" after "quads",
    REDUCE => "reduce" after "quads",
    POOL => "pool" after "philox",
    BATCHNORM => "batchnorm" after "quads", "philox",
    SOFTMAX_CE => "softmax_ce",
    ELEMENTWISE => "elementwise" after "quads", "philox",
    OPTIM => "optim" after "quads",
    PEAK => "peak",
    WINOGRAD => "winograd",
}
