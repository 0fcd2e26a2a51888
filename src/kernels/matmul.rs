use serde::Serialize;

use crate::gpu::{
    self, AdapterSummary, Binding, Cost, Dispatch, GpuBuffer, GpuContext, GpuError, KernelSpec,
};
pub use crate::reference::matmul::{Epilogue, MatmulShape};
use crate::shaders;

/// The matmul kernels of `shaders/matmul.wgsl`; the same contract, different schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum MatmulVariant {
    /// One output per invocation.
    Naive,
    /// 4×4 register block per invocation, vec4 loads, no workgroup memory (CPU adapters).
    Register,
    /// 64×64 tiles staged through workgroup memory (real GPUs).
    Workgroup,
    /// 8×4 outputs per invocation, the 8 rows shared by the workgroup so A's loads are uniform
    /// (CPU adapters, wide products).
    Strip,
    /// 128×128 tiles staged through workgroup memory, 8×8 outputs per invocation (real GPUs,
    /// products with many tiles).
    Large,
    /// `Workgroup` with K split into chunks summed by a second kernel, for products with few
    /// tiles and a long K (a Linear layer at a small batch); plain `Workgroup` where that leaves
    /// a single chunk.
    #[value(name = "split_k")]
    SplitK,
}

impl MatmulVariant {
    pub const ALL: [MatmulVariant; 6] = [
        MatmulVariant::Naive,
        MatmulVariant::Register,
        MatmulVariant::Workgroup,
        MatmulVariant::Strip,
        MatmulVariant::Large,
        MatmulVariant::SplitK,
    ];

    /// The schedule that suits the adapter's kind: on a CPU adapter barriers and workgroup
    /// memory are expensive, so register blocks win; on a real GPU workgroup tiles do.
    pub fn preferred(adapter: &AdapterSummary) -> Self {
        if adapter.is_software() {
            MatmulVariant::Register
        } else {
            MatmulVariant::Workgroup
        }
    }

    /// The variant to use for `shape` on this adapter: measured once when autotuning (see
    /// [`GpuContext::tuned`]), [`MatmulVariant::preferred`] otherwise.
    pub fn tuned(ctx: &GpuContext, shape: &MatmulShape) -> Result<Self, GpuError> {
        let key = format!(
            "matmul {}x{}x{} batch {}{}{}",
            shape.m,
            shape.n,
            shape.k,
            shape.batch,
            if shape.trans_a { " Aᵀ" } else { "" },
            if shape.trans_b { " Bᵀ" } else { "" }
        );
        let preferred = Self::preferred(ctx.summary());
        ctx.tuned(&key, &[&shaders::MATMUL], preferred, || fastest(ctx, shape))
    }

    fn name(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "naive",
            MatmulVariant::Register => "register",
            MatmulVariant::Workgroup => "workgroup",
            MatmulVariant::Strip => "strip",
            MatmulVariant::Large => "large",
            MatmulVariant::SplitK => "split_k",
        }
    }

    fn entry(self) -> &'static str {
        match self {
            MatmulVariant::Naive => "matmul_naive",
            MatmulVariant::Register => "matmul_register",
            MatmulVariant::Workgroup | MatmulVariant::SplitK => "matmul_workgroup",
            MatmulVariant::Strip => "matmul_strip",
            MatmulVariant::Large => "matmul_large",
        }
    }

    /// Rows × columns of C one workgroup covers.
    fn tile(self) -> (usize, usize) {
        match self {
            MatmulVariant::Naive => (16, 16),
            MatmulVariant::Register => (32, 32),
            MatmulVariant::Workgroup | MatmulVariant::SplitK => (64, 64),
            MatmulVariant::Strip => (8, 256),
            MatmulVariant::Large => (128, 128),
        }
    }

    /// Chunks of K the variant sums separately: as many as bring the product to about
    /// [`SPLIT_K_WORKGROUPS`] workgroups, none shorter than [`SPLIT_K_MIN_CHUNK`]; 1 for the
    /// variants that do not split.
    fn k_splits(self, shape: &MatmulShape) -> usize {
        if self != MatmulVariant::SplitK {
            return 1;
        }
        let (tile_m, tile_n) = self.tile();
        let tiles = shape.batch * shape.m.div_ceil(tile_m) * shape.n.div_ceil(tile_n);
        SPLIT_K_WORKGROUPS
            .div_ceil(tiles)
            .min(shape.k / SPLIT_K_MIN_CHUNK)
            .max(1)
    }
}

