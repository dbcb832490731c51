//! `temperature`: how the student's accuracy depends on the distillation temperature T and
//! the soft-target weight alpha (Hinton et al. 2015), against logit matching (Ba & Caruana
//! 2014, the high-temperature limit of distillation) and hard labels.
//!
//! Every student has the same initial weights, epochs and batch order on the training
//! split; only the targets differ.

use anyhow::Result;
use dk_nn::LossConfig;

use super::{
    ExperimentOutcome, Score, common_settings, comparison_finding, correct_on_test, points,
    settings, test_score,
};
use crate::driver::finish::compare;
use crate::driver::session::{Session, Trainee};
use crate::driver::teachers::Teachers;
use crate::results::{
    ExperimentRows, ExperimentTable, LineChart, PairedComparison, Reference, Role, Series, Setting,
    TemperatureRow,
};

pub fn run(session: &Session, teachers: &Teachers) -> Result<ExperimentOutcome> {
    let mut students = train_students(session, teachers)?;
    let scores = score_rows(session, &mut students)?;
    let findings = findings(&students, &scores);
    let chart = chart(&scores);
    Ok(ExperimentOutcome {
        table: ExperimentTable {
            title: "Accuracy against the temperature".into(),
            description: "Hinton et al. (2015) soften the ensemble's outputs with a temperature T so that the small probabilities of wrong classes carry weight; alpha weighs the soft-target term against the hard labels. Logit matching (Ba and Caruana 2014) regresses the logits and is the high-temperature limit of distillation. Every student has the same initial weights, epochs and batch order.".into(),
            settings: table_settings(session),
            rows: ExperimentRows::Temperature(scores.rows),
            findings,
            chart: Some(chart),
            comparisons: scores.comparisons,
        },
        students: [students.hard, students.logit_mse]
            .into_iter()
            .chain(students.distilled.into_iter().map(|(_, _, s)| s))
            .collect(),
    })
}

/// The students in table order.
struct SweepStudents {
    hard: Trainee,
    logit_mse: Trainee,
    /// (alpha, T, student) in the sweep's order: alphas outer, so each alpha is one series.
    distilled: Vec<(f32, f32, Trainee)>,
}

/// Hard labels, logit matching, then one distilled student per (alpha, T) of the sweep.
fn train_students(session: &Session, teachers: &Teachers) -> Result<SweepStudents> {
    let sweep = &session.config.experiments.temperature_sweep;
    let hard = session.train_student(session.on_training_split(
        "student-hard",
        Role::StudentHard,
        LossConfig::HardLabels,
        None,
    ))?;
    let raw = session.upload_targets(&teachers.mean_raw_logits)?;
    let logit_mse = session.train_student(session.on_training_split(
        "student-logit-mse",
        Role::StudentLogitMse,
        LossConfig::LogitMse,
        Some(&raw),
    ))?;
    let ensemble_targets = session.upload_targets(&teachers.ensemble_targets)?;
    let mut distilled = Vec::new();
    for &alpha in &sweep.alphas {
        for &temperature in &sweep.temperatures {
            let student = session.train_student(session.on_training_split(
                &format!("student-kd-t{temperature}-a{alpha}"),
                Role::StudentExperiment,
                LossConfig::Distill { temperature, alpha },
                Some(&ensemble_targets),
            ))?;
            distilled.push((alpha, temperature, student));
        }
    }
    Ok(SweepStudents {
        hard,
        logit_mse,
        distilled,
    })
}

/// The distilled student chosen on validation.
struct Best {
    temperature: f32,
    alpha: f32,
    validation: f64,
    test: f64,
    /// Its row in the table.
    row: usize,
}

/// The table's rows and comparisons (every row against hard labels, row 0), one test
/// accuracy series per alpha, and the student chosen on validation.
struct SweepScores {
    rows: Vec<TemperatureRow>,
    comparisons: Vec<Option<PairedComparison>>,
    series: Vec<Series>,
    hard_accuracy: f64,
    logit_accuracy: f64,
    best: Best,
}

