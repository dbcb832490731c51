//! `small-data` (Hinton et al. 2015, section 3: a speech model trained on 3% of the data
//! reached 44.5% with hard labels and 57.0% with soft targets): soft targets carry so much
//! more information per example than a label that a student learns well from few examples,
//! and overfits less.
//!
//! The teachers are trained on the whole training split; the students see only a
//! stratified share of it, for more epochs (the whole-split student's epochs / fraction, at
//! most 100 but never fewer than the whole-split epochs: as many steps as on the whole split
//! where that cap allows). Reported: the test accuracy of the
//! kept (best validation) epoch, that validation accuracy, and the final training accuracy
//! (overfitting shows as a gap between the two).

use anyhow::{Result, bail};
use dk_nn::LossConfig;
use dk_tensor::Tensor;

use super::{
    ExperimentOutcome, common_settings, compare_rows, comparison_finding, hard_and_soft, points,
    select_rows, settings, test_score,
};
use crate::config::RunConfig;
use crate::data::split::subsample;
use crate::driver::gpu_data::GpuSplit;
use crate::driver::session::{Session, StudentJob, Trainee};
use crate::driver::teachers::Teachers;
use crate::results::{
    ExperimentRows, ExperimentTable, LineChart, PairedComparison, Reference, Role, Series, Setting,
    SmallDataRow,
};
use crate::seeds::derive_seed;

/// The most epochs the default schedule gives the small-data students (a cap, so a tiny
/// fraction does not train for thousands of epochs).
const MAX_DEFAULT_EPOCHS: usize = 100;

/// Epochs of the students on the small share: the setting, else the whole-split student's
/// epochs (on `train_n` examples) / fraction (at most [`MAX_DEFAULT_EPOCHS`], at least the
/// whole-split epochs).
pub fn small_share_epochs(config: &RunConfig, train_n: usize) -> usize {
    let small = &config.experiments.small_data;
    let whole = config.student.epochs_for(train_n, config.batch_size);
    small.epochs.unwrap_or_else(|| {
        ((whole as f64 / small.fraction as f64).ceil() as usize)
            .min(MAX_DEFAULT_EPOCHS)
            .max(whole)
    })
}

pub fn run(session: &Session, teachers: &Teachers) -> Result<ExperimentOutcome> {
    let share = small_share(session, teachers)?;
    let mut students = train_students(session, &share)?;
    let (rows, accuracies) = score_rows(session, &mut students)?;
    // Both other rows against hard labels on the small share (row 1): what the whole
    // split gains, and what soft targets gain.
    let comparisons = compare_rows(session, &mut students, &[Some(1), None, Some(1)])?;
    let findings = findings(session, &share, &accuracies, &students, &comparisons);
    let chart = chart(session, &students);
    Ok(ExperimentOutcome {
        table: ExperimentTable {
            title: format!("The student on {:.1}% of the training data", share.percent),
            description: "Hinton et al. (2015) trained a speech model on 3% of its data: 44.5% accuracy with hard labels (with early stopping), 57.0% with the soft targets of a model trained on all of it. The teachers here saw the whole training split; the students see a small stratified share of it, for more epochs (student epochs / share, at most 100), and keep the weights of their best validation epoch.".into(),
            settings: table_settings(session, &share),
            rows: ExperimentRows::SmallData(rows),
            findings,
            chart: Some(chart),
            comparisons,
        },
        students,
    })
}

/// The stratified share of the training split the students see, on the GPU with the
/// ensemble's soft targets.
struct SmallShare {
    /// Examples in the share, and their percentage of the training split.
    size: usize,
    percent: f64,
    /// Epochs of the students on the share.
    epochs: usize,
    split: GpuSplit,
    targets: Tensor,
}

/// Examples in the small share of `train_n`; refused when smaller than a batch or than one
/// example per class.
pub fn share_size(config: &RunConfig, train_n: usize, classes: usize) -> Result<usize> {
    let small = &config.experiments.small_data;
    let size = ((small.fraction as f64 * train_n as f64).round() as usize).min(train_n);
    if size < config.batch_size.min(train_n) || size < classes {
        bail!(
            "experiments.small_data.fraction = {}: {size} of {train_n} training examples is less than one batch ({}) or one per class; raise the fraction or lower batch_size",
            small.fraction,
            config.batch_size
        );
    }
    Ok(size)
}

