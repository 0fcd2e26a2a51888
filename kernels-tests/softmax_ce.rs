//! softmax_ce: forward records, the accumulating reduction and backward against the twin, with
//! and without class weights and label smoothing, and the focal loss, on 1 row, 1 class
//! (degenerate: loss 0), row counts that are not multiples of the workgroup (64), C = 7, 10
//! and 13, and ±1e4 logits; the fused training kernel bit for bit against those three; the
//! twins against PyTorch's values.
//!
//! Tolerances, from WGSL's accuracy rules (exp: 3 + 2|x| ulp, log: 2^-21 absolute near 1 and
//! 3 ulp elsewhere, + − × ÷ correctly rounded) and s = Σ_c exp(x_c − max) ∈ [1, C]:
//! * each exp term is off by at most e^x·(3 + 3|x|)·u ≤ 3u (x ≤ 0, argument rounding
//!   included), so s has relative error ≤ 3C·u + γ_C ≤ 4.1C·u and log s absolute error
//!   ≤ (5C + 24)·u;
//! * −log p_c = (max − x_c) + log s is two rounded non-negative terms, and l_i a sum of C + 1
//!   weighted ones, so |l_gpu − l| ≤ γ_{C+4}·l + W_i·(5C + 24)·u where W_i is the total weight
//!   on log s, (1 − ε)·w[y_i] + (ε/C)·Σ_c w[c];
//! * p_c = exp(x_c − max)/s is off by ≤ 3u + p_c·(4.1C + 1)·u ≤ (5C + 8)·u; the gradient's
//!   bracket carries it with weight (1 − ε)·w[y] + (ε/C)·W, plus C + 5 roundings of terms
//!   bounded by 2·that weight; Σ_j w[y_j] (B terms), the division and `scale` add γ_{B+2}.
//!
//! The weight and correct columns are copies and comparisons, so they must match exactly.
//!
//! The focal loss (γ > 0) adds, per row, q = 1 − p_y = Σ_{c≠y} e_c / s and its power M = q^γ:
//! * each e_c = exp(x_c − max) is off by (3 + 3|x_c − max|)·u relatively, so with D the largest
//!   |x_c − max| of a term above f32's normal range (e^−88), q and every p_c are off by
//!   δ = (3 + 3D + 5C + 8)·u (the exps, s, the sum over c ≠ y and the division); below e^−88
//!   a flushed term adds at most C·2^−126 to q;
//! * pow(q, γ) is exp2(γ·log2 q): log2 is off by 3 ulp or 2^−21 = 8u absolute, the exp2 of
//!   t = γ·log2 q by (3 + 2|t|) ulp, so δM = γ·δ + γ·ln2·(3|log2 q| + 8)·u + (3 + 2|t|)·u;
//! * l = w·M·N is off by l·(δM + 4u) + w·M·(5C + 24)·u (N = −log p_y as above);
//! * the gradient w·F·h_c/rows, F = M·(1 + γ·p·N/q), h_c = p_c or −q, is off by
//!   |g_c|·(δM + 3δ + 16u + γ_{rows+2}) plus the error of N/q: |ΔN|/q·γ·p·w·M·|h_c|/rows.

use fer::gpu::{Dispatch, GpuBuffer};
use fer::kernels::reduce::{channel_sum, ChannelSumShape};
use fer::kernels::softmax_ce::{
    softmax_ce_accumulate, softmax_ce_backward, softmax_ce_forward, softmax_ce_train, CrossEntropy,
    SoftmaxCeInputs, ROW_STATS,
};
use fer::reference::softmax_ce as twin;
use fer::rng::Rng;

use crate::common::*;

struct Problem {
    ce: CrossEntropy,
    logits: Vec<f32>,
    labels: Vec<u32>,
    weight: Option<Vec<f32>>,
}