fn score_rows(session: &Session, students: &mut SweepStudents) -> Result<SweepScores> {
    let SweepStudents {
        hard,
        logit_mse,
        distilled,
    } = students;
    let hard_score = test_score(session, hard)?;
    let logit_score = test_score(session, logit_mse)?;
    let mut rows = vec![
        row("hard labels", None, None, hard, hard_score),
        row("logit matching (L2)", None, None, logit_mse, logit_score),
    ];
    let hard_correct = correct_on_test(session, hard)?;
    let versus_hard = |student: &mut Trainee| -> Result<_> {
        let correct = correct_on_test(session, student)?;
        Ok(Some(compare(
            session.config,
            &correct,
            &hard_correct,
            &hard.name,
        )))
    };
    let mut comparisons = vec![None, versus_hard(logit_mse)?];
    let mut series: Vec<Series> = Vec::new();
    let mut best: Option<Best> = None;
    for (alpha, temperature, student) in distilled.iter_mut() {
        let score = test_score(session, student)?;
        let validation = student.final_validation();
        rows.push(row(
            "distillation",
            Some(*temperature),
            Some(*alpha),
            student,
            score,
        ));
        comparisons.push(versus_hard(student)?);
        add_point(&mut series, *alpha, *temperature, score.accuracy);
        if best.as_ref().is_none_or(|b| validation > b.validation) {
            best = Some(Best {
                temperature: *temperature,
                alpha: *alpha,
                validation,
                test: score.accuracy,
                row: rows.len() - 1,
            });
        }
    }
    Ok(SweepScores {
        rows,
        comparisons,
        series,
        hard_accuracy: hard_score.accuracy,
        logit_accuracy: logit_score.accuracy,
        best: best.expect("a non-empty sweep"),
    })
}

/// Adds (T, accuracy) to the series of `alpha` (the last one, as alphas come in order).
fn add_point(series: &mut Vec<Series>, alpha: f32, temperature: f32, accuracy: f64) {
    let name = format!("alpha = {alpha}");
    match series.last_mut() {
        Some(s) if s.name == name => s.points.push([temperature as f64, accuracy]),
        _ => series.push(Series {
            name,
            points: vec![[temperature as f64, accuracy]],
        }),
    }
}

/// The chosen student against hard labels and logit matching, and what raising T did.
fn findings(students: &SweepStudents, scores: &SweepScores) -> Vec<String> {
    let best = &scores.best;
    let best_t = best.temperature;
    let at_one = students
        .distilled
        .iter()
        .filter(|(_, t, _)| *t == 1.0)
        .map(|(_, _, s)| s.final_validation())
        .reduce(f64::max);
    let mut findings = vec![
        format!(
            "Chosen on validation: T = {best_t}, alpha = {} ({:.2}% validation, {:.2}% test): {} over hard labels and {} over logit matching on test.",
            best.alpha,
            100.0 * best.validation,
            100.0 * best.test,
            points(scores.hard_accuracy, best.test),
            points(scores.logit_accuracy, best.test)
        ),
        match at_one {
            Some(at_one) if best_t != 1.0 => format!(
                "Raising T from 1 to {best_t} changes the best validation accuracy by {}.",
                points(at_one, best.validation)
            ),
            _ => "T = 1 is the best temperature on validation here.".into(),
        },
    ];
    // The distilled rows follow the hard-label and logit-matching rows.
    let best_name = &students.distilled[best.row - 2].2.name;
    findings.extend(comparison_finding(
        best_name,
        scores.comparisons[best.row].as_ref(),
    ));
    findings
}

/// Test accuracy against T, one line per alpha, with hard labels and logit matching as
/// reference lines.
fn chart(scores: &SweepScores) -> LineChart {
    LineChart {
        x_label: "temperature T".into(),
        y_label: "test accuracy".into(),
        log_x: true,
        series: scores.series.clone(),
        references: vec![
            Reference {
                name: "hard labels".into(),
                y: scores.hard_accuracy,
            },
            Reference {
                name: "logit matching".into(),
                y: scores.logit_accuracy,
            },
        ],
    }
}

fn table_settings(session: &Session) -> Vec<Setting> {
    let config = session.config;
    let sweep = &config.experiments.temperature_sweep;
    let mut pairs = common_settings(session);
    pairs.extend([
        ("temperatures", format!("{:?}", sweep.temperatures)),
        ("alphas", format!("{:?}", sweep.alphas)),
        ("student epochs", config.student.epochs.to_string()),
    ]);
    settings(pairs)
}

fn row(
    targets: &str,
    temperature: Option<f32>,
    alpha: Option<f32>,
    student: &Trainee,
    score: Score,
) -> TemperatureRow {
    TemperatureRow {
        targets: targets.to_string(),
        temperature: temperature.map(f64::from),
        alpha: alpha.map(f64::from),
        validation_accuracy: student.final_validation(),
        test_accuracy: score.accuracy,
        test_errors: score.errors,
    }
}
