//! `omit-class` (Hinton et al. 2015, section 3: with every 3 left out of the transfer set,
//! the distilled MNIST net got 98.6% of the test 3s right once the 3's output bias was
//! raised by 3.5): the soft targets of the other classes say enough about a class the
//! student never sees that only its bias is missing.
//!
//! The teachers see every class. The students' transfer set is the training split without
//! the omitted class. Its output bias is then raised by the shift that maximises validation
//! accuracy (the validation split keeps the class), on the model itself: the saved
//! checkpoint of the `-bias` student carries the shifted bias. The same is done for a
//! student trained on hard labels without the class, which has nothing to recover.

use anyhow::{Result, bail};
use dk_nn::{LossConfig, Model, ParamKind};
use dk_tensor::Tensor;

use super::{
    ExperimentOutcome, common_settings, compare_rows, comparison_finding, hard_and_soft, points,
    select_rows, settings,
};
use crate::driver::gpu_data::GpuSplit;
use crate::driver::session::{Session, StudentJob, Trainee};
use crate::driver::teachers::Teachers;
use crate::driver::train::Trained;
use crate::metrics;
use crate::results::{
    ExperimentRows, ExperimentTable, LineChart, OmitClassRow, PairedComparison, Role, Series,
    Setting,
};

/// The omitted class: `setting` as a label index or a class name (case-insensitive);
/// absent: "Dress" where the data set has it (Fashion-MNIST), else 3 (a digit, on MNIST).
pub fn omitted_class(setting: Option<&str>, class_names: &[String]) -> Result<usize> {
    let classes = class_names.len();
    let Some(text) = setting.map(str::trim) else {
        if let Some(dress) = class_names.iter().position(|n| n == "Dress") {
            return Ok(dress);
        }
        if classes > 3 {
            return Ok(3);
        }
        bail!(
            "experiments.omit_class.class is not set and the data set has only {classes} classes: name the class to omit"
        );
    };
    if let Some(index) = class_names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
    {
        return Ok(index);
    }
    match text.parse::<usize>() {
        Ok(index) if index < classes => Ok(index),
        _ => bail!(
            "experiments.omit_class.class = {text:?}: expected a label index below {classes} or one of the class names {}",
            class_names.join(", ")
        ),
    }
}

/// A trained student with the omitted class's output bias raised.
struct Shifted {
    student: Trainee,
    shift: f32,
    /// Validation accuracy (overall, on the class) for every shift tried.
    validation_curve: Vec<(f32, f64, f64)>,
}

pub fn run(session: &Session, teachers: &Teachers) -> Result<ExperimentOutcome> {
    let omitted = prepare(session, teachers)?;
    let epochs = session.student_epochs(session.train.n);
    let OmitStudents {
        mut students,
        shifts,
        curve,
        hard_curve,
    } = train_students(session, &omitted, epochs)?;
    let scores = score_rows(session, &mut students, &shifts, omitted.class)?;
    // Rows: hard labels with every class, then without the class: hard, distilled, hard
    // with the bias raised, distilled with the bias raised. Each hard-label row without the
    // class against hard labels with it; each distilled row against the hard-label row of
    // the same transfer set and bias treatment.
    let baselines = [None, Some(0), Some(1), Some(0), Some(3)];
    let comparisons = compare_rows(session, &mut students, &baselines)?;
    let findings = findings(
        &omitted.class_name,
        &shifts,
        &scores,
        &students,
        &comparisons,
    );
    let class_name = &omitted.class_name;
    let table = ExperimentTable {
        title: format!("A class the student never sees: {class_name}"),
        description: format!(
            "Hinton et al. (2015) left every 3 out of the transfer set: the distilled net still learned what a 3 looks like from the soft targets of the other digits, and once the 3's output bias was raised (by 3.5) it got 98.6% of the test 3s right. Here the students' transfer set lacks every {class_name}; the shift of its output bias is chosen on validation, where the class is present."
        ),
        settings: table_settings(session, &omitted, epochs),
        rows: ExperimentRows::OmitClass {
            class_name: class_name.clone(),
            rows: scores.rows,
        },
        findings,
        chart: Some(chart(class_name, &curve, &hard_curve)),
        comparisons,
    };
    Ok(ExperimentOutcome { students, table })
}

/// The omitted class and the transfer set without it, on the GPU with its soft targets.
struct Omitted {
    class: usize,
    class_name: String,
    /// Training examples left in the transfer set.
    kept: usize,
    split: GpuSplit,
    targets: Tensor,
}

