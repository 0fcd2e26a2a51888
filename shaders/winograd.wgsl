// Winograd's F(2×2, 3×3) for a 3×3, stride-1 convolution's inference forward (see
// kernels::conv2d_layer::InferenceForward): the three transforms around its 16 matrix products,
// which run on matmul.wgsl. The layouts and the matrices are in src/reference/winograd.rs, the
// twins. Each invocation transforms one 4×4 tile held in registers, its 16 values written
// (or read) 16 planes apart, so neighbouring invocations touch neighbouring memory.
//
//   winograd_weights  U[ξ, c, o] = (G g Gᵀ)[ξ], g = weight[o, c]          item c·O + o
//   winograd_input    V[ξ, c, t] = (Bᵀ d B)[ξ], d the input tile t of c   item c·T + t
//   winograd_output   y's 2×2 block of tile t of o = Aᵀ m A (+ bias[o]),
//                     m[ξ] = M[ξ, t, o]                                  item t·O + o

struct Params {
    channels: u32,
    out_channels: u32,
    height: u32,
    width: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
    tiles_h: u32,
    tiles_w: u32,
    // T, the batch's tiles
    tiles: u32,
    // items, one per invocation; also the distance between planes ξ and ξ + 1
    n: u32,
    _pad: u32,
}

override BIAS: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// winograd_output's bias (a placeholder without BIAS); the other entry points do not bind it.
@group(0) @binding(3) var<storage, read> bias: array<f32>;

const WG: u32 = 64u;

// The item of this invocation on a 1-d grid folded past 65 535 workgroups (workgroups_1d).
fn item(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// Where tile t lies: image, then tile row and column.
struct Tile {
    b: u32,
    ty: u32,
    tx: u32,
}

fn tile_of(t: u32) -> Tile {
    let row = t / p.tiles_w;
    return Tile(row / p.tiles_h, row % p.tiles_h, t % p.tiles_w);
}

// One row of a tile times Lᵀ for the transforms' L, each written out: row · Gᵀ, row · B,
// row · A.
fn times_g_t(row: vec3<f32>) -> vec4<f32> {
    return vec4<f32>(row.x, 0.5 * (row.x + row.y + row.z), 0.5 * (row.x - row.y + row.z), row.z);
}

fn times_b(row: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(row.x - row.z, row.y + row.z, row.z - row.y, row.y - row.w);
}

fn times_a(row: vec4<f32>) -> vec2<f32> {
    return vec2<f32>(row.x + row.y + row.z, row.y - row.z - row.w);
}

// Stores tile row `r` of a transformed item at its four planes.
fn store_row(i: u32, r: u32, row: vec4<f32>) {
    let plane = 4u * r * p.n + i;
    dst[plane] = row.x;
    dst[plane + p.n] = row.y;
    dst[plane + 2u * p.n] = row.z;
    dst[plane + 3u * p.n] = row.w;
}

@compute @workgroup_size(64, 1, 1)
fn winograd_weights(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = item(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    // The kernel's rows; then the rows of G g.
    let start = 9u * ((i % p.out_channels) * p.channels + i / p.out_channels);
    let g0 = vec3<f32>(src[start], src[start + 1u], src[start + 2u]);
    let g1 = vec3<f32>(src[start + 3u], src[start + 4u], src[start + 5u]);
    let g2 = vec3<f32>(src[start + 6u], src[start + 7u], src[start + 8u]);
    store_row(i, 0u, times_g_t(g0));
    store_row(i, 1u, times_g_t(0.5 * (g0 + g1 + g2)));
    store_row(i, 2u, times_g_t(0.5 * (g0 - g1 + g2)));
    store_row(i, 3u, times_g_t(g2));
}

// Input column ix of the row starting at `start`, zero in the padding.
fn input_at(start: u32, ix: i32) -> f32 {
    if ix < 0 || ix >= i32(p.width) {
        return 0.0;
    }
    return src[start + u32(ix)];
}

// Row `r` of input tile `tile` of channel plane `plane`, zeros in the padding.
fn input_row(plane: u32, tile: Tile, r: u32) -> vec4<f32> {
    let iy = i32(2u * tile.ty + r) - i32(p.padding);
    if iy < 0 || iy >= i32(p.height) {
        return vec4<f32>(0.0);
    }
    let ix = i32(2u * tile.tx) - i32(p.padding);
    let start = (plane * p.height + u32(iy)) * p.width;
    return vec4<f32>(
        input_at(start, ix),
        input_at(start, ix + 1),
        input_at(start, ix + 2),
        input_at(start, ix + 3),
    );
}

@compute @workgroup_size(64, 1, 1)
fn winograd_input(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = item(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let c = i / p.tiles;
    let tile = tile_of(i % p.tiles);
    let plane = tile.b * p.channels + c;
    let d0 = input_row(plane, tile, 0u);
    let d1 = input_row(plane, tile, 1u);
    let d2 = input_row(plane, tile, 2u);
    let d3 = input_row(plane, tile, 3u);
    // The rows of Bᵀ d, each times B.
    store_row(i, 0u, times_b(d0 - d2));
    store_row(i, 1u, times_b(d1 + d2));
    store_row(i, 2u, times_b(d2 - d1));
    store_row(i, 3u, times_b(d1 - d3));
}

// Row `r` of item i's products, read from its four planes.
fn product_row(i: u32, r: u32) -> vec4<f32> {
    let plane = 4u * r * p.n + i;
    return vec4<f32>(src[plane], src[plane + p.n], src[plane + 2u * p.n], src[plane + 3u * p.n]);
}

fn store_output(tile: Tile, o: u32, dy: u32, dx: u32, value: f32) {
    let oy = 2u * tile.ty + dy;
    let ox = 2u * tile.tx + dx;
    if oy < p.out_h && ox < p.out_w {
        dst[((tile.b * p.out_channels + o) * p.out_h + oy) * p.out_w + ox] = value;
    }
}

@compute @workgroup_size(64, 1, 1)
fn winograd_output(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = item(wid, nwg, lid);
    if i >= p.n {
        return;
    }
    let o = i % p.out_channels;
    let tile = tile_of(i / p.out_channels);
    let m0 = product_row(i, 0u);
    let m1 = product_row(i, 1u);
    let m2 = product_row(i, 2u);
    let m3 = product_row(i, 3u);
    // The rows of Aᵀ m, each times A.
    var top = times_a(m0 + m1 + m2);
    var bottom = times_a(m1 - m2 - m3);
    if BIAS {
        top += vec2<f32>(bias[o]);
        bottom += vec2<f32>(bias[o]);
    }
    store_output(tile, o, 0u, 0u, top.x);
    store_output(tile, o, 0u, 1u, top.y);
    store_output(tile, o, 1u, 0u, bottom.x);
    store_output(tile, o, 1u, 1u, bottom.y);
}
