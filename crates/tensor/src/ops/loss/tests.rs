use super::*;
use crate::kernel::{Dispatch, record_all};
use crate::ops::softmax::cpu as softmax_cpu;
use crate::testing::{assert_close, ctx, random_f32};

fn random_labels(rows: usize, cols: usize, seed: u64) -> Vec<u32> {
    random_f32(rows, seed, 1.0)
        .into_iter()
        .map(|u| (((u + 1.0) * 0.5 * cols as f32) as u32).min(cols as u32 - 1))
        .collect()
}

fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

/// Central differences of `loss(z)` (a batch-mean loss) against `grad`, in f64.
fn check_finite_differences(
    z: &[f64],
    grad: &[f64],
    tolerance: f64,
    what: &str,
    loss: impl Fn(&[f64]) -> f64,
) {
    let h = 1e-5;
    let mut probe = z.to_vec();
    for i in 0..z.len() {
        probe[i] = z[i] + h;
        let up = loss(&probe);
        probe[i] = z[i] - h;
        let down = loss(&probe);
        probe[i] = z[i];
        let numeric = (up - down) / (2.0 * h);
        assert!(
            (numeric - grad[i]).abs() <= tolerance,
            "{what}: index {i}: analytic {} vs central difference {numeric} (tolerance {tolerance})",
            grad[i]
        );
    }
}

fn params(temperature: f32, alpha: f32, label_smoothing: f32) -> DistillLossParams {
    DistillLossParams {
        temperature,
        alpha,
        label_smoothing,
    }
}

/// The most the fixed-point rounding of `rows` examples' values moves a stats sum.
fn rounding(rows: usize) -> f64 {
    rows as f64 * 0.5 / 65536.0
}

/// `|got - want| <= tol`, with a message naming what and the tolerance.
#[track_caller]
fn assert_sum(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() <= tol,
        "{what}: {got} vs {want} (tolerance {tol:e})"
    );
}

#[test]
fn distill_gradient_matches_finite_differences_on_cpu() {
    let (rows, cols) = (3, 5);
    let labels = [4, 0, 2];
    let z = to_f64(&random_f32(rows * cols, 1, 3.0));
    let t = to_f64(&random_f32(rows * cols, 2, 3.0));
    for temperature in [0.5, 1.0, 4.0, 20.0] {
        for alpha in [0.0, 0.3, 1.0] {
            for eps in [0.0, 0.1, 0.45] {
                let p = params(temperature, alpha, eps);
                let what = format!("{p:?}");
                let exact = cpu::distill_loss_f64(&z, Some(&t), &labels, cols, p);
                let mean_loss = |zz: &[f64]| {
                    let losses = cpu::distill_loss_f64(zz, Some(&t), &labels, cols, p).losses;
                    losses.iter().sum::<f64>() / rows as f64
                };
                check_finite_differences(&z, &exact.grad, 1e-7, &what, mean_loss);
                check_f32_reference(&z, &t, &labels, cols, p, &exact);
            }
        }
    }
}

/// The f32 reference (the kernels' formulas) against the f64 definitions.
fn check_f32_reference(
    z: &[f64],
    t: &[f64],
    labels: &[u32],
    cols: usize,
    p: DistillLossParams,
    exact: &cpu::ExactLoss,
) {
    let what = format!("{p:?}");
    let z32: Vec<f32> = z.iter().map(|&v| v as f32).collect();
    let t32: Vec<f32> = t.iter().map(|&v| v as f32).collect();
    let out = cpu::distill_loss(&z32, Some(&t32), labels, cols, p);
    let grad32: Vec<f32> = exact.grad.iter().map(|&g| g as f32).collect();
    assert_close(
        &out.grad,
        &grad32,
        1e-6,
        1e-4,
        &format!("f32 grad {what}, atol 1e-6 rtol 1e-4"),
    );
    for (name, got, want) in [
        ("loss", out.loss_sum, &exact.losses),
        ("hard", out.hard_sum, &exact.hard),
        ("soft", out.soft_sum, &exact.soft),
    ] {
        let sum: f64 = want.iter().sum();
        let tol = 1e-5 * (sum.abs() + 1.0);
        assert_sum(f64::from(got), sum, tol, &format!("f32 {name} sum {what}"));
    }
}

#[test]
fn label_smoothing_zero_is_the_one_hot_loss_and_spreads_the_target_otherwise() {
    let (rows, cols) = (4, 6);
    let labels = [0, 5, 2, 3];
    let z = to_f64(&random_f32(rows * cols, 31, 2.0));
    let t = to_f64(&random_f32(rows * cols, 32, 2.0));
    // eps = 0 is the plain cross-entropy -log q1_y.
    let plain = cpu::distill_loss_f64(&z, Some(&t), &labels, cols, params(2.0, 0.0, 0.0));
    assert_eq!(plain.losses, plain.hard);
    // eps = 1 - 1e-9 (almost uniform target): the loss is the mean over classes of -log q1_j,
    // and the plain NLL the stats report does not move.
    let eps = 1.0 - 1e-9;
    let uniform = cpu::distill_loss_f64(&z, Some(&t), &labels, cols, params(2.0, 0.0, eps));
    assert_eq!(uniform.hard, plain.hard);
    for r in 0..rows {
        let log_q1 = softmax_cpu::log_softmax_f64(&z[r * cols..(r + 1) * cols], 1.0);
        let mean_nll = -log_q1.iter().sum::<f64>() / cols as f64;
        assert_sum(uniform.losses[r], mean_nll, 1e-7, &format!("row {r}"));
        // The gradient rows of a cross-entropy sum to 0 with or without smoothing.
        let g: f64 = uniform.grad[r * cols..(r + 1) * cols].iter().sum();
        assert_sum(g, 0.0, 1e-12, &format!("gradient row {r} sum"));
    }
}

