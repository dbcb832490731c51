//! Evaluation metrics computed on the CPU from logits `[N, C]` (row-major f32) and labels.
//!
//! Softmax and log-softmax subtract the row maximum first, so no `exp` of a positive number
//! and no `log` of a probability that can be 0. Sums are accumulated in f64.
//!
//! Expected calibration error (ECE): the examples are put into `bins` equal-width bins of
//! their confidence (the top softmax probability at T = 1); bin `b` holds confidences in
//! `(b/bins, (b+1)/bins]` (a confidence of exactly 0 goes to the first bin). ECE is
//! `sum_b (n_b / N) * |accuracy_b - mean confidence_b|`; the standard choice is 15 bins.
//!
//! Output-bias shift: a student distilled on a transfer set that lacks one class learns from
//! soft targets alone that the class exists, but its output bias for it ends up too low
//! (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015: MNIST with
//! every 3 left out, fixed by raising the bias of 3 by 3.5). [`best_bias_shift`] picks that
//! raise from a grid by accuracy on a validation set, never on the test set.

use dk_tensor::ops::softmax::cpu;

/// Checks that `logits` holds `rows x classes` values.
fn rows(logits: &[f32], classes: usize) -> usize {
    assert!(classes > 0, "metrics: classes must be positive");
    assert_eq!(
        logits.len() % classes,
        0,
        "metrics: {} logits are not a whole number of rows of {classes} classes",
        logits.len()
    );
    logits.len() / classes
}

fn check_labels(logits: &[f32], classes: usize, labels: &[u8]) -> usize {
    let n = rows(logits, classes);
    assert_eq!(
        n,
        labels.len(),
        "metrics: {n} rows of logits but {} labels",
        labels.len()
    );
    n
}

/// Index of the largest value of each row (the first one on ties).
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    rows(logits, classes);
    logits
        .chunks_exact(classes)
        .map(|row| cpu::argmax_row(row) as usize)
        .collect()
}

/// `log_softmax(logits / temperature)` of each row ([`cpu::log_softmax_f64_sum`]).
pub fn log_softmax_rows(logits: &[f32], classes: usize, temperature: f32) -> Vec<f32> {
    rows(logits, classes);
    cpu::log_softmax_f64_sum(logits, classes, temperature)
}

/// `softmax(logits / temperature)` of each row ([`cpu::softmax_f64_sum`]).
pub fn softmax_rows(logits: &[f32], classes: usize, temperature: f32) -> Vec<f32> {
    rows(logits, classes);
    cpu::softmax_f64_sum(logits, classes, temperature)
}

/// Share of rows whose argmax equals the label.
pub fn accuracy(logits: &[f32], classes: usize, labels: &[u8]) -> f64 {
    let n = check_labels(logits, classes, labels);
    if n == 0 {
        return 0.0;
    }
    (n - error_count(logits, classes, labels)) as f64 / n as f64
}

/// Number of rows whose argmax differs from the label.
pub fn error_count(logits: &[f32], classes: usize, labels: &[u8]) -> usize {
    check_labels(logits, classes, labels);
    argmax_rows(logits, classes)
        .iter()
        .zip(labels)
        .filter(|&(&predicted, &label)| predicted != label as usize)
        .count()
}

/// Per row: whether its argmax equals the label (what paired tests between models compare).
pub fn correct_predictions(logits: &[f32], classes: usize, labels: &[u8]) -> Vec<bool> {
    check_labels(logits, classes, labels);
    argmax_rows(logits, classes)
        .iter()
        .zip(labels)
        .map(|(&predicted, &label)| predicted == label as usize)
        .collect()
}

/// Mean negative log-likelihood of the labels under `softmax(logits)`.
pub fn nll(logits: &[f32], classes: usize, labels: &[u8]) -> f64 {
    let n = check_labels(logits, classes, labels);
    if n == 0 {
        return 0.0;
    }
    let log_probs = log_softmax_rows(logits, classes, 1.0);
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(row, &label)| -(log_probs[row * classes + label as usize] as f64))
        .sum();
    total / n as f64
}

