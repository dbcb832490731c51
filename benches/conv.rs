//! Convolution and pooling kernels on the conv layers of the default teacher CNN
//! `c16k3-c16k3-p2-c32k3-c32k3-p2-256-10` and of a quick-preset CNN `c8k5-p2-c16k5-p2-10`, at
//! batch 128 on 1x28x28 images, each pass on every path that runs it on this adapter (the
//! implicit GEMM and the direct kernels), plus the 2x2 max pool that follows a conv.
//!
//! Each timed iteration records one pass (all its dispatches), submits it and waits for the
//! GPU, so the figures are device time plus one submission. Convolution throughput is
//! reported in FLOPs (2 per multiply-add of the forward; the gradients cost the same),
//! pooling throughput in input elements.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use darkknowledge::tensor::ops::conv2d::{
    Conv2dGeometry, Conv2dPass, Conv2dPath, path_unsupported, prepare_conv2d_input_grad_on,
    prepare_conv2d_on, prepare_conv2d_weight_grad_on,
};
use darkknowledge::tensor::ops::maxpool::{prepare_maxpool2d, prepare_maxpool2d_backward};
use darkknowledge::tensor::{DType, Dispatch, GpuContext, Tensor, record_all};

const BATCH: usize = 128;

/// (name, geometry) of every measured layer: 'same' padding, stride 1.
fn cnn_convs() -> Vec<(String, Conv2dGeometry)> {
    let layers = [
        (1, 28, 16, 3),
        (16, 28, 16, 3),
        (16, 14, 32, 3),
        (32, 14, 32, 3),
        (1, 28, 8, 5),
        (8, 14, 16, 5),
    ];
    layers
        .into_iter()
        .map(|(in_channels, size, out_channels, k)| {
            let g = Conv2dGeometry::same_size(BATCH, (in_channels, size, out_channels, k));
            (
                format!("c{out_channels}k{k}_{in_channels}x{size}x{size}"),
                g,
            )
        })
        .collect()
}

fn random_tensor(ctx: &GpuContext, shape: &[usize], seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    // A cheap deterministic fill in [-1, 1); values do not affect the timing.
    let data: Vec<f32> = (0..n as u32)
        .map(|i| {
            let h = (i ^ seed)
                .wrapping_mul(0x9E37_79B9)
                .rotate_left(13)
                .wrapping_mul(0x85EB_CA6B);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_f32(ctx, &data, shape).expect("upload")
}

/// Time recording `dispatches` into one compute pass, submitting, and waiting for the GPU.
fn bench_gpu(
    group: &mut BenchmarkGroup<'_, WallTime>,
    ctx: &GpuContext,
    name: String,
    dispatches: &[&Dispatch],
) {
    group.bench_function(name, |b| {
        b.iter(|| {
            let mut encoder = ctx.encoder();
            record_all(&mut encoder, dispatches.iter().copied());
            ctx.submit_and_wait(encoder);
        })
    });
}

fn conv_benches(c: &mut Criterion) {
    let ctx = GpuContext::new().expect("a GPU adapter");
    let mut group = c.benchmark_group(format!("conv [{}]", ctx.summary));
    if ctx.summary.is_cpu {
        // Software Vulkan: the larger layers take a tenth of a second or more per pass.
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(3));
    }
    for (name, geom) in cnn_convs() {
        let y = Tensor::zeros(&ctx, &geom.output_shape(), DType::F32).unwrap();
        conv_passes(&mut group, &ctx, &name, &geom, &y);
        pool_passes(&mut group, &ctx, &name, &geom, &y);
    }
    group.finish();
}

/// Forward (into `y`), input gradient and weight gradient of `geom` on every path that runs it.
fn conv_passes(
    group: &mut BenchmarkGroup<'_, WallTime>,
    ctx: &GpuContext,
    name: &str,
    geom: &Conv2dGeometry,
    y: &Tensor,
) {
    let x = random_tensor(ctx, &geom.input_shape(), 1);
    let w = random_tensor(ctx, &geom.weight_shape(), 2);
    let bias = random_tensor(ctx, &[geom.out_channels], 3);
    let dy = random_tensor(ctx, &geom.output_shape(), 4);
    let dx = Tensor::zeros(ctx, &geom.input_shape(), DType::F32).unwrap();
    let dw = Tensor::zeros(ctx, &geom.weight_shape(), DType::F32).unwrap();
    group.throughput(Throughput::Elements(geom.flops()));
    for path in Conv2dPath::ALL {
        let runs = |pass| path_unsupported(ctx, path, pass, geom).is_none();
        if runs(Conv2dPass::Forward) {
            let launch = prepare_conv2d_on(ctx, path, &x, &w, Some(&bias), y, true, geom).unwrap();
            let label = format!("{name}/forward/{path}");
            bench_gpu(group, ctx, label, &launch.dispatches());
        }
        // The first layer's input gradient is never needed in training, but it is the
        // transposed convolution with Cin = 1, a useful worst case.
        if runs(Conv2dPass::InputGrad) {
            let launch = prepare_conv2d_input_grad_on(ctx, path, &dy, &w, &dx, geom).unwrap();
            let label = format!("{name}/input_grad/{path}");
            bench_gpu(group, ctx, label, &launch.dispatches());
        }
        if runs(Conv2dPass::WeightGrad) {
            let launch =
                prepare_conv2d_weight_grad_on(ctx, path, &x, &dy, &dw, false, geom).unwrap();
            let label = format!("{name}/weight_grad/{path}");
            bench_gpu(group, ctx, label, &launch.dispatches());
        }
    }
}

/// The 2x2 pool that follows the conv whose output is `y`: forward and backward.
fn pool_passes(
    group: &mut BenchmarkGroup<'_, WallTime>,
    ctx: &GpuContext,
    name: &str,
    geom: &Conv2dGeometry,
    y: &Tensor,
) {
    let [n, channels, height, width] = geom.output_shape();
    let pooled = [n, channels, height / 2, width / 2];
    let pooled_y = Tensor::zeros(ctx, &pooled, DType::F32).unwrap();
    let argmax = Tensor::zeros(ctx, &pooled, DType::U32).unwrap();
    let pool_dy = random_tensor(ctx, &pooled, 5);
    let pool = prepare_maxpool2d(ctx, y, &pooled_y, &argmax, 2, 2).unwrap();
    let pool_dx = Tensor::zeros(ctx, &geom.output_shape(), DType::F32).unwrap();
    let pool_backward =
        prepare_maxpool2d_backward(ctx, &pool_dy, &argmax, None, &pool_dx, 2, 2).unwrap();
    group.throughput(Throughput::Elements(y.len() as u64));
    bench_gpu(group, ctx, format!("{name}/maxpool2/forward"), &[&pool]);
    bench_gpu(
        group,
        ctx,
        format!("{name}/maxpool2/backward"),
        &[&pool_backward],
    );
}

criterion_group!(benches, conv_benches);
criterion_main!(benches);
