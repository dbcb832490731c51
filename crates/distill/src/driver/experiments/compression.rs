//! `compression` (Bucila, Caruana, Niculescu-Mizil, "Model Compression", KDD 2006): a
//! small model learns from a large transfer set that the ensemble labels, and needs no true
//! label for it.
//!
//! The teachers see only the N labeled examples of the training split. Training images
//! outside it (the unused part of the official training set, plus the part of the split
//! withheld by `experiments.compression.labeled`) have their labels withheld: the
//! ensemble labels them. Compared on test: the student on the N examples with their true
//! labels, the student on the same N labeled by the ensemble, and students on the N plus M
//! ensemble-labeled examples, for each M. The ensemble-labeled students never see a true
//! label (alpha = 1 and their label buffer holds the ensemble's argmax).

use anyhow::{Result, bail};
use dk_nn::LossConfig;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{
    ExperimentOutcome, common_settings, compare_rows, comparison_finding, points, settings,
    test_score, train_on_ensemble_labels,
};
use crate::config::RunConfig;
use crate::data::split::subsample;
use crate::data::{Dataset, StudyData};
use crate::driver::gpu_data::GpuSplit;
use crate::driver::session::{Session, StudentJob, Trainee};
use crate::driver::teachers::Teachers;
use crate::results::{
    CompressionRow, ExperimentRows, ExperimentTable, LineChart, PairedComparison, Reference, Role,
    Series, Setting,
};
use crate::seeds::derive_seed;

/// With `labeled` set, keeps that many examples of the training split (stratified) and
/// moves the rest into the unlabeled pool, before any teacher is trained.
pub fn prepare_data(config: &RunConfig, data: &StudyData) -> Result<Option<StudyData>> {
    let Some(labeled) = config.experiments.compression.labeled else {
        return Ok(None);
    };
    let train = &data.train;
    if labeled >= train.n {
        bail!(
            "experiments.compression.labeled = {labeled}: the training split has only {} examples; choose fewer labeled examples or omit the key",
            train.n
        );
    }
    let all: Vec<usize> = (0..train.n).collect();
    let keep = subsample(
        &all,
        &train.labels,
        labeled,
        config.data.stratified,
        derive_seed(config.seed, "compression-labeled", 0),
    );
    let mut kept = vec![false; train.n];
    for &i in &keep {
        kept[i] = true;
    }
    let withheld: Vec<usize> = all.into_iter().filter(|&i| !kept[i]).collect();
    Ok(Some(StudyData {
        train: train.select(&keep),
        pool: train.select(&withheld).concat(&data.pool),
        ..data.clone()
    }))
}

pub fn run(session: &Session, teachers: &Teachers) -> Result<ExperimentOutcome> {
    let labeled = label_pool(session, teachers)?;
    let n = session.train.n;
    let epochs = session.student_epochs(session.train.n);
    let mut students = train_students(session, teachers, &labeled)?;
    let mut accuracies = Vec::with_capacity(students.len());
    for student in &mut students {
        accuracies.push(test_score(session, student)?.accuracy);
    }
    let rows = table_rows(&students, &accuracies, n);
    // Every ensemble-labeled row against the true labels (row 0).
    let baselines: Vec<Option<usize>> = (0..students.len()).map(|i| (i > 0).then_some(0)).collect();
    let comparisons = compare_rows(session, &mut students, &baselines)?;
    let findings = findings(n, &labeled.sizes, &accuracies, &students, &comparisons);
    let table = ExperimentTable {
        title: "Model compression: unlabeled data labeled by the ensemble".into(),
        description: format!(
            "Bucila, Caruana and Niculescu-Mizil (2006) train a small model on a large transfer set labeled by an ensemble. The teachers here saw only the N = {n} labeled examples; M further training images have their labels withheld and are labeled by the ensemble. The ensemble-labeled students never see a true label."
        ),
        settings: table_settings(session, &labeled.sizes, epochs),
        rows: ExperimentRows::Compression(rows),
        findings,
        chart: Some(chart(n, &labeled.sizes, &accuracies)),
        comparisons,
    };
    Ok(ExperimentOutcome { students, table })
}

/// The largest M of the withheld images with the ensemble's soft targets.
struct EnsembleLabeled {
    unlabeled: Dataset,
    targets: Vec<f32>,
    /// The numbers M of added examples, 0 first, then the configured ones (capped, sorted,
    /// without repeats).
    sizes: Vec<usize>,
}

