// Pooling over NCHW f32 tensors, each (n, c) plane on its own:
//   max_pool2d                 F.max_pool2d(x, k, s, p, ceil_mode, return_indices=True):
//                              the padding is −∞ (never wins); indices are iy·width + ix
//                              within the plane (and _rows, the same a row of windows per
//                              invocation).
//   max_pool2d_backward        dx from dy and the indices, as a gather (no atomics): each input
//                              element sums dy over the windows it won.
//   global_avg_pool_thread     F.adaptive_avg_pool2d(x, 1): one invocation per plane, for the
//                              small planes at the end of a CNN.
//   global_avg_pool_workgroup  the same, one workgroup per plane with a tree, for large planes.
//   global_avg_pool_backward   dx = dy / (height·width), broadcast over the plane.
//   avg_pool2d                 F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad=True),
//                              or with ADAPTIVE F.adaptive_avg_pool2d(x, (out_h, out_w)).
//   avg_pool2d_backward        dx from dy: each input element gathers dy / count over the
//                              windows holding it (and _rows, a row of elements per
//                              invocation).
// Entries share binding numbers; each uses its own buffers under names that say what they hold.
//
// DROPOUT fuses a torch.nn.Dropout after the max pool: training forward writes keep(out) ?
// max·a : 0 with elementwise.wgsl's mask (philox.wgsl, prepended) for output element `out`,
// a = 1/(1 − p), and gives a dropped window NO_WINNER for its index, which no input element
// matches. Backward then needs no mask: it scales dy by p.dropout_scale (a, or 1 without the
// dropout) and routes it by the indices, so a dropped window sends nothing, as dropout's then
// max pool's backward would give.
//
// BATCHNORM_PROLOGUE (forward) reads the output of a batch norm with its fused ReLU that was
// never written: x is the batch norm's input and pool_map[c] the map batchnorm.wgsl's
// DEFER_OUTPUT wrote, (γ·invstd, mean, β, 0) for channel c, so each input element is
// relu(fma(γ·invstd, x − mean, β)), the value the batch norm would have stored, bit for bit.
//
// RELU_GATE applies, in max pool backward, the backward of a ReLU that produced the pool's
// input (another layer's epilogue, which then skips it): a window's gradient reaches its
// winner only where the forward's output is positive. A winner is its window's max, so that
// output is positive exactly where the ReLU passed the winner's gradient, and every other
// input element gets 0 either way.

struct Params {
    planes: u32,
    height: u32,
    width: u32,
    out_height: u32,
    out_width: u32,
    kernel: u32,
    stride: u32,
    // The fused dropout's mask and survivors' factor; the factor is 1 without one.
    dropout_seed_lo: u32,
    dropout_seed_hi: u32,
    dropout_threshold: u32,
    dropout_scale: f32,
    channels: u32,
}

// Set when kernel > stride, so an input element can lie in several windows.
override OVERLAPPING: bool = true;
// Window size, stride and padding as pipeline constants: the divisions by the stride in the
// backward gather become shifts for the usual stride 2.
override KERNEL: u32 = 2u;
override STRIDE: u32 = 2u;
override PADDING: u32 = 0u;
// Set when some window reaches past the input (padding, or ceil mode's last window), so
// windows are clipped to it; unset, a window's loops keep KERNEL as their trip count.
override CLIPPED: bool = false;
// The average pools' adaptive windows instead of KERNEL, STRIDE and PADDING.
override ADAPTIVE: bool = false;
override DROPOUT: bool = false;
override RELU_GATE: bool = false;
override BATCHNORM_PROLOGUE: bool = false;

// The index of a window the fused dropout dropped.
const NO_WINNER: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;

fn linear_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, size: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * size + lid;
}

// Where the max-pool kernels' windows sit. A window `out` counts over (plane, oy, ox), a row of
// windows over (plane, oy); each is found by its plane's first input element and its position.
// Planes are (n, c) in order; the channel is found with the plane, once per row in `_rows`.
struct Window {
    channel: u32,
    base: u32,
    oy: u32,
    ox: u32,
}

fn window_at(out: u32) -> Window {
    let out_plane_len = p.out_height * p.out_width;
    let at = out % out_plane_len;
    let plane = out / out_plane_len;
    let base = plane * p.height * p.width;
    return Window(plane % p.channels, base, at / p.out_width, at % p.out_width);
}

// The first window of row `row` (output elements row · out_width onwards); the row's others
// differ only in ox, so a row costs one division, not one per window.
fn row_start(row: u32) -> Window {
    let plane = row / p.out_height;
    return Window(plane % p.channels, plane * p.height * p.width, row % p.out_height, 0u);
}

fn at_column(start: Window, ox: u32) -> Window {
    return Window(start.channel, start.base, start.oy, ox);
}

