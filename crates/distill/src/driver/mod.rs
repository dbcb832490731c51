//! The study, end to end: teachers, ensemble, soft targets, students, evaluation, serving
//! cost and the run folder, from the splits [`crate::data::load::load_data`] made.
//!
//! - [`gpu_data`]: the splits resident on the GPU and the per-batch gathers.
//! - [`train`]: one model's training loop (one submission per step).
//! - [`evaluate`]: logits of a model over a whole split.
//! - [`serving`]: latency and throughput on the adapter.
//! - [`specs`]: architecture strings to model specs (input check, dropout).
//! - [`session`]: what every phase shares (splits on the GPU, run folder, console) and the
//!   one way a student is trained.
//! - [`teachers`]: the teachers (trained, or loaded from an earlier run) and their ensemble.
//! - [`study`]: the standard study in order; [`experiments`]: the papers' experiments.
//! - [`finish`]: test metrics, serving cost, `results.json` and `report.html`.
//!
//! Choices worth knowing:
//! - Training drops the last partial batch of each epoch (its zero-filled padding rows would
//!   count as label-0 examples); the shuffle changes every epoch, so every example is seen.
//!   Evaluation pads the last batch and cuts the padding rows: every example counts once.
//! - Soft targets are the ensemble's mean log-softmax; logit matching (Ba & Caruana)
//!   regresses the mean of the members' raw logits instead, since log-softmax values carry
//!   a per-example shift that a student's logits need not reproduce.
//! - Teacher logits on the transfer set are cached under [`RunOptions::cache_dir`] (the
//!   command line passes [`crate::data::load::default_cache_dir`]; the run folder's
//!   `cache/` when it is `None`), one file per teacher, keyed by the training examples'
//!   values, labels and that teacher's parameters.
//! - Every seed (initialisation, dropout masks, shuffles, shifts) derives from the run's
//!   master seed ([`crate::seeds::derive_seed`]); the students of one repeat share initial
//!   weights and batch order.

pub mod best;
pub mod estimate;
pub mod evaluate;
pub mod experiments;
pub mod finish;
pub mod gpu_data;
pub mod loop_bench;
pub mod resume;
pub mod serving;
pub mod session;
pub mod specs;
pub mod study;
pub mod teachers;
pub mod train;
pub mod transfer;

pub use finish::StudyOutcome;
pub use session::RunOptions;
pub use study::run_study;
