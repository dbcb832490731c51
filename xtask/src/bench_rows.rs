//! The kernels measured by `cargo xtask bench`, beyond the ceilings: matmul variants against
//! the automatic choice, the fused bias+ReLU epilogue against separate kernels, the fused
//! distillation loss against its unfused composition, the CNNs' convolutions on each path
//! next to a matmul of the same size, and whole training steps.

use std::time::Duration;

use dk_tensor::ops::conv2d::{
    Conv2dGeometry, Conv2dLaunch, Conv2dPass, Conv2dPath, choose_path, path_unsupported,
    prepare_conv2d_input_grad_on, prepare_conv2d_on, prepare_conv2d_weight_grad_on,
};
use dk_tensor::ops::elementwise::{prepare_add, prepare_relu};
use dk_tensor::ops::loss::{
    DistillLossParams, new_loss_stats, prepare_distill_loss, prepare_distill_loss_unfused,
};
use dk_tensor::ops::matmul::{MatmulOptions, prepare_matmul, tune_matmul};
use dk_tensor::testing::{MatmulBenchCase, MatmulBenchRun, matmul_bench_cases, random_f32};
use dk_tensor::{DType, GpuContext, Tensor};

use crate::bench::{Row, Work, time_dispatches};

fn random_tensor(ctx: &GpuContext, shape: &[usize], seed: u64) -> anyhow::Result<Tensor> {
    let n = shape.iter().product();
    Ok(Tensor::from_f32(ctx, &random_f32(n, seed, 1.0), shape)?)
}

/// The products of [`matmul_bench_cases`] (shared with `cargo bench --bench matmul`), each
/// with the automatic choice and the fixed variants.
fn matmul_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let tuning = tune_matmul(ctx)?;
    eprintln!(
        "matmul tuning: {} ({:.2} s{})",
        tuning,
        tuning.seconds,
        if tuning.from_cache {
            ", from cache"
        } else {
            ""
        }
    );
    let is_cpu = ctx.summary.is_cpu;
    let mut rows = Vec::new();
    for case in matmul_bench_cases(is_cpu) {
        let operands = case.operands(ctx)?;
        for run in case.runs(is_cpu) {
            let launch = case.prepare(ctx, &operands, run)?;
            rows.push(Row {
                kernel: format!("matmul {}", run.name()),
                shape: case.shape(),
                work: Work::Flops(case.flops() as f64),
                seconds: time_dispatches(ctx, &launch.dispatches(), budget),
            });
        }
    }
    Ok(rows)
}

/// Linear layer y = relu(x W^T + b): bias and ReLU fused into the matmul's epilogue, against
/// a plain matmul followed by an add of the bias (pre-broadcast to [m, n]) and a ReLU kernel.
fn epilogue_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let (m, k, n) = (128, 784, 1200);
    let case = MatmulBenchCase::new(m, n, k, false, true);
    let operands = case.operands(ctx)?;
    let bias = random_tensor(ctx, &[n], 3)?;
    let fused = prepare_matmul(
        ctx,
        &operands.a,
        &operands.b,
        &operands.c,
        &MatmulOptions {
            trans_b: true,
            bias: Some(&bias),
            relu: true,
            ..Default::default()
        },
    )?;
    let bias_rows = random_tensor(ctx, &[m, n], 3)?;
    let with_bias = Tensor::zeros(ctx, &[m, n], DType::F32)?;
    let activated = Tensor::zeros(ctx, &[m, n], DType::F32)?;
    let plain = case.prepare(ctx, &operands, MatmulBenchRun::default())?;
    let add = prepare_add(ctx, &operands.c, &bias_rows, &with_bias)?;
    let relu = prepare_relu(ctx, &with_bias, &activated)?;
    let shape = format!("{m}x{k}x{n}");
    Ok(vec![
        Row {
            kernel: "linear+bias+relu fused".into(),
            shape: shape.clone(),
            work: Work::Flops(case.flops() as f64),
            seconds: time_dispatches(ctx, &fused.dispatches(), budget),
        },
        Row {
            kernel: "linear, add, relu separate".into(),
            shape,
            work: Work::Flops(case.flops() as f64),
            seconds: time_dispatches(
                ctx,
                &[plain.dispatches(), vec![&add, &relu]].concat(),
                budget,
            ),
        },
    ])
}

