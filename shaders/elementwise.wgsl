// Elementwise kernels over the first n f32 values of their buffers, a quad per invocation
// (quads.wgsl, prepended). The twins are in src/reference/elementwise.rs.
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

@group(0) @binding(0) var<uniform> p: Params;

// ---------------------------------------------------------------------------------------------
// relu

@group(0) @binding(1) var<storage, read> relu_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> relu_y: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn relu(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let x = relu_x[q];
    var y = select(x, vec4<f32>(0.0), x <= vec4<f32>(0.0));
    if is_last_partial(q, p.n) {
        y = below_n(q, p.n, y, relu_y[q]);
    }
    relu_y[q] = y;
}

@group(0) @binding(1) var<storage, read> relu_backward_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> relu_backward_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> relu_backward_dx: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let x = relu_backward_x[q];
    var dx = select(vec4<f32>(0.0), relu_backward_dy[q], x > vec4<f32>(0.0));
    if is_last_partial(q, p.n) {
        dx = below_n(q, p.n, dx, relu_backward_dx[q]);
    }
    relu_backward_dx[q] = dx;
}

// ---------------------------------------------------------------------------------------------
// dropout

// The high 32 bits of the 64-bit products a·b, from 16-bit halves (WGSL has no 64-bit
// integers).
fn mul_hi(a: u32, b: vec4<u32>) -> vec4<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & vec4<u32>(0xffffu);
    let b_hi = b >> vec4<u32>(16u);
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let carry = ((lo_lo >> vec4<u32>(16u)) + (hi_lo & vec4<u32>(0xffffu))
        + (lo_hi & vec4<u32>(0xffffu))) >> vec4<u32>(16u);
    return a_hi * b_hi + (hi_lo >> vec4<u32>(16u)) + (lo_hi >> vec4<u32>(16u)) + carry;
}

// The first output word of philox2x32 for four counters (lo[j], hi) under one key.
fn philox2x32_first(lo: vec4<u32>, hi: u32, key: u32) -> vec4<u32> {
    var x0 = lo;
    var x1 = vec4<u32>(hi);
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let product_hi = mul_hi(0xD256D193u, x0);
        let product_lo = 0xD256D193u * x0;
        x0 = product_hi ^ vec4<u32>(k) ^ x1;
        x1 = product_lo;
        k += 0x9E3779B9u;
    }
    return x0;
}

@group(0) @binding(1) var<storage, read> dropout_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dropout_y: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn dropout(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let bits = philox2x32_first(indices(q), p.seed_hi, p.seed_lo);
    let keep = (bits >> vec4<u32>(8u)) >= vec4<u32>(p.threshold);
    // select, not a multiply by a 0/1 mask: at p = 1, a is infinite and x·a·0 would be NaN.
    var y = select(vec4<f32>(0.0), dropout_x[q] * p.a, keep);
    if is_last_partial(q, p.n) {
        y = below_n(q, p.n, y, dropout_y[q]);
    }
    dropout_y[q] = y;
}

// ---------------------------------------------------------------------------------------------
// arithmetic

@group(0) @binding(1) var<storage, read> add_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> add_y: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> add_z: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn add(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    var z = add_x[q] + add_y[q];
    if is_last_partial(q, p.n) {
        z = below_n(q, p.n, z, add_z[q]);
    }
    add_z[q] = z;
}

@group(0) @binding(1) var<storage, read_write> scale_x: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let x = scale_x[q];
    scale_x[q] = below_n(q, p.n, p.a * x, x);
}

@group(0) @binding(1) var<storage, read_write> fill_x: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    var x = vec4<f32>(p.a);
    if is_last_partial(q, p.n) {
        x = below_n(q, p.n, x, fill_x[q]);
    }
    fill_x[q] = x;
}

@group(0) @binding(1) var<storage, read> axpy_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> axpy_y: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn axpy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let y = axpy_y[q];
    axpy_y[q] = below_n(q, p.n, p.a * axpy_x[q] + y, y);
}
