// Microbenchmarks of the adapter's attainable peak, for `fer bench peak` and the profiler's
// "fraction of peak". Not part of any model.
//
//   fma_chains  each invocation runs `iterations` × 32 vec4 fma's over 8 independent register
//               chains (acc = acc·m + k), then writes one f32 so nothing is optimised away.
//               FLOPs = invocations · iterations · 32 · 4 · 2.
//   copy        dst[i] = src[i] over n vec4's, grid-stride. Bytes = 32 · n (read + write).
//   read_sum    each invocation sums its grid-stride share of src and writes one f32.
//               Bytes = 16 · n + 4 · invocations.
//
// All three run on a 1-d grid of 256-wide workgroups folded past 65 535 (see workgroups_1d).

struct Params {
    // fma_chains: loop trips; copy and read_sum: vec4 elements.
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;

fn invocation(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

fn invocations(nwg: vec3<u32>) -> u32 {
    return nwg.x * nwg.y * WG;
}

// ---------------------------------------------------------------------------------------------
// fma_chains

@group(0) @binding(1) var<storage, read_write> sink: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn fma_chains(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    // Start values depend on the invocation and m < 1, so the chains neither fold to constants
    // nor overflow: each converges towards k / (1 − m).
    let seed = f32(i) * 1e-7;
    let m = vec4<f32>(0.9999, 0.9998, 0.9997, 0.9996);
    let k = vec4<f32>(1e-4);
    var a0 = vec4<f32>(seed);
    var a1 = a0 + 0.1;
    var a2 = a0 + 0.2;
    var a3 = a0 + 0.3;
    var a4 = a0 + 0.4;
    var a5 = a0 + 0.5;
    var a6 = a0 + 0.6;
    var a7 = a0 + 0.7;
    for (var t = 0u; t < p.count; t++) {
        // Four rounds of eight independent fma's: enough in flight to hide the fma latency.
        a0 = fma(a0, m, k); a1 = fma(a1, m, k); a2 = fma(a2, m, k); a3 = fma(a3, m, k);
        a4 = fma(a4, m, k); a5 = fma(a5, m, k); a6 = fma(a6, m, k); a7 = fma(a7, m, k);
        a0 = fma(a0, m, k); a1 = fma(a1, m, k); a2 = fma(a2, m, k); a3 = fma(a3, m, k);
        a4 = fma(a4, m, k); a5 = fma(a5, m, k); a6 = fma(a6, m, k); a7 = fma(a7, m, k);
        a0 = fma(a0, m, k); a1 = fma(a1, m, k); a2 = fma(a2, m, k); a3 = fma(a3, m, k);
        a4 = fma(a4, m, k); a5 = fma(a5, m, k); a6 = fma(a6, m, k); a7 = fma(a7, m, k);
        a0 = fma(a0, m, k); a1 = fma(a1, m, k); a2 = fma(a2, m, k); a3 = fma(a3, m, k);
        a4 = fma(a4, m, k); a5 = fma(a5, m, k); a6 = fma(a6, m, k); a7 = fma(a7, m, k);
    }
    let total = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
    sink[i] = dot(total, vec4<f32>(1.0));
}

// ---------------------------------------------------------------------------------------------
// copy, read_sum

@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let stride = invocations(nwg);
    for (var i = invocation(wid, nwg, lid); i < p.count; i += stride) {
        dst[i] = src[i];
    }
}

@compute @workgroup_size(256, 1, 1)
fn read_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = invocation(wid, nwg, lid);
    let stride = invocations(nwg);
    var acc = vec4<f32>(0.0);
    for (var i = first; i < p.count; i += stride) {
        acc += src[i];
    }
    partial[first] = dot(acc, vec4<f32>(1.0));
}
