//! Whole-model GPU tests: gradients and updates against the CPU reference, learning a toy
//! task, checkpoints and inference. Shapes are tiny and odd (no multiple of a tile size)
//! so they run on a software adapter.

use dk_tensor::ops::dropout::cpu::keep as dropout_keeps;
use dk_tensor::ops::loss::cpu::{self, ExactLoss};
use dk_tensor::ops::optim::cpu as optim_cpu;
use dk_tensor::testing::{ctx, random_f32};
use dk_tensor::{DType, Tensor};

use crate::init::he_normal;
use crate::reference;
use crate::{
    LossConfig, LrSchedule, Model, ModelSpec, Optimizer, ParamKind, TrainConfig, Trainer,
    dropout_seed,
};

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// He weights plus small nonzero biases, so bias paths are exercised.
fn test_values(spec: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
    let mut values = he_normal(spec, seed);
    for (v, p) in values.iter_mut().zip(spec.parameters()) {
        if p.kind == ParamKind::Bias {
            *v = random_f32(v.len(), seed + 100, 0.1);
        }
    }
    values
}

/// Largest |gpu - cpu| relative to the largest |cpu| of the tensor, so that tiny entries
/// of large gradients are judged on the tensor's scale.
fn relative_error(gpu: &[f32], cpu: &[f64]) -> f64 {
    let scale = cpu.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| (f64::from(*g) - c).abs() / scale)
        .fold(0.0, f64::max)
}

struct Setup {
    spec: ModelSpec,
    values: Vec<Vec<f32>>,
    inputs: Vec<f32>,
    labels: Vec<u32>,
    teacher: Vec<f32>,
    batch: usize,
}

impl Setup {
    fn new(text: &str, batch: usize, seed: u64) -> Self {
        let spec = ModelSpec::parse(text).unwrap();
        let values = test_values(&spec, seed);
        let inputs = random_f32(batch * spec.input_len(), seed + 1, 1.0);
        let classes = spec.classes();
        let labels = (0..batch).map(|n| ((n * 7 + 3) % classes) as u32).collect();
        let teacher = random_f32(batch * classes, seed + 2, 3.0);
        Self {
            spec,
            values,
            inputs,
            labels,
            teacher,
            batch,
        }
    }

    /// Run one GPU step with `config` and return (model, trainer).
    fn gpu_step(&self, config: TrainConfig) -> (Model, Trainer) {
        let ctx = ctx();
        let model = Model::from_values(ctx, self.spec.clone(), &self.values).unwrap();
        let inputs =
            Tensor::from_f32(ctx, &self.inputs, &[self.batch, self.spec.input_len()]).unwrap();
        let labels = Tensor::from_u32(ctx, &self.labels, &[self.batch]).unwrap();
        let teacher =
            Tensor::from_f32(ctx, &self.teacher, &[self.batch, self.spec.classes()]).unwrap();
        let teacher = (config.loss != LossConfig::HardLabels).then_some(&teacher);
        let mut trainer = Trainer::new(ctx, &model, &inputs, &labels, teacher, config).unwrap();
        trainer.step(ctx);
        (model, trainer)
    }

    /// CPU per-example loss terms and parameter gradients at step 1 of `config`.
    fn cpu_step(&self, config: &TrainConfig) -> (ExactLoss, Vec<Vec<f64>>) {
        let params: Vec<Vec<f64>> = self.values.iter().map(|v| f64s(v)).collect();
        let masks = self.dropout_masks(config.seed);
        let keep = |layer: usize, e: usize| masks[layer][e];
        let trace = reference::forward(
            &self.spec,
            &params,
            &f64s(&self.inputs),
            self.batch,
            Some(&keep),
        );
        let classes = self.spec.classes();
        let teacher = f64s(&self.teacher);
        let logits = trace.logits();
        let exact = match (config.loss_params(), config.loss) {
            (Some(p), LossConfig::HardLabels) => {
                cpu::distill_loss_f64(logits, None, &self.labels, classes, p)
            }
            (Some(p), _) => cpu::distill_loss_f64(logits, Some(&teacher), &self.labels, classes, p),
            (None, _) => cpu::logit_mse_f64(logits, &teacher, &self.labels, classes),
        };
        let grads = reference::backward(
            &self.spec,
            &params,
            &trace,
            &exact.grad,
            self.batch,
            Some(&keep),
        );
        (exact, grads)
    }