#[test]
fn kl_reference_is_zero_for_a_matching_student_and_positive_otherwise() {
    let (rows, cols) = (5, 9);
    let labels = [0, 1, 2, 3, 8];
    let z = to_f64(&random_f32(rows * cols, 41, 4.0));
    let t = to_f64(&random_f32(rows * cols, 42, 4.0));
    for temperature in [0.5, 4.0, 20.0] {
        let p = params(temperature, 0.5, 0.0);
        let same = cpu::distill_loss_f64(&z, Some(&z), &labels, cols, p);
        assert!(same.soft.iter().all(|&kl| kl.abs() < 1e-12), "{same:?}");
        let other = cpu::distill_loss_f64(&z, Some(&t), &labels, cols, p);
        // CE(p, q) = KL(p || q) + H(p): the objective's soft term less the teacher's entropy.
        for r in 0..rows {
            let log_p =
                softmax_cpu::log_softmax_f64(&t[r * cols..(r + 1) * cols], temperature.into());
            let entropy: f64 = -log_p.iter().map(|lp| lp.exp() * lp).sum::<f64>();
            let t2 = f64::from(temperature * temperature);
            let soft_ce = (other.losses[r] - 0.5 * other.hard[r]) / (0.5 * t2);
            assert!(other.soft[r] > 0.0, "T={temperature} row {r}");
            assert_sum(
                other.soft[r],
                soft_ce - entropy,
                1e-9 * soft_ce.abs().max(1.0),
                &format!("KL = CE - H, T={temperature} row {r}"),
            );
        }
    }
}

#[test]
fn logit_mse_gradient_matches_finite_differences_on_cpu() {
    let (rows, cols) = (4, 3);
    let z = to_f64(&random_f32(rows * cols, 3, 2.0));
    let t = to_f64(&random_f32(rows * cols, 4, 2.0));
    let labels = [0, 2, 1, 2];
    let exact = cpu::logit_mse_f64(&z, &t, &labels, cols);
    check_finite_differences(&z, &exact.grad, 1e-8, "logit mse", |zz| {
        cpu::logit_mse_f64(zz, &t, &labels, cols)
            .losses
            .iter()
            .sum::<f64>()
            / rows as f64
    });
}

struct Problem {
    z: Vec<f32>,
    t: Vec<f32>,
    labels: Vec<u32>,
    student: Tensor,
    teacher: Tensor,
    label_tensor: Tensor,
    grad: Tensor,
    stats: Tensor,
}

impl Problem {
    fn new(z: Vec<f32>, t: Vec<f32>, labels: Vec<u32>, cols: usize) -> Self {
        let ctx = ctx();
        let rows = labels.len();
        Self {
            student: Tensor::from_f32(ctx, &z, &[rows, cols]).unwrap(),
            teacher: Tensor::from_f32(ctx, &t, &[rows, cols]).unwrap(),
            label_tensor: Tensor::from_u32(ctx, &labels, &[rows]).unwrap(),
            grad: Tensor::zeros(ctx, &[rows, cols], DType::F32).unwrap(),
            stats: new_loss_stats(ctx).unwrap(),
            z,
            t,
            labels,
        }
    }

    fn random(rows: usize, cols: usize, seed: u64, scale: f32) -> Self {
        Self::new(
            random_f32(rows * cols, seed, scale),
            random_f32(rows * cols, seed + 1, scale),
            random_labels(rows, cols, seed + 2),
            cols,
        )
    }

    /// Run `dispatches` after resetting the stats; return (grad, stats).
    fn run(&self, dispatches: &[Dispatch]) -> (Vec<f32>, LossStats) {
        let ctx = ctx();
        let mut enc = ctx.encoder();
        reset_loss_stats(&mut enc, &self.stats);
        record_all(&mut enc, dispatches);
        ctx.submit_and_wait(enc);
        (
            self.grad.to_f32(ctx).unwrap(),
            read_loss_stats(ctx, &self.stats).unwrap(),
        )
    }
}

/// Loss-sum tolerance: relative to the sum of |losses|, plus f32 rounding at the scale of
/// each example's terms (T^2 for the soft term, 1 for the hard one).
fn loss_tolerance(abs_sum: f64, rows: usize, p: DistillLossParams) -> f64 {
    let term_scale = f64::from(p.alpha * p.temperature * p.temperature) + 1.0;
    1e-5 * abs_sum + 1e-5 * rows as f64 * term_scale
}

fn abs_sum(values: &[f64]) -> f64 {
    values.iter().map(|v| v.abs()).sum()
}

/// The GPU's loss, hard and soft sums against the f64 definitions. The hard and soft terms
/// are O(1) per example (or relative to their size), whatever T and alpha.
#[track_caller]
fn check_sums(stats: &LossStats, exact: &cpu::ExactLoss, p: DistillLossParams, what: &str) {
    let rows = exact.losses.len();
    let sum = |v: &[f64]| v.iter().sum::<f64>();
    let tol = loss_tolerance(abs_sum(&exact.losses), rows, p);
    assert_sum(
        stats.loss_sum,
        sum(&exact.losses),
        tol,
        &format!("loss {what}"),
    );
    let tol = 1e-5 * abs_sum(&exact.hard) + 1e-5 * rows as f64;
    assert_sum(
        stats.hard_sum,
        sum(&exact.hard),
        tol,
        &format!("hard {what}"),
    );
    let tol = 1e-5 * abs_sum(&exact.soft) + 2e-5 * rows as f64;
    assert_sum(
        stats.soft_sum,
        sum(&exact.soft),
        tol,
        &format!("soft {what}"),
    );
    assert_eq!(stats.count as usize, rows, "count {what}");
}

