//! Every setting of a run, in one serde struct.
//!
//! Settings are resolved in three layers: the preset's defaults ([`RunConfig::preset`]),
//! then a TOML file (`--config FILE.toml`, any subset of the keys of
//! [`effective_config_toml`]'s output; unknown keys are an error), then command-line flags
//! ([`Overrides`]). [`RunConfig::validate`] then reports every bad setting, one per line.
//!
//! Architecture specs (`teacher.spec`, `student.spec`) are opaque strings here; the model
//! crate parses them. `784-256-256-10` is an MLP; `c16k3-c16k3-p2-c32k3-c32k3-p2-256-10` a
//! CNN (3x3 convolutions with 16, 16, 32, 32 channels, 2x2 pooling, a 256-unit layer).

use std::path::{Path, PathBuf};

use dk_nn::LrSchedule;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::DatasetKind;
use crate::data::tabular::{CsvOptions, LabelColumn};

mod experiments;
mod overrides;

pub use experiments::{
    CompressionConfig, Experiment, ExperimentsConfig, MungeConfig, OmitClassConfig,
    SmallDataConfig, TemperatureSweepConfig,
};
pub use overrides::Overrides;

/// The most confidence bins of the expected calibration error.
pub const MAX_ECE_BINS: usize = 1_000;
/// The highest softmax temperature: far past any useful softening, and low enough that
/// the loss's T^2 scale stays finite in 32 bits.
pub const MAX_TEMPERATURE: f32 = 1_000.0;
/// The largest batch of the throughput measurement.
pub const MAX_THROUGHPUT_BATCH: usize = 65_536;

/// The most teachers of an ensemble.
pub const MAX_TEACHERS: usize = 100;
/// The most times a student is trained (`--repeats`).
pub const MAX_REPEATS: usize = 100;
/// The longest training in epochs, and in optimisation steps: far past any useful run, and
/// small enough that every product of lengths and sizes stays within 64 bits.
pub const MAX_EPOCHS: usize = 1_000_000;
pub const MAX_STEPS: usize = 1_000_000_000;
/// The largest training batch.
pub const MAX_BATCH: usize = 65_536;

/// The most examples an automatic validation split takes (`data.validation_size` absent).
pub const DEFAULT_VALIDATION_SIZE: usize = 5_000;

/// A named set of defaults sized for a kind of machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The full study, sized for a laptop GPU (not yet timed on one): CNN teachers, 55k/5k split.
    Default,
    /// For software adapters such as lavapipe: small CNN teachers on 15k labeled images, the
    /// distilled students also on 40k unlabeled ones, step budgets that fit about 7 minutes on
    /// 2 CPU cores (README: how the presets were chosen).
    Quick,
    /// A smoke test for CI: 1.5k examples, 2 epochs, tiny nets (well under 2 minutes on lavapipe).
    Tiny,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::Quick => "quick",
            Preset::Tiny => "tiny",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam; `weight_decay` is an L2 term added to the gradient.
    Adam,
    /// Adam with decoupled weight decay (Loshchilov & Hutter): the weights shrink by
    /// `lr * weight_decay` each step, apart from the adaptive update.
    Adamw,
    /// SGD with momentum (`nesterov` for Nesterov's), L2 weight decay.
    Sgd,
}

/// How the learning rate changes over training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The optimizer's `lr` throughout.
    Constant,
    /// `lr` times `decay_factor` after every `decay_epochs` epochs.
    Step,
    /// A linear warm-up over the first `warmup` share of the steps, then a cosine decay
    /// from `lr` to `min_lr * lr` at the last step.
    Cosine,
}

/// A constant learning rate (the tiny preset's).
const CONSTANT_LR: ScheduleConfig = ScheduleConfig {
    kind: ScheduleKind::Constant,
    warmup: 0.0,
    decay_factor: 0.1,
    decay_epochs: 10,
    min_lr: 0.0,
};

/// The learning-rate schedule of one kind of model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub kind: ScheduleKind,
    /// Cosine: share of the training steps spent warming up linearly from 0 to `lr`
    /// (0 = none).
    pub warmup: f32,
    /// Step decay: the factor applied every `decay_epochs` epochs, in (0, 1].
    pub decay_factor: f32,
    /// Step decay: epochs between two decays.
    pub decay_epochs: usize,
    /// Cosine: the last step's learning rate as a share of `lr`, in [0, 1].
    pub min_lr: f32,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            kind: ScheduleKind::Cosine,
            warmup: 0.05,
            decay_factor: 0.1,
            decay_epochs: 10,
            min_lr: 0.0,
        }
    }
}

/// How one kind of model is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    /// Learning rate.
    pub lr: f32,
    /// SGD momentum (ignored by Adam).
    pub momentum: f32,
    /// SGD: Nesterov's momentum instead of the classical one.
    pub nesterov: bool,
    /// Weight decay (0 = none): L2 for `adam` and `sgd`, decoupled for `adamw`.
    pub weight_decay: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        }
    }
}

/// Architecture and training of a teacher or a student.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Architecture spec, parsed by the model crate.
    pub spec: String,
    /// Training length in passes over the training examples (unless `steps` is set).
    pub epochs: usize,
    /// Training length in optimisation steps, whatever the data size: the model trains
    /// for `ceil(steps / batches per epoch)` epochs (absent = `epochs`).
    pub steps: Option<usize>,
    /// Early stopping: end training when validation accuracy has not improved for this
    /// many epochs (absent = train for the whole length). Either way the weights of the
    /// best validation epoch are the ones kept.
    pub patience: Option<usize>,
    /// Label smoothing of the hard-label targets, in [0, 1): `(1 - e) * one-hot + e / C`.
    /// For teachers it flattens the soft targets the students learn from.
    pub label_smoothing: f32,
    /// Dropout rate on the input pixels (0 = none).
    pub dropout_input: f32,
    /// Dropout rate after each hidden layer (0 = none).
    pub dropout_hidden: f32,
    /// Random translation of each training image by up to this many pixels (0 = none).
    pub max_shift: u32,
    /// Rescale each unit's incoming weight vector to at most this L2 norm (absent = none).
    pub max_norm: Option<f32>,
    pub optimizer: OptimizerConfig,
    pub schedule: ScheduleConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            spec: "784-256-256-10".into(),
            epochs: 20,
            steps: None,
            patience: None,
            label_smoothing: 0.0,
            dropout_input: 0.0,
            dropout_hidden: 0.0,
            max_shift: 0,
            max_norm: None,
            optimizer: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
        }
    }
}

/// Optimisation steps of one epoch over `examples` examples in batches of `batch`: the
/// batch shrinks to a split smaller than it, and the last partial batch is dropped, as in
/// training.
pub fn steps_per_epoch(examples: usize, batch: usize) -> usize {
    (examples / batch.min(examples).max(1)).max(1)
}

