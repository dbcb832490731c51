//! One whole training step (forward, loss, backward, Adam update) per iteration, reported
//! as examples per second. Each iteration records, submits and waits, so the GPU work is
//! inside the timed region.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use darkknowledge::nn::{Model, ModelSpec, Optimizer, TrainConfig, Trainer};
use darkknowledge::tensor::{GpuContext, Tensor};

const MODELS: &[(&str, &[usize])] = &[
    ("784-1200-1200-10", &[128, 256]),
    ("784-800-800-10", &[128, 256]),
    ("1x28x28-c16k5-p2-c32k5-p2-10", &[128]),
];

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

/// Inputs in [0, 1), like scaled pixels; the values do not affect the timing.
fn pixel_pattern(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7919) % 256) as f32 / 256.0).collect()
}

criterion_group!(benches, train_step);
criterion_main!(benches);