fn loss_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let params = DistillLossParams {
        temperature: 4.0,
        alpha: 0.9,
        label_smoothing: 0.0,
    };
    for (batch, classes) in [(128, 10), (256, 10), (128, 1000)] {
        let z = random_tensor(ctx, &[batch, classes], 4)?;
        let t = random_tensor(ctx, &[batch, classes], 5)?;
        let labels: Vec<u32> = (0..batch as u32).map(|i| i % classes as u32).collect();
        let y = Tensor::from_u32(ctx, &labels, &[batch])?;
        let grad = Tensor::zeros(ctx, &[batch, classes], DType::F32)?;
        let stats = new_loss_stats(ctx)?;
        let fused = prepare_distill_loss(ctx, &z, Some(&t), &y, &grad, &stats, params)?;
        let unfused = prepare_distill_loss_unfused(ctx, &z, Some(&t), &y, &grad, &stats, params)?;
        // Bytes every version must move at least: read z and t, write the gradient.
        let bytes = 12.0 * (batch * classes) as f64;
        let shape = format!("{batch}x{classes}, T=4");
        rows.push(Row {
            kernel: "distill loss fused".into(),
            shape: shape.clone(),
            work: Work::Bytes(bytes),
            seconds: time_dispatches(ctx, &[&fused], budget),
        });
        rows.push(Row {
            kernel: "distill loss unfused".into(),
            shape,
            work: Work::Bytes(bytes),
            seconds: time_dispatches(ctx, &unfused.iter().collect::<Vec<_>>(), budget),
        });
    }
    Ok(rows)
}

/// Conv layers measured: the default teacher CNN `c16k3-c16k3-p2-c32k3-c32k3-p2-256-10` and a
/// quick-preset CNN `c8k5-p2-c16k5-p2-10`, on 1x28x28 images: (Cin, size, Cout, kernel).
const CONV_LAYERS: [(usize, usize, usize, usize); 6] = [
    (1, 28, 16, 3),
    (16, 28, 16, 3),
    (16, 14, 32, 3),
    (32, 14, 32, 3),
    (1, 28, 8, 5),
    (8, 14, 16, 5),
];

/// Batch of the conv rows and CNN steps.
const CONV_BATCH: usize = 128;

/// The tensors of one conv layer's three passes.
struct ConvCase {
    g: Conv2dGeometry,
    x: Tensor,
    w: Tensor,
    b: Tensor,
    y: Tensor,
    dy: Tensor,
    dx: Tensor,
    dw: Tensor,
}

impl ConvCase {
    fn new(ctx: &GpuContext, layer: (usize, usize, usize, usize)) -> anyhow::Result<Self> {
        let g = Conv2dGeometry::same_size(CONV_BATCH, layer);
        Ok(Self {
            x: random_tensor(ctx, &g.input_shape(), 6)?,
            w: random_tensor(ctx, &g.weight_shape(), 7)?,
            b: random_tensor(ctx, &[g.out_channels], 8)?,
            y: Tensor::zeros(ctx, &g.output_shape(), DType::F32)?,
            dy: random_tensor(ctx, &g.output_shape(), 9)?,
            dx: Tensor::zeros(ctx, &g.input_shape(), DType::F32)?,
            dw: Tensor::zeros(ctx, &g.weight_shape(), DType::F32)?,
            g,
        })
    }

    fn prepare(
        &self,
        ctx: &GpuContext,
        pass: Conv2dPass,
        path: Conv2dPath,
    ) -> anyhow::Result<Conv2dLaunch> {
        let g = &self.g;
        let (x, w, dy) = (&self.x, &self.w, &self.dy);
        Ok(match pass {
            Conv2dPass::Forward => {
                prepare_conv2d_on(ctx, path, x, w, Some(&self.b), &self.y, true, g)?
            }
            Conv2dPass::InputGrad => prepare_conv2d_input_grad_on(ctx, path, dy, w, &self.dx, g)?,
            Conv2dPass::WeightGrad => {
                prepare_conv2d_weight_grad_on(ctx, path, x, dy, &self.dw, false, g)?
            }
        })
    }

    fn shape(&self) -> String {
        let g = &self.g;
        format!(
            "{}x{}x{}x{} -> {}, k{} p{}",
            g.batch, g.in_channels, g.height, g.width, g.out_channels, g.kernel_h, g.padding
        )
    }
}

fn pass_name(pass: Conv2dPass) -> &'static str {
    match pass {
        Conv2dPass::Forward => "forward +bias+relu",
        Conv2dPass::InputGrad => "input grad",
        Conv2dPass::WeightGrad => "weight grad",
    }
}