fn prepare(session: &Session, teachers: &Teachers) -> Result<Omitted> {
    let train = &session.data.train;
    let class = omitted_class(
        session.config.experiments.omit_class.class.as_deref(),
        &train.class_names,
    )?;
    let class_name = train.class_names[class].clone();
    if !session
        .validation
        .host_labels
        .iter()
        .any(|&l| l as usize == class)
    {
        bail!(
            "experiments.omit_class: the validation split has no example of class {class} ({class_name}), so no bias shift can be chosen; raise data.validation_size"
        );
    }
    let keep: Vec<usize> = (0..train.n)
        .filter(|&i| train.labels[i] as usize != class)
        .collect();
    let reduced = train.select(&keep);
    session.console.say(format!(
        "the students' transfer set omits class {class} ({class_name}): {} of {} training examples remain",
        reduced.n, train.n
    ));
    let split = GpuSplit::upload(session.ctx, "without-class", &reduced)?;
    let targets = session.upload_targets(&select_rows(
        &teachers.ensemble_targets,
        session.classes,
        &keep,
    ))?;
    Ok(Omitted {
        class,
        class_name,
        kept: keep.len(),
        split,
        targets,
    })
}

/// The students in table order, the bias shift of each row, and the validation curves
/// (shift, accuracy, accuracy on the class) of the distilled and the hard-label student.
struct OmitStudents {
    students: Vec<Trainee>,
    shifts: [Option<f32>; 5],
    curve: Vec<(f32, f64, f64)>,
    hard_curve: Vec<(f32, f64, f64)>,
}

/// Hard labels with every class; hard labels and distillation without the class; each of
/// the latter two with its output bias raised.
fn train_students(session: &Session, omitted: &Omitted, epochs: usize) -> Result<OmitStudents> {
    let omit = &session.config.experiments.omit_class;
    let full = session.train_student(StudentJob {
        transfer_set: "training split, hard labels".into(),
        ..session.on_training_split(
            "student-hard",
            Role::StudentHard,
            LossConfig::HardLabels,
            None,
        )
    })?;
    let (hard, distilled) = hard_and_soft(
        session,
        &omitted.split,
        &omitted.targets,
        epochs,
        ["student-omit-hard", "student-omit-kd"],
        &format!("training split without {}", omitted.class_name),
    )?;
    let steps = (omit.max_bias_shift / omit.bias_shift_step).floor() as usize;
    let grid: Vec<f32> = (0..=steps)
        .map(|i| i as f32 * omit.bias_shift_step)
        .collect();
    let hard_shifted = raise_bias(session, &hard, omitted.class, &grid)?;
    let distilled_shifted = raise_bias(session, &distilled, omitted.class, &grid)?;
    Ok(OmitStudents {
        shifts: [
            None,
            None,
            None,
            Some(hard_shifted.shift),
            Some(distilled_shifted.shift),
        ],
        curve: distilled_shifted.validation_curve,
        hard_curve: hard_shifted.validation_curve,
        students: vec![
            full,
            hard,
            distilled,
            hard_shifted.student,
            distilled_shifted.student,
        ],
    })
}

/// The table's rows, with each student's test accuracy overall and on the omitted class
/// (NaN where the test split lacks it).
struct OmitScores {
    rows: Vec<OmitClassRow>,
    overall: Vec<f64>,
    on_class: Vec<f64>,
}

fn score_rows(
    session: &Session,
    students: &mut [Trainee],
    shifts: &[Option<f32>],
    class: usize,
) -> Result<OmitScores> {
    let classes = session.classes;
    let mut scores = OmitScores {
        rows: Vec::new(),
        overall: Vec::new(),
        on_class: Vec::new(),
    };
    for (student, shift) in students.iter_mut().zip(shifts) {
        let labels = &session.test.host_labels;
        let logits = session.test_logits(student)?;
        let accuracy = metrics::accuracy(logits, classes, labels);
        let class_accuracy = metrics::per_class_accuracy(logits, classes, labels)[class];
        scores.overall.push(accuracy);
        scores.on_class.push(class_accuracy.unwrap_or(f64::NAN));
        scores.rows.push(OmitClassRow {
            student: student.name.clone(),
            transfer_set: student.transfer_set.clone(),
            bias_shift: shift.map(f64::from),
            validation_accuracy: student.final_validation(),
            test_accuracy: accuracy,
            test_accuracy_on_class: class_accuracy,
        });
    }
    Ok(scores)
}

/// What the raised bias recovers for the distilled student, and not for the hard-label one.
fn findings(
    class_name: &str,
    shifts: &[Option<f32>; 5],
    scores: &OmitScores,
    students: &[Trainee],
    comparisons: &[Option<PairedComparison>],
) -> Vec<String> {
    let (overall, on_class) = (&scores.overall, &scores.on_class);
    let mut findings = vec![
        format!(
            "Raising the {class_name} output bias by {} (chosen on validation) takes the distilled student from {:.1}% to {:.1}% of the test {class_name} examples right, and its test accuracy from {:.2}% to {:.2}% ({}); it never saw a {class_name} in training. Hinton et al. got 98.6% of the test 3s on MNIST after +3.5.",
            shifts[4].unwrap_or(0.0),
            100.0 * on_class[2],
            100.0 * on_class[4],
            100.0 * overall[2],
            100.0 * overall[4],
            points(overall[2], overall[4])
        ),
        format!(
            "The student trained on hard labels without {class_name} gets {:.1}% of them after its best shift ({}): without soft targets it knows nothing of the class. With every class, the hard-label student gets {:.1}%.",
            100.0 * on_class[3],
            shifts[3].unwrap_or(0.0),
            100.0 * on_class[0]
        ),
    ];
    findings.extend(comparison_finding(
        &students[4].name,
        comparisons[4].as_ref(),
    ));
    findings
}

