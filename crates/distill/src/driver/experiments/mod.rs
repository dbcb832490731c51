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
use dk_tensor::Tensor;
use serde_json::Value;

use super::StudyData;
use super::finish::compare;
use super::gpu_data::GpuSplit;
use super::session::{Session, StudentJob, Trainee};
use super::teachers::Teachers;
use crate::config::{Experiment, RunConfig};
use crate::data::Dataset;
use crate::metrics;
use crate::results::{
    Column, ColumnKind, ExperimentTable, PairedComparison, Role, Setting, format_p,
};

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

/// Builds a table's columns from (label, kind) pairs.
pub fn columns(spec: &[(&str, ColumnKind)]) -> Vec<Column> {
    spec.iter()
        .map(|&(label, kind)| Column {
            label: label.to_string(),
            kind,
        })
        .collect()
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

/// A table cell for an optional number.
pub fn number(value: Option<f64>) -> Value {
    value.map_or(Value::Null, Value::from)
}

/// Accuracy difference in percentage points, signed, for findings.
pub fn points(from: f64, to: f64) -> String {
    format!("{:+.2} points", 100.0 * (to - from))
}

/// Labels of the columns that [`comparison_cells`] adds to a table with comparisons.
pub const COMPARISON_COLUMNS: [&str; 3] = ["baseline", "vs baseline (95% CI)", "p"];

/// A row's comparison as three cells: the baseline's name, the difference in points with
/// its 95% interval, McNemar's p ("-" each without a comparison).
pub fn comparison_cells(comparison: Option<&PairedComparison>) -> [String; 3] {
    match comparison {
        Some(c) => [
            c.baseline.clone(),
            c.points_with_interval(),
            format_p(c.p_value),
        ],
        None => ["-".into(), "-".into(), "-".into()],
    }
}

/// The experiment table as plain text for the terminal, with the comparison columns when
/// the table has comparisons.
pub fn text_table(table: &ExperimentTable) -> String {
    let compared = !table.comparisons.is_empty();
    let mut labels: Vec<(&str, ColumnKind)> = table
        .columns
        .iter()
        .map(|c| (c.label.as_str(), c.kind))
        .collect();
    if compared {
        labels.push((COMPARISON_COLUMNS[0], ColumnKind::Text));
        labels.extend(
            COMPARISON_COLUMNS[1..]
                .iter()
                .map(|&l| (l, ColumnKind::Number)),
        );
    }
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let mut cells: Vec<String> = row
                .iter()
                .zip(&table.columns)
                .map(|(value, column)| format_cell(value, column.kind))
                .collect();
            if compared {
                let comparison = table.comparisons.get(i).and_then(Option::as_ref);
                cells.extend(comparison_cells(comparison));
            }
            cells
        })
        .collect();
    let widths: Vec<usize> = labels
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([label.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |items: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, (item, width)) in items.iter().zip(&widths).enumerate() {
            let pad = width - item.chars().count();
            let text = if labels[i].1 == ColumnKind::Text {
                format!("{item}{}", " ".repeat(pad))
            } else {
                format!("{}{item}", " ".repeat(pad))
            };
            out.push_str(&text);
            out.push_str(if i + 1 < items.len() { "  " } else { "\n" });
        }
        out
    };
    let mut out = format!("{}\n", table.title);
    out.push_str(&line(labels.iter().map(|(label, _)| *label).collect()));
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    for finding in &table.findings {
        out.push_str(&format!("- {finding}\n"));
    }
    if compared {
        out.push_str("vs baseline: test accuracy minus the baseline row's, in points, 95% paired bootstrap interval; p: McNemar's exact test\n");
    }
    out
}

/// One cell as text: percentages with two decimals, counts whole, null as "-".
pub fn format_cell(value: &Value, kind: ColumnKind) -> String {
    match (value, kind) {
        (Value::Null, _) => "-".into(),
        (Value::Number(n), ColumnKind::Percent) => {
            format!("{:.2}%", 100.0 * n.as_f64().unwrap_or(f64::NAN))
        }
        (Value::Number(n), ColumnKind::Count) => format!("{}", n.as_f64().unwrap_or(0.0).round()),
        (Value::Number(n), _) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            // Up to three decimals, without trailing zeros: 0.5, 0.75, 20.
            let text = format!("{x:.3}");
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        (Value::String(s), _) => s.clone(),
        (other, _) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::sample_results;

    #[test]
    fn text_table_aligns_columns_and_formats_cells() {
        let mut table = sample_results().experiment.unwrap();
        let comparisons = std::mem::take(&mut table.comparisons);
        let text = text_table(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], table.title);
        assert!(lines[2].contains("85.10%"), "{text}");
        assert!(lines[2].contains("1490"), "{text}");
        assert_eq!(format_cell(&Value::from(0.75), ColumnKind::Number), "0.75");
        assert_eq!(format_cell(&Value::from(20.0), ColumnKind::Number), "20");
        assert_eq!(
            format_cell(&Value::from(0.1234), ColumnKind::Number),
            "0.123"
        );
        assert!(
            lines[3].trim_end().ends_with('-'),
            "null shows as -: {text}"
        );
        assert_eq!(
            lines[1].len(),
            lines[2].trim_end().len().max(lines[1].len())
        );
        assert!(text.contains("- T = 4 beats"), "{text}");
        assert!(
            !text.contains("baseline"),
            "no comparisons, no columns: {text}"
        );

        // With comparisons: three more columns, "-" on the baseline row.
        table.comparisons = comparisons;
        let text = text_table(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].ends_with("baseline  vs baseline (95% CI)       p"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("-                            -       -"),
            "{text}"
        );
        let versus = table.comparisons[1].as_ref().unwrap();
        assert!(
            lines[3].ends_with(&format!(
                "T = 1     {}  {}",
                versus.points_with_interval(),
                format_p(versus.p_value)
            )),
            "{text}"
        );
        assert!(text.contains("p: McNemar's exact test"), "{text}");
    }

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
