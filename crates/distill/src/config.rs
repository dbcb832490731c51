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

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::data::DatasetKind;
use crate::data::tabular::{CsvOptions, LabelColumn};

/// A named set of defaults sized for a kind of machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The full study, sized for a laptop GPU (a few minutes there): CNN teachers, 55k/5k split.
    Default,
    /// For software adapters such as lavapipe: MLP teachers, 20k examples, a few epochs (about 5 minutes on 2 cores)
    /// (meant to stay under about 10 minutes on 2 CPU cores).
    Quick,
    /// A smoke test for CI: 1.5k examples, 1-2 epochs, tiny nets (well under 2 minutes on lavapipe).
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
    Adam,
    Sgd,
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
    /// L2 weight decay (0 = none).
    pub weight_decay: f32,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            momentum: 0.9,
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
    pub epochs: usize,
    /// Dropout rate on the input pixels (0 = none).
    pub dropout_input: f32,
    /// Dropout rate after each hidden layer (0 = none).
    pub dropout_hidden: f32,
    /// Random translation of each training image by up to this many pixels (0 = none).
    pub max_shift: u32,
    /// Rescale each unit's incoming weight vector to at most this L2 norm (absent = none).
    pub max_norm: Option<f32>,
    pub optimizer: OptimizerConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            spec: "784-256-256-10".into(),
            epochs: 20,
            dropout_input: 0.0,
            dropout_hidden: 0.0,
            max_shift: 0,
            max_norm: None,
            optimizer: OptimizerConfig::default(),
        }
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
    /// Validation examples carved from the official training set.
    pub validation_size: usize,
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
            validation_size: 5_000,
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

/// A study from the papers, run instead of the standard comparison (`--experiment NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Experiment {
    /// Bucila et al. 2006: a student on N labeled examples against students on N + M teacher-labeled ones
    Compression,
    /// Bucila et al. 2006: MUNGE synthetic examples labeled by the ensemble, as the multiplier k grows
    Munge,
    /// Hinton et al. 2015: one class left out of the transfer set, then its output bias raised
    OmitClass,
    /// Accuracy against the temperature for several alphas, distillation against logit matching
    Temperature,
    /// Hinton et al. 2015: the student on a few percent of the data, hard labels against soft targets
    SmallData,
}

impl Experiment {
    pub const ALL: [Experiment; 5] = [
        Experiment::Compression,
        Experiment::Munge,
        Experiment::OmitClass,
        Experiment::Temperature,
        Experiment::SmallData,
    ];

    /// The name on the command line and in results.json.
    pub fn name(self) -> &'static str {
        match self {
            Experiment::Compression => "compression",
            Experiment::Munge => "munge",
            Experiment::OmitClass => "omit-class",
            Experiment::Temperature => "temperature",
            Experiment::SmallData => "small-data",
        }
    }
}

/// `compression`: the teachers label training images whose labels are withheld.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Labeled examples N: a stratified subsample of the training split, the only labels the
    /// teachers see; the rest of the split joins the unlabeled pool (absent: the whole split).
    pub labeled: Option<usize>,
    /// Sizes M of the teacher-labeled sets added to the N labeled training examples, each
    /// capped at the unused part of the official training set.
    pub extra_examples: Vec<usize>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            labeled: None,
            extra_examples: vec![10_000, 40_000],
        }
    }
}

/// `munge`: the MUNGE synthetic transfer set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MungeConfig {
    /// Original examples MUNGE starts from (a stratified subsample of the training split;
    /// its nearest-neighbour search costs base_size^2 distance computations).
    pub base_size: usize,
    /// Size multipliers k: each adds k x base_size synthetic examples.
    pub multipliers: Vec<usize>,
    /// Probability p that an attribute is swapped with the nearest neighbour's.
    pub swap_probability: f32,
    /// Local variance parameter s: a swapped value is drawn with sd = |a - b| / s.
    pub local_variance: f32,
}

