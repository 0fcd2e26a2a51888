//! matmul: every variant × transpose × epilogue against the twin, on shapes that are not
//! multiples of any tile (and K = 1, M = 1, N = 1), batched and broadcast, packed and with
//! strided rows.
//!
//! Tolerance: each output is a K-term dot product plus at most two more terms (old C, bias),
//! so |gpu − exact| ≤ γ_{K+2}·Σ|terms| in any summation order, and the f64 twin is exact to
//! well within that. Σ|terms| is the twin run on |A|, |B|, |bias|, |C|.

use fer::kernels::matmul::{matmul, Epilogue, MatmulOperands, MatmulShape, MatmulVariant};
use fer::reference;

use crate::common::*;

fn check(variant: MatmulVariant, shape: MatmulShape, epilogue: Epilogue, with_bias: bool) {
    let seed = (shape.m * 1_000_003 + shape.n * 1009 + shape.k) as u64;
    let a = random(seed, shape.a_len());
    let b = random(seed + 1, shape.b_len());
    let bias_len = if epilogue.bias_per_row {
        shape.m
    } else {
        shape.n
    };
    let bias = with_bias.then(|| random(seed + 2, bias_len));
    let c_old = random(seed + 3, shape.c_len());

    let mut want = c_old.clone();
    reference::matmul::matmul(&shape, &a, &b, bias.as_deref(), epilogue, &mut want);
    let mut magnitude = abs(&c_old);
    let abs_epilogue = Epilogue {
        relu: false,
        ..epilogue
    };
    let abs_bias = bias.as_deref().map(abs);
    reference::matmul::matmul(
        &shape,
        &abs(&a),
        &abs(&b),
        abs_bias.as_deref(),
        abs_epilogue,
        &mut magnitude,
    );
    let tolerance: Vec<f64> = magnitude
        .iter()
        .map(|&m| gamma(shape.k + 2) * m as f64)
        .collect();

    let gpu_c = upload(&c_old);
    let gpu_bias = bias.as_deref().map(upload);
    let dispatches = matmul(
        gpu(),
        variant,
        &shape,
        epilogue,
        MatmulOperands {
            a: &upload(&a),
            b: &upload(&b),
            bias: gpu_bias.as_ref(),
            c: &gpu_c,
        },
    )
    .expect("matmul kernel builds");
    run(&dispatches.iter().collect::<Vec<_>>());
    assert_within(
        &format!("{variant:?} {shape:?} {epilogue:?} bias={with_bias}"),
        &read(&gpu_c),
        &want,
        &tolerance,
    );
}

/// (m, n, k): tile multiples, ragged edges, degenerate dimensions, and the models' shapes;
/// (9, 300, 7) spans two strips each way (matmul_strip: 8 rows × 256 columns), the second
/// holding one row and 44 columns; (128, 128, 24) is one matmul_large tile of three slabs, its
/// rows all vec4-aligned, and (130, 257, 21) spills past it in every dimension, by a ragged
/// slab in K; (1, 7, 2304) is split-K's: one tile, 18 chunks of 128.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (1, 7, 2304),
    (5, 3, 1),
    (7, 13, 5),
    (33, 65, 17),
    (64, 64, 64),
    (64, 128, 68),
    (70, 6, 130),
    (9, 300, 7),
    (128, 128, 24),
    (130, 257, 21),
];

fn all_transposes(variant: MatmulVariant) {
    for &(m, n, k) in SHAPES {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                let shape = MatmulShape {
                    trans_a,
                    trans_b,
                    ..MatmulShape::new(m, n, k)
                };
                check(variant, shape, Epilogue::default(), false);
            }
        }
    }
}

fn epilogues_and_batches(variant: MatmulVariant) {
    let shape = MatmulShape::new(19, 23, 9);
    check(
        variant,
        shape,
        Epilogue {
            relu: true,
            ..Epilogue::default()
        },
        true,
    );
    check(
        variant,
        shape,
        Epilogue {
            accumulate: true,
            ..Epilogue::default()
        },
        false,
    );
    check(
        variant,
        shape,
        Epilogue {
            relu: true,
            accumulate: true,
            bias_per_row: false,
        },
        true,
    );
    // A batch of three against one shared, transposed weight matrix (a Linear layer's view).
    let batched = MatmulShape {
        batch: 3,
        trans_b: true,
        broadcast_b: true,
        ..MatmulShape::new(9, 12, 16)
    };
    check(variant, batched, Epilogue::default(), true);
    // A shared weight times a batch of transposed patch matrices, bias per row (a lowered
    // convolution's forward).
    let lowered = MatmulShape {
        batch: 2,
        trans_b: true,
        broadcast_a: true,
        ..MatmulShape::new(7, 10, 13)
    };
    let per_row = Epilogue {
        bias_per_row: true,
        ..Epilogue::default()
    };
    check(variant, lowered, per_row, true);
    let both = MatmulShape {
        batch: 2,
        trans_a: true,
        ..MatmulShape::new(6, 5, 4)
    };
    check(variant, both, Epilogue::default(), false);
    // Every epilogue at once on a batch of products wider than a large tile, so each batch
    // holds tiles that end inside it.
    let wide = MatmulShape {
        batch: 2,
        trans_b: true,
        ..MatmulShape::new(131, 136, 12)
    };
    let everything = Epilogue {
        relu: true,
        accumulate: true,
        bias_per_row: true,
    };
    check(variant, wide, everything, true);
    // A batch of two Linear-like products with a long K (split-K's two chunks of 160 and 140),
    // through every epilogue with a bias per column.
    let long = MatmulShape {
        batch: 2,
        trans_b: true,
        broadcast_b: true,
        ..MatmulShape::new(5, 70, 300)
    };
    let per_column = Epilogue {
        bias_per_row: false,
        ..everything
    };
    check(variant, long, per_column, true);
}

