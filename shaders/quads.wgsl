// Prepended to the shaders marked `after "quads"` in src/shaders.rs: kernels that take one quad,
// four consecutive f32 values read and written as a vec4, per invocation. On a software
// adapter a vec4 access costs about what a scalar one does, so a quad moves ~4× the bytes per
// invocation. GpuBuffer pads every allocation to 16 bytes, so the last quad can always be
// loaded; the values past n in it are written back unchanged. The grid is 1-d, QUAD_WG-wide
// workgroups folded past 65 535 (see workgroups_1d).

const QUAD_WG: u32 = 256u;

fn quad(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * QUAD_WG + lid;
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
