//! The training loop against its step: epochs of the `quick` preset's teacher trained by
//! the same loop as `cargo xtask distill` on random images of Fashion-MNIST's split sizes
//! ([`LoopBench`]), next to the same step timed alone on one resident batch.

use std::time::Duration;

use dk_distill::driver::loop_bench::LoopBench;
use dk_tensor::GpuContext;

use crate::bench::{Row, Work};

/// The presets' Fashion-MNIST split: 55,000 training and 5,000 validation images.
const TRAIN_IMAGES: usize = 55_000;
const VALIDATION_IMAGES: usize = 5_000;
/// Epochs trained; the rows take the median epoch.
const EPOCHS: usize = 3;
/// Steps timed for the loop's step, as the run's own estimate does before training.
const TIMED_STEPS: usize = 20;

/// Rows: the step alone, the loop's step and validation pass (what the run's estimate
/// times), and the median epoch with and without its validation pass; every step and
/// epoch row is also given as a share of the rate of the step alone.
pub fn epoch_rows(ctx: &GpuContext, budget: Duration) -> anyhow::Result<Vec<Row>> {
    let bench = LoopBench::quick_teacher(ctx, TRAIN_IMAGES, VALIDATION_IMAGES)?;
    let batch = bench.batch;
    let alone = crate::bench_rows::isolated_step_seconds(ctx, &bench.spec, batch, budget)?;
    let (step, validation) = bench.time_steps(ctx, TIMED_STEPS)?;
    let mut epochs = bench.time_epochs(ctx, EPOCHS)?;
    epochs.sort_by(f64::total_cmp);
    let epoch = epochs[epochs.len() / 2];
    let steps = bench.steps_per_epoch();
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
            format!("{steps} steps, median of {EPOCHS} epochs"),
            per_epoch.clone(),
            epoch - validation,
        ),
        row(
            "epoch",
            format!("{steps} steps + validation, median of {EPOCHS} epochs"),
            per_epoch,
            epoch,
        ),
    ])
}