impl Default for MungeConfig {
    fn default() -> Self {
        MungeConfig {
            base_size: 5_000,
            multipliers: vec![1, 2, 4],
            swap_probability: 0.5,
            local_variance: 1.0,
        }
    }
}

/// `omit-class`: one class removed from the student's transfer set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OmitClassConfig {
    /// The omitted class, by name or label index (absent: "Dress" on Fashion-MNIST, else 3).
    pub class: Option<String>,
    /// Largest output-bias shift tried on validation.
    pub max_bias_shift: f32,
    /// Step of the bias-shift grid.
    pub bias_shift_step: f32,
}

impl Default for OmitClassConfig {
    fn default() -> Self {
        OmitClassConfig {
            class: None,
            max_bias_shift: 10.0,
            bias_shift_step: 0.25,
        }
    }
}

/// `temperature`: the sweep over temperatures and alphas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemperatureSweepConfig {
    pub temperatures: Vec<f32>,
    pub alphas: Vec<f32>,
}

impl Default for TemperatureSweepConfig {
    fn default() -> Self {
        TemperatureSweepConfig {
            temperatures: vec![1.0, 2.0, 4.0, 8.0, 20.0],
            alphas: vec![0.5, 0.9],
        }
    }
}

/// `small-data`: the student on a small share of the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmallDataConfig {
    /// Share of the training split the students see (stratified, seeded).
    pub fraction: f32,
    /// Student epochs on the small set (absent: student.epochs / fraction, at most 100, so
    /// the students take about as many steps as on the whole split).
    pub epochs: Option<usize>,
}

impl Default for SmallDataConfig {
    fn default() -> Self {
        SmallDataConfig {
            fraction: 0.03,
            epochs: None,
        }
    }
}

/// Settings of the experiments (`--experiment NAME`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExperimentsConfig {
    /// Distillation temperature of the experiments that use one setting (all but `temperature`).
    pub temperature: f32,
    /// Soft-target weight where true labels may be used (omit-class, small-data);
    /// compression and munge use 1: their students never see a true label.
    pub alpha: f32,
    pub compression: CompressionConfig,
    pub munge: MungeConfig,
    pub omit_class: OmitClassConfig,
    pub temperature_sweep: TemperatureSweepConfig,
    pub small_data: SmallDataConfig,
}

