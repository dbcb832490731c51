//! The training loop against its step: epochs of the `quick` preset's teacher trained by
//! the same loop as `cargo xtask distill` on random images of Fashion-MNIST's split sizes
//! ([`LoopBench`]), next to the same step timed alone on one resident batch.

use std::time::Duration;

use dk_distill::driver::loop_bench::LoopBench;
use dk_tensor::GpuContext;

use crate::bench::{Row, Work};

/// The default preset's Fashion-MNIST split: 55,000 training and 5,000 validation images.
const TRAIN_IMAGES: usize = 55_000;
const VALIDATION_IMAGES: usize = 5_000;
/// Rounds of (the step alone, then one epoch of a fresh model). The machine's speed drifts
/// by tens of percent over minutes, so each epoch is set against the step timed just before
/// it, and the rows take the round whose share is the median.
const ROUNDS: usize = 5;
/// Steps timed for the loop's step, as the run's own estimate does before training.
const TIMED_STEPS: usize = 20;

/// One round: seconds of the step alone and of the epoch after it.
struct Round {
    alone: f64,
    epoch: f64,
}

impl Round {
    /// The epoch's rate as a share of the step alone's, over `steps` steps.
    fn share(&self, steps: usize) -> f64 {
        self.alone * steps as f64 / self.epoch
    }
}

/// [`ROUNDS`] rounds sorted by their share, lowest first.
fn paired_rounds(
    ctx: &GpuContext,
    bench: &LoopBench,
    budget: Duration,
) -> anyhow::Result<Vec<Round>> {
    let mut trainer = crate::bench_rows::isolated_step_trainer(ctx, &bench.spec, bench.batch)?;
    let steps = bench.steps_per_epoch();
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let alone = crate::bench_rows::time_step(ctx, &mut trainer, budget);
        let epoch = bench.time_epochs(ctx, 1)?[0];
        rounds.push(Round { alone, epoch });
    }
    rounds.sort_by(|a, b| a.share(steps).total_cmp(&b.share(steps)));
    Ok(rounds)
}

/// Rows: the step alone, the loop's step and validation pass (what the run's estimate
/// times), and the epoch with and without its validation pass, from the round of median
/// share; every step and epoch row is also given as a share of the rate of the step alone,
/// and the epoch rows name the range of the shares over the rounds.
pub fn epoch_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let bench = LoopBench::quick_teacher(ctx, TRAIN_IMAGES, VALIDATION_IMAGES)?;
    let batch = bench.batch;
    let (step, validation) = bench.time_steps(ctx, TIMED_STEPS)?;
    let rounds = paired_rounds(ctx, &bench, budget)?;
    let steps = bench.steps_per_epoch();
    let Round { alone, epoch } = rounds[ROUNDS / 2];
    let spread = format!(
        "median of {ROUNDS} rounds, shares {:.0}-{:.0}%",
        100.0 * rounds[0].share(steps),
        100.0 * rounds[ROUNDS - 1].share(steps)
    );
    let per_step = Work::ExamplesAgainst {
        examples: batch as f64,
        reference: alone,
    };
    let per_epoch = Work::ExamplesAgainst {
        examples: (steps * batch) as f64,
        reference: alone * steps as f64,
    };
    let row = |what: &str, shape: String, work: Work, seconds: f64| Row {
        kernel: format!("quick teacher {}: {what}", bench.spec),
        shape,
        work,
        seconds,
    };
    Ok(vec![
        row(
            "step alone, one resident batch",
            format!("batch {batch}, Adam"),
            per_step.clone(),
            alone,
        ),
        row(
            "step in the loop, shuffled batches gathered",
            format!("{TIMED_STEPS} steps timed"),
            per_step,
            step,
        ),
        row(
            "validation pass",
            format!("{} images", bench.validation_images()),
            Work::Examples(bench.validation_images() as f64),
            validation,
        ),
        row(
            "epoch without its validation pass",
            format!("{steps} steps, {spread}"),
            per_epoch.clone(),
            epoch - validation,
        ),
        row(
            "epoch",
            format!("{steps} steps + validation, {spread}"),
            per_epoch,
            epoch,
        ),
    ])
}
