// Prepended to the shaders marked `after "quads"` in src/shaders.rs: kernels that take quads,
// four consecutive f32 values read and written as a vec4, per invocation. On a software
// adapter a vec4 access costs about what a scalar one does, so a quad moves ~4× the bytes per
// invocation. GpuBuffer pads every allocation to 16 bytes, so the last quad can always be
// loaded; the values past n in it are written back unchanged. The grid is 1-d, QUAD_WG-wide
// workgroups folded past 65 535 (see workgroups_1d).

const QUAD_WG: u32 = 256u;

fn quad(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * QUAD_WG + lid;
}

// Elementwise kernels take QUADS_PER_INVOCATION quads per invocation, the host's choice
// (gpu::QuadGrid): on a software adapter every invocation and workgroup costs fixed work that
// more quads amortise; a GPU takes one. Invocation i of T takes quads i, i + T, i + 2T, ..., so
// neighbouring invocations still touch neighbouring memory. Walked as
//   for (var w = quads_of(wid, nwg, lid); has_quad(w, n); next_of(&w)) { ... w.q ... }
override QUADS_PER_INVOCATION: u32 = 1u;

struct Quads {
    q: u32,
    stride: u32,
    left: u32,
}

fn quads_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Quads {
    return Quads(quad(wid, nwg, lid), nwg.x * nwg.y * QUAD_WG, QUADS_PER_INVOCATION);
}

// Whether the walk has a quad left that holds one of the first n elements.
fn has_quad(w: Quads, n: u32) -> bool {
    return w.left > 0u && 4u * w.q < n;
}

fn next_of(w: ptr<function, Quads>) {
    (*w).q += (*w).stride;
    (*w).left -= 1u;
}

// The element indices of quad q.
fn indices(q: u32) -> vec4<u32> {
    return vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
}

// The element indices of quad q with the lanes past n repeating element n − 1: loads through
// them stay in bounds, and stores drop those lanes.
fn clamped_indices(q: u32, n: u32) -> vec4<u32> {
    return min(indices(q), vec4<u32>(n - 1u));
}

// Which lanes of quad q hold one of the first n elements.
fn lanes_below(q: u32, n: u32) -> vec4<bool> {
    return indices(q) < vec4<u32>(n);
}

// What to store at quad q of an n-element tensor: `value` below n and `current` past it.
fn below_n(q: u32, n: u32, value: vec4<f32>, current: vec4<f32>) -> vec4<f32> {
    return select(current, value, lanes_below(q, n));
}

// Whether quad q straddles n, so its stores must go through below_n.
fn is_last_partial(q: u32, n: u32) -> bool {
    return 4u * q + 4u > n;
}