impl Default for ExperimentsConfig {
    fn default() -> Self {
        ExperimentsConfig {
            temperature: 4.0,
            alpha: 0.9,
            compression: CompressionConfig::default(),
            munge: MungeConfig::default(),
            omit_class: OmitClassConfig::default(),
            temperature_sweep: TemperatureSweepConfig::default(),
            small_data: SmallDataConfig::default(),
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
        let adam = OptimizerConfig::default();
        match preset {
            Preset::Default => RunConfig {
                preset,
                seed: 1,
                out_dir: None,
                teachers: 3,
                batch_size: 128,
                data: DataConfig::default(),
                teacher: ModelConfig {
                    spec: "c16k3-c16k3-p2-c32k3-c32k3-p2-256-10".into(),
                    epochs: 12,
                    max_shift: 2,
                    optimizer: adam.clone(),
                    ..ModelConfig::default()
                },
                student: ModelConfig {
                    spec: "784-256-256-10".into(),
                    epochs: 20,
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
            },
            Preset::Quick => RunConfig {
                preset,
                data: DataConfig {
                    train_size: Some(20_000),
                    validation_size: 2_000,
                    ..DataConfig::default()
                },
                teacher: ModelConfig {
                    spec: "784-256-256-10".into(),
                    epochs: 5,
                    ..ModelConfig::default()
                },
                student: ModelConfig {
                    spec: "784-64-10".into(),
                    epochs: 8,
                    ..ModelConfig::default()
                },
                distill: DistillConfig {
                    temperature_grid: vec![2.0, 4.0],
                    alpha_grid: vec![0.5],
                    ..DistillConfig::default()
                },
                experiments: ExperimentsConfig {
                    compression: CompressionConfig {
                        labeled: None,
                        extra_examples: vec![10_000, 38_000],
                    },
                    ..ExperimentsConfig::default()
                },
                ..RunConfig::preset(Preset::Default)
            },
            Preset::Tiny => RunConfig {
                preset,
                teachers: 2,
                batch_size: 64,
                data: DataConfig {
                    train_size: Some(1_500),
                    validation_size: 500,
                    test_size: Some(1_000),
                    ..DataConfig::default()
                },
                teacher: ModelConfig {
                    spec: "784-128-10".into(),
                    epochs: 2,
                    ..ModelConfig::default()
                },
                student: ModelConfig {
                    spec: "784-32-10".into(),
                    epochs: 2,
                    ..ModelConfig::default()
                },
                distill: DistillConfig {
                    temperature_grid: vec![1.0, 4.0],
                    alpha_grid: vec![0.5],
                    ..DistillConfig::default()
                },
                experiments: ExperimentsConfig {
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
                },
                ..RunConfig::preset(Preset::Default)
            },
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
        check(
            self.teachers >= 1,
            format!("teachers = {}: need at least 1 teacher", self.teachers),
        );
        check(
            self.batch_size >= 1,
            "batch_size = 0: need at least 1".into(),
        );
        check(
            self.data.validation_size >= 1,
            "data.validation_size = 0: the validation split chooses T and alpha and checks the teachers, it needs examples".into(),
        );
        let csv = &self.data.csv;
        if self.data.dataset == DatasetKind::Csv {
            check(
                csv.train.is_some(),
                "data.dataset = \"csv\" but data.csv.train is not set: give the training file (--csv-train FILE)".into(),
            );
        }
        check(
            csv.test_fraction > 0.0 && csv.test_fraction < 1.0,
            format!(
                "data.csv.test_fraction = {}: expected a share in (0, 1)",
                csv.test_fraction
            ),
        );
        for (key, value) in [
            ("data.train_size", self.data.train_size),
            ("data.test_size", self.data.test_size),
        ] {
            check(
                value != Some(0),
                format!("{key} = 0: need at least 1 example (omit the key for all)"),
            );
        }
        for (role, model) in [("teacher", &self.teacher), ("student", &self.student)] {
            check(
                !model.spec.trim().is_empty(),
                format!("{role}.spec is empty: give an architecture such as 784-256-256-10"),
            );
            check(
                model.epochs >= 1,
                format!("{role}.epochs = 0: need at least 1"),
            );
            for (key, rate) in [
                ("dropout_input", model.dropout_input),
                ("dropout_hidden", model.dropout_hidden),
            ] {
                check(
                    rate.is_finite() && (0.0..1.0).contains(&rate),
                    format!("{role}.{key} = {rate}: expected a rate in [0, 1)"),
                );
            }
            if let Some(norm) = model.max_norm {
                check(
                    norm.is_finite() && norm > 0.0,
                    format!("{role}.max_norm = {norm}: expected a positive number (omit for none)"),
                );
            }
            let opt = &model.optimizer;
            check(
                opt.lr.is_finite() && opt.lr > 0.0,
                format!(
                    "{role}.optimizer.lr = {}: expected a positive number",
                    opt.lr
                ),
            );
            check(
                opt.momentum.is_finite() && (0.0..1.0).contains(&opt.momentum),
                format!(
                    "{role}.optimizer.momentum = {}: expected a value in [0, 1)",
                    opt.momentum
                ),
            );
            check(
                opt.weight_decay.is_finite() && opt.weight_decay >= 0.0,
                format!(
                    "{role}.optimizer.weight_decay = {}: expected a number >= 0",
                    opt.weight_decay
                ),
            );
        }
        let temperature_ok = |t: f32| t.is_finite() && t > 0.0;
        let alpha_ok = |a: f32| (0.0..=1.0).contains(&a);
        let d = &self.distill;
        if let Some(t) = d.temperature {
            check(
                temperature_ok(t),
                format!("distill.temperature = {t}: expected a finite number > 0"),
            );
        } else {
            check(!d.temperature_grid.is_empty(), "distill.temperature_grid is empty and no temperature is set: give one or the other".into());
        }
        for &t in &d.temperature_grid {
            check(
                temperature_ok(t),
                format!("distill.temperature_grid contains {t}: expected finite numbers > 0"),
            );
        }
        if let Some(a) = d.alpha {
            check(
                alpha_ok(a),
                format!("distill.alpha = {a}: expected a value in [0, 1]"),
            );
        } else {
            check(
                !d.alpha_grid.is_empty(),
                "distill.alpha_grid is empty and no alpha is set: give one or the other".into(),
            );
        }
        for &a in &d.alpha_grid {
            check(
                alpha_ok(a),
                format!("distill.alpha_grid contains {a}: expected values in [0, 1]"),
            );
        }
        self.experiment_problems(&mut check);
        check(
            self.eval.ece_bins >= 1,
            "eval.ece_bins = 0: need at least 1 bin".into(),
        );
        check(
            self.eval.throughput_batch >= 1,
            "eval.throughput_batch = 0: need at least 1".into(),
        );
        for &t in self
            .eval
            .probability_temperatures
            .iter()
            .chain([&self.eval.soft_target_temperature])
        {
            check(
                temperature_ok(t),
                format!("eval temperature {t}: expected finite numbers > 0"),
            );
        }
        problems
    }

    fn experiment_problems(&self, check: &mut impl FnMut(bool, String)) {
        let e = &self.experiments;
        check(
            e.temperature.is_finite() && e.temperature > 0.0,
            format!(
                "experiments.temperature = {}: expected a finite number > 0",
                e.temperature
            ),
        );
        check(
            (0.0..=1.0).contains(&e.alpha),
            format!(
                "experiments.alpha = {}: expected a value in [0, 1]",
                e.alpha
            ),
        );
        let c = &e.compression;
        check(
            c.labeled != Some(0),
            "experiments.compression.labeled = 0: need at least 1 labeled example (omit the key for the whole training split)".into(),
        );
        check(
            !c.extra_examples.is_empty() && !c.extra_examples.contains(&0),
            format!(
                "experiments.compression.extra_examples = {:?}: expected one or more sizes >= 1",
                c.extra_examples
            ),
        );
        let m = &e.munge;
        check(
            m.base_size >= 2,
            format!(
                "experiments.munge.base_size = {}: MUNGE needs at least 2 examples",
                m.base_size
            ),
        );
        check(
            !m.multipliers.is_empty() && !m.multipliers.contains(&0),
            format!(
                "experiments.munge.multipliers = {:?}: expected one or more multipliers >= 1",
                m.multipliers
            ),
        );
        check(
            (0.0..=1.0).contains(&m.swap_probability),
            format!(
                "experiments.munge.swap_probability = {}: expected a probability in [0, 1]",
                m.swap_probability
            ),
        );
        check(
            m.local_variance.is_finite() && m.local_variance > 0.0,
            format!(
                "experiments.munge.local_variance = {}: expected a finite number > 0",
                m.local_variance
            ),
        );
        let o = &e.omit_class;
        check(
            o.max_bias_shift.is_finite() && o.max_bias_shift >= 0.0,
            format!(
                "experiments.omit_class.max_bias_shift = {}: expected a number >= 0",
                o.max_bias_shift
            ),
        );
        check(
            o.bias_shift_step.is_finite() && o.bias_shift_step > 0.0,
            format!(
                "experiments.omit_class.bias_shift_step = {}: expected a number > 0",
                o.bias_shift_step
            ),
        );
        let sweep = &e.temperature_sweep;
        check(
            !sweep.temperatures.is_empty()
                && sweep.temperatures.iter().all(|t| t.is_finite() && *t > 0.0),
            format!(
                "experiments.temperature_sweep.temperatures = {:?}: expected one or more finite numbers > 0",
                sweep.temperatures
            ),
        );
        check(
            !sweep.alphas.is_empty() && sweep.alphas.iter().all(|a| (0.0..=1.0).contains(a)),
            format!(
                "experiments.temperature_sweep.alphas = {:?}: expected one or more values in [0, 1]",
                sweep.alphas
            ),
        );
        let small = &e.small_data;
        check(
            small.fraction > 0.0 && small.fraction <= 1.0,
            format!(
                "experiments.small_data.fraction = {}: expected a share in (0, 1]",
                small.fraction
            ),
        );
        check(
            small.epochs != Some(0),
            "experiments.small_data.epochs = 0: need at least 1 (omit the key for the default)"
                .into(),
        );
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

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
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

/// Command-line overrides: each flag, when given, replaces the setting from the preset and
/// the config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Preset of defaults: default (laptop GPU), quick (software Vulkan such as lavapipe), tiny (CI smoke test)
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Run one of the papers' experiments instead of the standard comparison
    #[arg(long, value_enum, value_name = "NAME")]
    pub experiment: Option<Experiment>,
    /// Data set: fashion-mnist, mnist, kmnist, cifar10, or csv (your own file, see --csv-train)
    #[arg(long, value_enum, value_name = "NAME")]
    pub dataset: Option<DatasetKind>,
    /// Folder holding the data set's files, or one subfolder per data set (fashion-mnist,
    /// mnist, kmnist, cifar10): the IDX files, or CIFAR-10's cifar-10-batches-bin (skips the search)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// CSV data set: the training file (numeric feature columns and one label column)
    #[arg(long, value_name = "FILE")]
    pub csv_train: Option<PathBuf>,
    /// CSV data set: a test file with the same columns [default: hold out part of the training file]
    #[arg(long, value_name = "FILE")]
    pub csv_test: Option<PathBuf>,
    /// CSV data set: the label column, a header name or a 0-based index [default: `label`, else the last column]
    #[arg(long, value_name = "COLUMN")]
    pub csv_label: Option<LabelColumn>,
    /// CSV data set: whether the first row is a header [default: detected]
    #[arg(long, value_name = "BOOL")]
    pub csv_header: Option<bool>,
    /// Run folder for checkpoints, results.json and report.html [default: runs/<UTC timestamp>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of the split, initialisation, shuffling, dropout and jitter
    #[arg(long)]
    pub seed: Option<u64>,
    /// Number of teachers in the ensemble
    #[arg(long, value_name = "K")]
    pub teachers: Option<usize>,
    /// Teacher architecture, e.g. 784-1200-1200-10 or c16k3-c16k3-p2-c32k3-c32k3-p2-256-10
    #[arg(long, value_name = "SPEC")]
    pub teacher_spec: Option<String>,
    /// Student architecture, e.g. 784-256-256-10
    #[arg(long, value_name = "SPEC")]
    pub student_spec: Option<String>,
    /// Epochs of both teachers and students (the specific flags below win)
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Teacher training epochs
    #[arg(long, value_name = "N")]
    pub teacher_epochs: Option<usize>,
    /// Student training epochs
    #[arg(long, value_name = "N")]
    pub student_epochs: Option<usize>,
    /// Mini-batch size
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Optimizer of teachers and students
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Learning rate of teachers and students
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// Teachers' dropout rate on input pixels
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub dropout_input: Option<f32>,
    /// Teachers' dropout rate after hidden layers
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub dropout_hidden: Option<f32>,
    /// Teachers' random image shift in pixels (0 = no jitter)
    #[arg(long, value_name = "PIXELS")]
    pub max_shift: Option<u32>,
    /// Teachers' max-norm constraint on each unit's incoming weights
    #[arg(long, allow_negative_numbers = true)]
    pub max_norm: Option<f32>,
    /// Distillation temperature [default: chosen on validation from the grid]
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Soft-target weight in [0, 1] [default: chosen on validation from the grid]
    #[arg(long, allow_negative_numbers = true)]
    pub alpha: Option<f32>,
    /// Temperatures tried on validation, comma-separated
    #[arg(
        long,
        value_name = "T,..",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub temperature_grid: Option<Vec<f32>>,
    /// Alphas tried on validation, comma-separated
    #[arg(
        long,
        value_name = "A,..",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub alpha_grid: Option<Vec<f32>>,
    /// Training examples [default: all that the validation split leaves, or the preset's]
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Validation examples carved from the training set
    #[arg(long, value_name = "N")]
    pub validation_size: Option<usize>,
    /// Test examples [default: the whole test set, or the preset's]
    #[arg(long, value_name = "N")]
    pub test_size: Option<usize>,
    /// Split and subsample with a plain shuffle instead of stratifying by class
    #[arg(long)]
    pub plain_split: bool,
}

impl Overrides {
    /// Applies every flag that was given.
    pub fn apply(&self, config: &mut RunConfig) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        set(&mut config.preset, &self.preset);
        if self.experiment.is_some() {
            config.experiment = self.experiment;
        }
        set(&mut config.data.dataset, &self.dataset);
        if self.data_dir.is_some() {
            config.data.dir = self.data_dir.clone();
        }
        let csv = &mut config.data.csv;
        for (target, value) in [
            (&mut csv.train, &self.csv_train),
            (&mut csv.test, &self.csv_test),
        ] {
            if value.is_some() {
                target.clone_from(value);
            }
        }
        if self.csv_label.is_some() {
            csv.label.clone_from(&self.csv_label);
        }
        if self.csv_header.is_some() {
            csv.header = self.csv_header;
        }
        if self.out.is_some() {
            config.out_dir = self.out.clone();
        }
        set(&mut config.seed, &self.seed);
        set(&mut config.teachers, &self.teachers);
        set(&mut config.teacher.spec, &self.teacher_spec);
        set(&mut config.student.spec, &self.student_spec);
        set(&mut config.teacher.epochs, &self.epochs);
        set(&mut config.student.epochs, &self.epochs);
        set(&mut config.teacher.epochs, &self.teacher_epochs);
        set(&mut config.student.epochs, &self.student_epochs);
        set(&mut config.batch_size, &self.batch_size);
        for model in [&mut config.teacher, &mut config.student] {
            set(&mut model.optimizer.kind, &self.optimizer);
            set(&mut model.optimizer.lr, &self.lr);
        }
        set(&mut config.teacher.dropout_input, &self.dropout_input);
        set(&mut config.teacher.dropout_hidden, &self.dropout_hidden);
        set(&mut config.teacher.max_shift, &self.max_shift);
        if self.max_norm.is_some() {
            config.teacher.max_norm = self.max_norm;
        }
        if self.temperature.is_some() {
            config.distill.temperature = self.temperature;
        }
        if self.alpha.is_some() {
            config.distill.alpha = self.alpha;
        }
        set(&mut config.distill.temperature_grid, &self.temperature_grid);
        set(&mut config.distill.alpha_grid, &self.alpha_grid);
        if self.train_size.is_some() {
            config.data.train_size = self.train_size;
        }
        set(&mut config.data.validation_size, &self.validation_size);
        if self.test_size.is_some() {
            config.data.test_size = self.test_size;
        }
        if self.plain_split {
            config.data.stratified = false;
        }
    }
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
                source,
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
    header + "\n" + &body
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
    fn presets_are_valid_and_distinct() {
        for preset in [Preset::Default, Preset::Quick, Preset::Tiny] {
            let config = RunConfig::preset(preset);
            assert_eq!(config.problems(), Vec::<String>::new(), "{preset:?}");
            assert_eq!(config.preset, preset);
        }
        let default = RunConfig::preset(Preset::Default);
        assert_eq!((default.teachers, default.data.validation_size), (3, 5000));
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
        assert_eq!(config.distill.candidates(), vec![(2.0, 0.7), (4.0, 0.7)]);

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
}
