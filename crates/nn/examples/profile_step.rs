use dk_nn::{Model, ModelSpec, Optimizer, TrainConfig, Trainer};
use dk_tensor::{DType, GpuContext, Tensor};
use std::time::Instant;

fn main() {
    let ctx = GpuContext::new().unwrap();
    if let Ok(text) = std::env::var("PARTS") {
        parts(&ctx, &text);
        return;
    }
    if std::env::var("SHAPES").is_ok() {
        shapes(&ctx);
        return;
    }
    let n = 100;
    let started = Instant::now();
    for _ in 0..n {
        let e = ctx.encoder();
        ctx.queue.submit(Some(e.finish()));
    }
    ctx.wait();
    println!(
        "empty submit: {:.3} ms",
        started.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    let specs = std::env::var("SPECS").unwrap_or("784-64-10,784-256-256-10".into());
    let n: usize = std::env::var("N").map_or(100, |v| v.parse().unwrap());
    for spec in specs.split(',') {
        for batch in [128usize] {
            let spec = ModelSpec::parse_with_input(spec, &[1, 28, 28]).unwrap();
            let model = Model::new(&ctx, spec.clone(), 1).unwrap();
            let inputs = Tensor::zeros(&ctx, &[batch, spec.input_len()], DType::F32).unwrap();
            let labels = Tensor::zeros(&ctx, &[batch], DType::U32).unwrap();
            let mut trainer = Trainer::new(
                &ctx,
                &model,
                &inputs,
                &labels,
                None,
                TrainConfig::new(Optimizer::adam(1e-3)),
            )
            .unwrap();
            for _ in 0..3 {
                trainer.step(&ctx);
            }
            let started = Instant::now();
            for _ in 0..n {
                let mut e = ctx.encoder();
                trainer.record_step(&ctx, &mut e);
                ctx.queue.submit(Some(e.finish()));
            }
            ctx.wait();
            let pipelined = started.elapsed().as_secs_f64() * 1e3 / n as f64;
            let started = Instant::now();
            let mut e = ctx.encoder();
            for _ in 0..n {
                trainer.record_step(&ctx, &mut e);
            }
            ctx.queue.submit(Some(e.finish()));
            ctx.wait();
            let one = started.elapsed().as_secs_f64() * 1e3 / n as f64;
            println!(
                "{spec} batch {batch}: {pipelined:.3} ms/step (submit each), {one:.3} ms/step (one submit)"
            );
        }
    }
}

pub fn shapes(ctx: &GpuContext) {
    use dk_tensor::ops::matmul::{MatmulOptions, MatmulVariant, prepare_matmul};
    // (m, n, k, trans_a, trans_b)
    let shapes = [
        (128, 64, 784, false, true),
        (64, 784, 128, true, false),
        (128, 10, 64, false, true),
        (10, 64, 128, true, false),
        (128, 64, 10, false, false),
        (128, 256, 784, false, true),
        (256, 784, 128, true, false),
        (128, 256, 256, false, true),
        (256, 256, 128, true, false),
        (128, 256, 256, false, false),
        (128, 10, 256, false, true),
        (10, 256, 128, true, false),
        (128, 256, 10, false, false),
    ];
    for (m, n, k, ta, tb) in shapes {
        let a = Tensor::zeros(ctx, &if ta { [k, m] } else { [m, k] }, DType::F32).unwrap();
        let b = Tensor::zeros(ctx, &if tb { [n, k] } else { [k, n] }, DType::F32).unwrap();
        let c = Tensor::zeros(ctx, &[m, n], DType::F32).unwrap();
        let mut line = format!("{m}x{n}x{k} {ta} {tb}:");
        for v in MatmulVariant::ALL.into_iter().map(Some).chain([None]) {
            let d = prepare_matmul(
                ctx,
                &a,
                &b,
                &c,
                &MatmulOptions {
                    trans_a: ta,
                    trans_b: tb,
                    variant: v,
                    ..Default::default()
                },
            )
            .unwrap();
            let run = |reps: usize| {
                let mut e = ctx.encoder();
                {
                    let mut p = e.begin_compute_pass(&Default::default());
                    for _ in 0..reps {
                        d.record(&mut p);
                    }
                }
                ctx.queue.submit(Some(e.finish()));
                ctx.wait();
            };
            run(2);
            let t = Instant::now();
            run(20);
            line += &format!(
                " {}={:.3}",
                v.map_or("auto", |v| v.name()),
                t.elapsed().as_secs_f64() * 1e3 / 20.0
            );
        }
        println!("{line}");
    }
}

pub fn parts(ctx: &GpuContext, text: &str) {
    let spec = ModelSpec::parse(text).unwrap();
    let model = Model::new(ctx, spec.clone(), 1).unwrap();
    let inputs = Tensor::zeros(ctx, &[128, spec.input_len()], DType::F32).unwrap();
    let labels = Tensor::zeros(ctx, &[128], DType::U32).unwrap();
    let trainer = Trainer::new(
        ctx,
        &model,
        &inputs,
        &labels,
        None,
        TrainConfig::new(Optimizer::adam(1e-3)),
    )
    .unwrap();
    for part in trainer.step_parts() {
        let mut line = part.name.clone();
        for d in &part.dispatches {
            let run = |reps: usize| {
                let mut e = ctx.encoder();
                {
                    let mut p = e.begin_compute_pass(&Default::default());
                    for _ in 0..reps {
                        d.record(&mut p);
                    }
                }
                ctx.queue.submit(Some(e.finish()));
                ctx.wait();
            };
            run(1);
            let t = Instant::now();
            run(5);
            line += &format!(" {:.2}", t.elapsed().as_secs_f64() * 1e3 / 5.0);
        }
        println!("{line}");
    }
}
