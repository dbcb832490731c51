//! Training one model: per epoch a seeded shuffle, then one submission per batch holding
//! the batch's gathers and the whole training step (forward, loss, backward, update).
//!
//! Nothing is read back per step. Loss and accuracy accumulate on the GPU and are read
//! every [`STATS_EVERY`] steps for the progress bar and the divergence check, and at the end
//! of each epoch for the learning curve, followed by the validation pass. The learning rate
//! follows the schedule through the per-step uniform the optimizer already takes.
//!
//! The model kept is the one of the best validation epoch (accuracy, ties by NLL): its
//! weights are snapshotted on the GPU ([`BestWeights`]) and copied back at the end. With a
//! patience, training stops after that many epochs without improvement. A loss that is not
//! finite (or absurdly large) stops training at the read that shows it; the best epoch so
//! far is kept and the run says which setting to lower.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use dk_nn::{LossConfig, Model, TrainConfig, Trainer};
use dk_tensor::ops::loss::LossStats;
use dk_tensor::{GpuContext, Tensor};
use indicatif::ProgressBar;

use super::best::{BestWeights, Score};
use super::evaluate::Evaluator;
use super::gpu_data::{BatchFeed, FeedOptions, GpuSplit};
use super::session::EVAL_BATCH;
use crate::config::ScheduleConfig;
use crate::metrics;
use crate::results::EpochStats;
use crate::seeds::derive_seed;

/// Steps between two reads of the loss statistics (progress bar, divergence check).
pub const STATS_EVERY: usize = 25;

/// A mean training loss above this is treated as divergence, like a non-finite one.
pub const DIVERGED_LOSS: f64 = 1e6;

/// How one model is trained.
pub struct TrainPlan<'a> {
    /// "teacher" or "student": names the settings in messages.
    pub role: &'static str,
    pub epochs: usize,
    pub batch: usize,
    pub max_shift: u32,
    pub config: TrainConfig,
    pub schedule: ScheduleConfig,
    /// Stop after this many epochs without a better validation score.
    pub patience: Option<usize>,
    /// Per-example targets `[N, C]` of the training split for `Distill` and `LogitMse`.
    pub teacher_logits: Option<&'a Tensor>,
    /// Seeds the shuffles and the image shifts (the dropout masks use `config.seed`).
    pub data_seed: u64,
    /// Print one line per epoch (above the progress bar).
    pub log_epochs: bool,
}

/// Why training ended.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// Every planned epoch ran.
    Completed,
    /// `patience` epochs passed without improvement after the best epoch.
    EarlyStopped { after_epoch: usize },
    /// The loss became non-finite or exploded in `epoch`; the best earlier epoch was kept.
    Diverged { epoch: usize, loss: f64 },
    /// The training accuracy fell back to chance in `epoch` after the model had learned
    /// (see [`collapsed`]); the best earlier epoch was kept.
    Collapsed { epoch: usize, accuracy: f64 },
}

impl Stop {
    /// The name results.json records.
    pub fn name(&self) -> &'static str {
        match self {
            Stop::Completed => "completed",
            Stop::EarlyStopped { .. } => "early-stopped",
            Stop::Diverged { .. } => "diverged",
            Stop::Collapsed { .. } => "collapsed",
        }
    }
}

/// What training produced besides the trained parameters (which live in the model and are
/// those of `best_epoch`).
#[derive(Debug, Clone)]
pub struct Trained {
    pub curve: Vec<EpochStats>,
    pub seconds: f64,
    /// Validation logits of the kept epoch.
    pub validation_logits: Vec<f32>,
    /// Validation accuracy of the kept epoch.
    pub validation_accuracy: f64,
    /// The kept epoch (1-based; 0 for a model that was not trained here).
    pub best_epoch: usize,
    pub stop: Stop,
    /// Optimisation steps taken.
    pub steps: usize,
}

impl Trained {
    /// A model trained elsewhere (loaded, or derived from a trained one): no curve.
    pub fn without_curve(validation_logits: Vec<f32>, validation_accuracy: f64) -> Trained {
        Trained {
            curve: Vec::new(),
            seconds: 0.0,
            validation_logits,
            validation_accuracy,
            best_epoch: 0,
            stop: Stop::Completed,
            steps: 0,
        }
    }

