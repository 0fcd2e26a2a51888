// Batch normalisation over the view [N, C, S] (PyTorch's BatchNorm1d on [N, F] with S = 1,
// BatchNorm2d on [N, C, H, W] with S = H·W); statistics per channel over m = N·S values.
//
//   batchnorm_train_forward  one workgroup (WG invocations) per channel: mean, biased variance (two passes),
//                            y, saved mean/invstd and the running statistics, in one dispatch.
//   batchnorm_eval_forward   elementwise, with the running statistics.
//   batchnorm_backward       one workgroup per channel: dβ = Σdy and dγ = Σdy·x̂, then dx.
//
// RELU fuses a following torch.nn.ReLU: the forward entries write relu(y), and backward takes
// the gradient of that output, zeroing it where the output is 0 (PyTorch's threshold_backward:
// relu(y) > 0 exactly where y > 0), which spares the ReLU's two passes over memory.
//
// The entries share binding slots: each declares its own buffers (prefixed tf_, ef_, bw_) and
// the host binds exactly those.

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    // m = batch · spatial
    count: u32,
    momentum: f32,
    eps: f32,
    // m / (m − 1), or 1 when m = 1 (see reference::batchnorm::BatchNormShape::unbiased_factor)
    unbiased_factor: f32,
    // 1 when spatial % 4 = 0: each image's plane of a channel is whole vec4s, so the
    // per-channel loops read and write a quad of values at a time.
    quads: u32,
}

// Invocations per workgroup of the per-channel reductions: a power of two up to 256, chosen by
// the host (kernels::reduction_width) so small channels don't pay for 256 invocations' barriers.
override WG: u32 = 256u;
override RELU: bool = false;
// The elementwise evaluation pass's workgroup size (the host's grid assumes it).
const EVAL_WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

// The i-th value (0..m) of channel c in the NCS layout.
fn offset(c: u32, i: u32) -> u32 {
    return (i / p.spatial * p.channels + c) * p.spatial + i % p.spatial;
}

// The per-channel loops walk quads: values 4j..4j+4 of the channel's m, as one vec4 where
// p.quads says the layout allows it, else as four scalars. Lanes past m read as 0 and are
// never stored.
fn quad_count() -> u32 {
    return (p.count + 3u) / 4u;
}

// Where quad j of channel c sits, in vec4s (p.quads = 1).
fn quad_offset(c: u32, j: u32) -> u32 {
    let per_image = p.spatial / 4u;
    return (j / per_image * p.channels + c) * per_image + j % per_image;
}

// The scalar offsets of quad j of channel c, for the other layouts.
fn lane_offsets(c: u32, j: u32) -> vec4<u32> {
    let last = p.count - 1u;
    let i = vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u);
    return vec4<u32>(
        offset(c, min(i.x, last)), offset(c, min(i.y, last)),
        offset(c, min(i.z, last)), offset(c, min(i.w, last)),
    );
}

fn lanes_below_m(j: u32) -> vec4<bool> {
    return vec4<u32>(4u * j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.count);
}

var<workgroup> partial: array<vec2<f32>, WG>;

// torch.relu where RELU is fused, in the select form of elementwise.wgsl's relu (−0 → +0).
fn activation(y: vec4<f32>) -> vec4<f32> {
    if RELU {
        return select(y, vec4<f32>(0.0), y <= vec4<f32>(0.0));
    }
    return y;
}

// Sum of `value` over the workgroup, by a fixed tree (deterministic); every invocation gets it.
fn workgroup_sum(lid: u32, value: vec2<f32>) -> vec2<f32> {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Nobody may overwrite partial[0] (next call) before everyone has read it.
    workgroupBarrier();
    return total;
}

// ---------------------------------------------------------------------------------------------
// training forward

@group(0) @binding(1) var<storage, read> tf_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> tf_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> tf_beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> tf_y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> tf_saved_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> tf_saved_invstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> tf_running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> tf_running_var: array<f32>;