impl Problem {
    fn exact_distill(&self, teacher: bool, p: DistillLossParams) -> cpu::ExactLoss {
        let cols = self.z.len() / self.labels.len();
        let t = to_f64(&self.t);
        let teacher = teacher.then_some(t.as_slice());
        cpu::distill_loss_f64(&to_f64(&self.z), teacher, &self.labels, cols, p)
    }

    fn fused(&self, teacher: bool, p: DistillLossParams, threads: u32) -> Dispatch {
        let teacher = teacher.then_some(&self.teacher);
        prepare_distill_loss_with(
            ctx(),
            &self.student,
            teacher,
            &self.label_tensor,
            &self.grad,
            &self.stats,
            p,
            threads,
        )
        .unwrap()
    }
}

#[test]
fn fused_distill_loss_matches_cpu_on_odd_shapes() {
    let mut case = 0;
    for rows in [1, 7, 129, 300] {
        for cols in [1, 10, 33, 1000] {
            case += 1;
            let pr = Problem::random(rows, cols, case, 6.0);
            let p = params(
                [0.5, 1.0, 4.0, 20.0][case as usize % 4],
                [0.0, 0.5, 0.9, 1.0][case as usize / 4 % 4],
                [0.0, 0.1, 0.3][case as usize % 3],
            );
            let threads = [1, 8, 64][case as usize % 3];
            check_fused(&pr, p, threads);
        }
    }
}

/// The fused kernel against the f32 reference (gradient, correct count) and the f64
/// definitions (loss, hard and soft sums).
fn check_fused(pr: &Problem, p: DistillLossParams, threads: u32) {
    let (rows, cols) = (pr.labels.len(), pr.z.len() / pr.labels.len());
    let (grad, stats) = pr.run(&[pr.fused(true, p, threads)]);
    let expected = cpu::distill_loss(&pr.z, Some(&pr.t), &pr.labels, cols, p);
    let what = format!("[{rows}, {cols}] {p:?} threads={threads}");
    let grad_scale = (p.alpha * p.temperature + 1.0) / rows as f32;
    assert_close(
        &grad,
        &expected.grad,
        1e-5 * grad_scale,
        1e-3,
        &format!("grad {what}: atol 1e-5*(alpha*T+1)/B, rtol 1e-3"),
    );
    check_sums(&stats, &pr.exact_distill(true, p), p, &what);
    assert_eq!(stats.correct, expected.correct, "{what}");
}

#[test]
fn label_smoothing_matches_cpu_on_seven_rows_of_thirteen_classes() {
    let pr = Problem::random(7, 13, 60, 4.0);
    for (temperature, alpha) in [(1.0, 0.0), (4.0, 0.5), (20.0, 0.9), (2.0, 1.0)] {
        for eps in [0.0, 0.1, 0.25, 0.9] {
            for threads in [1, 4, 16] {
                check_fused(&pr, params(temperature, alpha, eps), threads);
            }
        }
    }
}

#[test]
fn smoothing_moves_the_gradient_by_the_spread_target() {
    // eps = 0 is the one-hot gradient.
    let pr = Problem::random(9, 11, 61, 3.0);
    let (grad, _) = pr.run(&[pr.fused(true, params(3.0, 0.6, 0.0), 1)]);
    let one_hot = cpu::distill_loss_f64(
        &to_f64(&pr.z),
        Some(&to_f64(&pr.t)),
        &pr.labels,
        11,
        params(3.0, 0.6, 0.0),
    );
    let want: Vec<f32> = one_hot.grad.iter().map(|&g| g as f32).collect();
    assert_close(
        &grad,
        &want,
        1e-7,
        1e-4,
        "grad at eps 0 (atol 1e-7 rtol 1e-4)",
    );
    // Smoothing moves the gradient of every class by -(1 - alpha) eps / (C B), and the label's
    // by (1 - alpha) eps / B more.
    let eps = 0.2;
    let (smoothed, _) = pr.run(&[pr.fused(true, params(3.0, 0.6, eps), 1)]);
    for (i, (a, b)) in smoothed.iter().zip(&grad).enumerate() {
        let (r, j) = (i / 11, i % 11);
        let label_part = if j == pr.labels[r] as usize { eps } else { 0.0 };
        let want = 0.4 * (label_part - eps / 11.0) / 9.0;
        assert!(
            ((a - b) - want).abs() <= 1e-6,
            "element {i}: smoothing moved the gradient by {}, expected {want} (tol 1e-6)",
            a - b
        );
    }
}

#[test]
fn kl_stat_is_zero_when_the_student_matches_the_teacher() {
    let (rows, cols) = (37, 13);
    let z = random_f32(rows * cols, 62, 5.0);
    let pr = Problem::new(z.clone(), z, random_labels(rows, cols, 63), cols);
    for temperature in [0.5, 1.0, 4.0, 20.0] {
        for threads in [1, 8] {
            let p = params(temperature, 0.5, 0.1);
            let (_, stats) = pr.run(&[pr.fused(true, p, threads)]);
            assert!(
                stats.soft_sum.abs() <= 1e-6 * rows as f64,
                "T={temperature} threads={threads}: KL sum {} for identical logits (tol 1e-6 per row)",
                stats.soft_sum
            );
            let exact = pr.exact_distill(true, p);
            check_sums(
                &stats,
                &exact,
                p,
                &format!("identical logits T={temperature}"),
            );
        }
    }
}

