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
//! students of one transfer set differ only in their targets. With `repeats` = N > 1, the
//! students of step 3 and the hard-label student are trained N - 1 more times with seeds of
//! their own (the teachers and the (T, alpha) choice stay those of the first repeat), and
//! their test accuracies summarised as mean and sd.

use anyhow::Result;
use dk_nn::{LossConfig, ModelSpec};
use dk_tensor::{GpuContext, Tensor};

use super::estimate;
use super::experiments;
use super::finish::{RepeatAccuracies, StudyOutcome, finish};
use super::session::{RunOptions, Session, StudentJob, Trainee};
use super::specs::checked_specs;
use super::teachers::{Teachers, check_teachers_from};
use super::transfer::TransferSet;
use crate::config::RunConfig;
use crate::data::StudyData;
use crate::metrics;
use crate::results::{GridPoint, Role};

/// Runs the whole study (or the configured experiment) and writes the run folder.
pub fn run_study(
    ctx: &GpuContext,
    config: &RunConfig,
    data: &StudyData,
    options: &RunOptions,
) -> Result<StudyOutcome> {
    let specs = check_run(ctx, config, data, options)?;
    if let Some(plan) = options.plan.as_deref().filter(|_| !options.quiet) {
        print!("{plan}");
    }
    let prepared;
    let data = match config.experiment {
        Some(experiment) => {
            prepared = experiments::prepare_data(experiment, config, data)?;
            prepared.as_ref().unwrap_or(data)
        }
        None => data,
    };
    let session = Session::open(ctx, config, data, options, specs)?;
    announce_estimate(&session)?;
    let teachers = Teachers::prepare(&session)?;
    if let Some(experiment) = config.experiment {
        let outcome = experiments::run(experiment, &session, &teachers)?;
        return finish(
            session,
            teachers,
            outcome.students,
            Vec::new(),
            Some(outcome.table),
            &Vec::new(),
        );
    }

    standard_study(session, teachers)
}

/// What the data and the adapter can refute in the settings, checked before any plan is
/// printed or model trained; returns the teacher's and the student's checked specs: the specs ([`checked_specs`]), the teachers' shift against the
/// image size, the earlier run folder of `--teachers-from`, and the experiment's settings
/// ([`experiments::check`]).
pub fn check_run(
    ctx: &GpuContext,
    config: &RunConfig,
    data: &StudyData,
    options: &RunOptions,
) -> Result<(ModelSpec, ModelSpec)> {
    let specs = checked_specs(ctx, config, &data.train)?;
    let [_, height, width] = data.train.example_shape();
    let shift = config.teacher.max_shift as usize;
    // Tabular features are never shifted.
    anyhow::ensure!(
        data.train.is_tabular() || shift < height.min(width),
        "teacher.max_shift (--max-shift) = {shift}: expected fewer pixels than the images' {height}x{width}"
    );
    if let Some(dir) = &options.teachers_from {
        check_teachers_from(config, dir, data.validation.n)?;
    }
    if let Some(experiment) = config.experiment {
        experiments::check(experiment, ctx, config, data)?;
    }
    Ok(specs)
}

/// The standard comparison: the hard-label student, the distilled ones (T and alpha chosen
/// on validation), logit matching, distillation from the best teacher, and repeats.
fn standard_study(session: Session, teachers: Teachers) -> Result<StudyOutcome> {
    let config = session.config;
    // The student on hard labels, the baseline every distilled student must beat.
    let hard = session.train_student(hard_labels_job(&session))?;
    compare_ensemble_with_hard(&session, &teachers, &hard);
    let transfer = TransferSet::prepare(&session, &teachers)?;
    let ensemble_targets = session.upload_targets(&transfer.ensemble)?;
    let (kd, kd_settings, grid) = choose_distillation(&session, &transfer, &ensemble_targets)?;
    let raw = if config.distill.logit_mse {
        Some(session.upload_targets(&transfer.mean_raw)?)
    } else {
        None
    };
    let best = if config.distill.best_teacher && teachers.members.len() > 1 {
        Some(session.upload_targets(&transfer.best_teacher)?)
    } else {
        None
    };
    let targets = StandardTargets {
        transfer: &transfer,
        ensemble: &ensemble_targets,
        raw: raw.as_ref(),
        best_teacher: best.as_ref(),
        kd: kd_settings,
    };
    let mut students = vec![hard, kd];
    // The first two jobs are the students above; the rest are trained here.
    for job in standard_jobs(&session, &targets).into_iter().skip(2) {
        students.push(session.train_student(job)?);
    }
    let repeats = train_repeats(&session, &targets)?;
    finish(session, teachers, students, grid, None, &repeats)
}

/// Says whether the ensemble beats the hard-label student on validation; a warning when it
/// does not, since distillation from it is then unlikely to help.
fn compare_ensemble_with_hard(session: &Session, teachers: &Teachers, hard: &Trainee) {
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
}

/// The targets of the standard study's students, and the chosen (T, alpha).
struct StandardTargets<'t> {
    /// What the distilled students learn from.
    transfer: &'t TransferSet,
    ensemble: &'t Tensor,
    /// The mean of the teachers' raw logits (logit matching on).
    raw: Option<&'t Tensor>,
    /// The best teacher's logits (distillation from it on, with more than one teacher).
    best_teacher: Option<&'t Tensor>,
    kd: (f32, f32),
}

