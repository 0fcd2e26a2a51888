//! Shared test harness: one GPU context for the whole run, data, and tolerance checks.

use std::sync::OnceLock;

use fer::gpu::{Dispatch, GpuBuffer, GpuContext, GpuOptions};
use fer::rng::Rng;

/// f32 unit roundoff: the relative error of one rounded operation.
pub const U: f64 = 1.0 / (1u64 << 24) as f64;

/// The one context every test shares (opening a device costs ~100 ms on lavapipe).
pub fn gpu() -> &'static GpuContext {
    static CONTEXT: OnceLock<GpuContext> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let options = GpuOptions::from_env().expect("FER_BACKEND is not a known backend");
        GpuContext::new(&options).expect("kernel tests need a GPU adapter (lavapipe will do)")
    })
}

pub fn upload(data: &[f32]) -> GpuBuffer {
    GpuBuffer::from_slice(gpu(), "test input", data)
}

pub fn upload_u32(data: &[u32]) -> GpuBuffer {
    GpuBuffer::from_slice(gpu(), "test input", data)
}

pub fn zeros(len: usize) -> GpuBuffer {
    GpuBuffer::zeros(gpu(), "test output", len)
}

/// Runs the dispatches in one submit and waits.
pub fn run(dispatches: &[&Dispatch]) {
    gpu()
        .run(dispatches.iter().copied())
        .expect("GPU run failed");
}

pub fn read(buffer: &GpuBuffer) -> Vec<f32> {
    buffer.read(gpu()).expect("readback failed")
}

pub fn read_u32(buffer: &GpuBuffer) -> Vec<u32> {
    buffer.read(gpu()).expect("readback failed")
}

/// `len` values from U(-1, 1), reproducible from `seed`.
pub fn random(seed: u64, len: usize) -> Vec<f32> {
    Rng::new(seed).uniform_vec(len, -1.0, 1.0)
}

/// |v| elementwise: the magnitudes an error bound scales with.
pub fn abs(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| x.abs()).collect()
}

/// γ_n = n·u / (1 − n·u): the classic bound on the relative error of an n-term f32 sum or dot
/// product (Higham, Accuracy and Stability of Numerical Algorithms, §3.1), whatever the order.
pub fn gamma(terms: usize) -> f64 {
    let nu = terms as f64 * U;
    nu / (1.0 - nu)
}

/// Asserts `|got[i] - want[i]| <= tolerance[i]` everywhere, naming the worst element.
/// Tolerances come from the arithmetic (see [`gamma`]), so each test says why it may differ.
/// Each also admits a subnormal result read as zero: WGSL lets an implementation flush
/// subnormals (§15.7.2), and NVIDIA's Vulkan driver does, so a correct kernel may be off by
/// less than the smallest normal f32.
pub fn assert_within(what: &str, got: &[f32], want: &[f32], tolerance: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(got.len(), tolerance.len(), "{what}: tolerance length");
    let flushed = f32::MIN_POSITIVE as f64;
    let mut worst: Option<(usize, f64)> = None;
    for i in 0..got.len() {
        let error = (got[i] as f64 - want[i] as f64).abs();
        let ratio = error / (tolerance[i] + flushed);
        let within = error <= tolerance[i] + flushed; // false for NaN, which must fail
        if !within && worst.is_none_or(|(_, r)| ratio > r) {
            worst = Some((i, ratio));
        }
    }
    if let Some((i, ratio)) = worst {
        panic!(
            "{what}: element {i} is {} but the reference says {} (error {:.3e}, {ratio:.1}× the \
             tolerance {:.3e})",
            got[i],
            want[i],
            (got[i] as f64 - want[i] as f64).abs(),
            tolerance[i]
        );
    }
}

/// A twin's result and, per element, the bound `γ_terms · magnitude` on an f32 computation's
/// distance from it, with `magnitude` the twin run on absolute values (Σ|terms|).
pub struct Expected {
    want: Vec<f32>,
    tolerance: Vec<f64>,
}

impl Expected {
    pub fn new(want: Vec<f32>, magnitude: &[f32], terms: usize) -> Self {
        let tolerance = magnitude.iter().map(|&m| gamma(terms) * m as f64).collect();
        Expected { want, tolerance }
    }

    pub fn check(&self, what: &str, got: &GpuBuffer) {
        assert_within(what, &read(got), &self.want, &self.tolerance);
    }
}

/// The same tolerance for every element.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tolerance: f64) {
    assert_within(what, got, want, &vec![tolerance; got.len()]);
}

/// Bit-for-bit equality, −0 against +0 and NaN payloads included, naming the first element
/// that differs.
pub fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} is {} but the twin says {}",
            got[i], want[i]
        );
    }
}

/// Central-difference gradient of a scalar function at `x`, in f64 around f32 inputs.
pub fn numeric_gradient(x: &[f32], step: f32, f: impl Fn(&[f32]) -> f64) -> Vec<f64> {
    let mut probe = x.to_vec();
    (0..x.len())
        .map(|i| {
            probe[i] = x[i] + step;
            let up = f(&probe);
            probe[i] = x[i] - step;
            let down = f(&probe);
            probe[i] = x[i];
            // The step actually taken, after rounding x ± step to f32.
            let taken = (x[i] + step) as f64 - (x[i] - step) as f64;
            (up - down) / taken
        })
        .collect()
}

/// Σ y·r in f64: a scalar loss whose gradient with respect to y is the fixed random `r`.
pub fn dot(y: &[f32], r: &[f32]) -> f64 {
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Asserts an analytic gradient matches a numeric one: |a − n| ≤ atol + rtol·|n|.
pub fn assert_gradient(what: &str, analytic: &[f32], numeric: &[f64], atol: f64, rtol: f64) {
    let want: Vec<f32> = numeric.iter().map(|&v| v as f32).collect();
    let tolerance: Vec<f64> = numeric.iter().map(|v| atol + rtol * v.abs()).collect();
    assert_within(what, analytic, &want, &tolerance);
}
