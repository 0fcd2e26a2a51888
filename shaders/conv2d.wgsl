// Conv2d (NCHW input, OIHW weight, stride STRIDE, zero padding p) and its gradients, as one
// implicit GEMM: C[batch] (+)= A · B with m×n output rows and a reduction of length k, where
// B is never materialised (im2col happens inside load_b). MODE picks the operands:
//
//   MODE 0, forward      y[n]  = W · Xcol[n] (+ bias)    m = O, n = OH·OW, k = (c, ky, kx)
//   MODE 1, grad-input   dx[n] = Wᵀ-gather · dY[n] (+ bias) m = C, n = H·W, k = (o, ky, kx)
//   MODE 2, grad-weight  dW    = Σ_n dY[n] · Xcol[n]ᵀ    m = O, n = (c, ky, kx), k = (n, oy, ox)
//
// The bias is per row of C: grad-input takes one where it is a transposed convolution's
// forward pass (kernels::conv_transpose2d runs all three modes with the roles swapped).
//
// Grad-input gathers, so no atomics: dx[c, iy, ix] = Σ_{o,ky,kx} W[o, c, ky, kx] ·
// dY[o, (iy + p − ky)/s, (ix + p − kx)/s] over the taps where the division is exact and lands
// inside dY.
//
// Schedule (matmul.wgsl's matmul_strip): 8 rows × 4 columns of C per invocation, 64
// invocations across 256 columns sharing the workgroup's 8 rows, no workgroup memory
// (barriers are what costs on lavapipe). The rows come from the workgroup id alone and the
// reduction index is walked identically by every invocation, so A's loads are uniform (one
// load broadcast to all lanes on a CPU adapter) and each of B's im2col gathers, the divergent
// loads that bound this kernel on lavapipe, feeds 8 FMAs. The walk is three counters
// (outer, y, x), so the loop does no division; everything that depends only on a row or a
// column is computed once before it. Where A's rows allow (vec4_a), four reduction steps share
// one vec4 load per row of A. On lavapipe this runs the 3×3 layers at 12–15 GFLOP/s, against
// 6–11 for the 4×4-per-invocation, 8×8-workgroup layout it replaced; 3-wide kernels at stride
// 1 then share their gathers through a row window (row_window_product): 16–17 forward and
// grad-input.

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
    // 1 when A's rows are 16-byte aligned and every aligned 4-run of the reduction index is
    // contiguous in A (forward with k % 4 = 0; grad-weight with out_h·out_w % 4 = 0).
    vec4_a: u32,
    _pad0: u32,
    _pad1: u32,
}

override MODE: u32 = 0u;
override STRIDE: i32 = 1;
override BIAS: bool = false;
override ACCUMULATE: bool = false;
// Where a 3-wide kernel's taps of an invocation's four columns, four neighbours in one row of
// C's image at stride 1 (forward with out_w % 4 = 0, grad-input with width % 4 = 0), share a
// window of b: see row_window_product.
override ROW_WINDOW: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
// MODE 0 and 1: the weight; MODE 2: dY.
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
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

fn load_a(i: u32) -> f32 {
    return a[i >> 2u][i & 3u];
}

// B's element for a column site and a tap: x, or dY for MODE 1; zero in the padding and, for
// grad-input, where no output pixel reads the input pixel through this tap.
fn load_b(site: Site, t: Tap) -> f32 {
    var row = site.y + t.y;
    var col = site.x + t.x;
    var rows = p.height;
    var cols = p.width;
    if MODE == 1u {
        // A negative coordinate lies before dY's first row or column. It is refused before the
        // division: WGSL defines % and / on negative integers, but GLSL (the GL backend) leaves
        // them undefined, and llvmpipe's GL gave wrong gradients at stride 3. At stride 1 the
        // whole test folds away, as before.
        if STRIDE != 1 {
            if row < 0 || col < 0 || row % STRIDE != 0 || col % STRIDE != 0 {
                return 0.0;
            }
            row /= STRIDE;
            col /= STRIDE;
        }
        rows = p.out_h;
        cols = p.out_w;
    }
    // Negative coordinates wrap to huge unsigned values, so one comparison per axis.
    if u32(row) >= rows || u32(col) >= cols {
        return 0.0;
    }
    return b[site.base + t.base + row * i32(cols) + col];
}

// The reduction index as three counters, so the loop does no division.
struct Walk {
    outer: u32,
    y: u32,
    x: u32,
    y_extent: u32,
    x_extent: u32,
}

