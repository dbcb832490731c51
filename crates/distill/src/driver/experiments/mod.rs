//! The papers' experiments (`--experiment NAME`), each run after the teachers instead of
//! the standard comparison, each producing its own table in `results.json` and the report.
//!
//! - [`compression`]: Bucila et al. 2006, unlabeled data labeled by the ensemble.
//! - [`munge`]: Bucila et al. 2006, the MUNGE synthetic transfer set.
//! - [`omit_class`]: Hinton et al. 2015, a class the student never sees, then its bias raised.
//! - [`temperature`]: accuracy against T for several alphas, against logit matching.
//! - [`small_data`]: Hinton et al. 2015, the student on a few percent of the data.
//!
//! Students that must never see a true label are trained on copies of their transfer set
//! whose labels are the ensemble's predictions, with alpha = 1 (the hard-label term off).

pub mod compression;
pub mod munge;
pub mod omit_class;
pub mod small_data;
pub mod temperature;

use anyhow::Result;
use dk_nn::LossConfig;
use dk_tensor::{GpuContext, Tensor};

use super::finish::compare;
use super::gpu_data::GpuSplit;
use super::session::{Session, StudentJob, Trainee};
use super::teachers::Teachers;
use crate::config::{Experiment, RunConfig};
use crate::data::{Dataset, StudyData};
use crate::metrics;
use crate::results::{ExperimentTable, PairedComparison, Role, Setting};

/// What an experiment trained, and its table.
pub struct ExperimentOutcome {
    pub students: Vec<Trainee>,
    pub table: ExperimentTable,
}

/// The data an experiment's teachers and students start from, when it differs from the
/// run's splits (`None`: the splits as they are).
pub fn prepare_data(
    experiment: Experiment,
    config: &RunConfig,
    data: &StudyData,
) -> Result<Option<StudyData>> {
    match experiment {
        Experiment::Compression => compression::prepare_data(config, data),
        _ => Ok(None),
    }
}

/// What the data and the adapter can refute in the experiment's settings, checked before
/// the plan: the class to omit, the small share's size, the MUNGE set's size.
pub fn check(
    experiment: Experiment,
    ctx: &GpuContext,
    config: &RunConfig,
    data: &StudyData,
) -> Result<()> {
    let train = &data.train;
    match experiment {
        Experiment::OmitClass => {
            omit_class::omitted_class(
                config.experiments.omit_class.class.as_deref(),
                &train.class_names,
            )?;
        }
        Experiment::SmallData => {
            small_data::share_size(config, train.n, train.classes)?;
        }
        Experiment::Munge => {
            let settings = &config.experiments.munge;
            let largest = settings.multipliers.iter().copied().max().unwrap_or(0);
            munge::check_fits(ctx, train, largest, settings.base_size.min(train.n))?;
        }
        Experiment::Compression | Experiment::Temperature => {}
    }
    Ok(())
}

/// Runs the experiment's students and builds its table.
pub fn run(
    experiment: Experiment,
    session: &Session,
    teachers: &Teachers,
) -> Result<ExperimentOutcome> {
    session.console.say(format!(
        "experiment {}: {}",
        experiment.name(),
        experiment_summary(experiment)
    ));
    match experiment {
        Experiment::Compression => compression::run(session, teachers),
        Experiment::Munge => munge::run(session, teachers),
        Experiment::OmitClass => omit_class::run(session, teachers),
        Experiment::Temperature => temperature::run(session, teachers),
        Experiment::SmallData => small_data::run(session, teachers),
    }
}

/// One line on what an experiment compares (the plan line and the table's lead).
pub fn experiment_summary(experiment: Experiment) -> &'static str {
    match experiment {
        Experiment::Compression => {
            "a student on N labeled examples against students on N + M examples labeled by the ensemble"
        }
        Experiment::Munge => {
            "students on MUNGE synthetic examples labeled by the ensemble, as the multiplier k grows"
        }
        Experiment::OmitClass => {
            "a student whose transfer set lacks one class, before and after raising that class's output bias"
        }
        Experiment::Temperature => {
            "distilled students at several temperatures and alphas, against logit matching"
        }
        Experiment::SmallData => {
            "the student on a small share of the training data, hard labels against soft targets"
        }
    }
}

/// The rows `indices` of a `[n, classes]` array.
pub fn select_rows(rows: &[f32], classes: usize, indices: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(indices.len() * classes);
    for &i in indices {
        out.extend_from_slice(&rows[i * classes..(i + 1) * classes]);
    }
    out
}

/// A copy of `data` whose labels are the argmax of `targets` (the ensemble's labels), so
/// that no true label reaches a student through it.
pub fn relabel(data: &Dataset, targets: &[f32]) -> Dataset {
    let mut relabeled = data.clone();
    relabeled.labels = metrics::argmax_rows(targets, data.classes)
        .into_iter()
        .map(|c| c as u8)
        .collect();
    relabeled
}

