//! Helpers shared by the unit and integration tests: fresh temporary folders, blank data
//! splits and a complete sample of `results.json`.

use crate::data::{Dataset, StudyData};
use crate::results::*;
use crate::stats;

/// A fresh folder under the system's temporary folder, named after `tag` and removed when the
/// returned value is dropped.
#[cfg(test)]
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("dk-distill-test-{tag}-"))
        .tempdir()
        .expect("create a temporary folder")
}

/// `n` black 28x28 images of class 0, ten classes.
pub fn blank_images(n: usize) -> Dataset {
    Dataset::from_pixels(
        vec![0; n * 784],
        vec![0; n],
        [1, 28, 28],
        (0..10).map(|c| c.to_string()).collect(),
    )
}

/// Splits of blank images: `train` to train on, `validation` to validate, a pool of `pool`
/// and 100 test images.
pub fn blank_study(train: usize, validation: usize, pool: usize) -> StudyData {
    StudyData {
        name: "Fashion-MNIST".into(),
        source_dir: "/data".into(),
        origin: "test".into(),
        train: blank_images(train),
        validation: blank_images(validation),
        test: blank_images(100),
        pool: blank_images(pool),
        feature_scaling: None,
    }
}

/// A complete, plausible results value for tests and report previews (made-up numbers).
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
                    train_hard_loss: Some(0.9 - 0.6 * progress),
                    train_soft_loss: None,
                    train_accuracy: start + (0.95 - start) * progress,
                    validation_accuracy: start + (0.91 - start) * progress.sqrt(),
                    validation_nll: Some(0.5 - 0.2 * progress),
                    learning_rate: Some(1e-3 * (1.0 - progress)),
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
            best_epoch: (role != Role::Ensemble).then_some(5),
            train_steps: (role != Role::Ensemble).then_some(900),
            stop: (role != Role::Ensemble).then(|| "completed".into()),
            versus_hard: None,
            repeats: None,
        }
    };
    // Made-up counts: 310 test examples only student-kd gets right, 215 only student-hard.
    let versus = |baseline: &str, only_this: usize, only_baseline: usize| PairedComparison {
        baseline: baseline.into(),
        difference: (only_this as f64 - only_baseline as f64) / 10_000.0,
        ci_low: (only_this as f64 - only_baseline as f64 - 44.0) / 10_000.0,
        ci_high: (only_this as f64 - only_baseline as f64 + 44.0) / 10_000.0,
        p_value: stats::mcnemar_exact_p(only_this, only_baseline),
        only_this_right: only_this,
        only_baseline_right: only_baseline,
        resamples: stats::DEFAULT_RESAMPLES,
        seed: 7,
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
    kd.versus_hard = Some(versus("student-hard", 310, 215));
    kd.repeats = RepeatStats::of(vec![0.9015, 0.8990, 0.9042]);
    let mut hard = model(
        "student-hard",
        Role::StudentHard,
        "784-256-256-10",
        269_322,
        538_112,
        0.892,
        0.4,
    );
    hard.repeats = RepeatStats::of(vec![0.892, 0.89, 0.8942]);
    if let (Some(kd), Some(hard)) = (kd.repeats.as_mut(), hard.repeats.as_ref()) {
        kd.versus_hard = SeedComparison::of(&kd.test_accuracies, &hard.test_accuracies);
    }
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
            time_estimate: None,
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
                unlabeled: 0,
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
            hard,
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
            title: "Accuracy against the temperature".into(),
            description: "Students distilled at several temperatures <and> alphas.".into(),
            settings: vec![Setting {
                name: "student".into(),
                value: "784-64-10, 8 epochs".into(),
            }],
            rows: ExperimentRows::Temperature(vec![
                temperature_row("hard labels", None, 0.852, 0.849, 1510),
                temperature_row("distillation", Some(1.0), 0.855, 0.851, 1490),
                temperature_row("distillation", Some(4.0), 0.866, 0.862, 1380),
            ]),
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
            comparisons: vec![
                None,
                Some(versus("student-hard", 400, 380)),
                Some(versus("student-hard", 480, 350)),
            ],
        }),
    }
}

/// A row of the sample's temperature table (alpha 0.5 where T is given).
fn temperature_row(
    targets: &str,
    temperature: Option<f64>,
    validation_accuracy: f64,
    test_accuracy: f64,
    test_errors: usize,
) -> TemperatureRow {
    TemperatureRow {
        targets: targets.into(),
        temperature,
        alpha: temperature.map(|_| 0.5),
        validation_accuracy,
        test_accuracy,
        test_errors,
    }
}
