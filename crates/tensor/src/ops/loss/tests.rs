use super::*;
use crate::kernel::{Dispatch, record_all};
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

#[test]
fn distill_gradient_matches_finite_differences_on_cpu() {
    let (rows, cols) = (3, 5);
    let labels = [4, 0, 2];
    let z = to_f64(&random_f32(rows * cols, 1, 3.0));
    let t = to_f64(&random_f32(rows * cols, 2, 3.0));
    for temperature in [0.5, 1.0, 4.0, 20.0] {
        for alpha in [0.0, 0.3, 1.0] {
            let what = format!("T={temperature} alpha={alpha}");
            let (_, grad) = cpu::distill_loss_f64(&z, Some(&t), &labels, cols, temperature, alpha);
            let mean_loss = |zz: &[f64]| {
                let (losses, _) =
                    cpu::distill_loss_f64(zz, Some(&t), &labels, cols, temperature, alpha);
                losses.iter().sum::<f64>() / rows as f64
            };
            check_finite_differences(&z, &grad, 1e-7, &what, mean_loss);
            // The f32 reference (the kernels' formulas) against the f64 definition.
            let z32: Vec<f32> = z.iter().map(|&v| v as f32).collect();
            let t32: Vec<f32> = t.iter().map(|&v| v as f32).collect();
            let out = cpu::distill_loss(
                &z32,
                Some(&t32),
                &labels,
                cols,
                temperature as f32,
                alpha as f32,
            );
            let grad32: Vec<f32> = grad.iter().map(|&g| g as f32).collect();
            assert_close(
                &out.grad,
                &grad32,
                1e-6,
                1e-4,
                &format!("f32 grad {what}, atol 1e-6 rtol 1e-4"),
            );
            let (losses, _) =
                cpu::distill_loss_f64(&z, Some(&t), &labels, cols, temperature, alpha);
            let sum: f64 = losses.iter().sum();
            assert!(
                (f64::from(out.loss_sum) - sum).abs() <= 1e-5 * (sum.abs() + 1.0),
                "f32 loss {what}: {} vs f64 {sum} (tolerance 1e-5 relative)",
                out.loss_sum
            );
        }
    }
}

