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
//                     for real GPUs.
//   matmul_large      128×128 tiles, 8×8 per invocation, slabs fetched a slab ahead: for real
//                     GPUs on products with many tiles.
// and split-K for products with few tiles and a long K (a Linear layer at a small batch): with
// SPLIT_K, matmul_workgroup's grid is `splits` deep per batch, each workgroup sums one chunk of
// K into its own slice of a partials buffer bound as C, and matmul_split_sum adds the slices
// (in order, so the result does not depend on scheduling) and applies the epilogue.

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
    // Chunks K is split into (1 unless SPLIT_K).
    splits: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override BIAS: bool = false;
override BIAS_ROWS: bool = false;
override RELU: bool = false;
override ACCUMULATE: bool = false;
override SPLIT_K: bool = false;

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
// matmul_large stages its 128×8 slabs in the same 4 KiB.
var<workgroup> tile_a: array<vec4<f32>, 256>;
var<workgroup> tile_b: array<vec4<f32>, 256>;

@compute @workgroup_size(16, 16, 1)
fn matmul_workgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile_m = wid.y * TILE;
    let tile_n = wid.x * TILE;
    let batch = wid.z / p.splits;
    let tx = lid % 16u;
    let ty = lid / 16u;
    // A chunk is whole slabs, so a slab's loads never reach into the next chunk.
    let chunk = ((p.k + p.splits - 1u) / p.splits + SLAB - 1u) / SLAB * SLAB;
    let k_begin = (wid.z % p.splits) * chunk;
    let k_end = min(p.k, k_begin + chunk);
    var acc: array<vec4<f32>, 4>;
    for (var k0 = k_begin; k0 < k_end; k0 += SLAB) {
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
    if SPLIT_K {
        store_partial_block(wid.z, tile_m + ty * 4u, tile_n + tx * 4u, acc);
    } else {
        store_block(batch, tile_m + ty * 4u, tile_n + tx * 4u, acc);
    }
}

// ---------------------------------------------------------------------------------------------
// split-K: partial sums in slices of M×N, slice = batch * splits + split

// A slice's sums as they are: no epilogue, packed rows, C's binding holding the partials.
fn store_partial_block(slice: u32, m0: u32, n0: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if m0 + i < p.m && n0 + j < p.n {
                c[(slice * p.m + m0 + i) * p.n + n0 + j] = acc[i][j];
            }
        }
    }
}

// One output per invocation: the sum of its splits' partials, which arrive in A's binding,
// through the epilogue into C. A 1-d grid of 64-wide workgroups, folded past 65 535.
@compute @workgroup_size(64, 1, 1)
fn matmul_split_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lid;
    let size = p.m * p.n;
    if i >= p.batch * size {
        return;
    }
    let batch = i / size;
    let mn = i % size;
    var sum = 0.0;
    for (var split = 0u; split < p.splits; split++) {
        let j = (batch * p.splits + split) * size + mn;
        sum += a[j >> 2u][j & 3u];
    }
    store_c(batch, mn / p.n, mn % p.n, sum);
}

// ---------------------------------------------------------------------------------------------
// large tiles: 16×16 invocations × 8×8 outputs = a 128×128 tile of C, K in slabs of 8
//
// For real GPUs on large products: each invocation keeps 64 accumulators and reads 16 operands
// per k from workgroup memory as four vec4s, so 64 FMAs cost 4 shared loads (matmul_workgroup:
// 16 FMAs for 2). A slab is 128×8 per operand, one vec4 per invocation, read along the stored
// contiguous axis (coalesced) and fetched into registers a slab ahead so the global loads'
// latency hides behind the previous slab's arithmetic. An invocation's 8 rows are two blocks of
// 4 64 apart (likewise its columns), so neighbouring invocations read neighbouring vec4s of
// workgroup memory and write neighbouring columns of C.

const LARGE_TILE: u32 = 128u;
const LARGE_SLAB: u32 = 8u;
// vec4s per k in a staged slab: tile_a[kk * LARGE_QUADS + i] holds op(A)[tile_m + 4i .. 4i+4,
// k0 + kk] (likewise tile_b along n); 8 × 32 vec4s, the same 4 KiB per operand as matmul_workgroup.
const LARGE_QUADS: u32 = 32u;

// op(A)[m, k..k+4], or op(A)[m..m+4, k] with TRANS_A: four consecutive elements of A's stored
// rows, one vec4 load where aligned and inside the matrix, zeros outside it.
fn load_a_quad(batch: u32, m: u32, k: u32) -> vec4<f32> {
    if TRANS_A {
        if p.vec4_a == 1u && k < p.k && m + 4u <= p.m {
            return a[a_index(batch, m, k) >> 2u];
        }
        return vec4<f32>(load_a(batch, m, k), load_a(batch, m + 1u, k), load_a(batch, m + 2u, k), load_a(batch, m + 3u, k));
    }
    if p.vec4_a == 1u && m < p.m && k + 4u <= p.k {
        return a[a_index(batch, m, k) >> 2u];
    }
    return vec4<f32>(load_a(batch, m, k), load_a(batch, m, k + 1u), load_a(batch, m, k + 2u), load_a(batch, m, k + 3u));
}

