//! Layers with PyTorch's semantics and default initialisation, and the study's four models.

mod activation;
mod batchnorm;
mod conv2d;
mod flatten;
mod linear;
pub mod models;
mod pool;

pub use activation::{Dropout, Relu};
pub use batchnorm::BatchNorm;
pub use conv2d::Conv2d;
pub use flatten::Flatten;
pub use linear::Linear;
pub use pool::{GlobalAvgPool, MaxPool2d};

use crate::graph::{Init, ParamSpec};

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