impl ModelConfig {
    /// Epochs of training on `examples` examples in batches of `batch`: `epochs`, or
    /// enough epochs for `steps` steps.
    pub fn epochs_for(&self, examples: usize, batch: usize) -> usize {
        match self.steps {
            None => self.epochs,
            Some(steps) => steps.div_ceil(steps_per_epoch(examples, batch)).max(1),
        }
    }

    /// The bad settings of this model, one line each (`role`: "teacher" or "student").
    fn problems(&self, role: &str, check: &mut impl FnMut(bool, String)) {
        check(
            !self.spec.trim().is_empty(),
            format!("{role}.spec is empty: give an architecture such as 784-256-256-10"),
        );
        check_count(
            check,
            &format!("{role}.epochs"),
            self.epochs,
            MAX_EPOCHS,
            "",
        );
        if let Some(steps) = self.steps {
            let omit = " (omit the key to train for `epochs`)";
            check_count(check, &format!("{role}.steps"), steps, MAX_STEPS, omit);
        }
        check(
            self.patience != Some(0),
            format!(
                "{role}.patience = 0: need at least 1 epoch (omit the key for no early stopping)"
            ),
        );
        check(
            self.label_smoothing.is_finite() && (0.0..1.0).contains(&self.label_smoothing),
            format!(
                "{role}.label_smoothing = {}: expected a value in [0, 1)",
                self.label_smoothing
            ),
        );
        for (key, rate) in [
            ("dropout_input", self.dropout_input),
            ("dropout_hidden", self.dropout_hidden),
        ] {
            check(
                rate.is_finite() && (0.0..1.0).contains(&rate),
                format!("{role}.{key} = {rate}: expected a rate in [0, 1)"),
            );
        }
        if let Some(norm) = self.max_norm {
            check(
                norm.is_finite() && norm > 0.0,
                format!("{role}.max_norm = {norm}: expected a positive number (omit for none)"),
            );
        }
        self.optimizer.problems(role, check);
        self.schedule.problems(role, check);
    }
}

impl OptimizerConfig {
    fn problems(&self, role: &str, check: &mut impl FnMut(bool, String)) {
        check(
            self.lr.is_finite() && self.lr > 0.0,
            format!(
                "{role}.optimizer.lr = {}: expected a positive number",
                self.lr
            ),
        );
        check(
            self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum),
            format!(
                "{role}.optimizer.momentum = {}: expected a value in [0, 1)",
                self.momentum
            ),
        );
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            format!(
                "{role}.optimizer.weight_decay = {}: expected a number >= 0",
                self.weight_decay
            ),
        );
    }
}

impl ScheduleConfig {
    /// The per-step schedule of a run of `total_steps` steps, `steps_per_epoch` a epoch.
    pub fn to_lr_schedule(&self, total_steps: usize, steps_per_epoch: usize) -> LrSchedule {
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match self.kind {
            ScheduleKind::Constant => LrSchedule::Constant,
            ScheduleKind::Step => LrSchedule::step_decay(
                self.decay_factor,
                to_u32(self.decay_epochs.saturating_mul(steps_per_epoch).max(1)),
            ),
            ScheduleKind::Cosine => {
                let warmup = (f64::from(self.warmup) * total_steps as f64).round() as usize;
                LrSchedule::cosine(to_u32(warmup), to_u32(total_steps), self.min_lr)
            }
        }
    }

    fn problems(&self, role: &str, check: &mut impl FnMut(bool, String)) {
        check(
            self.warmup.is_finite() && (0.0..1.0).contains(&self.warmup),
            format!(
                "{role}.schedule.warmup = {}: expected the share of the training steps spent warming up, in [0, 1)",
                self.warmup
            ),
        );
        check(
            self.decay_factor.is_finite() && self.decay_factor > 0.0 && self.decay_factor <= 1.0,
            format!(
                "{role}.schedule.decay_factor = {}: expected a factor in (0, 1]",
                self.decay_factor
            ),
        );
        check(
            self.decay_epochs >= 1,
            format!("{role}.schedule.decay_epochs = 0: need at least 1"),
        );
        check(
            self.min_lr.is_finite() && (0.0..=1.0).contains(&self.min_lr),
            format!(
                "{role}.schedule.min_lr = {}: expected a share of lr in [0, 1]",
                self.min_lr
            ),
        );
    }
}

/// The user's own CSV data (`data.dataset = "csv"`); see `data::tabular`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CsvConfig {
    /// The training file (required for the CSV data set).
    pub train: Option<PathBuf>,
    /// A separate test file with the same columns (absent = a seeded, stratified
    /// `test_fraction` of the training file is held out).
    pub test: Option<PathBuf>,
    /// The label column: a header name or a 0-based index (absent = the column named
    /// `label`, else the last column).
    pub label: Option<LabelColumn>,
    /// Whether the first row is a header (absent = detected).
    pub header: Option<bool>,
    /// Share of the training file held out as the test set when there is no test file.
    pub test_fraction: f64,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            train: None,
            test: None,
            label: None,
            header: None,
            test_fraction: 0.2,
        }
    }
}

impl CsvConfig {
    /// The reader's options.
    pub fn options(&self) -> CsvOptions {
        CsvOptions {
            label: self.label.clone(),
            header: self.header,
        }
    }
}

/// Which examples are used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub dataset: DatasetKind,
    /// Folder holding the data set's files (absent = search; see `data::locate`).
    pub dir: Option<PathBuf>,
    /// Training examples (absent = all that the validation split leaves).
    pub train_size: Option<usize>,
    /// At most this many training examples keep their labels (absent = no cap; ignored when
    /// `train_size` is set). Unlike `train_size` a cap: a smaller data set keeps every
    /// label; on a larger one the rest joins the pool of unlabeled images that
    /// `distill.unlabeled` draws on.
    pub max_labeled: Option<usize>,
    /// Validation examples carved from the official training set (absent = a fifth of it,
    /// at most [`DEFAULT_VALIDATION_SIZE`]; see [`DataConfig::validation_count`]).
    pub validation_size: Option<usize>,
    /// Test examples (absent = the whole official test set).
    pub test_size: Option<usize>,
    /// Stratify the split and subsamples by class (otherwise a plain seeded shuffle).
    pub stratified: bool,
    /// Settings of the CSV data set.
    pub csv: CsvConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: DatasetKind::FashionMnist,
            dir: None,
            train_size: None,
            max_labeled: None,
            validation_size: None,
            test_size: None,
            stratified: true,
            csv: CsvConfig::default(),
        }
    }
}

/// The distillation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistillConfig {
    /// Softmax temperature (absent = chosen on validation from `temperature_grid`).
    pub temperature: Option<f32>,
    /// Weight of the soft-target term, the hard-label term gets `1 - alpha`
    /// (absent = chosen on validation from `alpha_grid`).
    pub alpha: Option<f32>,
    pub temperature_grid: Vec<f32>,
    pub alpha_grid: Vec<f32>,
    /// Also train a student by logit matching (L2 on logits, Ba & Caruana).
    pub logit_mse: bool,
    /// Also distill from the single best teacher instead of the ensemble.
    pub best_teacher: bool,
    /// Images of the pool (the training images outside the training and validation
    /// splits) that the ensemble labels and the distilled students learn from besides the
    /// training split, at most as many as the pool holds (0: the training split alone).
    /// Bucila et al.'s transfer set: the hard-label student cannot use unlabeled images.
    /// Standard study only; the experiments choose their own transfer sets.
    pub unlabeled: usize,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            temperature: None,
            alpha: None,
            temperature_grid: vec![1.0, 2.0, 4.0, 8.0],
            alpha_grid: vec![0.5, 0.9],
            logit_mse: true,
            best_teacher: true,
            unlabeled: 0,
        }
    }
}

