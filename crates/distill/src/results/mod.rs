//! The `results.json` schema: what one run measured. `SCHEMA.md` in this crate documents
//! the same structure for readers of the JSON. Accuracies and shares are fractions in [0, 1].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::run_dir::write_atomic;
use crate::stats;

mod experiment;

pub use experiment::{
    Cell, Column, ColumnKind, CompressionRow, ExperimentRows, ExperimentTable, LineChart, MungeRow,
    OmitClassRow, Reference, Series, Setting, SmallDataRow, TableRow, TemperatureRow,
};

/// Bumped whenever a field changes meaning or is removed.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one run produced, as written to `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// Where, when and with what settings the run happened.
    pub run: RunInfo,
    /// One entry per trained or combined model, teachers first.
    pub models: Vec<ModelResult>,
    /// The validation search over (temperature, alpha) for the distilled student.
    pub grid: Vec<GridPoint>,
    /// Human-readable warnings, e.g. "the ensemble does not beat the student's hard-label
    /// baseline on validation".
    pub warnings: Vec<String>,
    /// The data behind the report's dark-knowledge figures (absent when not computed).
    pub dark_knowledge: Option<DarkKnowledge>,
    /// The table of the experiment the run made (`--experiment NAME`); absent for the
    /// standard study.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentTable>,
}

/// Facts about the run as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Version of the darkknowledge tool (`CARGO_PKG_VERSION`).
    pub tool_version: String,
    /// Start time, ISO 8601 UTC.
    pub started_utc: String,
    /// End time, ISO 8601 UTC (absent while the run is in progress).
    pub finished_utc: Option<String>,
    /// Wall-clock duration of the whole run in seconds.
    pub duration_s: Option<f64>,
    /// The GPU adapter the run used.
    pub adapter: AdapterInfo,
    /// The data set and the sizes of its splits.
    pub dataset: DatasetInfo,
    /// Master seed (also inside `config`, repeated for convenience).
    pub seed: u64,
    /// The effective settings (the same as the run folder's `config.toml`).
    pub config: RunConfig,
    /// The wall-clock time estimated before training, per phase, beside the measured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_estimate: Option<TimeEstimate>,
}

/// The run's time as estimated before training (from a few timed steps of each model) and
/// as measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeEstimate {
    pub phases: Vec<PhaseTime>,
    /// Estimated seconds of all phases.
    pub total_s: f64,
    /// Measured seconds of all phases.
    pub actual_s: Option<f64>,
}

/// One phase of a run: `models` models trained one after the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// "teachers" or "students".
    pub name: String,
    pub models: usize,
    pub estimated_s: f64,
    /// Measured training seconds of every model the phase trained (the students' phase: the
    /// (T, alpha) candidates that were not kept and the repeats too).
    pub actual_s: Option<f64>,
}

/// The wgpu adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// Adapter name as reported by the driver, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend: "Vulkan", "Metal", "Dx12", "Gl".
    pub backend: String,
    /// True for a software adapter (lavapipe, WARP, SwiftShader): timings are not GPU timings.
    pub is_cpu: bool,
}

/// The data set of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// E.g. "Fashion-MNIST", "CIFAR-10", "CSV wine.csv".
    pub name: String,
    /// Folder the data files were read from (the training file for CSV data).
    pub source_dir: String,
    /// Training examples used: the teachers' and the hard-label student's, and the distilled
    /// students' with `unlabeled` more.
    pub train: usize,
    /// Unlabeled images (training images outside both splits, labeled by the ensemble) that
    /// the distilled students of the standard study learned from besides the training split.
    #[serde(default)]
    pub unlabeled: usize,
    /// Validation examples (carved from the official training set).
    pub validation: usize,
    /// Test examples evaluated.
    pub test: usize,
    /// Class names in label order.
    pub class_names: Vec<String>,
    /// Image height in pixels (1 for tabular data).
    pub height: usize,
    /// Image width in pixels, or the number of features of tabular data.
    pub width: usize,
}

