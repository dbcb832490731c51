//! The `results.json` schema: what one run measured. `SCHEMA.md` in this crate documents
//! the same structure for readers of the JSON. Accuracies and shares are fractions in [0, 1].

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::run_dir::write_atomic;

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
    /// Training examples used (the transfer set of the students too).
    pub train: usize,
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
    /// Expected calibration error, 15 equal-width confidence bins (see `metrics`).
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
    /// Mean training loss over the epoch (the loss the model was trained on).
    pub train_loss: f64,
    /// Training accuracy against the hard labels over the epoch.
    pub train_accuracy: f64,
    /// Validation accuracy at the end of the epoch.
    pub validation_accuracy: f64,
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

/// One experiment's results as a table, with the settings that shaped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentTable {
    /// The experiment's name, e.g. "compression".
    pub name: String,
    /// Heading of the table.
    pub title: String,
    /// What is compared and why, one paragraph.
    pub description: String,
    /// Settings that shaped the table, as name/value text.
    pub settings: Vec<Setting>,
    pub columns: Vec<Column>,
    /// One value per column: a number (fractions for `percent` columns), a string, or null.
    pub rows: Vec<Vec<serde_json::Value>>,
    /// Sentences that read the table, computed from its numbers.
    pub findings: Vec<String>,
    /// A line chart of the table (absent when the experiment has none).
    pub chart: Option<LineChart>,
}

impl ExperimentTable {
    /// Drops chart points and reference lines that are not finite numbers (JSON has no NaN:
    /// they would be written as null and the file could not be read back).
    pub fn drop_non_finite(&mut self) {
        if let Some(chart) = &mut self.chart {
            for series in &mut chart.series {
                series
                    .points
                    .retain(|p| p[0].is_finite() && p[1].is_finite());
            }
            chart.references.retain(|r| r.y.is_finite());
        }
    }
}

/// A named setting, as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
}

/// A column of an experiment table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub label: String,
    pub kind: ColumnKind,
}

/// How a column's values are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    Text,
    /// A fraction shown as a percentage.
    Percent,
    /// A whole number.
    Count,
    /// Any other number.
    Number,
}

/// A line chart: series of (x, y) points, and horizontal reference lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineChart {
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    pub series: Vec<Series>,
    pub references: Vec<Reference>,
}

/// One line of a chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// (x, y) points in x order.
    pub points: Vec<[f64; 2]>,
}

/// A horizontal line at `y`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub y: f64,
}

impl Results {
    /// The first model with `role`.
    pub fn model(&self, role: Role) -> Option<&ModelResult> {
        self.models.iter().find(|m| m.role == role)
    }

