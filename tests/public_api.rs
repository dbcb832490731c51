//! Drives matmul and the distillation loss through the public API only, and holds them to
//! float64 computations: matmul to sums written here, the loss to the float64 reference
//! `ops::loss::cpu::distill_loss_f64`.

use darkknowledge::tensor::ops::loss::{
    DistillLossParams, cpu, new_loss_stats, prepare_distill_loss, read_loss_stats,
};
use darkknowledge::tensor::ops::matmul::{MatmulOptions, prepare_matmul};
use darkknowledge::tensor::testing::{ctx, random_f32};
use darkknowledge::tensor::{DType, Tensor};

/// op(A)[i][p] for A stored row-major, transposed or not.
fn at(a: &[f32], rows: usize, cols: usize, trans: bool, i: usize, p: usize) -> f64 {
    // op(A) is rows x cols; storage is cols x rows when transposed.
    f64::from(if trans {
        a[p * rows + i]
    } else {
        a[i * cols + p]
    })
}

fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| f64::from(v)).collect()
}

#[test]
fn matmul_matches_float64_in_every_layout() {
    let ctx = ctx();
    for &(m, k, n) in &[(1, 1, 1), (7, 13, 5), (129, 65, 33), (300, 70, 11)] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = random_f32(m * k, (m * 31 + k) as u64, 1.0);
            let b = random_f32(k * n, (k * 17 + n) as u64, 1.0);
            let bias = random_f32(n, 5, 1.0);
            let a_shape = if trans_a { [k, m] } else { [m, k] };
            let b_shape = if trans_b { [n, k] } else { [k, n] };
            let ta = Tensor::from_f32(ctx, &a, &a_shape).unwrap();
            let tb = Tensor::from_f32(ctx, &b, &b_shape).unwrap();
            let tbias = Tensor::from_f32(ctx, &bias, &[n]).unwrap();
            let tc = Tensor::zeros(ctx, &[m, n], DType::F32).unwrap();
            let opts = MatmulOptions {
                trans_a,
                trans_b,
                bias: Some(&tbias),
                relu: true,
                ..Default::default()
            };
            let mut enc = ctx.encoder();
            prepare_matmul(ctx, &ta, &tb, &tc, &opts)
                .unwrap()
                .encode(&mut enc);
            ctx.submit_and_wait(enc);
            let got = tc.to_f32(ctx).unwrap();
            for i in 0..m {
                for j in 0..n {
                    let mut sum = f64::from(bias[j]);
                    for p in 0..k {
                        // op(B)[p][j]: B is k x n, or stored n x k when transposed.
                        let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                        sum += at(&a, m, k, trans_a, i, p) * f64::from(bv);
                    }
                    let want = sum.max(0.0);
                    let tol = 1e-4 * (k as f64).sqrt() * (1.0 + want.abs());
                    let g = f64::from(got[i * n + j]);
                    assert!(
                        (g - want).abs() <= tol,
                        "{m}x{k}x{n} trans=({trans_a},{trans_b}) at ({i},{j}): {g} vs {want} (tol {tol})"
                    );
                }
            }
        }
    }
}

#[test]
fn distillation_loss_matches_float64_including_extreme_logits() {
    let ctx = ctx();
    let (rows, cols) = (37, 10);
    for &scale in &[3.0f32, 1e4] {
        for &t in &[0.5f64, 1.0, 4.0, 20.0, 100.0] {
            let alpha = 0.7f64;
            let z = random_f32(rows * cols, 11, scale);
            let teacher = random_f32(rows * cols, 12, scale);
            let labels: Vec<u32> = (0..rows as u32).map(|i| (i * 7) % cols as u32).collect();
            let tz = Tensor::from_f32(ctx, &z, &[rows, cols]).unwrap();
            let tt = Tensor::from_f32(ctx, &teacher, &[rows, cols]).unwrap();
            let ty = Tensor::from_u32(ctx, &labels, &[rows]).unwrap();
            let grad = Tensor::zeros(ctx, &[rows, cols], DType::F32).unwrap();
            let stats = new_loss_stats(ctx).unwrap();
            let params = DistillLossParams {
                temperature: t as f32,
                alpha: alpha as f32,
                label_smoothing: 0.0,
            };
            let mut enc = ctx.encoder();
            prepare_distill_loss(ctx, &tz, Some(&tt), &ty, &grad, &stats, params)
                .unwrap()
                .encode(&mut enc);
            ctx.submit_and_wait(enc);
            let got_grad = grad.to_f32(ctx).unwrap();
            let got = read_loss_stats(ctx, &stats).unwrap();

            let exact =
                cpu::distill_loss_f64(&to_f64(&z), Some(&to_f64(&teacher)), &labels, cols, params);
            let (loss_sum, hard_sum, kl_sum) = (
                exact.losses.iter().sum::<f64>(),
                exact.hard.iter().sum::<f64>(),
                exact.soft.iter().sum::<f64>(),
            );
            for (i, (&got, &want)) in got_grad.iter().zip(&exact.grad).enumerate() {
                let g = f64::from(got);
                assert!(g.is_finite(), "T={t} scale={scale}: gradient not finite");
                let tol = 1e-5 * (1.0 + alpha * t) / rows as f64 + 1e-4 * want.abs();
                assert!(
                    (g - want).abs() <= tol,
                    "T={t} scale={scale} row {} col {}: grad {g} vs {want} (tol {tol})",
                    i / cols,
                    i % cols
                );
            }
            assert!(
                got.loss_sum.is_finite(),
                "T={t} scale={scale}: loss not finite"
            );
            let tol = 1e-4 * loss_sum.abs() + 1e-3;
            assert!(
                (got.loss_sum - loss_sum).abs() <= tol,
                "T={t} scale={scale}: loss sum {} vs {loss_sum} (tol {tol})",
                got.loss_sum
            );
            for (name, got, want) in [
                ("hard", got.hard_sum, hard_sum),
                ("KL", got.soft_sum, kl_sum),
            ] {
                let tol = 1e-4 * want.abs() + 1e-3;
                assert!(
                    (got - want).abs() <= tol,
                    "T={t} scale={scale}: {name} sum {got} vs {want} (tol {tol})"
                );
            }
            assert_eq!(got.count, rows as u32);
        }
    }
}