/// Workgroups split-K aims for: about two per multiprocessor of a large GPU (an H200 has 132).
const SPLIT_K_WORKGROUPS: usize = 256;

/// The shortest chunk of K split-K gives a workgroup: 8 of matmul_workgroup's slabs, so the
/// partial sums' traffic stays small beside the product's.
const SPLIT_K_MIN_CHUNK: usize = 128;

named_choice!(MatmulVariant, "matmul variant");

/// Times every variant on `shape` (see [`gpu::fastest`]) and returns the fastest. Split-K
/// competes only where it splits: otherwise it is `Workgroup` timed twice.
fn fastest(ctx: &GpuContext, shape: &MatmulShape) -> Result<MatmulVariant, GpuError> {
    let a = GpuBuffer::zeros(ctx, "tuning A", shape.a_len());
    let b = GpuBuffer::zeros(ctx, "tuning B", shape.b_len());
    let c = GpuBuffer::zeros(ctx, "tuning C", shape.c_len());
    let launches = MatmulVariant::ALL
        .into_iter()
        .filter(|variant| *variant != MatmulVariant::SplitK || variant.k_splits(shape) > 1)
        .map(|variant| {
            let operands = MatmulOperands {
                a: &a,
                b: &b,
                bias: None,
                c: &c,
            };
            Ok((
                variant,
                matmul(ctx, variant, shape, Epilogue::default(), operands)?,
            ))
        })
        .collect::<Result<Vec<_>, GpuError>>()?;
    let candidates: Vec<_> = launches
        .iter()
        .map(|(variant, dispatches)| (*variant, dispatches.iter().collect()))
        .collect();
    let fastest = gpu::fastest(ctx, &candidates)?;
    Ok(fastest.unwrap_or_else(|| MatmulVariant::preferred(ctx.summary())))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    vec4_a: u32,
    vec4_b: u32,
    lda: u32,
    ldc: u32,
    splits: u32,
}

/// The structs this module uploads, for the layout test.
#[doc(hidden)]
pub fn uniform_layouts() -> Vec<super::UniformLayout> {
    vec![uniform_layout!(shaders::MATMUL, Params:
        m, n, k, batch, stride_a, stride_b, stride_c, vec4_a, vec4_b, lda, ldc, splits
    )]
}

/// The buffers of one product: `c = epilogue(op(a) · op(b) + bias)`.
pub struct MatmulOperands<'a> {
    pub a: &'a GpuBuffer,
    pub b: &'a GpuBuffer,
    /// Added per column (length n), or per row (length m) if the epilogue says so.
    pub bias: Option<&'a GpuBuffer>,
    pub c: &'a GpuBuffer,
}

