//! `munge` (Bucila, Caruana, Niculescu-Mizil 2006): when no unlabeled data exists, make
//! some. MUNGE ([`crate::data::munge`]) draws synthetic examples near the real ones by
//! swapping attributes with each example's nearest neighbour and blurring them; the
//! ensemble labels them, and the student learns from the original examples plus k times
//! as many synthetic ones.
//!
//! MUNGE starts from a stratified subsample of the training split (`base_size`: its
//! nearest-neighbour search is quadratic). Compared on test: the student on the base
//! examples with true labels, with the ensemble's soft targets, and with the soft targets
//! of base + k x base MUNGE examples for each k. The synthetic sets are nested (the k = 1
//! set is the first pass of the k = 2 set), and no student of the MUNGE rows sees a true
//! label.

use anyhow::{Context, Result, bail};
use dk_nn::LossConfig;
use dk_tensor::GpuContext;

use super::{
    ExperimentOutcome, common_settings, compare_rows, comparison_finding, points, select_rows,
    settings, test_score, train_on_ensemble_labels,
};
use crate::data::Dataset;
use crate::data::munge::{MungeParams, munge};
use crate::data::split::subsample;
use crate::driver::gpu_data::{GpuSplit, example_bytes};
use crate::driver::session::{Session, StudentJob, Trainee};
use crate::driver::teachers::Teachers;
use crate::results::{
    ExperimentRows, ExperimentTable, LineChart, MungeRow, PairedComparison, Reference, Role,
    Series, Setting,
};
use crate::seeds::derive_seed;

pub fn run(session: &Session, teachers: &Teachers) -> Result<ExperimentOutcome> {
    let data = prepare(session, teachers)?;
    let epochs = session.student_epochs(session.train.n);
    let mut ks = vec![0];
    ks.extend(&data.multipliers);
    let mut students = train_students(session, &data, &ks, epochs)?;
    let (rows, accuracies) = score_rows(session, &mut students, &ks)?;
    // Every ensemble-labeled row against the true labels on the originals (row 0).
    let baselines: Vec<Option<usize>> = (0..students.len()).map(|i| (i > 0).then_some(0)).collect();
    let comparisons = compare_rows(session, &mut students, &baselines)?;
    let findings = findings(data.base.n, &ks, &accuracies, &students, &comparisons);
    let table = ExperimentTable {
        title: "MUNGE: a synthetic transfer set labeled by the ensemble".into(),
        description: format!(
            "Bucila, Caruana and Niculescu-Mizil (2006) generate a transfer set when unlabeled data is scarce: MUNGE swaps each attribute with the nearest neighbour's with probability p and draws it from a normal around the neighbour's value with sd = |a - b| / s. The ensemble labels the synthetic examples; the student learns from the {n} original examples plus k x {n} synthetic ones.",
            n = data.base.n
        ),
        settings: table_settings(session, &data, epochs),
        rows: ExperimentRows::Munge(rows),
        findings,
        chart: Some(chart(data.base.n, &ks, &accuracies)),
        comparisons,
    };
    Ok(ExperimentOutcome { students, table })
}

/// The base subsample and the MUNGE examples drawn from it, each with the ensemble's soft
/// targets.
struct MungeData {
    base: Dataset,
    base_targets: Vec<f32>,
    synthetic: Dataset,
    synthetic_targets: Vec<f32>,
    /// The multipliers k, sorted and without repeats.
    multipliers: Vec<usize>,
}

/// Draws the base subsample and `largest multiplier x base` MUNGE examples, which the
/// ensemble labels.
fn prepare(session: &Session, teachers: &Teachers) -> Result<MungeData> {
    let config = session.config;
    let settings_of = &config.experiments.munge;
    let train = &session.data.train;
    let all: Vec<usize> = (0..train.n).collect();
    let chosen = subsample(
        &all,
        &train.labels,
        settings_of.base_size,
        config.data.stratified,
        derive_seed(config.seed, "munge-base", 0),
    );
    let base = train.select(&chosen);
    let base_targets = select_rows(&teachers.ensemble_targets, session.classes, &chosen);
    let mut multipliers = settings_of.multipliers.clone();
    multipliers.sort_unstable();
    multipliers.dedup();
    let largest = *multipliers.last().expect("at least one multiplier");
    let synthetic = synthesize(session, &base, largest)?;
    let synthetic_split = GpuSplit::upload(session.ctx, "synthetic", &synthetic)?;
    let synthetic_targets = teachers.label(session, &synthetic_split)?;
    Ok(MungeData {
        base,
        base_targets,
        synthetic,
        synthetic_targets,
        multipliers,
    })
}

/// The synthetic set is held on the CPU and uploaded as one split: `largest x n` examples
/// like those of `data` are refused, before they are allocated, when they cannot fit one
/// binding of the adapter.
pub fn check_fits(ctx: &GpuContext, data: &Dataset, largest: usize, n: usize) -> Result<()> {
    let bytes = (largest as u64)
        .saturating_mul(n as u64)
        .saturating_mul(example_bytes(data));
    let limit = ctx.limits.max_storage_buffer_binding_size;
    if bytes > limit {
        bail!(
            "experiments.munge: {largest} x {n} synthetic examples are {} MB on the GPU, over the adapter's {} MB binding limit; lower experiments.munge.multipliers or base_size",
            bytes / 1_000_000,
            limit / 1_000_000
        );
    }
    Ok(())
}

