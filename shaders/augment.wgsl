// Augmentation of an NCHW f32 batch with per-image parameters drawn on the host (the twins and
// the draws are in src/reference/augment.rs):
//
//   sample        y = x read bilinearly at each image's affine map of the output pixel
//                 indices, the image extended past a window by a fill: random affine, flip,
//                 random crop with padding, random resized crop
//   color_jitter  torchvision's brightness, contrast, saturation and hue in a per-image order;
//                 one workgroup per image, which sums the grey levels contrast needs
//   erase         x = value inside each image's box, in place

const WG: u32 = 64u;

fn invocation(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// ---------------------------------------------------------------------------------------------
// sample

const FILL_NEAREST: u32 = 0u;
const FILL_CONSTANT: u32 = 1u;
const FILL_REFLECT: u32 = 2u;
const FILL_MIRROR: u32 = 3u;

struct SampleParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    fill: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> sample_p: SampleParams;
// Per image: the matrix (m0 m1 m2 m3), (m4 m5, window x0 y0), (window w h, unused).
@group(0) @binding(1) var<storage, read> sample_transforms: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> sample_x: array<f32>;
// Per channel: the constant a tap outside the window reads (FILL_CONSTANT).
@group(0) @binding(3) var<storage, read> sample_fill: array<f32>;
@group(0) @binding(4) var<storage, read_write> sample_y: array<f32>;

// The index in 0..n whose pixel extends a window of n pixels to index t, or −1 where the fill
// constant is read. Only unsigned division: GLSL leaves / and % of negative ints undefined.
fn extend(t: i32, n: i32) -> i32 {
    switch sample_p.fill {
        case FILL_NEAREST: {
            return clamp(t, 0, n - 1);
        }
        case FILL_REFLECT: {
            // Period 2n, symmetric about −1/2: t and −1 − t read the same pixel.
            let period = 2u * u32(n);
            let m = u32(select(t, -1 - t, t < 0)) % period;
            return i32(select(m, period - 1u - m, m >= u32(n)));
        }
        case FILL_MIRROR: {
            // Period 2n − 2, symmetric about 0: t and −t read the same pixel.
            if n == 1 {
                return 0;
            }
            let period = 2u * u32(n) - 2u;
            let m = u32(abs(t)) % period;
            return i32(select(m, period - m, m >= u32(n)));
        }
        default: {
            return select(-1, t, t >= 0 && t < n);
        }
    }
}

fn tap(plane: u32, channel: u32, column: i32, row: i32) -> f32 {
    if column < 0 || row < 0 {
        return sample_fill[channel];
    }
    return sample_x[plane + u32(row) * sample_p.width + u32(column)];
}

// One output pixel per invocation, all channels: the map and the taps are found once.
@compute @workgroup_size(WG)
fn sample(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let pixel = invocation(wid, nwg, lid);
    let out_plane = sample_p.out_height * sample_p.out_width;
    if pixel >= sample_p.batch * out_plane {
        return;
    }
    let image = pixel / out_plane;
    let out_row = (pixel - image * out_plane) / sample_p.out_width;
    let out_column = pixel - image * out_plane - out_row * sample_p.out_width;
    let a = sample_transforms[3u * image];
    let b = sample_transforms[3u * image + 1u];
    let window = vec4<i32>(vec2<i32>(b.zw), vec2<i32>(sample_transforms[3u * image + 2u].xy));
    let out_x = f32(out_column);
    let out_y = f32(out_row);
    // Clamped far outside any image so that the integer conversions cannot overflow.
    let xs = clamp(a.x * out_x + a.y * out_y + a.z, -1e6, 1e6);
    let ys = clamp(a.w * out_x + b.x * out_y + b.y, -1e6, 1e6);
    let left = floor(xs);
    let above = floor(ys);
    let fx = xs - left;
    let fy = ys - above;
    let column0 = extend(i32(left) - window.x, window.z);
    let column1 = extend(i32(left) + 1 - window.x, window.z);
    let row0 = extend(i32(above) - window.y, window.w);
    let row1 = extend(i32(above) + 1 - window.y, window.w);
    // Taps outside the window keep −1 (constant fill); inside, they move to image indices.
    let c0 = select(column0, column0 + window.x, column0 >= 0);
    let c1 = select(column1, column1 + window.x, column1 >= 0);
    let r0 = select(row0, row0 + window.y, row0 >= 0);
    let r1 = select(row1, row1 + window.y, row1 >= 0);
    let in_plane = sample_p.height * sample_p.width;
    for (var channel = 0u; channel < sample_p.channels; channel++) {
        let plane = (image * sample_p.channels + channel) * in_plane;
        let v00 = tap(plane, channel, c0, r0);
        let v10 = tap(plane, channel, c1, r0);
        let v01 = tap(plane, channel, c0, r1);
        let v11 = tap(plane, channel, c1, r1);
        let top = v00 + fx * (v10 - v00);
        let bottom = v01 + fx * (v11 - v01);
        let out = (image * sample_p.channels + channel) * out_plane + out_row * sample_p.out_width
            + out_column;
        sample_y[out] = top + fy * (bottom - top);
    }
}

// ---------------------------------------------------------------------------------------------
// color_jitter

const BRIGHTNESS: u32 = 0u;
const CONTRAST: u32 = 1u;
const SATURATION: u32 = 2u;
const HUE: u32 = 3u;

struct JitterParams {
    batch: u32,
    channels: u32,
    plane: u32,
    // Whether any image has a contrast step (then each workgroup first finds its mean grey).
    contrast: u32,
    mean: vec4<f32>,
    deviation: vec4<f32>,
}

@group(0) @binding(0) var<uniform> jitter_p: JitterParams;
// Per image: four op codes (4 = none) in the order they apply, then their four factors.
@group(0) @binding(1) var<storage, read> jitter_draws: array<f32>;
@group(0) @binding(2) var<storage, read> jitter_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> jitter_y: array<f32>;

var<workgroup> grey_sums: array<f32, WG>;

// A grey pixel lives in .x; grey_level of it is itself.
fn grey_level(v: vec3<f32>) -> f32 {
    if jitter_p.channels == 1u {
        return v.x;
    }
    return 0.2989 * v.x + 0.587 * v.y + 0.114 * v.z;
}

fn blend(a: vec3<f32>, b: vec3<f32>, ratio: f32) -> vec3<f32> {
    return clamp(ratio * a + (1.0 - ratio) * b, vec3<f32>(0.0), vec3<f32>(1.0));
}

// torchvision's adjust_hue: _rgb2hsv, h ← (h + factor) mod 1, _hsv2rgb.
fn turn_hue(rgb: vec3<f32>, factor: f32) -> vec3<f32> {
    let r = rgb.x;
    let g = rgb.y;
    let b = rgb.z;
    let v = max(max(r, g), b);
    let chroma = v - min(min(r, g), b);
    let grey = chroma == 0.0;
    let s = chroma / select(v, 1.0, grey);
    let divisor = select(chroma, 1.0, grey);
    let rc = (v - r) / divisor;
    let gc = (v - g) / divisor;
    let bc = (v - b) / divisor;
    var h = 4.0 + gc - rc;
    if v == r {
        h = bc - gc;
    } else if v == g {
        h = 2.0 + rc - bc;
    }
    h = fract(fract(h / 6.0 + 1.0) + factor);
    let sector = floor(h * 6.0);
    let f = h * 6.0 - sector;
    let p = clamp(v * (1.0 - s), 0.0, 1.0);
    let q = clamp(v * (1.0 - s * f), 0.0, 1.0);
    let t = clamp(v * (1.0 - s * (1.0 - f)), 0.0, 1.0);
    switch u32(sector) % 6u {
        case 0u: { return vec3<f32>(v, t, p); }
        case 1u: { return vec3<f32>(q, v, p); }
        case 2u: { return vec3<f32>(p, v, t); }
        case 3u: { return vec3<f32>(p, q, v); }
        case 4u: { return vec3<f32>(t, p, v); }
        default: { return vec3<f32>(v, p, q); }
    }
}

fn apply(op: u32, factor: f32, v: vec3<f32>, mean_grey: f32) -> vec3<f32> {
    switch op {
        case BRIGHTNESS: { return clamp(factor * v, vec3<f32>(0.0), vec3<f32>(1.0)); }
        case CONTRAST: { return blend(v, vec3<f32>(mean_grey), factor); }
        case SATURATION: { return blend(v, vec3<f32>(grey_level(v)), factor); }
        case HUE: { return turn_hue(v, factor); }
        default: { return v; }
    }
}

// Pixel `pixel` of `image` as pixel values in [0, 1] (a grey one in .x).
fn load_pixel(image: u32, pixel: u32) -> vec3<f32> {
    var v = vec3<f32>(0.0);
    for (var c = 0u; c < jitter_p.channels; c++) {
        let x = jitter_x[(image * jitter_p.channels + c) * jitter_p.plane + pixel];
        v[c] = x * jitter_p.deviation[c] + jitter_p.mean[c];
    }
    return v;
}

// One workgroup per image. Each invocation owns the pixels lid, lid + WG, ...; pixels never
// meet except in contrast's mean, so each pass recomputes its pixels from x rather than storing
// the intermediate image: a first pass runs the steps before contrast and sums the grey levels,
// the second runs every step.
@compute @workgroup_size(WG)
fn color_jitter(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let image = wid.x + wid.y * nwg.x;
    if image >= jitter_p.batch {
        return;
    }
    let draw = image * 8u;
    var mean_grey = 0.0;
    if jitter_p.contrast != 0u {
        var sum = 0.0;
        for (var pixel = lid; pixel < jitter_p.plane; pixel += WG) {
            var v = load_pixel(image, pixel);
            for (var step = 0u; step < 4u; step++) {
                let op = u32(jitter_draws[draw + step]);
                if op == CONTRAST {
                    break;
                }
                v = apply(op, jitter_draws[draw + 4u + step], v, 0.0);
            }
            sum += grey_level(v);
        }
        grey_sums[lid] = sum;
        for (var half = WG / 2u; half > 0u; half /= 2u) {
            workgroupBarrier();
            if lid < half {
                grey_sums[lid] += grey_sums[lid + half];
            }
        }
        mean_grey = workgroupUniformLoad(&grey_sums[0]) / f32(jitter_p.plane);
    }
    for (var pixel = lid; pixel < jitter_p.plane; pixel += WG) {
        var v = load_pixel(image, pixel);
        for (var step = 0u; step < 4u; step++) {
            v = apply(u32(jitter_draws[draw + step]), jitter_draws[draw + 4u + step], v, mean_grey);
        }
        for (var c = 0u; c < jitter_p.channels; c++) {
            jitter_y[(image * jitter_p.channels + c) * jitter_p.plane + pixel] =
                (v[c] - jitter_p.mean[c]) / jitter_p.deviation[c];
        }
    }
}

// ---------------------------------------------------------------------------------------------
// erase

struct EraseParams {
    n: u32,
    channels: u32,
    height: u32,
    width: u32,
    value: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> erase_p: EraseParams;
// Per image: top, left, height, width of the box (height 0: nothing erased).
@group(0) @binding(1) var<storage, read> erase_boxes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> erase_x: array<f32>;

@compute @workgroup_size(WG)
fn erase(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= erase_p.n {
        return;
    }
    let plane = erase_p.height * erase_p.width;
    let image = i / (erase_p.channels * plane);
    let row = (i % plane) / erase_p.width;
    let column = i % erase_p.width;
    let box = erase_boxes[image];
    // Unsigned: row − top wraps past the box's height when row < top.
    if row - box.x < box.z && column - box.y < box.w {
        erase_x[i] = erase_p.value;
    }
}
