// C[b] = epilogue(op(A[b]) · op(B[b]))   for b in 0..batch
//
// op(A) is M×K and op(B) is K×N; TRANS_A / TRANS_B read the stored transpose in place, so
// backward passes never copy. A batch stride of 0 broadcasts an operand (shared weights).
// A's and C's rows are lda and ldc apart (BLAS's leading dimensions): packed, or wider to read
// or write a block of columns of a wider matrix (a Linear split into blocks of outputs).
// The epilogue adds C's old value (ACCUMULATE), a bias (BIAS; per column, or per row with
// BIAS_ROWS), then clamps (RELU).
//
// Four variants of one contract, chosen per adapter and shape (src/kernels/matmul.rs):
//   matmul_naive      one output per invocation; the reference point.
//   matmul_register   a 4×4 register block per invocation, vec4 loads, no workgroup memory:
//                     for CPU adapters (lavapipe), where barriers are expensive.
//   matmul_strip      8×4 per invocation with the 8 rows uniform across the workgroup: on
//                     CPU adapters, faster than matmul_register on wide products.
//   matmul_workgroup  64×64 tiles staged through workgroup memory, 4×4 per invocation:
//                     fastest on real GPUs.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    stride_a: u32,
    stride_b: u32,
    stride_c: u32,
    // 1 when every 4-run along the operand's contiguous axis is 16-byte aligned.
    vec4_a: u32,
    vec4_b: u32,
    lda: u32,
    ldc: u32,
    _pad: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override BIAS_ROWS: bool = false;
override RELU: bool = false;
override ACCUMULATE: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

fn a_index(batch: u32, m: u32, k: u32) -> u32 {
    if TRANS_A {
        return batch * p.stride_a + k * p.lda + m;
    }
    return batch * p.stride_a + m * p.lda + k;
}

fn b_index(batch: u32, k: u32, n: u32) -> u32 {
    if TRANS_B {
        return batch * p.stride_b + n * p.k + k;
    }
    return batch * p.stride_b + k * p.n + n;
}

// op(A)[m, k], zero outside the matrix.
fn load_a(batch: u32, m: u32, k: u32) -> f32 {
    if m >= p.m || k >= p.k {
        return 0.0;
    }
    let i = a_index(batch, m, k);
    return a[i >> 2u][i & 3u];
}

// op(B)[k, n], zero outside the matrix.
fn load_b(batch: u32, k: u32, n: u32) -> f32 {
    if k >= p.k || n >= p.n {
        return 0.0;
    }
    let i = b_index(batch, k, n);
    return b[i >> 2u][i & 3u];
}

fn store_c(batch: u32, m: u32, n: u32, value: f32) {
    if m >= p.m || n >= p.n {
        return;
    }
    let i = batch * p.stride_c + m * p.ldc + n;
    var v = value;
    if ACCUMULATE {
        v += c[i];
    }
    if BIAS {
        v += bias[select(n, m, BIAS_ROWS)];
    }
    if RELU {
        v = max(v, 0.0);
    }
    c[i] = v;
}

// ---------------------------------------------------------------------------------------------
// naive

@compute @workgroup_size(16, 16, 1)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let m = gid.y;
    let batch = gid.z;
    if m >= p.m || n >= p.n {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < p.k; k++) {
        acc = fma(load_a(batch, m, k), load_b(batch, k, n), acc);
    }
    store_c(batch, m, n, acc);
}

// ---------------------------------------------------------------------------------------------
// register-blocked: 8×8 invocations × 4×4 outputs = a 32×32 tile of C per workgroup