impl Problem {
    /// Logits from U(−spread, spread), uniform labels, weights from U(0.5, 2).
    fn random(ce: CrossEntropy, weighted: bool, spread: f32, seed: u64) -> Self {
        let logits = random(seed, ce.logits_len())
            .iter()
            .map(|x| x * spread)
            .collect();
        let mut rng = Rng::new(seed + 1);
        let labels = (0..ce.rows).map(|_| rng.below(ce.classes) as u32).collect();
        let weight = weighted.then(|| rng.uniform_vec(ce.classes, 0.5, 2.0));
        Problem {
            ce,
            logits,
            labels,
            weight,
        }
    }

    fn weight(&self) -> Option<&[f32]> {
        self.weight.as_deref()
    }

    fn class_weight(&self, c: usize) -> f64 {
        self.weight().map_or(1.0, |w| w[c] as f64)
    }

    fn weight_total(&self) -> f64 {
        (0..self.ce.classes).map(|c| self.class_weight(c)).sum()
    }

    /// (1 − ε)·w[y_i] + (ε/C)·W: the weight row i's loss puts on log s and on p.
    fn row_weight(&self, i: usize) -> f64 {
        let eps = self.ce.label_smoothing as f64;
        (1.0 - eps) * self.class_weight(self.labels[i] as usize)
            + eps / self.ce.classes as f64 * self.weight_total()
    }

    fn name(&self) -> String {
        format!("{:?} weighted={}", self.ce, self.weight.is_some())
    }
}

/// The problem's inputs on the GPU.
struct Uploaded {
    logits: GpuBuffer,
    labels: GpuBuffer,
    weight: Option<GpuBuffer>,
}

impl Uploaded {
    fn new(problem: &Problem) -> Self {
        Uploaded {
            logits: upload(&problem.logits),
            labels: upload_u32(&problem.labels),
            weight: problem.weight().map(upload),
        }
    }

    fn inputs(&self) -> SoftmaxCeInputs<'_> {
        SoftmaxCeInputs {
            logits: &self.logits,
            labels: &self.labels,
            weight: self.weight.as_ref(),
        }
    }
}

fn forward_dispatch(problem: &Problem, gpu_in: &Uploaded, records: &GpuBuffer) -> Dispatch {
    softmax_ce_forward(gpu(), &problem.ce, &gpu_in.inputs(), records).expect("forward builds")
}

fn backward_dispatch(
    problem: &Problem,
    gpu_in: &Uploaded,
    scale: f32,
    dlogits: &GpuBuffer,
) -> Dispatch {
    softmax_ce_backward(gpu(), &problem.ce, scale, &gpu_in.inputs(), dlogits)
        .expect("backward builds")
}

/// Row i's focal-loss quantities in f64, and the f32 kernel's error bounds on them (see the
/// top of the file).
struct FocalRow {
    /// p_y and M = q^γ.
    hit: f64,
    modulation: f64,
    /// Relative error bound of the exps, q and every p_c: δ.
    delta: f64,
    /// Relative error bound of M: δM.
    delta_modulation: f64,
    /// Absolute error bound of N.
    nll_error: f64,
}

impl FocalRow {
    fn new(problem: &Problem, i: usize) -> Self {
        let (c, g) = (problem.ce.classes, problem.ce.focal_gamma as f64);
        let row: Vec<f64> = problem.logits[i * c..(i + 1) * c]
            .iter()
            .map(|&x| x as f64)
            .collect();
        let label = problem.labels[i] as usize;
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|x| (x - max).exp()).sum();
        let hit = (row[label] - max).exp() / s;
        let miss: f64 = (0..c)
            .filter(|&k| k != label)
            .map(|k| (row[k] - max).exp() / s)
            .sum();
        let nll = (max - row[label]) + s.ln();
        let spread = row.iter().map(|x| max - x).filter(|&d| d < 88.0);
        let d = spread.fold(0.0, f64::max);
        let delta = (3.0 + 3.0 * d + (5 * c + 8) as f64) * U;
        let log2_miss = if miss > 0.0 { miss.log2().abs() } else { 0.0 };
        let t = g * log2_miss;
        let delta_modulation = g * delta
            + g * std::f64::consts::LN_2 * (3.0 * log2_miss + 8.0) * U
            + (3.0 + 2.0 * t) * U;
        // A term flushed below f32's normal range moves q by up to C·2^−126.
        let flushed = c as f64 * f64::powi(2.0, -126);
        FocalRow {
            hit,
            modulation: miss.powf(g),
            delta,
            delta_modulation: delta_modulation + g * flushed / miss.max(flushed),
            nll_error: 2.0 * U * nll + (5 * c + 24) as f64 * U,
        }
    }
}

