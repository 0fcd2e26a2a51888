//! Elementwise ops: relu and sigmoid with their backward passes, dropout with a counter-based
//! mask, add, scale, fill and axpy. Each takes f32 slices and returns (or updates) f32 values,
//! with the exact arithmetic the GPU does, so masks and exact ops match the GPU bit for bit;
//! sigmoid, whose exp the GPU approximates, is computed in f64 and rounded once.

/// `torch.relu`: `x > 0 ? x : 0` (NaN passes through).
pub fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v <= 0.0 { 0.0 } else { v }).collect()
}

/// PyTorch's `threshold_backward(dy, x, 0)`: `dx = x > 0 ? dy : 0`, so the gradient at 0 is 0.
pub fn relu_backward(x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), dy.len(), "relu_backward: x and dy lengths");
    x.iter()
        .zip(dy)
        .map(|(&x, &dy)| if x > 0.0 { dy } else { 0.0 })
        .collect()
}

/// `torch.sigmoid`: 1/(1 + e^−x), the f32 nearest the exact value.
pub fn sigmoid(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| (1.0 / (1.0 + (-v as f64).exp())) as f32)
        .collect()
}

/// PyTorch's `sigmoid_backward(dy, y)`: `dx = dy·(1 − y)·y` from the forward's output y,
/// rounded once.
pub fn sigmoid_backward(y: &[f32], dy: &[f32]) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "sigmoid_backward: y and dy lengths");
    y.iter()
        .zip(dy)
        .map(|(&y, &dy)| (dy as f64 * (1.0 - y as f64) * y as f64) as f32)
        .collect()
}

/// Philox2x32-10 (Salmon, Moraes, Dror, Shaw: "Parallel random numbers: as easy as 1, 2, 3",
/// SC'11), exactly Random123's `philox2x32(counter, key)`.
pub fn philox2x32(counter: [u32; 2], key: u32) -> [u32; 2] {
    const MULTIPLIER: u32 = 0xD256_D193;
    const KEY_STEP: u32 = 0x9E37_79B9;
    let [mut x0, mut x1] = counter;
    let mut key = key;
    for _ in 0..10 {
        let product = MULTIPLIER as u64 * x0 as u64;
        (x0, x1) = ((product >> 32) as u32 ^ key ^ x1, product as u32);
        key = key.wrapping_add(KEY_STEP);
    }
    [x0, x1]
}

/// Dropout in training mode (`torch.nn.functional.dropout(x, p, training=True)`): each element
/// is zeroed with probability `p` and the survivors are scaled by `1/(1 − p)`.
///
/// The mask is a pure function of `(seed, i)`: element i is kept iff the top 24 bits of
/// `philox2x32([i, seed >> 32], seed as u32)[0]`, read as a uniform in [0, 1), are ≥ p. Pass a
/// fresh seed per step and layer; the backward pass reuses the forward's seed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Probability of zeroing an element, in [0, 1].
    pub p: f32,
    pub seed: u64,
}

impl Dropout {
    pub fn new(p: f32, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "dropout probability {p} is outside [0, 1]"
        );
        Dropout { p, seed }
    }

    /// Keep iff `bits >> 8 ≥ threshold`: `u = (bits >> 8)·2^-24 ≥ p` ⟺ `bits >> 8 ≥ ⌈p·2^24⌉`.
    pub fn threshold(&self) -> u32 {
        (self.p as f64 * (1u64 << 24) as f64).ceil() as u32
    }

    /// The survivors' factor `1/(1 − p)`, rounded once to f32 (infinite at p = 1, never used).
    pub fn scale(&self) -> f32 {
        (1.0 / (1.0 - self.p as f64)) as f32
    }

    /// Whether element `i` survives.
    pub fn keeps(&self, i: u32) -> bool {
        let bits = philox2x32([i, (self.seed >> 32) as u32], self.seed as u32)[0];
        bits >> 8 >= self.threshold()
    }
}

/// `y = keep(i) ? x·scale : 0`. Also the backward pass: `dx = dropout(dy)` with the same seed.
pub fn dropout(dropout: &Dropout, x: &[f32]) -> Vec<f32> {
    let scale = dropout.scale();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if dropout.keeps(i as u32) {
                v * scale
            } else {
                0.0
            }
        })
        .collect()
}

/// `z = x + y`.
pub fn add(x: &[f32], y: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), y.len(), "add: x and y lengths");
    x.iter().zip(y).map(|(&x, &y)| x + y).collect()
}

/// `x = a·x`, in place.
pub fn scale(a: f32, x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v *= a);
}

/// `y = a·x + y`, rounded once from f64 (the GPU may or may not fuse the multiply-add).
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    assert_eq!(x.len(), y.len(), "axpy: x and y lengths");
    for (y, &x) in y.iter_mut().zip(x) {
        *y = (a as f64 * x as f64 + *y as f64) as f32;
    }
}