    /// A line for the run's warnings when training did not end as planned.
    pub fn divergence_warning(&self, name: &str, lr_setting: &str) -> Option<String> {
        let what = match self.stop {
            Stop::Diverged { epoch, loss } => {
                format!("training diverged in epoch {epoch} (mean loss {loss:.3e})")
            }
            Stop::Collapsed { epoch, accuracy } => format!(
                "training accuracy collapsed to {:.1}% in epoch {epoch}",
                100.0 * accuracy
            ),
            _ => return None,
        };
        Some(format!(
            "{name}: {what}; kept the weights of epoch {} (validation {:.2}%); lower {lr_setting}",
            self.best_epoch,
            100.0 * self.validation_accuracy
        ))
    }
}

/// Sums of one epoch's loss statistics.
#[derive(Debug, Default, Clone, Copy)]
struct EpochTotals {
    loss: f64,
    hard: f64,
    soft: f64,
    correct: u64,
    count: u64,
}

impl EpochTotals {
    fn add(&mut self, stats: &LossStats) {
        self.loss += stats.loss_sum;
        self.hard += stats.hard_sum;
        self.soft += stats.soft_sum;
        self.correct += u64::from(stats.correct);
        self.count += u64::from(stats.count);
    }

    fn mean(&self, sum: f64) -> f64 {
        sum / self.count.max(1) as f64
    }
}

/// Why an epoch ended early.
enum Diverged {
    /// A window's mean loss was not finite or above [`DIVERGED_LOSS`].
    Loss(f64),
    /// A window's training accuracy fell back to chance ([`collapsed`]).
    Accuracy(f64),
}

/// Whether a window's training accuracy `now` is a collapse: back within a tenth of the way
/// from chance (`1 / classes`) to 100%, after an earlier window (`best`) had come at least
/// halfway. Such a fall is what an exploding update leaves when the loss stays finite
/// (dead units, saturated logits).
pub fn collapsed(now: f64, best: f64, classes: usize) -> bool {
    let chance = 1.0 / classes.max(1) as f64;
    let learned = best >= chance + 0.5 * (1.0 - chance);
    learned && now <= chance + 0.1 * (1.0 - chance)
}

/// The mean loss of a statistics window that shows divergence: not finite (any of its
/// terms: a sum the GPU flagged reads as infinite) or above [`DIVERGED_LOSS`].
fn diverged_loss(stats: &LossStats) -> Option<f64> {
    let loss = stats.mean_loss();
    let terms = loss + stats.mean_hard_loss() + stats.mean_soft_loss();
    if !terms.is_finite() {
        Some(f64::INFINITY)
    } else {
        (loss > DIVERGED_LOSS).then_some(loss)
    }
}

/// A timed block of steps lasts at least this long: a few steps of a small model take tens
/// of milliseconds, which one pause of a busy machine can stretch by half.
const MIN_TIMED_BLOCK_S: f64 = 0.5;

/// The most steps in one timed block, however fast the step.
const MAX_TIMED_STEPS: usize = 4096;

/// Seconds of one training step and of one validation pass of `model` trained by `plan`,
/// measured on the adapter: a few warm-up steps (pipelines, first-touch costs), then the
/// faster of two blocks of at least `steps` timed steps (doubled until a block lasts
/// [`MIN_TIMED_BLOCK_S`]), and the second of two validation passes.
/// The model's weights change: use a throwaway model.
pub fn time_training(
    ctx: &GpuContext,
    model: &Model,
    train_split: &GpuSplit,
    validation: &GpuSplit,
    plan: &TrainPlan,
    steps: usize,
) -> Result<(f64, f64)> {
    let mut run = Run::new(ctx, model, train_split, validation, plan)?;
    run.feed.shuffle(ctx, 0)?;
    run.steps(ctx, 2);
    ctx.wait();
    // The faster of two blocks: a pause of the machine in one block is not the run's rate.
    let mut steps = steps.max(1);
    let mut step = f64::INFINITY;
    let mut blocks = 0;
    while blocks < 2 {
        let started = Instant::now();
        run.steps(ctx, steps);
        ctx.wait();
        let seconds = started.elapsed().as_secs_f64();
        if seconds < MIN_TIMED_BLOCK_S && steps < MAX_TIMED_STEPS {
            steps *= 2;
            continue;
        }
        step = step.min(seconds / steps as f64);
        blocks += 1;
    }
    // The first pass also builds the evaluation's pipelines, which the run does once.
    run.validator.logits(ctx)?;
    let started = Instant::now();
    run.validator.logits(ctx)?;
    Ok((step, started.elapsed().as_secs_f64()))
}