fn check_records(problem: &Problem, got: &[f32]) {
    let want = twin::row_stats(
        &problem.ce,
        &problem.logits,
        &problem.labels,
        problem.weight(),
    );
    assert_within(
        &format!("records {}", problem.name()),
        got,
        &want,
        &record_tolerance(problem, &want),
    );
}

/// Each record's bound: the loss carries log-sum-exp's error (and the focal modulation's);
/// the other three fields are exact.
fn record_tolerance(problem: &Problem, want: &[f32]) -> Vec<f64> {
    let c = problem.ce.classes;
    (0..problem.ce.rows)
        .flat_map(|i| {
            let loss = want[i * ROW_STATS] as f64;
            let log_s_error = (5 * c + 24) as f64 * U;
            let loss_tolerance = if problem.ce.is_focal() {
                let row = FocalRow::new(problem, i);
                let w = problem.class_weight(problem.labels[i] as usize);
                loss * (row.delta_modulation + 4.0 * U) + w * row.modulation * log_s_error
            } else {
                gamma(c + 4) * loss + problem.row_weight(i) * log_s_error
            };
            [loss_tolerance, 0.0, 0.0, 0.0]
        })
        .collect()
}

fn check_dlogits(problem: &Problem, scale: f32, got: &[f32]) {
    let ce = &problem.ce;
    let mut want = vec![0.0; ce.logits_len()];
    twin::backward(
        ce,
        &problem.logits,
        &problem.labels,
        problem.weight(),
        scale,
        &mut want,
    );
    if ce.is_focal() {
        let tolerance = focal_dlogits_tolerance(problem, scale, &want);
        let what = format!("dlogits {} scale={scale}", problem.name());
        return assert_within(&what, got, &want, &tolerance);
    }
    let batch_weight: f64 = problem
        .labels
        .iter()
        .map(|&y| problem.class_weight(y as usize))
        .sum();
    let eps = ce.label_smoothing as f64;
    let smooth_weight = eps / ce.classes as f64 * problem.weight_total();
    let tolerance: Vec<f64> = (0..ce.logits_len())
        .map(|k| {
            let i = k / ce.classes;
            let hard_weight = (1.0 - eps) * problem.class_weight(problem.labels[i] as usize);
            let bracket = (hard_weight + 2.0 * smooth_weight) * (6 * ce.classes + 16) as f64 * U;
            scale.abs() as f64 / batch_weight * bracket + gamma(ce.rows + 2) * want[k].abs() as f64
        })
        .collect();
    assert_within(
        &format!("dlogits {} scale={scale}", problem.name()),
        got,
        &want,
        &tolerance,
    );
}

fn focal_dlogits_tolerance(problem: &Problem, scale: f32, want: &[f32]) -> Vec<f64> {
    let ce = &problem.ce;
    let g = ce.focal_gamma as f64;
    (0..ce.rows)
        .flat_map(|i| {
            let row = FocalRow::new(problem, i);
            let w = problem.class_weight(problem.labels[i] as usize);
            let relative = row.delta_modulation + 3.0 * row.delta + 16.0 * U + gamma(ce.rows + 2);
            // N/q's error, carried by γ·p·M·w·|h_c|·scale/rows with |h_c| ≤ q.
            let ratio = row.nll_error * g * row.hit * w * row.modulation * scale.abs() as f64
                / ce.rows as f64;
            (0..ce.classes).map(move |c| {
                let k = i * ce.classes + c;
                want[k].abs() as f64 * relative + ratio
            })
        })
        .collect()
}

