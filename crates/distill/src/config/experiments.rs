//! Settings of the papers' experiments (`--experiment NAME`, the `[experiments]` tables).

use super::{MAX_EPOCHS, MAX_STEPS, MAX_TEMPERATURE, check_count, temperature_ok};
use serde::{Deserialize, Serialize};

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

/// The most synthetic examples one MUNGE multiplier may ask for (k x base_size).
pub const MAX_MUNGE_EXAMPLES: usize = 5_000_000;

/// `omit-class`: one class removed from the student's transfer set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OmitClassConfig {
    /// The omitted class, by name or label index (a class name wins when both match, as
    /// with CSV labels "1".."10"); absent: "Dress" on Fashion-MNIST, else 3.
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

/// The most output-bias shifts the omit-class grid may hold.
pub const MAX_BIAS_SHIFTS: usize = 10_000;

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
    /// Student epochs on the small set (absent: the whole-split student's epochs / fraction,
    /// at most 100 but never fewer than the whole-split epochs, so the students take about
    /// as many steps as on the whole split).
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
    /// The students' training length in the experiments, in steps on the training split
    /// (absent: `student.steps`): the experiments give every row those epochs on transfer
    /// sets several times larger, which a standard-study budget sized for convergence would
    /// make too long. A student length given by flag or in `[student]` wins.
    pub student_steps: Option<usize>,
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
            student_steps: None,
            compression: CompressionConfig::default(),
            munge: MungeConfig::default(),
            omit_class: OmitClassConfig::default(),
            temperature_sweep: TemperatureSweepConfig::default(),
            small_data: SmallDataConfig::default(),
        }
    }
}

impl ExperimentsConfig {
    /// Adds a line to `check` for every bad experiment setting, section by section in the
    /// order of the `[experiments]` tables (so the lines come out in that order).
    pub(super) fn check(&self, check: &mut impl FnMut(bool, String)) {
        self.check_shared(check);
        self.compression.check(check);
        self.munge.check(check);
        self.omit_class.check(check);
        self.temperature_sweep.check(check);
        self.small_data.check(check);
    }

    /// The temperature and alpha shared by the experiments that use one setting.
    fn check_shared(&self, check: &mut impl FnMut(bool, String)) {
        check(
            temperature_ok(self.temperature),
            format!(
                "experiments.temperature = {}: expected a number in (0, {MAX_TEMPERATURE}]",
                self.temperature
            ),
        );
        check(
            (0.0..=1.0).contains(&self.alpha),
            format!(
                "experiments.alpha = {}: expected a value in [0, 1]",
                self.alpha
            ),
        );
        if let Some(steps) = self.student_steps {
            check_count(check, "experiments.student_steps", steps, MAX_STEPS, "");
        }
    }
}

impl CompressionConfig {
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        check(
            self.labeled != Some(0),
            "experiments.compression.labeled = 0: need at least 1 labeled example (omit the key for the whole training split)".into(),
        );
        check(
            !self.extra_examples.is_empty() && !self.extra_examples.contains(&0),
            format!(
                "experiments.compression.extra_examples = {:?}: expected one or more sizes >= 1",
                self.extra_examples
            ),
        );
    }
}

impl MungeConfig {
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        check(
            self.base_size >= 2,
            format!(
                "experiments.munge.base_size = {}: MUNGE needs at least 2 examples",
                self.base_size
            ),
        );
        check(
            !self.multipliers.is_empty() && !self.multipliers.contains(&0),
            format!(
                "experiments.munge.multipliers = {:?}: expected one or more multipliers >= 1",
                self.multipliers
            ),
        );
        // Each multiplier is checked on its own so that the line names the one too large.
        for &k in &self.multipliers {
            check(
                k.checked_mul(self.base_size)
                    .is_some_and(|n| n <= MAX_MUNGE_EXAMPLES),
                format!(
                    "experiments.munge.multipliers contains {k}: {k} x base_size {} is more than {MAX_MUNGE_EXAMPLES} synthetic examples",
                    self.base_size
                ),
            );
        }
        check(
            (0.0..=1.0).contains(&self.swap_probability),
            format!(
                "experiments.munge.swap_probability = {}: expected a probability in [0, 1]",
                self.swap_probability
            ),
        );
        check(
            self.local_variance.is_finite() && self.local_variance > 0.0,
            format!(
                "experiments.munge.local_variance = {}: expected a finite number > 0",
                self.local_variance
            ),
        );
    }
}

impl OmitClassConfig {
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        check(
            self.max_bias_shift.is_finite() && self.max_bias_shift >= 0.0,
            format!(
                "experiments.omit_class.max_bias_shift = {}: expected a number >= 0",
                self.max_bias_shift
            ),
        );
        check(
            self.bias_shift_step.is_finite() && self.bias_shift_step > 0.0,
            format!(
                "experiments.omit_class.bias_shift_step = {}: expected a number > 0",
                self.bias_shift_step
            ),
        );
        // A bad step or maximum is reported above; the grid size only means something for
        // good ones.
        let good = |x: f32| x.is_finite() && x > 0.0;
        check(
            !good(self.bias_shift_step)
                || !good(self.max_bias_shift)
                || (self.max_bias_shift / self.bias_shift_step) <= MAX_BIAS_SHIFTS as f32,
            format!(
                "experiments.omit_class: {} / {} is more than {MAX_BIAS_SHIFTS} shifts to try: raise bias_shift_step",
                self.max_bias_shift, self.bias_shift_step
            ),
        );
    }
}

impl TemperatureSweepConfig {
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        for (key, values) in [
            ("temperatures", &self.temperatures),
            ("alphas", &self.alphas),
        ] {
            let mut sorted = values.clone();
            sorted.sort_by(f32::total_cmp);
            sorted.dedup();
            check(
                sorted.len() == values.len(),
                format!("experiments.temperature_sweep.{key} = {values:?}: a value is repeated"),
            );
        }
        check(
            !self.temperatures.is_empty() && self.temperatures.iter().all(|&t| temperature_ok(t)),
            format!(
                "experiments.temperature_sweep.temperatures = {:?}: expected one or more numbers in (0, {MAX_TEMPERATURE}]",
                self.temperatures
            ),
        );
        check(
            !self.alphas.is_empty() && self.alphas.iter().all(|a| (0.0..=1.0).contains(a)),
            format!(
                "experiments.temperature_sweep.alphas = {:?}: expected one or more values in [0, 1]",
                self.alphas
            ),
        );
    }
}

impl SmallDataConfig {
    fn check(&self, check: &mut impl FnMut(bool, String)) {
        check(
            self.fraction > 0.0 && self.fraction <= 1.0,
            format!(
                "experiments.small_data.fraction = {}: expected a share in (0, 1]",
                self.fraction
            ),
        );
        if let Some(epochs) = self.epochs {
            let key = "experiments.small_data.epochs";
            check_count(
                check,
                key,
                epochs,
                MAX_EPOCHS,
                " (omit the key for the default)",
            );
        }
    }
}