#[test]
fn hard_label_only_distill_loss_matches_cpu() {
    let pr = Problem::random(129, 10, 50, 5.0);
    for (p, threads) in [
        (params(3.0, 0.0, 0.0), 1),
        (params(3.0, 0.0, 0.0), 16),
        (params(1.0, 0.0, 0.15), 1),
        (params(1.0, 0.0, 0.15), 4),
    ] {
        let (grad, stats) = pr.run(&[pr.fused(false, p, threads)]);
        let expected = cpu::distill_loss(&pr.z, None, &pr.labels, 10, p);
        let what = format!("hard labels {p:?} threads={threads}");
        assert_close(
            &grad,
            &expected.grad,
            1e-7,
            1e-3,
            &format!("grad {what}, atol 1e-7 rtol 1e-3"),
        );
        let exact = pr.exact_distill(false, p);
        check_sums(&stats, &exact, p, &what);
        assert_eq!(stats.soft_sum, 0.0, "{what}: no teacher, no soft term");
        assert_eq!(stats.correct, expected.correct);
        if p.label_smoothing == 0.0 {
            // The same formula up to the rounding of each example's terms.
            let tol = 1e-6 * stats.hard_sum;
            assert_sum(
                stats.loss_sum,
                stats.hard_sum,
                tol,
                &format!("{what}: plain NLL"),
            );
        }
    }
}

#[test]
fn distill_loss_is_exact_at_extreme_logits_and_temperatures() {
    let cols = 7;
    // Rows of +-1e4 mixes: student and teacher agreeing, disagreeing, ties at the max.
    let patterns: [[f32; 7]; 6] = [
        [1e4, -1e4, 0.0, 0.0, 0.0, 0.0, 0.0],
        [-1e4, 1e4, 0.0, 5.0, -5.0, 1e4, -1e4],
        [1e4, 1e4, 1e4, 1e4, 1e4, 1e4, 1e4],
        [-1e4, -1e4, -1e4, -1e4, -1e4, -1e4, -1e4],
        [0.0, 0.0, 1e4, -1e4, 9999.0, 1.0, -1.0],
        [-1e4, 3.0, -2.0, 1e4, -9990.0, 0.5, 1e4],
    ];
    let mut z = Vec::new();
    let mut t = Vec::new();
    let mut labels = Vec::new();
    for (i, a) in patterns.iter().enumerate() {
        for (k, b) in patterns.iter().enumerate() {
            z.extend_from_slice(a);
            t.extend_from_slice(b);
            labels.push(((i + 2 * k) % cols) as u32);
        }
    }
    let rows = labels.len();
    let pr = Problem::new(z, t, labels, cols);
    for temperature in [0.5, 1.0, 4.0, 20.0, 100.0] {
        for (alpha, eps) in [(0.0, 0.0), (0.5, 0.1), (1.0, 0.0), (0.0, 0.3)] {
            let p = params(temperature, alpha, eps);
            for threads in [1, 4] {
                let (grad, stats) = pr.run(&[pr.fused(true, p, threads)]);
                let what = format!("{p:?} threads={threads}");
                let exact = pr.exact_distill(true, p);
                assert!(
                    stats.loss_sum.is_finite()
                        && stats.hard_sum.is_finite()
                        && stats.soft_sum.is_finite(),
                    "{what}: {stats:?}"
                );
                check_sums(&stats, &exact, p, &what);
                assert!(
                    grad.iter().all(|g| g.is_finite()),
                    "{what}: non-finite grad"
                );
                let grad64: Vec<f32> = exact.grad.iter().map(|&g| g as f32).collect();
                let grad_scale = (alpha * temperature + 1.0) / rows as f32;
                assert_close(
                    &grad,
                    &grad64,
                    1e-5 * grad_scale,
                    1e-3,
                    &format!("grad {what}: atol 1e-5*(alpha*T+1)/B"),
                );
            }
        }
    }
}

#[test]
fn stats_accumulate_over_dispatches_until_reset() {
    let ctx = ctx();
    let pr = Problem::random(7, 10, 70, 4.0);
    let p = params(2.0, 0.5, 0.1);
    let dispatch = prepare_distill_loss(
        ctx,
        &pr.student,
        Some(&pr.teacher),
        &pr.label_tensor,
        &pr.grad,
        &pr.stats,
        p,
    )
    .unwrap();
    let (_, once) = pr.run(std::slice::from_ref(&dispatch));
    let mut enc = ctx.encoder();
    dispatch.encode(&mut enc);
    ctx.submit_and_wait(enc);
    let twice = read_loss_stats(ctx, &pr.stats).unwrap();
    assert_eq!(
        (twice.correct, twice.count),
        (2 * once.correct, 2 * once.count)
    );
    for (name, twice, once) in [
        ("loss", twice.loss_sum, once.loss_sum),
        ("hard", twice.hard_sum, once.hard_sum),
        ("soft", twice.soft_sum, once.soft_sum),
    ] {
        assert!(once > 0.0, "{name} sum {once}");
        // Fixed-point sums: the same examples twice give exactly twice the sum.
        assert_eq!(twice, 2.0 * once, "{name} sum of two dispatches");
    }
    assert_eq!(twice.mean_loss(), once.mean_loss());
    assert_eq!(twice.mean_hard_loss(), once.mean_hard_loss());
    assert_eq!(twice.mean_soft_loss(), once.mean_soft_loss());
    assert_eq!(
        once.mean_hard_loss() * f64::from(once.count),
        once.hard_sum,
        "mean of the hard term"
    );
    assert_eq!(
        LossStats::default().mean_soft_loss(),
        0.0,
        "nothing counted"
    );
    assert_eq!(twice.accuracy(), once.accuracy());
    let mut enc = ctx.encoder();
    reset_loss_stats(&mut enc, &pr.stats);
    ctx.submit_and_wait(enc);
    assert_eq!(
        read_loss_stats(ctx, &pr.stats).unwrap(),
        LossStats::default()
    );
    // The MSE kernel adds into the same kind of stats tensor.
    let mse = prepare_logit_mse(
        ctx,
        &pr.student,
        &pr.teacher,
        &pr.label_tensor,
        &pr.grad,
        &pr.stats,
    )
    .unwrap();
    let mut enc = ctx.encoder();
    mse.encode(&mut enc);
    mse.encode(&mut enc);
    ctx.submit_and_wait(enc);
    let mse_stats = read_loss_stats(ctx, &pr.stats).unwrap();
    assert_eq!(mse_stats.count, 14);
    assert_sum(
        mse_stats.hard_sum,
        2.0 * once.hard_sum,
        1e-5 * once.hard_sum,
        "both kernels add the same hard-label NLL (up to the rounding of each example's value)",
    );
}