/// `largest x base.n` MUNGE examples (placeholder labels), refused up front when they could
/// not be uploaded.
fn synthesize(session: &Session, base: &Dataset, largest: usize) -> Result<Dataset> {
    let config = session.config;
    let settings_of = &config.experiments.munge;
    let n = base.n;
    check_fits(session.ctx, base, largest, n)?;
    session.console.say(format!(
        "MUNGE: {} synthetic examples from {n} (nearest neighbours, p = {}, s = {})",
        largest * n,
        settings_of.swap_probability,
        settings_of.local_variance
    ));
    let started = std::time::Instant::now();
    // Pixels in [0, 1] or standardised features: MUNGE's attributes are continuous.
    let rows = base.to_f32();
    let synthetic = munge(
        &rows,
        n,
        base.values_per_example(),
        &MungeParams {
            swap_probability: settings_of.swap_probability,
            local_variance: settings_of.local_variance,
            multiplier: largest,
            seed: derive_seed(config.seed, "munge", 0),
        },
    )
    .context("experiments.munge")?;
    // Labels are placeholders until the ensemble labels the synthetic examples.
    let count = synthetic.len() / base.values_per_example();
    let synthetic = Dataset::from_f32_like(base, &synthetic, vec![0; count]);
    session.console.say(format!(
        "MUNGE took {:.1} s; the ensemble labels the synthetic examples",
        started.elapsed().as_secs_f64()
    ));
    Ok(synthetic)
}

/// The hard-label student on the base examples, then one student on the ensemble's labels
/// of the base plus `k x base` MUNGE examples for each k of `ks` (0 first).
fn train_students(
    session: &Session,
    data: &MungeData,
    ks: &[usize],
    epochs: usize,
) -> Result<Vec<Trainee>> {
    let n = data.base.n;
    let base_split = GpuSplit::upload(session.ctx, "base", &data.base)?;
    let mut students = vec![session.train_student(StudentJob {
        name: format!("student-hard-n{n}"),
        role: Role::StudentHard,
        loss: LossConfig::HardLabels,
        split: &base_split,
        targets: None,
        epochs,
        transfer_set: format!("{n} original examples, true labels"),
    })?];
    drop(base_split);
    for &k in ks {
        let added = k * n;
        students.push(train_on_ensemble_labels(
            session,
            format!("student-munge-k{k}"),
            if k == 0 {
                format!("{n} original examples, labeled by the ensemble")
            } else {
                format!("{n} original + {added} MUNGE (k = {k}), labeled by the ensemble")
            },
            &data.base,
            &data.base_targets,
            &data.synthetic,
            &data.synthetic_targets,
            added,
        )?);
    }
    Ok(students)
}

/// The table's rows and each student's test accuracy.
fn score_rows(
    session: &Session,
    students: &mut [Trainee],
    ks: &[usize],
) -> Result<(Vec<MungeRow>, Vec<f64>)> {
    let mut rows = Vec::new();
    let mut accuracies = Vec::new();
    for (i, student) in students.iter_mut().enumerate() {
        let score = test_score(session, student)?;
        accuracies.push(score.accuracy);
        rows.push(MungeRow {
            transfer_set: student.transfer_set.clone(),
            // Row 0 is the student on the originals with true labels: no k.
            multiplier: i.checked_sub(1).map(|k| ks[k]),
            validation_accuracy: student.final_validation(),
            test_accuracy: score.accuracy,
            test_errors: score.errors,
        });
    }
    Ok((rows, accuracies))
}

/// The best multiplier against the ensemble-labeled and the true-labeled originals.
fn findings(
    n: usize,
    ks: &[usize],
    accuracies: &[f64],
    students: &[Trainee],
    comparisons: &[Option<PairedComparison>],
) -> Vec<String> {
    let hard = accuracies[0];
    let soft_original = accuracies[1];
    let (best_k, best) = ks
        .iter()
        .zip(&accuracies[1..])
        .skip(1)
        .map(|(&k, &a)| (k, a))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one multiplier");
    let best_row = 1 + ks
        .iter()
        .position(|&k| k == best_k)
        .expect("best k is a multiplier");
    let mut findings = vec![
        format!(
            "With k = {best_k} ({} MUNGE examples), the student reaches {:.2}% on test: {} over the {n} original examples labeled by the ensemble and {} over them with true labels.",
            best_k * n,
            100.0 * best,
            points(soft_original, best),
            points(hard, best)
        ),
        if best > soft_original {
            "MUNGE data labeled by the ensemble helps the student beyond the original examples."
                .into()
        } else {
            "MUNGE data does not help the student beyond the original examples here.".into()
        },
    ];
    findings.extend(comparison_finding(
        &students[best_row].name,
        comparisons[best_row].as_ref(),
    ));
    findings
}

/// Test accuracy against k, with the true-labeled student as the reference line.
fn chart(n: usize, ks: &[usize], accuracies: &[f64]) -> LineChart {
    LineChart {
        x_label: "MUNGE multiplier k".into(),
        y_label: "test accuracy".into(),
        log_x: false,
        series: vec![Series {
            name: "original + k x MUNGE, labeled by the ensemble".into(),
            points: ks
                .iter()
                .zip(&accuracies[1..])
                .map(|(&k, &a)| [k as f64, a])
                .collect(),
        }],
        references: vec![Reference {
            name: format!("true labels on the {n} originals"),
            y: accuracies[0],
        }],
    }
}

fn table_settings(session: &Session, data: &MungeData, epochs: usize) -> Vec<Setting> {
    let munge = &session.config.experiments.munge;
    let mut pairs = common_settings(session);
    pairs.extend([
        ("original examples", format!("{} (stratified)", data.base.n)),
        ("multipliers k", format!("{:?}", data.multipliers)),
        (
            "MUNGE",
            format!(
                "swap probability p = {}, local variance s = {}",
                munge.swap_probability, munge.local_variance
            ),
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