/// A student on `labeled` followed by the first `count` examples of `extra`, learning only
/// from the ensemble: soft targets at `experiments.temperature` with alpha = 1, and the
/// ensemble's argmax in the label buffer. `labeled_targets` and `extra_targets` are the
/// ensemble's targets for the two sets, row by row.
#[allow(clippy::too_many_arguments)]
pub fn train_on_ensemble_labels(
    session: &Session,
    name: String,
    transfer_set: String,
    labeled: &Dataset,
    labeled_targets: &[f32],
    extra: &Dataset,
    extra_targets: &[f32],
    count: usize,
) -> Result<Trainee> {
    let mut targets = labeled_targets.to_vec();
    targets.extend_from_slice(&extra_targets[..count * session.classes]);
    let first: Vec<usize> = (0..count).collect();
    let transfer = relabel(&labeled.concat(&extra.select(&first)), &targets);
    let split = GpuSplit::upload(session.ctx, "transfer", &transfer)?;
    let targets = session.upload_targets(&targets)?;
    session.train_student(StudentJob {
        name,
        role: Role::StudentExperiment,
        loss: LossConfig::Distill {
            temperature: session.config.experiments.temperature,
            alpha: 1.0,
        },
        split: &split,
        targets: Some(&targets),
        epochs: session.student_epochs(session.train.n),
        transfer_set,
    })
}

/// Two students on one transfer set described as `described`: `hard_name` on its hard
/// labels, then `soft_name` on the ensemble's `targets` at the experiments' T and alpha.
pub fn hard_and_soft(
    session: &Session,
    split: &GpuSplit,
    targets: &Tensor,
    epochs: usize,
    [hard_name, soft_name]: [&str; 2],
    described: &str,
) -> Result<(Trainee, Trainee)> {
    let (temperature, alpha) = (
        session.config.experiments.temperature,
        session.config.experiments.alpha,
    );
    let job = |name: &str, loss, targets, labels: String| StudentJob {
        name: name.to_string(),
        role: Role::StudentExperiment,
        loss,
        split,
        targets,
        epochs,
        transfer_set: format!("{described}, {labels}"),
    };
    let hard = session.train_student(job(
        hard_name,
        LossConfig::HardLabels,
        None,
        "hard labels".into(),
    ))?;
    let soft = session.train_student(job(
        soft_name,
        LossConfig::Distill { temperature, alpha },
        Some(targets),
        format!("soft targets (T = {temperature}, alpha = {alpha})"),
    ))?;
    Ok((hard, soft))
}

/// A student's result on the test split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub accuracy: f64,
    pub errors: usize,
}

/// A student's test accuracy and error count (its test logits computed once).
pub fn test_score(session: &Session, student: &mut Trainee) -> Result<Score> {
    let classes = session.classes;
    let labels = &session.test.host_labels;
    let logits = session.test_logits(student)?;
    Ok(Score {
        accuracy: metrics::accuracy(logits, classes, labels),
        errors: metrics::error_count(logits, classes, labels),
    })
}

/// Whether `student` gets each test example right (its test logits computed once).
pub fn correct_on_test(session: &Session, student: &mut Trainee) -> Result<Vec<bool>> {
    let logits = session.test_logits(student)?;
    Ok(metrics::correct_predictions(
        logits,
        session.classes,
        &session.test.host_labels,
    ))
}

/// Each row's student against the student of its baseline row on the test set:
/// `baselines[i]` is the row that row `i` is compared with (rows and students in the same
/// order; `None`: no comparison).
pub fn compare_rows(
    session: &Session,
    students: &mut [Trainee],
    baselines: &[Option<usize>],
) -> Result<Vec<Option<PairedComparison>>> {
    let mut correct = Vec::with_capacity(students.len());
    for student in students.iter_mut() {
        correct.push(correct_on_test(session, student)?);
    }
    Ok(baselines
        .iter()
        .enumerate()
        .map(|(row, baseline)| {
            baseline.map(|b| {
                compare(
                    session.config,
                    &correct[row],
                    &correct[b],
                    &students[b].name,
                )
            })
        })
        .collect())
}

/// A finding from a row's comparison: "student-x beats student-y by 0.30 points on test,
/// not significant (McNemar p = ..., 95% CI ...)." (nothing without a comparison).
pub fn comparison_finding(name: &str, comparison: Option<&PairedComparison>) -> Option<String> {
    comparison.map(|c| format!("{}.", c.sentence(name)))
}

/// Builds a table's settings from (name, value) pairs.
pub fn settings(pairs: Vec<(&str, String)>) -> Vec<Setting> {
    pairs
        .into_iter()
        .map(|(name, value)| Setting {
            name: name.to_string(),
            value,
        })
        .collect()
}

/// The settings every experiment table shows: the teachers and the student.
pub fn common_settings(session: &Session) -> Vec<(&'static str, String)> {
    let config = session.config;
    vec![
        (
            "teachers",
            format!(
                "{} x {}, {} epochs",
                config.teachers,
                session.teacher_spec.text(),
                config.teacher.epochs
            ),
        ),
        (
            "student",
            format!(
                "{}, batch {}",
                session.student_spec.text(),
                config.batch_size
            ),
        ),
        (
            "data",
            format!(
                "train {}, validation {}, test {}",
                session.train.n, session.validation.n, session.test.n
            ),
        ),
    ]
}

/// Accuracy difference in percentage points, signed, for findings.
pub fn points(from: f64, to: f64) -> String {
    format!("{:+.2} points", 100.0 * (to - from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relabel_uses_the_argmax_of_the_targets() {
        let data = Dataset::from_pixels(
            vec![0; 3 * 4],
            vec![0, 1, 2],
            [1, 2, 2],
            vec!["a".into(), "b".into(), "c".into()],
        );
        let targets = [0.1, 0.0, 3.0, -1.0, 2.0, 0.0, 5.0, 4.0, 4.5];
        assert_eq!(relabel(&data, &targets).labels, vec![2, 1, 0]);
        assert_eq!(
            select_rows(&targets, 3, &[2, 0]),
            vec![5.0, 4.0, 4.5, 0.1, 0.0, 3.0]
        );
    }
}