/// Forward and backward of one problem, each against its twin.
fn check(problem: &Problem, scale: f32) {
    let gpu_in = Uploaded::new(problem);
    let records = zeros(problem.ce.row_stats_len());
    let dlogits = zeros(problem.ce.logits_len());
    run(&[
        &forward_dispatch(problem, &gpu_in, &records),
        &backward_dispatch(problem, &gpu_in, scale, &dlogits),
    ]);
    check_records(problem, &read(&records));
    check_dlogits(problem, scale, &read(&dlogits));
}

/// (rows, classes): one row, one class, ragged workgroups, the 7 emotions, and 10 classes.
// (9, 8): rows of whole quads for column_sum; (3, 70): more classes than the workgroup.
const SHAPES: &[(usize, usize)] = &[
    (1, 1),
    (3, 1),
    (1, 7),
    (67, 7),
    (130, 7),
    (67, 10),
    (9, 8),
    (3, 70),
];

fn every_shape_and_option(spread: f32, scale: f32) {
    for (seed, &(rows, classes)) in SHAPES.iter().enumerate() {
        for weighted in [false, true] {
            for label_smoothing in [0.0, 0.1] {
                let ce = CrossEntropy {
                    label_smoothing,
                    ..CrossEntropy::new(rows, classes)
                };
                check(
                    &Problem::random(ce, weighted, spread, seed as u64 * 10),
                    scale,
                );
            }
        }
    }
}

#[test]
fn forward_and_backward_match_twin() {
    every_shape_and_option(4.0, 1.0);
}

/// softmax_ce_train is forward → accumulate → backward in one dispatch: its stats (added onto
/// earlier sums, as across steps) equal the separate kernels' and its dlogits the twin's, on
/// every shape and option, more rows than the workgroup included. Not bit for bit: a driver may
/// fuse a multiply and an add into one FMA in one shader and not in the other (NVIDIA's does;
/// WGSL has no way to forbid it), so the stats may differ by both paths' record errors. Its
/// per-class sum of dlogits (the bias gradient of the logits' layer) is additions only, which
/// no compiler may reorder or fuse, so it must be column_sum's bits over those same dlogits.
#[test]
fn train_is_forward_accumulate_backward() {
    for (seed, &(rows, classes)) in SHAPES.iter().enumerate() {
        for (weighted, label_smoothing, focal_gamma) in
            [(false, 0.0, 0.0), (true, 0.1, 0.0), (true, 0.0, 2.0)]
        {
            let ce = CrossEntropy {
                label_smoothing,
                focal_gamma,
                ..CrossEntropy::new(rows, classes)
            };
            let problem = Problem::random(ce, weighted, 4.0, seed as u64 * 10 + 3);
            let gpu_in = Uploaded::new(&problem);
            let earlier = [1.5, 2.0, 3.0, 4.0];
            let (records, separate_stats) = (zeros(problem.ce.row_stats_len()), upload(&earlier));
            run(&[
                &forward_dispatch(&problem, &gpu_in, &records),
                &softmax_ce_accumulate(gpu(), rows, &records, &separate_stats).expect("builds"),
            ]);
            let (fused_stats, fused_dlogits, fused_sum) = (
                upload(&earlier),
                zeros(problem.ce.logits_len()),
                zeros(classes),
            );
            let train = softmax_ce_train(
                gpu(),
                &problem.ce,
                0.5,
                &gpu_in.inputs(),
                &fused_dlogits,
                &fused_stats,
                Some(&fused_sum),
            )
            .expect("softmax_ce_train builds");
            run(&[&train]);
            let what = problem.name();

            // Both sums add each row's record, within its bound of the twin's, in f32.
            let want = twin::row_stats(
                &problem.ce,
                &problem.logits,
                &problem.labels,
                problem.weight(),
            );
            let per_record = record_tolerance(&problem, &want);
            let loss_sum: f64 = (0..rows).map(|i| want[i * ROW_STATS].abs() as f64).sum();
            let loss_tolerance = 2.0
                * ((0..rows).map(|i| per_record[i * ROW_STATS]).sum::<f64>()
                    + gamma(rows + 1) * (loss_sum + earlier[0] as f64));
            assert_within(
                &format!("stats {what}"),
                &read(&fused_stats),
                &read(&separate_stats),
                &[loss_tolerance, 0.0, 0.0, 0.0],
            );
            check_dlogits(&problem, 0.5, &read(&fused_dlogits));

            let by_class = ChannelSumShape {
                outer: rows,
                channels: classes,
                inner: 1,
            };
            let column_sum = zeros(classes);
            run(&[
                &channel_sum(gpu(), &by_class, false, &fused_dlogits, &column_sum)
                    .expect("column_sum builds"),
            ]);
            assert_bits_eq(
                &format!("dlogits summed per class {what}"),
                &read(&fused_sum),
                &read(&column_sum),
            );
        }
    }
}