/// What a model is in the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// One member of the teacher ensemble, trained on hard labels.
    Teacher,
    /// The teachers combined: mean of their log-softmax.
    Ensemble,
    /// The student architecture trained on hard labels only (the baseline).
    StudentHard,
    /// The student distilled from the ensemble (soft targets at T, mixed with hard labels by alpha).
    StudentKd,
    /// The student trained to regress the ensemble's logits (L2).
    StudentLogitMse,
    /// The student distilled from the single best teacher instead of the ensemble.
    StudentKdBestTeacher,
    /// A student of an experiment, trained on the transfer set its name and the experiment
    /// table describe.
    StudentExperiment,
}

impl Role {
    /// The kebab-case name used in JSON and in the report.
    pub fn label(self) -> &'static str {
        match self {
            Role::Teacher => "teacher",
            Role::Ensemble => "ensemble",
            Role::StudentHard => "student-hard",
            Role::StudentKd => "student-kd",
            Role::StudentLogitMse => "student-logit-mse",
            Role::StudentKdBestTeacher => "student-kd-best-teacher",
            Role::StudentExperiment => "student-experiment",
        }
    }

    /// True for the student roles.
    pub fn is_student(self) -> bool {
        !matches!(self, Role::Teacher | Role::Ensemble)
    }
}

/// One model's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelResult {
    /// Unique name within the run, e.g. "teacher-2", "student-kd".
    pub name: String,
    /// What the model is.
    pub role: Role,
    /// Architecture spec; for the ensemble, "K x spec" (K members of that spec).
    pub spec: String,
    /// Trainable parameters (the ensemble: sum over members).
    pub params: u64,
    /// Floating-point operations of one forward pass on one example, a multiply-add
    /// counting as 2 (the ensemble: sum over members).
    pub flops_per_example: u64,
    /// Metrics on the test set.
    pub test: TestMetrics,
    /// Accuracy on the validation split (what model selection looked at).
    pub validation_accuracy: Option<f64>,
    /// Students: (accuracy - student-hard accuracy) / (ensemble accuracy - student-hard
    /// accuracy) on test; absent for teachers, the ensemble, or when the denominator is ~0.
    pub gap_recovered: Option<f64>,
    /// Distillation temperature used (distilled students only).
    pub temperature: Option<f32>,
    /// Soft-target weight used (distilled students only).
    pub alpha: Option<f32>,
    /// One entry per training epoch (empty for the ensemble).
    pub curve: Vec<EpochStats>,
    /// Measured inference cost.
    pub serving: Option<ServingCost>,
    /// Checkpoint file relative to the run folder, if saved.
    pub checkpoint: Option<String>,
    /// Training wall-clock time in seconds.
    pub train_seconds: Option<f64>,
    /// The epoch whose weights were kept: the best on validation (accuracy, ties by NLL);
    /// absent for the ensemble and for models not trained in this run.
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// Optimisation steps taken (absent where not trained in this run).
    #[serde(default)]
    pub train_steps: Option<usize>,
    /// How training ended: "completed", "early-stopped", "diverged" or "collapsed".
    #[serde(default)]
    pub stop: Option<String>,
    /// Students other than `student-hard`: the paired test-set comparison with the
    /// hard-label student (its first repeat with this model's first repeat).
    #[serde(default)]
    pub versus_hard: Option<PairedComparison>,
    /// Students of a run with `repeats` > 1: test accuracy over the repeats.
    #[serde(default)]
    pub repeats: Option<RepeatStats>,
}