/// The state of one training run: batches, the step, validation and the best weights.
struct Run<'a> {
    plan: &'a TrainPlan<'a>,
    feed: BatchFeed,
    trainer: Trainer,
    validator: Evaluator,
    validation: &'a GpuSplit,
    best: BestWeights,
    best_logits: Vec<f32>,
    steps_per_epoch: usize,
    total_steps: usize,
    classes: usize,
    /// The best training accuracy of a statistics window so far ([`collapsed`]).
    best_window_accuracy: f64,
}

pub fn train(
    ctx: &GpuContext,
    model: &Model,
    train_split: &GpuSplit,
    validation: &GpuSplit,
    plan: &TrainPlan,
    bar: &ProgressBar,
) -> Result<Trained> {
    let started = Instant::now();
    let mut run = Run::new(ctx, model, train_split, validation, plan)?;
    bar.set_length(run.total_steps as u64);
    bar.set_position(0);
    let mut curve = Vec::with_capacity(plan.epochs);
    let mut stop = Stop::Completed;
    for epoch in 1..=plan.epochs {
        let epoch_started = Instant::now();
        let totals = match run.epoch(ctx, epoch, bar)? {
            Ok(totals) => totals,
            Err(why) => {
                stop = run.diverged(epoch, why)?;
                break;
            }
        };
        let stats = run.validate(ctx, epoch, &totals, epoch_started)?;
        let stopping = plan
            .patience
            .is_some_and(|p| run.best.epochs_since_best(epoch) >= p)
            && epoch < plan.epochs;
        if plan.log_epochs && (stopping || shows_epoch(epoch, plan.epochs)) {
            // suspend() prints even when the bar is hidden (output not a terminal).
            bar.suspend(|| println!("{}", epoch_line(&stats, &run.best)));
        }
        curve.push(stats);
        if stopping {
            stop = Stop::EarlyStopped { after_epoch: epoch };
            break;
        }
    }
    run.best.restore(ctx);
    let (best_epoch, score) = run.best.best().context("no epoch was validated")?;
    print_kept_epoch(plan, bar, best_epoch, &score);
    Ok(Trained {
        steps: curve.len() * run.steps_per_epoch,
        curve,
        seconds: started.elapsed().as_secs_f64(),
        validation_logits: std::mem::take(&mut run.best_logits),
        validation_accuracy: score.accuracy,
        best_epoch,
        stop,
    })
}