// Along an axis of `extent` input positions, the positions [lo, hi) a window covers and the
// count an average over it divides by (the twins' `window`).
struct Span {
    lo: u32,
    hi: u32,
    count: u32,
}

// Window o of out_extent: PyTorch's adaptive window [⌊o·extent/out⌋, ⌈(o + 1)·extent/out⌉),
// or the padded window [o·s, o·s + k) cut at the end of the right padding (its count, as
// count_include_pad has it) and clipped to the input.
fn window_span(o: u32, extent: u32, out_extent: u32) -> Span {
    if ADAPTIVE {
        let lo = o * extent / out_extent;
        let hi = ((o + 1u) * extent + out_extent - 1u) / out_extent;
        return Span(lo, hi, hi - lo);
    }
    let start = o * STRIDE;
    if !CLIPPED {
        return Span(start, start + KERNEL, KERNEL);
    }
    let end = min(start + KERNEL, extent + 2u * PADDING);
    return Span(max(start, PADDING) - PADDING, min(end, extent + PADDING) - PADDING, end - start);
}

// The windows [first, end) along an axis that hold input position i: the inverse of
// window_span. Adaptive: lo(o) ≤ i ⟺ o < ⌈(i + 1)·out/extent⌉, hi(o) > i ⟺ o ≥ ⌊i·out/extent⌋.
// Fixed: o·s ≤ i + p < o·s + k.
fn windows_holding(i: u32, extent: u32, out_extent: u32) -> vec2<u32> {
    if ADAPTIVE {
        return vec2<u32>(i * out_extent / extent, ((i + 1u) * out_extent + extent - 1u) / extent);
    }
    let padded = i + PADDING;
    var first = 0u;
    if padded >= KERNEL {
        first = (padded - KERNEL) / STRIDE + 1u;
    }
    return vec2<u32>(first, min(padded / STRIDE + 1u, out_extent));
}

// Checks the bits: compilers may fold `v != v` away under finite-math assumptions.
fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// ---------------------------------------------------------------------------------------------
// max pool forward, in two layouts (kernels::pool::PoolLayout): one window per invocation, or
// one row of windows per invocation (`_rows`), whose plane and row cost one division per row
// instead of three per window (a CPU adapter has no SIMD integer division: each lane divides
// alone)

@group(0) @binding(1) var<storage, read> pool_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> pool_y: array<f32>;
@group(0) @binding(3) var<storage, read_write> pool_indices: array<u32>;
// Per channel, the batch norm's deferred output map; read only with BATCHNORM_PROLOGUE.
@group(0) @binding(4) var<storage, read> pool_map: array<vec4<f32>>;

// The batch norm's map for window w's channel (see the top), or nothing.
fn channel_map(w: Window) -> vec4<f32> {
    if BATCHNORM_PROLOGUE {
        return pool_map[w.channel];
    }
    return vec4<f32>(0.0);
}

// Input element i: x, or the batch norm's output it stands for, through the channel's map.
fn input_value(map: vec4<f32>, i: u32) -> f32 {
    let x = pool_x[i];
    if BATCHNORM_PROLOGUE {
        // batchnorm.wgsl's output pass and its activation, as written there.
        let y = fma(map.x, x - map.y, map.z);
        return select(y, 0.0, y <= 0.0);
    }
    return x;
}

// Whether output elements first..first+4 survive the fused dropout (all do without one).
fn windows_kept(first: u32) -> vec4<bool> {
    if !DROPOUT {
        return vec4<bool>(true);
    }
    let i = vec4<u32>(first) + vec4<u32>(0u, 1u, 2u, 3u);
    return dropout_keeps(i, p.dropout_seed_lo, p.dropout_seed_hi, p.dropout_threshold);
}

// Window w, output element `out`: its max and where it is, or (dropped by the fused dropout)
// 0 and NO_WINNER.
fn pool_window(w: Window, out: u32, kept: bool) {
    let rows = window_span(w.oy, p.height, p.out_height);
    let columns = window_span(w.ox, p.width, p.out_width);
    // PyTorch's rule, `val > maxval || isnan(val)`: the first of tied maxima wins, and a NaN
    // beats everything, the last NaN in window order winning.
    let map = channel_map(w);
    var best_index = rows.lo * p.width + columns.lo;
    var best = input_value(map, w.base + best_index);
    for (var iy = rows.lo; iy < rows.hi; iy++) {
        for (var ix = columns.lo; ix < columns.hi; ix++) {
            let index = iy * p.width + ix;
            let v = input_value(map, w.base + index);
            if is_nan(v) || (v > best && !is_nan(best)) {
                best = v;
                best_index = index;
            }
        }
    }
    if DROPOUT {
        // select, as elementwise.wgsl's dropout; the max is taken either way (no branch).
        best = select(0.0, best * p.dropout_scale, kept);
        best_index = select(NO_WINNER, best_index, kept);
    }
    pool_y[out] = best;
    pool_indices[out] = best_index;
}