/// One model against a baseline on the same test examples (see `stats`): the accuracy
/// difference with its paired bootstrap interval, and McNemar's exact test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Name of the baseline model.
    pub baseline: String,
    /// Test accuracy of this model minus the baseline's (a fraction: 0.003 = 0.3 points).
    pub difference: f64,
    /// The 95% paired bootstrap interval of `difference`.
    pub ci_low: f64,
    pub ci_high: f64,
    /// McNemar's exact two-sided p-value.
    pub p_value: f64,
    /// Test examples this model gets right and the baseline wrong ...
    pub only_this_right: usize,
    /// ... and the other way round.
    pub only_baseline_right: usize,
    /// Bootstrap resamples behind the interval.
    pub resamples: usize,
    /// Seed of the bootstrap's resampling.
    pub seed: u64,
}

impl PairedComparison {
    /// Compares `this` with `baseline`, given whether each test example is classified
    /// correctly by each (the same examples in the same order).
    pub fn measure(
        this: &[bool],
        baseline: &[bool],
        baseline_name: &str,
        resamples: usize,
        seed: u64,
    ) -> PairedComparison {
        let (only_this_right, only_baseline_right) = stats::discordant_counts(this, baseline);
        let interval = stats::paired_bootstrap_interval(this, baseline, resamples, seed);
        let n = this.len().max(1) as f64;
        PairedComparison {
            baseline: baseline_name.to_string(),
            difference: (only_this_right as f64 - only_baseline_right as f64) / n,
            ci_low: interval.low,
            ci_high: interval.high,
            p_value: stats::mcnemar_exact_p(only_this_right, only_baseline_right),
            only_this_right,
            only_baseline_right,
            resamples,
            seed,
        }
    }

    /// True when McNemar's p is below [`stats::SIGNIFICANCE_LEVEL`].
    pub fn significant(&self) -> bool {
        self.p_value < stats::SIGNIFICANCE_LEVEL
    }

    /// The difference in points with its interval: "+0.30 [-0.12, +0.71]".
    pub fn points_with_interval(&self) -> String {
        format!(
            "{:+.2} [{:+.2}, {:+.2}]",
            100.0 * self.difference,
            100.0 * self.ci_low,
            100.0 * self.ci_high
        )
    }

    /// "significant (McNemar p = 0.003, 95% CI +0.12 to +0.71 points)", or "not significant (...)".
    pub fn evidence(&self) -> String {
        format!(
            "{} (McNemar p = {}, 95% CI {:+.2} to {:+.2} points)",
            if self.significant() {
                "significant"
            } else {
                "not significant"
            },
            format_p(self.p_value),
            100.0 * self.ci_low,
            100.0 * self.ci_high
        )
    }

    /// A sentence on `name` against the baseline: "student-kd beats student-hard by 0.30
    /// points on test, not significant (McNemar p = 0.21, 95% CI -0.12 to +0.71 points)".
    pub fn sentence(&self, name: &str) -> String {
        let points = 100.0 * self.difference.abs();
        let baseline = &self.baseline;
        let comparison = if self.difference > 0.0 {
            format!("{name} beats {baseline} by {points:.2} points on test")
        } else if self.difference < 0.0 {
            format!("{name} is {points:.2} points below {baseline} on test")
        } else {
            format!("{name} ties with {baseline} on test")
        };
        format!("{comparison}, {}", self.evidence())
    }
}

/// A p-value for people: two decimals from 0.1, three from 0.001 (so that a value just
/// under 0.05 does not print as 0.05), else scientific notation.
pub fn format_p(p: f64) -> String {
    if p >= 0.1 {
        format!("{p:.2}")
    } else if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

/// Test accuracy of one student trained several times with different seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatStats {
    /// One accuracy per repeat, the first being the model's own `test.accuracy`.
    pub test_accuracies: Vec<f64>,
    pub mean: f64,
    /// Sample standard deviation (divisor repeats - 1).
    pub sd: f64,
    /// This student against student-hard over the repeats (absent for student-hard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versus_hard: Option<SeedComparison>,
}

/// A paired t-test of a student's per-repeat test accuracy minus student-hard's (the
/// students of one repeat share initial weights and batch order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedComparison {
    /// Mean and sample standard deviation of the per-repeat differences (fractions).
    pub mean_difference: f64,
    pub sd: f64,
    pub t: f64,
    pub df: usize,
    /// Two-sided p-value, Student's t distribution with `df` degrees of freedom.
    pub p_value: f64,
}

