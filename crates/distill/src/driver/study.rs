//! The phases of one run, in order:
//!
//! 1. teachers: K models from different seeds, each checkpointed (atomically) into the run
//!    folder as soon as it is trained, so an interrupted run keeps every finished teacher;
//! 2. the transfer set: every teacher's logits on the training split, cached on disk (keyed
//!    by the data and the checkpoint bytes), combined into the ensemble (mean log-softmax);
//! 3. the student on hard labels, compared with the ensemble on validation (a loud warning
//!    when the ensemble does not beat it: distillation from it is then unlikely to help);
//! 4. distilled students: one per (T, alpha) candidate, the best on validation kept; logit
//!    matching on the ensemble's mean logits; distillation from the best single teacher;
//! 5. test metrics, serving cost, the dark-knowledge figures, `results.json`, `report.html`.
//!
//! Every student uses the same spec, initial weights, epochs and batch order, so the
//! students differ only in their targets.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use dk_nn::{LossConfig, Model, ModelSpec, Optimizer, TrainConfig};
use dk_tensor::{GpuContext, Tensor};
use indicatif::{ProgressBar, ProgressStyle};

use super::StudyData;
use super::evaluate::predict;
use super::gpu_data::GpuSplit;
use super::seeds::derive_seed;
use super::serving;
use super::specs::model_spec;
use super::train::{TrainPlan, Trained, train};
use crate::config::{ModelConfig, OptimizerKind, RunConfig, effective_config_toml};
use crate::metrics;
use crate::report::write_report;
use crate::results::{
    AdapterInfo, DarkKnowledge, DatasetInfo, GridPoint, ModelResult, Results, Role, RunInfo,
    SCHEMA_VERSION, ServingCost, TemperatureProbabilities, TestMetrics,
};
use crate::run_dir::{RunDir, iso8601_utc};
use crate::teacher_cache::{self, Source};

/// How a run behaves beyond its settings.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Folder of the teacher-logit cache (`None`: the run folder's `cache/`).
    pub cache_dir: Option<PathBuf>,
    /// No progress bars or phase lines (tests).
    pub quiet: bool,
}

/// What a finished run leaves behind.
pub struct StudyOutcome {
    pub results: Results,
    pub run_dir: PathBuf,
}

/// Batch size of evaluation passes (independent of the training batch).
const EVAL_BATCH: usize = 500;

/// A trained model with what the study needs of it.
struct Trainee {
    name: String,
    role: Role,
    model: Model,
    trained: Trained,
    temperature: Option<f32>,
    alpha: Option<f32>,
}

struct Console {
    quiet: bool,
}

impl Console {
    fn say(&self, line: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", line.as_ref());
        }
    }

    fn bar(&self, phase: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(1);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {pos}/{len} batches {elapsed_precise} {msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(phase.to_string());
        bar
    }
}

fn optimizer(config: &ModelConfig) -> Optimizer {
    let o = &config.optimizer;
    match o.kind {
        OptimizerKind::Adam => Optimizer::Adam {
            lr: o.lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: o.weight_decay,
            decoupled: false,
        },
        OptimizerKind::Sgd => Optimizer::Sgd {
            lr: o.lr,
            momentum: o.momentum,
            nesterov: false,
            weight_decay: o.weight_decay,
        },
    }
}

