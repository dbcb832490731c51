//! `Trainer`: one training step (forward, loss, backward, optimizer update) recorded into
//! one command encoder, with every launch prepared once and replayed.
//!
//! Nothing is read back per step: the loss kernel adds the batch's loss sum, correct count,
//! example count and the hard and soft terms to a small stats buffer on the GPU, read with
//! [`Trainer::read_stats`] every N steps or at the end of an epoch. The learning rate of
//! each step comes from the config's [`LrSchedule`] through the optimizer's uniform block.

use dk_tensor::ops::loss::{
    DistillLossParams, LossStats, new_loss_stats, prepare_distill_loss, prepare_logit_mse,
    read_loss_stats, reset_loss_stats,
};
use dk_tensor::ops::optim::{
    AdamParams, OptimDispatch, SgdParams, prepare_adam, prepare_max_norm, prepare_sgd,
};
use dk_tensor::splitmix::{GAMMA, mix64};
use dk_tensor::{DType, Dispatch, GpuContext, Tensor};

use crate::error::{Result, config_error};
use crate::layers::{Mode, ParamGrad};
use crate::model::Model;
use crate::schedule::LrSchedule;
use crate::sequential::{Sequential, StepPart, record_parts};
use crate::spec::{ParamKind, ParamSpec};

/// What the student is trained to match. The hard-label cross-entropies use the config's
/// [`TrainConfig::label_smoothing`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossConfig {
    /// Cross-entropy to the labels.
    HardLabels,
    /// Hinton et al.: `alpha * T^2 * CE(softmax(t/T), softmax(z/T)) + (1 - alpha) * CE(y, softmax(z))`
    /// against teacher logits `t`.
    Distill { temperature: f32, alpha: f32 },
    /// Ba & Caruana: mean squared difference between student and teacher logits (no hard
    /// term, so label smoothing does not apply).
    LogitMse,
}

impl LossConfig {
    fn needs_teacher(self) -> bool {
        !matches!(self, LossConfig::HardLabels)
    }
}

/// Optimizer and its hyper-parameters (the update kernels' own settings). Weight decay
/// applies to every parameter tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Adam; with `decoupled` the weight decay is AdamW's.
    Adam(AdamParams),
    /// SGD with (optionally Nesterov) momentum.
    Sgd(SgdParams),
}

impl Optimizer {
    /// Adam with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8), no weight decay.
    pub fn adam(lr: f32) -> Self {
        Optimizer::Adam(AdamParams {
            lr,
            ..AdamParams::default()
        })
    }

    /// AdamW with PyTorch's default betas and eps.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        Optimizer::Adam(AdamParams {
            lr,
            weight_decay,
            decoupled: true,
            ..AdamParams::default()
        })
    }

    /// SGD with classical momentum.
    pub fn sgd(lr: f32, momentum: f32) -> Self {
        Optimizer::Sgd(SgdParams {
            lr,
            momentum,
            nesterov: false,
            weight_decay: 0.0,
        })
    }

    /// SGD with Nesterov momentum (`momentum` > 0) and L2 weight decay added to the gradient.
    pub fn sgd_nesterov(lr: f32, momentum: f32, weight_decay: f32) -> Self {
        Optimizer::Sgd(SgdParams {
            lr,
            momentum,
            nesterov: true,
            weight_decay,
        })
    }

    /// The (peak) learning rate.
    pub fn lr(&self) -> f32 {
        match *self {
            Optimizer::Adam(AdamParams { lr, .. }) | Optimizer::Sgd(SgdParams { lr, .. }) => lr,
        }
    }
}

/// Everything a [`Trainer`] needs besides the model and the batch tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainConfig {
    pub loss: LossConfig,
    pub optimizer: Optimizer,
    /// After each update, rescale every weight row (incoming weights of one unit) whose L2
    /// norm exceeds this (Hinton et al.'s max-norm constraint). Biases are left alone.
    pub max_norm: Option<f32>,
    /// Seed of the dropout masks; step `s` of layer `i` uses [`dropout_seed`]`(seed, s, i)`.
    pub seed: u64,
    /// Learning rate of each step, relative to the optimizer's rate (the peak).
    pub schedule: LrSchedule,
    /// Label smoothing `eps` in `[0, 1)` of the hard-label term (HardLabels, and Distill's
    /// `1 - alpha` part): the target becomes `(1 - eps) * onehot(y) + eps / classes`.
    pub label_smoothing: f32,
}

