//! The study, end to end: teachers, ensemble, soft targets, students, evaluation, serving
//! cost and the run folder.
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
//! - Teacher logits on the transfer set are cached under [`default_cache_dir`] (the run
//!   folder's `cache/` when [`RunOptions::cache_dir`] is `None`), one file per teacher,
//!   keyed by the training images, labels and that teacher's checkpoint bytes.
//! - Every seed (initialisation, dropout masks, shuffles, shifts) derives from the run's
//!   master seed ([`seeds::derive_seed`]); all students share initial weights and batch order.

pub mod evaluate;
pub mod experiments;
pub mod finish;
pub mod gpu_data;
pub mod seeds;
pub mod serving;
pub mod session;
pub mod specs;
pub mod study;
pub mod teachers;
pub mod train;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::data::locate::{self, CurlFetch, FASHION_MNIST, Fetch, SearchEnv};
use crate::data::split::{Split, subsample, train_validation_split};

pub use finish::StudyOutcome;
pub use session::RunOptions;
pub use study::run_study;

/// Stands in for the downloader when downloads are not allowed.
pub struct NoDownload;

impl Fetch for NoDownload {
    fn fetch(&self, _: &str, _: &std::path::Path, _: u64) -> Result<(), String> {
        Err("downloads disabled by --no-download".into())
    }
}

/// The data of a run, split and ready for training.
pub struct StudyData {
    /// Folder the IDX files were read from.
    pub source_dir: PathBuf,
    /// How that folder was found (for the plan line).
    pub origin: String,
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
    /// The examples of the official training set in neither the training nor the
    /// validation split (empty when the training split takes all the rest); experiments
    /// use them as unlabeled data.
    pub pool: Dataset,
}

/// Finds (or, unless `no_download`, downloads) Fashion-MNIST, reads it and splits it as the
/// configuration says (seeded by `config.seed`).
pub fn load_data(config: &RunConfig, no_download: bool) -> Result<StudyData> {
    let env = SearchEnv::from_process();
    let fetcher: &dyn Fetch = if no_download { &NoDownload } else { &CurlFetch };
    let files =
        locate::locate_or_download(config.data.dir.as_deref(), &env, &FASHION_MNIST, fetcher)?;
    let (full_train, full_test) = files.load(&FASHION_MNIST)?;
    let data = &config.data;
    let Split { train, validation } = train_validation_split(
        &full_train.labels,
        data.validation_size,
        data.train_size,
        data.stratified,
        config.seed,
    )
    .context("splitting the training set")?;
    let mut used = vec![false; full_train.n];
    for &index in train.iter().chain(&validation) {
        used[index] = true;
    }
    let pool: Vec<usize> = (0..full_train.n).filter(|&i| !used[i]).collect();
    let all_test: Vec<usize> = (0..full_test.n).collect();
    let test_indices = match data.test_size {
        Some(size) if size > full_test.n => {
            bail!(
                "data.test_size = {size}, but the test set has only {} examples",
                full_test.n
            )
        }
        Some(size) => subsample(
            &all_test,
            &full_test.labels,
            size,
            data.stratified,
            config.seed,
        ),
        None => all_test,
    };
    Ok(StudyData {
        train: full_train.select(&train),
        validation: full_train.select(&validation),
        test: full_test.select(&test_indices),
        pool: full_train.select(&pool),
        source_dir: files.dir.clone(),
        origin: files.origin.to_string(),
    })
}

/// Where teacher logits are cached between runs: `$XDG_CACHE_HOME/darkknowledge/teacher-logits`
/// (or `~/.cache/...`, `%LOCALAPPDATA%\darkknowledge\...`); `None` when no such folder is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = SearchEnv::from_process();
    let base = env
        .xdg_cache_home
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".cache")))
        .or_else(|| env.local_app_data.clone())?;
    Some(base.join("darkknowledge").join("teacher-logits"))
}