fn hard_labels_job<'s>(session: &'s Session) -> StudentJob<'s> {
    session.on_training_split(
        "student-hard",
        Role::StudentHard,
        LossConfig::HardLabels,
        None,
    )
}

/// The standard study's students, in order: hard labels, distilled at the chosen
/// (T, alpha), logit matching, distilled from the best teacher (the last two when on).
fn standard_jobs<'s>(session: &'s Session, targets: &StandardTargets<'s>) -> Vec<StudentJob<'s>> {
    let (temperature, alpha) = targets.kd;
    let distill = LossConfig::Distill { temperature, alpha };
    let transfer = targets.transfer;
    let mut jobs = vec![
        hard_labels_job(session),
        on_transfer_set(
            session,
            transfer,
            "student-kd",
            Role::StudentKd,
            distill,
            targets.ensemble,
        ),
    ];
    if let Some(raw) = targets.raw {
        jobs.push(on_transfer_set(
            session,
            transfer,
            "student-logit-mse",
            Role::StudentLogitMse,
            LossConfig::LogitMse,
            raw,
        ));
    }
    if let Some(best) = targets.best_teacher {
        jobs.push(on_transfer_set(
            session,
            transfer,
            "student-kd-best-teacher",
            Role::StudentKdBestTeacher,
            distill,
            best,
        ));
    }
    jobs
}

/// A distilled student on the transfer set, learning from `targets`, for at most the
/// hard-label student's steps.
fn on_transfer_set<'s>(
    session: &'s Session,
    transfer: &'s TransferSet,
    name: &str,
    role: Role,
    loss: LossConfig,
    targets: &'s Tensor,
) -> StudentJob<'s> {
    StudentJob {
        split: transfer.split(session),
        epochs: transfer.epochs(session),
        transfer_set: transfer.description(),
        ..session.on_training_split(name, role, loss, Some(targets))
    }
}

/// One distilled student per (T, alpha) candidate; the best on validation (ties: lower
/// NLL) is kept as `student-kd`, with the grid of every candidate's validation results.
fn choose_distillation(
    session: &Session,
    transfer: &TransferSet,
    ensemble: &Tensor,
) -> Result<(Trainee, (f32, f32), Vec<GridPoint>)> {
    let candidates = session.config.distill.candidates();
    let mut grid = Vec::with_capacity(candidates.len());
    let mut chosen: Option<(Trainee, (f32, f32), f64, f64)> = None;
    for &(temperature, alpha) in &candidates {
        let student = session.train_student(on_transfer_set(
            session,
            transfer,
            &format!("student-kd T={temperature} a={alpha}"),
            Role::StudentKd,
            LossConfig::Distill { temperature, alpha },
            ensemble,
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
            Some((_, _, best_accuracy, best_nll)) => {
                accuracy > *best_accuracy || (accuracy == *best_accuracy && nll < *best_nll)
            }
        };
        if better {
            chosen = Some((student, (temperature, alpha), accuracy, nll));
        }
    }
    let (mut kd, settings, _, _) = chosen.expect("at least one (T, alpha) candidate");
    kd.name = "student-kd".into();
    let (kd_temperature, kd_alpha) = settings;
    for point in &mut grid {
        point.chosen = point.temperature == kd_temperature && point.alpha == kd_alpha;
    }
    if candidates.len() > 1 {
        session.console.say(format!(
            "chosen on validation: T = {kd_temperature}, alpha = {kd_alpha} ({:.2}%)",
            100.0 * kd.final_validation()
        ));
    }
    Ok((kd, settings, grid))
}

/// Times a few steps of each model, says how long the run should take, and warns plainly
/// when a software adapter faces a long run.
fn announce_estimate(session: &Session) -> Result<()> {
    let estimate = estimate::estimate(session)?;
    session.console.say(format!(
        "estimated time on this adapter: {}",
        estimate::describe(&estimate)
    ));
    if session.ctx.summary.is_cpu && estimate.total_s > estimate::LONG_RUN_S {
        session.warn(format!(
            "this run is estimated at {} on a software adapter ({}); `--preset quick` runs in about 7 minutes there, or shorten this one with --train-size, --teacher-steps and --student-steps",
            estimate::duration_text(estimate.total_s),
            session.ctx.summary.name
        ));
    }
    *session.estimate.borrow_mut() = Some(estimate);
    Ok(())
}

/// Repeats 2 to `repeats` of every standard student (the teachers and the (T, alpha)
/// choice stay those of the first): their test accuracies, by student name. Each repeat's
/// model is dropped once evaluated.
fn train_repeats(session: &Session, targets: &StandardTargets) -> Result<RepeatAccuracies> {
    let repeats = session.config.repeats;
    let mut accuracies: RepeatAccuracies = Vec::new();
    for repeat in 1..repeats {
        session.console.say(format!(
            "repeat {} of {repeats}: the students again, with seeds of their own",
            repeat + 1
        ));
        for job in standard_jobs(session, targets) {
            let name = job.name.clone();
            let job = StudentJob {
                name: format!("{name} (repeat {} of {repeats})", repeat + 1),
                ..job
            };
            let mut student = session.train_student_repeat(job, repeat as u64)?;
            let logits = session.test_logits(&mut student)?;
            let accuracy = metrics::accuracy(logits, session.classes, &session.test.host_labels);
            match accuracies.iter_mut().find(|(n, _)| *n == name) {
                Some((_, list)) => list.push(accuracy),
                None => accuracies.push((name, vec![accuracy])),
            }
        }
    }
    Ok(accuracies)
}
