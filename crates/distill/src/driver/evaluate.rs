//! Logits of a model over a whole split, computed on the GPU.
//!
//! The split's images are gathered batch by batch (identity order), run through an
//! evaluation-mode forward pass, and each batch's logits copied into one result buffer on
//! the GPU; the buffer is read once at the end. The last batch is padded with zero images
//! and its padding rows are cut from the result, so every example counts exactly once.

use anyhow::Result;
use dk_nn::{Inference, Model};
use dk_tensor::{DType, GpuContext, Tensor};

use super::gpu_data::{BatchFeed, FeedOptions, GpuSplit};

/// A model wired to a split: forward passes fed by gathers, logits collected on the GPU.
pub struct Evaluator {
    feed: BatchFeed,
    inference: Inference,
    all_logits: Tensor,
    classes: usize,
    n: usize,
}

impl Evaluator {
    pub fn new(ctx: &GpuContext, model: &Model, split: &GpuSplit, batch: usize) -> Result<Self> {
        let batch = batch.min(split.n).max(1);
        let feed = BatchFeed::new(
            ctx,
            split,
            FeedOptions {
                batch,
                max_shift: 0,
                teacher_logits: None,
            },
        )?;
        let inference = Inference::with_input(ctx, model, &feed.inputs)?;
        let classes = model.spec().classes();
        let rows = feed.covering_batches() * batch;
        let all_logits = Tensor::zeros(ctx, &[rows, classes], DType::F32)?;
        Ok(Evaluator {
            feed,
            inference,
            all_logits,
            classes,
            n: split.n,
        })
    }

    /// Logits `[N, C]` row-major, row i = example i of the split.
    pub fn logits(&mut self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let batch = self.feed.batch();
        let batch_bytes = (batch * self.classes * 4) as u64;
        for b in 0..self.feed.covering_batches() {
            self.feed.set_batch(ctx, b * batch, 0);
            let mut encoder = ctx.encoder();
            self.feed.record(&mut encoder);
            self.inference.record(&mut encoder);
            encoder.copy_buffer_to_buffer(
                self.inference.logits().buffer(),
                0,
                self.all_logits.buffer(),
                b as u64 * batch_bytes,
                batch_bytes,
            );
            // One submission per batch: the gathers' batch position is a uniform that
            // changes between batches.
            ctx.queue.submit(Some(encoder.finish()));
        }
        let mut logits = self.all_logits.to_f32(ctx)?;
        logits.truncate(self.n * self.classes);
        Ok(logits)
    }
}

/// Logits of `model` on `split` (builds a one-off [`Evaluator`]).
pub fn predict(
    ctx: &GpuContext,
    model: &Model,
    split: &GpuSplit,
    batch: usize,
) -> Result<Vec<f32>> {
    Evaluator::new(ctx, model, split, batch)?.logits(ctx)
}
