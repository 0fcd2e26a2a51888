// Lowering a convolution to matrix products, conv2d's second schedule (see
// kernels::conv2d::Conv2dSchedule): the input's patches as the rows of a matrix, the way back,
// and the batch↔channel swap that grad-weight needs. Each invocation writes a quad of its
// output (quads.wgsl, prepended) and decodes the quad's first index once, then steps through
// the other three with counters: integer division is what costs here. The twins are in
// src/reference/lowering.rs.
//
//   im2col              col[(b·P + p)·K + k] = x[b, c, oy·s − pad + ky, ox·s − pad + kx], or 0
//                       in the padding; p = (oy, ox) over out_h × out_w, k = (c, ky, kx) over
//                       C × kh × kw, so row (b, p) is the patch output pixel p reads. With
//                       TAP_MAJOR the transpose, col[k·B·P + b·P + p].
//   col2im              dx[b, c, iy, ix] = Σ dcol[(b·P + p)·K + k] over the taps (ky, kx) whose
//                       output pixel p = (oy, ox), oy·s = iy + pad − ky, ox·s = ix + pad − kx,
//                       exists: im2col's adjoint, as a gather (each dx written once, no atomics).
//                       With BIAS, + bias[c]: the transposed convolution's forward pass ends here.
//   swap_batch_channel  y[c, b, s] = x[b, c, s] over [batch, channels, spatial].

struct Params {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    kernel_h: u32,
    kernel_w: u32,
    padding: u32,
    out_h: u32,
    out_w: u32,
    // swap_batch_channel's plane size
    spatial: u32,
    // elements written
    n: u32,
    _pad: u32,
}

override STRIDE: u32 = 1u;
override BIAS: bool = false;
// The patch matrix's layout: [B·P, K] (a row per output pixel), or with TAP_MAJOR its transpose
// [K, B·P] (a row per channel and tap, the batch's pixels along it).
override TAP_MAJOR: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
// col2im's per-channel bias (a placeholder without BIAS); the other entry points do not bind it.
@group(0) @binding(3) var<storage, read> bias: array<f32>;

fn load(i: u32) -> f32 {
    return src[i >> 2u][i & 3u];
}

// ---------------------------------------------------------------------------------------------
// im2col

// Where column k of a patch row sits: channel c, tap (ky, kx).
struct Tap {
    c: u32,
    ky: u32,
    kx: u32,
}

// Where row (b, p) reads: image b, output pixel (oy, ox).
struct Pixel {
    b: u32,
    oy: u32,
    ox: u32,
}

fn im2col_value(pixel: Pixel, tap: Tap) -> f32 {
    // Negative coordinates wrap to huge unsigned values, so one comparison per axis.
    let iy = pixel.oy * STRIDE + tap.ky - p.padding;
    let ix = pixel.ox * STRIDE + tap.kx - p.padding;
    if iy >= p.height || ix >= p.width {
        return 0.0;
    }
    return load(((pixel.b * p.channels + tap.c) * p.height + iy) * p.width + ix);
}

// The next tap along a patch row: (c, ky, kx) with kx fastest. True where it wraps to the first.
fn next_tap(tap: ptr<function, Tap>) -> bool {
    (*tap).kx += 1u;
    if (*tap).kx == p.kernel_w {
        (*tap).kx = 0u;
        (*tap).ky += 1u;
        if (*tap).ky == p.kernel_h {
            (*tap).ky = 0u;
            (*tap).c += 1u;
            if (*tap).c == p.channels {
                (*tap).c = 0u;
                return true;
            }
        }
    }
    return false;
}

// The next (image, output pixel): (b, oy, ox) with ox fastest. True where it wraps to the first.
fn next_pixel(pixel: ptr<function, Pixel>) -> bool {
    (*pixel).ox += 1u;
    if (*pixel).ox == p.out_w {
        (*pixel).ox = 0u;
        (*pixel).oy += 1u;
        if (*pixel).oy == p.out_h {
            (*pixel).oy = 0u;
            (*pixel).b += 1u;
            if (*pixel).b == p.batch {
                (*pixel).b = 0u;
                return true;
            }
        }
    }
    return false;
}

