// Batch normalisation over the view [N, C, S] (PyTorch's BatchNorm1d on [N, F] with S = 1,
// BatchNorm2d on [N, C, H, W] with S = H·W); statistics per channel over m = N·S values.
//
//   batchnorm_train_forward  one workgroup (WG invocations) per channel: mean and biased variance
//                            in one pass over x (Welford per lane, merged pairwise), then y,
//                            saved mean/invstd and the running statistics, in one dispatch.
//   batchnorm_eval_forward   elementwise, a quad per invocation, with the running statistics.
//   batchnorm_backward       one workgroup per channel: dβ = Σdy and dγ = Σdy·x̂, then dx
//                            (and with SUM_DX, Σdx: the bias gradient of the layer before).
//   batchnorm_columns_*      the same two for S = 1 over a short batch (BatchNorm1d after a Linear
//                            layer): one invocation per quad of channels, no barriers (below).
//
// RELU fuses a following torch.nn.ReLU: the forward entries write relu(y), and backward takes
// the gradient of that output, zeroing it where the output is 0 (PyTorch's threshold_backward:
// relu(y) > 0 exactly where y > 0), which spares the ReLU's two passes over memory.
// DROPOUT (only with RELU) fuses a torch.nn.Dropout after that ReLU: training forward writes
// keep(i) ? relu(y)·a : 0 with elementwise.wgsl's mask (philox.wgsl, prepended) for element i
// of the tensor, a = 1/(1 − p). Backward needs no mask: a survivor of a positive value is
// positive (a ≥ 1), so keep(i) ∧ relu(y) > 0 exactly where the output is > 0, and the gradient
// reaching y is dy·a there and 0 elsewhere, as dropout's then ReLU's backward would give.
//
// DEFER_OUTPUT (training forward, workgroup entry, with RELU and no DROPOUT) leaves y to the
// layer after, which reads x instead (a max pool, pool.wgsl's BATCHNORM_PROLOGUE): the kernel
// writes per channel c, at tf_y[c], the map that gives y, (γ·invstd, mean, β, 0), to be
// applied as activation(fma(γ·invstd, x − mean, β)), the expression this kernel's own output
// pass evaluates. Training forward then reads x once and writes nothing of its size.
//
// SUM_DX also writes Σdx per channel, summed over N and S: the gradient of a bias that the
// layer before added per channel (a Linear's or a convolution's), which that layer then need
// not reduce in a dispatch of its own. The columns entry adds the rows in order, as
// reduce.wgsl's column_sum does; the workgroup entry, by the same fixed tree as its dβ.
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
    // The fused dropout's mask (philox.wgsl) and survivors' factor 1/(1 − p).
    dropout_seed_lo: u32,
    dropout_seed_hi: u32,
    dropout_threshold: u32,
    dropout_scale: f32,
}

// Invocations per workgroup of the per-channel reductions: a power of two up to 256, chosen by
// the host (kernels::reduction_width) so small channels don't pay for 256 invocations' barriers.
override WG: u32 = 256u;
override RELU: bool = false;
override DROPOUT: bool = false;
override SUM_DX: bool = false;
override DEFER_OUTPUT: bool = false;

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

// A per-channel loop's position: quad j of the channel, and (for p.quads = 1) where it sits,
// j = image · per_image + rest with per_image = S/4 quads per plane. Each invocation steps j by
// WG; the cursor follows without dividing (a CPU adapter has no SIMD integer division, so a
// division per quad costs each lane a scalar divide).
struct Cursor {
    j: u32,
    image: u32,
    rest: u32,
}

fn quads_per_image() -> u32 {
    // Guarded for S < 4, where p.quads = 0 and the cursor's position goes unused.
    return max(p.spatial / 4u, 1u);
}

fn first_quad(lid: u32) -> Cursor {
    return Cursor(lid, lid / quads_per_image(), lid % quads_per_image());
}

fn next_quad(cursor: ptr<function, Cursor>) {
    let per_image = quads_per_image();
    (*cursor).j += WG;
    (*cursor).image += WG / per_image;
    (*cursor).rest += WG % per_image;
    if (*cursor).rest >= per_image {
        (*cursor).rest -= per_image;
        (*cursor).image += 1u;
    }
}

// Where the cursor's quad of channel c sits, in vec4s (p.quads = 1).
fn quad_offset(c: u32, cursor: Cursor) -> u32 {
    return (cursor.image * p.channels + c) * quads_per_image() + cursor.rest;
}

