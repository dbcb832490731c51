//! Training one model: per epoch a seeded shuffle, then one submission per batch holding
//! the batch's gathers and the whole training step (forward, loss, backward, update).
//!
//! Nothing is read back per step. Loss and accuracy accumulate on the GPU and are read
//! every [`STATS_EVERY`] steps for the progress bar and at the end of each epoch for the
//! learning curve, followed by the validation accuracy.

use std::time::Instant;

use anyhow::{Context, Result};
use dk_nn::{LossConfig, Model, TrainConfig, Trainer};
use dk_tensor::{GpuContext, Tensor};
use indicatif::ProgressBar;

use super::evaluate::Evaluator;
use super::gpu_data::{BatchFeed, FeedOptions, GpuSplit};
use super::seeds::derive_seed;
use crate::metrics;
use crate::results::EpochStats;

/// Steps between two reads of the loss statistics (for the progress bar).
pub const STATS_EVERY: usize = 25;

/// How one model is trained.
pub struct TrainPlan<'a> {
    pub epochs: usize,
    pub batch: usize,
    pub max_shift: u32,
    pub config: TrainConfig,
    /// Per-example targets `[N, C]` of the training split for `Distill` and `LogitMse`.
    pub teacher_logits: Option<&'a Tensor>,
    /// Seeds the shuffles and the image shifts (the dropout masks use `config.seed`).
    pub data_seed: u64,
    /// Print one line per epoch (above the progress bar).
    pub log_epochs: bool,
}

/// What training produced besides the trained parameters (which live in the model).
#[derive(Debug, Clone)]
pub struct Trained {
    pub curve: Vec<EpochStats>,
    pub seconds: f64,
    /// Validation logits after the last epoch.
    pub validation_logits: Vec<f32>,
    /// Validation accuracy after the last epoch.
    pub validation_accuracy: f64,
}

pub fn train(
    ctx: &GpuContext,
    model: &Model,
    train_split: &GpuSplit,
    validation: &GpuSplit,
    plan: &TrainPlan,
    bar: &ProgressBar,
) -> Result<Trained> {
    let batch = plan.batch.min(train_split.n);
    let needs_teacher = !matches!(plan.config.loss, LossConfig::HardLabels);
    let mut feed = BatchFeed::new(
        ctx,
        train_split,
        FeedOptions {
            batch,
            max_shift: plan.max_shift,
            teacher_logits: if needs_teacher {
                plan.teacher_logits
            } else {
                None
            },
        },
    )?;
    let mut trainer = Trainer::new(
        ctx,
        model,
        &feed.inputs,
        &feed.labels,
        feed.teacher.as_ref(),
        plan.config,
    )
    .context("building the training step")?;
    let mut validator = Evaluator::new(ctx, model, validation, 500)?;
    let steps = feed.full_batches();
    bar.set_length((plan.epochs * steps) as u64);
    bar.set_position(0);

    let started = Instant::now();
    let mut curve = Vec::with_capacity(plan.epochs);
    let mut validation_logits = Vec::new();
    for epoch in 1..=plan.epochs {
        let epoch_started = Instant::now();
        feed.shuffle(ctx, derive_seed(plan.data_seed, "shuffle", epoch as u64))?;
        let mut epoch_loss = 0.0;
        let mut epoch_correct = 0u64;
        let mut epoch_count = 0u64;
        let mut window_started = Instant::now();
        for step in 0..steps {
            let shift_seed = derive_seed(plan.data_seed, "shift", (epoch * steps + step) as u64);
            feed.set_batch(ctx, step * batch, shift_seed as u32);
            let mut encoder = ctx.encoder();
            feed.record(&mut encoder);
            trainer.record_step(ctx, &mut encoder);
            ctx.queue.submit(Some(encoder.finish()));
            bar.inc(1);
            if (step + 1) % STATS_EVERY == 0 || step + 1 == steps {
                let stats = trainer.take_stats(ctx)?;
                epoch_loss += stats.loss_sum;
                epoch_correct += stats.correct as u64;
                epoch_count += stats.count as u64;
                let rate = stats.count as f64 / window_started.elapsed().as_secs_f64().max(1e-9);
                window_started = Instant::now();
                bar.set_message(format!(
                    "epoch {epoch}/{} loss {:.4} acc {:.2}% {:.0} ex/s",
                    plan.epochs,
                    stats.mean_loss(),
                    100.0 * stats.accuracy(),
                    rate
                ));
            }
        }
        if !stats_finite(epoch_loss) {
            anyhow::bail!(
                "training diverged in epoch {epoch}: the loss is {epoch_loss} (lower the learning rate)"
            );
        }
        validation_logits = validator.logits(ctx)?;
        let validation_accuracy = metrics::accuracy(
            &validation_logits,
            model.spec().classes(),
            &validation.host_labels,
        );
        let count = epoch_count.max(1) as f64;
        curve.push(EpochStats {
            epoch,
            train_loss: epoch_loss / count,
            train_accuracy: epoch_correct as f64 / count,
            validation_accuracy,
            seconds: epoch_started.elapsed().as_secs_f64(),
        });
        let line = format!(
            "  epoch {epoch:>2}: train loss {:.4}, train acc {:.2}%, validation acc {:.2}% ({:.1} s)",
            epoch_loss / count,
            100.0 * epoch_correct as f64 / count,
            100.0 * validation_accuracy,
            epoch_started.elapsed().as_secs_f64()
        );
        if plan.log_epochs {
            // suspend() prints even when the bar is hidden (output not a terminal).
            bar.suspend(|| println!("{line}"));
        }
    }
    Ok(Trained {
        validation_accuracy: curve.last().map_or(0.0, |e| e.validation_accuracy),
        curve,
        seconds: started.elapsed().as_secs_f64(),
        validation_logits,
    })
}

fn stats_finite(loss: f64) -> bool {
    loss.is_finite()
}
