// Elementwise kernels over the first n f32 values of their buffers, quads per invocation
// (quads.wgsl, prepended; dropout's mask is philox.wgsl's). The twins are in src/reference/elementwise.rs.
//
//   relu            y = x > 0 ? x : 0                       (torch.relu)
//   relu_backward   dx = x > 0 ? dy : 0                     (torch threshold_backward)
//   sigmoid         y = 1/(1 + e^−x)                        (torch.sigmoid)
//   sigmoid_backward dx = dy·(1 − y)·y from the forward's y (torch sigmoid_backward)
//   dropout         y = keep(i) ? x·a : 0, a = 1/(1 − p)    (torch dropout, training mode); the
//                   same call on dy with the same seed is the backward pass
//   add             z = x + y (a residual sum; two gradients meeting at a branch)
//   scale           x = a·x, in place
//   fill            x = a
//   axpy            y = a·x + y
//
// Nothing of the mask is stored: backward recomputes it from (seed, i).

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
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let x = relu_x[q];
        var y = select(x, vec4<f32>(0.0), x <= vec4<f32>(0.0));
        if is_last_partial(q, p.n) {
            y = below_n(q, p.n, y, relu_y[q]);
        }
        relu_y[q] = y;
    }
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
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let x = relu_backward_x[q];
        var dx = select(vec4<f32>(0.0), relu_backward_dy[q], x > vec4<f32>(0.0));
        if is_last_partial(q, p.n) {
            dx = below_n(q, p.n, dx, relu_backward_dx[q]);
        }
        relu_backward_dx[q] = dx;
    }
}

// ---------------------------------------------------------------------------------------------
// sigmoid

@group(0) @binding(1) var<storage, read> sigmoid_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> sigmoid_y: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn sigmoid(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let x = sigmoid_x[q];
        // e^−|x| ≤ 1 never overflows (WGSL leaves an overflowing exp undefined): 1/(1 + e)
        // for x ≥ 0, e/(1 + e) = 1/(1 + e^−x) for x < 0.
        let e = exp(-abs(x));
        var y = select(e, vec4<f32>(1.0), x >= vec4<f32>(0.0)) / (1.0 + e);
        if is_last_partial(q, p.n) {
            y = below_n(q, p.n, y, sigmoid_y[q]);
        }
        sigmoid_y[q] = y;
    }
}

@group(0) @binding(1) var<storage, read> sigmoid_backward_y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> sigmoid_backward_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> sigmoid_backward_dx: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn sigmoid_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let y = sigmoid_backward_y[q];
        var dx = sigmoid_backward_dy[q] * (1.0 - y) * y;
        if is_last_partial(q, p.n) {
            dx = below_n(q, p.n, dx, sigmoid_backward_dx[q]);
        }
        sigmoid_backward_dx[q] = dx;
    }
}

// ---------------------------------------------------------------------------------------------
// dropout

@group(0) @binding(1) var<storage, read> dropout_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dropout_y: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn dropout(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let keep = dropout_keeps(indices(q), p.seed_lo, p.seed_hi, p.threshold);
        // select, not a multiply by a 0/1 mask: at p = 1, a is infinite and x·a·0 would be NaN.
        var y = select(vec4<f32>(0.0), dropout_x[q] * p.a, keep);
        if is_last_partial(q, p.n) {
            y = below_n(q, p.n, y, dropout_y[q]);
        }
        dropout_y[q] = y;
    }
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
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        var z = add_x[q] + add_y[q];
        if is_last_partial(q, p.n) {
            z = below_n(q, p.n, z, add_z[q]);
        }
        add_z[q] = z;
    }
}

@group(0) @binding(1) var<storage, read_write> scale_x: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn scale(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let x = scale_x[q];
        scale_x[q] = below_n(q, p.n, p.a * x, x);
    }
}

@group(0) @binding(1) var<storage, read_write> fill_x: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        var x = vec4<f32>(p.a);
        if is_last_partial(q, p.n) {
            x = below_n(q, p.n, x, fill_x[q]);
        }
        fill_x[q] = x;
    }
}

@group(0) @binding(1) var<storage, read> axpy_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> axpy_y: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn axpy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    for (var w = quads_of(wid, nwg, lid); has_quad(w, p.n); next_of(&w)) {
        let q = w.q;
        let y = axpy_y[q];
        axpy_y[q] = below_n(q, p.n, p.a * axpy_x[q] + y, y);
    }
}