// The scalar offsets of quad j of channel c, for the other layouts.
fn lane_offsets(c: u32, j: u32) -> vec4<u32> {
    let i = clamped_indices(j, p.count);
    return vec4<u32>(offset(c, i.x), offset(c, i.y), offset(c, i.z), offset(c, i.w));
}

var<workgroup> partial: array<vec2<f32>, WG>;

// Some values' count, mean and sum of squared deviations from that mean.
struct Moments {
    count: f32,
    mean: f32,
    m2: f32,
}

var<workgroup> moments: array<Moments, WG>;

// torch.relu where RELU is fused, in the select form of elementwise.wgsl's relu (−0 → +0).
fn activation(y: vec4<f32>) -> vec4<f32> {
    if RELU {
        return select(y, vec4<f32>(0.0), y <= vec4<f32>(0.0));
    }
    return y;
}

// What training forward stores for y at elements i of the tensor: the activation, then the
// fused dropout's mask.
fn training_output(i: vec4<u32>, y: vec4<f32>) -> vec4<f32> {
    let out = activation(y);
    if DROPOUT {
        let keep = dropout_keeps(i, p.dropout_seed_lo, p.dropout_seed_hi, p.dropout_threshold);
        // select, as elementwise.wgsl's dropout.
        return select(vec4<f32>(0.0), out * p.dropout_scale, keep);
    }
    return out;
}

