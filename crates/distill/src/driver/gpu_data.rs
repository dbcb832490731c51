//! The data set resident on the GPU, and the per-batch gathers that feed a model from it.
//!
//! Each split is uploaded once: images as U8 `[N, C, H, W]` (a quarter of f32's size),
//! tabular features as F32 `[N, D]` (never quantised), labels as U32 `[N]`. A [`BatchFeed`]
//! owns an index buffer `[N]` (shuffled once per epoch for training, the identity for
//! evaluation) and the gather launches that fill the model's input, label and
//! teacher-logit tensors for the batch starting at a position in it. The gathers are
//! recorded into the same encoder as the step that consumes them.

use anyhow::{Context, Result};
use dk_tensor::ops::gather::{
    GatherDispatch, GatherImageParams, prepare_gather_images, prepare_gather_labels,
    prepare_gather_rows,
};
use dk_tensor::{DType, GpuContext, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::data::{Dataset, Storage};

/// One split (train, validation or test) on the GPU, with its labels kept on the CPU too.
pub struct GpuSplit {
    pub name: &'static str,
    /// U8 `[N, C, H, W]` pixels, or F32 `[N, D]` features (see [`GpuSplit::tabular`]).
    pub images: Tensor,
    /// U32 `[N]`.
    pub labels: Tensor,
    pub host_labels: Vec<u8>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// True when `images` holds f32 features (gathered as rows, never shifted).
    pub tabular: bool,
}

/// A split whose values do not fit one storage binding of the adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitTooLarge {
    pub name: String,
    pub examples: usize,
    pub values_per_example: usize,
    pub bytes: u64,
    /// The adapter's `max_storage_buffer_binding_size`.
    pub limit: u64,
    /// How many examples of the split would fit.
    pub fits: u64,
}

impl std::fmt::Display for SplitTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        write!(
            f,
            "the {} split is too large for this adapter: {} examples of {} values take {} bytes ({:.1} MiB), over its max_storage_buffer_binding_size of {} bytes ({:.1} MiB); {} examples fit",
            self.name,
            self.examples,
            self.values_per_example,
            self.bytes,
            mib(self.bytes),
            self.limit,
            mib(self.limit),
            self.fits
        )
    }
}

impl std::error::Error for SplitTooLarge {}

/// Error unless the values of split `name` fit in one storage binding of `limit` bytes.
pub fn check_fits(
    name: &str,
    data: &Dataset,
    limit: u64,
) -> std::result::Result<(), SplitTooLarge> {
    // U8 tensors are padded to whole 4-byte words.
    let bytes = match &data.images {
        Storage::Pixels(pixels) => pixels.len().div_ceil(4) as u64 * 4,
        Storage::Features(features) => 4 * features.len() as u64,
    };
    if bytes <= limit {
        return Ok(());
    }
    Err(SplitTooLarge {
        name: name.to_string(),
        examples: data.n,
        values_per_example: data.values_per_example(),
        bytes,
        limit,
        fits: examples_fitting(data, limit) as u64,
    })
}

/// Bytes one example of `data` takes on the GPU: a pixel a byte, a feature four.
pub fn example_bytes(data: &Dataset) -> u64 {
    let values = data.values_per_example() as u64;
    match &data.images {
        Storage::Pixels(_) => values,
        Storage::Features(_) => 4 * values,
    }
}

/// How many examples shaped like `data`'s fit one storage binding of `limit` bytes, leaving
/// room for the last word's padding (up to 3 bytes).
pub fn examples_fitting(data: &Dataset, limit: u64) -> usize {
    (limit.saturating_sub(3) / example_bytes(data).max(1)) as usize
}

impl GpuSplit {
    /// Uploads `data`. A split larger than one storage binding of the adapter is refused
    /// with the sizes and the flag that shrinks it (never silently cut).
    pub fn upload(ctx: &GpuContext, name: &'static str, data: &Dataset) -> Result<GpuSplit> {
        check_fits(name, data, ctx.max_binding_bytes())?;
        let per_example = data.values_per_example();
        let images = match &data.images {
            Storage::Pixels(pixels) => Tensor::from_u8(
                ctx,
                pixels,
                &[data.n, data.channels, data.height, data.width],
            ),
            Storage::Features(features) => Tensor::from_f32(ctx, features, &[data.n, per_example]),
        }
        .with_context(|| format!("uploading the {name} examples"))?;
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let labels = Tensor::from_u32(ctx, &labels, &[data.n])
            .with_context(|| format!("uploading the {name} labels"))?;
        Ok(GpuSplit {
            name,
            images,
            labels,
            host_labels: data.labels.clone(),
            n: data.n,
            channels: data.channels,
            height: data.height,
            width: data.width,
            tabular: data.is_tabular(),
        })
    }

    /// The shape of one batch of model inputs: `[batch, C, H, W]` or `[batch, D]`.
    fn batch_shape(&self, batch: usize) -> Vec<usize> {
        if self.tabular {
            vec![batch, self.width]
        } else {
            vec![batch, self.channels, self.height, self.width]
        }
    }
}

/// What a feed gathers besides the images.
pub struct FeedOptions<'a> {
    pub batch: usize,
    /// Random translation of each image by up to this many pixels, each channel plane
    /// alike (training only; ignored for tabular data).
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
        let inputs = Tensor::zeros(ctx, &split.batch_shape(batch), DType::F32)?;
        let labels = Tensor::zeros(ctx, &[batch], DType::U32)?;
        let input_gather = if split.tabular {
            prepare_gather_rows(ctx, &split.images, &indices, &inputs)
                .with_context(|| format!("gathering {} features", split.name))?
        } else {
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
            .with_context(|| format!("gathering {} images", split.name))?
        };
        let mut gathers = vec![
            input_gather,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_over_the_binding_limit_is_refused_with_its_sizes() {
        let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
        // 45,000 CIFAR images against lavapipe's 128 MiB: 138,240,000 bytes.
        let limit = 128 << 20;
        let images = Dataset::from_pixels(
            vec![0; 45_000 * 3072],
            vec![0; 45_000],
            [3, 32, 32],
            names.clone(),
        );
        let too_large = check_fits("training", &images, limit).unwrap_err();
        assert_eq!(too_large.fits, 43_690);
        let text = too_large.to_string();
        assert!(!text.contains('\n'), "{text}");
        for needle in [
            "the training split is too large",
            "45000 examples of 3072 values take 138240000 bytes (131.8 MiB)",
            "max_storage_buffer_binding_size of 134217728 bytes (128.0 MiB)",
            "43690 examples fit",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert!(check_fits("training", &images.select(&[0, 1]), limit).is_ok());
        let features = Dataset::from_features(vec![0.0; 40], vec![0; 4], 10, names);
        let too_large = check_fits("test", &features, 100).unwrap_err();
        assert_eq!((too_large.bytes, too_large.fits), (160, 2));
    }
}
