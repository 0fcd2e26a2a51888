use crate::gpu::{GpuBuffer, GpuContext};

use super::error::GraphError;
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

/// A tensor's full state_dict name: its node's name, then its own (`network.0.weight`).
pub fn tensor_name(node: &str, spec: &ParamSpec) -> String {
    format!("{node}.{}", spec.name)
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
///
/// The trainable tensors live in one flat buffer of values and one of gradients, each tensor a
/// view at an aligned offset (zeros in between), so an optimizer updates them all in one
/// dispatch; running statistics, which no optimizer touches, have buffers of their own.
pub struct ParameterStore {
    params: Vec<Parameter>,
    trainable: Option<FlatParameters>,
}

/// The trainable tensors' storage: `len` elements of values and of gradients, padding included
/// (padding stays zero under every update: its value and gradient are zero).
pub struct FlatParameters {
    pub values: GpuBuffer,
    pub grads: GpuBuffer,
    pub len: usize,
}

/// A model's tensors as declared, layer by layer, with their initial values, before any is
/// on the GPU.
#[derive(Default)]
pub struct ParameterPlan {
    tensors: Vec<(String, ParamSpec, Vec<f32>)>,
}

impl ParameterPlan {
    /// Declares the tensors of one layer, initialised from `rng`, and returns their indices.
    pub fn add_layer(&mut self, prefix: &str, specs: Vec<ParamSpec>, rng: &mut Rng) -> Vec<usize> {
        specs
            .into_iter()
            .map(|spec| {
                let values: Vec<f32> = match spec.init {
                    Init::Uniform(bound) => rng.uniform_vec(spec.len(), -bound, bound),
                    Init::Constant(value) => vec![value; spec.len()],
                };
                self.tensors
                    .push((tensor_name(prefix, &spec), spec, values));
                self.tensors.len() - 1
            })
            .collect()
    }

    /// Puts every tensor on the GPU: the trainable ones as views of the flat buffers, which
    /// must fit one buffer (the optimizer updates them in binding-sized chunks; each layer
    /// binds only its own tensors' views, see [`super::Model::plan`] for their limits).
    pub fn upload(self, ctx: &GpuContext) -> Result<ParameterStore, GraphError> {
        let adapter = ctx.summary();
        let limit = adapter.max_buffer_bytes;
        let bytes = |values: usize| values as u64 * 4;
        let largest = self.tensors.iter().max_by_key(|(_, spec, _)| spec.len());
        if let Some((name, spec, _)) = largest.filter(|(_, spec, _)| bytes(spec.len()) > limit) {
            return Err(GraphError::TensorTooLarge {
                tensor: name.clone(),
                shape: spec.shape.clone(),
                bytes: bytes(spec.len()),
                limit,
            });
        }
        // Each view starts on the adapter's storage-offset alignment (and a vec4 boundary).
        let align = adapter.view_alignment();
        let mut offsets = Vec::new();
        let mut len = 0;
        for (_, spec, _) in &self.tensors {
            if spec.trainable {
                offsets.push(len);
                len = (len + spec.len()).div_ceil(align) * align;
            }
        }
        if bytes(len) > limit {
            let (name, spec, _) = largest.expect("storage over a limit holds tensors");
            return Err(GraphError::ParametersTooLarge {
                bytes: bytes(len),
                limit,
                largest: name.clone(),
                shape: spec.shape.clone(),
                largest_bytes: bytes(spec.len()),
            });
        }
        let trainable = (len > 0).then(|| {
            let mut values = vec![0.0f32; len];
            let trainable_tensors = self.tensors.iter().filter(|(_, spec, _)| spec.trainable);
            for ((_, _, initial), &offset) in trainable_tensors.zip(&offsets) {
                values[offset..offset + initial.len()].copy_from_slice(initial);
            }
            FlatParameters {
                values: GpuBuffer::from_slice(ctx, "parameters", &values),
                grads: GpuBuffer::zeros(ctx, "gradients", len),
                len,
            }
        });
        let mut offsets = offsets.into_iter();
        let params = self
            .tensors
            .into_iter()
            .map(|(name, spec, initial)| {
                let (value, grad) = match (&trainable, spec.trainable) {
                    (Some(flat), true) => {
                        let offset = offsets.next().expect("an offset per trainable tensor");
                        let view = |buffer: &GpuBuffer| buffer.view(offset, spec.len());
                        (view(&flat.values), Some(view(&flat.grads)))
                    }
                    _ => (GpuBuffer::from_slice(ctx, &name, &initial), None),
                };
                Parameter {
                    name,
                    spec,
                    value,
                    grad,
                }
            })
            .collect();
        Ok(ParameterStore { params, trainable })
    }
}

impl ParameterStore {
    pub fn get(&self, index: usize) -> &Parameter {
        &self.params[index]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Parameter> {
        self.params.iter()
    }

    /// The storage of every trainable tensor; `None` for a model with none.
    pub fn trainable(&self) -> Option<&FlatParameters> {
        self.trainable.as_ref()
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
