//! The standard study, in order:
//!
//! 1. teachers and their ensemble ([`Teachers::prepare`]);
//! 2. the student on hard labels, compared with the ensemble on validation (a loud warning
//!    when the ensemble does not beat it: distillation from it is then unlikely to help);
//! 3. distilled students: one per (T, alpha) candidate, the best on validation kept; logit
//!    matching on the ensemble's mean logits; distillation from the best single teacher;
//! 4. test metrics, serving cost, `results.json`, `report.html` ([`finish`]).
//!
//! With `experiment` set, step 2 onwards is the experiment's instead ([`super::experiments`]).
//! Every student uses the same spec, initial weights, epochs and batch order, so the
//! students of one transfer set differ only in their targets.

use anyhow::Result;
use dk_nn::{LossConfig, ModelSpec};
use dk_tensor::GpuContext;

use super::StudyData;
use super::experiments;
use super::finish::{StudyOutcome, finish};
use super::session::{RunOptions, Session, Trainee};
use super::specs::model_spec;
use super::teachers::{Teachers, check_teachers_from};
use crate::config::RunConfig;
use crate::metrics;
use crate::results::{GridPoint, Results, Role};

/// Runs the whole study (or the configured experiment) and writes the run folder.
pub fn run_study(
    ctx: &GpuContext,
    config: &RunConfig,
    data: &StudyData,
    options: &RunOptions,
) -> Result<StudyOutcome> {
    if let Some(dir) = &options.teachers_from {
        check_teachers_from(config, dir)?;
    }
    let prepared;
    let data = match config.experiment {
        Some(experiment) => {
            prepared = experiments::prepare_data(experiment, config, data)?;
            prepared.as_ref().unwrap_or(data)
        }
        None => data,
    };
    let session = Session::open(ctx, config, data, options)?;
    let teachers = Teachers::prepare(&session)?;
    if let Some(experiment) = config.experiment {
        let outcome = experiments::run(experiment, &session, &teachers)?;
        return finish(
            session,
            teachers,
            outcome.students,
            Vec::new(),
            Some(outcome.table),
        );
    }

    // The student on hard labels, the baseline every distilled student must beat.
    let hard = session.train_student(session.on_training_split(
        "student-hard",
        Role::StudentHard,
        LossConfig::HardLabels,
        None,
    ))?;
    let hard_validation = hard.final_validation();
    let ensemble_validation = teachers.validation_accuracy;
    if ensemble_validation <= hard_validation {
        session.warn(format!(
            "the ensemble ({:.2}%) does not beat the student trained on hard labels ({:.2}%) on validation: distillation from it is unlikely to help; train the teachers longer or make them larger",
            100.0 * ensemble_validation,
            100.0 * hard_validation
        ));
    } else {
        session.console.say(format!(
            "the ensemble beats the hard-label student on validation ({:.2}% vs {:.2}%)",
            100.0 * ensemble_validation,
            100.0 * hard_validation
        ));
    }

    // Distilled students: the (T, alpha) candidates, judged on validation.
    let ensemble_targets = session.upload_targets(&teachers.ensemble_targets)?;
    let candidates = config.distill.candidates();
    let mut grid = Vec::with_capacity(candidates.len());
    let mut chosen: Option<(Trainee, f64, f64)> = None;
    for &(temperature, alpha) in &candidates {
        let student = session.train_student(session.on_training_split(
            &format!("student-kd T={temperature} a={alpha}"),
            Role::StudentKd,
            LossConfig::Distill { temperature, alpha },
            Some(&ensemble_targets),
        ))?;
        let accuracy = student.final_validation();
        let nll = metrics::nll(
            &student.trained.validation_logits,
            session.classes,
            &session.validation.host_labels,
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
        session.console.say(format!(
            "chosen on validation: T = {kd_temperature}, alpha = {kd_alpha} ({:.2}%)",
            100.0 * kd.final_validation()
        ));
    }
    let mut students = vec![hard, kd];
    if config.distill.logit_mse {
        let raw = session.upload_targets(&teachers.mean_raw_logits)?;
        students.push(session.train_student(session.on_training_split(
            "student-logit-mse",
            Role::StudentLogitMse,
            LossConfig::LogitMse,
            Some(&raw),
        ))?);
    }
    if config.distill.best_teacher && teachers.members.len() > 1 {
        let best = session.upload_targets(&teachers.transfer_logits[teachers.best])?;
        students.push(session.train_student(session.on_training_split(
            "student-kd-best-teacher",
            Role::StudentKdBestTeacher,
            LossConfig::Distill {
                temperature: kd_temperature,
                alpha: kd_alpha,
            },
            Some(&best),
        ))?);
    }
    finish(session, teachers, students, grid, None)
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