impl DistillConfig {
    /// The (T, alpha) pairs to try on validation: the fixed values where given, else the grids.
    pub fn candidates(&self) -> Vec<(f32, f32)> {
        let temperatures = self
            .temperature
            .map_or_else(|| self.temperature_grid.clone(), |t| vec![t]);
        let alphas = self
            .alpha
            .map_or_else(|| self.alpha_grid.clone(), |a| vec![a]);
        temperatures
            .iter()
            .flat_map(|&t| alphas.iter().map(move |&a| (t, a)))
            .collect()
    }
}

/// Evaluation and report settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Equal-width confidence bins of the expected calibration error.
    pub ece_bins: usize,
    /// Batch size of the throughput measurement (latency is measured at batch 1).
    pub throughput_batch: usize,
    /// Temperatures of the report's dark-knowledge bar charts.
    pub probability_temperatures: Vec<f32>,
    /// Temperature of the report's mean soft-target matrix.
    pub soft_target_temperature: f32,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            ece_bins: 15,
            throughput_batch: 256,
            probability_temperatures: vec![1.0, 2.0, 5.0, 20.0],
            soft_target_temperature: 4.0,
        }
    }
}

/// Every setting of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub preset: Preset,
    /// Seeds the split, initialisation, shuffling, dropout and jitter.
    pub seed: u64,
    /// Run folder (absent = `runs/<UTC timestamp>`).
    pub out_dir: Option<PathBuf>,
    /// Number of teachers in the ensemble.
    pub teachers: usize,
    pub batch_size: usize,
    /// Times each student of the standard study is trained, with seeds derived from the
    /// master seed and the repeat (the first repeat is the run's usual student).
    pub repeats: usize,
    pub data: DataConfig,
    pub teacher: ModelConfig,
    pub student: ModelConfig,
    pub distill: DistillConfig,
    pub eval: EvalConfig,
    /// The experiment to run instead of the standard comparison (absent: the standard study).
    pub experiment: Option<Experiment>,
    pub experiments: ExperimentsConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig::preset(Preset::Default)
    }
}

impl RunConfig {
    /// The defaults of a preset.
    pub fn preset(preset: Preset) -> RunConfig {
        match preset {
            Preset::Default => RunConfig::default_preset(),
            Preset::Quick => RunConfig::quick_preset(),
            Preset::Tiny => RunConfig::tiny_preset(),
        }
    }

    /// The defaults of `--preset default`: the reference recipe; the other presets start
    /// from it.
    fn default_preset() -> RunConfig {
        let adam = OptimizerConfig::default();
        RunConfig {
            preset: Preset::Default,
            seed: 1,
            out_dir: None,
            teachers: 3,
            batch_size: 128,
            repeats: 1,
            data: DataConfig::default(),
            // The reference runs' recipe (12 and 20 epochs of the 55k-example split at
            // batch 128) as step budgets, so that any data size trains as long.
            teacher: ModelConfig {
                spec: "c16k3-c16k3-p2-c32k3-c32k3-p2-256-10".into(),
                epochs: 12,
                steps: Some(5_000),
                max_shift: 2,
                optimizer: adam.clone(),
                ..ModelConfig::default()
            },
            student: ModelConfig {
                spec: "784-256-256-10".into(),
                epochs: 20,
                steps: Some(8_000),
                ..ModelConfig::default()
            },
            distill: DistillConfig::default(),
            eval: EvalConfig::default(),
            experiment: None,
            experiments: ExperimentsConfig {
                // The whole training split is labeled in this preset: withhold most of it.
                compression: CompressionConfig {
                    labeled: Some(15_000),
                    extra_examples: vec![10_000, 40_000],
                },
                ..ExperimentsConfig::default()
            },
        }
    }

    /// The defaults of `--preset quick`.
    // Chosen by measurement on 2 CPU cores through lavapipe (README: "How the presets
    // were chosen"): small CNN teachers, which an MLP student cannot match, on 15,000
    // labeled images; the other 40,000 of the training split are unlabeled images that
    // the ensemble labels for the distilled students, the setting where distillation pays.
    fn quick_preset() -> RunConfig {
        RunConfig {
            preset: Preset::Quick,
            data: DataConfig {
                max_labeled: Some(15_000),
                ..DataConfig::default()
            },
            teacher: ModelConfig {
                spec: "c8k5-p2-c16k5-p2-10".into(),
                epochs: 13,
                steps: Some(1_500),
                optimizer: OptimizerConfig {
                    lr: 3e-3,
                    ..OptimizerConfig::default()
                },
                ..ModelConfig::default()
            },
            student: ModelConfig {
                spec: "784-64-10".into(),
                epochs: 116,
                steps: Some(13_500),
                ..ModelConfig::default()
            },
            distill: DistillConfig {
                temperature_grid: vec![1.0, 2.0],
                alpha_grid: vec![0.9],
                unlabeled: 40_000,
                ..DistillConfig::default()
            },
            // The training split holds only the labeled examples already: compression
            // withholds no more. The experiments' rows were measured at about this budget.
            experiments: ExperimentsConfig {
                student_steps: Some(1_500),
                ..ExperimentsConfig::default()
            },
            ..RunConfig::default_preset()
        }
    }

    /// The defaults of `--preset tiny`.
    fn tiny_preset() -> RunConfig {
        RunConfig {
            preset: Preset::Tiny,
            teachers: 2,
            batch_size: 64,
            data: DataConfig {
                train_size: Some(1_500),
                validation_size: Some(500),
                test_size: Some(1_000),
                ..DataConfig::default()
            },
            // A smoke test of a few dozen steps per model: too short for a schedule
            // to matter, and a constant rate keeps every tiny model learning.
            teacher: ModelConfig {
                spec: "784-128-10".into(),
                epochs: 2,
                schedule: CONSTANT_LR,
                ..ModelConfig::default()
            },
            student: ModelConfig {
                spec: "784-32-10".into(),
                epochs: 2,
                schedule: CONSTANT_LR,
                ..ModelConfig::default()
            },
            distill: DistillConfig {
                temperature_grid: vec![1.0, 4.0],
                alpha_grid: vec![0.5],
                ..DistillConfig::default()
            },
            experiments: RunConfig::tiny_experiments(),
            ..RunConfig::default_preset()
        }
    }