// B[k, columns of s0..s3] for the walk's current k, then one step of the walk.
fn b_row(s0: Site, s1: Site, s2: Site, s3: Site, walk: ptr<function, Walk>) -> vec4<f32> {
    let t = tap((*walk).outer, (*walk).y, (*walk).x);
    (*walk).x += 1u;
    if (*walk).x == (*walk).x_extent {
        (*walk).x = 0u;
        (*walk).y += 1u;
        if (*walk).y == (*walk).y_extent {
            (*walk).y = 0u;
            (*walk).outer += 1u;
        }
    }
    return vec4<f32>(load_b(s0, t), load_b(s1, t), load_b(s2, t), load_b(s3, t));
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

const ROWS: u32 = 8u;

// The product where ROW_WINDOW holds (forward and grad-input of a 3-wide kernel at stride
// 1). For one (outer, y) of the reduction, the three taps of the invocation's four
// neighbouring columns read six consecutive values of one row of b: they are gathered once
// and each tap takes its four from there, 6 gathers instead of 12 (the gathers bound this
// kernel on lavapipe). Written out, not looped: a window indexed at run time lives in memory,
// not registers (50% slower on lavapipe); a 5-wide window spills (30% slower). The reduction
// runs in the (outer, y, x) order of the walk: the same fma's in the same order.
fn row_window_product(r: array<u32, ROWS>, s0: Site, acc: ptr<function, array<vec4<f32>, ROWS>>) {
    let forward = MODE == 0u;
    // Tap x of column j reads window value x + j forward; for grad-input 2 − x + j, the
    // window starting two to the left.
    var outers = p.in_channels;
    var start = s0;
    if !forward {
        outers = p.out_channels;
        start.x -= 2;
    }
    for (var outer = 0u; outer < outers; outer++) {
        for (var y = 0u; y < p.kernel_h; y++) {
            let t = tap(outer, y, 0u);
            let w0 = vec4<f32>(load_b(start, t), load_b(Site(start.base, start.y, start.x + 1), t),
                load_b(Site(start.base, start.y, start.x + 2), t),
                load_b(Site(start.base, start.y, start.x + 3), t));
            let w1 = vec2<f32>(load_b(Site(start.base, start.y, start.x + 4), t),
                load_b(Site(start.base, start.y, start.x + 5), t));
            // Values 0..3, 1..4 and 2..5 of the window, by tap (constant selects, folded).
            let b0 = select(vec4<f32>(w0.zw, w1), w0, forward);
            let b1 = vec4<f32>(w0.yzw, w1.x);
            let b2 = select(w0, vec4<f32>(w0.zw, w1), forward);
            for (var i = 0u; i < ROWS; i++) {
                // tap(outer, y, x).a = t.a + x in both modes.
                let a = r[i] + t.a;
                (*acc)[i] = fma(vec4<f32>(load_a(a)), b0, (*acc)[i]);
                (*acc)[i] = fma(vec4<f32>(load_a(a + 1u)), b1, (*acc)[i]);
                (*acc)[i] = fma(vec4<f32>(load_a(a + 2u)), b2, (*acc)[i]);
            }
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn conv2d(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n0 = gid.x * 4u;
    let m0 = wid.y * ROWS;
    let batch = wid.z;
    if n0 >= p.n {
        return;
    }
    // Rows and columns past the edge repeat the last one; store drops their results.
    var r: array<u32, ROWS>;
    for (var i = 0u; i < ROWS; i++) {
        r[i] = row_offset(min(m0 + i, p.m - 1u));
    }
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
    var acc: array<vec4<f32>, ROWS>;
    // The reduction index as (outer, y, x).
    var walk = Walk(0u, 0u, 0u, y_extent, x_extent);
    if ROW_WINDOW {
        row_window_product(r, s0, &acc);
    } else if p.vec4_a == 1u {
        // Four steps per trip with A's rows read a vec4 at a time (k % 4 = 0 here).
        for (var k0 = 0u; k0 < p.k; k0 += 4u) {
            let first = tap(walk.outer, walk.y, walk.x).a;
            let b0 = b_row(s0, s1, s2, s3, &walk);
            let b1 = b_row(s0, s1, s2, s3, &walk);
            let b2 = b_row(s0, s1, s2, s3, &walk);
            let b3 = b_row(s0, s1, s2, s3, &walk);
            for (var i = 0u; i < ROWS; i++) {
                let ai = a[(r[i] + first) >> 2u];
                acc[i] = fma(vec4<f32>(ai.x), b0, acc[i]);
                acc[i] = fma(vec4<f32>(ai.y), b1, acc[i]);
                acc[i] = fma(vec4<f32>(ai.z), b2, acc[i]);
                acc[i] = fma(vec4<f32>(ai.w), b3, acc[i]);
            }
        }
    } else {
        for (var k = 0u; k < p.k; k++) {
            let t = tap(walk.outer, walk.y, walk.x);
            let bv = b_row(s0, s1, s2, s3, &walk);
            for (var i = 0u; i < ROWS; i++) {
                acc[i] = fma(vec4<f32>(load_a(r[i] + t.a)), bv, acc[i]);
            }
        }
    }
    for (var i = 0u; i < ROWS; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(batch, m0 + i, n0 + j, acc[i][j]);
        }
    }
}