/// Runs the whole study and writes the run folder.
pub fn run_study(
    ctx: &GpuContext,
    config: &RunConfig,
    data: &StudyData,
    options: &RunOptions,
) -> Result<StudyOutcome> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let console = Console {
        quiet: options.quiet,
    };
    let (height, width) = (data.train.height, data.train.width);
    let classes = data.train.classes;
    let teacher_spec = model_spec(&config.teacher, "teacher", &data.train)?;
    let student_spec = model_spec(&config.student, "student", &data.train)?;
    for (role, spec) in [("teacher", &teacher_spec), ("student", &student_spec)] {
        anyhow::ensure!(
            spec.classes() == classes,
            "{role}.spec `{}` ends in {} classes, but the data set has {classes}",
            spec.text(),
            spec.classes()
        );
    }
    let run_dir =
        RunDir::create(config.out_dir.as_deref(), started_at).context("creating the run folder")?;
    run_dir
        .write("config.toml", effective_config_toml(config).as_bytes())
        .context("writing config.toml")?;
    console.say(format!("run folder: {}", run_dir.root().display()));

    let train_split = GpuSplit::upload(ctx, "training", &data.train)?;
    let validation = GpuSplit::upload(ctx, "validation", &data.validation)?;
    let test = GpuSplit::upload(ctx, "test", &data.test)?;
    let mut warnings = Vec::new();

    // 1. Teachers.
    let mut teachers = Vec::with_capacity(config.teachers);
    let mut checkpoints = Vec::with_capacity(config.teachers);
    for k in 0..config.teachers {
        let name = format!("teacher-{}", k + 1);
        console.say(format!(
            "training {name} of {} ({})",
            config.teachers,
            teacher_spec.text()
        ));
        let model = Model::new(
            ctx,
            teacher_spec.clone(),
            derive_seed(config.seed, "teacher", k as u64),
        )?;
        let plan = TrainPlan {
            epochs: config.teacher.epochs,
            batch: config.batch_size,
            max_shift: config.teacher.max_shift,
            config: TrainConfig {
                loss: LossConfig::HardLabels,
                optimizer: optimizer(&config.teacher),
                max_norm: config.teacher.max_norm,
                seed: derive_seed(config.seed, "teacher-dropout", k as u64),
            },
            teacher_logits: None,
            data_seed: derive_seed(config.seed, "teacher-data", k as u64),
            log_epochs: !options.quiet,
        };
        let bar = console.bar(&name);
        let trained = train(ctx, &model, &train_split, &validation, &plan, &bar)?;
        bar.finish_and_clear();
        let path = run_dir.path(format!("{name}.safetensors"));
        model
            .save(ctx, &path)
            .with_context(|| format!("saving {}", path.display()))?;
        checkpoints.push(path);
        teachers.push(Trainee {
            name,
            role: Role::Teacher,
            model,
            trained,
            temperature: None,
            alpha: None,
        });
    }

    // 2. Transfer set: each teacher's logits on the training split, in example order.
    let cache_dir = options
        .cache_dir
        .clone()
        .unwrap_or_else(|| run_dir.path("cache"));
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating the logit cache {}", cache_dir.display()))?;
    let mut transfer_logits = Vec::with_capacity(teachers.len());
    for (teacher, checkpoint) in teachers.iter().zip(&checkpoints) {
        let bytes = std::fs::read(checkpoint)
            .with_context(|| format!("reading {}", checkpoint.display()))?;
        let key = teacher_cache::transfer_key(&data.train.images, &data.train.labels, &[&bytes]);
        let path = cache_dir.join(format!("{key:032x}.logits"));
        let (cached, source) =
            teacher_cache::load_or_compute(&path, key, data.train.n, classes, || {
                predict(ctx, &teacher.model, &train_split, EVAL_BATCH)
            })?;
        if let Source::Computed { reason } = source {
            console.say(format!(
                "{}: transfer-set logits computed ({reason}), cached in {}",
                teacher.name,
                path.display()
            ));
        } else {
            console.say(format!(
                "{}: transfer-set logits from the cache {}",
                teacher.name,
                path.display()
            ));
        }
        transfer_logits.push(cached.logits);
    }
    let member_refs: Vec<&[f32]> = transfer_logits.iter().map(Vec::as_slice).collect();
    let ensemble_targets = metrics::ensemble_logits(&member_refs, classes);
    let mean_raw_logits = mean_rows(&member_refs);
    let teacher_validation: Vec<&[f32]> = teachers
        .iter()
        .map(|t| t.trained.validation_logits.as_slice())
        .collect();
    let ensemble_validation = metrics::ensemble_logits(&teacher_validation, classes);
    let ensemble_validation_accuracy =
        metrics::accuracy(&ensemble_validation, classes, &validation.host_labels);
    let best_teacher = (0..teachers.len())
        .max_by(|&a, &b| final_validation(&teachers[a]).total_cmp(&final_validation(&teachers[b])))
        .expect("at least one teacher");
    console.say(format!(
        "ensemble of {}: validation accuracy {:.2}% (best member {} at {:.2}%)",
        teachers.len(),
        100.0 * ensemble_validation_accuracy,
        teachers[best_teacher].name,
        100.0 * final_validation(&teachers[best_teacher])
    ));
    let upload = |logits: &[f32]| Tensor::from_f32(ctx, logits, &[data.train.n, classes]);
    let ensemble_tensor = upload(&ensemble_targets)?;

    // 3. The student on hard labels, the baseline every distilled student must beat.
    let student_seed = derive_seed(config.seed, "student", 0);
    let train_student =
        |name: &str, role: Role, loss: LossConfig, targets: Option<&Tensor>| -> Result<Trainee> {
            console.say(format!("training {name} ({})", student_spec.text()));
            let model = Model::new(ctx, student_spec.clone(), student_seed)?;
            let plan = TrainPlan {
                epochs: config.student.epochs,
                batch: config.batch_size,
                max_shift: config.student.max_shift,
                config: TrainConfig {
                    loss,
                    optimizer: optimizer(&config.student),
                    max_norm: config.student.max_norm,
                    seed: derive_seed(config.seed, "student-dropout", 0),
                },
                teacher_logits: targets,
                data_seed: derive_seed(config.seed, "student-data", 0),
                log_epochs: !options.quiet,
            };
            let bar = console.bar(name);
            let trained = train(ctx, &model, &train_split, &validation, &plan, &bar)?;
            bar.finish_and_clear();
            let (temperature, alpha) = match loss {
                LossConfig::Distill { temperature, alpha } => (Some(temperature), Some(alpha)),
                _ => (None, None),
            };
            Ok(Trainee {
                name: name.to_string(),
                role,
                model,
                trained,
                temperature,
                alpha,
            })
        };
    let hard = train_student(
        "student-hard",
        Role::StudentHard,
        LossConfig::HardLabels,
        None,
    )?;
    let hard_validation = final_validation(&hard);
    if ensemble_validation_accuracy <= hard_validation {
        let warning = format!(
            "the ensemble ({:.2}%) does not beat the student trained on hard labels ({:.2}%) on validation: distillation from it is unlikely to help; train the teachers longer or make them larger",
            100.0 * ensemble_validation_accuracy,
            100.0 * hard_validation
        );
        if !options.quiet {
            eprintln!("\n!!! WARNING: {warning}\n");
        }
        warnings.push(warning);
    } else {
        console.say(format!(
            "the ensemble beats the hard-label student on validation ({:.2}% vs {:.2}%)",
            100.0 * ensemble_validation_accuracy,
            100.0 * hard_validation
        ));
    }

    // 4. Distilled students: the (T, alpha) candidates, judged on validation.
    let candidates = config.distill.candidates();
    let mut grid = Vec::with_capacity(candidates.len());
    let mut chosen: Option<(Trainee, f64, f64)> = None;
    for &(temperature, alpha) in &candidates {
        let student = train_student(
            &format!("student-kd T={temperature} a={alpha}"),
            Role::StudentKd,
            LossConfig::Distill { temperature, alpha },
            Some(&ensemble_tensor),
        )?;
        let accuracy = final_validation(&student);
        let nll = metrics::nll(
            &student.trained.validation_logits,
            classes,
            &validation.host_labels,
        );
        grid.push(GridPoint {
            temperature,
            alpha,
            validation_accuracy: accuracy,
            validation_nll: Some(nll),
            chosen: false,
        });
        let better = match &chosen {
            None => true,
            Some((_, best_accuracy, best_nll)) => {
                accuracy > *best_accuracy || (accuracy == *best_accuracy && nll < *best_nll)
            }
        };
        if better {
            chosen = Some((student, accuracy, nll));
        }
    }
    let (mut kd, _, _) = chosen.expect("at least one (T, alpha) candidate");
    kd.name = "student-kd".into();
    let (kd_temperature, kd_alpha) = (kd.temperature.unwrap(), kd.alpha.unwrap());
    for point in &mut grid {
        point.chosen = point.temperature == kd_temperature && point.alpha == kd_alpha;
    }
    if candidates.len() > 1 {
        console.say(format!(
            "chosen on validation: T = {kd_temperature}, alpha = {kd_alpha} ({:.2}%)",
            100.0 * final_validation(&kd)
        ));
    }
    let mut students = vec![hard, kd];
    if config.distill.logit_mse {
        let raw = upload(&mean_raw_logits)?;
        students.push(train_student(
            "student-logit-mse",
            Role::StudentLogitMse,
            LossConfig::LogitMse,
            Some(&raw),
        )?);
    }
    if config.distill.best_teacher && teachers.len() > 1 {
        let best = upload(&transfer_logits[best_teacher])?;
        let mut student = train_student(
            "student-kd-best-teacher",
            Role::StudentKdBestTeacher,
            LossConfig::Distill {
                temperature: kd_temperature,
                alpha: kd_alpha,
            },
            Some(&best),
        )?;
        student.name = "student-kd-best-teacher".into();
        students.push(student);
    }
    for student in &students {
        let path = run_dir.path(format!("{}.safetensors", student.name));
        student
            .model
            .save(ctx, &path)
            .with_context(|| format!("saving {}", path.display()))?;
    }

    // 5. Test metrics and serving cost.
    console.say("evaluating on the test set and measuring serving cost");
    let teacher_test: Vec<Vec<f32>> = teachers
        .iter()
        .map(|t| predict(ctx, &t.model, &test, EVAL_BATCH))
        .collect::<Result<_>>()?;
    let teacher_test_refs: Vec<&[f32]> = teacher_test.iter().map(Vec::as_slice).collect();
    let ensemble_test = metrics::ensemble_logits(&teacher_test_refs, classes);
    let test_metrics = |logits: &[f32]| -> TestMetrics {
        let e = metrics::evaluate(logits, classes, &test.host_labels, config.eval.ece_bins);
        TestMetrics {
            accuracy: e.accuracy,
            errors: e.errors,
            examples: e.examples,
            nll: e.nll,
            ece: e.ece,
            agreement_with_ensemble: Some(metrics::agreement(logits, &ensemble_test, classes)),
            per_class_accuracy: e.per_class_accuracy,
        }
    };
    let throughput_batch = config.eval.throughput_batch;
    let mut models = Vec::new();
    let mut member_costs = Vec::new();
    for (teacher, logits) in teachers.iter().zip(&teacher_test) {
        let cost = serving::measure(ctx, &teacher.model, throughput_batch)?;
        member_costs.push(cost.clone());
        models.push(model_result(teacher, test_metrics(logits), Some(cost)));
    }
    let ensemble_spec = teacher_spec.text();
    models.push(ModelResult {
        name: "ensemble".into(),
        role: Role::Ensemble,
        spec: format!("{} x {ensemble_spec}", teachers.len()),
        params: teachers
            .iter()
            .map(|t| t.model.parameter_count() as u64)
            .sum(),
        flops_per_example: teachers.iter().map(|t| t.model.flops_per_example()).sum(),
        test: test_metrics(&ensemble_test),
        validation_accuracy: Some(ensemble_validation_accuracy),
        gap_recovered: None,
        temperature: None,
        alpha: None,
        curve: Vec::new(),
        serving: Some(serving::ensemble(&member_costs)),
        checkpoint: None,
        train_seconds: Some(teachers.iter().map(|t| t.trained.seconds).sum()),
    });
    let ensemble_accuracy = models.last().unwrap().test.accuracy;
    let mut student_results = Vec::new();
    for student in &students {
        let logits = predict(ctx, &student.model, &test, EVAL_BATCH)?;
        let cost = serving::measure(ctx, &student.model, throughput_batch)?;
        student_results.push(model_result(student, test_metrics(&logits), Some(cost)));
    }
    let hard_accuracy = student_results[0].test.accuracy;
    for result in &mut student_results {
        if result.role != Role::StudentHard {
            result.gap_recovered =
                metrics::gap_recovered(hard_accuracy, result.test.accuracy, ensemble_accuracy);
        }
    }
    models.extend(student_results);

    let dark_knowledge = dark_knowledge(config, &data.test, &ensemble_test, classes);
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        run: RunInfo {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            started_utc: iso8601_utc(started_at),
            finished_utc: Some(iso8601_utc(SystemTime::now())),
            duration_s: Some(started.elapsed().as_secs_f64()),
            adapter: AdapterInfo {
                name: ctx.summary.name.clone(),
                backend: ctx.summary.backend.clone(),
                is_cpu: ctx.summary.is_cpu,
            },
            dataset: DatasetInfo {
                name: data.name.clone(),
                source_dir: data.source_dir.display().to_string(),
                train: data.train.n,
                validation: data.validation.n,
                test: data.test.n,
                class_names: data.train.class_names.clone(),
                height,
                width,
            },
            seed: config.seed,
            config: config.clone(),
        },
        models,
        grid,
        warnings,
        dark_knowledge: Some(dark_knowledge),
    };
    for warning in results.derived_warnings() {
        // The ensemble-vs-student warning is already there in its own words.
        if !warning.starts_with("ensemble ") && !results.warnings.contains(&warning) {
            results.warnings.push(warning);
        }
    }
    results
        .write(&run_dir.path("results.json"))
        .context("writing results.json")?;
    write_report(&run_dir.path("report.html"), &results).context("writing report.html")?;
    Ok(StudyOutcome {
        results,
        run_dir: run_dir.root().to_path_buf(),
    })
}