impl<'a> Run<'a> {
    fn new(
        ctx: &GpuContext,
        model: &Model,
        train_split: &GpuSplit,
        validation: &'a GpuSplit,
        plan: &'a TrainPlan<'a>,
    ) -> Result<Run<'a>> {
        let batch = plan.batch.min(train_split.n);
        let needs_teacher = !matches!(plan.config.loss, LossConfig::HardLabels);
        let feed = BatchFeed::new(
            ctx,
            train_split,
            FeedOptions {
                batch,
                max_shift: plan.max_shift,
                teacher_logits: plan.teacher_logits.filter(|_| needs_teacher),
            },
        )?;
        let steps_per_epoch = feed.full_batches();
        let total_steps = plan.epochs * steps_per_epoch;
        let config = plan
            .config
            .with_schedule(plan.schedule.to_lr_schedule(total_steps, steps_per_epoch));
        let trainer = Trainer::new(
            ctx,
            model,
            &feed.inputs,
            &feed.labels,
            feed.teacher.as_ref(),
            config,
        )
        .context("building the training step")?;
        Ok(Run {
            plan,
            feed,
            trainer,
            validator: Evaluator::new(ctx, model, validation, EVAL_BATCH)?,
            validation,
            best: BestWeights::new(ctx, model)?,
            best_logits: Vec::new(),
            steps_per_epoch,
            total_steps,
            classes: model.spec().classes(),
            best_window_accuracy: 0.0,
        })
    }

    /// `n` steps on the first batches of the current order (timing only).
    fn steps(&mut self, ctx: &GpuContext, n: usize) {
        for step in 0..n {
            self.submit_step(ctx, step % self.steps_per_epoch, step as u32);
        }
    }

    /// Submits one step on batch `index` of the current order: its gathers (with image
    /// shifts seeded by `shift_seed`) and the whole training step, in one submission.
    fn submit_step(&mut self, ctx: &GpuContext, index: usize, shift_seed: u32) {
        self.feed
            .set_batch(ctx, index * self.feed.batch(), shift_seed);
        let mut encoder = ctx.encoder();
        self.feed.record(&mut encoder);
        self.trainer.record_step(ctx, &mut encoder);
        ctx.queue.submit(Some(encoder.finish()));
    }

    /// One pass over the shuffled training split; `Err(Diverged)` at the first statistics
    /// read whose loss is not finite or above [`DIVERGED_LOSS`].
    fn epoch(
        &mut self,
        ctx: &GpuContext,
        epoch: usize,
        bar: &ProgressBar,
    ) -> Result<std::result::Result<EpochTotals, Diverged>> {
        let (plan, steps) = (self.plan, self.steps_per_epoch);
        self.feed
            .shuffle(ctx, derive_seed(plan.data_seed, "shuffle", epoch as u64))?;
        let mut totals = EpochTotals::default();
        let mut window_started = Instant::now();
        for step in 0..steps {
            let shift_seed = derive_seed(plan.data_seed, "shift", (epoch * steps + step) as u64);
            self.submit_step(ctx, step, shift_seed as u32);
            bar.inc(1);
            if (step + 1) % STATS_EVERY == 0 || step + 1 == steps {
                let stats = self.trainer.take_stats(ctx)?;
                totals.add(&stats);
                if let Some(loss) = diverged_loss(&stats) {
                    return Ok(Err(Diverged::Loss(loss)));
                }
                if collapsed(stats.accuracy(), self.best_window_accuracy, self.classes) {
                    return Ok(Err(Diverged::Accuracy(stats.accuracy())));
                }
                self.best_window_accuracy = self.best_window_accuracy.max(stats.accuracy());
                let rate = stats.count as f64 / window_started.elapsed().as_secs_f64().max(1e-9);
                window_started = Instant::now();
                bar.set_message(progress_message(epoch, plan.epochs, &stats, rate));
            }
        }
        Ok(Ok(totals))
    }

    /// Validates the epoch's weights, keeps them when they are the best so far, and
    /// returns the epoch's learning-curve point.
    fn validate(
        &mut self,
        ctx: &GpuContext,
        epoch: usize,
        totals: &EpochTotals,
        epoch_started: Instant,
    ) -> Result<EpochStats> {
        let logits = self.validator.logits(ctx)?;
        let labels = &self.validation.host_labels;
        let score = Score {
            accuracy: metrics::accuracy(&logits, self.classes, labels),
            nll: metrics::nll(&logits, self.classes, labels),
        };
        if self.best.offer(ctx, epoch, score) {
            self.best_logits = logits;
        }
        let soft_term = !matches!(self.plan.config.loss, LossConfig::HardLabels);
        Ok(EpochStats {
            epoch,
            train_loss: totals.mean(totals.loss),
            train_hard_loss: Some(totals.mean(totals.hard)),
            train_soft_loss: soft_term.then(|| totals.mean(totals.soft)),
            train_accuracy: totals.mean(totals.correct as f64),
            validation_accuracy: score.accuracy,
            validation_nll: Some(score.nll),
            learning_rate: Some(f64::from(self.trainer.learning_rate())),
            seconds: epoch_started.elapsed().as_secs_f64(),
        })
    }

    /// What a divergence in `epoch` leaves: the best earlier epoch, or an error when
    /// there is none.
    fn diverged(&self, epoch: usize, why: Diverged) -> Result<Stop> {
        let (stop, verb, detail) = match why {
            Diverged::Loss(loss) => (
                Stop::Diverged { epoch, loss },
                "diverged",
                format!("mean loss {loss:.3e}"),
            ),
            Diverged::Accuracy(accuracy) => (
                Stop::Collapsed { epoch, accuracy },
                "collapsed",
                format!("training accuracy {:.1}%", 100.0 * accuracy),
            ),
        };
        if self.best.best().is_none() {
            let role = self.plan.role;
            bail!(
                "training {verb} in epoch {epoch} before any epoch was validated ({detail}): lower {role}.optimizer.lr (--{role}-lr)"
            );
        }
        Ok(stop)
    }
}

fn progress_message(epoch: usize, epochs: usize, stats: &LossStats, rate: f64) -> String {
    let soft = if stats.soft_sum != 0.0 {
        format!(
            " soft {:.4}",
            stats.soft_sum / f64::from(stats.count.max(1))
        )
    } else {
        String::new()
    };
    format!(
        "epoch {epoch}/{epochs} hard {:.4}{soft} acc {:.2}% {rate:.0} ex/s",
        stats.hard_sum / f64::from(stats.count.max(1)),
        100.0 * stats.accuracy(),
    )
}