@compute @workgroup_size(QUAD_WG)
fn im2col(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let taps = p.kernel_h * p.kernel_w;
    let k_len = p.channels * taps;
    let pixels = p.out_h * p.out_w;
    let first = 4u * q;
    var row = first / k_len;
    var k = first % k_len;
    if TAP_MAJOR {
        row = first % (p.batch * pixels);
        k = first / (p.batch * pixels);
    }
    var pixel = Pixel(row / pixels, row % pixels / p.out_w, row % pixels % p.out_w);
    var tap = Tap(k / taps, k % taps / p.kernel_w, k % taps % p.kernel_w);
    var out: vec4<f32>;
    for (var lane = 0u; lane < 4u; lane++) {
        out[lane] = im2col_value(pixel, tap);
        // Step to the next element: along the stored row, and at its end to the next row.
        if TAP_MAJOR {
            if next_pixel(&pixel) {
                next_tap(&tap);
            }
        } else if next_tap(&tap) {
            next_pixel(&pixel);
        }
    }
    if is_last_partial(q, p.n) {
        out = below_n(q, p.n, out, dst[q]);
    }
    dst[q] = out;
}

// ---------------------------------------------------------------------------------------------
// col2im

// Σ over the taps that read input pixel (iy, ix) of channel c in image b.
fn col2im_value(b: u32, c: u32, iy: u32, ix: u32) -> f32 {
    let k_len = p.channels * p.kernel_h * p.kernel_w;
    let rows = p.batch * p.out_h * p.out_w;
    var sum = 0.0;
    for (var ky = 0u; ky < p.kernel_h; ky++) {
        // oy·s = iy + pad − ky; below zero wraps to a huge value and fails the range test.
        let y = iy + p.padding - ky;
        let oy = y / STRIDE;
        if y % STRIDE != 0u || oy >= p.out_h {
            continue;
        }
        for (var kx = 0u; kx < p.kernel_w; kx++) {
            let x = ix + p.padding - kx;
            let ox = x / STRIDE;
            if x % STRIDE != 0u || ox >= p.out_w {
                continue;
            }
            let row = (b * p.out_h + oy) * p.out_w + ox;
            let k = (c * p.kernel_h + ky) * p.kernel_w + kx;
            sum += load(select(row * k_len + k, k * rows + row, TAP_MAJOR));
        }
    }
    return sum;
}

@compute @workgroup_size(QUAD_WG)
fn col2im(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    let first = 4u * q;
    var ix = first % p.width;
    var iy = first / p.width % p.height;
    var plane = first / (p.width * p.height);
    var out: vec4<f32>;
    for (var lane = 0u; lane < 4u; lane++) {
        let c = plane % p.channels;
        out[lane] = col2im_value(plane / p.channels, c, iy, ix);
        if BIAS {
            out[lane] += bias[c];
        }
        ix += 1u;
        if ix == p.width {
            ix = 0u;
            iy += 1u;
            if iy == p.height {
                iy = 0u;
                plane += 1u;
            }
        }
    }
    if is_last_partial(q, p.n) {
        out = below_n(q, p.n, out, dst[q]);
    }
    dst[q] = out;
}

// ---------------------------------------------------------------------------------------------
// swap_batch_channel

@compute @workgroup_size(QUAD_WG)
fn swap_batch_channel(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = quad(wid, nwg, lid);
    if 4u * q >= p.n {
        return;
    }
    // Output index (c, b, s), walked along s.
    let first = 4u * q;
    var s = first % p.spatial;
    var b = first / p.spatial % p.batch;
    var c = first / (p.spatial * p.batch);
    var out: vec4<f32>;
    for (var lane = 0u; lane < 4u; lane++) {
        out[lane] = load((b * p.channels + c) * p.spatial + s);
        s += 1u;
        if s == p.spatial {
            s = 0u;
            b += 1u;
            if b == p.batch {
                b = 0u;
                c += 1u;
            }
        }
    }
    if is_last_partial(q, p.n) {
        out = below_n(q, p.n, out, dst[q]);
    }
    dst[q] = out;
}
