// out[c] (+)= Σ_{o, i} x[o, c, i]   for x viewed as [outer, channels, inner] row-major
//
// One workgroup per channel: THREADS invocations (a power of two, up to 256, fewer for small
// channels) each sum a strided share of the channel's outer·inner elements in f32, then a tree
// in workgroup memory adds the partial sums.
// This is the bias gradient of Linear ([batch, features, 1]) and of Conv2d ([N, O, H·W]).
// ACCUMULATE adds to out's old value (gradient accumulation across micro-batches).
//
// column_sum computes the same where inner = 1 and outer is short (a bias gradient over a
// batch; a split-K product's per-image partials): a workgroup per channel would leave each
// with a handful of values and barriers, so instead each invocation adds up a quad of adjacent
// channels (quads.wgsl, prepended) down the outer axis, in order, as vec4s where rows are whole
// quads: one pass over x, no barriers.

struct Params {
    outer: u32,
    channels: u32,
    inner: u32,
    _pad: u32,
}

override ACCUMULATE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

override THREADS: u32 = 256u; // a power of two

var<workgroup> partial: array<f32, THREADS>;

@compute @workgroup_size(THREADS, 1, 1)
fn channel_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform per workgroup, so returning before the barriers is allowed.
    let c = wid.x + wid.y * nwg.x;
    if c >= p.channels {
        return;
    }
    // Element e = o·inner + i of the channel; advance (o, i) by THREADS without dividing.
    let count = p.outer * p.inner;
    let step_o = THREADS / p.inner;
    let step_i = THREADS % p.inner;
    var o = lid / p.inner;
    var i = lid % p.inner;
    var acc = 0.0;
    for (var e = lid; e < count; e += THREADS) {
        acc += x[(o * p.channels + c) * p.inner + i];
        o += step_o;
        i += step_i;
        if i >= p.inner {
            i -= p.inner;
            o += 1u;
        }
    }
    partial[lid] = acc;
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half /= 2u) {
        if lid < half {
            partial[lid] += partial[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u {
        var total = partial[0];
        if ACCUMULATE {
            total += out[c];
        }
        out[c] = total;
    }
}

// ---------------------------------------------------------------------------------------------
// column_sum

@group(0) @binding(1) var<storage, read> cs_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> cs_out: array<vec4<f32>>;

@compute @workgroup_size(QUAD_WG)
fn column_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.channels {
        return;
    }
    var total = vec4<f32>(0.0);
    if p.channels % 4u == 0u {
        let row = p.channels / 4u;
        for (var o = 0u; o < p.outer; o++) {
            total += cs_x[o * row + q];
        }
    } else {
        // Lanes past the last channel repeat it; below_n drops them.
        let c = clamped_indices(q, p.channels);
        for (var o = 0u; o < p.outer; o++) {
            let i = vec4<u32>(o * p.channels) + c;
            total += vec4<f32>(cs_x[i.x >> 2u][i.x & 3u], cs_x[i.y >> 2u][i.y & 3u],
                cs_x[i.z >> 2u][i.z & 3u], cs_x[i.w >> 2u][i.w & 3u]);
        }
    }
    if ACCUMULATE {
        total += cs_out[q];
    }
    if is_last_partial(q, p.channels) {
        total = below_n(q, p.channels, total, cs_out[q]);
    }
    cs_out[q] = total;
}