#[test]
fn unfused_distill_loss_matches_fused() {
    let ctx = ctx();
    for (rows, cols, teacher, eps) in [
        (1, 1, true, 0.0),
        (7, 10, true, 0.0),
        (7, 13, true, 0.2),
        (129, 33, true, 0.1),
        (33, 1000, true, 0.0),
        (9, 10, false, 0.0),
        (9, 10, false, 0.3),
    ] {
        let pr = Problem::random(rows, cols, (rows + cols) as u64, 8.0);
        let p = params(4.0, if teacher { 0.7 } else { 0.0 }, eps);
        let teacher = teacher.then_some(&pr.teacher);
        let fused = prepare_distill_loss(
            ctx,
            &pr.student,
            teacher,
            &pr.label_tensor,
            &pr.grad,
            &pr.stats,
            p,
        )
        .unwrap();
        let (fused_grad, fused_stats) = pr.run(&[fused]);
        let unfused = prepare_distill_loss_unfused(
            ctx,
            &pr.student,
            teacher,
            &pr.label_tensor,
            &pr.grad,
            &pr.stats,
            p,
        )
        .unwrap();
        let (grad, stats) = pr.run(&unfused);
        let what = format!("[{rows}, {cols}] {p:?}");
        let grad_scale = (p.alpha * p.temperature + 1.0) / rows as f32;
        assert_close(
            &grad,
            &fused_grad,
            1e-5 * grad_scale,
            1e-3,
            &format!("grad {what}: atol 1e-5*(alpha*T+1)/B"),
        );
        let tol = 1e-5 * fused_stats.loss_sum.abs()
            + 1e-5 * rows as f64 * (f64::from(p.alpha) * 16.0 + 1.0);
        assert!(
            (stats.loss_sum - fused_stats.loss_sum).abs() <= tol,
            "loss {what}: unfused {} vs fused {} (tolerance {tol})",
            stats.loss_sum,
            fused_stats.loss_sum
        );
        let exact = pr.exact_distill(teacher.is_some(), p);
        check_sums(&stats, &exact, p, &format!("unfused {what}"));
        assert_eq!(
            (stats.correct, stats.count),
            (fused_stats.correct, fused_stats.count),
            "{what}"
        );
    }
}

#[test]
fn logit_mse_matches_cpu_on_odd_shapes() {
    let ctx = ctx();
    let mut case = 100;
    for (rows, cols) in [(1, 1), (7, 10), (129, 33), (300, 1000), (1, 1000)] {
        case += 1;
        let pr = Problem::random(rows, cols, case, 5.0);
        for threads in [1, 32] {
            let dispatch = prepare_logit_mse_with(
                ctx,
                &pr.student,
                &pr.teacher,
                &pr.label_tensor,
                &pr.grad,
                &pr.stats,
                threads,
            )
            .unwrap();
            let (grad, stats) = pr.run(&[dispatch]);
            let expected = cpu::logit_mse(&pr.z, &pr.t, &pr.labels, cols);
            let what = format!("[{rows}, {cols}] threads={threads}");
            let exact = cpu::logit_mse_f64(&to_f64(&pr.z), &to_f64(&pr.t), &pr.labels, cols);
            check_sums(&stats, &exact, DistillLossParams::HARD_LABELS, &what);
            // The same values summed exactly.
            assert_eq!(
                stats.soft_sum, stats.loss_sum,
                "{what}: the soft term is the MSE"
            );
            assert_close(
                &grad,
                &expected.grad,
                1e-9,
                1e-5,
                &format!("grad {what}: rtol 1e-5"),
            );
            let tol = 1e-5 * f64::from(expected.loss_sum);
            assert!(
                (stats.loss_sum - f64::from(expected.loss_sum)).abs() <= tol,
                "loss {what}: GPU {} vs CPU {} (tolerance {tol})",
                stats.loss_sum,
                expected.loss_sum
            );
            assert_eq!(
                (stats.correct, stats.count),
                (expected.correct, rows as u32),
                "{what}"
            );
        }
    }
}

#[test]
fn labels_past_the_classes_are_clamped_and_never_correct() {
    let ctx = ctx();
    // Row 0's argmax is class 2 (the last); its label 7 is out of range.
    let z = vec![0.0, 1.0, 5.0, 4.0, 1.0, 0.0];
    let t = vec![1.0, 0.0, 2.0, 0.5, 0.5, 0.5];
    let pr = Problem::new(z, t, vec![7, 0], 3);
    let p = params(2.0, 0.5, 0.0);
    let dispatch = prepare_distill_loss(
        ctx,
        &pr.student,
        Some(&pr.teacher),
        &pr.label_tensor,
        &pr.grad,
        &pr.stats,
        p,
    )
    .unwrap();
    let (grad, stats) = pr.run(&[dispatch]);
    let expected = cpu::distill_loss(&pr.z, Some(&pr.t), &pr.labels, 3, p);
    let clamped = cpu::distill_loss(&pr.z, Some(&pr.t), &[2, 0], 3, p);
    assert_eq!(
        expected.grad, clamped.grad,
        "CPU reference clamps the label"
    );
    assert_eq!(
        clamped.correct, 2,
        "with the clamped label both rows would be right"
    );
    assert_close(
        &grad,
        &expected.grad,
        1e-6,
        1e-4,
        "grad: atol 1e-6 rtol 1e-4",
    );
    assert_eq!(
        (stats.correct, stats.count),
        (1, 2),
        "only row 1 counts as correct"
    );
    let loss_sum = f64::from(expected.loss_sum);
    let tol = 1e-5 * loss_sum + rounding(2);
    assert_sum(stats.loss_sum, loss_sum, tol, "loss");
    let hard_sum = f64::from(clamped.hard_sum);
    let tol = 1e-5 * hard_sum + rounding(2);
    assert_sum(
        stats.hard_sum,
        hard_sum,
        tol,
        "the hard NLL uses the clamped label",
    );
}

