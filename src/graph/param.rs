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

/// A model's tensors as declared, layer by layer, before any has a value: sizes are checked
/// against the adapter before a byte is allocated for them.
#[derive(Default)]
pub struct ParameterPlan {
    tensors: Vec<(String, ParamSpec)>,
}

impl ParameterPlan {
    /// Declares the tensors of one layer and returns their indices.
    pub fn add_layer(&mut self, prefix: &str, specs: Vec<ParamSpec>) -> Vec<usize> {
        specs
            .into_iter()
            .map(|spec| {
                self.tensors.push((tensor_name(prefix, &spec), spec));
                self.tensors.len() - 1
            })
            .collect()
    }

    /// Puts every tensor on the GPU, initialised from `rng` in declaration order: the
    /// trainable ones as views of the flat buffers, which must fit one buffer (the optimizer
    /// updates them in binding-sized chunks; each layer binds only its own tensors' views, see
    /// [`super::Model::plan`] for their limits). A model over the limits is refused before its
    /// values are drawn, so a mistyped width in a model file is a sentence, not a failed
    /// host allocation.
    pub fn upload(self, ctx: &GpuContext, rng: &mut Rng) -> Result<ParameterStore, GraphError> {
        let adapter = ctx.summary();
        let limit = adapter.max_buffer_bytes;
        let bytes = |values: usize| values as u64 * 4;
        let largest = self.tensors.iter().max_by_key(|(_, spec)| spec.len());
        if let Some((name, spec)) = largest.filter(|(_, spec)| bytes(spec.len()) > limit) {
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
        for (_, spec) in &self.tensors {
            if spec.trainable {
                offsets.push(len);
                len = (len + spec.len()).div_ceil(align) * align;
            }
        }
        if bytes(len) > limit {
            let (name, spec) = largest.expect("storage over a limit holds tensors");
            return Err(GraphError::ParametersTooLarge {
                bytes: bytes(len),
                limit,
                largest: name.clone(),
                shape: spec.shape.clone(),
                largest_bytes: bytes(spec.len()),
            });
        }
        let initial: Vec<Vec<f32>> = self
            .tensors
            .iter()
            .map(|(_, spec)| match spec.init {
                Init::Uniform(bound) => rng.uniform_vec(spec.len(), -bound, bound),
                Init::Constant(value) => vec![value; spec.len()],
            })
            .collect();
        let trainable = (len > 0).then(|| {
            let mut values = vec![0.0f32; len];
            let trainable_tensors = self.tensors.iter().zip(&initial);
            let trainable_tensors = trainable_tensors.filter(|((_, spec), _)| spec.trainable);
            for ((_, initial), &offset) in trainable_tensors.zip(&offsets) {
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
            .zip(initial)
            .map(|((name, spec), initial)| {
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
