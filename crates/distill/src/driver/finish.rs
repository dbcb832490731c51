//! The last phase of every run: checkpoints of the students, test metrics, serving cost,
//! the dark-knowledge figures, `results.json` and `report.html`.

use std::time::SystemTime;

use anyhow::{Context, Result};

use super::serving;
use super::session::{Session, Trainee};
use super::teachers::{Teachers, checkpoint_file, save};
use super::transfer::unlabeled_count;
use crate::config::RunConfig;
use crate::metrics;
use crate::report::write_report;
use crate::results::{
    AdapterInfo, DarkKnowledge, DatasetInfo, ExperimentTable, GridPoint, ModelResult,
    PairedComparison, RepeatStats, Results, Role, RunInfo, SCHEMA_VERSION, SeedComparison,
    ServingCost, TemperatureProbabilities, TestMetrics, TimeEstimate,
};
use crate::run_dir::iso8601_utc;
use crate::seeds::derive_seed;
use crate::stats;

/// What a finished run leaves behind.
pub struct StudyOutcome {
    pub results: Results,
    pub run_dir: std::path::PathBuf,
}

/// Test accuracies of a student's repeats after the first, by the student's name.
pub type RepeatAccuracies = Vec<(String, Vec<f64>)>;

/// Evaluates every model, writes the run folder's results and returns them.
pub fn finish(
    session: Session,
    mut teachers: Teachers,
    mut students: Vec<Trainee>,
    grid: Vec<GridPoint>,
    mut experiment: Option<ExperimentTable>,
    repeat_accuracies: &RepeatAccuracies,
) -> Result<StudyOutcome> {
    if let Some(table) = &mut experiment {
        table.drop_non_finite();
    }
    anyhow::ensure!(
        session.test.n > 0,
        "the test split has 0 examples: nothing to evaluate"
    );
    save_renamed_students(&session, &mut students)?;
    session
        .console
        .say("evaluating on the test set and measuring serving cost");
    let classes = session.classes;
    let (teacher_test, ensemble_test) = teacher_test_logits(&session, &mut teachers)?;
    let scoring = TestScoring {
        session: &session,
        ensemble: &ensemble_test,
    };
    let mut models = teacher_results(&scoring, &teachers, &teacher_test)?;
    let ensemble_accuracy = models.last().expect("the ensemble").test.accuracy;
    let student_results = student_results(
        &scoring,
        &mut students,
        ensemble_accuracy,
        repeat_accuracies,
    )?;
    models.extend(student_results);

    let dark_knowledge =
        dark_knowledge(session.config, &session.data.test, &ensemble_test, classes);
    let warnings = session.warnings.take();
    let mut results = Results {
        schema_version: SCHEMA_VERSION,
        run: run_info(&session, &teachers),
        models,
        grid,
        warnings,
        dark_knowledge: Some(dark_knowledge),
        experiment,
    };
    add_derived_warnings(&mut results);
    let run_dir = &session.run_dir;
    results
        .write(&run_dir.path("results.json"))
        .context("writing results.json")?;
    write_report(&run_dir.path("report.html"), &results).context("writing report.html")?;
    let run_dir = run_dir.root().to_path_buf();
    Ok(StudyOutcome { results, run_dir })
}

/// Each teacher's test logits, and the ensemble's.
fn teacher_test_logits(
    session: &Session,
    teachers: &mut Teachers,
) -> Result<(Vec<Vec<f32>>, Vec<f32>)> {
    let mut teacher_test = Vec::with_capacity(teachers.members.len());
    for teacher in &mut teachers.members {
        teacher_test.push(session.test_logits(teacher)?.to_vec());
    }
    let teacher_test_refs: Vec<&[f32]> = teacher_test.iter().map(Vec::as_slice).collect();
    let ensemble_test = metrics::ensemble_logits(&teacher_test_refs, session.classes);
    Ok((teacher_test, ensemble_test))
}

