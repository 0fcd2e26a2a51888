// Elementwise kernels over n f32 values, one invocation per element on a 1-d grid of 256-wide
// workgroups folded past 65 535 (see workgroups_1d). The twins are in
// src/reference/elementwise.rs.
//
//   relu            y = x > 0 ? x : 0                       (torch.relu)
//   relu_backward   dx = x > 0 ? dy : 0                     (torch threshold_backward)
//   dropout         y = keep(i) ? x·a : 0, a = 1/(1 − p)    (torch dropout, training mode); the
//                   same call on dy with the same seed is the backward pass
//   add             z = x + y
//   scale           x = a·x, in place
//   fill            x = a
//   axpy            y = a·x + y
//
// Dropout's mask is Philox2x32-10 (Salmon et al., SC'11; Random123's philox2x32) of the
// counter (i, seed_hi) under the key seed_lo: element i is kept iff its top 24 bits, read as
// a uniform in [0, 1), are ≥ p, i.e. iff (bits >> 8) ≥ threshold = ceil(p·2^24). Nothing is
// stored: backward recomputes the mask from (seed, i).

struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    threshold: u32,
    a: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---------------------------------------------------------------------------------------------
// relu

@group(0) @binding(1) var<storage, read> relu_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> relu_y: array<f32>;

@compute @workgroup_size(WG)
fn relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let x = relu_x[i];
    relu_y[i] = select(x, 0.0, x <= 0.0);
}

@group(0) @binding(1) var<storage, read> relu_backward_x: array<f32>;
@group(0) @binding(2) var<storage, read> relu_backward_dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> relu_backward_dx: array<f32>;

@compute @workgroup_size(WG)
fn relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    relu_backward_dx[i] = select(0.0, relu_backward_dy[i], relu_backward_x[i] > 0.0);
}

// ---------------------------------------------------------------------------------------------
// dropout

// The high 32 bits of the 64-bit product a·b, from 16-bit halves (WGSL has no 64-bit integers).
fn mul_hi(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let carry = ((lo_lo >> 16u) + (hi_lo & 0xffffu) + (lo_hi & 0xffffu)) >> 16u;
    return a_hi * b_hi + (hi_lo >> 16u) + (lo_hi >> 16u) + carry;
}

fn philox2x32(counter: vec2<u32>, key: u32) -> vec2<u32> {
    var x = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let hi = mul_hi(0xD256D193u, x.x);
        x = vec2<u32>(hi ^ k ^ x.y, 0xD256D193u * x.x);
        k += 0x9E3779B9u;
    }
    return x;
}

@group(0) @binding(1) var<storage, read> dropout_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dropout_y: array<f32>;

@compute @workgroup_size(WG)
fn dropout(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let bits = philox2x32(vec2<u32>(i, p.seed_hi), p.seed_lo).x;
    // select, not a multiply by a 0/1 mask: at p = 1, a is infinite and x·a·0 would be NaN.
    dropout_y[i] = select(0.0, dropout_x[i] * p.a, (bits >> 8u) >= p.threshold);
}

// ---------------------------------------------------------------------------------------------
// arithmetic

@group(0) @binding(1) var<storage, read> add_x: array<f32>;
@group(0) @binding(2) var<storage, read> add_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> add_z: array<f32>;

@compute @workgroup_size(WG)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    add_z[i] = add_x[i] + add_y[i];
}

@group(0) @binding(1) var<storage, read_write> scale_x: array<f32>;

@compute @workgroup_size(WG)
fn scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    scale_x[i] = p.a * scale_x[i];
}

@group(0) @binding(1) var<storage, read_write> fill_x: array<f32>;

@compute @workgroup_size(WG)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    fill_x[i] = p.a;
}

@group(0) @binding(1) var<storage, read> axpy_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> axpy_y: array<f32>;

@compute @workgroup_size(WG)
fn axpy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = element(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    axpy_y[i] = p.a * axpy_x[i] + axpy_y[i];
}