/// Most epoch lines printed per model: a small table trains for thousands of short epochs.
const MAX_EPOCH_LINES: usize = 40;

/// Whether epoch `epoch` of `epochs` gets a line: all of them up to [`MAX_EPOCH_LINES`],
/// else the first, the last and every n-th, n chosen so that at most two lines more than that
/// are printed (a kept epoch between them gets a line of its own after training). Every
/// epoch is still validated and recorded in the learning curves.
fn shows_epoch(epoch: usize, epochs: usize) -> bool {
    let every = epochs.div_ceil(MAX_EPOCH_LINES).max(1);
    epoch == 1 || epoch == epochs || epoch.is_multiple_of(every)
}

/// The kept epoch's line, when the epoch lines skipped it.
fn print_kept_epoch(plan: &TrainPlan, bar: &ProgressBar, best_epoch: usize, score: &Score) {
    if plan.log_epochs && !shows_epoch(best_epoch, plan.epochs) {
        bar.suspend(|| {
            println!(
                "  kept epoch {best_epoch}: validation {:.2}% (NLL {:.4})",
                100.0 * score.accuracy,
                score.nll
            )
        });
    }
}

fn epoch_line(stats: &EpochStats, best: &BestWeights) -> String {
    let soft = stats
        .train_soft_loss
        .map_or(String::new(), |s| format!(", soft {s:.4}"));
    let mark = if best.best().is_some_and(|(e, _)| e == stats.epoch) {
        " *"
    } else {
        ""
    };
    format!(
        "  epoch {:>2}: train hard {:.4}{soft}, acc {:.2}%; validation {:.2}% (NLL {:.4}){mark}; lr {:.2e} ({:.1} s)",
        stats.epoch,
        stats.train_hard_loss.unwrap_or(stats.train_loss),
        100.0 * stats.train_accuracy,
        100.0 * stats.validation_accuracy,
        stats.validation_nll.unwrap_or(f64::NAN),
        stats.learning_rate.unwrap_or(f64::NAN),
        stats.seconds
    )
}

#[cfg(test)]
mod tests {
    use dk_nn::{ModelSpec, Optimizer};
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::data::Dataset;
    use crate::driver::evaluate::predict;

    #[test]
    fn long_runs_print_a_bounded_number_of_epoch_lines() {
        for epochs in [1, 12, 40, 41, 938, 3750] {
            let shown: Vec<usize> = (1..=epochs).filter(|&e| shows_epoch(e, epochs)).collect();
            assert!(
                shown.len() <= MAX_EPOCH_LINES + 2,
                "{epochs}: {}",
                shown.len()
            );
            assert_eq!(shown.len() == epochs, epochs <= MAX_EPOCH_LINES, "{epochs}");
            assert_eq!((shown[0], *shown.last().unwrap()), (1, epochs), "{epochs}");
        }
    }

    /// Three noisy Gaussian clusters in 6 dimensions.
    fn clusters(n: usize, seed: u64) -> Dataset {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let (mut features, mut labels) = (Vec::new(), Vec::new());
        for i in 0..n {
            let class = (i % 3) as u8;
            for d in 0..6 {
                let centre = if d % 3 == class as usize { 1.0 } else { 0.0 };
                features.push(centre + rng.random_range(-1.2f32..1.2));
            }
            labels.push(class);
        }
        Dataset::from_features(
            features,
            labels,
            6,
            vec!["a".into(), "b".into(), "c".into()],
        )
    }