/// Students are saved as they finish; one renamed since (the chosen distilled student) or
/// never trained (a bias-shifted copy) is saved under its final name now.
fn save_renamed_students(session: &Session, students: &mut [Trainee]) -> Result<()> {
    for student in students {
        let file = checkpoint_file(&student.name);
        if student.checkpoint.as_deref() != Some(file.as_str()) {
            student.checkpoint = Some(save(session, &student.model, &student.name)?);
        }
    }
    Ok(())
}

/// Test metrics of a model's logits, agreement with the ensemble's test logits included.
struct TestScoring<'s> {
    session: &'s Session<'s>,
    ensemble: &'s [f32],
}

impl TestScoring<'_> {
    fn metrics(&self, logits: &[f32]) -> TestMetrics {
        let (classes, labels) = (self.session.classes, &self.session.test.host_labels);
        let e = metrics::evaluate(logits, classes, labels, self.session.config.eval.ece_bins);
        TestMetrics {
            accuracy: e.accuracy,
            errors: e.errors,
            examples: e.examples,
            nll: e.nll,
            ece: e.ece,
            agreement_with_ensemble: Some(metrics::agreement(logits, self.ensemble, classes)),
            per_class_accuracy: e.per_class_accuracy,
        }
    }
}

/// Each teacher's result (with its serving cost), then the ensemble's.
fn teacher_results(
    scoring: &TestScoring,
    teachers: &Teachers,
    teacher_test: &[Vec<f32>],
) -> Result<Vec<ModelResult>> {
    let session = scoring.session;
    let throughput_batch = session.config.eval.throughput_batch;
    let mut models = Vec::new();
    let mut member_costs = Vec::new();
    for (teacher, logits) in teachers.members.iter().zip(teacher_test) {
        let cost = serving::measure(session.ctx, &teacher.model, throughput_batch)?;
        member_costs.push(cost.clone());
        models.push(model_result(teacher, scoring.metrics(logits), Some(cost)));
    }
    models.push(ensemble_result(scoring, teachers, &member_costs));
    Ok(models)
}

fn ensemble_result(
    scoring: &TestScoring,
    teachers: &Teachers,
    member_costs: &[ServingCost],
) -> ModelResult {
    let members = &teachers.members;
    ModelResult {
        name: "ensemble".into(),
        role: Role::Ensemble,
        spec: format!(
            "{} x {}",
            members.len(),
            scoring.session.teacher_spec.text()
        ),
        params: members
            .iter()
            .map(|t| t.model.parameter_count() as u64)
            .sum(),
        flops_per_example: members.iter().map(|t| t.model.flops_per_example()).sum(),
        test: scoring.metrics(scoring.ensemble),
        validation_accuracy: Some(teachers.validation_accuracy),
        gap_recovered: None,
        temperature: None,
        alpha: None,
        curve: Vec::new(),
        serving: Some(serving::ensemble(member_costs)),
        checkpoint: None,
        train_seconds: Some(members.iter().map(|t| t.trained.seconds).sum()),
        versus_hard: None,
        repeats: None,
        best_epoch: None,
        train_steps: None,
        stop: None,
    }
}

/// Each student's result: test metrics, serving cost, the comparison with the hard-label
/// student, its repeats and the share of the ensemble's gap it recovered.
fn student_results(
    scoring: &TestScoring,
    students: &mut [Trainee],
    ensemble_accuracy: f64,
    repeat_accuracies: &RepeatAccuracies,
) -> Result<Vec<ModelResult>> {
    let session = scoring.session;
    let (classes, labels) = (session.classes, &session.test.host_labels);
    // Every student has the run's student spec: its serving cost is measured once.
    let student_cost = match students.first() {
        Some(first) => Some(serving::measure(
            session.ctx,
            &first.model,
            session.config.eval.throughput_batch,
        )?),
        None => None,
    };
    let mut results = Vec::with_capacity(students.len());
    let mut correct = Vec::with_capacity(students.len());
    for student in students {
        let logits = session.test_logits(student)?.to_vec();
        correct.push(metrics::correct_predictions(&logits, classes, labels));
        results.push(model_result(
            student,
            scoring.metrics(&logits),
            student_cost.clone(),
        ));
    }
    compare_with_hard(session.config, &mut results, &correct);
    attach_repeats(&mut results, repeat_accuracies);
    attach_gap_recovered(&mut results, ensemble_accuracy);
    Ok(results)
}

