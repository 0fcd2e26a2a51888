//! Layers with PyTorch's semantics and default initialisation, and the study's four models.

mod activation;
mod batchnorm;
mod conv2d;
mod conv_transpose2d;
mod flatten;
pub mod fusion;
mod linear;
pub mod models;
mod pool;
pub mod spec;

pub use activation::{Dropout, Relu, Sigmoid};
pub use batchnorm::BatchNorm;
pub use conv2d::Conv2d;
pub use conv_transpose2d::ConvTranspose2d;
pub use flatten::Flatten;
pub use linear::Linear;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d, Window};

use crate::graph::{Init, ParamSpec};

/// Who writes the gradient of a bias a layer adds per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BiasGradient {
    /// The layer's backward, reducing its output gradient.
    Reduced,
    /// Another kernel that sums the same gradient anyway: the batch norm after the layer (as
    /// it sums its input gradient) or the loss (as it sums dL/d(logits)).
    WrittenElsewhere,
}

/// PyTorch's default weight and bias for Linear and Conv2d: kaiming_uniform(a = √5) on the
/// weight and U(±1/√fan_in) on the bias, which are the same bound, 1/√fan_in.
fn weight_and_bias(weight_shape: Vec<usize>, fan_in: usize, out: usize) -> Vec<ParamSpec> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    vec![
        ParamSpec {
            name: "weight",
            shape: weight_shape,
            init: Init::Uniform(bound),
            trainable: true,
        },
        ParamSpec {
            name: "bias",
            shape: vec![out],
            init: Init::Uniform(bound),
            trainable: true,
        },
    ]
}