    /// The dropout masks the GPU uses at step 1, per layer (empty for other layers).
    fn dropout_masks(&self, seed: u64) -> Vec<Vec<bool>> {
        let mut shape = self.spec.input_shape().to_vec();
        self.spec
            .layers()
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                let len = self.batch * shape.iter().product::<usize>();
                shape = layer.output_shape(&shape);
                match *layer {
                    crate::LayerSpec::Dropout { rate } => (0..len)
                        .map(|e| dropout_keeps(dropout_seed(seed, 1, index), e as u32, rate))
                        .collect(),
                    _ => Vec::new(),
                }
            })
            .collect()
    }
}

fn frozen(loss: LossConfig) -> TrainConfig {
    // Learning rate 0 keeps the parameters as they were, so the gradients of the step
    // belong to the uploaded values.
    TrainConfig {
        loss,
        seed: 11,
        ..TrainConfig::new(Optimizer::sgd(0.0, 0.0))
    }
}

fn check_gradients(setup: &Setup, loss: LossConfig) {
    check_gradients_with(setup, frozen(loss));
}

fn check_gradients_with(setup: &Setup, config: TrainConfig) {
    let loss = config.loss;
    let (_, trainer) = setup.gpu_step(config);
    let (exact, cpu_grads) = setup.cpu_step(&config);
    let ctx = ctx();
    for ((pg, cpu), p) in trainer
        .gradients()
        .iter()
        .zip(&cpu_grads)
        .zip(setup.spec.parameters())
    {
        let gpu = pg.grad.to_f32(ctx).unwrap();
        let err = relative_error(&gpu, cpu);
        assert!(
            err < 1e-4,
            "`{}` {loss:?}: gradient of {} differs from the CPU reference by {err:e} of its largest entry (tolerance 1e-4)",
            setup.spec,
            p.name
        );
    }
    let stats = trainer.read_stats(ctx).unwrap();
    assert_eq!(stats.count as usize, setup.batch, "stats count");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / setup.batch as f64;
    for (name, gpu, cpu) in [
        ("loss", stats.mean_loss(), mean(&exact.losses)),
        ("hard term", stats.mean_hard_loss(), mean(&exact.hard)),
        ("soft term", stats.mean_soft_loss(), mean(&exact.soft)),
    ] {
        assert!(
            (gpu - cpu).abs() <= 1e-4 * (1.0 + cpu.abs()),
            "`{}` {loss:?} smoothing {}: GPU mean {name} {gpu}, CPU {cpu} (tolerance 1e-4 relative)",
            setup.spec,
            config.label_smoothing
        );
    }
}

#[test]
fn mlp_gradients_match_cpu_reference() {
    let setup = Setup::new("13-d0.3-9-d0.2-7-5", 6, 1);
    check_gradients(&setup, LossConfig::HardLabels);
    check_gradients(
        &setup,
        LossConfig::Distill {
            temperature: 3.0,
            alpha: 0.7,
        },
    );
    check_gradients(&setup, LossConfig::LogitMse);
}

#[test]
fn label_smoothing_gradients_match_cpu_reference() {
    let setup = Setup::new("11-7-5", 7, 4);
    for loss in [
        LossConfig::HardLabels,
        LossConfig::Distill {
            temperature: 4.0,
            alpha: 0.5,
        },
    ] {
        check_gradients_with(&setup, frozen(loss).with_label_smoothing(0.1));
    }
    // Logit matching has no hard term: the setting is accepted and changes nothing.
    check_gradients_with(
        &setup,
        frozen(LossConfig::LogitMse).with_label_smoothing(0.1),
    );
}

