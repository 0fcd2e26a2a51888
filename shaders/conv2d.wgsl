// Conv2d (NCHW input, OIHW weight, stride STRIDE, zero padding p) and its gradients, as one
// implicit GEMM: C[batch] (+)= A · B with m×n output rows and a reduction of length k, where
// B is never materialised (im2col happens inside load_b). MODE picks the operands:
//
//   MODE 0, forward      y[n]  = W · Xcol[n] (+ bias)  m = O, n = OH·OW, k = (c, ky, kx)
//   MODE 1, grad-input   dx[n] = Wᵀ-gather · dY[n]     m = C, n = H·W,   k = (o, ky, kx)
//   MODE 2, grad-weight  dW    = Σ_n dY[n] · Xcol[n]ᵀ  m = O, n = (c, ky, kx), k = (n, oy, ox)
//
// Grad-input gathers, so no atomics: dx[c, iy, ix] = Σ_{o,ky,kx} W[o, c, ky, kx] ·
// dY[o, (iy + p − ky)/s, (ix + p − kx)/s] over the taps where the division is exact and lands
// inside dY.
//
// Schedule (matmul.wgsl's matmul_register): a 4×4 register block of C per invocation, 8×8
// invocations per workgroup, no workgroup memory (barriers are what costs on lavapipe). The
// reduction index is walked as three counters (outer, y, x), so the loop does no division;
// everything that depends only on a row or a column is computed once before it.

struct Params {
    batch: u32,
    in_channels: u32,
    out_channels: u32,
    height: u32,
    width: u32,
    kernel_h: u32,
    kernel_w: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
    m: u32,
    n: u32,
    k: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override MODE: u32 = 0u;
override STRIDE: i32 = 1;
override BIAS: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
// MODE 0 and 1: the weight; MODE 2: dY.
@group(0) @binding(1) var<storage, read> a: array<f32>;
// MODE 0 and 2: the input x; MODE 1: dY.
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

// Where row m of A starts; the reduction index adds Tap.a.
fn row_offset(m: u32) -> u32 {
    if MODE == 0u {
        return m * p.in_channels * p.kernel_h * p.kernel_w; // W[o, ·]
    }
    if MODE == 1u {
        return m * p.kernel_h * p.kernel_w; // W[·, c, ·, ·]
    }
    return m * p.out_h * p.out_w; // dY[·, o, ·, ·]
}

// What a column j of C contributes to B's element: an offset into b and a 2-d position that
// the reduction index shifts.
struct Site {
    base: i32,
    y: i32,
    x: i32,
}

fn column_site(batch: u32, j: u32) -> Site {
    let pad = i32(p.padding);
    if MODE == 0u {
        // output pixel (oy, ox) reads x[batch, ·, oy·s − p + ky, ox·s − p + kx]
        let oy = i32(j / p.out_w);
        let ox = i32(j % p.out_w);
        let base = batch * p.in_channels * p.height * p.width;
        return Site(i32(base), oy * STRIDE - pad, ox * STRIDE - pad);
    }
    if MODE == 1u {
        // input pixel (iy, ix) gathers dY[batch, ·, (iy + p − ky)/s, (ix + p − kx)/s]
        let iy = i32(j / p.width);
        let ix = i32(j % p.width);
        let base = batch * p.out_channels * p.out_h * p.out_w;
        return Site(i32(base), iy + pad, ix + pad);
    }
    // weight tap (c, ky, kx) reads x[·, c, oy·s − p + ky, ox·s − p + kx]
    let taps = p.kernel_h * p.kernel_w;
    let channel = j / taps;
    let t = j % taps;
    return Site(i32(channel * p.height * p.width), i32(t / p.kernel_w), i32(t % p.kernel_w));
}

// What the reduction index (outer, y, x) contributes: an offset into A's row, and an offset
// and a 2-d shift into b.
struct Tap {
    a: u32,
    base: i32,
    y: i32,
    x: i32,
}

fn tap(outer: u32, y: u32, x: u32) -> Tap {
    if MODE == 0u {
        // (c, ky, kx)
        let a = (outer * p.kernel_h + y) * p.kernel_w + x;
        return Tap(a, i32(outer * p.height * p.width), i32(y), i32(x));
    }
    if MODE == 1u {
        // (o, ky, kx)
        let a = (outer * p.in_channels * p.kernel_h + y) * p.kernel_w + x;
        return Tap(a, i32(outer * p.out_h * p.out_w), -i32(y), -i32(x));
    }
    // (n, oy, ox)
    let pad = i32(p.padding);
    let a = (outer * p.out_channels * p.out_h + y) * p.out_w + x;
    let base = outer * p.in_channels * p.height * p.width;
    return Tap(a, i32(base), i32(y) * STRIDE - pad, i32(x) * STRIDE - pad);
}

// B's element for a column site and a tap: x, or dY for MODE 1; zero in the padding and, for
// grad-input, where no output pixel reads the input pixel through this tap.
fn load_b(site: Site, t: Tap) -> f32 {
    var row = site.y + t.y;
    var col = site.x + t.x;
    var rows = p.height;
    var cols = p.width;
    if MODE == 1u {
        if row % STRIDE != 0 || col % STRIDE != 0 {
            return 0.0;
        }
        row /= STRIDE;
        col /= STRIDE;
        rows = p.out_h;
        cols = p.out_w;
    }
    // Negative coordinates wrap to huge unsigned values, so one comparison per axis.
    if u32(row) >= rows || u32(col) >= cols {
        return 0.0;
    }
    return b[site.base + t.base + row * i32(cols) + col];
}

fn store(batch: u32, m: u32, n: u32, value: f32) {
    if m >= p.m || n >= p.n {
        return;
    }
    let i = (batch * p.m + m) * p.n + n;
    var v = value;
    if ACCUMULATE {
        v += c[i];
    }
    if BIAS {
        v += bias[m];
    }
    c[i] = v;
}

@compute @workgroup_size(8, 8, 1)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    let batch = gid.z;
    if m0 >= p.m || n0 >= p.n {
        return;
    }
    // Rows and columns past the edge repeat the last one; store drops their results.
    let r0 = row_offset(m0);
    let r1 = row_offset(min(m0 + 1u, p.m - 1u));
    let r2 = row_offset(min(m0 + 2u, p.m - 1u));
    let r3 = row_offset(min(m0 + 3u, p.m - 1u));
    let s0 = column_site(batch, n0);
    let s1 = column_site(batch, min(n0 + 1u, p.n - 1u));
    let s2 = column_site(batch, min(n0 + 2u, p.n - 1u));
    let s3 = column_site(batch, min(n0 + 3u, p.n - 1u));
    // Extents of the reduction index's y and x counters.
    var y_extent = p.kernel_h;
    var x_extent = p.kernel_w;
    if MODE == 2u {
        y_extent = p.out_h;
        x_extent = p.out_w;
    }

    var acc: array<vec4<f32>, 4>;
    var outer = 0u;
    var y = 0u;
    var x = 0u;
    for (var k = 0u; k < p.k; k++) {
        let t = tap(outer, y, x);
        let av = vec4<f32>(a[r0 + t.a], a[r1 + t.a], a[r2 + t.a], a[r3 + t.a]);
        let bv = vec4<f32>(load_b(s0, t), load_b(s1, t), load_b(s2, t), load_b(s3, t));
        acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
        acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
        acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
        acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        x += 1u;
        if x == x_extent {
            x = 0u;
            y += 1u;
            if y == y_extent {
                y = 0u;
                outer += 1u;
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(batch, m0 + i, n0 + j, acc[i][j]);
        }
    }
}
