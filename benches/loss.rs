//! The fused distillation loss against the same loss from simple kernels
//! (log-softmax x3, argmax, elementwise terms, row reduction).
//!
//! GPU work is inside the timed region: each timed batch records up to 50 loss evaluations
//! into one encoder, submits and waits. Throughput counts the compulsory traffic (read z and
//! t, write the gradient: 12 bytes per element), the same for both variants.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dk_tensor::ops::loss::{
    DistillLossParams, new_loss_stats, prepare_distill_loss, prepare_distill_loss_unfused,
};
use dk_tensor::{DType, Dispatch, GpuContext, Tensor, record_all};

const SHAPES: [(usize, usize); 3] = [(128, 10), (256, 10), (128, 1000)];
const PER_SUBMIT: u64 = 50;

fn time_dispatches(ctx: &GpuContext, dispatches: &[Dispatch], iters: u64) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let reps = left.min(PER_SUBMIT);
        let mut encoder = ctx.encoder();
        for _ in 0..reps {
            record_all(&mut encoder, dispatches);
        }
        ctx.submit_and_wait(encoder);
        left -= reps;
    }
    start.elapsed()
}

fn pseudo_random(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(0x9E37_79B9).rotate_left(13);
            (h % 2001) as f32 / 200.0 - 5.0
        })
        .collect()
}

fn bench_distill_loss(c: &mut Criterion) {
    let ctx = GpuContext::new().expect("a GPU adapter (or lavapipe)");
    println!("adapter: {}", ctx.summary);
    for (rows, cols) in SHAPES {
        let z = Tensor::from_f32(&ctx, &pseudo_random(rows * cols, 1), &[rows, cols]).unwrap();
        let t = Tensor::from_f32(&ctx, &pseudo_random(rows * cols, 2), &[rows, cols]).unwrap();
        let labels: Vec<u32> = (0..rows as u32).map(|r| r % cols as u32).collect();
        let labels = Tensor::from_u32(&ctx, &labels, &[rows]).unwrap();
        let grad = Tensor::zeros(&ctx, &[rows, cols], DType::F32).unwrap();
        let stats = new_loss_stats(&ctx).unwrap();
        let p = DistillLossParams::distill(4.0, 0.9);
        let fused = prepare_distill_loss(&ctx, &z, Some(&t), &labels, &grad, &stats, p).unwrap();
        let unfused =
            prepare_distill_loss_unfused(&ctx, &z, Some(&t), &labels, &grad, &stats, p).unwrap();

        let mut group = c.benchmark_group(format!("distill_loss/{rows}x{cols}"));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Bytes((rows * cols * 12) as u64));
        group.bench_function("fused", |b| {
            b.iter_custom(|iters| time_dispatches(&ctx, std::slice::from_ref(&fused), iters))
        });
        group.bench_function("unfused", |b| {
            b.iter_custom(|iters| time_dispatches(&ctx, &unfused, iters))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_distill_loss);
criterion_main!(benches);
