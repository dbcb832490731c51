//! `temperature`: how the student's accuracy depends on the distillation temperature T and
//! the soft-target weight alpha (Hinton et al. 2015), against logit matching (Ba & Caruana
//! 2014, the high-temperature limit of distillation) and hard labels.
//!
//! Every student has the same initial weights, epochs and batch order on the training
//! split; only the targets differ.

use anyhow::Result;
use dk_nn::LossConfig;
use serde_json::Value;

use super::{
    ExperimentOutcome, Score, columns, common_settings, comparison_finding, correct_on_test,
    points, settings, test_score,
};
use crate::driver::finish::compare;
use crate::driver::session::{Session, Trainee};
use crate::driver::teachers::Teachers;
use crate::results::{ColumnKind, ExperimentTable, LineChart, Reference, Role, Series};

pub fn run(session: &Session, teachers: &Teachers) -> Result<ExperimentOutcome> {
    let config = session.config;
    let sweep = &config.experiments.temperature_sweep;
    let epochs = config.student.epochs;
    let mut hard = session.train_student(session.on_training_split(
        "student-hard",
        Role::StudentHard,
        LossConfig::HardLabels,
        None,
    ))?;
    let raw = session.upload_targets(&teachers.mean_raw_logits)?;
    let mut logit_mse = session.train_student(session.on_training_split(
        "student-logit-mse",
        Role::StudentLogitMse,
        LossConfig::LogitMse,
        Some(&raw),
    ))?;
    let ensemble_targets = session.upload_targets(&teachers.ensemble_targets)?;
    // (alpha, T, student) in the sweep's order: alphas outer, so each alpha is one series.
    let mut distilled: Vec<(f32, f32, Trainee)> = Vec::new();
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

    let hard_score = test_score(session, &mut hard)?;
    let logit_score = test_score(session, &mut logit_mse)?;
    let (hard_accuracy, logit_accuracy) = (hard_score.accuracy, logit_score.accuracy);
    let mut rows = vec![
        row("hard labels", None, None, &hard, hard_score),
        row("logit matching (L2)", None, None, &logit_mse, logit_score),
    ];
    // Every row against hard labels (row 0).
    let hard_correct = correct_on_test(session, &mut hard)?;
    let versus_hard = |session: &Session, student: &mut Trainee| -> Result<_> {
        let correct = correct_on_test(session, student)?;
        Ok(Some(compare(config, &correct, &hard_correct, &hard.name)))
    };
    let mut comparisons = vec![None, versus_hard(session, &mut logit_mse)?];
    let mut best_row = 0;
    let mut series: Vec<Series> = Vec::new();
    let mut best: Option<(f32, f32, f64, f64)> = None; // (T, alpha, validation, test)
    for (alpha, temperature, student) in &mut distilled {
        let score = test_score(session, student)?;
        let accuracy = score.accuracy;
        let validation = student.final_validation();
        rows.push(row(
            "distillation",
            Some(*temperature),
            Some(*alpha),
            student,
            score,
        ));
        comparisons.push(versus_hard(session, student)?);
        let name = format!("alpha = {alpha}");
        match series.last_mut() {
            Some(s) if s.name == name => s.points.push([*temperature as f64, accuracy]),
            _ => series.push(Series {
                name,
                points: vec![[*temperature as f64, accuracy]],
            }),
        }
        if best.is_none_or(|(_, _, v, _)| validation > v) {
            best = Some((*temperature, *alpha, validation, accuracy));
            best_row = rows.len() - 1;
        }
    }
    let (best_t, best_alpha, best_validation, best_test) = best.expect("a non-empty sweep");
    let best_name = &distilled[best_row - 2].2.name;
    let mut findings = vec![
        format!(
            "Chosen on validation: T = {best_t}, alpha = {best_alpha} ({:.2}% validation, {:.2}% test): {} over hard labels and {} over logit matching on test.",
            100.0 * best_validation,
            100.0 * best_test,
            points(hard_accuracy, best_test),
            points(logit_accuracy, best_test)
        ),
        match distilled
            .iter()
            .filter(|(_, t, _)| *t == 1.0)
            .map(|(_, _, s)| s.final_validation())
            .reduce(f64::max)
        {
            Some(at_one) if best_t != 1.0 => format!(
                "Raising T from 1 to {best_t} changes the best validation accuracy by {}.",
                points(at_one, best_validation)
            ),
            _ => "T = 1 is the best temperature on validation here.".into(),
        },
    ];
    findings.extend(comparison_finding(
        best_name,
        comparisons[best_row].as_ref(),
    ));
    let mut table_settings = common_settings(session);
    table_settings.extend([
        ("temperatures", format!("{:?}", sweep.temperatures)),
        ("alphas", format!("{:?}", sweep.alphas)),
        ("student epochs", epochs.to_string()),
    ]);
    Ok(ExperimentOutcome {
        table: ExperimentTable {
            name: "temperature".into(),
            title: "Accuracy against the temperature".into(),
            description: "Hinton et al. (2015) soften the ensemble's outputs with a temperature T so that the small probabilities of wrong classes carry weight; alpha weighs the soft-target term against the hard labels. Logit matching (Ba and Caruana 2014) regresses the logits and is the high-temperature limit of distillation. Every student has the same initial weights, epochs and batch order.".into(),
            settings: settings(table_settings),
            columns: columns(&[
                ("targets", ColumnKind::Text),
                ("T", ColumnKind::Number),
                ("alpha", ColumnKind::Number),
                ("validation accuracy", ColumnKind::Percent),
                ("test accuracy", ColumnKind::Percent),
                ("test errors", ColumnKind::Count),
            ]),
            rows,
            findings,
            chart: Some(LineChart {
                x_label: "temperature T".into(),
                y_label: "test accuracy".into(),
                log_x: true,
                series,
                references: vec![
                    Reference {
                        name: "hard labels".into(),
                        y: hard_accuracy,
                    },
                    Reference {
                        name: "logit matching".into(),
                        y: logit_accuracy,
                    },
                ],
            }),
            comparisons,
        },
        students: [hard, logit_mse]
            .into_iter()
            .chain(distilled.into_iter().map(|(_, _, s)| s))
            .collect(),
    })
}

fn row(
    targets: &str,
    temperature: Option<f32>,
    alpha: Option<f32>,
    student: &Trainee,
    score: Score,
) -> Vec<Value> {
    vec![
        Value::from(targets),
        super::number(temperature.map(f64::from)),
        super::number(alpha.map(f64::from)),
        Value::from(student.final_validation()),
        Value::from(score.accuracy),
        Value::from(score.errors),
    ]
}
