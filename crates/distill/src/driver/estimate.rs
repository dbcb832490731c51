//! The run's wall-clock time, estimated before anything is trained.
//!
//! A throwaway copy of each distinct model (teacher, student) trains a few steps on this
//! adapter and runs one validation pass; each phase is then its models times (steps times
//! the step time, plus epochs times the validation time). Early stopping can only make a
//! phase shorter. The estimate is printed before training and kept in results.json beside
//! the measured times.

use anyhow::Result;
use dk_nn::{LossConfig, Model, ModelSpec};

use super::session::{Session, training_plan};
use super::train::time_training;
use crate::config::{Experiment, ModelConfig, RunConfig, steps_per_epoch};
use crate::results::{PhaseTime, TimeEstimate};

/// Steps timed per block for each distinct model, at least (after two warm-up steps; fast
/// models get more, see `time_training`).
const TIMED_STEPS: usize = 5;

/// A run estimated above this on a software adapter gets a plain warning.
pub const LONG_RUN_S: f64 = 30.0 * 60.0;

/// Estimates every phase of the run the session is about to make.
pub fn estimate(session: &Session) -> Result<TimeEstimate> {
    let config = session.config;
    let teachers = if session.options.teachers_from.is_some() {
        0
    } else {
        config.teachers
    };
    let mut phases = Vec::new();
    if teachers > 0 {
        let each = model_seconds(session, "teacher", &config.teacher, &session.teacher_spec)?;
        phases.push(phase("teachers", teachers, each));
    }
    let each = model_seconds(session, "student", &config.student, &session.student_spec)?;
    phases.push(phase("students", student_count(config), each));
    let total_s = phases.iter().map(|p| p.estimated_s).sum();
    Ok(TimeEstimate {
        phases,
        total_s,
        actual_s: None,
    })
}

fn phase(name: &str, models: usize, each: f64) -> PhaseTime {
    PhaseTime {
        name: name.into(),
        models,
        estimated_s: models as f64 * each,
        actual_s: None,
    }
}

/// Seconds to train one model of `spec` with `model`'s recipe on the training split.
fn model_seconds(
    session: &Session,
    role: &'static str,
    model: &ModelConfig,
    spec: &ModelSpec,
) -> Result<f64> {
    let ctx = session.ctx;
    let throwaway = Model::new(ctx, spec.clone(), 0)?;
    let mut plan = training_plan(role, model, LossConfig::HardLabels, 0, 0);
    let n = session.train.n;
    plan.batch = session.config.batch_size;
    plan.epochs = model.epochs_for(n, plan.batch);
    let (step_s, validation_s) = time_training(
        ctx,
        &throwaway,
        &session.train,
        &session.validation,
        &plan,
        TIMED_STEPS,
    )?;
    let steps = steps_per_epoch(n, plan.batch) as f64;
    Ok(plan.epochs as f64 * (steps * step_s + validation_s))
}

/// Students the run trains on the training split (experiments: about as many, some on
/// other transfer sets).
pub fn student_count(config: &RunConfig) -> usize {
    let e = &config.experiments;
    match config.experiment {
        None => {
            let d = &config.distill;
            let per_repeat =
                2 + usize::from(d.logit_mse) + usize::from(d.best_teacher && config.teachers > 1);
            // The (T, alpha) search runs once; the repeats retrain the kept students.
            per_repeat + d.candidates().len() - 1 + (config.repeats.max(1) - 1) * per_repeat
        }
        Some(Experiment::Compression) => 2 + e.compression.extra_examples.len(),
        Some(Experiment::Munge) => 2 + e.munge.multipliers.len(),
        Some(Experiment::OmitClass) => 3,
        Some(Experiment::Temperature) => {
            2 + e.temperature_sweep.temperatures.len() * e.temperature_sweep.alphas.len()
        }
        Some(Experiment::SmallData) => 3,
    }
}

/// "about 6.4 min (teachers 3 x 1.6 min, students 5 x 20 s)".
pub fn describe(estimate: &TimeEstimate) -> String {
    let parts: Vec<String> = estimate
        .phases
        .iter()
        .map(|p| {
            format!(
                "{} {} x {}",
                p.name,
                p.models,
                duration_text(p.estimated_s / p.models.max(1) as f64)
            )
        })
        .collect();
    format!(
        "about {} ({})",
        duration_text(estimate.total_s),
        parts.join(", ")
    )
}

/// 42 s, 6.5 min, 14.2 h.
pub fn duration_text(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("{seconds:.0} s")
    } else if seconds < 5400.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.1} h", seconds / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    #[test]
    fn counts_the_students_of_each_study() {
        let mut config = RunConfig::preset(Preset::Tiny);
        let d = &config.distill;
        let expected = 1 + d.candidates().len() + usize::from(d.logit_mse) + 1;
        assert_eq!(student_count(&config), expected);
        config.repeats = 3;
        assert_eq!(student_count(&config), expected + 2 * 4);
        config.experiment = Some(Experiment::Temperature);
        config.experiments.temperature_sweep.temperatures = vec![1.0, 2.0, 4.0];
        config.experiments.temperature_sweep.alphas = vec![0.5, 0.9];
        assert_eq!(student_count(&config), 8);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(42.4), "42 s");
        assert_eq!(duration_text(390.0), "6.5 min");
        assert_eq!(duration_text(14.0 * 3600.0), "14.0 h");
        let estimate = TimeEstimate {
            phases: vec![phase("teachers", 3, 100.0), phase("students", 5, 20.0)],
            total_s: 400.0,
            actual_s: None,
        };
        assert_eq!(
            describe(&estimate),
            "about 6.7 min (teachers 3 x 1.7 min, students 5 x 20 s)"
        );
    }
}
