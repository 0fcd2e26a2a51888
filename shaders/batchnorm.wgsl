// Batch normalisation over the view [N, C, S] (PyTorch's BatchNorm1d on [N, F] with S = 1,
// BatchNorm2d on [N, C, H, W] with S = H·W); statistics per channel over m = N·S values.
//
//   batchnorm_train_forward  one workgroup (WG invocations) per channel: mean, biased variance (two passes),
//                            y, saved mean/invstd and the running statistics, in one dispatch.
//   batchnorm_eval_forward   elementwise, with the running statistics.
//   batchnorm_backward       one workgroup per channel: dβ = Σdy and dγ = Σdy·x̂, then dx.
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
    _pad: u32,
}

// Invocations per workgroup of the per-channel reductions: a power of two up to 256, chosen by
// the host (kernels::reduction_width) so small channels don't pay for 256 invocations' barriers.
override WG: u32 = 256u;
// The elementwise evaluation pass's workgroup size (the host's grid assumes it).
const EVAL_WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

// The i-th value (0..m) of channel c in the NCS layout.
fn offset(c: u32, i: u32) -> u32 {
    return (i / p.spatial * p.channels + c) * p.spatial + i % p.spatial;
}

var<workgroup> partial: array<vec2<f32>, WG>;

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

@group(0) @binding(1) var<storage, read> tf_x: array<f32>;
@group(0) @binding(2) var<storage, read> tf_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> tf_beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> tf_y: array<f32>;
@group(0) @binding(5) var<storage, read_write> tf_saved_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> tf_saved_invstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> tf_running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> tf_running_var: array<f32>;

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
    let shift = tf_x[offset(c, 0u)];
    var sum = 0.0;
    for (var i = lid; i < m; i += WG) {
        sum += tf_x[offset(c, i)] - shift;
    }
    let mean = shift + workgroup_sum(lid, vec2<f32>(sum, 0.0)).x / f32(m);
    // Second pass about the mean: never E[x²] − E[x]², which cancels catastrophically.
    var squares = 0.0;
    for (var i = lid; i < m; i += WG) {
        let d = tf_x[offset(c, i)] - mean;
        squares = fma(d, d, squares);
    }
    let variance = workgroup_sum(lid, vec2<f32>(squares, 0.0)).x / f32(m);
    let invstd = inverseSqrt(variance + p.eps);
    let scale = tf_gamma[c] * invstd;
    let beta = tf_beta[c];
    for (var i = lid; i < m; i += WG) {
        let o = offset(c, i);
        tf_y[o] = fma(scale, tf_x[o] - mean, beta);
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
    ef_y[o] = fma(scale, ef_x[o] - ef_running_mean[c], ef_beta[c]);
}

// ---------------------------------------------------------------------------------------------
// backward (training mode)

@group(0) @binding(1) var<storage, read> bw_x: array<f32>;
@group(0) @binding(2) var<storage, read> bw_dy: array<f32>;
@group(0) @binding(3) var<storage, read> bw_saved_mean: array<f32>;
@group(0) @binding(4) var<storage, read> bw_saved_invstd: array<f32>;
@group(0) @binding(5) var<storage, read> bw_gamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> bw_dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> bw_dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> bw_dbeta: array<f32>;

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
    // (Σ dy, Σ dy·x̂)
    var sums = vec2<f32>(0.0);
    for (var i = lid; i < m; i += WG) {
        let o = offset(c, i);
        let dy = bw_dy[o];
        sums += vec2<f32>(dy, dy * ((bw_x[o] - mean) * invstd));
    }
    sums = workgroup_sum(lid, sums);
    let dbeta = sums.x;
    let dgamma = sums.y;
    let scale = bw_gamma[c] * invstd / f32(m);
    for (var i = lid; i < m; i += WG) {
        let o = offset(c, i);
        let normalised = (bw_x[o] - mean) * invstd;
        bw_dx[o] = scale * (f32(m) * bw_dy[o] - dbeta - normalised * dgamma);
    }
    if lid == 0u {
        bw_dgamma[c] = dgamma;
        bw_dbeta[c] = dbeta;
    }
}