fn tf_x_quad(c: u32, j: u32) -> vec4<f32> {
    if p.quads == 1u {
        return tf_x[quad_offset(c, j)];
    }
    let o = lane_offsets(c, j);
    return vec4<f32>(tf_x[o.x >> 2u][o.x & 3u], tf_x[o.y >> 2u][o.y & 3u],
        tf_x[o.z >> 2u][o.z & 3u], tf_x[o.w >> 2u][o.w & 3u]);
}

fn tf_y_store(c: u32, j: u32, y: vec4<f32>) {
    if p.quads == 1u {
        tf_y[quad_offset(c, j)] = y;
        return;
    }
    let o = lane_offsets(c, j);
    let live = lanes_below_m(j);
    tf_y[o.x >> 2u][o.x & 3u] = y.x;
    if live.y { tf_y[o.y >> 2u][o.y & 3u] = y.y; }
    if live.z { tf_y[o.z >> 2u][o.z & 3u] = y.z; }
    if live.w { tf_y[o.w >> 2u][o.w & 3u] = y.w; }
}

@compute @workgroup_size(WG, 1, 1)
fn batchnorm_train_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wid.x + wid.y * nwg.x;
    if c >= p.channels {
        return;
    }
    let m = p.count;
    // Sum x − (one of the channel's values), not x: with data far from 0 (say 1000 ± 1) the
    // rounding error of the sum then scales with the spread, not with 1000.
    let first = offset(c, 0u);
    let shift = tf_x[first >> 2u][first & 3u];
    var sum = vec4<f32>(0.0);
    for (var j = lid; j < quad_count(); j += WG) {
        sum += select(vec4<f32>(0.0), tf_x_quad(c, j) - shift, lanes_below_m(j));
    }
    let mean = shift + workgroup_sum(lid, vec2<f32>(dot(sum, vec4<f32>(1.0)), 0.0)).x / f32(m);
    // Second pass about the mean: never E[x²] − E[x]², which cancels catastrophically.
    var squares = vec4<f32>(0.0);
    for (var j = lid; j < quad_count(); j += WG) {
        let d = select(vec4<f32>(0.0), tf_x_quad(c, j) - mean, lanes_below_m(j));
        squares = fma(d, d, squares);
    }
    let variance = workgroup_sum(lid, vec2<f32>(dot(squares, vec4<f32>(1.0)), 0.0)).x / f32(m);
    let invstd = inverseSqrt(variance + p.eps);
    let scale = tf_gamma[c] * invstd;
    let beta = tf_beta[c];
    for (var j = lid; j < quad_count(); j += WG) {
        tf_y_store(c, j, activation(fma(vec4<f32>(scale), tf_x_quad(c, j) - mean, vec4<f32>(beta))));
    }
    if lid == 0u {
        tf_saved_mean[c] = mean;
        tf_saved_invstd[c] = invstd;
        let keep = 1.0 - p.momentum;
        tf_running_mean[c] = keep * tf_running_mean[c] + p.momentum * mean;
        tf_running_var[c] = keep * tf_running_var[c] + p.momentum * (variance * p.unbiased_factor);
    }
}

// ---------------------------------------------------------------------------------------------
// evaluation forward

@group(0) @binding(1) var<storage, read> ef_x: array<f32>;
@group(0) @binding(2) var<storage, read> ef_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> ef_beta: array<f32>;
@group(0) @binding(4) var<storage, read> ef_running_mean: array<f32>;
@group(0) @binding(5) var<storage, read> ef_running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> ef_y: array<f32>;

@compute @workgroup_size(EVAL_WG, 1, 1)
fn batchnorm_eval_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let o = (wid.x + wid.y * nwg.x) * EVAL_WG + lid;
    if o >= p.batch * p.channels * p.spatial {
        return;
    }
    let c = o / p.spatial % p.channels;
    let scale = ef_gamma[c] * inverseSqrt(ef_running_var[c] + p.eps);
    ef_y[o] = activation(vec4<f32>(fma(scale, ef_x[o] - ef_running_mean[c], ef_beta[c]))).x;
}

// ---------------------------------------------------------------------------------------------
// backward (training mode)