/// The share of the ensemble-over-hard-label gap each distilled student recovered.
fn attach_gap_recovered(students: &mut [ModelResult], ensemble_accuracy: f64) {
    let Some(hard) = students
        .iter()
        .find(|m| m.role == Role::StudentHard)
        .map(|m| m.test.accuracy)
    else {
        return;
    };
    for result in students {
        // An experiment's students learn from other transfer sets than the hard-label
        // baseline's, so the share of its gap means nothing for them.
        if !matches!(result.role, Role::StudentHard | Role::StudentExperiment) {
            result.gap_recovered =
                metrics::gap_recovered(hard, result.test.accuracy, ensemble_accuracy);
        }
    }
}

/// The run's settings, timing, adapter and data set.
fn run_info(session: &Session, teachers: &Teachers) -> RunInfo {
    let (config, data) = (session.config, session.data);
    RunInfo {
        time_estimate: measured_estimate(session, teachers),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_utc: iso8601_utc(session.started_at),
        finished_utc: Some(iso8601_utc(SystemTime::now())),
        duration_s: Some(session.started.elapsed().as_secs_f64()),
        adapter: AdapterInfo {
            name: session.ctx.summary.name.clone(),
            backend: session.ctx.summary.backend.clone(),
            is_cpu: session.ctx.summary.is_cpu,
        },
        dataset: DatasetInfo {
            name: data.name.clone(),
            source_dir: data.source_dir.display().to_string(),
            train: data.train.n,
            unlabeled: unlabeled_count(
                config,
                data,
                session.ctx.limits.max_storage_buffer_binding_size,
            )
            .0,
            validation: data.validation.n,
            test: data.test.n,
            class_names: data.train.class_names.clone(),
            height: data.train.height,
            width: data.train.width,
        },
        seed: config.seed,
        config: config.clone(),
    }
}

/// Adds the warnings derived from the results that the run has not given yet.
fn add_derived_warnings(results: &mut Results) {
    let standard = results.experiment.is_none();
    for warning in results.derived_warnings() {
        // The standard study already gave the ensemble-vs-student warning in its own words
        // (`study::compare_ensemble_with_hard`, on validation).
        let said = standard && warning.role == Role::Ensemble;
        if !said && !results.warnings.contains(&warning.text) {
            results.warnings.push(warning.text);
        }
    }
}

/// The estimate made before training, with the measured training time of each phase.
fn measured_estimate(session: &Session, teachers: &Teachers) -> Option<TimeEstimate> {
    let mut estimate = session.estimate.borrow().clone()?;
    for phase in &mut estimate.phases {
        phase.actual_s = Some(match phase.name.as_str() {
            "teachers" => teachers.members.iter().map(|m| m.trained.seconds).sum(),
            _ => session.student_seconds.get(),
        });
    }
    estimate.actual_s = Some(estimate.phases.iter().filter_map(|p| p.actual_s).sum());
    Some(estimate)
}

fn model_result(trainee: &Trainee, test: TestMetrics, serving: Option<ServingCost>) -> ModelResult {
    ModelResult {
        name: trainee.name.clone(),
        role: trainee.role,
        spec: trainee.model.spec().text().to_string(),
        params: trainee.model.parameter_count() as u64,
        flops_per_example: trainee.model.flops_per_example(),
        test,
        validation_accuracy: Some(trainee.final_validation()),
        gap_recovered: None,
        temperature: trainee.distilled.map(|(t, _)| t),
        alpha: trainee.distilled.map(|(_, a)| a),
        curve: trainee.trained.curve.clone(),
        serving,
        checkpoint: trainee.checkpoint.clone(),
        train_seconds: Some(trainee.trained.seconds),
        best_epoch: (trainee.trained.best_epoch > 0).then_some(trainee.trained.best_epoch),
        train_steps: (trainee.trained.steps > 0).then_some(trainee.trained.steps),
        stop: (trainee.trained.best_epoch > 0).then(|| trainee.trained.stop.name().to_string()),
        versus_hard: None,
        repeats: None,
    }
}

