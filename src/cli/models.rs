//! `fer models`: the built-in models with their size and cost, or one of them as a model file.

use fer::graph::GraphError;
use fer::kernels::softmax_ce::ROW_STATS;
use fer::nn::models::{spec, Architecture, ModelKind};
use fer::nn::spec::{ModelSpec, OpSpec, INPUT};
use serde::Serialize;

/// What one model holds and costs, as `fer models` lists it.
#[derive(Serialize)]
pub struct ModelSummary {
    pub name: String,
    /// [channels, height, width].
    pub input: [usize; 3],
    pub classes: usize,
    pub parameters: usize,
    /// Forward FLOPs per image (2 per multiply-add of convolutions and products).
    pub flops_per_image: f64,
    /// Bytes at `batch` images: every tensor, the trainable ones' gradients, the optimizer's
    /// state, each node output with its gradient (an upper bound: fused blocks keep fewer),
    /// the convolutions' lowering scratch, and the batch's images, labels and loss records.
    pub memory: Memory,
}

#[derive(Serialize)]
pub struct Memory {
    pub batch: usize,
    pub weights: u64,
    pub gradients: u64,
    pub optimizer: u64,
    pub activations: u64,
    /// What the convolutions lowered to matrix products allocate, where the tuner lowers every
    /// one ([`lowering_scratch`]).
    pub convolutions: u64,
    pub scratch: u64,
    /// The largest node output, which must fit one binding.
    pub largest_output: Largest,
    /// The largest tensor, the first to name where the trainable ones outgrow a buffer.
    pub largest_tensor: Largest,
}

/// The largest of some buffers: its node or tensor, and its bytes.
#[derive(Serialize)]
pub struct Largest {
    pub name: String,
    pub bytes: u64,
}

impl Memory {
    pub fn total(&self) -> u64 {
        self.weights
            + self.gradients
            + self.optimizer
            + self.activations
            + self.convolutions
            + self.scratch
    }
}

/// Tensors of optimizer state per trainable tensor: Adam's two moments, the optimizer `fer
/// models` counts (the study's for every model but the softmax).
pub const ADAM_STATES: u64 = 2;

/// What a convolution node allocates when it runs lowered and evaluates by Winograd
/// (`fer::kernels::conv2d_layer`), in values: its own patch matrix, kept from forward to
/// backward, and transformed weights, kept between evaluation passes; and the scratch it shares
/// with every other convolution (`GpuBuffer::transient`), which lives only inside one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lowering {
    /// The patches, and for a transposed convolution its input as `[O, B·P]` too.
    pub own: usize,
    /// The patch gradients (one matrix of the patches' size).
    pub patch_gradients: usize,
    /// Split-K's grad-weight per image, where it fits a binding.
    pub per_image: usize,
    /// The output's gradient as `[O, B·P]` for a grad-weight in one product (and tap-major's
    /// output).
    pub by_channel: usize,
    /// Winograd's transformed weights `[16, C, O]`, input `[16, C, T]` and products
    /// `[16, T, O]` over the batch's T tiles, for a 3×3 kernel at stride 1 where each fits a
    /// binding; the first its own, the others shared.
    pub winograd: [usize; 3],
}

impl Lowering {
    /// The lowering of node `op` with its `output` shape on an adapter that binds at most
    /// `binding` bytes (`None`: any). A matrix over the binding rules out its schedule, as the
    /// schedules are offered: the patches' rule out lowering, leaving the implicit schedule,
    /// which needs nothing; likewise a Winograd matrix over it rules out Winograd. Nothing for
    /// other nodes.
    pub fn of(op: &OpSpec, output: &[usize], binding: Option<u64>) -> Lowering {
        let &[batch, _, height, width] = output else {
            return Lowering::default();
        };
        let bindable = |values: usize| binding.is_none_or(|limit| 4 * values as u64 <= limit);
        let winograd = match *op {
            OpSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size: 3,
                stride: 1,
                ..
            } => {
                let tiles = batch * height.div_ceil(2) * width.div_ceil(2);
                let lens = [
                    in_channels * out_channels,
                    in_channels * tiles,
                    tiles * out_channels,
                ]
                .map(|len| 16 * len);
                if lens.into_iter().all(bindable) {
                    lens
                } else {
                    [0; 3]
                }
            }
            _ => [0; 3],
        };
        // The convolution the products run: a transposed one runs the one it transposes, whose
        // output is its input.
        let (in_channels, out_channels, kernel, pixels, transposed) = match *op {
            OpSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                ..
            } => (
                in_channels,
                out_channels,
                kernel_size,
                height * width,
                false,
            ),
            OpSpec::ConvTranspose2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
            } => {
                let side = |n: usize| (n + 2 * padding - kernel_size) / stride + 1;
                let pixels = side(height) * side(width);
                (out_channels, in_channels, kernel_size, pixels, true)
            }
            _ => return Lowering::default(),
        };
        let patch = in_channels * kernel * kernel;
        let col = batch * pixels * patch;
        if !bindable(col) {
            return Lowering {
                winograd,
                ..Lowering::default()
            };
        }
        let per_image = batch * out_channels * patch;
        let by_channel = batch * out_channels * pixels;
        Lowering {
            own: col + if transposed { by_channel } else { 0 },
            patch_gradients: col,
            per_image: if bindable(per_image) { per_image } else { 0 },
            by_channel: if transposed { 0 } else { by_channel },
            winograd,
        }
    }
}