// op(B)[k..k+4, n], or op(B)[k, n..n+4] without TRANS_B: four consecutive elements of B's
// stored rows, as load_a_quad.
fn load_b_quad(batch: u32, k: u32, n: u32) -> vec4<f32> {
    if TRANS_B {
        if p.vec4_b == 1u && n < p.n && k + 4u <= p.k {
            return b[b_index(batch, k, n) >> 2u];
        }
        return vec4<f32>(load_b(batch, k, n), load_b(batch, k + 1u, n), load_b(batch, k + 2u, n), load_b(batch, k + 3u, n));
    }
    if p.vec4_b == 1u && k < p.k && n + 4u <= p.n {
        return b[b_index(batch, k, n) >> 2u];
    }
    return vec4<f32>(load_b(batch, k, n), load_b(batch, k, n + 1u), load_b(batch, k, n + 2u), load_b(batch, k, n + 3u));
}

// Invocation lid's quad of A's slab at k0: a stored row of 128 holds 32 quads (TRANS_A), a
// stored row of 8 holds 2.
fn fetch_a_slab(batch: u32, tile_m: u32, k0: u32, lid: u32) -> vec4<f32> {
    if TRANS_A {
        return load_a_quad(batch, tile_m + (lid % LARGE_QUADS) * 4u, k0 + lid / LARGE_QUADS);
    }
    return load_a_quad(batch, tile_m + lid / 2u, k0 + (lid % 2u) * 4u);
}

fn stage_a_slab(lid: u32, quad: vec4<f32>) {
    if TRANS_A {
        // k = lid / LARGE_QUADS, quad lid % LARGE_QUADS along m: tile_a's own order.
        tile_a[lid] = quad;
        return;
    }
    let mm = lid / 2u;
    let kq = (lid % 2u) * 4u;
    for (var j = 0u; j < 4u; j++) {
        tile_a[(kq + j) * LARGE_QUADS + mm / 4u][mm % 4u] = quad[j];
    }
}

fn fetch_b_slab(batch: u32, tile_n: u32, k0: u32, lid: u32) -> vec4<f32> {
    if TRANS_B {
        return load_b_quad(batch, k0 + (lid % 2u) * 4u, tile_n + lid / 2u);
    }
    return load_b_quad(batch, k0 + lid / LARGE_QUADS, tile_n + (lid % LARGE_QUADS) * 4u);
}

fn stage_b_slab(lid: u32, quad: vec4<f32>) {
    if !TRANS_B {
        tile_b[lid] = quad;
        return;
    }
    let nn = lid / 2u;
    let kq = (lid % 2u) * 4u;
    for (var j = 0u; j < 4u; j++) {
        tile_b[(kq + j) * LARGE_QUADS + nn / 4u][nn % 4u] = quad[j];
    }
}

// acc + the outer product of a column (rows) and a row (columns) of 4.
fn fma_outer(rows: vec4<f32>, columns: vec4<f32>, acc: array<vec4<f32>, 4>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        fma(vec4<f32>(rows.x), columns, acc[0]),
        fma(vec4<f32>(rows.y), columns, acc[1]),
        fma(vec4<f32>(rows.z), columns, acc[2]),
        fma(vec4<f32>(rows.w), columns, acc[3]),
    );
}

@compute @workgroup_size(16, 16, 1)
fn matmul_large(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let tile_m = wid.y * LARGE_TILE;
    let tile_n = wid.x * LARGE_TILE;
    let batch = wid.z;
    let tx = lid % 16u;
    let ty = lid / 16u;
    // acc_rc: rows ty*4 (+64 if r), columns tx*4 (+64 if c) of the tile.
    var acc_00: array<vec4<f32>, 4>;
    var acc_01: array<vec4<f32>, 4>;
    var acc_10: array<vec4<f32>, 4>;
    var acc_11: array<vec4<f32>, 4>;
    var next_a = fetch_a_slab(batch, tile_m, 0u, lid);
    var next_b = fetch_b_slab(batch, tile_n, 0u, lid);
    for (var k0 = 0u; k0 < p.k; k0 += LARGE_SLAB) {
        stage_a_slab(lid, next_a);
        stage_b_slab(lid, next_b);
        workgroupBarrier();
        // Past K the loads read zeros without touching memory.
        next_a = fetch_a_slab(batch, tile_m, k0 + LARGE_SLAB, lid);
        next_b = fetch_b_slab(batch, tile_n, k0 + LARGE_SLAB, lid);
        for (var kk = 0u; kk < LARGE_SLAB; kk++) {
            let a_0 = tile_a[kk * LARGE_QUADS + ty];
            let a_1 = tile_a[kk * LARGE_QUADS + 16u + ty];
            let b_0 = tile_b[kk * LARGE_QUADS + tx];
            let b_1 = tile_b[kk * LARGE_QUADS + 16u + tx];
            acc_00 = fma_outer(a_0, b_0, acc_00);
            acc_01 = fma_outer(a_0, b_1, acc_01);
            acc_10 = fma_outer(a_1, b_0, acc_10);
            acc_11 = fma_outer(a_1, b_1, acc_11);
        }
        workgroupBarrier();
    }
    let m0 = tile_m + ty * 4u;
    let n0 = tile_n + tx * 4u;
    store_block(batch, m0, n0, acc_00);
    store_block(batch, m0, n0 + 64u, acc_01);
    store_block(batch, m0 + 64u, n0, acc_10);
    store_block(batch, m0 + 64u, n0 + 64u, acc_11);
}
