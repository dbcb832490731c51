//! The data set resident on the GPU, and the per-batch gathers that feed a model from it.
//!
//! Each split is uploaded once: images as U8 `[N, H, W]` (a quarter of f32's size), labels
//! as U32 `[N]`. A [`BatchFeed`] owns an index buffer `[N]` (shuffled once per epoch for
//! training, the identity for evaluation) and the gather launches that fill the model's
//! input, label and teacher-logit tensors for the batch starting at a position in it. The
//! gathers are recorded into the same encoder as the step that consumes them.

use anyhow::{Context, Result};
use dk_tensor::ops::gather::{
    GatherDispatch, GatherImageParams, prepare_gather_images, prepare_gather_labels,
    prepare_gather_rows,
};
use dk_tensor::{DType, GpuContext, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;

/// One split (train, validation or test) on the GPU, with its labels kept on the CPU too.
pub struct GpuSplit {
    pub name: &'static str,
    /// U8 `[N, H, W]`.
    pub images: Tensor,
    /// U32 `[N]`.
    pub labels: Tensor,
    pub host_labels: Vec<u8>,
    pub n: usize,
    pub height: usize,
    pub width: usize,
}

impl GpuSplit {
    pub fn upload(ctx: &GpuContext, name: &'static str, data: &Dataset) -> Result<GpuSplit> {
        let shape = [data.n, data.height, data.width];
        // U8 tensors are packed four to a word; pad the byte count to whole words.
        let mut bytes = data.images.clone();
        bytes.resize(bytes.len().div_ceil(4) * 4, 0);
        let images = if bytes.len() == data.images.len() {
            Tensor::from_u8(ctx, &bytes, &shape)
        } else {
            // An odd pixel count: keep the padded bytes as extra (never indexed) rows.
            let row = data.height * data.width;
            let rows = bytes.len().div_ceil(row);
            bytes.resize(rows * row, 0);
            Tensor::from_u8(ctx, &bytes, &[rows, data.height, data.width])
        }
        .with_context(|| format!("uploading the {name} images"))?;
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let labels = Tensor::from_u32(ctx, &labels, &[data.n])
            .with_context(|| format!("uploading the {name} labels"))?;
        Ok(GpuSplit {
            name,
            images,
            labels,
            host_labels: data.labels.clone(),
            n: data.n,
            height: data.height,
            width: data.width,
        })
    }
}

/// What a feed gathers besides the images.
pub struct FeedOptions<'a> {
    pub batch: usize,
    /// Random translation of each image by up to this many pixels (training only).
    pub max_shift: u32,
    /// Per-example teacher logits `[N, C]`, gathered with the same indices as the images.
    pub teacher_logits: Option<&'a Tensor>,
}

/// Index buffer, batch tensors and the gathers that fill them.
pub struct BatchFeed {
    indices: Tensor,
    pub inputs: Tensor,
    pub labels: Tensor,
    pub teacher: Option<Tensor>,
    gathers: Vec<GatherDispatch>,
    n: usize,
    batch: usize,
}

impl BatchFeed {
    /// A feed over `split` with the identity order (evaluation) until [`BatchFeed::shuffle`].
    pub fn new(ctx: &GpuContext, split: &GpuSplit, options: FeedOptions) -> Result<BatchFeed> {
        let batch = options.batch;
        let identity: Vec<u32> = (0..split.n as u32).collect();
        let indices = Tensor::from_u32(ctx, &identity, &[split.n])?;
        let inputs = Tensor::zeros(ctx, &[batch, split.height, split.width], DType::F32)?;
        let labels = Tensor::zeros(ctx, &[batch], DType::U32)?;
        let mut gathers = vec![
            prepare_gather_images(
                ctx,
                &split.images,
                &indices,
                &inputs,
                GatherImageParams {
                    max_shift: options.max_shift,
                    ..GatherImageParams::default()
                },
            )
            .with_context(|| format!("gathering {} images", split.name))?,
            prepare_gather_labels(ctx, &split.labels, &indices, &labels)?,
        ];
        let teacher = match options.teacher_logits {
            Some(source) => {
                let classes = source.shape()[1];
                let out = Tensor::zeros(ctx, &[batch, classes], DType::F32)?;
                gathers.push(
                    prepare_gather_rows(ctx, source, &indices, &out)
                        .context("gathering teacher logits")?,
                );
                Some(out)
            }
            None => None,
        };
        Ok(BatchFeed {
            indices,
            inputs,
            labels,
            teacher,
            gathers,
            n: split.n,
            batch,
        })
    }

    /// Writes a fresh permutation of the split, drawn from `seed` (one upload per epoch).
    pub fn shuffle(&self, ctx: &GpuContext, seed: u64) -> Result<()> {
        let mut order: Vec<u32> = (0..self.n as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        self.indices.write_u32(ctx, &order)?;
        Ok(())
    }

    /// Points every gather at the batch starting at position `start` of the order; `seed`
    /// draws the image shifts. Takes effect at the next submission.
    pub fn set_batch(&mut self, ctx: &GpuContext, start: usize, seed: u32) {
        for gather in &mut self.gathers {
            gather.set_batch(ctx, start as u32, seed);
        }
    }

    /// Records the gathers of the current batch.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        dk_tensor::record_all(encoder, self.gathers.iter().map(|g| g.dispatch()));
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Whole batches of one epoch; the last partial batch is dropped in training (its
    /// zero-filled padding rows would count as label-0 examples in the loss).
    pub fn full_batches(&self) -> usize {
        self.n / self.batch
    }

    /// Batches that cover every example, the last one padded (evaluation).
    pub fn covering_batches(&self) -> usize {
        self.n.div_ceil(self.batch)
    }
}
