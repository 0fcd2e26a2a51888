/// The shape of `C[b] = op(A[b]) · op(B[b])`: op(A) is m×k, op(B) is k×n, C is m×n row-major.
/// A transposed operand is stored k×m (A) or n×k (B) and read in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    /// The operand is one matrix shared by every batch entry (stride 0).
    pub broadcast_a: bool,
    pub broadcast_b: bool,
}

impl MatmulShape {
    /// A single `m×k · k×n` product, no transposes.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        MatmulShape {
            batch: 1,
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            broadcast_a: false,
            broadcast_b: false,
        }
    }

    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.n * self.k) as f64
    }

    pub fn a_len(&self) -> usize {
        self.m * self.k * if self.broadcast_a { 1 } else { self.batch }
    }

    pub fn b_len(&self) -> usize {
        self.k * self.n * if self.broadcast_b { 1 } else { self.batch }
    }

    pub fn c_len(&self) -> usize {
        self.batch * self.m * self.n
    }

    pub fn a_at(&self, a: &[f32], batch: usize, m: usize, k: usize) -> f32 {
        let base = if self.broadcast_a {
            0
        } else {
            batch * self.m * self.k
        };
        a[base
            + if self.trans_a {
                k * self.m + m
            } else {
                m * self.k + k
            }]
    }

    pub fn b_at(&self, b: &[f32], batch: usize, k: usize, n: usize) -> f32 {
        let base = if self.broadcast_b {
            0
        } else {
            batch * self.k * self.n
        };
        b[base
            + if self.trans_b {
                n * self.k + k
            } else {
                k * self.n + n
            }]
    }
}

/// What happens to each output after the product: `c = relu(a·b + c_old? + bias?)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Epilogue {
    pub relu: bool,
    /// Add the product to C's old contents instead of overwriting them.
    pub accumulate: bool,
    /// The bias has one entry per row, `bias[m]` (a convolution's per-channel bias on
    /// `[channels, pixels]`), instead of one per column, `bias[n]` (a Linear layer's).
    pub bias_per_row: bool,
}

pub fn matmul(
    shape: &MatmulShape,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    epilogue: Epilogue,
    c: &mut [f32],
) {
    for batch in 0..shape.batch {
        for m in 0..shape.m {
            for n in 0..shape.n {
                let mut acc = 0.0f64;
                for k in 0..shape.k {
                    acc += shape.a_at(a, batch, m, k) as f64 * shape.b_at(b, batch, k, n) as f64;
                }
                let out = &mut c[(batch * shape.m + m) * shape.n + n];
                if epilogue.accumulate {
                    acc += *out as f64;
                }
                if let Some(bias) = bias {
                    acc += bias[if epilogue.bias_per_row { m } else { n }] as f64;
                }
                if epilogue.relu {
                    acc = acc.max(0.0);
                }
                *out = acc as f32;
            }
        }
    }
}