#[test]
fn cnn_gradients_match_cpu_reference() {
    let setup = Setup::new("2x9x7-c4k3-p2-c5k3-d0.25-f6-3", 3, 2);
    check_gradients(&setup, LossConfig::HardLabels);
}

#[test]
fn one_optimizer_step_matches_cpu_reference() {
    let setup = Setup::new("1x5x5-c3k3-p2-d0.5-6-4", 5, 3);
    let lr = 0.01f32;
    for optimizer in [Optimizer::adam(lr), Optimizer::sgd(lr, 0.9)] {
        let config = TrainConfig {
            max_norm: None,
            seed: 5,
            ..TrainConfig::new(optimizer)
        };
        let (model, _) = setup.gpu_step(config);
        let (_, grads) = setup.cpu_step(&config);
        let after = model.read_values(ctx()).unwrap();
        for (((new, old), g), p) in after
            .iter()
            .zip(&setup.values)
            .zip(&grads)
            .zip(setup.spec.parameters())
        {
            let mut expected = old.clone();
            let g: Vec<f32> = g.iter().map(|&g| g as f32).collect();
            let mut state = vec![0.0; g.len()];
            match optimizer {
                Optimizer::Adam(params) => {
                    let mut second = vec![0.0; g.len()];
                    optim_cpu::adam(&mut expected, &g, &mut state, &mut second, params, 1, lr);
                }
                Optimizer::Sgd(params) => optim_cpu::sgd(&mut expected, &g, &mut state, params, lr),
            }
            let err = new
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            // Adam's first step moves each weight by about lr * sign(g); 1e-4 * lr absolute
            // leaves room for f32 rounding of g near zero.
            assert!(
                err <= 2e-5,
                "{optimizer:?}: {} after one step differs from the CPU update by {err:e} (tolerance 2e-5)",
                p.name
            );
        }
    }
}

/// The rate each step applied, measured from plain SGD's update `w -= lr * g`.
fn measured_rates(config: TrainConfig, steps: u32) -> Vec<(f64, f32)> {
    let ctx = ctx();
    let setup = Setup::new("7-5-3", 4, 21);
    let model = Model::from_values(ctx, setup.spec.clone(), &setup.values).unwrap();
    let inputs = Tensor::from_f32(ctx, &setup.inputs, &[4, 7]).unwrap();
    let labels = Tensor::from_u32(ctx, &setup.labels, &[4]).unwrap();
    let mut trainer = Trainer::new(ctx, &model, &inputs, &labels, None, config).unwrap();
    let mut before = model.read_values(ctx).unwrap();
    (0..steps)
        .map(|_| {
            trainer.step(ctx);
            let after = model.read_values(ctx).unwrap();
            // The largest gradient entry of the first weight gives the best-resolved rate.
            let grad = trainer.gradients()[0].grad.to_f32(ctx).unwrap();
            let i = (0..grad.len())
                .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
                .unwrap();
            let rate = f64::from(before[0][i] - after[0][i]) / f64::from(grad[i]);
            before = after;
            (rate, trainer.learning_rate())
        })
        .collect()
}

#[test]
fn trainer_applies_the_schedule_at_every_step() {
    let peak = 0.05;
    for schedule in [
        LrSchedule::Constant,
        LrSchedule::step_decay(0.5, 2),
        LrSchedule::cosine(2, 5, 0.1),
    ] {
        let config = TrainConfig::new(Optimizer::sgd(peak, 0.0)).with_schedule(schedule);
        for (index, (rate, reported)) in measured_rates(config, 6).into_iter().enumerate() {
            let step = index as u32 + 1;
            let want = schedule.lr_at(peak, step);
            assert_eq!(reported, want, "{schedule:?} step {step}: learning_rate()");
            assert!(
                (rate - f64::from(want)).abs() <= 1e-3 * f64::from(want),
                "{schedule:?} step {step}: the update used lr {rate}, schedule says {want} (rel tol 1e-3)"
            );
        }
    }
}

