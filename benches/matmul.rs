//! Matmul throughput on the current adapter: every variant and the automatic choice on square
//! products, and the automatic choice on the layer shapes of a 784-1200-1200-10 MLP at batch
//! 128 with the layouts its forward and backward passes use. Criterion reports FLOP/s
//! (2 m n k per product); each iteration submits the work and waits for it.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dk_tensor::ops::matmul::{MatmulOptions, MatmulVariant, prepare_matmul, tune_matmul};
use dk_tensor::testing::random_f32;
use dk_tensor::{DType, Dispatch, GpuContext, Tensor};

/// Operands of one product, kept alive while its dispatch is timed.
struct Problem {
    _a: Tensor,
    _b: Tensor,
    _c: Tensor,
    flops: u64,
}

/// Allocate op(A) [m, k], op(B) [k, n] in the stored layouts and prepare the product.
fn problem(ctx: &GpuContext, [m, n, k]: [usize; 3], opts: &MatmulOptions) -> (Problem, Dispatch) {
    let a_shape = if opts.trans_a { [k, m] } else { [m, k] };
    let b_shape = if opts.trans_b { [n, k] } else { [k, n] };
    let a = Tensor::from_f32(ctx, &random_f32(m * k, 1, 1.0), &a_shape).unwrap();
    let b = Tensor::from_f32(ctx, &random_f32(k * n, 2, 1.0), &b_shape).unwrap();
    let c = Tensor::zeros(ctx, &[m, n], DType::F32).unwrap();
    let dispatch = prepare_matmul(ctx, &a, &b, &c, opts).unwrap();
    let flops = 2 * (m * n * k) as u64;
    (
        Problem {
            _a: a,
            _b: b,
            _c: c,
            flops,
        },
        dispatch,
    )
}

fn run(ctx: &GpuContext, dispatch: &Dispatch) {
    let mut encoder = ctx.encoder();
    dispatch.encode(&mut encoder);
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

    let mut sizes = vec![128, 256, 512, 1024];
    if !ctx.summary.is_cpu {
        sizes.push(2048);
    }
    let mut group = c.benchmark_group("matmul_square");
    group.sample_size(10);
    for &size in &sizes {
        let mut candidates: Vec<(String, Option<MatmulVariant>)> = vec![("auto".into(), None)];
        // Every fixed variant side by side with the automatic choice at 512 and up.
        if size >= 512 {
            candidates.extend(MatmulVariant::ALL.map(|v| (v.name().to_string(), Some(v))));
        }
        for (name, variant) in candidates {
            let opts = MatmulOptions {
                variant,
                ..Default::default()
            };
            let (p, dispatch) = problem(&ctx, [size, size, size], &opts);
            group.throughput(Throughput::Elements(p.flops));
            group.bench_with_input(BenchmarkId::new(name, size), &size, |bench, _| {
                bench.iter(|| run(&ctx, &dispatch))
            });
        }
    }
    group.finish();

    // (label, [m, n, k], trans_a, trans_b) of an MLP 784-1200-1200-10 at batch 128.
    let layers: [(&str, [usize; 3], bool, bool); 9] = [
        ("fwd 128x784x1200 (x W^T)", [128, 1200, 784], false, true),
        ("fwd 128x1200x1200 (x W^T)", [128, 1200, 1200], false, true),
        ("fwd 128x1200x10 (x W^T)", [128, 10, 1200], false, true),
        ("dX 128x1200x10 (dY W)", [128, 1200, 10], false, false),
        ("dX 128x1200x1200 (dY W)", [128, 1200, 1200], false, false),
        ("dW 10x1200 (dY^T X)", [10, 1200, 128], true, false),
        ("dW 1200x1200 (dY^T X)", [1200, 1200, 128], true, false),
        ("dW 1200x784 (dY^T X)", [1200, 784, 128], true, false),
        ("dX 128x784x1200 (dY W)", [128, 784, 1200], false, false),
    ];
    let mut group = c.benchmark_group("matmul_mlp_batch128");
    group.sample_size(10);
    for (label, shape, trans_a, trans_b) in layers {
        let opts = MatmulOptions {
            trans_a,
            trans_b,
            ..Default::default()
        };
        let (p, dispatch) = problem(&ctx, shape, &opts);
        group.throughput(Throughput::Elements(p.flops));
        group.bench_function(label, |bench| bench.iter(|| run(&ctx, &dispatch)));
    }
    group.finish();
}

criterion_group!(benches, bench_matmul);
criterion_main!(benches);