fn final_validation(trainee: &Trainee) -> f64 {
    trainee
        .trained
        .curve
        .last()
        .map_or(0.0, |e| e.validation_accuracy)
}

fn model_result(trainee: &Trainee, test: TestMetrics, serving: Option<ServingCost>) -> ModelResult {
    ModelResult {
        name: trainee.name.clone(),
        role: trainee.role,
        spec: trainee.model.spec().text().to_string(),
        params: trainee.model.parameter_count() as u64,
        flops_per_example: trainee.model.flops_per_example(),
        test,
        validation_accuracy: Some(final_validation(trainee)),
        gap_recovered: None,
        temperature: trainee.temperature,
        alpha: trainee.alpha,
        curve: trainee.trained.curve.clone(),
        serving,
        checkpoint: Some(format!("{}.safetensors", trainee.name)),
        train_seconds: Some(trainee.trained.seconds),
    }
}

/// Element-wise mean of equally long logit arrays (the members' raw logits, the targets of
/// logit matching: Ba & Caruana regress the logits, not log-probabilities).
fn mean_rows(members: &[&[f32]]) -> Vec<f32> {
    let mut mean = vec![0f64; members[0].len()];
    for member in members {
        for (m, &v) in mean.iter_mut().zip(member.iter()) {
            *m += v as f64;
        }
    }
    mean.into_iter()
        .map(|m| (m / members.len() as f64) as f32)
        .collect()
}