/// Draws the withheld images the students may add (a seeded shuffle of the pool, nested
/// prefixes) and has the ensemble label them.
fn label_pool(session: &Session, teachers: &Teachers) -> Result<EnsembleLabeled> {
    let config = session.config;
    let settings_of = &config.experiments.compression;
    let pool = &session.data.pool;
    if pool.n == 0 {
        bail!(
            "the compression experiment needs training images outside the training and validation splits to label: set data.train_size (e.g. --train-size 20000), data.max_labeled (--max-labeled) or experiments.compression.labeled"
        );
    }
    let mut extra: Vec<usize> = settings_of
        .extra_examples
        .iter()
        .map(|&m| m.min(pool.n))
        .collect();
    extra.sort_unstable();
    extra.dedup();
    if settings_of.extra_examples.iter().any(|&m| m > pool.n) {
        session.warn(format!(
            "experiments.compression.extra_examples asks for more than the {} unlabeled images there are: capped at {}",
            pool.n, pool.n
        ));
    }
    // Unlabeled data cannot be stratified by its (withheld) labels: a plain seeded shuffle,
    // and each M takes a prefix, so the sets are nested.
    let mut order: Vec<usize> = (0..pool.n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
        config.seed,
        "compression-pool",
        0,
    )));
    let largest = *extra.last().expect("at least one size");
    let unlabeled = pool.select(&order[..largest]);
    session.console.say(format!(
        "the ensemble labels {largest} of the {} withheld training images",
        pool.n
    ));
    let unlabeled_split = GpuSplit::upload(session.ctx, "unlabeled", &unlabeled)?;
    let targets = teachers.label(session, &unlabeled_split)?;
    let mut sizes = vec![0];
    sizes.extend(&extra);
    Ok(EnsembleLabeled {
        unlabeled,
        targets,
        sizes,
    })
}

/// The hard-label student on the N labeled examples, then one student on the ensemble's
/// labels of the N plus M withheld examples for each M.
fn train_students(
    session: &Session,
    teachers: &Teachers,
    labeled: &EnsembleLabeled,
) -> Result<Vec<Trainee>> {
    let n = session.train.n;
    let mut students = vec![session.train_student(StudentJob {
        name: format!("student-hard-n{n}"),
        transfer_set: format!("{n} labeled examples, true labels"),
        ..session.on_training_split("", Role::StudentHard, LossConfig::HardLabels, None)
    })?];
    for &m in &labeled.sizes {
        students.push(train_on_ensemble_labels(
            session,
            format!("student-soft-n{n}-m{m}"),
            format!("{n} + {m} examples, all labeled by the ensemble"),
            &session.data.train,
            &teachers.ensemble_targets,
            &labeled.unlabeled,
            &labeled.targets,
            m,
        )?);
    }
    Ok(students)
}

/// Per student: its transfer set, the true labels it saw, validation and test accuracy.
fn table_rows(students: &[Trainee], accuracies: &[f64], n: usize) -> Vec<CompressionRow> {
    students
        .iter()
        .zip(accuracies)
        .map(|(student, &test_accuracy)| CompressionRow {
            transfer_set: student.transfer_set.clone(),
            true_labels_seen: if student.role == Role::StudentHard {
                n
            } else {
                0
            },
            validation_accuracy: student.final_validation(),
            test_accuracy,
        })
        .collect()
}

/// The best M against the true labels and the ensemble's labels of the N examples alone.
fn findings(
    n: usize,
    sizes: &[usize],
    accuracies: &[f64],
    students: &[Trainee],
    comparisons: &[Option<PairedComparison>],
) -> Vec<String> {
    let hard_accuracy = accuracies[0];
    let soft_alone = accuracies[1];
    let (best_m, best) = sizes
        .iter()
        .zip(&accuracies[1..])
        .skip(1)
        .map(|(&m, &a)| (m, a))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one M");
    let mut findings = vec![format!(
        "With {best_m} ensemble-labeled examples added, the student reaches {:.2}% on test: {} over the {n} labeled examples with their true labels and {} over the same {n} labeled by the ensemble.",
        100.0 * best,
        points(hard_accuracy, best),
        points(soft_alone, best)
    )];
    let best_row = 1 + sizes
        .iter()
        .position(|&m| m == best_m)
        .expect("best M is a size");
    findings.extend(comparison_finding(
        &students[best_row].name,
        comparisons[best_row].as_ref(),
    ));
    findings.push(if best > hard_accuracy {
        "The teacher-labeled data helps: more unlabeled images, labeled by the ensemble, make a better student than the true labels alone.".into()
    } else {
        "The teacher-labeled data does not help here: the student does no better than on the true labels alone.".into()
    });
    findings
}

/// Test accuracy against the transfer set's size, with the true-labeled student as the
/// reference line.
fn chart(n: usize, sizes: &[usize], accuracies: &[f64]) -> LineChart {
    LineChart {
        x_label: "examples in the transfer set (N + M)".into(),
        y_label: "test accuracy".into(),
        log_x: false,
        series: vec![Series {
            name: "labeled by the ensemble".into(),
            points: sizes
                .iter()
                .zip(&accuracies[1..])
                .map(|(&m, &a)| [(n + m) as f64, a])
                .collect(),
        }],
        references: vec![Reference {
            name: format!("true labels on N = {n}"),
            y: accuracies[0],
        }],
    }
}

fn table_settings(session: &Session, sizes: &[usize], epochs: usize) -> Vec<Setting> {
    let mut pairs = common_settings(session);
    pairs.extend([
        ("labeled examples N", session.train.n.to_string()),
        (
            "teacher-labeled examples M",
            format!("{sizes:?} of {} withheld", session.data.pool.n),
        ),
        (
            "targets",
            format!(
                "ensemble soft targets at T = {}, alpha = 1",
                session.config.experiments.temperature
            ),
        ),
        ("student epochs", epochs.to_string()),
    ]);
    settings(pairs)
}