/// Each conv layer's three passes on every path that runs them here, after a matmul of the
/// same GEMM size (Cout x taps by taps x N*Ho*Wo, taps rounded up to 4 for the vec4 kernels);
/// each pass's share column also gives its rate as a share of that matmul's.
pub fn conv_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for layer in CONV_LAYERS {
        let case = ConvCase::new(ctx, layer)?;
        let g = case.g;
        let taps = (g.in_channels * g.kernel_h * g.kernel_w).next_multiple_of(4);
        let positions = g.batch * g.out_height() * g.out_width();
        let gemm = MatmulBenchCase::new(g.out_channels, positions, taps, false, false);
        let operands = gemm.operands(ctx)?;
        let product = gemm.prepare(ctx, &operands, MatmulBenchRun::default())?;
        let matmul_seconds = time_dispatches(ctx, &product.dispatches(), budget);
        let reference_gflops = gemm.flops() as f64 / matmul_seconds / 1e9;
        rows.push(Row {
            kernel: "matmul auto, the conv's GEMM size".into(),
            shape: gemm.shape(),
            work: Work::Flops(gemm.flops() as f64),
            seconds: matmul_seconds,
        });
        for pass in [
            Conv2dPass::Forward,
            Conv2dPass::InputGrad,
            Conv2dPass::WeightGrad,
        ] {
            for path in Conv2dPath::ALL {
                if path_unsupported(ctx, path, pass, &g).is_some() {
                    continue;
                }
                let launch = case.prepare(ctx, pass, path)?;
                rows.push(Row {
                    kernel: format!("conv2d {} ({path})", pass_name(pass)),
                    shape: case.shape(),
                    work: Work::FlopsAgainst {
                        flops: g.flops() as f64,
                        reference_gflops,
                    },
                    seconds: time_dispatches(ctx, &launch.dispatches(), budget),
                });
            }
        }
    }
    Ok(rows)
}

/// Whole CNN training steps (forward, loss, backward, Adam) on 1x28x28 images, as examples
/// per second, on the conv path the launchers choose (`DK_CONV_PATH` forces one).
pub fn cnn_step_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let layer = ConvCase::new(ctx, CONV_LAYERS[1])?.g;
    let path = choose_path(ctx, Conv2dPass::Forward, &layer)?;
    for text in [
        "1x28x28-c16k3-c16k3-p2-c32k3-c32k3-p2-256-10",
        "1x28x28-c8k5-p2-c16k5-p2-10",
    ] {
        let mut trainer = bench_trainer(ctx, text, CONV_BATCH, dk_nn::LossConfig::HardLabels)?;
        let seconds = time_step(ctx, &mut trainer, budget);
        rows.push(Row {
            kernel: format!("CNN train step {text} (conv {path})"),
            shape: format!("batch {CONV_BATCH}, Adam"),
            work: Work::Examples(CONV_BATCH as f64),
            seconds,
        });
    }
    Ok(rows)
}

/// A trainer of the model `spec` with Adam on random inputs, labels and (for a loss that
/// needs them) teacher logits of `batch` examples.
fn bench_trainer(
    ctx: &GpuContext,
    spec: &str,
    batch: usize,
    loss: dk_nn::LossConfig,
) -> anyhow::Result<dk_nn::Trainer> {
    use dk_nn::{LossConfig, Model, ModelSpec, Optimizer, TrainConfig, Trainer};
    let spec = ModelSpec::parse(spec)?;
    let model = Model::new(ctx, spec.clone(), 1)?;
    let inputs = random_tensor(ctx, &[batch, spec.input_len()], 9)?;
    let labels: Vec<u32> = (0..batch as u32)
        .map(|i| i % spec.classes() as u32)
        .collect();
    let labels = Tensor::from_u32(ctx, &labels, &[batch])?;
    let teacher = random_tensor(ctx, &[batch, spec.classes()], 10)?;
    let teacher = (loss != LossConfig::HardLabels).then_some(&teacher);
    let mut config = TrainConfig::new(Optimizer::adam(1e-3));
    config.loss = loss;
    Ok(Trainer::new(
        ctx, &model, &inputs, &labels, teacher, config,
    )?)
}

/// Seconds of one training step of `trainer` on its resident batch.
pub fn time_step(ctx: &GpuContext, trainer: &mut dk_nn::Trainer, budget: Duration) -> f64 {
    crate::bench::time_closure(ctx, budget, || trainer.step(ctx))
}

