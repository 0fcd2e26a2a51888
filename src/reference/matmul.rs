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
    /// Elements from one stored row of A to the next (BLAS's leading dimension); `None`:
    /// packed, the stored row's length (k, or m when transposed). A wider stride reads a block
    /// of columns of a wider matrix, as a Linear split into blocks of outputs reads dy.
    pub lda: Option<usize>,
    /// Elements from one row of C to the next; `None`: packed (n). A wider stride writes a
    /// block of columns of a wider matrix.
    pub ldc: Option<usize>,
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
            lda: None,
            ldc: None,
        }
    }

    /// A's stored rows and their length: m×k, or k×m when transposed.
    fn a_stored(&self) -> (usize, usize) {
        if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        }
    }

    /// Elements from one stored row of A to the next.
    pub fn a_row_stride(&self) -> usize {
        self.lda.unwrap_or(self.a_stored().1)
    }

    /// Elements from one row of C to the next.
    pub fn c_row_stride(&self) -> usize {
        self.ldc.unwrap_or(self.n)
    }

    /// Elements from one batch entry's A to the next (0 when broadcast).
    pub fn a_batch_stride(&self) -> usize {
        if self.broadcast_a {
            0
        } else {
            self.a_stored().0 * self.a_row_stride()
        }
    }

    /// Elements from one batch entry's C to the next.
    pub fn c_batch_stride(&self) -> usize {
        self.m * self.c_row_stride()
    }

    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.n * self.k) as f64
    }

    /// Elements A spans: up to the end of the last batch entry's last stored row.
    pub fn a_len(&self) -> usize {
        let (rows, row_len) = self.a_stored();
        let matrices = if self.broadcast_a { 1 } else { self.batch };
        strided_len(matrices * rows, row_len, self.a_row_stride())
    }

    pub fn b_len(&self) -> usize {
        self.k * self.n * if self.broadcast_b { 1 } else { self.batch }
    }

    /// Elements C spans: up to the end of the last row.
    pub fn c_len(&self) -> usize {
        strided_len(self.batch * self.m, self.n, self.c_row_stride())
    }

    /// The index of C[batch, m, n].
    pub fn c_index(&self, batch: usize, m: usize, n: usize) -> usize {
        batch * self.c_batch_stride() + m * self.c_row_stride() + n
    }

    pub fn a_at(&self, a: &[f32], batch: usize, m: usize, k: usize) -> f32 {
        let (row, column) = if self.trans_a { (k, m) } else { (m, k) };
        a[batch * self.a_batch_stride() + row * self.a_row_stride() + column]
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
                let out = &mut c[shape.c_index(batch, m, n)];
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

/// Elements of `rows` rows of `row_len` elements, `stride` apart: the last row ends early.
fn strided_len(rows: usize, row_len: usize, stride: usize) -> usize {
    match rows {
        0 => 0,
        _ => (rows - 1) * stride + row_len,
    }
}