    /// The experiments' settings of `--preset tiny`: sizes a smoke test can afford.
    fn tiny_experiments() -> ExperimentsConfig {
        ExperimentsConfig {
            compression: CompressionConfig {
                labeled: None,
                extra_examples: vec![1_500],
            },
            munge: MungeConfig {
                base_size: 300,
                multipliers: vec![1, 2],
                ..MungeConfig::default()
            },
            temperature_sweep: TemperatureSweepConfig {
                temperatures: vec![1.0, 4.0],
                alphas: vec![0.5],
            },
            small_data: SmallDataConfig {
                fraction: 0.1,
                epochs: Some(4),
            },
            ..ExperimentsConfig::default()
        }
    }

    /// Every bad setting, one line each; empty when the configuration is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: String| {
            if !ok {
                problems.push(message);
            }
        };
        self.check_counts(&mut check);
        self.data.check(&mut check);
        self.teacher.problems("teacher", &mut check);
        self.student.problems("student", &mut check);
        self.distill.check(&mut check);
        self.experiments.check(&mut check);
        self.eval.check_sizes(&mut check);
        self.check_toml_limits(&mut check);
        self.eval.check_temperatures(&mut check);
        merge_shared_problems(problems)
    }

    /// Teachers, batch size and repeats.
    fn check_counts(&self, check: &mut impl FnMut(bool, String)) {
        check_count(check, "teachers", self.teachers, MAX_TEACHERS, " teachers");
        check_count(check, "batch_size", self.batch_size, MAX_BATCH, "");
        let note = " (each student is trained this many times)";
        check_count(check, "repeats", self.repeats, MAX_REPEATS, note);
        check(
            self.repeats == 1 || self.experiment.is_none(),
            format!(
                "repeats = {}: only the standard study repeats its students; drop --repeats or --experiment",
                self.repeats
            ),
        );
    }

    /// Settings that config.toml could not record: integers past TOML's signed 64 bits
    /// and paths that are not UTF-8. Caught here, so a run never ends in a folder whose
    /// config.toml cannot be written or read back.
    fn check_toml_limits(&self, check: &mut impl FnMut(bool, String)) {
        let d = &self.data;
        let e = &self.experiments;
        let mut integers: Vec<(&str, u64)> = vec![
            ("seed", self.seed),
            ("teachers", self.teachers as u64),
            ("batch_size", self.batch_size as u64),
            ("teacher.epochs", self.teacher.epochs as u64),
            ("student.epochs", self.student.epochs as u64),
            ("experiments.munge.base_size", e.munge.base_size as u64),
            ("distill.unlabeled", self.distill.unlabeled as u64),
        ];
        for (key, value) in [
            ("data.train_size", d.train_size),
            ("data.max_labeled", d.max_labeled),
            ("data.validation_size", d.validation_size),
            ("data.test_size", d.test_size),
            ("experiments.compression.labeled", e.compression.labeled),
            ("experiments.student_steps", e.student_steps),
            ("experiments.small_data.epochs", e.small_data.epochs),
        ] {
            integers.extend(value.map(|v| (key, v as u64)));
        }
        integers.extend(
            e.compression
                .extra_examples
                .iter()
                .map(|&v| ("experiments.compression.extra_examples", v as u64)),
        );
        for (key, value) in integers {
            check(
                value <= i64::MAX as u64,
                format!(
                    "{key} = {value}: expected at most {} (config.toml holds signed 64-bit integers)",
                    i64::MAX
                ),
            );
        }
        for (key, path) in [
            ("out_dir (--out)", &self.out_dir),
            ("data.dir (--data-dir)", &d.dir),
            ("data.csv.train (--csv-train)", &d.csv.train),
            ("data.csv.test (--csv-test)", &d.csv.test),
        ] {
            if let Some(path) = path {
                check(
                    path.to_str().is_some(),
                    format!(
                        "{key} = {}: the path is not valid UTF-8, which config.toml cannot record; use a UTF-8 name",
                        path.display()
                    ),
                );
            }
        }
    }

    /// `Ok` when [`RunConfig::problems`] finds nothing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Checks that the count `value` of setting `key` is 1 to `max`: "key = value: expected 1 to
/// max{note}".
pub(super) fn check_count(
    check: &mut impl FnMut(bool, String),
    key: &str,
    value: usize,
    max: usize,
    note: &str,
) {
    check(
        (1..=max).contains(&value),
        format!("{key} = {value}: expected 1 to {max}{note}"),
    );
}

/// One line for a problem that the teacher and the student share (one flag, such as
/// `--lr`, sets both): "teacher.optimizer.lr and student.optimizer.lr = -1: ...".
fn merge_shared_problems(problems: Vec<String>) -> Vec<String> {
    let has = |line: String| problems.contains(&line);
    let mut merged = Vec::new();
    for line in &problems {
        if let Some(rest) = line.strip_prefix("student.")
            && has(format!("teacher.{rest}"))
        {
            continue;
        }
        match line.strip_prefix("teacher.") {
            Some(rest) if has(format!("student.{rest}")) => {
                let (key, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                merged.push(format!("teacher.{key} and student.{key} {tail}"));
            }
            _ => merged.push(line.clone()),
        }
    }
    merged
}

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {cause}")]
    Read {
        path: PathBuf,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}", .0.iter().map(|p| format!("invalid setting: {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Overlays `patch` on `base`, table by table (values in `patch` win).
fn merge_tables(base: &mut toml::Table, patch: toml::Table) {
    for (key, value) in patch {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(patch_inner)) => {
                merge_tables(inner, patch_inner)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A file that gives a role's `epochs` without its `steps` means that many epochs, as the
/// epochs flags do: the preset's step budget, which would win, is dropped. A file that gives
/// both (a run folder's config.toml) keeps both, and the steps win.
fn drop_preset_steps_where_epochs_given(preset: &mut toml::Table, file: &toml::Table) {
    for role in ["teacher", "student"] {
        let Some(toml::Value::Table(given)) = file.get(role) else {
            continue;
        };
        if given.contains_key("epochs") && !given.contains_key("steps") {
            if let Some(toml::Value::Table(model)) = preset.get_mut(role) {
                model.remove("steps");
            }
        }
    }
}

/// Parses a config file's text (`path` is only used in messages) over the preset it names
/// (or `preset_flag`, which wins, or the default preset).
pub fn parse_config_text(
    text: &str,
    path: &Path,
    preset_flag: Option<Preset>,
) -> Result<RunConfig, ConfigError> {
    let parse_error = |err: toml::de::Error| ConfigError::Parse {
        path: path.to_path_buf(),
        line: err.span().map_or(1, |span| line_of(text, span.start)),
        message: err.message().trim().replace('\n', " "),
    };
    // Parsing straight into the struct (every field has a default) checks names and types
    // with the file's line numbers.
    let as_written: RunConfig = toml::from_str(text).map_err(parse_error)?;
    let file_table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    let preset = preset_flag.unwrap_or(if file_table.contains_key("preset") {
        as_written.preset
    } else {
        Preset::Default
    });
    let mut merged = toml::Table::try_from(RunConfig::preset(preset))
        .expect("a RunConfig always serialises to a table");
    drop_preset_steps_where_epochs_given(&mut merged, &file_table);
    merge_tables(&mut merged, file_table);
    let mut config: RunConfig =
        merged
            .try_into()
            .map_err(|err: toml::de::Error| ConfigError::Parse {
                path: path.to_path_buf(),
                line: 1,
                message: err.message().trim().replace('\n', " "),
            })?;
    config.preset = preset;
    Ok(config)
}

/// Resolves the settings of a run: preset, then the optional TOML file, then the flags.
/// Does not validate; call [`RunConfig::validate`].
pub fn load_config(file: Option<&Path>, overrides: &Overrides) -> Result<RunConfig, ConfigError> {
    let mut config = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                cause: source,
            })?;
            parse_config_text(&text, path, overrides.preset)?
        }
        None => RunConfig::preset(overrides.preset.unwrap_or(Preset::Default)),
    };
    overrides.apply(&mut config);
    Ok(config)
}