impl SeedComparison {
    /// The comparison of paired accuracies `this[i]` against `baseline[i]` (`None` for fewer
    /// than two pairs, lists of different lengths, or differences that are all equal).
    pub fn of(this: &[f64], baseline: &[f64]) -> Option<SeedComparison> {
        if this.len() != baseline.len() {
            return None;
        }
        let differences: Vec<f64> = this.iter().zip(baseline).map(|(a, b)| a - b).collect();
        let test = stats::paired_t_test(&differences)?;
        Some(SeedComparison {
            mean_difference: test.mean,
            sd: test.sd,
            t: test.t,
            df: test.df,
            p_value: test.p_value,
        })
    }

    /// True when the t-test's p is below [`stats::SIGNIFICANCE_LEVEL`], as for
    /// [`PairedComparison::significant`].
    pub fn significant(&self) -> bool {
        self.p_value < stats::SIGNIFICANCE_LEVEL
    }

    /// "+0.29 ± 0.15 points, t = 4.37, p = 0.012" (over the repeats).
    pub fn summary(&self) -> String {
        format!(
            "{:+.2} ± {:.2} points, t = {:.2}, p = {}",
            100.0 * self.mean_difference,
            100.0 * self.sd,
            self.t,
            format_p(self.p_value)
        )
    }
}

impl RepeatStats {
    /// The statistics of two or more accuracies (`None` for fewer).
    pub fn of(test_accuracies: Vec<f64>) -> Option<RepeatStats> {
        let (mean, sd) = stats::mean_and_sd(&test_accuracies);
        Some(RepeatStats {
            sd: sd?,
            mean,
            test_accuracies,
            versus_hard: None,
        })
    }

    /// "89.12 ± 0.31" (percent).
    pub fn mean_pm_sd(&self) -> String {
        format!("{:.2} ± {:.2}", 100.0 * self.mean, 100.0 * self.sd)
    }
}

/// Test-set metrics of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestMetrics {
    /// Share of test examples classified correctly.
    pub accuracy: f64,
    /// Misclassified test examples ...
    pub errors: usize,
    /// ... out of this many.
    pub examples: usize,
    /// Mean negative log-likelihood of the true labels (nats).
    pub nll: f64,
    /// Expected calibration error over `eval.ece_bins` equal-width confidence bins (15 by
    /// default; see `metrics`).
    pub ece: f64,
    /// Share of test examples where the argmax equals the ensemble's.
    pub agreement_with_ensemble: Option<f64>,
    /// Accuracy per class, in label order (null for a class absent from the test set).
    pub per_class_accuracy: Vec<Option<f64>>,
}

/// Statistics of one training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch (the objective the model was trained on).
    pub train_loss: f64,
    /// Mean cross-entropy of the true labels over the epoch (the hard-label term at T = 1,
    /// without label smoothing), where the loss kernel reports it.
    #[serde(default)]
    pub train_hard_loss: Option<f64>,
    /// Mean soft-target term over the epoch: KL(teacher || student) at the temperature for
    /// distillation (0 when the student matches the teacher), the logit MSE for logit
    /// matching; absent for hard labels.
    #[serde(default)]
    pub train_soft_loss: Option<f64>,
    /// Training accuracy against the hard labels over the epoch.
    pub train_accuracy: f64,
    /// Validation accuracy at the end of the epoch.
    pub validation_accuracy: f64,
    /// Mean NLL of the true validation labels at the end of the epoch.
    #[serde(default)]
    pub validation_nll: Option<f64>,
    /// Learning rate of the epoch's last step.
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Inference cost measured on the run's adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingCost {
    /// Median latency of one forward pass at batch size 1, milliseconds (including submit and read-back).
    pub latency_batch1_ms: f64,
    /// Examples per second at batch size `throughput_batch`.
    pub throughput_per_s: f64,
    /// The batch size of the throughput measurement (256 by default).
    pub throughput_batch: usize,
}

