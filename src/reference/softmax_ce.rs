//! Softmax cross-entropy, as `torch.nn.functional.cross_entropy(logits, labels, weight=weight,
//! reduction="mean", label_smoothing=ε)` over logits `[rows, classes]` (row-major) and `u32`
//! labels `[rows]`.
//!
//! PyTorch (`cross_entropy_loss_label_smoothing` in ATen's LossNLL.cpp) adds `(1 − ε)·nll_loss`
//! and `ε/C · smooth_loss`, and with a weight both are divided by `Σ_i w[y_i]`. Per row i:
//!
//! ```text
//! l_i = (1 − ε)·w[y_i]·(−log p_{i,y_i}) + (ε/C)·Σ_c w[c]·(−log p_{i,c})
//! loss = Σ_i l_i / Σ_i w[y_i]          (w ≡ 1 without a weight, so the divisor is `rows`)
//! ```
//!
//! With a focal γ > 0 the loss is instead the multi-class softmax form of the focal loss
//! (Lin et al. 2017) that FER repositories use, `α[y]·(1 − p_y)^γ·(−log p_y)` per row with the
//! class weight as α, averaged over the rows as the common PyTorch `FocalLoss` module
//! (`(weight[y] * (1 - pt)**gamma * ce).mean()`) and Keras's `CategoricalFocalCrossentropy`
//! do; torchvision's `sigmoid_focal_loss` is the binary form. Label smoothing is not defined
//! for it:
//!
//! ```text
//! l_i = w[y_i]·(1 − p_{i,y_i})^γ·(−log p_{i,y_i})
//! loss = Σ_i l_i / rows
//! ```
//!
//! The GPU splits this into a per-row pass, a reduction that accumulates across steps and a
//! backward pass; each function here is the twin of one of them.

/// The per-row record the forward pass writes, `ROW_STATS` f32 values per row:
/// `[l_i, w_i, 1 if argmax == label else 0, 1]`, `w_i` the row's share of the mean's divisor
/// (`w[y_i]`, or 1 for the focal loss). Summing records gives the stats buffer's
/// `[loss_sum, weight_sum, correct_count, rows]`.
pub const ROW_STATS: usize = 4;

/// What one loss evaluation covers: `rows` samples of `classes` logits, label smoothing ε,
/// focal γ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropy {
    pub rows: usize,
    pub classes: usize,
    /// ε in [0, 1]: the target puts 1 − ε + ε/C on the label and ε/C on every class.
    pub label_smoothing: f32,
    /// γ ≥ 0 of the focal loss; 0 is plain cross-entropy. A focal loss has no label smoothing.
    pub focal_gamma: f32,
}

impl CrossEntropy {
    /// Plain cross-entropy, no label smoothing.
    pub fn new(rows: usize, classes: usize) -> Self {
        CrossEntropy {
            rows,
            classes,
            label_smoothing: 0.0,
            focal_gamma: 0.0,
        }
    }

    pub fn is_focal(&self) -> bool {
        self.focal_gamma > 0.0
    }

    pub fn logits_len(&self) -> usize {
        self.rows * self.classes
    }

    pub fn row_stats_len(&self) -> usize {
        self.rows * ROW_STATS
    }
}

/// The class weight `w[c]`, 1 without a weight vector.
fn class_weight(weight: Option<&[f32]>, class: usize) -> f64 {
    weight.map_or(1.0, |w| w[class] as f64)
}

/// One row's log-softmax pieces: the row max, `s = Σ_c exp(x_c − max)`, and the first index of
/// the max (as `torch.argmax`).
struct RowSoftmax {
    max: f64,
    sum: f64,
    argmax: usize,
}

impl RowSoftmax {
    fn new(row: &[f32]) -> Self {
        let mut argmax = 0;
        for (c, &x) in row.iter().enumerate() {
            if x > row[argmax] {
                argmax = c;
            }
        }
        let max = row[argmax] as f64;
        let sum = row.iter().map(|&x| (x as f64 - max).exp()).sum();
        RowSoftmax { max, sum, argmax }
    }

    /// −log p_c = (max − x_c) + log s: both terms ≥ 0, and no overflow for huge logits.
    fn neg_log_p(&self, x: f32) -> f64 {
        (self.max - x as f64) + self.sum.ln()
    }

    fn p(&self, x: f32) -> f64 {
        (x as f64 - self.max).exp() / self.sum
    }

    /// 1 − p_label, summed over the other classes.
    fn miss(&self, row: &[f32], label: usize) -> f64 {
        (0..row.len())
            .filter(|&c| c != label)
            .map(|c| self.p(row[c]))
            .sum()
    }
}

/// Row i's `(l_i, w_i, correct)` in f64, `w_i` its share of the mean's divisor.
fn row_terms(
    ce: &CrossEntropy,
    logits: &[f32],
    labels: &[u32],
    weight: Option<&[f32]>,
    i: usize,
) -> (f64, f64, bool) {
    let row = &logits[i * ce.classes..(i + 1) * ce.classes];
    let label = labels[i] as usize;
    assert!(
        label < ce.classes,
        "label {label} of row {i} is out of range"
    );
    let softmax = RowSoftmax::new(row);
    let w_label = class_weight(weight, label);
    let correct = softmax.argmax == label;
    if ce.is_focal() {
        let miss = softmax.miss(row, label);
        let loss = w_label * miss.powf(ce.focal_gamma as f64) * softmax.neg_log_p(row[label]);
        return (loss, 1.0, correct);
    }
    let eps = ce.label_smoothing as f64;
    let smooth: f64 = (0..ce.classes)
        .map(|c| class_weight(weight, c) * softmax.neg_log_p(row[c]))
        .sum();
    let loss =
        (1.0 - eps) * w_label * softmax.neg_log_p(row[label]) + eps / ce.classes as f64 * smooth;
    (loss, w_label, correct)
}