/// The effective settings as TOML, for the run folder's `config.toml`. Loading that file
/// with `--config` reproduces the run's settings.
pub fn effective_config_toml(config: &RunConfig) -> String {
    let body = toml::to_string_pretty(config).expect("a RunConfig always serialises to TOML");
    let mut header =
        String::from("# Effective settings of this run (preset, then config file, then flags).\n");
    if config.distill.temperature.is_none() || config.distill.alpha.is_none() {
        header.push_str(
            "# distill.temperature / distill.alpha absent: chosen on validation from the grids.\n",
        );
    }
    if config.data.validation_size.is_none() {
        header.push_str(&format!(
            "# data.validation_size absent: a fifth of the training set, at most {DEFAULT_VALIDATION_SIZE} examples.\n"
        ));
    }
    header + "\n" + &body
}

impl DataConfig {
    /// Validation examples out of `available` training examples: `validation_size` when
    /// set, else a fifth of them, at most [`DEFAULT_VALIDATION_SIZE`] (at least one), so
    /// that a file of a thousand rows splits on defaults as 60,000 images do.
    pub fn validation_count(&self, available: usize) -> usize {
        self.validation_size
            .unwrap_or((available / 5).clamp(1, DEFAULT_VALIDATION_SIZE))
    }

    /// The training split's size on a training set of `available` examples: `train_size`,
    /// else `max_labeled` when the validation split leaves more than that, else `None`
    /// (all that the validation split leaves).
    pub fn train_count(&self, available: usize) -> Option<usize> {
        let left = available.saturating_sub(self.validation_count(available));
        self.train_size
            .or(self.max_labeled.filter(|&cap| cap < left))
    }

    /// Split sizes and the CSV settings.
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        check(
            self.validation_size != Some(0),
            "data.validation_size = 0: the validation split chooses T and alpha and checks the teachers, it needs examples".into(),
        );
        let csv = &self.csv;
        if self.dataset == DatasetKind::Csv {
            check(
                csv.train.is_some(),
                "data.dataset = \"csv\" but data.csv.train is not set: give the training file (--csv-train FILE)".into(),
            );
        } else {
            // A CSV setting on another data set would be silently ignored.
            for (key, set) in [
                ("data.csv.train (--csv-train)", csv.train.is_some()),
                ("data.csv.test (--csv-test)", csv.test.is_some()),
                ("data.csv.label (--csv-label)", csv.label.is_some()),
                ("data.csv.header (--csv-header)", csv.header.is_some()),
            ] {
                check(
                    !set,
                    format!(
                        "{key} is set but data.dataset is \"{}\": CSV settings are read only with --dataset csv",
                        self.dataset.key()
                    ),
                );
            }
        }
        check(
            csv.test_fraction > 0.0 && csv.test_fraction < 1.0,
            format!(
                "data.csv.test_fraction = {}: expected a share in (0, 1)",
                csv.test_fraction
            ),
        );
        for (key, value) in [
            ("data.train_size", self.train_size),
            ("data.max_labeled", self.max_labeled),
            ("data.test_size", self.test_size),
        ] {
            check(
                value != Some(0),
                format!("{key} = 0: need at least 1 example (omit the key for all)"),
            );
        }
    }
}

/// A softmax temperature: finite and positive.
pub(super) fn temperature_ok(t: f32) -> bool {
    t > 0.0 && t <= MAX_TEMPERATURE
}

impl DistillConfig {
    /// The fixed T and alpha, or their grids.
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        let alpha_ok = |a: f32| (0.0..=1.0).contains(&a);
        if let Some(t) = self.temperature {
            check(
                temperature_ok(t),
                format!("distill.temperature = {t}: expected a number in (0, {MAX_TEMPERATURE}]"),
            );
        } else {
            check(!self.temperature_grid.is_empty(), "distill.temperature_grid is empty and no temperature is set: give one or the other".into());
        }
        for &t in &self.temperature_grid {
            check(
                temperature_ok(t),
                format!(
                    "distill.temperature_grid contains {t}: expected numbers in (0, {MAX_TEMPERATURE}]"
                ),
            );
        }
        if let Some(a) = self.alpha {
            check(
                alpha_ok(a),
                format!("distill.alpha = {a}: expected a value in [0, 1]"),
            );
        } else {
            check(
                !self.alpha_grid.is_empty(),
                "distill.alpha_grid is empty and no alpha is set: give one or the other".into(),
            );
        }
        for &a in &self.alpha_grid {
            check(
                alpha_ok(a),
                format!("distill.alpha_grid contains {a}: expected values in [0, 1]"),
            );
        }
    }
}

impl EvalConfig {
    /// Calibration bins and the throughput batch, within their caps.
    fn check_sizes(&self, check: &mut impl FnMut(bool, String)) {
        check_count(check, "eval.ece_bins", self.ece_bins, MAX_ECE_BINS, " bins");
        let (batch, max) = (self.throughput_batch, MAX_THROUGHPUT_BATCH);
        check_count(check, "eval.throughput_batch", batch, max, "");
    }