/// The report's dark-knowledge data: the correctly classified test image on which the
/// ensemble is least sure (largest runner-up probability at T = 1), its probabilities at the
/// configured temperatures, and the mean soft targets per true class.
fn dark_knowledge(
    config: &RunConfig,
    test: &crate::data::Dataset,
    ensemble: &[f32],
    classes: usize,
) -> DarkKnowledge {
    let probabilities = metrics::softmax_rows(ensemble, classes, 1.0);
    let predictions = metrics::argmax_rows(ensemble, classes);
    let runner_up = |row: usize| {
        let p = &probabilities[row * classes..(row + 1) * classes];
        let top = predictions[row];
        p.iter()
            .enumerate()
            .filter(|&(c, _)| c != top)
            .map(|(_, &v)| v)
            .fold(0.0f32, f32::max)
    };
    let example_index = (0..test.n)
        .filter(|&i| predictions[i] == test.labels[i] as usize)
        .max_by(|&a, &b| runner_up(a).total_cmp(&runner_up(b)))
        .unwrap_or(0);
    let row = &ensemble[example_index * classes..(example_index + 1) * classes];
    let matrix = metrics::mean_soft_targets(
        ensemble,
        classes,
        &test.labels,
        config.eval.soft_target_temperature,
    );
    DarkKnowledge {
        example_index,
        true_class: test.labels[example_index] as usize,
        image: test.image(example_index).to_vec(),
        height: test.height,
        width: test.width,
        probabilities: config
            .eval
            .probability_temperatures
            .iter()
            .map(|&temperature| TemperatureProbabilities {
                temperature,
                probabilities: metrics::softmax_rows(row, classes, temperature),
            })
            .collect(),
        soft_target_temperature: config.eval.soft_target_temperature,
        mean_soft_targets: matrix.chunks(classes).map(|r| r.to_vec()).collect(),
    }
}