impl TrainConfig {
    /// Hard labels without smoothing, the given optimizer at a constant rate, no max-norm,
    /// seed 0.
    pub fn new(optimizer: Optimizer) -> Self {
        Self {
            loss: LossConfig::HardLabels,
            optimizer,
            max_norm: None,
            seed: 0,
            schedule: LrSchedule::Constant,
            label_smoothing: 0.0,
        }
    }

    /// This config with the learning-rate schedule `schedule`.
    pub fn with_schedule(self, schedule: LrSchedule) -> Self {
        Self { schedule, ..self }
    }

    /// This config with label smoothing `label_smoothing` of the hard-label term.
    pub fn with_label_smoothing(self, label_smoothing: f32) -> Self {
        Self {
            label_smoothing,
            ..self
        }
    }

    /// Settings of the fused loss kernel for a distillation-family loss (None for LogitMse).
    pub(crate) fn loss_params(&self) -> Option<DistillLossParams> {
        let (temperature, alpha) = match self.loss {
            LossConfig::HardLabels => (1.0, 0.0),
            LossConfig::Distill { temperature, alpha } => (temperature, alpha),
            LossConfig::LogitMse => return None,
        };
        Some(DistillLossParams {
            temperature,
            alpha,
            label_smoothing: self.label_smoothing,
        })
    }

    /// Learning rate of step `step` (1-based): the schedule applied to the optimizer's rate.
    pub fn lr_at(&self, step: u32) -> f32 {
        self.schedule.lr_at(self.optimizer.lr(), step)
    }
}

/// Mask seed of dropout layer `layer` at training step `step` (1-based): a SplitMix64 hash,
/// so masks differ between steps and layers and are reproducible from the config seed.
pub fn dropout_seed(seed: u64, step: u32, layer: usize) -> u32 {
    let z = seed
        .wrapping_add(u64::from(step).wrapping_mul(GAMMA))
        .wrapping_add((layer as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    mix64(z) as u32
}

/// A model bound to batch tensors, with every launch of a training step prepared.
pub struct Trainer {
    net: Sequential,
    config: TrainConfig,
    params: Vec<ParamGrad>,
    loss: Dispatch,
    updates: Vec<OptimDispatch>,
    max_norms: Vec<Dispatch>,
    /// Moments or velocities, one or two per parameter, zero at the start.
    optimizer_state: Vec<Tensor>,
    stats: Tensor,
    step: u32,
    /// The rate the schedule scales: the optimizer's, until [`Trainer::set_learning_rate`].
    peak_lr: f32,
}

/// The teacher logits the loss needs (checked against the batch), after checking the labels.
fn check_targets<'t>(
    config: &TrainConfig,
    spec: &crate::spec::ModelSpec,
    net: &Sequential,
    inputs: &Tensor,
    labels: &Tensor,
    teacher_logits: Option<&'t Tensor>,
) -> Result<Option<&'t Tensor>> {
    let batch = net.batch();
    if labels.dtype() != DType::U32 || labels.shape() != [batch] {
        return Err(config_error(format!(
            "labels must be U32 [{batch}] to match inputs {:?}, but are {:?} {:?}",
            inputs.shape(),
            labels.dtype(),
            labels.shape()
        )));
    }
    match (config.loss.needs_teacher(), teacher_logits) {
        (true, None) => Err(config_error(format!(
            "loss {:?} needs teacher logits [{batch}, {}]",
            config.loss,
            spec.classes()
        ))),
        (false, Some(_)) => Err(config_error(
            "teacher logits were given but the loss is HardLabels, which ignores them",
        )),
        (_, teacher) => Ok(teacher),
    }
}

