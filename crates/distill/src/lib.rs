//! The distillation driver's library: everything around the training loop.
//!
//! - [`data`]: IDX files (Fashion-MNIST, MNIST, KMNIST), CIFAR-10 batches and CSV tables,
//!   where to find or fetch them, and the seeded train/validation split; `load_data` reads
//!   and splits a run's data set.
//! - [`config`]: every setting of a run, presets, TOML files and command-line overrides.
//! - [`metrics`]: accuracy, NLL, calibration, agreement and ensembles, from logits on the CPU.
//! - [`stats`]: paired bootstrap intervals, McNemar's exact test, mean and sd over seeds.
//! - [`results`]: the `results.json` schema (see `SCHEMA.md` in this crate).
//! - [`report`]: the self-contained `report.html`; [`results_check`]: what a report may be
//!   drawn from.
//! - [`teacher_cache`]: the teachers' logits on the transfer set, cached on disk by content key.
//! - [`run_dir`]: the run folder and atomic file writes.
//! - [`driver`]: the study itself on the GPU: training, distillation, evaluation, serving cost,
//!   and the papers' experiments (model compression, MUNGE, an omitted class, temperature,
//!   small data).
//! - [`export`]: a trained model of a run folder as an ONNX file (`dk-distill export`).

pub mod config;
pub mod data;
pub mod driver;
pub mod export;
pub mod metrics;
pub mod report;
pub mod results;
pub mod results_check;
pub mod run_dir;
pub mod seeds;
pub mod stats;
pub mod teacher_cache;

#[doc(hidden)]
pub mod testutil;