// Rows m0..m0+4 of op(A), columns k0..k0+4: result[i] = op(A)[m0 + i, k0..k0+4].
fn load_a_block(batch: u32, m0: u32, k0: u32) -> array<vec4<f32>, 4> {
    var rows: array<vec4<f32>, 4>;
    if TRANS_A {
        // Stored K×M: a vec4 runs along m, so load columns and transpose in registers.
        if p.vec4_a == 1u && m0 + 4u <= p.m && k0 + 4u <= p.k {
            let base = a_index(batch, m0, k0) >> 2u;
            let step = p.lda >> 2u;
            let t = transpose(mat4x4<f32>(a[base], a[base + step], a[base + 2u * step], a[base + 3u * step]));
            rows = array<vec4<f32>, 4>(t[0], t[1], t[2], t[3]);
            return rows;
        }
    } else {
        // Stored M×K: a vec4 runs along k.
        if p.vec4_a == 1u && m0 + 4u <= p.m && k0 + 4u <= p.k {
            let base = a_index(batch, m0, k0) >> 2u;
            let step = p.lda >> 2u;
            rows = array<vec4<f32>, 4>(a[base], a[base + step], a[base + 2u * step], a[base + 3u * step]);
            return rows;
        }
    }
    for (var i = 0u; i < 4u; i++) {
        rows[i] = vec4<f32>(
            load_a(batch, m0 + i, k0),
            load_a(batch, m0 + i, k0 + 1u),
            load_a(batch, m0 + i, k0 + 2u),
            load_a(batch, m0 + i, k0 + 3u),
        );
    }
    return rows;
}

// Rows k0..k0+4 of op(B), columns n0..n0+4: result[kk] = op(B)[k0 + kk, n0..n0+4].
fn load_b_block(batch: u32, k0: u32, n0: u32) -> array<vec4<f32>, 4> {
    var rows: array<vec4<f32>, 4>;
    if TRANS_B {
        // Stored N×K: a vec4 runs along k.
        if p.vec4_b == 1u && n0 + 4u <= p.n && k0 + 4u <= p.k {
            let base = b_index(batch, k0, n0) >> 2u;
            let step = p.k >> 2u;
            let t = transpose(mat4x4<f32>(b[base], b[base + step], b[base + 2u * step], b[base + 3u * step]));
            rows = array<vec4<f32>, 4>(t[0], t[1], t[2], t[3]);
            return rows;
        }
    } else {
        // Stored K×N: a vec4 runs along n.
        if p.vec4_b == 1u && n0 + 4u <= p.n && k0 + 4u <= p.k {
            let base = b_index(batch, k0, n0) >> 2u;
            let step = p.n >> 2u;
            rows = array<vec4<f32>, 4>(b[base], b[base + step], b[base + 2u * step], b[base + 3u * step]);
            return rows;
        }
    }
    for (var kk = 0u; kk < 4u; kk++) {
        rows[kk] = vec4<f32>(
            load_b(batch, k0 + kk, n0),
            load_b(batch, k0 + kk, n0 + 1u),
            load_b(batch, k0 + kk, n0 + 2u),
            load_b(batch, k0 + kk, n0 + 3u),
        );
    }
    return rows;
}

fn store_block(batch: u32, m0: u32, n0: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_c(batch, m0 + i, n0 + j, acc[i][j]);
        }
    }
}

@compute @workgroup_size(8, 8, 1)
fn matmul_register(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    let batch = gid.z;
    if m0 >= p.m || n0 >= p.n {
        return;
    }
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let ar = load_a_block(batch, m0, k0);
        let br = load_b_block(batch, k0, n0);
        for (var i = 0u; i < 4u; i++) {
            acc[i] = fma(vec4<f32>(ar[i].x), br[0], acc[i]);
            acc[i] = fma(vec4<f32>(ar[i].y), br[1], acc[i]);
            acc[i] = fma(vec4<f32>(ar[i].z), br[2], acc[i]);
            acc[i] = fma(vec4<f32>(ar[i].w), br[3], acc[i]);
        }
    }
    store_block(batch, m0, n0, acc);
}