/// One point of the validation search over (temperature, alpha).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Distillation temperature.
    pub temperature: f32,
    /// Soft-target weight.
    pub alpha: f32,
    /// The student's validation accuracy after training with these settings.
    pub validation_accuracy: f64,
    /// The student's validation NLL.
    pub validation_nll: Option<f64>,
    /// True for the setting chosen (the highest validation accuracy; ties: lower NLL, then lower T).
    pub chosen: bool,
}

/// Data behind the report's dark-knowledge figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DarkKnowledge {
    /// Index of the shown example in the test set.
    pub example_index: usize,
    /// Its true class.
    pub true_class: usize,
    /// Its pixels, `channels x height x width` bytes: one row-major plane per channel
    /// (grey, or red, green, blue), 0 = black; empty for tabular data (no picture).
    pub image: Vec<u8>,
    pub height: usize,
    pub width: usize,
    /// The ensemble's class probabilities for the example at several temperatures.
    pub probabilities: Vec<TemperatureProbabilities>,
    /// Temperature of `mean_soft_targets`.
    pub soft_target_temperature: f32,
    /// Mean soft targets over the test set: row = true class, column = class, `C x C`.
    pub mean_soft_targets: Vec<Vec<f64>>,
}

/// Class probabilities at one temperature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemperatureProbabilities {
    pub temperature: f32,
    /// One probability per class, in label order.
    pub probabilities: Vec<f32>,
}

/// A warning that follows from a run's numbers ([`Results::derived_warnings`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedWarning {
    /// The role of the model the warning is about.
    pub role: Role,
    /// The warning as `results.json` and the report give it.
    pub text: String,
}

impl DerivedWarning {
    fn about(model: &ModelResult, text: String) -> DerivedWarning {
        DerivedWarning {
            role: model.role,
            text,
        }
    }
}

impl Results {
    /// How many times the students were trained, where more than once (`--repeats`).
    pub fn repeat_count(&self) -> Option<usize> {
        self.models
            .iter()
            .find_map(|m| m.repeats.as_ref())
            .map(|r| r.test_accuracies.len())
    }