#[test]
fn logit_mse_gradient_matches_finite_differences_on_cpu() {
    let (rows, cols) = (4, 3);
    let z = to_f64(&random_f32(rows * cols, 3, 2.0));
    let t = to_f64(&random_f32(rows * cols, 4, 2.0));
    let (_, grad) = cpu::logit_mse_f64(&z, &t, cols);
    check_finite_differences(&z, &grad, 1e-8, "logit mse", |zz| {
        cpu::logit_mse_f64(zz, &t, cols).0.iter().sum::<f64>() / rows as f64
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

#[test]
fn fused_distill_loss_matches_cpu_on_odd_shapes() {
    let ctx = ctx();
    let mut case = 0;
    for rows in [1, 7, 129, 300] {
        for cols in [1, 10, 33, 1000] {
            case += 1;
            let pr = Problem::random(rows, cols, case, 6.0);
            let p = DistillLossParams {
                temperature: [0.5, 1.0, 4.0, 20.0][case as usize % 4],
                alpha: [0.0, 0.5, 0.9, 1.0][case as usize / 4 % 4],
            };
            let threads = [1, 8, 64][case as usize % 3];
            let dispatch = prepare_distill_loss_with(
                ctx,
                &pr.student,
                Some(&pr.teacher),
                &pr.label_tensor,
                &pr.grad,
                &pr.stats,
                p,
                threads,
            )
            .unwrap();
            let (grad, stats) = pr.run(&[dispatch]);
            let expected =
                cpu::distill_loss(&pr.z, Some(&pr.t), &pr.labels, cols, p.temperature, p.alpha);
            let what = format!("[{rows}, {cols}] {p:?} threads={threads}");
            let grad_scale = (p.alpha * p.temperature + 1.0) / rows as f32;
            assert_close(
                &grad,
                &expected.grad,
                1e-5 * grad_scale,
                1e-3,
                &format!("grad {what}: atol 1e-5*(alpha*T+1)/B, rtol 1e-3"),
            );
            let (losses, _) = cpu::distill_loss_f64(
                &to_f64(&pr.z),
                Some(&to_f64(&pr.t)),
                &pr.labels,
                cols,
                f64::from(p.temperature),
                f64::from(p.alpha),
            );
            let abs_sum: f64 = losses.iter().map(|l| l.abs()).sum();
            let tol = loss_tolerance(abs_sum, rows, p);
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
fn hard_label_only_distill_loss_matches_cpu() {
    let ctx = ctx();
    let pr = Problem::random(129, 10, 50, 5.0);
    let p = DistillLossParams {
        temperature: 3.0,
        alpha: 0.0,
    };
    for threads in [1, 16] {
        let dispatch = prepare_distill_loss_with(
            ctx,
            &pr.student,
            None,
            &pr.label_tensor,
            &pr.grad,
            &pr.stats,
            p,
            threads,
        )
        .unwrap();
        let (grad, stats) = pr.run(&[dispatch]);
        let expected = cpu::distill_loss(&pr.z, None, &pr.labels, 10, 3.0, 0.0);
        assert_close(
            &grad,
            &expected.grad,
            1e-7,
            1e-3,
            "hard-label grad, atol 1e-7 rtol 1e-3",
        );
        assert!(
            (stats.loss_sum - f64::from(expected.loss_sum)).abs()
                <= 1e-4 * f64::from(expected.loss_sum),
            "hard-label loss {} vs {} (tolerance 1e-4 relative)",
            stats.loss_sum,
            expected.loss_sum
        );
        assert_eq!(stats.correct, expected.correct);
    }
}

#[test]
fn distill_loss_is_exact_at_extreme_logits_and_temperatures() {
    let ctx = ctx();
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
        for alpha in [0.0, 0.5, 1.0] {
            let p = DistillLossParams { temperature, alpha };
            for threads in [1, 4] {
                let dispatch = prepare_distill_loss_with(
                    ctx,
                    &pr.student,
                    Some(&pr.teacher),
                    &pr.label_tensor,
                    &pr.grad,
                    &pr.stats,
                    p,
                    threads,
                )
                .unwrap();
                let (grad, stats) = pr.run(&[dispatch]);
                let what = format!("{p:?} threads={threads}");
                let (losses, grad64) = cpu::distill_loss_f64(
                    &to_f64(&pr.z),
                    Some(&to_f64(&pr.t)),
                    &pr.labels,
                    cols,
                    f64::from(temperature),
                    f64::from(alpha),
                );
                let sum: f64 = losses.iter().sum();
                let abs_sum: f64 = losses.iter().map(|l| l.abs()).sum();
                let tol = loss_tolerance(abs_sum, rows, p);
                assert!(
                    stats.loss_sum.is_finite(),
                    "{what}: loss {}",
                    stats.loss_sum
                );
                assert!(
                    (stats.loss_sum - sum).abs() <= tol,
                    "{what}: GPU loss {} vs f64 {sum} (tolerance {tol})",
                    stats.loss_sum
                );
                assert!(
                    grad.iter().all(|g| g.is_finite()),
                    "{what}: non-finite grad"
                );
                let grad64: Vec<f32> = grad64.iter().map(|&g| g as f32).collect();
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
    let p = DistillLossParams {
        temperature: 2.0,
        alpha: 0.5,
    };
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
    assert!(
        (twice.loss_sum - 2.0 * once.loss_sum).abs() <= 1e-5 * once.loss_sum.abs(),
        "two dispatches: {} vs 2 x {} (tolerance 1e-5 relative)",
        twice.loss_sum,
        once.loss_sum
    );
    assert!((twice.mean_loss() - once.mean_loss()).abs() <= 1e-5 * once.mean_loss().abs());
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
    assert_eq!(read_loss_stats(ctx, &pr.stats).unwrap().count, 14);
}

#[test]
fn unfused_distill_loss_matches_fused() {
    let ctx = ctx();
    for (rows, cols, teacher) in [
        (1, 1, true),
        (7, 10, true),
        (129, 33, true),
        (33, 1000, true),
        (9, 10, false),
    ] {
        let pr = Problem::random(rows, cols, (rows + cols) as u64, 8.0);
        let p = DistillLossParams {
            temperature: 4.0,
            alpha: if teacher { 0.7 } else { 0.0 },
        };
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
    let p = DistillLossParams {
        temperature: 2.0,
        alpha: 0.5,
    };
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
    let expected = cpu::distill_loss(&pr.z, Some(&pr.t), &pr.labels, 3, 2.0, 0.5);
    let clamped = cpu::distill_loss(&pr.z, Some(&pr.t), &[2, 0], 3, 2.0, 0.5);
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
    assert!(
        (stats.loss_sum - f64::from(expected.loss_sum)).abs()
            <= 1e-5 * f64::from(expected.loss_sum)
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
    let good = DistillLossParams {
        temperature: 2.0,
        alpha: 0.5,
    };
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
    let stats = Tensor::zeros(ctx, &[3], DType::U32).unwrap();
    let err = prepare(Some(&pr.teacher), &pr.label_tensor, &pr.grad, &stats, good);
    assert!(err.contains("stats") && err.contains("[3]"), "{err}");

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