@compute @workgroup_size(64)
fn max_pool2d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out = linear_id(wid, nwg, lid, 64u);
    if out < p.planes * p.out_height * p.out_width {
        // A GPU has integer throughput to spare for the three unused hashes.
        pool_window(window_at(out), out, windows_kept(out).x);
    }
}

@compute @workgroup_size(64)
fn max_pool2d_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_id(wid, nwg, lid, 64u);
    if row >= p.planes * p.out_height {
        return;
    }
    let start = row_start(row);
    // The mask for four windows at a time: each hash is a vec4 operation either way.
    for (var ox = 0u; ox < p.out_width; ox += 4u) {
        let out = row * p.out_width + ox;
        let kept = windows_kept(out);
        pool_window(at_column(start, ox), out, kept.x);
        if ox + 1u < p.out_width {
            pool_window(at_column(start, ox + 1u), out + 1u, kept.y);
        }
        if ox + 2u < p.out_width {
            pool_window(at_column(start, ox + 2u), out + 2u, kept.z);
        }
        if ox + 3u < p.out_width {
            pool_window(at_column(start, ox + 3u), out + 3u, kept.w);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// max pool backward: one invocation per input element

@group(0) @binding(1) var<storage, read> unpool_dy: array<f32>;
@group(0) @binding(2) var<storage, read> unpool_indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> unpool_dx: array<f32>;
// The forward's output, read only with RELU_GATE.
@group(0) @binding(4) var<storage, read> unpool_y: array<f32>;

// The gradient window `out` sends its winner (see the top).
fn window_grad(out: u32) -> f32 {
    let grad = unpool_dy[out] * p.dropout_scale;
    if RELU_GATE {
        return select(0.0, grad, unpool_y[out] > 0.0);
    }
    return grad;
}

@compute @workgroup_size(64)
fn max_pool2d_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_id(wid, nwg, lid, 64u);
    let plane_len = p.height * p.width;
    if i >= p.planes * plane_len {
        return;
    }
    let plane = i / plane_len;
    let index = i % plane_len;
    let iy = index / p.width;
    let ix = index % p.width;
    let out_base = plane * p.out_height * p.out_width;
    // A window's argmax lies inside it, so matching the index also proves containment.
    if !OVERLAPPING {
        // kernel ≤ stride: window ((iy + p) / s, (ix + p) / s) is the only candidate.
        let oy = (iy + PADDING) / STRIDE;
        let ox = (ix + PADDING) / STRIDE;
        var grad = 0.0;
        if oy < p.out_height && ox < p.out_width {
            let out = out_base + oy * p.out_width + ox;
            if unpool_indices[out] == index {
                grad = window_grad(out);
            }
        }
        unpool_dx[i] = grad;
        return;
    }
    let oy_range = windows_holding(iy, p.height, p.out_height);
    let ox_range = windows_holding(ix, p.width, p.out_width);
    var grad = 0.0;
    for (var oy = oy_range.x; oy < oy_range.y; oy++) {
        for (var ox = ox_range.x; ox < ox_range.y; ox++) {
            let out = out_base + oy * p.out_width + ox;
            if unpool_indices[out] == index {
                grad += window_grad(out);
            }
        }
    }
    unpool_dx[i] = grad;
}

// When the windows tile the input exactly (kernel = stride, no padding, sizes divisible by it:
// the models' case), each window writes its kernel² gradients: a quarter of the gather's index arithmetic
// and reads for 2×2 windows, and every dx element is still written once. One window per
// invocation, or a row of windows (`_rows`), as the forward.
fn unpool_window(w: Window, out: u32) {
    let winner = unpool_indices[out];
    let grad = window_grad(out);
    for (var ky = 0u; ky < KERNEL; ky++) {
        let row = (w.oy * KERNEL + ky) * p.width + w.ox * KERNEL;
        for (var kx = 0u; kx < KERNEL; kx++) {
            unpool_dx[w.base + row + kx] = select(0.0, grad, row + kx == winner);
        }
    }
}

@compute @workgroup_size(64)
fn max_pool2d_backward_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out = linear_id(wid, nwg, lid, 64u);
    if out < p.planes * p.out_height * p.out_width {
        unpool_window(window_at(out), out);
    }
}

@compute @workgroup_size(64)
fn max_pool2d_backward_tiled_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_id(wid, nwg, lid, 64u);
    if row >= p.planes * p.out_height {
        return;
    }
    let start = row_start(row);
    for (var ox = 0u; ox < p.out_width; ox++) {
        unpool_window(at_column(start, ox), row * p.out_width + ox);
    }
}

// ---------------------------------------------------------------------------------------------
// global average pool forward

@group(0) @binding(1) var<storage, read> mean_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> mean_y: array<f32>;