/// Values the convolutions of a model allocate when every one runs lowered and every 3×3
/// stride-1 one evaluates by Winograd: each its own, and each shared buffer once, at the
/// longest any layer asks for (the plan allocates it so before recording; see
/// `Layer::shared_scratch`). An upper bound: a layer runs split-K or tap-major, not both.
pub fn lowering_scratch(layers: &[Lowering]) -> usize {
    let longest = |role: fn(&Lowering) -> usize| layers.iter().map(role).max().unwrap_or(0);
    layers.iter().map(|l| l.own + l.winograd[0]).sum::<usize>()
        + longest(|l| l.patch_gradients)
        + longest(|l| l.per_image)
        + longest(|l| l.by_channel)
        + longest(|l| l.winograd[1])
        + longest(|l| l.winograd[2])
}

/// The summary of a model's spec, with `optimizer_states` tensors of optimizer state per
/// trainable tensor, on an adapter that binds at most `binding` bytes (`None`: any).
pub fn summarize(
    spec: &ModelSpec,
    batch: usize,
    optimizer_states: u64,
    binding: Option<u64>,
) -> Result<ModelSummary, GraphError> {
    let graph = spec.graph().map_err(|error| GraphError::Structure {
        node: spec.name.clone(),
        why: error.to_string(),
    })?;
    let input = spec.input.shape();
    let shapes = graph.shapes(&input, batch)?;
    let tensors = graph.tensors();
    let bytes = |values: usize| values as u64 * 4;
    let trainable = graph.parameter_count();
    let values = |shape: &Vec<usize>| shape.iter().product::<usize>();
    let outputs: Vec<(&str, usize)> = spec
        .nodes
        .iter()
        .zip(&shapes[1..])
        .map(|(node, shape)| (node.name.as_str(), values(shape)))
        .collect();
    // The batch of images is bound too (a model may pool its input straight away).
    let (largest, largest_values) = std::iter::once((INPUT, values(&shapes[0])))
        .chain(outputs.iter().copied())
        .max_by_key(|&(_, values)| values)
        .expect("the input at least");
    Ok(ModelSummary {
        name: spec.name.clone(),
        input,
        classes: shapes.last().expect("an output")[1],
        parameters: trainable,
        flops_per_image: graph.flops_per_sample(&input)?,
        memory: Memory {
            batch,
            weights: bytes(tensors.iter().map(|(_, t)| t.len()).sum()),
            gradients: bytes(trainable),
            optimizer: optimizer_states * bytes(trainable),
            activations: 2 * bytes(outputs.iter().map(|&(_, values)| values).sum()),
            convolutions: bytes(lowering_scratch(
                &spec
                    .nodes
                    .iter()
                    .zip(&shapes[1..])
                    .map(|(node, output)| Lowering::of(&node.op, output, binding))
                    .collect::<Vec<_>>(),
            )),
            scratch: bytes(values(&shapes[0]) + batch * (1 + ROW_STATS)),
            largest_output: Largest {
                name: largest.to_string(),
                bytes: bytes(largest_values),
            },
            largest_tensor: tensors
                .iter()
                .max_by_key(|(_, tensor)| tensor.len())
                .map_or(
                    Largest {
                        name: String::new(),
                        bytes: 0,
                    },
                    |(name, tensor)| Largest {
                        name: name.clone(),
                        bytes: bytes(tensor.len()),
                    },
                ),
        },
    })
}

/// Every built-in model with a graph (not the baseline), at the study's architecture.
pub fn built_in() -> Vec<ModelSpec> {
    ModelKind::ALL
        .iter()
        .filter_map(|&kind| spec(kind, &Architecture::default()))
        .collect()
}