@group(0) @binding(1) var<storage, read> bw_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bw_dy: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bw_saved_mean: array<f32>;
@group(0) @binding(4) var<storage, read> bw_saved_invstd: array<f32>;
@group(0) @binding(5) var<storage, read> bw_gamma: array<f32>;
// The forward's output, read only with RELU.
@group(0) @binding(6) var<storage, read> bw_y: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> bw_dx: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> bw_dgamma: array<f32>;
@group(0) @binding(9) var<storage, read_write> bw_dbeta: array<f32>;

const OF_X: u32 = 0u;
const OF_DY: u32 = 1u;
const OF_Y: u32 = 2u;

// Quad q of x, dy or y, as vec4s.
fn bw_load_quad(source: u32, q: u32) -> vec4<f32> {
    switch source {
        case OF_X: { return bw_x[q]; }
        case OF_DY: { return bw_dy[q]; }
        default: { return bw_y[q]; }
    }
}

// Element i of x, dy or y.
fn bw_load(source: u32, i: u32) -> f32 {
    switch source {
        case OF_X: { return bw_x[i >> 2u][i & 3u]; }
        case OF_DY: { return bw_dy[i >> 2u][i & 3u]; }
        default: { return bw_y[i >> 2u][i & 3u]; }
    }
}

// Quad j of channel c of x, dy or y; lanes past m read as 0.
fn bw_quad(c: u32, j: u32, source: u32) -> vec4<f32> {
    if p.quads == 1u {
        return bw_load_quad(source, quad_offset(c, j));
    }
    let o = lane_offsets(c, j);
    let v = vec4<f32>(bw_load(source, o.x), bw_load(source, o.y), bw_load(source, o.z), bw_load(source, o.w));
    return select(vec4<f32>(0.0), v, lanes_below_m(j));
}

// Quad j of channel c of the gradient reaching batch norm's own output: dy, or with RELU dy
// where the fused output is positive.
fn bw_dy_quad(c: u32, j: u32) -> vec4<f32> {
    let dy = bw_quad(c, j, OF_DY);
    if RELU {
        return select(vec4<f32>(0.0), dy, bw_quad(c, j, OF_Y) > vec4<f32>(0.0));
    }
    return dy;
}

fn bw_dx_store(c: u32, j: u32, dx: vec4<f32>) {
    if p.quads == 1u {
        bw_dx[quad_offset(c, j)] = dx;
        return;
    }
    let o = lane_offsets(c, j);
    let live = lanes_below_m(j);
    bw_dx[o.x >> 2u][o.x & 3u] = dx.x;
    if live.y { bw_dx[o.y >> 2u][o.y & 3u] = dx.y; }
    if live.z { bw_dx[o.z >> 2u][o.z & 3u] = dx.z; }
    if live.w { bw_dx[o.w >> 2u][o.w & 3u] = dx.w; }
}

@compute @workgroup_size(WG, 1, 1)
fn batchnorm_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let c = wid.x + wid.y * nwg.x;
    if c >= p.channels {
        return;
    }
    let m = p.count;
    let mean = bw_saved_mean[c];
    let invstd = bw_saved_invstd[c];
    // (Σ dy, Σ dy·x̂); lanes past m read as 0, so they add 0.
    var sum_dy = vec4<f32>(0.0);
    var sum_dy_xhat = vec4<f32>(0.0);
    for (var j = lid; j < quad_count(); j += WG) {
        let dy = bw_dy_quad(c, j);
        sum_dy += dy;
        sum_dy_xhat += dy * ((bw_quad(c, j, OF_X) - mean) * invstd);
    }
    let sums = workgroup_sum(
        lid, vec2<f32>(dot(sum_dy, vec4<f32>(1.0)), dot(sum_dy_xhat, vec4<f32>(1.0))),
    );
    let dbeta = sums.x;
    let dgamma = sums.y;
    let scale = bw_gamma[c] * invstd / f32(m);
    for (var j = lid; j < quad_count(); j += WG) {
        let normalised = (bw_quad(c, j, OF_X) - mean) * invstd;
        bw_dx_store(c, j, scale * (f32(m) * bw_dy_quad(c, j) - dbeta - normalised * dgamma));
    }
    if lid == 0u {
        bw_dgamma[c] = dgamma;
        bw_dbeta[c] = dbeta;
    }
}