/// The loss launch: the fused distillation-family kernel, or logit matching.
fn prepare_loss(
    ctx: &GpuContext,
    config: &TrainConfig,
    net: &Sequential,
    teacher: Option<&Tensor>,
    labels: &Tensor,
    stats: &Tensor,
) -> Result<Dispatch> {
    let logits = net.output();
    let grad = net
        .grad_output()
        .expect("a training network has a logits gradient");
    Ok(match (config.loss_params(), teacher) {
        (Some(p), teacher) => prepare_distill_loss(ctx, logits, teacher, labels, grad, stats, p)?,
        (None, Some(teacher)) => prepare_logit_mse(ctx, logits, teacher, labels, grad, stats)?,
        (None, None) => unreachable!("logit matching was checked to have a teacher"),
    })
}

/// One optimizer update per parameter tensor (with its zeroed moments or velocity), and a
/// max-norm clamp per weight when the config asks for one.
fn prepare_updates(
    ctx: &GpuContext,
    config: &TrainConfig,
    params: &[ParamGrad],
    specs: &[ParamSpec],
) -> Result<(Vec<OptimDispatch>, Vec<Tensor>, Vec<Dispatch>)> {
    let mut updates = Vec::with_capacity(params.len());
    let mut optimizer_state = Vec::new();
    let mut max_norms = Vec::new();
    for (pg, ps) in params.iter().zip(specs) {
        let mut state = || -> Result<Tensor> {
            let t = Tensor::zeros(ctx, pg.param.shape(), DType::F32)?;
            optimizer_state.push(t.clone());
            Ok(t)
        };
        updates.push(match config.optimizer {
            Optimizer::Adam(p) => prepare_adam(ctx, &pg.param, &pg.grad, &state()?, &state()?, p)?,
            Optimizer::Sgd(p) => prepare_sgd(ctx, &pg.param, &pg.grad, &state()?, p)?,
        });
        if let (Some(limit), ParamKind::Weight) = (config.max_norm, ps.kind) {
            let rows = ps.shape[0];
            let as_matrix = pg.param.reshape(&[rows, ps.len() / rows])?;
            max_norms.push(prepare_max_norm(ctx, &as_matrix, limit)?);
        }
    }
    Ok((updates, optimizer_state, max_norms))
}

impl Trainer {
    /// Prepare training of `model` on batches the caller writes into `inputs` (`[batch, ...]`
    /// F32), `labels` (U32 `[batch]`) and, for distillation or logit matching,
    /// `teacher_logits` (`[batch, classes]`). The batch size is `inputs.shape()[0]`.
    pub fn new(
        ctx: &GpuContext,
        model: &Model,
        inputs: &Tensor,
        labels: &Tensor,
        teacher_logits: Option<&Tensor>,
        config: TrainConfig,
    ) -> Result<Self> {
        config.schedule.check_values().map_err(config_error)?;
        if !(0.0..1.0).contains(&config.label_smoothing) {
            return Err(config_error(format!(
                "label_smoothing must be in [0, 1), got {}",
                config.label_smoothing
            )));
        }
        let spec = model.spec();
        let net = Sequential::new(ctx, spec, model.parameters(), inputs, Mode::Train)?;
        let teacher = check_targets(&config, spec, &net, inputs, labels, teacher_logits)?;
        let stats = new_loss_stats(ctx)?;
        let loss = prepare_loss(ctx, &config, &net, teacher, labels, &stats)?;
        let params = net.parameters();
        let (updates, optimizer_state, max_norms) =
            prepare_updates(ctx, &config, &params, &spec.parameters())?;
        Ok(Self {
            net,
            peak_lr: config.optimizer.lr(),
            config,
            params,
            loss,
            updates,
            max_norms,
            optimizer_state,
            stats,
            step: 0,
        })
    }