fn check_lengths(ce: &CrossEntropy, logits: &[f32], labels: &[u32], weight: Option<&[f32]>) {
    assert!(
        !(ce.is_focal() && ce.label_smoothing != 0.0),
        "{ce:?}: a focal loss has no label smoothing"
    );
    assert_eq!(logits.len(), ce.logits_len(), "logits length for {ce:?}");
    assert_eq!(labels.len(), ce.rows, "labels length for {ce:?}");
    assert!(
        weight.is_none_or(|w| w.len() == ce.classes),
        "weight length for {ce:?}"
    );
}

/// The forward pass's per-row records ([`ROW_STATS`] values per row).
pub fn row_stats(
    ce: &CrossEntropy,
    logits: &[f32],
    labels: &[u32],
    weight: Option<&[f32]>,
) -> Vec<f32> {
    check_lengths(ce, logits, labels, weight);
    (0..ce.rows)
        .flat_map(|i| {
            let (loss, w_label, correct) = row_terms(ce, logits, labels, weight, i);
            [loss as f32, w_label as f32, correct as u8 as f32, 1.0]
        })
        .collect()
}

/// The reduction: adds the column sums of `row_stats` into `stats`
/// (`[loss_sum, weight_sum, correct_count, rows]`), accumulating across calls.
pub fn accumulate(row_stats: &[f32], stats: &mut [f32]) {
    assert_eq!(row_stats.len() % ROW_STATS, 0, "row_stats length");
    assert!(stats.len() >= ROW_STATS, "stats length");
    for (k, total) in stats.iter_mut().take(ROW_STATS).enumerate() {
        let sum: f64 = row_stats
            .iter()
            .skip(k)
            .step_by(ROW_STATS)
            .map(|&v| v as f64)
            .sum();
        *total = (*total as f64 + sum) as f32;
    }
}

/// The mean loss, in f64: `Σ_i l_i / Σ_i w_i` (PyTorch's value; `Σ_i l_i / rows` for focal).
pub fn loss(ce: &CrossEntropy, logits: &[f32], labels: &[u32], weight: Option<&[f32]>) -> f64 {
    check_lengths(ce, logits, labels, weight);
    let (mut loss_sum, mut weight_sum) = (0.0, 0.0);
    for i in 0..ce.rows {
        let (loss, w_label, _) = row_terms(ce, logits, labels, weight, i);
        loss_sum += loss;
        weight_sum += w_label;
    }
    loss_sum / weight_sum
}

/// `scale · ∂loss/∂logits` of the mean [`loss`]: for row i and class c,
/// `[(1 − ε)·w[y_i]·(p_c − [c = y_i]) + (ε/C)·(W·p_c − w[c])] / Σ_j w[y_j]`, `W = Σ_k w[k]`;
/// for the focal loss, with p = p_{y_i} and q = 1 − p,
/// `w[y_i]·F·(p_c − [c = y_i]) / rows`, `F = q^γ − γ·p·q^(γ−1)·log p` (0 at q = 0).
pub fn backward(
    ce: &CrossEntropy,
    logits: &[f32],
    labels: &[u32],
    weight: Option<&[f32]>,
    scale: f32,
    dlogits: &mut [f32],
) {
    check_lengths(ce, logits, labels, weight);
    assert_eq!(dlogits.len(), ce.logits_len(), "dlogits length for {ce:?}");
    let eps = ce.label_smoothing as f64;
    let weight_total: f64 = (0..ce.classes).map(|c| class_weight(weight, c)).sum();
    let batch_weight: f64 = if ce.is_focal() {
        ce.rows as f64
    } else {
        labels
            .iter()
            .map(|&y| class_weight(weight, y as usize))
            .sum()
    };
    let factor = scale as f64 / batch_weight;
    for i in 0..ce.rows {
        let row = &logits[i * ce.classes..(i + 1) * ce.classes];
        let label = labels[i] as usize;
        let softmax = RowSoftmax::new(row);
        let w_label = class_weight(weight, label);
        if ce.is_focal() {
            let gamma = ce.focal_gamma as f64;
            let (miss, hit) = (softmax.miss(row, label), softmax.p(row[label]));
            let modulation = if miss > 0.0 {
                miss.powf(gamma)
                    + gamma * hit * miss.powf(gamma - 1.0) * softmax.neg_log_p(row[label])
            } else {
                0.0
            };
            for c in 0..ce.classes {
                // p_c − [c = y], as −q at the label, which keeps a confident row's digits.
                let hard = if c == label { -miss } else { softmax.p(row[c]) };
                dlogits[i * ce.classes + c] = (factor * w_label * modulation * hard) as f32;
            }
            continue;
        }
        for c in 0..ce.classes {
            let p = softmax.p(row[c]);
            let hard = (1.0 - eps) * w_label * (p - (c == label) as u8 as f64);
            let smooth = eps / ce.classes as f64 * (weight_total * p - class_weight(weight, c));
            dlogits[i * ce.classes + c] = (factor * (hard + smooth)) as f32;
        }
    }
}