@compute @workgroup_size(64)
fn global_avg_pool_thread(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let plane = linear_id(wid, nwg, lid, 64u);
    if plane >= p.planes {
        return;
    }
    let n = p.height * p.width;
    let base = plane * n;
    var sum = 0.0;
    for (var i = 0u; i < n; i++) {
        sum += mean_x[base + i];
    }
    mean_y[plane] = sum / f32(n);
}

const TREE: u32 = 64u;
var<workgroup> partial: array<f32, TREE>;

@compute @workgroup_size(64)
fn global_avg_pool_workgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // Uniform across the workgroup, so the early return keeps barriers in uniform control flow.
    let plane = wid.x + wid.y * nwg.x;
    if plane >= p.planes {
        return;
    }
    let n = p.height * p.width;
    let base = plane * n;
    var sum = 0.0;
    for (var i = lid; i < n; i += TREE) {
        sum += mean_x[base + i];
    }
    partial[lid] = sum;
    for (var half = TREE / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if lid < half {
            partial[lid] += partial[lid + half];
        }
    }
    if lid == 0u {
        mean_y[plane] = partial[0] / f32(n);
    }
}

// ---------------------------------------------------------------------------------------------
// global average pool backward: one invocation per input element

@group(0) @binding(1) var<storage, read> unmean_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> unmean_dx: array<f32>;

@compute @workgroup_size(256)
fn global_avg_pool_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_id(wid, nwg, lid, 256u);
    let n = p.height * p.width;
    if i >= p.planes * n {
        return;
    }
    unmean_dx[i] = unmean_dy[i / n] / f32(n);
}

// ---------------------------------------------------------------------------------------------
// average pools: each output is the sum over its window divided by the window's count
// (window_span), one window per invocation: the window arithmetic is small beside its taps.

@group(0) @binding(1) var<storage, read> average_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> average_y: array<f32>;

@compute @workgroup_size(64)
fn avg_pool2d(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let out = linear_id(wid, nwg, lid, 64u);
    if out >= p.planes * p.out_height * p.out_width {
        return;
    }
    let w = window_at(out);
    let rows = window_span(w.oy, p.height, p.out_height);
    let columns = window_span(w.ox, p.width, p.out_width);
    var sum = 0.0;
    for (var iy = rows.lo; iy < rows.hi; iy++) {
        for (var ix = columns.lo; ix < columns.hi; ix++) {
            sum += average_x[w.base + iy * p.width + ix];
        }
    }
    average_y[out] = sum / f32(rows.count * columns.count);
}

// Backward gathers, for each input element, dy / count from every window that holds it (no
// atomics): one element per invocation, or a row of elements (`_rows`), whose plane, row and
// window rows cost their divisions once per row (see max pool forward's layouts).

@group(0) @binding(1) var<storage, read> unaverage_dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> unaverage_dx: array<f32>;

// The gradient of input column ix of a row held by windows oy_range of the plane whose
// windows start at out_base.
fn average_grad(out_base: u32, oy_range: vec2<u32>, ix: u32) -> f32 {
    // Unclipped fixed windows all divide by k²: once, after the sum.
    let uniform = !CLIPPED && !ADAPTIVE;
    let ox_range = windows_holding(ix, p.width, p.out_width);
    var grad = 0.0;
    for (var oy = oy_range.x; oy < oy_range.y; oy++) {
        let row_count = window_span(oy, p.height, p.out_height).count;
        for (var ox = ox_range.x; ox < ox_range.y; ox++) {
            let dy = unaverage_dy[out_base + oy * p.out_width + ox];
            if uniform {
                grad += dy;
            } else {
                grad += dy / f32(row_count * window_span(ox, p.width, p.out_width).count);
            }
        }
    }
    if uniform {
        return grad / f32(KERNEL * KERNEL);
    }
    return grad;
}

@compute @workgroup_size(64)
fn avg_pool2d_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = linear_id(wid, nwg, lid, 64u);
    let plane_len = p.height * p.width;
    if i >= p.planes * plane_len {
        return;
    }
    let plane = i / plane_len;
    let index = i % plane_len;
    let oy_range = windows_holding(index / p.width, p.height, p.out_height);
    let out_base = plane * p.out_height * p.out_width;
    unaverage_dx[i] = average_grad(out_base, oy_range, index % p.width);
}

@compute @workgroup_size(64)
fn avg_pool2d_backward_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = linear_id(wid, nwg, lid, 64u);
    if row >= p.planes * p.height {
        return;
    }
    let oy_range = windows_holding(row % p.height, p.height, p.out_height);
    let out_base = row / p.height * p.out_height * p.out_width;
    for (var ix = 0u; ix < p.width; ix++) {
        unaverage_dx[row * p.width + ix] = average_grad(out_base, oy_range, ix);
    }
}