/// The table `fer models` prints.
pub fn table(summaries: &[ModelSummary]) -> String {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let mut out = format!(
        "{:<13} {:>11} {:>7} {:>12} {:>11}   memory at batch {} (MiB): {:>8} {:>8} {:>8} {:>11} {:>12}\n",
        "model",
        "input",
        "classes",
        "parameters",
        "GFLOP/image",
        summaries.first().map_or(0, |s| s.memory.batch),
        "weights",
        "grads",
        "adam",
        "activations",
        "conv scratch"
    );
    for s in summaries {
        let [c, h, w] = s.input;
        let m = &s.memory;
        out += &format!(
            "{:<13} {:>11} {:>7} {:>12} {:>11.3}   {:>27} {:>8.1} {:>8.1} {:>8.1} {:>11.1} {:>12.1}\n",
            s.name,
            format!("{c}×{h}×{w}"),
            s.classes,
            s.parameters,
            s.flops_per_image / 1e9,
            "",
            mib(m.weights),
            mib(m.gradients),
            mib(m.optimizer),
            mib(m.activations),
            mib(m.convolutions),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cnn's fourth convolution at batch 64 (512 → 512 channels, 3×3, 6×6 maps): patches of
    /// 64·36 rows by 4608, shared patch gradients of the same size, split-K's 64 grad-weights
    /// of 512·4608 where they fit a binding, tap-major's output of 512 × 64·36; Winograd's
    /// 16 matrices of 512·512, 512 × 64·9 tiles and 64·9 × 512. No lowering where the patches
    /// do not fit; no Winograd where its weights do not.
    #[test]
    fn a_lowering_follows_the_schedules_offered() {
        let conv = OpSpec::Conv2d {
            in_channels: 512,
            out_channels: 512,
            kernel_size: 3,
            stride: 1,
            padding: 1,
        };
        let output = [64, 512, 6, 6];
        let col = 64 * 36 * 4608;
        let mib = |mib: u64| Some(mib << 20);
        let tiles = 64 * 9;
        let winograd = [16 * 512 * 512, 16 * 512 * tiles, 16 * tiles * 512];
        let all = Lowering {
            own: col,
            patch_gradients: col,
            per_image: 64 * 512 * 4608,
            by_channel: 512 * 64 * 36,
            winograd,
        };
        assert_eq!(Lowering::of(&conv, &output, None), all);
        assert_eq!(
            Lowering::of(&conv, &output, mib(128)),
            Lowering {
                per_image: 0,
                ..all
            }
        );
        assert_eq!(
            Lowering::of(&conv, &output, mib(32)),
            Lowering {
                winograd,
                ..Lowering::default()
            }
        );
        // The weights' 16 MiB, over a 15 MiB binding.
        assert_eq!(Lowering::of(&conv, &output, mib(15)), Lowering::default());
        assert_eq!(
            Lowering::of(&OpSpec::Relu, &output, None),
            Lowering::default()
        );
    }

    /// A transposed convolution runs the convolution it transposes: 4 → 2 channels, kernel 4,
    /// stride 2, padding 1, out to 10×12, is the convolution of 2 → 4 channels onto 5×6; its
    /// input as [O, B·P] lives from forward to backward, so it is its own.
    #[test]
    fn a_transposed_convolution_counts_the_convolution_it_transposes() {
        let transposed = OpSpec::ConvTranspose2d {
            in_channels: 4,
            out_channels: 2,
            kernel_size: 4,
            stride: 2,
            padding: 1,
        };
        let (pixels, patch) = (5 * 6, 2 * 4 * 4);
        let col = 3 * pixels * patch;
        assert_eq!(
            Lowering::of(&transposed, &[3, 2, 10, 12], None),
            Lowering {
                own: col + 3 * 4 * pixels,
                patch_gradients: col,
                per_image: 3 * 4 * patch,
                by_channel: 0,
                winograd: [0; 3],
            }
        );
    }

    /// A shared buffer counts once, at its longest: requests of 5, 3, 8, 8 and 2 allocate 8.
    /// An own buffer counts in every layer.
    #[test]
    fn shared_scratch_counts_its_longest_request() {
        let layers: Vec<Lowering> = [5, 3, 8, 8, 2]
            .into_iter()
            .map(|len| Lowering {
                own: 1,
                patch_gradients: len,
                ..Lowering::default()
            })
            .collect();
        assert_eq!(lowering_scratch(&layers), 5 + 8);
        // Winograd's weights are each layer's own; its input and products shared.
        let winograd = |winograd| Lowering {
            winograd,
            ..Lowering::default()
        };
        let layers = [winograd([1, 20, 3]), winograd([2, 10, 30])];
        assert_eq!(lowering_scratch(&layers), 1 + 2 + 20 + 30);
    }
}
