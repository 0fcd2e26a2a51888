use crate::gpu::{GpuBuffer, GpuContext};
use crate::rng::Rng;

/// How a tensor starts out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−bound, bound): PyTorch's default for Linear and Conv2d weights and biases
    /// (kaiming_uniform with a = √5 works out to bound = 1/√fan_in for both).
    Uniform(f32),
    Constant(f32),
}

/// A named tensor of a layer: a trainable parameter, or a buffer such as a running mean that
/// belongs in the checkpoint but has no gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Relative to the layer, as in PyTorch's state_dict: `weight`, `bias`, `running_mean`.
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub init: Init,
    pub trainable: bool,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A tensor on the GPU with its full checkpoint name and, when trainable, its gradient.
pub struct Parameter {
    /// Full state_dict name, e.g. `network.0.weight`.
    pub name: String,
    pub spec: ParamSpec,
    pub value: GpuBuffer,
    pub grad: Option<GpuBuffer>,
}

impl Parameter {
    /// The gradient buffer of a trainable tensor; asking for a buffer's is a layer bug.
    pub fn grad(&self) -> &GpuBuffer {
        self.grad
            .as_ref()
            .unwrap_or_else(|| panic!("`{}` is not trainable and has no gradient", self.name))
    }
}

/// Every tensor of a model in state_dict order. Plans at different batch sizes share it.
#[derive(Default)]
pub struct ParameterStore {
    params: Vec<Parameter>,
}

impl ParameterStore {
    /// Creates the tensors of one layer, initialised from `rng`, and returns their indices.
    pub fn add_layer(
        &mut self,
        ctx: &GpuContext,
        prefix: &str,
        specs: Vec<ParamSpec>,
        rng: &mut Rng,
    ) -> Vec<usize> {
        specs
            .into_iter()
            .map(|spec| {
                let name = format!("{prefix}.{}", spec.name);
                let values: Vec<f32> = match spec.init {
                    Init::Uniform(bound) => rng.uniform_vec(spec.len(), -bound, bound),
                    Init::Constant(value) => vec![value; spec.len()],
                };
                let value = GpuBuffer::from_slice(ctx, &name, &values);
                let grad = spec
                    .trainable
                    .then(|| GpuBuffer::zeros(ctx, &format!("{name}.grad"), spec.len()));
                self.params.push(Parameter {
                    name,
                    spec,
                    value,
                    grad,
                });
                self.params.len() - 1
            })
            .collect()
    }

    pub fn get(&self, index: usize) -> &Parameter {
        &self.params[index]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Parameter> {
        self.params.iter()
    }

    /// Number of trainable scalars.
    pub fn trainable_count(&self) -> usize {
        self.params
            .iter()
            .filter(|p| p.spec.trainable)
            .map(|p| p.spec.len())
            .sum()
    }
}