/// The launches of one product, to record in order: one, or split-K's chunks and their sum.
pub fn matmul(
    ctx: &GpuContext,
    variant: MatmulVariant,
    shape: &MatmulShape,
    epilogue: Epilogue,
    operands: MatmulOperands,
) -> Result<Vec<Dispatch>, GpuError> {
    let MatmulOperands { a, b, bias, c } = operands;
    assert!(
        a.len() >= shape.a_len(),
        "matmul: A is too small for {shape:?}"
    );
    assert!(
        b.len() >= shape.b_len(),
        "matmul: B is too small for {shape:?}"
    );
    assert!(
        c.len() >= shape.c_len(),
        "matmul: C is too small for {shape:?}"
    );
    let bias_len = if epilogue.bias_per_row {
        shape.m
    } else {
        shape.n
    };
    assert!(
        bias.is_none_or(|bias| bias.len() >= bias_len),
        "matmul: bias shorter than {bias_len}"
    );
    let flag = |on: bool| if on { 1.0 } else { 0.0 };
    // Every entry point takes the same bindings; a split pass leaves the epilogue to the sum.
    let kernel = |entry, split_pass: bool| {
        let epilogue_flag = |on: bool| flag(on && !split_pass);
        ctx.kernel(&KernelSpec {
            shader: &shaders::MATMUL,
            entry,
            bindings: &[
                Binding::Uniform,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadOnly,
                Binding::ReadWrite,
            ],
            constants: &[
                ("TRANS_A", flag(shape.trans_a)),
                ("TRANS_B", flag(shape.trans_b)),
                ("BIAS", epilogue_flag(bias.is_some())),
                ("BIAS_ROWS", epilogue_flag(epilogue.bias_per_row)),
                ("RELU", epilogue_flag(epilogue.relu)),
                ("ACCUMULATE", epilogue_flag(epilogue.accumulate)),
                ("SPLIT_K", flag(split_pass)),
            ],
        })
    };
    let splits = variant.k_splits(shape);
    let stride_a = shape.a_batch_stride();
    let stride_b = if shape.broadcast_b {
        0
    } else {
        shape.k * shape.n
    };
    // vec4 loads run along the stored rows' contiguous axis; rows and batches must stay aligned.
    let row_a = shape.a_row_stride();
    let row_b = if shape.trans_b { shape.k } else { shape.n };
    let params = Params {
        m: shape.m as u32,
        n: shape.n as u32,
        k: shape.k as u32,
        batch: shape.batch as u32,
        stride_a: stride_a as u32,
        stride_b: stride_b as u32,
        stride_c: shape.c_batch_stride() as u32,
        vec4_a: (row_a % 4 == 0 && stride_a % 4 == 0) as u32,
        vec4_b: (row_b % 4 == 0 && stride_b % 4 == 0) as u32,
        lda: row_a as u32,
        ldc: shape.c_row_stride() as u32,
        splits: splits as u32,
    };
    // Accumulating reads C as well as writing it. Strided rows move only their elements.
    let c_passes = if epilogue.accumulate { 2 } else { 1 };
    let a_matrices = if shape.broadcast_a { 1 } else { shape.batch };
    let operands_moved = Cost::words(a_matrices * shape.m * shape.k + shape.b_len());
    let epilogue_moved =
        Cost::words(c_passes * shape.batch * shape.m * shape.n + bias.map_or(0, |_| bias_len));
    let bias = GpuBuffer::or_placeholder(ctx, bias, "no bias");
    let (tile_m, tile_n) = variant.tile();
    let workgroups = |depth: usize| {
        [
            shape.n.div_ceil(tile_n) as u32,
            shape.m.div_ceil(tile_m) as u32,
            depth as u32,
        ]
    };
    if splits == 1 {
        let kernel = kernel(variant.entry(), false)?;
        let buffers = [a, b, &bias, c];
        let product = Dispatch::new(ctx, &kernel, &params, &buffers, workgroups(shape.batch));
        return Ok(vec![product.with_cost(Cost {
            flops: shape.flops(),
            bytes: operands_moved + epilogue_moved,
        })]);
    }
    // Split: the chunks write their partial sums where C would be, the sum reads them as A
    // (b is bound but unread) and writes C; the product's cost is charged to the chunks, the
    // partials' traffic to both.
    let outputs = shape.batch * shape.m * shape.n;
    let partials = GpuBuffer::zeros(ctx, "matmul split-K partial sums", splits * outputs);
    let partials_bytes = Cost::words(splits * outputs);
    let chunks = Dispatch::new(
        ctx,
        &kernel(variant.entry(), true)?,
        &params,
        &[a, b, &bias, &partials],
        workgroups(splits * shape.batch),
    )
    .with_cost(Cost {
        flops: shape.flops(),
        bytes: operands_moved + partials_bytes,
    });
    let sum = Dispatch::new(
        ctx,
        &kernel("matmul_split_sum", false)?,
        &params,
        &[&partials, b, &bias, c],
        gpu::workgroups_1d(outputs.div_ceil(64)),
    )
    .with_cost(Cost {
        flops: (splits * outputs) as f64,
        bytes: partials_bytes + epilogue_moved,
    });
    Ok(vec![chunks, sum])
}