    /// The report's temperatures.
    fn check_temperatures(&self, check: &mut impl FnMut(bool, String)) {
        for &t in self
            .probability_temperatures
            .iter()
            .chain([&self.soft_target_temperature])
        {
            check(
                temperature_ok(t),
                format!("eval temperature {t}: expected numbers in (0, {MAX_TEMPERATURE}]"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        overrides: Overrides,
    }

    fn flags(args: &[&str]) -> Overrides {
        TestCli::try_parse_from(std::iter::once("dk-distill").chain(args.iter().copied()))
            .unwrap()
            .overrides
    }

    #[test]
    fn the_validation_split_is_a_fifth_of_the_training_set_at_most_5000() {
        let automatic = DataConfig::default();
        assert_eq!(automatic.validation_count(60_000), 5_000);
        assert_eq!(automatic.validation_count(25_000), 5_000);
        assert_eq!(automatic.validation_count(1_438), 287);
        assert_eq!(automatic.validation_count(3), 1, "never empty");
        let given = DataConfig {
            validation_size: Some(7),
            ..DataConfig::default()
        };
        assert_eq!(given.validation_count(60_000), 7);
        assert_eq!(
            given.validation_count(5),
            7,
            "a given size is refused later, not cut"
        );
    }

    #[test]
    fn max_labeled_caps_the_training_split_and_train_size_wins() {
        let capped = DataConfig {
            max_labeled: Some(15_000),
            ..DataConfig::default()
        };
        // 60,000 images: 5,000 for validation, 15,000 labeled, the rest the pool.
        assert_eq!(capped.train_count(60_000), Some(15_000));
        // 8,000 images: 1,600 for validation leave 6,400, under the cap: all of them.
        assert_eq!(capped.train_count(8_000), None);
        // 18,750 images: 3,750 for validation leave exactly the cap.
        assert_eq!(capped.train_count(18_750), None, "exactly the cap left");
        let sized = DataConfig {
            train_size: Some(6_000),
            ..capped.clone()
        };
        assert_eq!(sized.train_count(60_000), Some(6_000));
        assert_eq!(DataConfig::default().train_count(60_000), None);
    }

    #[test]
    fn presets_are_valid_and_distinct() {
        for preset in [Preset::Default, Preset::Quick, Preset::Tiny] {
            let config = RunConfig::preset(preset);
            assert_eq!(config.problems(), Vec::<String>::new(), "{preset:?}");
            assert_eq!(config.preset, preset);
        }
        let default = RunConfig::preset(Preset::Default);
        assert_eq!((default.teachers, default.data.validation_size), (3, None));
        assert_eq!(default.student.spec, "784-256-256-10");
        assert_eq!(
            default.distill.candidates().len(),
            8,
            "4 temperatures x 2 alphas"
        );
        let tiny = RunConfig::preset(Preset::Tiny);
        assert!(tiny.data.train_size.unwrap() <= 2000);
        assert!(tiny.teacher.epochs <= 2 && tiny.student.epochs <= 2);
    }

    #[test]
    fn file_overlays_its_preset_and_flags_win() {
        let text = "preset = \"quick\"\nseed = 9\n[student]\nepochs = 7\n[distill]\nalpha = 0.7\n";
        let config = load_config_text(text, &[]);
        assert_eq!(config.preset, Preset::Quick);
        assert_eq!(config.seed, 9);
        assert_eq!(config.student.epochs, 7);
        // Untouched keys of a touched table keep the preset's value.
        assert_eq!(
            config.student.spec,
            RunConfig::preset(Preset::Quick).student.spec
        );
        assert_eq!(config.distill.alpha, Some(0.7));
        assert_eq!(config.distill.candidates(), vec![(1.0, 0.7), (2.0, 0.7)]);

        let config = load_config_text(
            text,
            &[
                "--preset",
                "tiny",
                "--seed",
                "3",
                "--epochs",
                "5",
                "--teacher-epochs",
                "6",
                "--temperature",
                "2.5",
                "--alpha-grid",
                "0.1,0.2",
            ],
        );
        assert_eq!(config.preset, Preset::Tiny);
        assert_eq!(
            config.data.train_size,
            RunConfig::preset(Preset::Tiny).data.train_size
        );
        assert_eq!(config.seed, 3);
        assert_eq!((config.teacher.epochs, config.student.epochs), (6, 5));
        assert_eq!(
            config.distill.candidates(),
            vec![(2.5, 0.7)],
            "the file's fixed alpha wins over the grid"
        );
        assert_eq!(config.distill.alpha_grid, vec![0.1, 0.2]);
    }

    fn load_config_text(text: &str, args: &[&str]) -> RunConfig {
        let overrides = flags(args);
        let mut config = parse_config_text(text, Path::new("run.toml"), overrides.preset).unwrap();
        overrides.apply(&mut config);
        config
    }

    #[test]
    fn a_files_epochs_replace_the_presets_steps_for_that_role_only() {
        let config = load_config_text("preset = \"quick\"\n[student]\nepochs = 3\n", &[]);
        assert_eq!((config.student.epochs, config.student.steps), (3, None));
        let quick = RunConfig::preset(Preset::Quick);
        assert!(quick.teacher.steps.is_some() && quick.student.steps.is_some());
        assert_eq!(
            config.teacher.steps, quick.teacher.steps,
            "teachers keep theirs"
        );
        let both = "preset = \"quick\"\n[student]\nepochs = 3\nsteps = 700\n";
        let config = load_config_text(both, &[]);
        assert_eq!(
            (config.student.epochs, config.student.steps),
            (3, Some(700))
        );
        // A flag still wins over the file.
        let config = load_config_text("[student]\nepochs = 3\n", &["--student-steps", "90"]);
        assert_eq!(config.student.steps, Some(90));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_and_line() {
        let err = parse_config_text(
            "seed = 1\n\n[student]\nepochz = 3\n",
            Path::new("my.toml"),
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("my.toml:4: unknown field `epochz`"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
        let text = parse_config_text("preset = \"huge\"\n", Path::new("my.toml"), None)
            .unwrap_err()
            .to_string();
        assert!(
            text.starts_with("my.toml:1:") && text.contains("huge"),
            "{text}"
        );
        let text = parse_config_text("teachers = \"three\"\n", Path::new("my.toml"), None)
            .unwrap_err()
            .to_string();
        assert!(text.contains("my.toml:1:"), "{text}");
        let err = load_config(
            Some(Path::new("/nonexistent/run.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/run.toml: cannot read"),
            "{err}"
        );
    }

    #[test]
    fn validation_reports_each_bad_setting_on_its_own_line() {
        let mut config = RunConfig::preset(Preset::Tiny);
        config.teachers = 0;
        config.batch_size = 0;
        config.distill.temperature = Some(0.0);
        config.distill.alpha = Some(1.5);
        config.distill.temperature_grid = vec![f32::NAN];
        config.student.optimizer.lr = -1.0;
        let problems = config.problems();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        let text = config.validate().unwrap_err().to_string();
        assert_eq!(text.lines().count(), 6);
        for needle in [
            "teachers = 0",
            "batch_size = 0",
            "distill.temperature = 0",
            "distill.alpha = 1.5",
            "NaN",
            "student.optimizer.lr = -1",
        ] {
            assert!(text.contains(needle), "missing {needle}: {text}");
        }
        config = RunConfig::preset(Preset::Tiny);
        config.distill.temperature = Some(f32::INFINITY);
        assert_eq!(config.problems().len(), 1);
    }

    #[test]
    fn experiment_flag_and_settings_are_checked() {
        let config = load_config_text(
            "[experiments.munge]\nmultipliers = [3]\n",
            &["--experiment", "omit-class"],
        );
        assert_eq!(config.experiment, Some(Experiment::OmitClass));
        assert_eq!(config.experiments.munge.multipliers, vec![3]);
        assert_eq!(config.problems(), Vec::<String>::new());
        let mut config = RunConfig::preset(Preset::Quick);
        config.experiments.temperature = 0.0;
        config.experiments.alpha = 2.0;
        config.experiments.compression.extra_examples = vec![];
        config.experiments.munge.swap_probability = -0.1;
        config.experiments.munge.local_variance = 0.0;
        config.experiments.temperature_sweep.temperatures = vec![4.0, -1.0];
        config.experiments.small_data.fraction = 0.0;
        let problems = config.problems();
        assert_eq!(problems.len(), 7, "{problems:#?}");
        for needle in [
            "experiments.temperature = 0",
            "experiments.alpha = 2",
            "experiments.compression.extra_examples = []",
            "experiments.munge.swap_probability = -0.1",
            "experiments.munge.local_variance = 0",
            "experiments.temperature_sweep.temperatures = [4.0, -1.0]",
            "experiments.small_data.fraction = 0",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(needle)),
                "missing {needle}: {problems:#?}"
            );
        }
        let mut config = RunConfig::preset(Preset::Tiny);
        config.experiments.omit_class.bias_shift_step = 1e-9;
        config.experiments.temperature_sweep.alphas = vec![0.5, 0.9, 0.5];
        let problems = config.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].contains("raise bias_shift_step"),
            "{problems:#?}"
        );
        assert!(problems[1].contains("repeated"), "{problems:#?}");
        let err = TestCli::try_parse_from(["dk-distill", "--experiment", "munging"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("omit-class"), "{err}");
        for experiment in Experiment::ALL {
            let config =
                load_config_text("", &["--experiment", experiment.name(), "--preset", "tiny"]);
            assert_eq!(config.experiment, Some(experiment));
        }
    }

    #[test]
    fn sizes_past_sane_bounds_are_refused_before_any_work() {
        let config = load_config_text(
            "[eval]\nece_bins = 100000000000000000\nthroughput_batch = 1000000000000\n[experiments.munge]\nmultipliers = [100000000000000000]\n",
            &["--preset", "tiny"],
        );
        let problems = config.problems();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert_eq!(
            problems[0],
            "experiments.munge.multipliers contains 100000000000000000: 100000000000000000 x base_size 300 is more than 5000000 synthetic examples"
        );
        assert_eq!(
            problems[1],
            "eval.ece_bins = 100000000000000000: expected 1 to 1000 bins"
        );
        assert_eq!(
            problems[2],
            "eval.throughput_batch = 1000000000000: expected 1 to 65536"
        );
        // A multiplier whose product with base_size overflows is refused the same way.
        let mut config = RunConfig::preset(Preset::Tiny);
        config.experiments.munge.multipliers = vec![usize::MAX];
        assert_eq!(config.problems().len(), 1);
    }

    #[test]
    fn settings_config_toml_cannot_hold_are_refused() {
        let config = load_config_text("", &["--preset", "tiny", "--seed", "18446744073709551615"]);
        assert_eq!(
            config.problems(),
            vec![
                "seed = 18446744073709551615: expected at most 9223372036854775807 (config.toml holds signed 64-bit integers)"
                    .to_string()
            ]
        );
        let mut config = RunConfig::preset(Preset::Tiny);
        config.seed = i64::MAX as u64;
        config.data.validation_size = Some(usize::MAX);
        let problems = config.problems();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].starts_with("data.validation_size = 18446744073709551615"));
        // The largest accepted seed round-trips through config.toml.
        config.data.validation_size = Some(5);
        let back = parse_config_text(&effective_config_toml(&config), Path::new("c.toml"), None);
        assert_eq!(back.unwrap().seed, i64::MAX as u64);
    }

    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_utf8_are_refused() {
        use std::os::unix::ffi::OsStrExt;
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"runs/\xff\xfe"));
        let mut config = RunConfig::preset(Preset::Tiny);
        config.out_dir = Some(odd.clone());
        config.data.dir = Some(odd);
        let problems = config.problems();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with("out_dir (--out) = runs/")
                && problems[0].ends_with(
                    "the path is not valid UTF-8, which config.toml cannot record; use a UTF-8 name"
                ),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("data.dir (--data-dir) = "),
            "{problems:#?}"
        );
    }

    #[test]
    fn unknown_preset_flag_is_rejected() {
        let err = TestCli::try_parse_from(["dk-distill", "--preset", "huge"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("huge"), "{err}");
    }

    #[test]
    fn dataset_and_csv_settings_come_from_file_and_flags() {
        let text = "[data]\ndataset = \"csv\"\n[data.csv]\ntrain = \"wine.csv\"\nlabel = 0\nheader = false\n";
        let config = load_config_text(text, &[]);
        assert_eq!(config.data.dataset, DatasetKind::Csv);
        assert_eq!(config.data.csv.label, Some(LabelColumn::Index(0)));
        assert_eq!(config.data.csv.header, Some(false));
        assert_eq!(config.data.csv.test_fraction, 0.2);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        let config = load_config_text(
            text,
            &[
                "--csv-label",
                "quality",
                "--csv-test",
                "wine-test.csv",
                "--csv-header",
                "true",
            ],
        );
        assert_eq!(
            config.data.csv.label,
            Some(LabelColumn::Name("quality".into()))
        );
        assert_eq!(config.data.csv.test, Some(PathBuf::from("wine-test.csv")));
        assert_eq!(config.data.csv.header, Some(true));
        let config = load_config_text("", &["--dataset", "cifar10"]);
        assert_eq!(config.data.dataset, DatasetKind::Cifar10);
        assert_eq!(RunConfig::default().data.dataset, DatasetKind::FashionMnist);

        let mut config = load_config_text("", &["--dataset", "csv"]);
        config.data.csv.test_fraction = 1.0;
        let text = config.validate().unwrap_err().to_string();
        assert!(
            text.contains("data.csv.train is not set") && text.contains("--csv-train"),
            "{text}"
        );
        assert!(text.contains("data.csv.test_fraction = 1"), "{text}");
        let err = parse_config_text(
            "[data]\ndataset = \"imagenet\"\n",
            Path::new("my.toml"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("my.toml:2:") && err.contains("imagenet"),
            "{err}"
        );
    }

    #[test]
    fn training_length_flags_and_step_budget() {
        let config = load_config_text(
            "[teacher]\nsteps = 500\n",
            &["--student-steps", "300", "--patience", "4"],
        );
        assert_eq!(config.teacher.steps, Some(500));
        assert_eq!(config.student.steps, Some(300));
        assert_eq!(
            (config.teacher.patience, config.student.patience),
            (Some(4), Some(4))
        );
        // 1,000 examples in batches of 128: 7 full batches an epoch.
        assert_eq!(config.student.epochs_for(1_000, 128), 43, "ceil(300 / 7)");
        assert_eq!(config.student.epochs_for(60_000, 128), 1);
        // An epochs flag replaces a step budget; a model's own flag wins over the shared one.
        let config = load_config_text(
            "[teacher]\nsteps = 500\n",
            &["--epochs", "3", "--student-steps", "90"],
        );
        assert_eq!((config.teacher.steps, config.teacher.epochs), (None, 3));
        assert_eq!(config.student.steps, Some(90));
        assert_eq!(config.teacher.epochs_for(1_000, 128), 3);
    }

    #[test]
    fn recipe_settings_are_checked_one_line_each() {
        let mut config = RunConfig::preset(Preset::Tiny);
        config.teacher.schedule.warmup = -0.1;
        config.student.schedule.warmup = 1.0;
        config.teacher.schedule.decay_factor = 1.5;
        config.student.schedule.decay_factor = 0.0;
        config.teacher.patience = Some(0);
        config.student.steps = Some(0);
        config.teacher.label_smoothing = 1.0;
        config.student.schedule.min_lr = 2.0;
        config.teacher.schedule.decay_epochs = 0;
        let problems = config.problems();
        for needle in [
            "teacher.schedule.warmup = -0.1",
            "student.schedule.warmup = 1",
            "teacher.schedule.decay_factor = 1.5",
            "student.schedule.decay_factor = 0",
            "teacher.patience = 0",
            "student.steps = 0",
            "teacher.label_smoothing = 1",
            "student.schedule.min_lr = 2",
            "teacher.schedule.decay_epochs = 0",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(needle)),
                "missing {needle}: {problems:#?}"
            );
        }
        assert_eq!(problems.len(), 9, "{problems:#?}");
        let err = TestCli::try_parse_from(["dk-distill", "--schedule", "linear"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("cosine"), "{err}");
    }

    #[test]
    fn schedule_settings_become_per_step_schedules() {
        let cosine = ScheduleConfig {
            warmup: 0.1,
            min_lr: 0.25,
            ..ScheduleConfig::default()
        };
        assert_eq!(
            cosine.to_lr_schedule(1_000, 50),
            LrSchedule::cosine(100, 1_000, 0.25)
        );
        let step = ScheduleConfig {
            kind: ScheduleKind::Step,
            decay_factor: 0.5,
            decay_epochs: 3,
            ..ScheduleConfig::default()
        };
        assert_eq!(
            step.to_lr_schedule(1_000, 50),
            LrSchedule::step_decay(0.5, 150)
        );
        let constant = ScheduleConfig {
            kind: ScheduleKind::Constant,
            ..ScheduleConfig::default()
        };
        assert_eq!(constant.to_lr_schedule(1_000, 50), LrSchedule::Constant);
        let config = load_config_text(
            "",
            &[
                "--schedule",
                "step",
                "--decay-factor",
                "0.2",
                "--decay-epochs",
                "4",
                "--optimizer",
                "adamw",
                "--weight-decay",
                "0.01",
            ],
        );
        for model in [&config.teacher, &config.student] {
            assert_eq!(model.schedule.kind, ScheduleKind::Step);
            assert_eq!(
                (model.schedule.decay_factor, model.schedule.decay_epochs),
                (0.2, 4)
            );
            assert_eq!(model.optimizer.kind, OptimizerKind::Adamw);
            assert_eq!(model.optimizer.weight_decay, 0.01);
        }
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn effective_config_round_trips() {
        let mut config = RunConfig::preset(Preset::Quick);
        config.seed = 42;
        config.distill.temperature = Some(3.0);
        config.data.dir = Some("/data/fm".into());
        config.data.dataset = DatasetKind::Csv;
        config.data.csv.train = Some("/data/wine.csv".into());
        config.data.csv.label = Some(LabelColumn::Name("quality".into()));
        let text = effective_config_toml(&config);
        assert!(text.contains("seed = 42"), "{text}");
        let back = parse_config_text(&text, Path::new("config.toml"), None).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn repeats_come_from_the_flag_and_are_checked() {
        let mut config = RunConfig::preset(Preset::Tiny);
        assert_eq!(config.repeats, 1);
        flags(&["--repeats", "3"]).apply(&mut config);
        assert_eq!((config.repeats, config.problems().len()), (3, 0));
        config.experiment = Some(Experiment::Temperature);
        let problems = config.problems();
        assert!(
            problems.len() == 1 && problems[0].starts_with("repeats = 3: only the standard study"),
            "{problems:?}"
        );
        config.experiment = None;
        for repeats in [0, MAX_REPEATS + 1, usize::MAX] {
            config.repeats = repeats;
            assert_eq!(
                config.problems(),
                [format!(
                    "repeats = {repeats}: expected 1 to 100 (each student is trained this many times)"
                )]
            );
        }
    }

    #[test]
    fn counts_and_lengths_past_their_bounds_are_refused_one_line_each() {
        let mut config = RunConfig::preset(Preset::Tiny);
        config.teachers = 100_000_000_000;
        config.batch_size = MAX_BATCH + 1;
        config.teacher.epochs = 99_999_999_999_999;
        config.student.steps = Some(usize::MAX);
        assert_eq!(
            config.problems(),
            [
                "teachers = 100000000000: expected 1 to 100 teachers",
                "batch_size = 65537: expected 1 to 65536",
                "teacher.epochs = 99999999999999: expected 1 to 1000000",
                "student.steps = 18446744073709551615: expected 1 to 1000000000 (omit the key to train for `epochs`)",
            ]
        );
        let mut config = RunConfig::preset(Preset::Tiny);
        config.teachers = MAX_TEACHERS;
        config.teacher.steps = Some(MAX_STEPS);
        config.student.epochs = MAX_EPOCHS;
        config.student.steps = None;
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn a_flag_that_sets_teacher_and_student_gets_one_line() {
        let config = load_config_text("", &["--preset", "tiny", "--lr", "-1", "--epochs", "0"]);
        assert_eq!(
            config.problems(),
            [
                "teacher.epochs and student.epochs = 0: expected 1 to 1000000",
                "teacher.optimizer.lr and student.optimizer.lr = -1: expected a positive number",
            ]
        );
    }

    #[test]
    fn csv_settings_on_another_data_set_are_refused() {
        let config = load_config_text(
            "",
            &[
                "--preset",
                "tiny",
                "--csv-train",
                "a.csv",
                "--csv-label",
                "y",
            ],
        );
        assert_eq!(
            config.problems(),
            [
                "data.csv.train (--csv-train) is set but data.dataset is \"fashion-mnist\": CSV settings are read only with --dataset csv",
                "data.csv.label (--csv-label) is set but data.dataset is \"fashion-mnist\": CSV settings are read only with --dataset csv",
            ]
        );
    }

    #[test]
    fn negative_whole_numbers_and_grids_name_their_flag() {
        // A negative grid value reaches validation, which names the setting.
        let grid = flags(&["--temperature-grid", "-1,2", "--alpha-grid", "-0.5,0.5"]);
        assert_eq!(grid.temperature_grid, Some(vec![-1.0, 2.0]));
        assert_eq!(grid.alpha_grid, Some(vec![-0.5, 0.5]));
        for args in [["--seed", "-1"], ["--epochs", "-1"], ["--teachers", "-3"]] {
            let err = TestCli::try_parse_from(["dk-distill", args[0], args[1]])
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains(&format!("invalid value '{}' for '{}", args[1], args[0])),
                "{err}"
            );
        }
    }
}