/// Expected calibration error with `bins` equal-width confidence bins (see the module doc).
pub fn expected_calibration_error(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    bins: usize,
) -> f64 {
    let n = check_labels(logits, classes, labels);
    assert!(bins > 0, "metrics: ECE needs at least one bin");
    if n == 0 {
        return 0.0;
    }
    let probs = softmax_rows(logits, classes, 1.0);
    let predicted = argmax_rows(logits, classes);
    let mut count = vec![0usize; bins];
    let mut correct = vec![0usize; bins];
    let mut confidence_sum = vec![0f64; bins];
    for row in 0..n {
        let confidence = probs[row * classes + predicted[row]] as f64;
        // Upper-inclusive bins: ceil(conf * bins) - 1, clamped into range.
        let bin = ((confidence * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[bin] += 1;
        confidence_sum[bin] += confidence;
        if predicted[row] == labels[row] as usize {
            correct[bin] += 1;
        }
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| {
            let in_bin = count[b] as f64;
            (in_bin / n as f64) * (correct[b] as f64 / in_bin - confidence_sum[b] / in_bin).abs()
        })
        .sum()
}

/// Share of rows where the two models' argmax agree.
pub fn agreement(logits: &[f32], reference: &[f32], classes: usize) -> f64 {
    let n = rows(logits, classes);
    assert_eq!(
        logits.len(),
        reference.len(),
        "metrics: agreement needs logits of the same shape"
    );
    if n == 0 {
        return 0.0;
    }
    let same = argmax_rows(logits, classes)
        .iter()
        .zip(argmax_rows(reference, classes))
        .filter(|&(a, b)| *a == b)
        .count();
    same as f64 / n as f64
}

/// Share of rows whose softmax (T = 1) gives the label at least `probability` (a label
/// outside the classes never counts): near 1 for a model that has memorised them.
pub fn confident_share(logits: &[f32], classes: usize, labels: &[u8], probability: f32) -> f64 {
    let n = check_labels(logits, classes, labels);
    if n == 0 {
        return 0.0;
    }
    let confident = softmax_rows(logits, classes, 1.0)
        .chunks_exact(classes)
        .zip(labels)
        .filter(|&(row, &label)| row.get(label as usize).is_some_and(|&p| p >= probability))
        .count();
    confident as f64 / n as f64
}

/// Among the rows that at least one member gets wrong, the share on which every member
/// predicts the same class (0 when no member errs): how much of their error averaging
/// cannot remove.
pub fn shared_mistakes(members: &[&[f32]], classes: usize, labels: &[u8]) -> f64 {
    let predictions: Vec<Vec<usize>> = members
        .iter()
        .map(|logits| {
            check_labels(logits, classes, labels);
            argmax_rows(logits, classes)
        })
        .collect();
    let (mut wrong, mut shared) = (0usize, 0usize);
    for (row, &label) in labels.iter().enumerate() {
        let answers: Vec<usize> = predictions.iter().map(|p| p[row]).collect();
        if answers.iter().any(|&a| a != label as usize) {
            wrong += 1;
            shared += usize::from(answers.iter().all(|&a| a == answers[0]));
        }
    }
    if wrong == 0 {
        0.0
    } else {
        shared as f64 / wrong as f64
    }
}

/// Accuracy on the examples of each class; `None` for a class absent from `labels`.
pub fn per_class_accuracy(logits: &[f32], classes: usize, labels: &[u8]) -> Vec<Option<f64>> {
    check_labels(logits, classes, labels);
    let mut seen = vec![0usize; classes];
    let mut right = vec![0usize; classes];
    for (predicted, &label) in argmax_rows(logits, classes).iter().zip(labels) {
        seen[label as usize] += 1;
        if *predicted == label as usize {
            right[label as usize] += 1;
        }
    }
    seen.iter()
        .zip(&right)
        .map(|(&s, &r)| (s > 0).then(|| r as f64 / s as f64))
        .collect()
}

/// Shifts tried by default for [`best_bias_shift`]: 0, 0.25, ..., 10.
pub fn default_bias_shift_grid() -> Vec<f32> {
    (0..=40).map(|step| step as f32 * 0.25).collect()
}

/// Accuracy after adding a shift to one class's logit in every row.
#[derive(Debug, Clone, PartialEq)]
pub struct ShiftedAccuracy {
    pub shift: f32,
    /// Over all rows.
    pub accuracy: f64,
    /// Over the rows labelled with the shifted class; `None` when there are none.
    pub class_accuracy: Option<f64>,
    pub per_class_accuracy: Vec<Option<f64>>,
}

/// `logits` with `shift` added to logit `class` of every row: what raising that class's
/// output bias by `shift` does to a model's outputs.
pub fn with_bias_shift(logits: &[f32], classes: usize, class: usize, shift: f32) -> Vec<f32> {
    let mut shifted = logits.to_vec();
    for row in shifted.chunks_exact_mut(classes) {
        row[class] += shift;
    }
    shifted
}

/// Accuracies of `logits` once `shift` (finite, >= 0) is added to logit `class` of every row.
pub fn accuracy_with_bias_shift(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    class: usize,
    shift: f32,
) -> ShiftedAccuracy {
    check_labels(logits, classes, labels);
    assert!(
        class < classes,
        "metrics: shifted class {class}, expected < {classes}"
    );
    assert!(
        shift.is_finite() && shift >= 0.0,
        "metrics: bias shift {shift}, expected a finite number >= 0"
    );
    let shifted = with_bias_shift(logits, classes, class, shift);
    let per_class_accuracy = per_class_accuracy(&shifted, classes, labels);
    ShiftedAccuracy {
        shift,
        accuracy: accuracy(&shifted, classes, labels),
        class_accuracy: per_class_accuracy[class],
        per_class_accuracy,
    }
}

/// The shift of `grid` whose [`accuracy_with_bias_shift`] is highest; on ties the smallest
/// shift, since raising a bias further than needed only risks false positives elsewhere.
pub fn best_bias_shift(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    class: usize,
    grid: &[f32],
) -> ShiftedAccuracy {
    assert!(!grid.is_empty(), "metrics: the bias shift grid is empty");
    grid.iter()
        .map(|&shift| accuracy_with_bias_shift(logits, classes, labels, class, shift))
        .reduce(|best, next| {
            let better = next.accuracy > best.accuracy
                || (next.accuracy == best.accuracy && next.shift < best.shift);
            if better { next } else { best }
        })
        .expect("grid is not empty")
}

/// Share of the teacher-over-student gap that distillation recovered:
/// `(distilled - hard) / (ensemble - hard)`, from accuracies. `None` when the ensemble is
/// not measurably better or worse than the hard-label student (|denominator| < 1e-9).
pub fn gap_recovered(hard: f64, distilled: f64, ensemble: f64) -> Option<f64> {
    let gap = ensemble - hard;
    (gap.abs() >= 1e-9).then(|| (distilled - hard) / gap)
}

/// Ensemble logits: the mean of the members' log-softmax, i.e. the log of the normalised
/// geometric mean of their probabilities (up to a per-row constant, which softmax ignores).
pub fn ensemble_logits(members: &[&[f32]], classes: usize) -> Vec<f32> {
    assert!(
        !members.is_empty(),
        "metrics: an ensemble needs at least one member"
    );
    let len = members[0].len();
    let mut sum = vec![0f64; len];
    for member in members {
        assert_eq!(
            member.len(),
            len,
            "metrics: ensemble members have different shapes"
        );
        for (acc, v) in sum.iter_mut().zip(log_softmax_rows(member, classes, 1.0)) {
            *acc += v as f64;
        }
    }
    sum.into_iter()
        .map(|s| (s / members.len() as f64) as f32)
        .collect()
}

/// Mean of `softmax(logits / temperature)` over the examples of each true class:
/// a `classes x classes` row-major matrix (row = true class, column = predicted class).
/// Rows of absent classes are zero.
pub fn mean_soft_targets(
    logits: &[f32],
    classes: usize,
    labels: &[u8],
    temperature: f32,
) -> Vec<f64> {
    check_labels(logits, classes, labels);
    let probs = softmax_rows(logits, classes, temperature);
    let mut sum = vec![0f64; classes * classes];
    let mut count = vec![0usize; classes];
    for (row, &label) in labels.iter().enumerate() {
        let label = label as usize;
        count[label] += 1;
        for c in 0..classes {
            sum[label * classes + c] += probs[row * classes + c] as f64;
        }
    }
    for (class, &n) in count.iter().enumerate() {
        if n > 0 {
            sum[class * classes..(class + 1) * classes]
                .iter_mut()
                .for_each(|v| *v /= n as f64);
        }
    }
    sum
}

/// The metrics of one model on one labelled set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub examples: usize,
    pub accuracy: f64,
    pub errors: usize,
    pub nll: f64,
    pub ece: f64,
    pub per_class_accuracy: Vec<Option<f64>>,
}

/// All label-based metrics of `logits` at once.
pub fn evaluate(logits: &[f32], classes: usize, labels: &[u8], ece_bins: usize) -> Evaluation {
    Evaluation {
        examples: labels.len(),
        accuracy: accuracy(logits, classes, labels),
        errors: error_count(logits, classes, labels),
        nll: nll(logits, classes, labels),
        ece: expected_calibration_error(logits, classes, labels, ece_bins),
        per_class_accuracy: per_class_accuracy(logits, classes, labels),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn softmax_of_equal_and_shifted_logits() {
        // Equal logits: uniform. Adding a constant changes nothing; huge values do not overflow.
        let p = softmax_rows(&[2.0, 2.0, 1000.0, 1000.0], 2, 1.0);
        assert!(p.iter().all(|&v| close(v as f64, 0.5, 1e-7)), "{p:?}");
        // [ln 3, 0]: probabilities 3/4 and 1/4.
        let p = softmax_rows(&[3f32.ln(), 0.0], 2, 1.0);
        assert!(
            close(p[0] as f64, 0.75, 1e-6) && close(p[1] as f64, 0.25, 1e-6),
            "{p:?}"
        );
        // Temperature 2 on [2 ln 3, 0] gives the same 3/4, 1/4.
        let p = softmax_rows(&[2.0 * 3f32.ln(), 0.0], 2, 2.0);
        assert!(close(p[0] as f64, 0.75, 1e-6), "{p:?}");
        // A probability that underflows still has a finite log.
        let lp = log_softmax_rows(&[0.0, -200.0], 2, 1.0);
        assert!(close(lp[1] as f64, -200.0, 1e-3), "{lp:?}");
    }

    #[test]
    fn accuracy_errors_and_nll_by_hand() {
        // Row 0 predicts class 0 (right), row 1 predicts 1 (label 2: wrong), row 2 predicts 2.
        let logits = [3f32.ln(), 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 5.0];
        let labels = [0, 2, 2];
        assert_eq!(error_count(&logits, 3, &labels), 1);
        assert_eq!(
            correct_predictions(&logits, 3, &labels),
            vec![true, false, true]
        );
        assert!(close(accuracy(&logits, 3, &labels), 2.0 / 3.0, 1e-12));
        // Row 0: p(0) = 3/5. Row 1: p(2) = 1/(2+e). Row 2: p(2) = e^5/(2+e^5).
        let e = std::f64::consts::E;
        let expected =
            -((0.6f64).ln() + (1.0 / (2.0 + e)).ln() + (e.powi(5) / (2.0 + e.powi(5))).ln()) / 3.0;
        assert!(
            close(nll(&logits, 3, &labels), expected, 1e-6),
            "{} vs {expected}",
            nll(&logits, 3, &labels)
        );
        assert_eq!(
            per_class_accuracy(&logits, 3, &labels),
            vec![Some(1.0), None, Some(0.5)]
        );
    }

    #[test]
    fn calibration_error_by_hand() {
        // Two classes, logits [ln c/(1-c), 0] give confidence c for class 0.
        let row = |c: f64| [(c / (1.0 - c)).ln() as f32, 0.0];
        // Confidences 0.85 (right), 0.85 (wrong), 0.65 (right), 0.65 (right); 10 bins.
        let logits: Vec<f32> = [0.85, 0.85, 0.65, 0.65]
            .iter()
            .flat_map(|&c| row(c))
            .collect();
        let labels = [0, 1, 0, 0];
        // Bin (0.8, 0.9]: accuracy 1/2, confidence 0.85 -> 0.35, weight 1/2.
        // Bin (0.6, 0.7]: accuracy 1, confidence 0.65 -> 0.35, weight 1/2. ECE = 0.35.
        let ece = expected_calibration_error(&logits, 2, &labels, 10);
        assert!(close(ece, 0.35, 1e-6), "ece {ece}");
        // One bin: accuracy 3/4, mean confidence 0.75 -> 0.
        let ece = expected_calibration_error(&logits, 2, &labels, 1);
        assert!(close(ece, 0.0, 1e-6), "ece {ece}");
    }

    #[test]
    fn confident_share_counts_rows_sure_of_their_label() {
        // Rows: label 0 at p = 1/(1+e^-6) ~ 0.9975, label 1 at the same, label 0 at 1/2.
        let logits = [6.0, 0.0, 0.0, 6.0, 1.0, 1.0];
        assert!(close(
            confident_share(&logits, 2, &[0, 1, 0], 0.99),
            2.0 / 3.0,
            1e-12
        ));
        // Sure of the wrong class counts for nothing.
        assert!(close(
            confident_share(&logits, 2, &[1, 0, 1], 0.99),
            0.0,
            1e-12
        ));
        assert!(close(
            confident_share(&logits, 2, &[0, 1, 0], 0.5),
            1.0,
            1e-12
        ));
        let outside = confident_share(&logits, 2, &[0, 1, 7], 0.5);
        assert!(close(outside, 2.0 / 3.0, 1e-12), "label 7 of 2 classes");
        assert_eq!(confident_share(&[], 2, &[], 0.5), 0.0, "no rows");
    }

    #[test]
    fn shared_mistakes_among_rows_any_member_gets_wrong() {
        // Labels 0, 0, 1, 1. Row 0: all right (not counted). Row 1: both say 1 (shared).
        // Row 2: one says 0, the other 1 (not shared). Row 3: both say 0 (shared).
        let a = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
        let b = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0];
        let labels = [0, 0, 1, 1];
        assert!(close(
            shared_mistakes(&[&a, &b], 2, &labels),
            2.0 / 3.0,
            1e-12
        ));
        assert_eq!(
            shared_mistakes(&[&a, &a], 2, &[0, 1, 0, 0]),
            0.0,
            "no mistakes"
        );
    }

    #[test]
    fn agreement_and_gap() {
        let a = [1.0, 0.0, 0.0, 1.0, 5.0, 4.0];
        let b = [0.0, 1.0, 0.0, 2.0, 9.0, 1.0];
        assert!(close(agreement(&a, &b, 2), 2.0 / 3.0, 1e-12));
        // Hard 0.88, distilled 0.89, ensemble 0.92: a quarter of the gap.
        assert!(close(gap_recovered(0.88, 0.89, 0.92).unwrap(), 0.25, 1e-9));
        assert_eq!(gap_recovered(0.9, 0.91, 0.9), None);
    }

    #[test]
    fn ensemble_is_the_geometric_mean() {
        // Member probabilities [3/4, 1/4] and [1/4, 3/4]: geometric means sqrt(3)/4 each,
        // so the ensemble is uniform.
        let m1 = [3f32.ln(), 0.0];
        let m2 = [0.0, 3f32.ln()];
        let ens = ensemble_logits(&[&m1, &m2], 2);
        let p = softmax_rows(&ens, 2, 1.0);
        assert!(close(p[0] as f64, 0.5, 1e-6), "{p:?}");
        // [3/4, 1/4] with [1/2, 1/2]: geometric means sqrt(3/8), sqrt(1/8): ratio sqrt(3).
        let m3 = [0.0, 0.0];
        let ens = ensemble_logits(&[&m1, &m3], 2);
        let p = softmax_rows(&ens, 2, 1.0);
        let expected = 3f64.sqrt() / (3f64.sqrt() + 1.0);
        assert!(close(p[0] as f64, expected, 1e-6), "{p:?} vs {expected}");
    }

    #[test]
    fn mean_soft_targets_by_hand() {
        // Two examples of class 0 with probabilities [3/4, 1/4] and [1/4, 3/4]; none of class 1.
        let logits = [3f32.ln(), 0.0, 0.0, 3f32.ln()];
        let m = mean_soft_targets(&logits, 2, &[0, 0], 1.0);
        assert!(close(m[0], 0.5, 1e-6) && close(m[1], 0.5, 1e-6), "{m:?}");
        assert_eq!((m[2], m[3]), (0.0, 0.0));
        let all = evaluate(&logits, 2, &[0, 0], 15);
        assert_eq!((all.examples, all.errors), (2, 1));
    }

    /// Class 2 is the "omitted" class: its logits are too low. Rows (label: logits):
    /// row 0 (2: [1, 0, -0.5]) becomes right once the shift exceeds 1.5 (at exactly 1.5 the
    /// tie goes to class 0), row 1 (2: [0, 2, 0.2]) beyond 1.8, while row 2 (0: [3, 0, 0])
    /// turns wrong beyond 3 and row 3 (1: [0, 2.5, 0]) beyond 2.5. So accuracy is 2/4 up to
    /// 1.5, 3/4 up to 1.8, 4/4 on (1.8, 2.5], 3/4 up to 3, then 2/4.
    const OMITTED_LOGITS: [f32; 12] = [1.0, 0.0, -0.5, 0.0, 2.0, 0.2, 3.0, 0.0, 0.0, 0.0, 2.5, 0.0];
    const OMITTED_LABELS: [u8; 4] = [2, 2, 0, 1];

    #[test]
    fn best_bias_shift_is_the_smallest_of_the_best() {
        let grid = default_bias_shift_grid();
        let best = best_bias_shift(&OMITTED_LOGITS, 3, &OMITTED_LABELS, 2, &grid);
        // The grid points in (1.8, 2.5] are 2, 2.25 and 2.5; the smallest wins.
        assert_eq!((best.shift, best.accuracy), (2.0, 1.0));
        // The same in any grid order.
        let best = best_bias_shift(&OMITTED_LOGITS, 3, &OMITTED_LABELS, 2, &[2.5, 2.25, 0.0]);
        assert_eq!(best.shift, 2.25);
        // Shifting class 0 only turns rows of other classes wrong: no shift is best.
        let best = best_bias_shift(&OMITTED_LOGITS, 3, &OMITTED_LABELS, 0, &[3.0, 1.0, 0.0]);
        assert_eq!((best.shift, best.accuracy), (0.0, 0.5));
    }

    #[test]
    fn accuracy_with_bias_shift_by_hand() {
        // 1.75: row 0 right, row 1 not yet (see OMITTED_LOGITS), rows 2 and 3 still right.
        let at = |shift| accuracy_with_bias_shift(&OMITTED_LOGITS, 3, &OMITTED_LABELS, 2, shift);
        let shifted = at(1.75);
        assert_eq!(shifted.accuracy, 0.75);
        assert_eq!(shifted.class_accuracy, Some(0.5));
        assert_eq!(
            shifted.per_class_accuracy,
            vec![Some(1.0), Some(1.0), Some(0.5)]
        );
        // Exactly at a tie (1.5 for row 0) the class with the lower index keeps the row.
        assert_eq!(at(1.5).class_accuracy, Some(0.0));
        // 3.5: rows 2 and 3 are lost to class 2.
        assert_eq!(
            at(3.5).per_class_accuracy,
            vec![Some(0.0), Some(0.0), Some(1.0)]
        );
        // No row of class 1 in a set: its accuracy is None.
        let none = accuracy_with_bias_shift(&OMITTED_LOGITS[..3], 3, &[2], 1, 1.0);
        assert_eq!(none.class_accuracy, None);
    }

    #[test]
    fn default_grid_steps_by_a_quarter_up_to_ten() {
        let grid = default_bias_shift_grid();
        assert_eq!((grid.len(), grid[0], grid[grid.len() - 1]), (41, 0.0, 10.0));
        assert!(grid.windows(2).all(|pair| pair[1] - pair[0] == 0.25));
    }
}
