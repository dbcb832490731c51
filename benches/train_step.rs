//! One whole training step (forward, loss, backward, Adam update) per iteration, reported
//! as examples per second. Each iteration records, submits and waits, so the GPU work is
//! inside the timed region. The `training_loop` group sets the quick preset's teacher
//! (`1x28x28-c8k5-p2-c16k5-p2-10`) step alone against whole epochs of the run's own training loop (shuffles, gathers,
//! statistics reads, validation) on random images.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use darkknowledge::distill::driver::loop_bench::LoopBench;
use darkknowledge::nn::{Model, ModelSpec, Optimizer, TrainConfig, Trainer};
use darkknowledge::tensor::{GpuContext, Tensor};

const MODELS: &[(&str, &[usize])] = &[
    ("784-1200-1200-10", &[128, 256]),
    ("784-800-800-10", &[128, 256]),
    ("1x28x28-c16k5-p2-c32k5-p2-10", &[128]),
    // The default preset's teacher, and the quick preset's (the reference of the
    // training_loop group).
    ("1x28x28-c16k3-c16k3-p2-c32k3-c32k3-p2-256-10", &[128]),
    ("1x28x28-c8k5-p2-c16k5-p2-10", &[128]),
    // The default preset's student and the quick preset's.
    ("784-256-256-10", &[128]),
    ("784-64-10", &[128]),
];

/// Images of the epochs timed by the training_loop group: 50 steps of 128, validated on
/// 1,000 images (the preset's split keeps the same share of statistics reads per step).
const LOOP_TRAIN_IMAGES: usize = 6_400;
const LOOP_VALIDATION_IMAGES: usize = 1_000;

fn train_step(c: &mut Criterion) {
    let ctx = GpuContext::new().expect("a GPU adapter (or Mesa's lavapipe) is needed");
    let mut group = c.benchmark_group(format!("train_step ({})", ctx.summary));
    if ctx.summary.is_cpu {
        // A software adapter takes about a second per step of the larger models.
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5));
    }
    for &(text, batches) in MODELS {
        let spec = ModelSpec::parse(text).expect("benchmark spec");
        for &batch in batches {
            let model = Model::new(&ctx, spec.clone(), 1).expect("model");
            let inputs = Tensor::from_f32(
                &ctx,
                &pixel_pattern(batch * spec.input_len()),
                &[batch, spec.input_len()],
            )
            .expect("inputs");
            let labels: Vec<u32> = (0..batch as u32)
                .map(|i| i % spec.classes() as u32)
                .collect();
            let labels = Tensor::from_u32(&ctx, &labels, &[batch]).expect("labels");
            let mut trainer = Trainer::new(
                &ctx,
                &model,
                &inputs,
                &labels,
                None,
                TrainConfig::new(Optimizer::adam(1e-3)),
            )
            .expect("trainer");
            // Compile pipelines and touch every buffer before timing.
            trainer.step(&ctx);
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(BenchmarkId::new(text, format!("batch {batch}")), |b| {
                b.iter(|| trainer.step(&ctx))
            });
        }
    }
    group.finish();
}

/// Whole epochs of the quick preset's teacher in the run's training loop; compare its
/// examples/s with `train_step/1x28x28-c8k5-p2-c16k5-p2-10/batch 128`, the same step alone.
fn training_loop(c: &mut Criterion) {
    let ctx = GpuContext::new().expect("a GPU adapter (or Mesa's lavapipe) is needed");
    let bench = LoopBench::quick_teacher(&ctx, LOOP_TRAIN_IMAGES, LOOP_VALIDATION_IMAGES)
        .expect("training loop setup");
    let mut group = c.benchmark_group(format!("training_loop ({})", ctx.summary));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10));
    let steps = bench.steps_per_epoch();
    group.throughput(Throughput::Elements((steps * bench.batch) as u64));
    let name = format!("{} epoch", bench.spec);
    let shape = format!("{steps} steps + validation");
    group.bench_function(BenchmarkId::new(name, shape), |b| {
        // One model trained `iters` epochs; only the epochs' own time counts.
        b.iter_custom(|iters| {
            let epochs = bench.time_epochs(&ctx, iters as usize).expect("epochs");
            Duration::from_secs_f64(epochs.iter().sum())
        })
    });
    group.finish();
}

/// Inputs in [0, 1), like scaled pixels; the values do not affect the timing.
fn pixel_pattern(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 256) as f32 / 256.0).collect()
}

criterion_group!(benches, train_step, training_loop);
criterion_main!(benches);
