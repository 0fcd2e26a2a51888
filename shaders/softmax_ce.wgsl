// Fused softmax cross-entropy over logits [rows, classes] and u32 labels [rows], as
// torch.nn.functional.cross_entropy(reduction="mean") with an optional class weight (WEIGHTED)
// and label smoothing ε; or, with GAMMA > 0, the multi-class focal loss
// α[y]·(1 − p_y)^γ·(−log p_y) averaged over rows, the class weight as α (no smoothing). The
// formulas are in src/reference/softmax_ce.rs, the twin.
//
//   softmax_ce_forward     one invocation per row: the row's record [l_i, w_i, correct, 1], w_i
//                          its share of the mean's divisor (w[y_i], or 1 for the focal loss)
//   softmax_ce_accumulate  one workgroup: stats += Σ_i records, [loss_sum, weight_sum,
//                          correct_count, rows]; a fixed-order tree, so deterministic
//   softmax_ce_backward    one invocation per row: dlogits of this batch's mean loss. Every
//                          workgroup sums Σ_j w_j from the labels itself (the same fixed order
//                          everywhere), so a step needs no readback and no other pass's output.
//   softmax_ce_train       the three above in one dispatch for a training step: one workgroup
//                          walks the rows as accumulate does, adding each row's record straight
//                          into stats and writing its dlogits: the same bits, two dispatches
//                          fewer. With SUM_DLOGITS it also sums dlogits per class down the rows,
//                          in order (reduce.wgsl's column_sum, the same bits): the gradient of
//                          the bias of the layer that made the logits.
//
// −log p_c is computed as (max − x_c) + log Σ exp(x − max): two non-negative terms and no
// exp of a large argument, so logits of ±1e4 neither overflow nor lose the small terms.

struct Params {
    rows: u32,
    classes: u32,
    label_smoothing: f32,
    // backward only: multiplies the gradient (loss scaling); 1 for the plain gradient.
    scale: f32,
}

override WEIGHTED: bool = false;
// γ of the focal loss; 0 (the default) compiles to plain cross-entropy.
override GAMMA: f32 = 0.0;
override SUM_DLOGITS: bool = false;

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;

fn class_weight(c: u32) -> f32 {
    if WEIGHTED {
        return weight[c];
    }
    return 1.0;
}

fn row_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

struct RowSoftmax {
    max: f32,
    // Σ_c exp(x_c − max), in [1, classes].
    sum: f32,
    // First index of the max, as torch.argmax.
    argmax: u32,
}

fn row_softmax(base: u32) -> RowSoftmax {
    var argmax = 0u;
    var m = logits[base];
    for (var c = 1u; c < p.classes; c++) {
        let x = logits[base + c];
        if x > m {
            m = x;
            argmax = c;
        }
    }
    var s = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        s += exp(logits[base + c] - m);
    }
    return RowSoftmax(m, s, argmax);
}

// 1 − p_label as Σ_{c ≠ label} p_c: a confident row's small miss probability keeps its digits,
// which 1 − p would cancel away.
fn miss_probability(base: u32, label: u32, row: RowSoftmax) -> f32 {
    var miss = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        if c != label {
            miss += exp(logits[base + c] - row.max);
        }
    }
    return miss / row.sum;
}

// (1 − p_y)^γ, 0 at a certain row (pow's exp2(γ·log2 0) is not defined everywhere).
fn focal_modulation(miss: f32) -> f32 {
    if miss > 0.0 {
        return pow(miss, GAMMA);
    }
    return 0.0;
}

var<workgroup> partial: array<vec4<f32>, WG>;

// The workgroup's total of `value`, returned to every invocation; from uniform control flow.
fn workgroup_total(value: vec4<f32>, lid: u32) -> vec4<f32> {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Nobody may overwrite partial[0] (a second call) before everyone has read it.
    workgroupBarrier();
    return total;
}

// A row's share of the mean's divisor: w[y] for cross-entropy (PyTorch's weighted mean), 1 for
// the focal loss (a mean over rows).
fn divisor_weight(label: u32) -> f32 {
    if GAMMA > 0.0 {
        return 1.0;
    }
    return class_weight(label);
}

// Σ_j of the rows' divisor weights, the divisor of the mean loss, in a fixed order.
fn batch_weight(lid: u32) -> f32 {
    var own = 0.0;
    for (var j = lid; j < p.rows; j += WG) {
        own += divisor_weight(labels[j]);
    }
    return workgroup_total(vec4<f32>(own, 0.0, 0.0, 0.0), lid).x;
}

// ---------------------------------------------------------------------------------------------
// forward

@group(0) @binding(4) var<storage, read_write> records: array<vec4<f32>>;