/// The final table printed in the terminal.
pub fn summary_table(results: &Results) -> String {
    let mut out = format!(
        "{:<38} {:>9} {:>11} {:>9} {:>7} {:>7} {:>6} {:>10} {:>12}\n",
        "model", "params", "MFLOP/ex", "test acc", "errors", "NLL", "ECE", "lat. ms", "ex/s"
    );
    for m in &results.models {
        let (latency, throughput) = m.serving.as_ref().map_or((f64::NAN, f64::NAN), |s| {
            (s.latency_batch1_ms, s.throughput_per_s)
        });
        let mut name = m.name.clone();
        if let (Some(t), Some(a)) = (m.temperature, m.alpha) {
            name = format!("{name} (T={t}, a={a})");
        }
        out.push_str(&format!(
            "{:<38} {:>9} {:>11.3} {:>8.2}% {:>7} {:>7.4} {:>6.3} {:>10.3} {:>12.0}\n",
            name,
            m.params,
            m.flops_per_example as f64 / 1e6,
            100.0 * m.test.accuracy,
            m.test.errors,
            m.test.nll,
            m.test.ece,
            latency,
            throughput
        ));
    }
    out
}

/// Spec check without a GPU (for `--print-config` style early validation).
pub fn check_specs(
    config: &RunConfig,
    data: &crate::data::Dataset,
) -> Result<(ModelSpec, ModelSpec)> {
    Ok((
        model_spec(&config.teacher, "teacher", data)?,
        model_spec(&config.student, "student", data)?,
    ))
}
