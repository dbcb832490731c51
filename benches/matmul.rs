//! Matmul throughput on the current adapter, over the products `cargo xtask bench` measures
//! too (`dk_tensor::testing::matmul_bench_cases`): square products and the layer products of
//! a 784-1200 layer and a 1200-10 classifier at batch 128 in the layouts training uses, each
//! with the automatic choice (on CPU adapters also with its operands in storage) and every
//! fixed variant. Criterion reports FLOP/s (2 m n k per product); each iteration submits the
//! work and waits for it.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dk_tensor::GpuContext;
use dk_tensor::ops::matmul::MatmulLaunch;
use dk_tensor::ops::matmul::tune_matmul;
use dk_tensor::testing::matmul_bench_cases;

fn run(ctx: &GpuContext, launch: &MatmulLaunch) {
    let mut encoder = ctx.encoder();
    launch.encode(&mut encoder);
    ctx.submit_and_wait(encoder);
}

fn bench_matmul(c: &mut Criterion) {
    let ctx = GpuContext::new().expect("a GPU adapter (or lavapipe)");
    let tuning = tune_matmul(&ctx).unwrap();
    eprintln!("{}: {tuning}", ctx.summary);
    for t in &tuning.timings {
        eprintln!(
            "  tuning {:>6} {:<12} {:8.3} ms  {:6.2} GFLOP/s",
            t.class.name(),
            t.variant.name(),
            t.seconds * 1e3,
            t.gflops()
        );
    }

    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    let is_cpu = ctx.summary.is_cpu;
    for case in matmul_bench_cases(is_cpu) {
        let operands = case.operands(&ctx).unwrap();
        group.throughput(Throughput::Elements(case.flops()));
        for case_run in case.runs(is_cpu) {
            let launch = case.prepare(&ctx, &operands, case_run).unwrap();
            group.bench_function(BenchmarkId::new(case_run.name(), case.shape()), |bench| {
                bench.iter(|| run(&ctx, &launch))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
