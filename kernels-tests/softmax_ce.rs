//! softmax_ce: forward records, the accumulating reduction and backward against the twin, with
//! and without class weights and label smoothing, on 1 row, 1 class (degenerate: loss 0), row
//! counts that are not multiples of the workgroup (64), C = 7 and C = 10, and ±1e4 logits;
//! the fused training kernel bit for bit against those three.
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

fn check_records(problem: &Problem, got: &[f32]) {
    let want = twin::row_stats(
        &problem.ce,
        &problem.logits,
        &problem.labels,
        problem.weight(),
    );
    let c = problem.ce.classes;
    let tolerance: Vec<f64> = (0..problem.ce.rows)
        .flat_map(|i| {
            let loss = want[i * ROW_STATS] as f64;
            let log_s_error = (5 * c + 24) as f64 * U;
            [
                gamma(c + 4) * loss + problem.row_weight(i) * log_s_error,
                0.0,
                0.0,
                0.0,
            ]
        })
        .collect();
    assert_within(
        &format!("records {}", problem.name()),
        got,
        &want,
        &tolerance,
    );
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

/// softmax_ce_train is forward → accumulate → backward in one dispatch and must give the same
/// bits: the stats (added onto earlier sums, as across steps) and dlogits, on every shape and
/// option, more rows than the workgroup included. Each half is held against the twin above.
/// Its per-class sum of dlogits (the bias gradient of the logits' layer) must be column_sum's
/// bits over those dlogits.
#[test]
fn train_is_forward_accumulate_backward_bit_for_bit() {
    for (seed, &(rows, classes)) in SHAPES.iter().enumerate() {
        for (weighted, label_smoothing) in [(false, 0.0), (true, 0.1)] {
            let ce = CrossEntropy {
                label_smoothing,
                ..CrossEntropy::new(rows, classes)
            };
            let problem = Problem::random(ce, weighted, 4.0, seed as u64 * 10 + 3);
            let gpu_in = Uploaded::new(&problem);
            let earlier = [1.5, 2.0, 3.0, 4.0];
            let (records, separate_stats, separate_dlogits) = (
                zeros(problem.ce.row_stats_len()),
                upload(&earlier),
                zeros(problem.ce.logits_len()),
            );
            run(&[
                &forward_dispatch(&problem, &gpu_in, &records),
                &softmax_ce_accumulate(gpu(), rows, &records, &separate_stats).expect("builds"),
                &backward_dispatch(&problem, &gpu_in, 0.5, &separate_dlogits),
            ]);
            let by_class = ChannelSumShape {
                outer: rows,
                channels: classes,
                inner: 1,
            };
            let separate_sum = zeros(classes);
            run(&[
                &channel_sum(gpu(), &by_class, false, &separate_dlogits, &separate_sum)
                    .expect("column_sum builds"),
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
            assert_bits_eq(
                &format!("stats {what}"),
                &read(&fused_stats),
                &read(&separate_stats),
            );
            assert_bits_eq(
                &format!("dlogits {what}"),
                &read(&fused_dlogits),
                &read(&separate_dlogits),
            );
            assert_bits_eq(
                &format!("dlogits summed per class {what}"),
                &read(&fused_sum),
                &read(&separate_sum),
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

/// The backward twin is the gradient of the loss twin, for every weight/smoothing combination.
#[test]
fn backward_twin_is_gradient_of_loss_twin() {
    for weighted in [false, true] {
        for label_smoothing in [0.0, 0.15] {
            let ce = CrossEntropy {
                label_smoothing,
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
