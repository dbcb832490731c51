//! The training loop measured on its own, for `cargo xtask bench` and `cargo bench`: a
//! preset's model trained by [`train`] (seeded shuffles, per-batch gathers, statistics read
//! every [`STATS_EVERY`](super::train::STATS_EVERY) steps, validation after each epoch) on
//! random images of Fashion-MNIST's shape, so that it needs no data set and costs what a
//! real run costs.

use anyhow::Result;
use dk_nn::{LossConfig, Model, ModelSpec};
use dk_tensor::GpuContext;
use dk_tensor::splitmix::SplitMix64;
use indicatif::ProgressBar;

use super::gpu_data::GpuSplit;
use super::session::training_plan;
use super::specs::parse_spec;
use super::train::{TrainPlan, time_training, train};
use crate::config::{Preset, RunConfig, steps_per_epoch};
use crate::data::Dataset;

/// `n` random 1x28x28 images with labels cycling through 10 classes.
pub fn random_images(n: usize, seed: u64) -> Dataset {
    let mut rng = SplitMix64::new(seed);
    let pixels = (0..n * 784).map(|_| rng.next_u64() as u8).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    let names = (0..10).map(|c| format!("class {c}")).collect();
    Dataset::from_pixels(pixels, labels, [1, 28, 28], names)
}

/// The `quick` preset's teacher with its training and validation splits.
pub struct LoopBench {
    /// The model's spec with its input, e.g. `1x28x28-c8k5-p2-c16k5-p2-10`.
    pub spec: String,
    pub batch: usize,
    config: RunConfig,
    train: GpuSplit,
    validation: GpuSplit,
}

impl LoopBench {
    /// The quick preset's teacher on `train_images` and `validation_images` random images.
    pub fn quick_teacher(
        ctx: &GpuContext,
        train_images: usize,
        validation_images: usize,
    ) -> Result<LoopBench> {
        let config = RunConfig::preset(Preset::Quick);
        // With its input token, so that any caller can parse it on its own.
        let spec = parse_spec(&config.teacher.spec, [1, 28, 28])?;
        Ok(LoopBench {
            spec: spec.text().to_string(),
            batch: config.batch_size,
            train: GpuSplit::upload(ctx, "training", &random_images(train_images, 1))?,
            validation: GpuSplit::upload(ctx, "validation", &random_images(validation_images, 2))?,
            config,
        })
    }

    /// Steps in one epoch (the last partial batch is dropped, as in training).
    pub fn steps_per_epoch(&self) -> usize {
        steps_per_epoch(self.train.n, self.batch)
    }

    /// Images in one validation pass.
    pub fn validation_images(&self) -> usize {
        self.validation.n
    }

    fn plan(&self, epochs: usize) -> TrainPlan<'static> {
        let teacher = &self.config.teacher;
        let mut plan = training_plan("teacher", teacher, LossConfig::HardLabels, 1, 1);
        plan.epochs = epochs;
        plan.batch = self.batch;
        plan
    }

    fn model(&self, ctx: &GpuContext) -> Result<Model> {
        Ok(Model::new(ctx, ModelSpec::parse(&self.spec)?, 1)?)
    }

    /// Seconds of one step in the loop and of one validation pass, as the run's estimate
    /// measures them before training ([`time_training`], at least `steps` timed steps).
    pub fn time_steps(&self, ctx: &GpuContext, steps: usize) -> Result<(f64, f64)> {
        let model = self.model(ctx)?;
        time_training(
            ctx,
            &model,
            &self.train,
            &self.validation,
            &self.plan(1),
            steps,
        )
    }

    /// Seconds of each of `epochs` epochs (steps, statistics reads and validation) of one
    /// fresh model.
    pub fn time_epochs(&self, ctx: &GpuContext, epochs: usize) -> Result<Vec<f64>> {
        let model = self.model(ctx)?;
        let bar = ProgressBar::hidden();
        let plan = self.plan(epochs);
        let trained = train(ctx, &model, &self.train, &self.validation, &plan, &bar)?;
        Ok(trained.curve.iter().map(|e| e.seconds).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_images_are_seeded_and_balanced() {
        let a = random_images(30, 7);
        assert_eq!(a, random_images(30, 7));
        assert_ne!(a, random_images(30, 8));
        assert_eq!((a.n, a.classes, a.values_per_example()), (30, 10, 784));
        assert!(
            a.labels
                .iter()
                .enumerate()
                .all(|(i, &l)| l as usize == i % 10)
        );
    }

    #[test]
    fn times_every_epoch_of_the_quick_teacher() {
        let ctx = GpuContext::new().expect("a Vulkan adapter (lavapipe on CPU machines)");
        let bench = LoopBench::quick_teacher(&ctx, 300, 50).unwrap();
        assert_eq!(bench.steps_per_epoch(), 300 / bench.batch);
        let epochs = bench.time_epochs(&ctx, 2).unwrap();
        assert_eq!(epochs.len(), 2);
        assert!(
            epochs.iter().all(|&s| s > 0.0 && s.is_finite()),
            "{epochs:?}"
        );
        let (step, validation) = bench.time_steps(&ctx, 2).unwrap();
        assert!(step > 0.0 && validation > 0.0);
    }
}