#[test]
fn bad_settings_and_shapes_are_errors() {
    let ctx = ctx();
    let pr = Problem::random(4, 5, 9, 1.0);
    let prepare = |teacher: Option<&Tensor>, labels: &Tensor, grad: &Tensor, stats: &Tensor, p| {
        prepare_distill_loss(ctx, &pr.student, teacher, labels, grad, stats, p)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let good = params(2.0, 0.5, 0.0);
    for temperature in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = prepare(
            Some(&pr.teacher),
            &pr.label_tensor,
            &pr.grad,
            &pr.stats,
            DistillLossParams {
                temperature,
                ..good
            },
        );
        assert!(err.contains("temperature"), "{err}");
    }
    for alpha in [-0.1, 1.5, f32::NAN] {
        let err = prepare(
            Some(&pr.teacher),
            &pr.label_tensor,
            &pr.grad,
            &pr.stats,
            DistillLossParams { alpha, ..good },
        );
        assert!(err.contains("alpha"), "{err}");
    }
    for label_smoothing in [-0.1, 1.0, f32::NAN] {
        let err = prepare(
            Some(&pr.teacher),
            &pr.label_tensor,
            &pr.grad,
            &pr.stats,
            DistillLossParams {
                label_smoothing,
                ..good
            },
        );
        assert!(
            err.contains("label_smoothing") && err.contains("[0, 1)"),
            "{err}"
        );
    }
    let err = prepare(None, &pr.label_tensor, &pr.grad, &pr.stats, good);
    assert!(err.contains("alpha") && err.contains("teacher"), "{err}");

    let labels5 = Tensor::zeros(ctx, &[5], DType::U32).unwrap();
    let err = prepare(Some(&pr.teacher), &labels5, &pr.grad, &pr.stats, good);
    assert!(err.contains("[4, 5]") && err.contains("[5]"), "{err}");
    let float_labels = Tensor::zeros(ctx, &[4], DType::F32).unwrap();
    let err = prepare(Some(&pr.teacher), &float_labels, &pr.grad, &pr.stats, good);
    assert!(err.contains("U32") && err.contains("F32"), "{err}");
    let teacher = Tensor::zeros(ctx, &[4, 6], DType::F32).unwrap();
    let err = prepare(Some(&teacher), &pr.label_tensor, &pr.grad, &pr.stats, good);
    assert!(err.contains("[4, 5]") && err.contains("[4, 6]"), "{err}");
    let err = prepare(
        Some(&pr.teacher),
        &pr.label_tensor,
        &pr.student,
        &pr.stats,
        good,
    );
    assert!(err.contains("grad") && err.contains("own buffer"), "{err}");
    let expected = format!("[{LOSS_STATS_WORDS}]");
    for words in [5, LOSS_STATS_WORDS - 1, LOSS_STATS_WORDS + 1] {
        let stats = Tensor::zeros(ctx, &[words], DType::U32).unwrap();
        let err = prepare(Some(&pr.teacher), &pr.label_tensor, &pr.grad, &stats, good);
        assert!(
            err.contains("stats") && err.contains(&format!("[{words}]")) && err.contains(&expected),
            "{err}"
        );
        let err = read_loss_stats(ctx, &stats).unwrap_err().to_string();
        assert!(err.contains(&expected), "{err}");
    }

    let err = prepare_logit_mse(
        ctx,
        &pr.student,
        &teacher,
        &pr.label_tensor,
        &pr.grad,
        &pr.stats,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(err.contains("[4, 5]") && err.contains("[4, 6]"), "{err}");
    let err = prepare_distill_loss_unfused(
        ctx,
        &pr.student,
        None,
        &pr.label_tensor,
        &pr.grad,
        &pr.stats,
        good,
    )
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(err.contains("alpha"), "{err}");
}

// --- fixed-point stats ---

impl Problem {
    /// The raw stats words after `dispatches`, starting from `start` (zeros: a reset).
    fn words_from(&self, start: &[u32], dispatches: &[Dispatch]) -> Vec<u32> {
        let ctx = ctx();
        ctx.queue
            .write_buffer(self.stats.buffer(), 0, bytemuck::cast_slice(start));
        let mut enc = ctx.encoder();
        record_all(&mut enc, dispatches);
        ctx.submit_and_wait(enc);
        self.stats.to_u32(ctx).unwrap()
    }

    fn words(&self, dispatches: &[Dispatch]) -> Vec<u32> {
        self.words_from(&[0; LOSS_STATS_WORDS], dispatches)
    }

    fn mse(&self, threads: u32) -> Dispatch {
        prepare_logit_mse_with(
            ctx(),
            &self.student,
            &self.teacher,
            &self.label_tensor,
            &self.grad,
            &self.stats,
            threads,
        )
        .unwrap()
    }

    /// Per-example logit MSE in f32, summing each row in order (exact for the problems below).
    fn mse_per_row(&self) -> Vec<f32> {
        let cols = self.z.len() / self.labels.len();
        self.z
            .chunks(cols)
            .zip(self.t.chunks(cols))
            .map(|(z, t)| {
                z.iter().zip(t).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / cols as f32
            })
            .collect()
    }
}

/// Logit-matching rows whose loss is exact in f32 whatever the summation order: four
/// classes, t = a 2^e and z = (a + d) 2^e with integers |a|, |d| < 64, so every difference,
/// square, partial sum and the division by 4 are exact; e from -12 to 5 spreads the losses
/// from 2^-26 to about 2^22, below and far above the fixed point's 2^-16. The last rows are
/// ties of the rounding: 1.5 and 2.5 times 2^-16.
fn exact_mse_problem(rows: usize, seed: u64) -> Problem {
    let cols = 4;
    let ints = |seed| {
        random_f32(rows * cols, seed, 63.0)
            .into_iter()
            .map(f32::trunc)
    };
    let mut t: Vec<f32> = ints(seed).collect();
    let mut z: Vec<f32> = t.iter().zip(ints(seed + 1)).map(|(a, d)| a + d).collect();
    for r in 0..rows {
        let scale = 2f32.powi(r as i32 % 18 - 12);
        for i in r * cols..(r + 1) * cols {
            t[i] *= scale;
            z[i] *= scale;
        }
    }
    let ties: [[f32; 4]; 2] = [[1.0, 1.0, 2.0, 0.0], [1.0, 3.0, 0.0, 0.0]];
    for (row, diffs) in ties.iter().enumerate() {
        let base = (rows - 1 - row) * cols;
        for (j, d) in diffs.iter().enumerate() {
            t[base + j] = 0.5;
            z[base + j] = 0.5 + d / 256.0;
        }
    }
    Problem::new(z, t, random_labels(rows, cols, seed + 2), cols)
}

#[test]
fn fixed_point_rounds_to_nearest_even_and_rejects_what_it_cannot_add() {
    let quantum = 1.0 / 65536.0;
    for (value, want) in [
        (0.0, Some(0)),
        (-0.0, Some(0)),
        (-1.0 / 1024.0, Some(0)),
        (0.4 * quantum, Some(0)),
        (0.5 * quantum, Some(0)),
        (1.5 * quantum, Some(2)),
        (2.5 * quantum, Some(2)),
        (2.5000002 * quantum, Some(3)),
        (1.0, Some(65536)),
        (LOSS_EXAMPLE_LIMIT, Some(1 << 40)),
        (-0.001, None),
        (-1.0, None),
        (LOSS_EXAMPLE_LIMIT.next_up(), None),
        (f32::INFINITY, None),
        (f32::NEG_INFINITY, None),
        (f32::NAN, None),
        (-f32::NAN, None),
    ] {
        assert_eq!(cpu::fixed_point(value), want, "fixed_point({value:e})");
    }
    // 64-bit wrapping sums with a flag once they pass 2^64.
    let mut sum = cpu::FixedPointSum {
        total: u64::MAX - 65535,
        overflow: false,
    };
    sum.add(0.5);
    assert_eq!((sum.total, sum.overflow), (u64::MAX - 32767, false));
    sum.add(1.0);
    assert_eq!((sum.total, sum.overflow), (32768, true));
    assert_eq!(sum.words(), [32768, 0]);
    let words = cpu::stats_words(&[1.0, f32::NAN], &[0.5], &[], 3, 4);
    assert_eq!(words, [65536, 0, 32768, 0, 0, 0, 3, 4, 0b001]);
}

#[test]
fn loss_stats_are_exact_and_repeat_bit_for_bit() {
    let pr = exact_mse_problem(300, 80);
    let losses = pr.mse_per_row();
    let f64_losses = cpu::logit_mse_f64(&to_f64(&pr.z), &to_f64(&pr.t), &pr.labels, 4).losses;
    for (r, (&l32, &l64)) in losses.iter().zip(&f64_losses).enumerate() {
        assert_eq!(f64::from(l32), l64, "row {r}: the f32 loss must be exact");
    }
    let want = cpu::FixedPointSum::of(&losses).words();
    for threads in [1, 4] {
        let dispatch = pr.mse(threads);
        let first = pr.words(std::slice::from_ref(&dispatch));
        assert_eq!(first[0..2], want, "loss words, threads={threads}");
        assert_eq!(first[4..6], want, "soft words, threads={threads}");
        assert_eq!(first[6..], [first[6], 300, 0], "count and flags");
        for run in 0..20 {
            let again = pr.words(std::slice::from_ref(&dispatch));
            assert_eq!(again, first, "threads={threads} run {run}");
        }
        // Five dispatches without a reset add up exactly.
        let five = pr.words(&(0..5).map(|_| pr.mse(threads)).collect::<Vec<_>>());
        let repeated: Vec<f32> = (0..5).flat_map(|_| losses.iter().copied()).collect();
        assert_eq!(five[0..2], cpu::FixedPointSum::of(&repeated).words());
    }

    // The distillation loss, fused and unfused, on rows of varied magnitude: the same words
    // on every run (its per-example values are not exact, so only repeatability is checked).
    let mut pr = Problem::random(300, 37, 81, 3.0);
    for (i, (z, t)) in pr.z.iter_mut().zip(pr.t.iter_mut()).enumerate() {
        let scale = [0.01, 1.0, 30.0, 1000.0][i / 37 % 4];
        (*z, *t) = (*z * scale, *t * scale);
    }
    let pr = Problem::new(pr.z, pr.t, pr.labels, 37);
    let p = params(4.0, 0.7, 0.1);
    let unfused = prepare_distill_loss_unfused(
        ctx(),
        &pr.student,
        Some(&pr.teacher),
        &pr.label_tensor,
        &pr.grad,
        &pr.stats,
        p,
    )
    .unwrap();
    for (name, dispatches) in [
        ("fused threads=1", vec![pr.fused(true, p, 1)]),
        ("fused threads=8", vec![pr.fused(true, p, 8)]),
        ("unfused", unfused),
    ] {
        let first = pr.words(&dispatches);
        assert_eq!(first[7..], [300, 0], "{name}: count and flags");
        assert!(
            [0, 2, 4].iter().all(|&i| first[i] != 0),
            "{name}: {first:?}"
        );
        for run in 0..10 {
            assert_eq!(pr.words(&dispatches), first, "{name} run {run}");
        }
    }
}

#[test]
fn an_example_out_of_range_sets_its_sums_flag_and_reads_as_infinite() {
    let ctx = ctx();
    // Per-example MSE with t = 0 and two classes: 0.5, exactly 2^24 (the limit: added),
    // about 2^24 + 2^12 (too large), +inf, NaN, 0.5.
    let z = vec![
        1.0,
        0.0,
        4096.0,
        4096.0,
        4096.0,
        4097.0,
        f32::INFINITY,
        0.0,
        f32::NAN,
        1.0,
        0.0,
        1.0,
    ];
    let pr = Problem::new(z, vec![0.0; 12], vec![0, 1, 1, 0, 0, 1], 2);
    let losses = pr.mse_per_row();
    assert_eq!(losses[1], LOSS_EXAMPLE_LIMIT);
    let words = pr.words(&[pr.mse(1)]);
    let want = cpu::FixedPointSum::of(&losses);
    assert!(want.overflow);
    assert_eq!(words[0..2], want.words(), "loss words: the rows in range");
    assert_eq!(
        fixed_point_value(words[0], words[1]),
        1.0 + f64::from(LOSS_EXAMPLE_LIMIT)
    );
    assert_eq!(words[4..6], want.words(), "soft words");
    assert_eq!(
        words[8] & 0b101,
        0b101,
        "loss and soft flags: {:#b}",
        words[8]
    );
    let stats = read_loss_stats(ctx, &pr.stats).unwrap();
    assert_eq!(stats.loss_sum, f64::INFINITY);
    assert_eq!(stats.soft_sum, f64::INFINITY);
    assert!(
        !stats.mean_loss().is_finite(),
        "a training loop sees a non-finite loss"
    );
    assert_eq!(stats.count, 6);

    // A NaN in the distillation loss sets the loss flag too; the hard sum of rows in range
    // stays finite.
    let mut z = random_f32(3 * 5, 90, 2.0);
    z[7] = f32::NAN;
    let pr = Problem::new(z, random_f32(15, 91, 2.0), vec![0, 1, 2], 5);
    let (_, stats) = pr.run(&[pr.fused(true, params(2.0, 0.5, 0.0), 1)]);
    assert_eq!(stats.loss_sum, f64::INFINITY, "{stats:?}");
    let words = pr.stats.to_u32(ctx).unwrap();
    assert_eq!(words[8] & 1, 1, "loss flag: {words:?}");
    // One clean row alone: no flag.
    let pr = Problem::random(1, 5, 92, 2.0);
    let (_, stats) = pr.run(&[pr.fused(true, params(2.0, 0.5, 0.0), 1)]);
    assert!(stats.loss_sum.is_finite() && stats.hard_sum.is_finite() && stats.soft_sum.is_finite());
}

#[test]
fn the_low_word_carries_into_the_high_word_exactly() {
    // One class, t = 0: each loss is z^2. 255.875^2 = 65472.015625 is 2^32 - 4193280 in
    // fixed point (a low word that wraps at the second add); 1023.75^2 = 1048064.0625 has a
    // high word of 15 and a low word 2^25 short of wrapping.
    let rows = 400;
    let z: Vec<f32> = (0..rows)
        .map(|r| if r % 2 == 0 { 255.875 } else { 1023.75 })
        .collect();
    let pr = Problem::new(z, vec![0.0; rows], vec![0; rows], 1);
    let (small, large) = (255.875f32 * 255.875, 1023.75f32 * 1023.75);
    assert_eq!(f64::from(small), 255.875f64 * 255.875, "exact in f32");
    assert_eq!(f64::from(large), 1023.75f64 * 1023.75, "exact in f32");
    assert_eq!(cpu::fixed_point(small), Some((1 << 32) - 4193280));
    assert_eq!(cpu::fixed_point(large), Some((16 << 32) - (1 << 25) + 4096));
    let exact = 200.0 * f64::from(small) + 200.0 * f64::from(large);
    for threads in [1, 8] {
        let words = pr.words(&[pr.mse(threads)]);
        assert_eq!(
            words[0..2],
            cpu::FixedPointSum::of(&pr.mse_per_row()).words()
        );
        assert_eq!(
            fixed_point_value(words[0], words[1]),
            exact,
            "threads={threads}"
        );
        assert_eq!(words[8], 0, "no flag");
    }

    // Starting just below a wrap of the low word: the carry reaches the high word; starting
    // at the top of the high word: the sum passes 2^48 and sets the flag.
    let one = Problem::new(vec![1.0], vec![0.0], vec![0], 1);
    let mut start = [0; LOSS_STATS_WORDS];
    start[0..2].copy_from_slice(&[u32::MAX - 5, 7]);
    let words = one.words_from(&start, &[one.mse(1)]);
    assert_eq!(words[0..2], [65530, 8]);
    assert_eq!(words[8], 0);
    start[0..2].copy_from_slice(&[u32::MAX - 5, u32::MAX]);
    let words = one.words_from(&start, &[one.mse(1)]);
    assert_eq!(words[0..2], [65530, 0]);
    assert_eq!(words[8], 0b001, "loss flag only");
    let stats = read_loss_stats(ctx(), &one.stats).unwrap();
    assert_eq!(stats.loss_sum, f64::INFINITY);
}