#[test]
fn backward_applies_loss_scale() {
    let ce = CrossEntropy {
        label_smoothing: 0.2,
        ..CrossEntropy::new(67, 7)
    };
    check(&Problem::random(ce, true, 4.0, 7), 1024.0);
}

/// (rows, classes) of the focal-loss checks: one row, ragged workgroups, one class (q = 0: a
/// loss and gradient of 0), the 7 emotions, and 13 classes.
const FOCAL_SHAPES: &[(usize, usize)] = &[(1, 1), (67, 1), (1, 7), (67, 7), (1, 13), (67, 13)];

fn focal(rows: usize, classes: usize, focal_gamma: f32) -> CrossEntropy {
    CrossEntropy {
        focal_gamma,
        ..CrossEntropy::new(rows, classes)
    }
}

/// The focal loss against its twin, with and without α, at γ below 1 (where q^(γ−1) is
/// unbounded), 2 (the paper's) and 3.5, on ordinary logits and on ±1e4 (p_y of exactly 0 or 1).
#[test]
fn focal_forward_and_backward_match_twin() {
    for spread in [4.0, 1e4] {
        for (seed, &(rows, classes)) in FOCAL_SHAPES.iter().enumerate() {
            for focal_gamma in [0.5, 2.0, 3.5] {
                for weighted in [false, true] {
                    let ce = focal(rows, classes, focal_gamma);
                    check(&Problem::random(ce, weighted, spread, seed as u64), 0.5);
                }
            }
        }
    }
}

/// The twins against PyTorch (float64, these inputs exact in f32): `F.cross_entropy(x, y,
/// weight=w, label_smoothing=0.25)`, and the focal loss `(w[y] * (1 - p)**g * -logp).mean()`
/// at g = 2 and 0.5, values and autograd gradients.
#[test]
fn twins_match_pytorch() {
    let logits = [
        1.5, -0.25, 0.75, 2.0, -1.0, 0.125, 0.25, -3.0, 0.375, 1.125, -2.0, 4.0, 0.5, 0.0, 0.3125,
    ];
    let labels = [3, 0, 2];
    let weight = [0.5, 2.0, 1.0, 1.5, 3.0];
    #[rustfmt::skip]
    let cases: [(CrossEntropy, f64, [f64; 15]); 3] = [
        (
            CrossEntropy { label_smoothing: 0.25, ..CrossEntropy::new(3, 5) },
            2.372406292832409,
            [0.14219712172870755, -0.0071750625478124675, 0.05443888547352582,
             -0.15181723685104342, -0.037643707803377516, -0.0915277144441294,
             0.014038639040469399, -0.014829855964446245, 0.028679477214098994,
             0.06363945415400725, -0.007450280244431589, 0.3229157089123305,
             -0.2559088777441406, -0.018475071187771017, -0.04108147973598735],
        ),
        (
            focal(3, 5, 2.0),
            1.4323119380723641,
            [0.09182813844349633, 0.01595733773703978, 0.04337654120117901,
             -0.1586997299994847, 0.007537712617769584, -0.1671582668533126,
             0.036570915735921215, 0.0014180082873410027, 0.04144027659339638,
             0.08772906623665397, 0.0008750601912699003, 0.3530244771975379,
             -0.3692032010896283, 0.006465868843234277, 0.008837794857586137],
        ),
        (
            focal(3, 5, 0.5),
            1.708606940341836,
            [0.1421459846931598, 0.024701268305776992, 0.06714500877548495,
             -0.2456603147323525, 0.011668052957930762, -0.1503789197553141,
             0.03289992715500248, 0.0012756686131565813, 0.03728050156170233,
             0.07892282242545268, 0.0007960737414508697, 0.32115906904477187,
             -0.335877436294442, 0.005882233534466089, 0.008040059973753092],
        ),
    ];
    for (ce, loss, grad) in cases {
        let got = twin::loss(&ce, &logits, &labels, Some(&weight));
        // Both in f64 from the same f32 inputs: only summation order differs.
        assert!(
            (got - loss).abs() <= 1e-12 * loss,
            "{ce:?}: loss {got}, PyTorch {loss}"
        );
        let mut dlogits = vec![0.0; ce.logits_len()];
        twin::backward(&ce, &logits, &labels, Some(&weight), 1.0, &mut dlogits);
        let want: Vec<f32> = grad.iter().map(|&g| g as f32).collect();
        // The twin rounds each f64 gradient to f32 once: u relative, and PyTorch's within it.
        let tolerance: Vec<f64> = grad.iter().map(|g| 2.0 * U * g.abs()).collect();
        assert_within(&format!("dlogits {ce:?}"), &dlogits, &want, &tolerance);
    }
}