// The gradient reaching y from dy, the gradient of the stored output `out` (see the top).
fn gate(dy: vec4<f32>, out: vec4<f32>) -> vec4<f32> {
    if !RELU {
        return dy;
    }
    var through = dy;
    if DROPOUT {
        through = dy * p.dropout_scale;
    }
    return select(vec4<f32>(0.0), through, out > vec4<f32>(0.0));
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

// The moments of two sets together (Chan, Golub and LeVeque's pairwise update): the sets'
// deviations enter only through the difference of their means, so nothing cancels.
fn merge(a: Moments, b: Moments) -> Moments {
    let count = a.count + b.count;
    // Both empty: b's weight is 0, not 0/0.
    let weight_b = select(0.0, b.count / count, count > 0.0);
    let delta = b.mean - a.mean;
    return Moments(count, fma(delta, weight_b, a.mean),
        a.m2 + b.m2 + delta * delta * a.count * weight_b);
}

// The moments of every invocation's values together, by a fixed tree (deterministic); every
// invocation gets them. Called once per dispatch, so no barrier guards `moments` after it.
fn workgroup_moments(lid: u32, value: Moments) -> Moments {
    moments[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if lid < stride {
            moments[lid] = merge(moments[lid], moments[lid + stride]);
        }
        workgroupBarrier();
    }
    return moments[0];
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

fn tf_x_quad(c: u32, cursor: Cursor) -> vec4<f32> {
    if p.quads == 1u {
        return tf_x[quad_offset(c, cursor)];
    }
    let o = lane_offsets(c, cursor.j);
    return vec4<f32>(tf_x[o.x >> 2u][o.x & 3u], tf_x[o.y >> 2u][o.y & 3u],
        tf_x[o.z >> 2u][o.z & 3u], tf_x[o.w >> 2u][o.w & 3u]);
}

// Stores y (before the activation) at quad j of channel c.
fn tf_y_store(c: u32, cursor: Cursor, y: vec4<f32>) {
    if p.quads == 1u {
        let q = quad_offset(c, cursor);
        tf_y[q] = training_output(indices(q), y);
        return;
    }
    let o = lane_offsets(c, cursor.j);
    let live = lanes_below(cursor.j, p.count);
    let out = training_output(o, y);
    tf_y[o.x >> 2u][o.x & 3u] = out.x;
    if live.y { tf_y[o.y >> 2u][o.y & 3u] = out.y; }
    if live.z { tf_y[o.z >> 2u][o.z & 3u] = out.z; }
    if live.w { tf_y[o.w >> 2u][o.w & 3u] = out.w; }
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
    // The statistics of x − (one of the channel's values), not of x: with data far from 0 (say
    // 1000 ± 1) the rounding errors then scale with the spread, not with 1000.
    let first = offset(c, 0u);
    let shift = tf_x[first >> 2u][first & 3u];
    // One pass (x is read twice in all, not three times): each lane keeps Welford's running
    // mean and sum of squared deviations about it, never E[x²] − E[x]², which cancels
    // catastrophically. A lane past m sees its own mean (d = 0), which changes nothing, and is
    // then not counted.
    var quads = 0.0;
    var mean_shifted = vec4<f32>(0.0);
    var m2 = vec4<f32>(0.0);
    var past_m = vec4<f32>(0.0);
    for (var at = first_quad(lid); at.j < quad_count(); next_quad(&at)) {
        quads += 1.0;
        let live = lanes_below(at.j, m);
        let d = select(vec4<f32>(0.0), tf_x_quad(c, at) - shift - mean_shifted, live);
        let step = d * (1.0 / quads);
        mean_shifted += step;
        m2 = fma(d, d - step, m2);
        // Only the channel's last quad has lanes past m, and it is its invocation's last.
        past_m = select(vec4<f32>(1.0), vec4<f32>(0.0), live);
    }
    let count = vec4<f32>(quads) - past_m;
    let lanes = merge(
        merge(Moments(count.x, mean_shifted.x, m2.x), Moments(count.y, mean_shifted.y, m2.y)),
        merge(Moments(count.z, mean_shifted.z, m2.z), Moments(count.w, mean_shifted.w, m2.w)),
    );
    let channel = workgroup_moments(lid, lanes);
    let mean = shift + channel.mean;
    let variance = channel.m2 / f32(m);
    let invstd = inverseSqrt(variance + p.eps);
    let scale = tf_gamma[c] * invstd;
    let beta = tf_beta[c];
    if DEFER_OUTPUT {
        if lid == 0u {
            tf_y[c] = vec4<f32>(scale, mean, beta, 0.0);
        }
    } else {
        for (var at = first_quad(lid); at.j < quad_count(); next_quad(&at)) {
            tf_y_store(c, at, fma(vec4<f32>(scale), tf_x_quad(c, at) - mean, vec4<f32>(beta)));
        }
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

@group(0) @binding(1) var<storage, read> ef_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ef_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> ef_beta: array<f32>;
@group(0) @binding(4) var<storage, read> ef_running_mean: array<f32>;
@group(0) @binding(5) var<storage, read> ef_running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> ef_y: array<vec4<f32>>;

// Channel c's normalisation of the values x, with its running statistics.
fn eval_normalise(c: u32, x: vec4<f32>) -> vec4<f32> {
    let scale = ef_gamma[c] * inverseSqrt(ef_running_var[c] + p.eps);
    return fma(vec4<f32>(scale), x - vec4<f32>(ef_running_mean[c]), vec4<f32>(ef_beta[c]));
}

// A quad of the tensor per invocation (quads.wgsl's grid). Where each plane is whole quads
// (p.quads), the quad lies in one channel: one division finds it and its statistics are read
// once for four values, where a value per invocation paid both per value (a software
// adapter divides and gathers lane by lane). Else each lane finds its own channel.
@compute @workgroup_size(QUAD_WG, 1, 1)
fn batchnorm_eval_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    let n = p.batch * p.channels * p.spatial;
    if 4u * q >= n {
        return;
    }
    let x = ef_x[q];
    var y: vec4<f32>;
    if p.quads == 1u {
        y = eval_normalise(4u * q / p.spatial % p.channels, x);
    } else {
        let c = clamped_indices(q, n) / vec4<u32>(p.spatial) % vec4<u32>(p.channels);
        y = vec4<f32>(
            eval_normalise(c.x, x).x,
            eval_normalise(c.y, x).y,
            eval_normalise(c.z, x).z,
            eval_normalise(c.w, x).w,
        );
    }
    y = activation(y);
    if is_last_partial(q, n) {
        y = below_n(q, n, y, ef_y[q]);
    }
    ef_y[q] = y;
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
// Σdx per channel, written only with SUM_DX.
@group(0) @binding(10) var<storage, read_write> bw_dx_sum: array<f32>;

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
fn bw_quad(c: u32, cursor: Cursor, source: u32) -> vec4<f32> {
    if p.quads == 1u {
        return bw_load_quad(source, quad_offset(c, cursor));
    }
    let o = lane_offsets(c, cursor.j);
    let v = vec4<f32>(bw_load(source, o.x), bw_load(source, o.y), bw_load(source, o.z), bw_load(source, o.w));
    return select(vec4<f32>(0.0), v, lanes_below(cursor.j, p.count));
}

// Quad j of channel c of the gradient reaching batch norm's own output (see gate).
fn bw_dy_quad(c: u32, cursor: Cursor) -> vec4<f32> {
    if RELU {
        return gate(bw_quad(c, cursor, OF_DY), bw_quad(c, cursor, OF_Y));
    }
    return bw_quad(c, cursor, OF_DY);
}

fn bw_dx_store(c: u32, cursor: Cursor, dx: vec4<f32>) {
    if p.quads == 1u {
        bw_dx[quad_offset(c, cursor)] = dx;
        return;
    }
    let o = lane_offsets(c, cursor.j);
    let live = lanes_below(cursor.j, p.count);
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
    for (var at = first_quad(lid); at.j < quad_count(); next_quad(&at)) {
        let dy = bw_dy_quad(c, at);
        sum_dy += dy;
        sum_dy_xhat += dy * ((bw_quad(c, at, OF_X) - mean) * invstd);
    }
    let sums = workgroup_sum(
        lid, vec2<f32>(dot(sum_dy, vec4<f32>(1.0)), dot(sum_dy_xhat, vec4<f32>(1.0))),
    );
    let dbeta = sums.x;
    let dgamma = sums.y;
    let scale = bw_gamma[c] * invstd / f32(m);
    var sum_dx = vec4<f32>(0.0);
    for (var at = first_quad(lid); at.j < quad_count(); next_quad(&at)) {
        let normalised = (bw_quad(c, at, OF_X) - mean) * invstd;
        let dx = scale * (f32(m) * bw_dy_quad(c, at) - dbeta - normalised * dgamma);
        bw_dx_store(c, at, dx);
        // Lanes past m are never stored and must not count.
        sum_dx += select(vec4<f32>(0.0), dx, lanes_below(at.j, m));
    }
    if SUM_DX {
        let total = workgroup_sum(lid, vec2<f32>(dot(sum_dx, vec4<f32>(1.0)), 0.0));
        if lid == 0u {
            bw_dx_sum[c] = total.x;
        }
    }
    if lid == 0u {
        bw_dgamma[c] = dgamma;
        bw_dbeta[c] = dbeta;
    }
}

// ---------------------------------------------------------------------------------------------
// columns: S = 1 and a short batch (kernels::walks_columns), the layout [N, C]
//
// A workgroup per channel would leave each invocation a handful of values between barriers;
// instead each invocation takes a quad of adjacent channels (quads.wgsl, prepended) and walks
// the batch rows in order, as vec4s where rows are whole quads (C % 4 = 0), else gathering
// four lanes. The entries bind the same buffers as their workgroup twins above.

// Row n's elements of quad q's channels; lanes past the last channel repeat it (their results
// are never stored).
fn row_lanes(n: u32, q: u32) -> vec4<u32> {
    return vec4<u32>(n * p.channels) + clamped_indices(q, p.channels);
}

fn rows_are_quads() -> bool {
    return p.channels % 4u == 0u;
}

fn tf_x_row(n: u32, q: u32) -> vec4<f32> {
    if rows_are_quads() {
        return tf_x[n * p.channels / 4u + q];
    }
    let i = row_lanes(n, q);
    return vec4<f32>(tf_x[i.x >> 2u][i.x & 3u], tf_x[i.y >> 2u][i.y & 3u],
        tf_x[i.z >> 2u][i.z & 3u], tf_x[i.w >> 2u][i.w & 3u]);
}

// Stores y (before the activation) at row n of quad q's channels.
fn tf_y_row_store(n: u32, q: u32, y: vec4<f32>) {
    let i = row_lanes(n, q);
    let out = training_output(i, y);
    if rows_are_quads() {
        tf_y[n * p.channels / 4u + q] = out;
        return;
    }
    let live = lanes_below(q, p.channels);
    tf_y[i.x >> 2u][i.x & 3u] = out.x;
    if live.y { tf_y[i.y >> 2u][i.y & 3u] = out.y; }
    if live.z { tf_y[i.z >> 2u][i.z & 3u] = out.z; }
    if live.w { tf_y[i.w >> 2u][i.w & 3u] = out.w; }
}

@compute @workgroup_size(QUAD_WG)
fn batchnorm_columns_train_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.channels {
        return;
    }
    let m = f32(p.count);
    // Shifted and two-pass, as batchnorm_train_forward.
    let shift = tf_x_row(0u, q);
    var sum = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        sum += tf_x_row(n, q) - shift;
    }
    let mean = shift + sum / m;
    var squares = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        let d = tf_x_row(n, q) - mean;
        squares = fma(d, d, squares);
    }
    let variance = squares / m;
    let invstd = inverseSqrt(variance + p.eps);
    let c = clamped_indices(q, p.channels);
    let scale = vec4<f32>(tf_gamma[c.x], tf_gamma[c.y], tf_gamma[c.z], tf_gamma[c.w]) * invstd;
    let beta = vec4<f32>(tf_beta[c.x], tf_beta[c.y], tf_beta[c.z], tf_beta[c.w]);
    for (var n = 0u; n < p.batch; n++) {
        tf_y_row_store(n, q, fma(scale, tf_x_row(n, q) - mean, beta));
    }
    let keep = 1.0 - p.momentum;
    for (var lane = 0u; lane < 4u; lane++) {
        let c = 4u * q + lane;
        if c < p.channels {
            tf_saved_mean[c] = mean[lane];
            tf_saved_invstd[c] = invstd[lane];
            tf_running_mean[c] = keep * tf_running_mean[c] + p.momentum * mean[lane];
            tf_running_var[c] = keep * tf_running_var[c]
                + p.momentum * (variance[lane] * p.unbiased_factor);
        }
    }
}

fn bw_row(n: u32, q: u32, source: u32) -> vec4<f32> {
    if rows_are_quads() {
        return bw_load_quad(source, n * p.channels / 4u + q);
    }
    let i = row_lanes(n, q);
    return vec4<f32>(bw_load(source, i.x), bw_load(source, i.y), bw_load(source, i.z),
        bw_load(source, i.w));
}

// As bw_dy_quad.
fn bw_dy_row(n: u32, q: u32) -> vec4<f32> {
    if RELU {
        return gate(bw_row(n, q, OF_DY), bw_row(n, q, OF_Y));
    }
    return bw_row(n, q, OF_DY);
}

fn bw_dx_row_store(n: u32, q: u32, dx: vec4<f32>) {
    if rows_are_quads() {
        bw_dx[n * p.channels / 4u + q] = dx;
        return;
    }
    let i = row_lanes(n, q);
    let live = lanes_below(q, p.channels);
    bw_dx[i.x >> 2u][i.x & 3u] = dx.x;
    if live.y { bw_dx[i.y >> 2u][i.y & 3u] = dx.y; }
    if live.z { bw_dx[i.z >> 2u][i.z & 3u] = dx.z; }
    if live.w { bw_dx[i.w >> 2u][i.w & 3u] = dx.w; }
}

@compute @workgroup_size(QUAD_WG)
fn batchnorm_columns_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.channels {
        return;
    }
    let m = f32(p.count);
    let c = clamped_indices(q, p.channels);
    let mean = vec4<f32>(bw_saved_mean[c.x], bw_saved_mean[c.y], bw_saved_mean[c.z],
        bw_saved_mean[c.w]);
    let invstd = vec4<f32>(bw_saved_invstd[c.x], bw_saved_invstd[c.y], bw_saved_invstd[c.z],
        bw_saved_invstd[c.w]);
    var dbeta = vec4<f32>(0.0);
    var dgamma = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        let dy = bw_dy_row(n, q);
        dbeta += dy;
        dgamma += dy * ((bw_row(n, q, OF_X) - mean) * invstd);
    }
    let gamma = vec4<f32>(bw_gamma[c.x], bw_gamma[c.y], bw_gamma[c.z], bw_gamma[c.w]);
    let scale = gamma * invstd / m;
    var sum_dx = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        let normalised = (bw_row(n, q, OF_X) - mean) * invstd;
        let dx = scale * (m * bw_dy_row(n, q) - dbeta - normalised * dgamma);
        bw_dx_row_store(n, q, dx);
        sum_dx += dx;
    }
    for (var lane = 0u; lane < 4u; lane++) {
        let c = 4u * q + lane;
        if c < p.channels {
            bw_dgamma[c] = dgamma[lane];
            bw_dbeta[c] = dbeta[lane];
            if SUM_DX {
                bw_dx_sum[c] = sum_dx[lane];
            }
        }
    }
}