    fn plan(lr: f32, epochs: usize, patience: Option<usize>) -> TrainPlan<'static> {
        let mut config = TrainConfig::new(Optimizer::adam(lr));
        config.seed = 5;
        TrainPlan {
            role: "student",
            epochs,
            batch: 16,
            max_shift: 0,
            config,
            schedule: ScheduleConfig::default(),
            patience,
            teacher_logits: None,
            data_seed: 9,
            log_epochs: false,
        }
    }

    fn setup() -> (GpuContext, GpuSplit, GpuSplit, Model) {
        let ctx = GpuContext::new().expect("a Vulkan adapter (lavapipe on CPU machines)");
        let train_split = GpuSplit::upload(&ctx, "training", &clusters(200, 1)).unwrap();
        let validation = GpuSplit::upload(&ctx, "validation", &clusters(61, 2)).unwrap();
        let spec = ModelSpec::parse("6-12-3").unwrap();
        let model = Model::new(&ctx, spec, 3).unwrap();
        (ctx, train_split, validation, model)
    }

    #[test]
    fn keeps_the_best_validation_epoch() {
        let (ctx, train_split, validation, model) = setup();
        let bar = ProgressBar::hidden();
        let trained = train(
            &ctx,
            &model,
            &train_split,
            &validation,
            &plan(0.05, 8, None),
            &bar,
        )
        .unwrap();
        assert_eq!(trained.curve.len(), 8);
        assert_eq!(trained.stop, Stop::Completed);
        assert_eq!(trained.steps, 8 * 12);
        let best = trained
            .curve
            .iter()
            .map(|e| e.validation_accuracy)
            .fold(f64::MIN, f64::max);
        assert_eq!(trained.validation_accuracy, best);
        assert_eq!(
            trained.curve[trained.best_epoch - 1].validation_accuracy,
            best
        );
        // The model now holds that epoch's weights: a fresh evaluation agrees.
        let logits = predict(&ctx, &model, &validation, 500).unwrap();
        assert_eq!(logits, trained.validation_logits);
        assert_eq!(metrics::accuracy(&logits, 3, &validation.host_labels), best);
        // The cosine schedule ends near 0 and every epoch records its rate.
        let last_lr = trained.curve.last().unwrap().learning_rate.unwrap();
        assert!(last_lr < 1e-4, "{last_lr}");
    }

    #[test]
    fn stops_early_after_patience_epochs_without_gain() {
        let (ctx, train_split, validation, model) = setup();
        let trained = train(
            &ctx,
            &model,
            &train_split,
            &validation,
            &plan(0.05, 60, Some(2)),
            &ProgressBar::hidden(),
        )
        .unwrap();
        let Stop::EarlyStopped { after_epoch } = trained.stop else {
            panic!("expected an early stop, got {:?}", trained.stop);
        };
        assert_eq!(after_epoch, trained.curve.len());
        assert_eq!(after_epoch, trained.best_epoch + 2);
    }

    #[test]
    fn divergence_stops_training_and_names_the_setting() {
        let (ctx, train_split, validation, model) = setup();
        let mut diverging = plan(1e12, 3, None);
        diverging.config.optimizer = Optimizer::sgd(1e12, 0.9);
        diverging.schedule.kind = crate::config::ScheduleKind::Constant;
        let err = train(
            &ctx,
            &model,
            &train_split,
            &validation,
            &diverging,
            &ProgressBar::hidden(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("diverged in epoch 1") && err.contains("student.optimizer.lr"),
            "{err}"
        );
    }

    #[test]
    fn a_flagged_sum_of_any_term_is_divergence() {
        let stats = |loss_sum: f64, hard_sum: f64, soft_sum: f64| LossStats {
            loss_sum,
            correct: 0,
            count: 10,
            hard_sum,
            soft_sum,
        };
        assert_eq!(diverged_loss(&stats(5.0, 4.0, 1.0)), None);
        assert_eq!(diverged_loss(&stats(2e7, 4.0, 1.0)), Some(2e6));
        for flagged in [
            stats(f64::INFINITY, 4.0, 1.0),
            stats(5.0, f64::INFINITY, 1.0),
            stats(5.0, 4.0, f64::INFINITY),
        ] {
            assert_eq!(diverged_loss(&flagged), Some(f64::INFINITY));
        }
    }

    #[test]
    fn a_fall_to_chance_after_learning_is_a_collapse() {
        // Ten classes: learned at >= 55%, collapsed at <= 19%.
        assert!(collapsed(0.15, 0.80, 10));
        assert!(
            !collapsed(0.15, 0.50, 10),
            "never learned: the start of training"
        );
        assert!(!collapsed(0.40, 0.80, 10), "a bad window, not chance");
        // Two classes: learned at >= 75%, collapsed at <= 55%.
        assert!(collapsed(0.52, 0.90, 2));
        assert!(!collapsed(0.60, 0.90, 2));
    }

    #[test]
    fn a_collapse_is_reported_with_the_setting_to_lower() {
        let trained = Trained {
            stop: Stop::Collapsed {
                epoch: 4,
                accuracy: 0.1,
            },
            best_epoch: 3,
            ..Trained::without_curve(Vec::new(), 0.8)
        };
        let warning = trained
            .divergence_warning("teacher-2", "teacher.optimizer.lr")
            .unwrap();
        assert!(
            warning.contains("collapsed to 10.0% in epoch 4")
                && warning.contains("epoch 3")
                && warning.contains("teacher.optimizer.lr"),
            "{warning}"
        );
        assert_eq!(trained.stop.name(), "collapsed");
    }
}