/// Draws the share (refusing one smaller than a batch or than one example per class) and
/// uploads it with its soft targets.
fn small_share(session: &Session, teachers: &Teachers) -> Result<SmallShare> {
    let config = session.config;
    let train = &session.data.train;
    let size = share_size(config, train.n, session.classes)?;
    let epochs = small_share_epochs(config, session.train.n);
    let all: Vec<usize> = (0..train.n).collect();
    let chosen = subsample(
        &all,
        &train.labels,
        size,
        config.data.stratified,
        derive_seed(config.seed, "small-data", 0),
    );
    let subset = train.select(&chosen);
    let split = GpuSplit::upload(session.ctx, "small", &subset)?;
    let targets = session.upload_targets(&select_rows(
        &teachers.ensemble_targets,
        session.classes,
        &chosen,
    ))?;
    Ok(SmallShare {
        size,
        percent: 100.0 * size as f64 / train.n as f64,
        epochs,
        split,
        targets,
    })
}

/// Hard labels on the whole training split, then hard labels and soft targets on the share.
fn train_students(session: &Session, share: &SmallShare) -> Result<Vec<Trainee>> {
    let train = &session.data.train;
    let full = session.train_student(StudentJob {
        transfer_set: format!("all {} examples, hard labels", train.n),
        ..session.on_training_split(
            "student-hard",
            Role::StudentHard,
            LossConfig::HardLabels,
            None,
        )
    })?;
    let (hard_small, soft_small) = hard_and_soft(
        session,
        &share.split,
        &share.targets,
        share.epochs,
        ["student-hard-small", "student-soft-small"],
        &format!("{} examples ({:.1}%)", share.size, share.percent),
    )?;
    Ok(vec![full, hard_small, soft_small])
}

/// The table's rows and each student's test accuracy (of its best validation epoch).
fn score_rows(
    session: &Session,
    students: &mut [Trainee],
) -> Result<(Vec<SmallDataRow>, Vec<f64>)> {
    let mut rows = Vec::new();
    let mut accuracies = Vec::new();
    for student in students {
        let score = test_score(session, student)?;
        accuracies.push(score.accuracy);
        let best = student.best_epoch();
        rows.push(SmallDataRow {
            transfer_set: student.transfer_set.clone(),
            epochs: student.trained.curve.len(),
            final_train_accuracy: student.trained.curve.last().map(|e| e.train_accuracy),
            best_validation_accuracy: best.map(|e| e.validation_accuracy),
            best_epoch: best.map(|e| e.epoch),
            test_accuracy: score.accuracy,
        });
    }
    Ok((rows, accuracies))
}

/// Soft targets against hard labels on the share, and what they recover of the accuracy
/// the share loses against the whole split.
fn findings(
    session: &Session,
    share: &SmallShare,
    accuracies: &[f64],
    students: &[Trainee],
    comparisons: &[Option<PairedComparison>],
) -> Vec<String> {
    let (all_hard, hard, soft) = (accuracies[0], accuracies[1], accuracies[2]);
    let mut findings = vec![
        format!(
            "On {:.1}% of the training data ({} examples), soft targets reach {:.2}% on test against {:.2}% with hard labels ({}); hard labels on all {} examples reach {:.2}%.",
            share.percent,
            share.size,
            100.0 * soft,
            100.0 * hard,
            points(hard, soft),
            session.data.train.n,
            100.0 * all_hard
        ),
        if all_hard > hard {
            format!(
                "Soft targets recover {:.0}% of the accuracy that hard labels lose by training on the small share.",
                100.0 * (soft - hard) / (all_hard - hard)
            )
        } else {
            "Hard labels lose no accuracy on the small share here, so there is nothing for soft targets to recover.".into()
        },
    ];
    findings.extend(comparison_finding(
        &students[2].name,
        comparisons[2].as_ref(),
    ));
    findings
}

/// Validation accuracy per epoch of the two students on the share, with the whole-split
/// student's as the reference line.
fn chart(session: &Session, students: &[Trainee]) -> LineChart {
    let curve = |student: &Trainee| -> Vec<[f64; 2]> {
        student
            .trained
            .curve
            .iter()
            .map(|e| [e.epoch as f64, e.validation_accuracy])
            .collect()
    };
    LineChart {
        x_label: "epoch".into(),
        y_label: "validation accuracy".into(),
        log_x: false,
        series: vec![
            Series {
                name: "hard labels, small share".into(),
                points: curve(&students[1]),
            },
            Series {
                name: "soft targets, small share".into(),
                points: curve(&students[2]),
            },
        ],
        references: vec![Reference {
            name: format!("hard labels, all {} examples", session.data.train.n),
            y: students[0].final_validation(),
        }],
    }
}

fn table_settings(session: &Session, share: &SmallShare) -> Vec<Setting> {
    let experiments = &session.config.experiments;
    let mut pairs = common_settings(session);
    pairs.extend([
        (
            "small share",
            format!(
                "{} ({} examples, stratified)",
                experiments.small_data.fraction, share.size
            ),
        ),
        ("small-share epochs", share.epochs.to_string()),
        (
            "soft targets",
            format!(
                "T = {}, alpha = {}",
                experiments.temperature, experiments.alpha
            ),
        ),
    ]);
    settings(pairs)
}