/// Rows of A and C further apart than the product is wide (lda, ldc): blocks of columns of
/// wider matrices, as a Linear split into blocks of outputs reads dy and writes y. A stride that
/// is a multiple of 4 takes the vec4 loads, an odd one the scalar path; the gaps hold values the
/// kernel must neither read (random A) nor write (C's old values are compared too). Batch 2,
/// so the batch strides count the gaps; accumulate and bias, so the epilogue finds its element.
/// (5, 9, 261) is long enough for split-K's two chunks.
fn strided_rows(variant: MatmulVariant) {
    for (m, n, k) in [(3usize, 5, 7), (33, 65, 17), (9, 300, 6), (5, 9, 261)] {
        for trans_a in [false, true] {
            for trans_b in [false, true] {
                let stored_row = if trans_a { m } else { k };
                let aligned = stored_row.next_multiple_of(4) + 4;
                for (lda, ldc) in [(Some(aligned), None), (Some(stored_row + 3), Some(n + 5))] {
                    let shape = MatmulShape {
                        batch: 2,
                        trans_a,
                        trans_b,
                        lda,
                        ldc,
                        ..MatmulShape::new(m, n, k)
                    };
                    let accumulate = Epilogue {
                        accumulate: true,
                        ..Epilogue::default()
                    };
                    check(variant, shape, accumulate, true);
                }
            }
        }
    }
}

#[test]
fn naive_strided_rows() {
    strided_rows(MatmulVariant::Naive);
}

#[test]
fn register_strided_rows() {
    strided_rows(MatmulVariant::Register);
}

#[test]
fn workgroup_strided_rows() {
    strided_rows(MatmulVariant::Workgroup);
}

#[test]
fn strip_strided_rows() {
    strided_rows(MatmulVariant::Strip);
}

#[test]
fn large_strided_rows() {
    strided_rows(MatmulVariant::Large);
}

#[test]
fn split_k_strided_rows() {
    strided_rows(MatmulVariant::SplitK);
}

#[test]
fn naive_matches_reference_for_all_transposes() {
    all_transposes(MatmulVariant::Naive);
}

#[test]
fn register_matches_reference_for_all_transposes() {
    all_transposes(MatmulVariant::Register);
}

#[test]
fn workgroup_matches_reference_for_all_transposes() {
    all_transposes(MatmulVariant::Workgroup);
}

#[test]
fn strip_matches_reference_for_all_transposes() {
    all_transposes(MatmulVariant::Strip);
}

#[test]
fn large_matches_reference_for_all_transposes() {
    all_transposes(MatmulVariant::Large);
}

#[test]
fn split_k_matches_reference_for_all_transposes() {
    all_transposes(MatmulVariant::SplitK);
}

#[test]
fn naive_epilogues_and_batches() {
    epilogues_and_batches(MatmulVariant::Naive);
}

#[test]
fn register_epilogues_and_batches() {
    epilogues_and_batches(MatmulVariant::Register);
}

#[test]
fn workgroup_epilogues_and_batches() {
    epilogues_and_batches(MatmulVariant::Workgroup);
}

#[test]
fn strip_epilogues_and_batches() {
    epilogues_and_batches(MatmulVariant::Strip);
}

#[test]
fn large_epilogues_and_batches() {
    epilogues_and_batches(MatmulVariant::Large);
}

#[test]
fn split_k_epilogues_and_batches() {
    epilogues_and_batches(MatmulVariant::SplitK);
}

/// matmul's twin needs no finite-difference check of its own; its gradients are matmuls
/// (dA = dC·Bᵀ, dB = Aᵀ·dC). This checks that identity on the twin, which the layers rely on.
#[test]
fn transposed_products_are_the_gradients_of_a_product() {
    let (m, n, k) = (4, 5, 3);
    let a = random(1, m * k);
    let b = random(2, k * n);
    let r = random(3, m * n); // dL/dC
    let forward = |a: &[f32], b: &[f32]| {
        let mut c = vec![0.0; m * n];
        reference::matmul::matmul(
            &MatmulShape::new(m, n, k),
            a,
            b,
            None,
            Epilogue::default(),
            &mut c,
        );
        c
    };
    let mut grad_a = vec![0.0; m * k];
    let shape_da = MatmulShape {
        trans_b: true,
        ..MatmulShape::new(m, k, n)
    };
    reference::matmul::matmul(&shape_da, &r, &b, None, Epilogue::default(), &mut grad_a);
    let mut grad_b = vec![0.0; k * n];
    let shape_db = MatmulShape {
        trans_a: true,
        ..MatmulShape::new(k, n, m)
    };
    reference::matmul::matmul(&shape_db, &a, &r, None, Epilogue::default(), &mut grad_b);
    let numeric_a = numeric_gradient(&a, 1e-2, |a| dot(&forward(a, &b), &r));
    let numeric_b = numeric_gradient(&b, 1e-2, |b| dot(&forward(&a, b), &r));
    // Bilinear, so central differences are exact up to rounding of the f32 outputs.
    assert_gradient("dA", &grad_a, &numeric_a, 1e-4, 1e-4);
    assert_gradient("dB", &grad_b, &numeric_b, 1e-4, 1e-4);
}