/// Logits of ±1e4: a naive exp overflows, log-sum-exp from the row max does not.
#[test]
fn huge_logits_stay_finite() {
    for weighted in [false, true] {
        let ce = CrossEntropy {
            label_smoothing: 0.1,
            ..CrossEntropy::new(67, 7)
        };
        let problem = Problem::random(ce, weighted, 1e4, 99);
        check(&problem, 1.0);
    }
}

/// One row with one class: p = 1, so the loss and its gradient are exactly 0.
#[test]
fn one_class_has_zero_loss() {
    let problem = Problem::random(CrossEntropy::new(5, 1), true, 4.0, 3);
    let gpu_in = Uploaded::new(&problem);
    let records = zeros(problem.ce.row_stats_len());
    let dlogits = zeros(problem.ce.logits_len());
    run(&[
        &forward_dispatch(&problem, &gpu_in, &records),
        &backward_dispatch(&problem, &gpu_in, 1.0, &dlogits),
    ]);
    let records = read(&records);
    assert!(records.iter().step_by(ROW_STATS).all(|&l| l == 0.0));
    assert!(read(&dlogits).iter().all(|&g| g == 0.0));
}

/// A whole training step in one submit (forward → accumulate → backward), twice, into one
/// stats buffer that starts non-zero: it must hold the old values plus both batches' sums.
#[test]
fn accumulate_adds_across_steps_without_readback() {
    let ce = CrossEntropy {
        label_smoothing: 0.1,
        ..CrossEntropy::new(67, 7)
    };
    let first = Problem::random(ce, true, 4.0, 11);
    let second = Problem {
        logits: random(12, ce.logits_len()),
        labels: first.labels.iter().rev().copied().collect(),
        weight: first.weight.clone(),
        ce,
    };
    let initial = [0.5f32, 0.25, 3.0, 5.0];
    let stats = upload(&initial);
    let mut want = initial.to_vec();
    let mut magnitude: Vec<f64> = initial.iter().map(|&v| v.abs() as f64).collect();
    for problem in [&first, &second] {
        let gpu_in = Uploaded::new(problem);
        let records = zeros(ce.row_stats_len());
        let dlogits = zeros(ce.logits_len());
        let accumulate =
            softmax_ce_accumulate(gpu(), ce.rows, &records, &stats).expect("accumulate builds");
        run(&[
            &forward_dispatch(problem, &gpu_in, &records),
            &accumulate,
            &backward_dispatch(problem, &gpu_in, 1.0, &dlogits),
        ]);
        let records = read(&records);
        check_records(problem, &records);
        check_dlogits(problem, 1.0, &read(&dlogits));
        // The reduction is held against the twin summing the GPU's own records.
        twin::accumulate(&records, &mut want);
        for (k, m) in magnitude.iter_mut().enumerate() {
            *m += records
                .iter()
                .skip(k)
                .step_by(ROW_STATS)
                .map(|&v| v.abs() as f64)
                .sum::<f64>();
        }
    }
    let got = read(&stats);
    // Each total is the old value plus 2 × 67 terms in two f32 sums: γ_{68} per step.
    let tolerance: Vec<f64> = magnitude
        .iter()
        .map(|m| 2.0 * gamma(ce.rows + 1) * m)
        .collect();
    assert_within("stats", &got, &want, &tolerance);
    // Counts are integers far below 2^24: exact.
    assert_eq!(got[2], want[2], "correct count");
    assert_eq!(got[3], initial[3] + 2.0 * ce.rows as f32, "rows");
}