    /// Record one training step into `encoder`, reading whatever the inputs, labels and
    /// teacher-logits tensors hold when it runs.
    ///
    /// Per-step values (dropout seeds, the optimizer's step count and the scheduled learning
    /// rate) are uniform buffers updated through the queue, which takes effect at the next
    /// submit: submit the encoder before recording the following step.
    pub fn record_step(&mut self, ctx: &GpuContext, encoder: &mut wgpu::CommandEncoder) {
        self.step += 1;
        let (seed, step) = (self.config.seed, self.step);
        self.net
            .set_seeds(ctx, |layer| dropout_seed(seed, step, layer));
        let lr = self.learning_rate();
        for update in &self.updates {
            update.set_step(ctx, step, lr);
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        record_parts(&mut pass, &self.step_parts());
    }

    /// Every dispatch of one step in recording order, in named parts: each layer's forward,
    /// the loss, each layer's backward, each parameter's update, the max-norm clamps.
    /// [`Trainer::record_step`] records exactly these; a profile times them one by one.
    pub fn step_parts(&self) -> Vec<StepPart<'_>> {
        let mut parts = self.net.forward_parts();
        parts.push(StepPart {
            name: "loss".into(),
            dispatches: vec![&self.loss],
        });
        parts.extend(self.net.backward_parts());
        for (index, update) in self.updates.iter().enumerate() {
            let shape = self.params[index].param.shape();
            parts.push(StepPart {
                name: format!("update {index} {shape:?}"),
                dispatches: vec![update.dispatch()],
            });
        }
        if !self.max_norms.is_empty() {
            parts.push(StepPart {
                name: "max-norm".into(),
                dispatches: self.max_norms.iter().collect(),
            });
        }
        parts
    }

    /// Record one step, submit it and wait for it (tests, benchmarks, simple loops).
    pub fn step(&mut self, ctx: &GpuContext) {
        let mut encoder = ctx.encoder();
        self.record_step(ctx, &mut encoder);
        ctx.submit_and_wait(encoder);
    }

    /// Loss sum, correct count, example count and the hard and soft terms accumulated since
    /// the last reset (blocks).
    pub fn read_stats(&self, ctx: &GpuContext) -> Result<LossStats> {
        Ok(read_loss_stats(ctx, &self.stats)?)
    }

    /// Clear the accumulated stats (recorded; takes effect in order with the steps).
    pub fn reset_stats(&self, encoder: &mut wgpu::CommandEncoder) {
        reset_loss_stats(encoder, &self.stats);
    }

    /// Read the stats and clear them. The clear is submitted without waiting: the queue
    /// runs it before any later step.
    pub fn take_stats(&self, ctx: &GpuContext) -> Result<LossStats> {
        let stats = self.read_stats(ctx)?;
        let mut encoder = ctx.encoder();
        self.reset_stats(&mut encoder);
        ctx.queue.submit(Some(encoder.finish()));
        Ok(stats)
    }

    /// Set the peak rate of the following steps; the config's schedule scales it (with
    /// [`LrSchedule::Constant`] it is the rate itself). [`Trainer::config`] keeps the
    /// optimizer's original rate.
    ///
    /// # Panics
    /// When `lr` is negative or not finite.
    pub fn set_learning_rate(&mut self, lr: f32) {
        assert!(
            lr.is_finite() && lr >= 0.0,
            "learning rate must be finite and >= 0, got {lr}"
        );
        self.peak_lr = lr;
    }

    /// Learning rate of the most recent step (before the first step: of the first).
    pub fn learning_rate(&self) -> f32 {
        self.config.schedule.lr_at(self.peak_lr, self.step.max(1))
    }

    /// Steps recorded so far.
    pub fn steps(&self) -> u32 {
        self.step
    }

    pub fn batch(&self) -> usize {
        self.net.batch()
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Logits `[batch, classes]` of the last forward pass.
    pub fn logits(&self) -> &Tensor {
        self.net.output()
    }

    /// Parameters and the gradient buffers of the last step, in checkpoint order.
    pub fn gradients(&self) -> &[ParamGrad] {
        &self.params
    }

    /// Optimizer state tensors (Adam: m and v per parameter; SGD: velocity).
    pub fn optimizer_state(&self) -> &[Tensor] {
        &self.optimizer_state
    }

    pub fn network(&self) -> &Sequential {
        &self.net
    }
}