#[test]
fn step_parts_name_every_launch_in_recording_order() {
    let ctx = ctx();
    let spec = ModelSpec::parse("1x6x6-c2k3-p2-d0.5-5-3").unwrap();
    let model = Model::new(ctx, spec.clone(), 1).unwrap();
    let x = Tensor::zeros(ctx, &[4, 36], DType::F32).unwrap();
    let y = Tensor::zeros(ctx, &[4], DType::U32).unwrap();
    let mut config = TrainConfig::new(Optimizer::adam(1e-3));
    config.max_norm = Some(3.0);
    let trainer = Trainer::new(ctx, &model, &x, &y, None, config).unwrap();
    let names: Vec<String> = trainer.step_parts().into_iter().map(|p| p.name).collect();
    let position = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no part {name:?} in {names:?}"))
    };
    let loss = position("loss");
    assert!(position("forward 0 Conv2d") < position("forward 2 MaxPool2d"));
    assert!(position("forward 5 Linear") < loss && loss < position("backward 5 Linear"));
    assert!(position("backward 5 Linear") < position("backward 0 Conv2d"));
    let updates = names.iter().filter(|n| n.starts_with("update ")).count();
    assert_eq!(updates, spec.parameters().len(), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("max-norm"));
    assert!(
        !names.iter().any(|n| n.contains("Flatten")),
        "a view launches nothing: {names:?}"
    );
}

#[test]
fn trainer_rejects_a_nonsense_schedule() {
    let ctx = ctx();
    let model = Model::new(ctx, ModelSpec::parse("6-4-3").unwrap(), 1).unwrap();
    let x = Tensor::zeros(ctx, &[5, 6], DType::F32).unwrap();
    let y = Tensor::zeros(ctx, &[5], DType::U32).unwrap();
    let config =
        TrainConfig::new(Optimizer::adam(1e-3)).with_schedule(LrSchedule::step_decay(2.0, 10));
    let e = Trainer::new(ctx, &model, &x, &y, None, config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("factor") && e.contains('2'), "{e}");
    let config = TrainConfig::new(Optimizer::adam(1e-3)).with_label_smoothing(1.0);
    let e = Trainer::new(ctx, &model, &x, &y, None, config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("label_smoothing") && e.contains("[0, 1)"), "{e}");
}