// ---------------------------------------------------------------------------------------------
// strips: 8 rows × 256 columns of C per workgroup, 8×4 outputs per invocation
//
// All 64 invocations of a workgroup share its 8 rows, which come from the workgroup id alone,
// so A's loads are uniform: a CPU adapter (lavapipe) loads them once per SIMD batch and
// broadcasts them, leaving B's per-lane gathers as the only divergent loads, each feeding 8
// FMAs instead of matmul_register's 4. Eight rows is as tall as the accumulators stay in
// registers: twelve and sixteen measured slower. Narrow products (n ≲ 256) idle most of a
// strip's lanes; the tuner keeps matmul_register for those.

const STRIP_ROWS: u32 = 8u;

@compute @workgroup_size(64, 1, 1)
fn matmul_strip(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n0 = gid.x * 4u;
    let m0 = wid.y * STRIP_ROWS;
    let batch = wid.z;
    if n0 >= p.n {
        return;
    }
    var acc: array<vec4<f32>, STRIP_ROWS>;
    for (var k0 = 0u; k0 < p.k; k0 += 4u) {
        let br = load_b_block(batch, k0, n0);
        let upper = load_a_block(batch, m0, k0);
        let lower = load_a_block(batch, m0 + 4u, k0);
        // Written out per half: a loop over the halves leaves acc indexed at run time, which
        // keeps it out of registers (3× slower on lavapipe).
        for (var i = 0u; i < 4u; i++) {
            acc[i] = fma(vec4<f32>(upper[i].x), br[0], acc[i]);
            acc[i] = fma(vec4<f32>(upper[i].y), br[1], acc[i]);
            acc[i] = fma(vec4<f32>(upper[i].z), br[2], acc[i]);
            acc[i] = fma(vec4<f32>(upper[i].w), br[3], acc[i]);
            acc[i + 4u] = fma(vec4<f32>(lower[i].x), br[0], acc[i + 4u]);
            acc[i + 4u] = fma(vec4<f32>(lower[i].y), br[1], acc[i + 4u]);
            acc[i + 4u] = fma(vec4<f32>(lower[i].z), br[2], acc[i + 4u]);
            acc[i + 4u] = fma(vec4<f32>(lower[i].w), br[3], acc[i + 4u]);
        }
    }
    // Rows past m (the lower half of the last strip) read as zeros; store_c drops them.
    for (var i = 0u; i < STRIP_ROWS; i++) {
        for (var j = 0u; j < 4u; j++) {
            store_c(batch, m0 + i, n0 + j, acc[i][j]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// workgroup-tiled: 16×16 invocations × 4×4 outputs = a 64×64 tile of C, K in slabs of 16

const TILE: u32 = 64u;
const SLAB: u32 = 16u;

// tile_a[kk * 16 + i] holds op(A)[tile_m + 4i .. 4i+4, k0 + kk]; likewise tile_b along n.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn matmul_workgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile_m = wid.y * TILE;
    let tile_n = wid.x * TILE;
    let batch = wid.z;
    let tx = lid % 16u;
    let ty = lid / 16u;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += SLAB) {
        // 1024 elements of each operand, 4 per invocation, walking the stored contiguous axis.
        for (var r = 0u; r < 4u; r++) {
            let e = lid + r * 256u;
            var mm: u32;
            var kk: u32;
            if TRANS_A {
                mm = e % TILE;
                kk = e / TILE;
            } else {
                kk = e % SLAB;
                mm = e / SLAB;
            }
            tile_a[kk * 16u + mm / 4u][mm % 4u] = load_a(batch, tile_m + mm, k0 + kk);
            var nn: u32;
            if TRANS_B {
                kk = e % SLAB;
                nn = e / SLAB;
            } else {
                nn = e % TILE;
                kk = e / TILE;
            }
            tile_b[kk * 16u + nn / 4u][nn % 4u] = load_b(batch, k0 + kk, tile_n + nn);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < SLAB; kk++) {
            let av = tile_a[kk * 16u + ty];
            let bv = tile_b[kk * 16u + tx];
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
        workgroupBarrier();
    }
    store_block(batch, tile_m + ty * 4u, tile_n + tx * 4u, acc);
}