    /// Warnings that follow from the numbers: teachers that do not beat the student's
    /// hard-label baseline (on validation, where available, else on test), and distilled
    /// students that end below that baseline on test.
    pub fn derived_warnings(&self) -> Vec<String> {
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
                warnings.push(format!(
                    "{} ({:.2}%) does not beat the student's hard-label baseline ({:.2}%) on {split}: distillation from it is unlikely to help; train the teachers longer or make them larger",
                    model.name,
                    100.0 * own,
                    100.0 * base
                ));
            }
        }
        for model in self.models.iter().filter(|m| {
            // Experiment students learn from other transfer sets on purpose.
            m.role.is_student() && !matches!(m.role, Role::StudentHard | Role::StudentExperiment)
        }) {
            if model.test.accuracy < hard.test.accuracy {
                warnings.push(format!(
                    "{} ({:.2}%) is below the hard-label student ({:.2}%) on test",
                    model.name,
                    100.0 * model.test.accuracy,
                    100.0 * hard.test.accuracy
                ));
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

/// A complete, plausible results value for tests and report previews (made-up numbers).
#[doc(hidden)]
pub fn sample_results() -> Results {
    use crate::config::{Preset, RunConfig};
    use crate::data::FASHION_MNIST_CLASSES;
    let classes = FASHION_MNIST_CLASSES.len();
    let curve = |start: f64, epochs: usize| -> Vec<EpochStats> {
        (1..=epochs)
            .map(|epoch| {
                let progress = epoch as f64 / epochs as f64;
                EpochStats {
                    epoch,
                    train_loss: 0.9 - 0.6 * progress,
                    train_accuracy: start + (0.95 - start) * progress,
                    validation_accuracy: start + (0.91 - start) * progress.sqrt(),
                    seconds: 3.0,
                }
            })
            .collect()
    };
    let model = |name: &str,
                 role: Role,
                 spec: &str,
                 params: u64,
                 flops: u64,
                 accuracy: f64,
                 latency: f64| {
        ModelResult {
            name: name.into(),
            role,
            spec: spec.into(),
            params,
            flops_per_example: flops,
            test: TestMetrics {
                accuracy,
                errors: ((1.0 - accuracy) * 10_000.0).round() as usize,
                examples: 10_000,
                nll: 0.3,
                ece: 0.02,
                agreement_with_ensemble: Some(0.95),
                per_class_accuracy: (0..classes)
                    .map(|c| Some(accuracy - 0.01 * (c % 3) as f64))
                    .collect(),
            },
            validation_accuracy: Some(accuracy + 0.002),
            gap_recovered: None,
            temperature: None,
            alpha: None,
            curve: if role == Role::Ensemble {
                Vec::new()
            } else {
                curve(accuracy - 0.2, 6)
            },
            serving: Some(ServingCost {
                latency_batch1_ms: latency,
                throughput_per_s: 256.0 / (latency * 4.0) * 1000.0,
                throughput_batch: 256,
            }),
            checkpoint: None,
            train_seconds: Some(20.0),
        }
    };
    let mut kd = model(
        "student-kd",
        Role::StudentKd,
        "784-256-256-10",
        269_322,
        538_112,
        0.9015,
        0.4,
    );
    kd.temperature = Some(2.0);
    kd.alpha = Some(0.5);
    kd.gap_recovered = Some(0.26);
    let image: Vec<u8> = (0..28 * 28)
        .map(|i| if (i / 28 + i % 28) % 7 < 4 { 200 } else { 30 })
        .collect();
    let mean_soft_targets = (0..classes)
        .map(|t| {
            (0..classes)
                .map(|p| if t == p { 0.82 } else { 0.02 })
                .collect()
        })
        .collect();
    Results {
        schema_version: SCHEMA_VERSION,
        run: RunInfo {
            tool_version: env!("CARGO_PKG_VERSION").into(),
            started_utc: "2025-01-01T00:00:00Z".into(),
            finished_utc: Some("2025-01-01T00:05:00Z".into()),
            duration_s: Some(300.0),
            adapter: AdapterInfo {
                name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
                backend: "Vulkan".into(),
                is_cpu: true,
            },
            dataset: DatasetInfo {
                name: "Fashion-MNIST".into(),
                source_dir: "/usr/share/datasets/fashion-mnist".into(),
                train: 55_000,
                validation: 5_000,
                test: 10_000,
                class_names: FASHION_MNIST_CLASSES
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                height: 28,
                width: 28,
            },
            seed: 1,
            config: RunConfig::preset(Preset::Default),
        },
        models: vec![
            model(
                "teacher-1",
                Role::Teacher,
                "c16k3-c16k3-p2-c32k3-c32k3-p2-256-10",
                420_000,
                10_000_000,
                0.92,
                2.5,
            ),
            model(
                "ensemble",
                Role::Ensemble,
                "3 x c16k3-c16k3-p2-c32k3-c32k3-p2-256-10",
                1_260_000,
                30_000_000,
                0.9288,
                7.0,
            ),
            model(
                "student-hard",
                Role::StudentHard,
                "784-256-256-10",
                269_322,
                538_112,
                0.892,
                0.4,
            ),
            kd,
        ],
        grid: vec![
            GridPoint {
                temperature: 2.0,
                alpha: 0.5,
                validation_accuracy: 0.905,
                validation_nll: Some(0.28),
                chosen: true,
            },
            GridPoint {
                temperature: 4.0,
                alpha: 0.5,
                validation_accuracy: 0.899,
                validation_nll: Some(0.29),
                chosen: false,
            },
        ],
        warnings: vec!["example warning <with> markup & ampersand".into()],
        dark_knowledge: Some(DarkKnowledge {
            example_index: 7,
            true_class: 6,
            image,
            height: 28,
            width: 28,
            probabilities: [1.0f32, 2.0, 5.0, 20.0]
                .iter()
                .map(|&t| TemperatureProbabilities {
                    temperature: t,
                    probabilities: crate::metrics::softmax_rows(
                        &[3.0, -2.0, 2.0, 0.5, 1.5, -6.0, 5.0, -5.0, -1.0, -6.0],
                        classes,
                        t,
                    ),
                })
                .collect(),
            soft_target_temperature: 4.0,
            mean_soft_targets,
        }),
        experiment: Some(ExperimentTable {
            name: "temperature".into(),
            title: "Accuracy against the temperature".into(),
            description: "Students distilled at several temperatures <and> alphas.".into(),
            settings: vec![Setting {
                name: "student".into(),
                value: "784-64-10, 8 epochs".into(),
            }],
            columns: vec![
                Column {
                    label: "T".into(),
                    kind: ColumnKind::Number,
                },
                Column {
                    label: "test accuracy".into(),
                    kind: ColumnKind::Percent,
                },
                Column {
                    label: "errors".into(),
                    kind: ColumnKind::Count,
                },
                Column {
                    label: "note".into(),
                    kind: ColumnKind::Text,
                },
            ],
            rows: vec![
                vec![1.0.into(), 0.851.into(), 1490.into(), "".into()],
                vec![
                    4.0.into(),
                    0.862.into(),
                    1380.into(),
                    serde_json::Value::Null,
                ],
            ],
            findings: vec!["T = 4 beats T = 1 by 1.1 points.".into()],
            chart: Some(LineChart {
                x_label: "temperature".into(),
                y_label: "test accuracy".into(),
                log_x: true,
                series: vec![Series {
                    name: "alpha 0.5".into(),
                    points: vec![[1.0, 0.851], [4.0, 0.862]],
                }],
                references: vec![Reference {
                    name: "hard labels".into(),
                    y: 0.849,
                }],
            }),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn round_trips_through_json_file() {
        let dir = TempDir::new("results");
        let results = sample_results();
        let path = dir.join("results.json");
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
    fn reading_garbage_names_the_file() {
        let dir = TempDir::new("results-bad");
        let path = dir.join("results.json");
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
        assert_eq!(
            results.derived_warnings(),
            Vec::<String>::new(),
            "teachers above the baseline"
        );
        // Teacher 1 on validation: 0.922 vs the hard student's 0.894. Lower it below.
        results.models[0].validation_accuracy = Some(0.85);
        results.models[3].test.accuracy = 0.88; // student-kd below the 0.892 baseline
        let warnings = results.derived_warnings();
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
    }
}