/// `correct` is argmax == label with ties going to the first maximum, as torch.argmax.
#[test]
fn correct_count_breaks_ties_toward_first_max() {
    #[rustfmt::skip]
    let logits = vec![
        1.0, 3.0, 3.0, 0.0, // tie between 1 and 2: argmax 1
        1.0, 3.0, 3.0, 0.0,
        2.0, 2.0, 2.0, 2.0, // all tied: argmax 0
        2.0, 2.0, 2.0, 2.0,
        -1.0, -5.0, -0.5, -0.5, // tie between 2 and 3: argmax 2
    ];
    let labels = vec![1, 2, 0, 3, 2];
    let want_correct = [1.0, 0.0, 1.0, 0.0, 1.0];
    let problem = Problem {
        ce: CrossEntropy::new(5, 4),
        logits,
        labels,
        weight: None,
    };
    let gpu_in = Uploaded::new(&problem);
    let records = zeros(problem.ce.row_stats_len());
    let stats = zeros(ROW_STATS);
    run(&[
        &forward_dispatch(&problem, &gpu_in, &records),
        &softmax_ce_accumulate(gpu(), 5, &records, &stats).expect("accumulate builds"),
    ]);
    let got: Vec<f32> = read(&records)
        .iter()
        .skip(2)
        .step_by(ROW_STATS)
        .copied()
        .collect();
    assert_eq!(got, want_correct);
    assert_eq!(read(&stats)[2], 3.0);
    let twin_correct: Vec<f32> =
        twin::row_stats(&problem.ce, &problem.logits, &problem.labels, None)
            .iter()
            .skip(2)
            .step_by(ROW_STATS)
            .copied()
            .collect();
    assert_eq!(twin_correct, want_correct);
}

/// The backward twin is the gradient of the loss twin, for every weight/smoothing combination
/// and for the focal loss.
#[test]
fn backward_twin_is_gradient_of_loss_twin() {
    let losses = [(0.0, 0.0), (0.15, 0.0), (0.0, 0.5), (0.0, 2.0)];
    for weighted in [false, true] {
        for (label_smoothing, focal_gamma) in losses {
            let ce = CrossEntropy {
                label_smoothing,
                focal_gamma,
                ..CrossEntropy::new(6, 7)
            };
            let problem = Problem::random(ce, weighted, 3.0, 5);
            let mut analytic = vec![0.0; ce.logits_len()];
            twin::backward(
                &ce,
                &problem.logits,
                &problem.labels,
                problem.weight(),
                1.0,
                &mut analytic,
            );
            let numeric = numeric_gradient(&problem.logits, 1e-2, |logits| {
                twin::loss(&ce, logits, &problem.labels, problem.weight())
            });
            // Smooth in the logits; central differences err by O(h²·|f'''|) ≈ 1e-4·O(1/B).
            assert_gradient(
                &format!("dlogits {}", problem.name()),
                &analytic,
                &numeric,
                1e-4,
                1e-3,
            );
        }
    }
}