/// A trainer of the model `spec` with Adam on hard labels, on one resident batch of `batch`
/// examples: the step alone, without gathers or reads ([`time_step`] times it).
pub fn isolated_step_trainer(
    ctx: &GpuContext,
    spec: &str,
    batch: usize,
) -> anyhow::Result<dk_nn::Trainer> {
    bench_trainer(ctx, spec, batch, dk_nn::LossConfig::HardLabels)
}

/// Models whose training step is profiled: the default preset's student, and the quick
/// preset's student and teacher (a small CNN).
const PROFILED_MODELS: [&str; 3] = ["784-256-256-10", "784-64-10", "1x28x28-c8k5-p2-c16k5-p2-10"];

/// One training step of each profiled model at batch 128, then each of its parts (every
/// layer's forward and backward, the loss, every update) timed on its own, as a share of
/// the whole step; the parts' sum shows what the step costs beyond them.
pub fn profile_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for text in PROFILED_MODELS {
        let mut trainer = bench_trainer(ctx, text, 128, dk_nn::LossConfig::HardLabels)?;
        let whole = time_step(ctx, &mut trainer, budget);
        rows.push(Row {
            kernel: format!("train step {text}"),
            shape: "batch 128, Adam".into(),
            work: Work::Examples(128.0),
            seconds: whole,
        });
        let mut sum = 0.0;
        for part in trainer.step_parts() {
            let seconds = time_dispatches(ctx, &part.dispatches, budget);
            sum += seconds;
            rows.push(Row {
                kernel: format!("{text}: {}", part.name),
                shape: format!("{} dispatches", part.dispatches.len()),
                work: Work::PartOf(whole),
                seconds,
            });
        }
        rows.push(Row {
            kernel: format!("{text}: sum of the parts timed alone"),
            shape: "-".into(),
            work: Work::PartOf(whole),
            seconds: sum,
        });
    }
    Ok(rows)
}

/// Row groups of the table, in order; `cargo xtask bench --only NAME` measures one of them.
pub const GROUPS: [&str; 8] = [
    "matmul", "epilogue", "loss", "conv", "cnn", "train", "profile", "epoch",
];

/// The rows of the groups in `only` (every group when empty).
pub fn kernel_rows(
    ctx: &GpuContext,
    budget: Duration,
    only: &[String],
) -> anyhow::Result<Vec<Row>> {
    let wanted = |group: &str| only.is_empty() || only.iter().any(|o| o == group);
    let mut rows = Vec::new();
    if wanted("matmul") {
        rows.extend(matmul_rows(ctx, budget)?);
    }
    if wanted("epilogue") {
        rows.extend(epilogue_rows(ctx, budget)?);
    }
    if wanted("loss") {
        rows.extend(loss_rows(ctx, budget)?);
    }
    if wanted("conv") {
        rows.extend(conv_rows(ctx, budget)?);
    }
    if wanted("cnn") {
        rows.extend(cnn_step_rows(ctx, budget)?);
    }
    if wanted("train") {
        rows.extend(train_step_rows(ctx, budget)?);
    }
    if wanted("profile") {
        rows.extend(profile_rows(ctx, budget)?);
    }
    if wanted("epoch") {
        rows.extend(crate::bench_epoch::epoch_rows(ctx, budget)?);
    }
    Ok(rows)
}

/// Whole training steps (forward, loss, backward, Adam) recorded into one encoder and
/// submitted once, as examples per second: the teacher and student MLPs of Hinton et al.,
/// on hard labels and distilling at T = 4.
pub fn train_step_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    use dk_nn::LossConfig;
    let mut rows = Vec::new();
    let cases = [
        ("784-1200-1200-10", LossConfig::HardLabels),
        ("784-800-800-10", LossConfig::HardLabels),
        (
            "784-800-800-10",
            LossConfig::Distill {
                temperature: 4.0,
                alpha: 0.9,
            },
        ),
    ];
    for batch in [128, 256] {
        for (text, loss) in cases {
            let mut trainer = bench_trainer(ctx, text, batch, loss)?;
            let seconds = time_step(ctx, &mut trainer, budget);
            let kind = if loss == LossConfig::HardLabels {
                "train step"
            } else {
                "distill step T=4"
            };
            rows.push(Row {
                kernel: format!("{kind} {text}"),
                shape: format!("batch {batch}, Adam"),
                work: Work::Examples(batch as f64),
                seconds,
            });
        }
    }
    Ok(rows)
}