/// The seed of every bootstrap of a run. All comparisons share the resamples; each
/// interval is valid on its own.
pub fn bootstrap_seed(config: &RunConfig) -> u64 {
    derive_seed(config.seed, "bootstrap", 0)
}

/// `this` against `baseline` on the test set, from whether each model gets each test
/// example right, with [`stats::DEFAULT_RESAMPLES`] bootstrap resamples.
pub fn compare(
    config: &RunConfig,
    this: &[bool],
    baseline: &[bool],
    baseline_name: &str,
) -> PairedComparison {
    PairedComparison::measure(
        this,
        baseline,
        baseline_name,
        stats::DEFAULT_RESAMPLES,
        bootstrap_seed(config),
    )
}

/// Every student but the hard-label one against it (`correct`: per student, per test
/// example, whether it is right).
fn compare_with_hard(config: &RunConfig, students: &mut [ModelResult], correct: &[Vec<bool>]) {
    let Some(hard) = students.iter().position(|m| m.role == Role::StudentHard) else {
        return;
    };
    let hard_name = students[hard].name.clone();
    for (i, student) in students.iter_mut().enumerate() {
        if i != hard {
            student.versus_hard = Some(compare(config, &correct[i], &correct[hard], &hard_name));
        }
    }
}

/// Each repeated student's accuracies (its own test accuracy first, then its repeats'), and
/// every other student's paired comparison with student-hard over them.
fn attach_repeats(students: &mut [ModelResult], repeat_accuracies: &RepeatAccuracies) {
    for student in students.iter_mut() {
        if let Some((_, later)) = repeat_accuracies.iter().find(|(n, _)| *n == student.name) {
            let mut all = vec![student.test.accuracy];
            all.extend(later);
            student.repeats = RepeatStats::of(all);
        }
    }
    let Some(hard) = students
        .iter()
        .find(|m| m.role == Role::StudentHard)
        .and_then(|m| m.repeats.as_ref())
        .map(|r| r.test_accuracies.clone())
    else {
        return;
    };
    for student in students.iter_mut().filter(|m| m.role != Role::StudentHard) {
        if let Some(repeats) = student.repeats.as_mut() {
            repeats.versus_hard = SeedComparison::of(&repeats.test_accuracies, &hard);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_results;

    #[test]
    fn the_standard_study_gives_the_ensemble_warning_once() {
        let mut results = sample_results();
        // The ensemble and the hard-label student tie on validation: a derived warning.
        let hard = results
            .model(Role::StudentHard)
            .unwrap()
            .validation_accuracy;
        let ensemble = results
            .models
            .iter_mut()
            .find(|m| m.role == Role::Ensemble)
            .unwrap();
        ensemble.validation_accuracy = hard;
        let derived = |results: &Results| -> Vec<String> {
            results
                .derived_warnings()
                .into_iter()
                .filter(|w| w.role == Role::Ensemble)
                .map(|w| w.text)
                .collect()
        };
        let ensemble_warning = derived(&results);
        assert_eq!(ensemble_warning.len(), 1, "{ensemble_warning:?}");

        // An experiment gives it here; the standard study gave its own already.
        let before = results.warnings.len();
        add_derived_warnings(&mut results);
        assert_eq!(results.warnings.len(), before + 1);
        assert_eq!(results.warnings.last(), ensemble_warning.first());
        add_derived_warnings(&mut results);
        assert_eq!(results.warnings.len(), before + 1, "given once");

        let mut standard = sample_results();
        standard.experiment = None;
        standard.models = results.models.clone();
        let before = standard.warnings.len();
        add_derived_warnings(&mut standard);
        assert_eq!(standard.warnings.len(), before);
    }
}