    /// The first model with `role`.
    pub fn model(&self, role: Role) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.role == role)
    }

    /// Warnings that follow from the numbers: teachers (and the ensemble) that do not beat
    /// the student's hard-label baseline (on validation, where available, else on test),
    /// and distilled students that do not beat it significantly on test (a win that may be
    /// noise, or a loss, with McNemar's p and the 95% interval where the comparison was
    /// measured).
    pub fn derived_warnings(&self) -> Vec<DerivedWarning> {
        let mut warnings = Vec::new();
        let Some(hard) = self.model(Role::StudentHard) else {
            return warnings;
        };
        let score = |m: &ModelResult| match (m.validation_accuracy, hard.validation_accuracy) {
            (Some(own), Some(base)) => (own, base, "validation"),
            _ => (m.test.accuracy, hard.test.accuracy, "test"),
        };
        for model in self.models.iter().filter(|m| !m.role.is_student()) {
            let (own, base, split) = score(model);
            if own <= base {
                warnings.push(DerivedWarning::about(model, format!(
                    "{} ({:.2}%) does not beat the student's hard-label baseline ({:.2}%) on {split}: distillation from it is unlikely to help; train the teachers longer or make them larger",
                    model.name,
                    100.0 * own,
                    100.0 * base
                )));
            }
        }
        for model in self.models.iter().filter(|m| {
            // Experiment students learn from other transfer sets on purpose.
            m.role.is_student() && !matches!(m.role, Role::StudentHard | Role::StudentExperiment)
        }) {
            let over_seeds = model.repeats.as_ref().and_then(|r| {
                let v = r.versus_hard.as_ref()?;
                let gain = v.mean_difference > 0.0 && v.significant();
                let n = r.test_accuracies.len();
                Some((
                    gain,
                    format!("; over {n} repeats (paired t-test): {}", v.summary()),
                ))
            });
            let seeds_gain = over_seeds.as_ref().is_none_or(|(gain, _)| *gain);
            match &model.versus_hard {
                Some(versus)
                    if !(versus.difference > 0.0 && versus.significant() && seeds_gain) =>
                {
                    let clause = over_seeds.map(|(_, text)| text).unwrap_or_default();
                    let text = format!("{}{clause}", versus.sentence(&model.name));
                    warnings.push(DerivedWarning::about(model, text));
                }
                Some(_) => {}
                None if model.test.accuracy < hard.test.accuracy => {
                    warnings.push(DerivedWarning::about(
                        model,
                        format!(
                            "{} ({:.2}%) is below the hard-label student ({:.2}%) on test",
                            model.name,
                            100.0 * model.test.accuracy,
                            100.0 * hard.test.accuracy
                        ),
                    ));
                }
                None => {}
            }
        }
        warnings
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("results always serialise")
    }

    /// Writes `results.json` atomically.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// Reads a `results.json`.
    pub fn read(path: &Path) -> anyhow::Result<Results> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid results file", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{sample_results, temp_dir};

    #[test]
    fn round_trips_through_json_file() {
        let dir = temp_dir("results");
        let results = sample_results();
        let path = dir.path().join("results.json");
        results.write(&path).unwrap();
        let back = Results::read(&path).unwrap();
        assert!(back == results, "results differ after a JSON round trip");
        let json = std::fs::read_to_string(&path).unwrap();
        assert!(
            json.contains("\"role\": \"student-kd\""),
            "kebab-case roles"
        );
        assert!(json.contains("\"schema_version\": 1"));
    }

    #[test]
    fn files_without_comparisons_or_repeats_still_read() {
        let results = sample_results();
        let mut json: serde_json::Value = serde_json::from_str(&results.to_json()).unwrap();
        for model in json["models"].as_array_mut().unwrap() {
            let model = model.as_object_mut().unwrap();
            model.remove("versus_hard");
            model.remove("repeats");
        }
        json["experiment"]
            .as_object_mut()
            .unwrap()
            .remove("comparisons");
        let back: Results = serde_json::from_value(json).unwrap();
        assert!(
            back.models
                .iter()
                .all(|m| m.versus_hard.is_none() && m.repeats.is_none())
        );
        assert!(back.experiment.unwrap().comparisons.is_empty());
    }

    #[test]
    fn reading_garbage_names_the_file() {
        let dir = temp_dir("results-bad");
        let path = dir.path().join("results.json");
        std::fs::write(&path, "{\"schema_version\": 1").unwrap();
        let text = format!("{:#}", Results::read(&path).unwrap_err());
        assert!(
            text.contains("results.json: not a valid results file"),
            "{text}"
        );
    }

    #[test]
    fn warns_about_teachers_that_do_not_beat_the_baseline() {
        let mut results = sample_results();
        let texts = |results: &Results| -> Vec<String> {
            results
                .derived_warnings()
                .into_iter()
                .map(|w| w.text)
                .collect()
        };
        assert_eq!(
            results.derived_warnings(),
            Vec::new(),
            "teachers above the baseline"
        );
        // Teacher 1 on validation: 0.922 vs the hard student's 0.894. Lower it below.
        results.models[0].validation_accuracy = Some(0.85);
        // Without a measured comparison: student-kd below the 0.892 baseline.
        let kd = &mut results.models[3];
        let measured = kd.versus_hard.take().unwrap();
        kd.test.accuracy = 0.88;
        let roles: Vec<Role> = results.derived_warnings().iter().map(|w| w.role).collect();
        assert_eq!(roles, [Role::Teacher, Role::StudentKd]);
        let warnings = texts(&results);
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("teacher-1 (85.00%) does not beat")
                && warnings[0].contains("89.40%"),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].starts_with("student-kd (88.00%) is below"),
            "{}",
            warnings[1]
        );
        // With one: a significant win is no warning, a loss or an insignificant win is.
        let kd = &mut results.models[3];
        kd.versus_hard = Some(measured.clone());
        assert_eq!(results.derived_warnings().len(), 1);
        let insignificant = PairedComparison {
            difference: 0.003,
            ci_low: -0.0012,
            ci_high: 0.0071,
            p_value: 0.21,
            ..measured.clone()
        };
        results.models[3].versus_hard = Some(insignificant);
        let seeds = results.models[3]
            .repeats
            .as_ref()
            .unwrap()
            .versus_hard
            .clone()
            .unwrap();
        assert_eq!(
            texts(&results)[1],
            format!(
                "student-kd beats student-hard by 0.30 points on test, not significant (McNemar p = 0.21, 95% CI -0.12 to +0.71 points); over 3 repeats (paired t-test): {}",
                seeds.summary()
            )
        );
        // A significant first repeat whose gain the repeats do not confirm is a warning too.
        results.models[3].versus_hard = Some(measured.clone());
        let shaky = SeedComparison {
            p_value: 0.09,
            ..seeds
        };
        results.models[3].repeats.as_mut().unwrap().versus_hard = Some(shaky.clone());
        let last = texts(&results).pop().unwrap();
        assert!(
            last.ends_with(&format!(
                "over 3 repeats (paired t-test): {}",
                shaky.summary()
            )),
            "{last}"
        );
        results.models[3].repeats = None;
        let loss = PairedComparison {
            difference: -0.012,
            ci_low: -0.019,
            ci_high: -0.005,
            p_value: 0.0031,
            ..measured
        };
        results.models[3].versus_hard = Some(loss);
        assert_eq!(
            texts(&results)[1],
            "student-kd is 1.20 points below student-hard on test, significant (McNemar p = 0.003, 95% CI -1.90 to -0.50 points)"
        );
    }

    #[test]
    fn paired_comparison_counts_and_formats() {
        // Example 0: both right; 1, 2: only this; 3: only the baseline; 4: both wrong.
        let this = [true, true, true, false, false];
        let baseline = [true, false, false, true, false];
        let c = PairedComparison::measure(&this, &baseline, "base", 400, 5);
        assert_eq!((c.only_this_right, c.only_baseline_right), (2, 1));
        assert!((c.difference - 0.2).abs() < 1e-12);
        assert!(
            c.ci_low <= c.difference && c.difference <= c.ci_high,
            "{c:?}"
        );
        // Three discordant pairs, 2 against 1: p = 2 (1 + 3) / 8 = 1.
        assert_eq!(c.p_value, 1.0);
        assert!(!c.significant());
        assert_eq!((c.resamples, c.seed, c.baseline.as_str()), (400, 5, "base"));
        assert_eq!(
            PairedComparison {
                ci_low: -0.0012,
                ci_high: 0.0071,
                difference: 0.003,
                ..c
            }
            .points_with_interval(),
            "+0.30 [-0.12, +0.71]"
        );
        assert_eq!(format_p(0.2149), "0.21");
        assert_eq!(format_p(0.00312), "0.003");
        assert_eq!(format_p(0.0496), "0.050");
        assert_eq!(format_p(1.0), "1.00");
        assert_eq!(format_p(2.5e-6), "2.5e-6");
    }

    #[test]
    fn repeat_stats_need_two_accuracies() {
        assert_eq!(RepeatStats::of(vec![0.9]), None);
        let stats = RepeatStats::of(vec![0.9, 0.92]).unwrap();
        assert!((stats.mean - 0.91).abs() < 1e-12);
        // sd of {0.90, 0.92} = 0.01 * sqrt(2).
        assert!((stats.sd - 0.01 * 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(stats.mean_pm_sd(), "91.00 ± 1.41");
    }
}