// Row i's record [l_i, divisor_weight(y_i), correct, 1].
fn row_record(i: u32) -> vec4<f32> {
    let base = i * p.classes;
    let label = labels[i];
    let row = row_softmax(base);
    let log_sum = log(row.sum);
    let correct = select(0.0, 1.0, row.argmax == label);
    if GAMMA > 0.0 {
        let nll = (row.max - logits[base + label]) + log_sum;
        let miss = miss_probability(base, label, row);
        let loss = class_weight(label) * focal_modulation(miss) * nll;
        return vec4<f32>(loss, 1.0, correct, 1.0);
    }
    var smoothed = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        smoothed += class_weight(c) * ((row.max - logits[base + c]) + log_sum);
    }
    let w_label = class_weight(label);
    let nll = (row.max - logits[base + label]) + log_sum;
    let eps = p.label_smoothing;
    let loss = (1.0 - eps) * w_label * nll + eps / f32(p.classes) * smoothed;
    return vec4<f32>(loss, w_label, correct, 1.0);
}

@compute @workgroup_size(WG)
fn softmax_ce_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = row_index(wid, nwg, lid);
    if i >= p.rows {
        return;
    }
    records[i] = row_record(i);
}

// ---------------------------------------------------------------------------------------------
// accumulate

@group(0) @binding(1) var<storage, read> summed_records: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> stats: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn softmax_ce_accumulate(@builtin(local_invocation_index) lid: u32) {
    var own = vec4<f32>(0.0);
    for (var i = lid; i < p.rows; i += WG) {
        own += summed_records[i];
    }
    let total = workgroup_total(own, lid);
    if lid == 0u {
        stats[0] += total;
    }
}

// ---------------------------------------------------------------------------------------------
// backward

@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;

// Writes row i's focal-loss dlogits, α·F·(p_c − [c = y])·factor with
// F = (1 − p)^γ·(1 + γ·p·(−log p)/(1 − p)), and −(1 − p) itself at the label.
fn focal_row_gradient(base: u32, label: u32, row: RowSoftmax, factor: f32) {
    let nll = (row.max - logits[base + label]) + log(row.sum);
    let miss = miss_probability(base, label, row);
    let hit = exp(logits[base + label] - row.max) / row.sum;
    // −log p / (1 − p) → 1 as p → 1; at miss = 0 the modulation is 0 and this only stays finite.
    let ratio = select(1.0, nll / miss, miss > 0.0);
    let modulation = focal_modulation(miss) * (1.0 + GAMMA * hit * ratio);
    let scaled = factor * class_weight(label) * modulation;
    for (var c = 0u; c < p.classes; c++) {
        let prob = exp(logits[base + c] - row.max) / row.sum;
        dlogits[base + c] = scaled * select(prob, -miss, c == label);
    }
}

// Writes row i's dlogits, given the batch's divisor (Σ_j w[y_j], or rows for the focal loss).
fn row_gradient(i: u32, batch_weight: f32) {
    let base = i * p.classes;
    let label = labels[i];
    let row = row_softmax(base);
    if GAMMA > 0.0 {
        focal_row_gradient(base, label, row, p.scale / batch_weight);
        return;
    }
    var weight_total = 0.0;
    for (var c = 0u; c < p.classes; c++) {
        weight_total += class_weight(c);
    }
    let eps = p.label_smoothing;
    let hard_share = (1.0 - eps) * class_weight(label);
    let smooth_share = eps / f32(p.classes);
    let factor = p.scale / batch_weight;
    for (var c = 0u; c < p.classes; c++) {
        let prob = exp(logits[base + c] - row.max) / row.sum;
        let hard = select(prob, prob - 1.0, c == label);
        let g = hard_share * hard + smooth_share * (weight_total * prob - class_weight(c));
        dlogits[base + c] = factor * g;
    }
}

@compute @workgroup_size(WG)
fn softmax_ce_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let weight = batch_weight(lid);
    let i = row_index(wid, nwg, lid);
    if i >= p.rows {
        return;
    }
    row_gradient(i, weight);
}

// ---------------------------------------------------------------------------------------------
// a training step's loss: forward, accumulate and backward (dlogits at binding 4, as backward)

@group(0) @binding(5) var<storage, read_write> train_stats: array<vec4<f32>>;
// Σ_rows dlogits per class, written only with SUM_DLOGITS.
@group(0) @binding(6) var<storage, read_write> train_dlogits_sum: array<f32>;

@compute @workgroup_size(WG)
fn softmax_ce_train(@builtin(local_invocation_index) lid: u32) {
    let weight = batch_weight(lid);
    var own = vec4<f32>(0.0);
    for (var i = lid; i < p.rows; i += WG) {
        own += row_record(i);
        row_gradient(i, weight);
    }
    let total = workgroup_total(own, lid);
    if lid == 0u {
        train_stats[0] += total;
    }
    if SUM_DLOGITS {
        // Every row's dlogits are written before any column of them is read.
        storageBarrier();
        for (var c = lid; c < p.classes; c += WG) {
            var sum = 0.0;
            for (var i = 0u; i < p.rows; i++) {
                sum += dlogits[i * p.classes + c];
            }
            train_dlogits_sum[c] = sum;
        }
    }
}