/// Validation accuracy against the bias shift: the distilled student overall and on the
/// class, the hard-label student on the class.
fn chart(class_name: &str, curve: &[(f32, f64, f64)], hard_curve: &[(f32, f64, f64)]) -> LineChart {
    let series = |name: &str, points: Vec<[f64; 2]>| Series {
        name: name.into(),
        points,
    };
    LineChart {
        x_label: format!("{class_name} output-bias shift"),
        y_label: "validation accuracy".into(),
        log_x: false,
        series: vec![
            series(
                "distilled: all classes",
                curve.iter().map(|&(s, a, _)| [s as f64, a]).collect(),
            ),
            series(
                &format!("distilled: {class_name}"),
                curve.iter().map(|&(s, _, c)| [s as f64, c]).collect(),
            ),
            series(
                &format!("hard labels: {class_name}"),
                hard_curve.iter().map(|&(s, _, c)| [s as f64, c]).collect(),
            ),
        ],
        references: Vec::new(),
    }
}

fn table_settings(session: &Session, omitted: &Omitted, epochs: usize) -> Vec<Setting> {
    let config = session.config;
    let omit = &config.experiments.omit_class;
    let mut pairs = common_settings(session);
    pairs.extend([
        (
            "omitted class",
            format!("{} ({})", omitted.class, omitted.class_name),
        ),
        (
            "transfer set",
            format!(
                "{} of {} training examples",
                omitted.kept, session.data.train.n
            ),
        ),
        (
            "soft targets",
            format!(
                "T = {}, alpha = {}",
                config.experiments.temperature, config.experiments.alpha
            ),
        ),
        (
            "bias shifts tried",
            format!(
                "0 to {} in steps of {}",
                omit.max_bias_shift, omit.bias_shift_step
            ),
        ),
        ("student epochs", epochs.to_string()),
    ]);
    settings(pairs)
}

/// A copy of `student` with the output bias of `class` raised by the shift from `grid`
/// that maximises validation accuracy.
fn raise_bias(session: &Session, student: &Trainee, class: usize, grid: &[f32]) -> Result<Shifted> {
    let classes = session.classes;
    let labels = &session.validation.host_labels;
    let logits = &student.trained.validation_logits;
    let validation_curve: Vec<(f32, f64, f64)> = grid
        .iter()
        .map(|&shift| {
            let shifted = metrics::accuracy_with_bias_shift(logits, classes, labels, class, shift);
            (
                shift,
                shifted.accuracy,
                shifted.class_accuracy.unwrap_or(f64::NAN),
            )
        })
        .collect();
    let best = metrics::best_bias_shift(logits, classes, labels, class, grid);
    let shift = best.shift;
    let mut values = student.model.read_values(session.ctx)?;
    let specs = student.model.parameter_specs();
    let last = specs.len() - 1;
    anyhow::ensure!(
        specs[last].kind == ParamKind::Bias && values[last].len() == classes,
        "the student's last parameter is not the output bias"
    );
    values[last][class] += shift;
    let model = Model::from_values(session.ctx, student.model.spec().clone(), &values)?;
    // Not trained again: no curve and no training time of its own.
    let trained = Trained::without_curve(
        metrics::with_bias_shift(logits, classes, class, shift),
        best.accuracy,
    );
    Ok(Shifted {
        student: Trainee {
            name: format!("{}-bias", student.name),
            role: student.role,
            model,
            trained,
            distilled: student.distilled,
            transfer_set: format!("{}, output bias raised", student.transfer_set),
            test_logits: None,
            checkpoint: None,
        },
        shift,
        validation_curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn omitted_class_defaults_to_dress_or_three_and_accepts_names_and_indices() {
        let fashion = names(&["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]);
        assert_eq!(omitted_class(None, &fashion).unwrap(), 3);
        let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
        assert_eq!(omitted_class(None, &digits).unwrap(), 3);
        assert_eq!(omitted_class(Some("coat"), &fashion).unwrap(), 4);
        assert_eq!(omitted_class(Some(" 1 "), &fashion).unwrap(), 1);
        assert_eq!(omitted_class(Some("7"), &digits).unwrap(), 7);
        let err = omitted_class(Some("Hat"), &fashion)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("experiments.omit_class.class") && err.contains("Trouser"),
            "{err}"
        );
        assert!(omitted_class(Some("5"), &fashion).is_err());
        assert!(omitted_class(None, &names(&["a", "b"])).is_err());
    }
}