/// 64 examples whose class is the argmax of a fixed random linear map: separable, so a
/// small net must reach 100% training accuracy.
fn toy_task(input_len: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let n = 64;
    let inputs = random_f32(n * input_len, seed, 1.0);
    let map = random_f32(classes * input_len, seed + 1, 1.0);
    let labels = (0..n)
        .map(|i| {
            let x = &inputs[i * input_len..(i + 1) * input_len];
            let score = |c: usize| -> f32 {
                map[c * input_len..(c + 1) * input_len]
                    .iter()
                    .zip(x)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            (0..classes).fold(0, |best, c| if score(c) > score(best) { c } else { best }) as u32
        })
        .collect();
    (inputs, labels)
}

fn learns_toy_task(text: &str, steps: usize) {
    let ctx = ctx();
    let spec = ModelSpec::parse(text).unwrap();
    let (inputs, labels) = toy_task(spec.input_len(), spec.classes(), 9);
    let model = Model::new(ctx, spec.clone(), 4).unwrap();
    let x = Tensor::from_f32(ctx, &inputs, &[64, spec.input_len()]).unwrap();
    let y = Tensor::from_u32(ctx, &labels, &[64]).unwrap();
    let mut trainer = Trainer::new(
        ctx,
        &model,
        &x,
        &y,
        None,
        TrainConfig::new(Optimizer::adam(0.01)),
    )
    .unwrap();
    for _ in 0..steps {
        trainer.step(ctx);
    }
    let first = trainer.take_stats(ctx).unwrap();
    trainer.step(ctx);
    let last = trainer.take_stats(ctx).unwrap();
    assert_eq!(
        last.correct,
        64,
        "`{text}` after {steps} Adam steps: {} of 64 training examples right, loss {} (mean over the run {})",
        last.correct,
        last.mean_loss(),
        first.mean_loss()
    );
    // Evaluation-mode inference agrees with the training pass's accuracy.
    let logits = model.predict(ctx, &inputs, 24).unwrap();
    let logits = f64s(&logits);
    assert_eq!(
        reference::correct(&logits, &labels),
        64,
        "`{text}`: inference accuracy"
    );
}

#[test]
fn small_mlp_learns_toy_task() {
    learns_toy_task("10-32-4", 200);
}

#[test]
fn small_cnn_learns_toy_task() {
    learns_toy_task("1x6x6-c6k3-p2-16-3", 300);
}

#[test]
fn inference_matches_reference_including_partial_batch() {
    let ctx = ctx();
    let spec = ModelSpec::parse("2x6x5-c3k3-p2-d0.5-7-4").unwrap();
    let values = test_values(&spec, 8);
    let model = Model::from_values(ctx, spec.clone(), &values).unwrap();
    let n = 11;
    let inputs = random_f32(n * spec.input_len(), 12, 1.0);
    let gpu = model.predict(ctx, &inputs, 4).unwrap();
    let params: Vec<Vec<f64>> = values.iter().map(|v| f64s(v)).collect();
    let cpu = reference::forward(&spec, &params, &f64s(&inputs), n, None);
    assert_eq!(gpu.len(), n * 4, "logits for every example");
    let err = relative_error(&gpu, cpu.logits());
    assert!(
        err < 1e-5,
        "inference logits differ from the CPU reference by {err:e} (tolerance 1e-5)"
    );
}

#[test]
fn checkpoint_round_trips_bitwise_through_the_gpu() {
    let ctx = ctx();
    let setup = Setup::new("1x5x5-c2k3-p2-5-3", 4, 6);
    let (model, _) = setup.gpu_step(TrainConfig::new(Optimizer::adam(0.01)));
    let file = tempfile::Builder::new()
        .suffix(".safetensors")
        .tempfile()
        .unwrap();
    let path = file.into_temp_path();
    model.save(ctx, &path).unwrap();
    let loaded = Model::load(ctx, &path).unwrap();
    assert_eq!(loaded.spec(), model.spec());
    let bits = |m: &Model| -> Vec<u32> {
        m.read_values(ctx)
            .unwrap()
            .iter()
            .flatten()
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(
        bits(&loaded),
        bits(&model),
        "parameters after a save/load round trip"
    );
}

#[test]
fn trainer_rejects_mismatched_tensors() {
    let ctx = ctx();
    let spec = ModelSpec::parse("6-4-3").unwrap();
    let model = Model::new(ctx, spec, 1).unwrap();
    let x = Tensor::zeros(ctx, &[5, 6], DType::F32).unwrap();
    let wrong_x = Tensor::zeros(ctx, &[5, 7], DType::F32).unwrap();
    let y = Tensor::zeros(ctx, &[5], DType::U32).unwrap();
    let wrong_y = Tensor::zeros(ctx, &[4], DType::U32).unwrap();
    let config = TrainConfig::new(Optimizer::adam(1e-3));
    let e = Trainer::new(ctx, &model, &wrong_x, &y, None, config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("[5, 7]") && e.contains("[batch, 6]"), "{e}");
    let e = Trainer::new(ctx, &model, &x, &wrong_y, None, config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("[5]") && e.contains("[4]"), "{e}");
    let distill = TrainConfig {
        loss: LossConfig::Distill {
            temperature: 2.0,
            alpha: 0.5,
        },
        ..config
    };
    let e = Trainer::new(ctx, &model, &x, &y, None, distill)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("teacher logits"), "{e}");
}
