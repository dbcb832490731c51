//! The terminal's summary table of a run: one row per model, the comparisons with the
//! hard-label student and, with repeats, mean ± sd.

use crate::results::{ModelResult, Results, format_p};

/// The final table printed in the terminal: one row per model; with repeats, each
/// student's test accuracy as mean ± sd over them; for students, the difference from
/// student-hard in points with its 95% paired bootstrap interval, and McNemar's p.
pub fn summary_table(results: &Results) -> String {
    let repeats = results.repeat_count();
    let mut out = header(repeats.is_some());
    for m in &results.models {
        out.push_str(&model_row(m, repeats.is_some()));
    }
    out.push_str(&footer(results, repeats));
    out
}

fn header(with_repeats: bool) -> String {
    let mut out = format!(
        "{:<38} {:>9} {:>11} {:>9} ",
        "model", "params", "MFLOP/ex", "test acc"
    );
    if with_repeats {
        out.push_str(&format!("{:>14} ", "mean ± sd"));
    }
    out.push_str(&format!(
        "{:>7} {:>7} {:>6} {:>10} {:>12} {:>24} {:>8}\n",
        "errors", "NLL", "ECE", "lat. ms", "ex/s", "vs hard (95% CI)", "p"
    ));
    out
}

fn model_row(m: &ModelResult, with_repeats: bool) -> String {
    let (latency, throughput) = m.serving.as_ref().map_or((f64::NAN, f64::NAN), |s| {
        (s.latency_batch1_ms, s.throughput_per_s)
    });
    let mut name = m.name.clone();
    if let (Some(t), Some(a)) = (m.temperature, m.alpha) {
        name = format!("{name} (T={t}, a={a})");
    }
    let mut out = format!(
        "{:<38} {:>9} {:>11.3} {:>8.2}% ",
        name,
        m.params,
        m.flops_per_example as f64 / 1e6,
        100.0 * m.test.accuracy,
    );
    if with_repeats {
        let spread = m.repeats.as_ref().map(|r| r.mean_pm_sd());
        out.push_str(&format!("{:>14} ", spread.as_deref().unwrap_or("-")));
    }
    let (versus, p) = m
        .versus_hard
        .as_ref()
        .map_or(("-".into(), "-".into()), |v| {
            (v.points_with_interval(), format_p(v.p_value))
        });
    out.push_str(&format!(
        "{:>7} {:>7.4} {:>6.3} {:>10.3} {:>12.0} {:>24} {:>8}\n",
        m.test.errors, m.test.nll, m.test.ece, latency, throughput, versus, p
    ));
    out
}

/// The columns' legend, then each student's paired t-test over the repeats.
fn footer(results: &Results, repeats: Option<usize>) -> String {
    let mut out = String::from(
        "vs hard: test accuracy minus student-hard's in points, 95% paired bootstrap interval; p: McNemar's exact test",
    );
    match repeats {
        Some(n) => out.push_str(&format!(
            " (first repeats); mean ± sd: test accuracy over {n} repeats\n"
        )),
        None => out.push('\n'),
    }
    let unlabeled = results.run.dataset.unlabeled;
    if unlabeled > 0 {
        out.push_str(&format!(
            "student-hard learned from the {} labeled training examples; the distilled students also from {unlabeled} unlabeled images labeled by the ensemble, in at most as many steps\n",
            results.run.dataset.train
        ));
    }
    for m in &results.models {
        if let Some(v) = m.repeats.as_ref().and_then(|r| r.versus_hard.as_ref()) {
            out.push_str(&format!(
                "{} vs student-hard over the repeats (paired t-test): {}\n",
                m.name,
                v.summary()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Role;
    use crate::testutil::sample_results;

    #[test]
    fn summary_table_shows_comparisons_and_repeats() {
        let results = sample_results();
        let table = summary_table(&results);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].contains("mean ± sd") && lines[0].ends_with("vs hard (95% CI)        p"),
            "{table}"
        );
        let kd = results.model(Role::StudentKd).unwrap();
        let versus = kd.versus_hard.as_ref().unwrap();
        let row = lines
            .iter()
            .find(|l| l.starts_with("student-kd"))
            .expect("a student-kd row");
        assert!(
            row.ends_with(&format!(
                "{}  {:>7}",
                versus.points_with_interval(),
                format_p(versus.p_value)
            )),
            "{row}"
        );
        assert!(
            row.contains(&kd.repeats.as_ref().unwrap().mean_pm_sd()),
            "{row}"
        );
        // Teachers: no repeats, no comparison.
        assert!(lines[1].starts_with("teacher-1") && lines[1].ends_with(" -        -"));
        let seeds = kd.repeats.as_ref().unwrap().versus_hard.as_ref().unwrap();
        assert!(
            table.ends_with(&format!(
                "mean ± sd: test accuracy over 3 repeats\nstudent-kd vs student-hard over the repeats (paired t-test): {}\n",
                seeds.summary()
            )),
            "{table}"
        );
        assert!(
            seeds
                .summary()
                .starts_with("+0.95 ± 0.05 points, t = 32.91"),
            "{}",
            seeds.summary()
        );
        // Without repeats the column is left out.
        let mut once = results.clone();
        once.models.iter_mut().for_each(|m| m.repeats = None);
        assert!(!summary_table(&once).contains("mean ± sd"));
        assert!(!summary_table(&once).contains("unlabeled"));
    }

    #[test]
    fn unlabeled_images_are_named_under_the_table() {
        let mut results = sample_results();
        results.run.dataset.unlabeled = 40_000;
        let table = summary_table(&results);
        assert!(
            table.contains("student-hard learned from the 55000 labeled training examples; the distilled students also from 40000 unlabeled images labeled by the ensemble, in at most as many steps\n"),
            "{table}"
        );
    }
}
