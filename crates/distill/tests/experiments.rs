//! End to end: every experiment on the `tiny` preset, through the library API, into
//! temporary folders, on one GPU device. The first experiment trains the teachers; the
//! others load them from its run folder (the `teachers_from` option), which also checks
//! that path. Without Fashion-MNIST it skips, saying so, except under CI, where it fails.

mod common;

use std::path::{Path, PathBuf};

use dk_distill::config::{Experiment, Preset, RunConfig};
use dk_distill::data::{StudyData, load_data};
use dk_distill::driver::{RunOptions, run_study};
use dk_distill::results::{Cell, ColumnKind, ExperimentRows, ExperimentTable, Results, Role};
use dk_tensor::GpuContext;

struct Harness {
    ctx: GpuContext,
    root: PathBuf,
    data: StudyData,
}

impl Harness {
    fn config(&self, experiment: Experiment) -> RunConfig {
        let mut config = RunConfig::preset(Preset::Tiny);
        config.experiment = Some(experiment);
        config.out_dir = Some(self.root.join(experiment.name()));
        config
    }

    fn run(&self, config: &RunConfig, teachers_from: Option<&Path>) -> anyhow::Result<Results> {
        let options = RunOptions {
            cache_dir: Some(self.root.join("cache")),
            teachers_from: teachers_from.map(Path::to_path_buf),
            quiet: true,
            ..RunOptions::default()
        };
        let outcome = run_study(&self.ctx, config, &self.data, &options)?;
        let written = Results::read(&outcome.run_dir.join("results.json")).unwrap();
        assert_eq!(written, outcome.results, "results.json holds the run");
        let report = std::fs::read_to_string(outcome.run_dir.join("report.html")).unwrap();
        assert!(report.contains("<section id=\"experiment\">"));
        Ok(outcome.results)
    }
}

/// The table's value types, and the named column as numbers.
fn column(table: &ExperimentTable, label: &str) -> Vec<Option<f64>> {
    let columns = table.columns();
    let cells = table.cells();
    for row in &cells {
        for (cell, column) in row.iter().zip(&columns) {
            let ok = match cell {
                Cell::Empty => true,
                Cell::Text(_) => column.kind == ColumnKind::Text,
                Cell::Whole(_) | Cell::Real(_) => column.kind != ColumnKind::Text,
            };
            assert!(ok, "{}: {} holds {cell}", table.name(), column.label);
        }
    }
    let index = columns
        .iter()
        .position(|c| c.label == label)
        .unwrap_or_else(|| panic!("{}: no column {label}", table.name()));
    cells.iter().map(|r| r[index].as_f64()).collect()
}

/// One comparison per row: row `i` against the row `baselines[i]` (rows and the run's
/// students in the same order), consistent with the students' test accuracies.
fn check_comparisons(results: &Results, baselines: &[Option<usize>]) {
    let table = results.experiment.as_ref().unwrap();
    assert_eq!(
        table.comparisons.len(),
        table.rows.len(),
        "{}",
        table.name()
    );
    assert_eq!(baselines.len(), table.rows.len(), "{}", table.name());
    let students: Vec<_> = results
        .models
        .iter()
        .filter(|m| m.role.is_student())
        .collect();
    for (row, (comparison, baseline)) in table.comparisons.iter().zip(baselines).enumerate() {
        match (comparison, baseline) {
            (None, None) => {}
            (Some(c), Some(b)) => {
                assert_eq!(c.baseline, students[*b].name, "{} row {row}", table.name());
                assert!(
                    c.ci_low <= c.difference && c.difference <= c.ci_high,
                    "{} row {row}: {c:?}",
                    table.name()
                );
                assert!((0.0..=1.0).contains(&c.p_value), "{c:?}");
                let gap = students[row].test.accuracy - students[*b].test.accuracy;
                assert!(
                    (c.difference - gap).abs() < 1e-9,
                    "{} row {row}",
                    table.name()
                );
            }
            _ => panic!(
                "{} row {row}: comparison {comparison:?}, expected baseline {baseline:?}",
                table.name()
            ),
        }
    }
}

/// Every row after the first against the first.
fn against_first(rows: usize) -> Vec<Option<usize>> {
    (0..rows).map(|i| (i > 0).then_some(0)).collect()
}

fn assert_learned(values: &[Option<f64>], what: &str) {
    for value in values {
        let value = value.expect("a number");
        // Ten classes: anything trained must beat guessing (0.1) clearly.
        assert!(value > 0.2, "{what}: {value}");
    }
}

#[test]
fn every_experiment_runs_end_to_end_on_the_tiny_preset() {
    if !common::fashion_mnist_present("every_experiment_runs_end_to_end_on_the_tiny_preset") {
        return;
    }
    let scratch = common::temp_dir("experiments");
    let root = scratch.path();
    let data = load_data(&RunConfig::preset(Preset::Tiny), true).expect("Fashion-MNIST");
    let harness = Harness {
        ctx: GpuContext::new().expect("a GPU adapter (lavapipe on CPU-only machines)"),
        root: root.to_path_buf(),
        data,
    };

    // temperature: trains the teachers the others reuse.
    let config = harness.config(Experiment::Temperature);
    let results = harness.run(&config, None).unwrap();
    let teachers = root.join("temperature");
    let table = results.experiment.as_ref().unwrap();
    let sweep = &config.experiments.temperature_sweep;
    assert_eq!(table.name(), "temperature");
    assert_eq!(
        table.rows.len(),
        2 + sweep.temperatures.len() * sweep.alphas.len()
    );
    assert_learned(&column(table, "test accuracy"), "temperature");
    let chart = table.chart.as_ref().unwrap();
    assert_eq!(chart.series.len(), sweep.alphas.len());
    assert!(results.model(Role::StudentLogitMse).is_some());
    check_comparisons(&results, &against_first(table.rows.len()));

    // compression: ensemble-labeled students never see a true label.
    let config = harness.config(Experiment::Compression);
    let results = harness.run(&config, Some(&teachers)).unwrap();
    let table = results.experiment.as_ref().unwrap();
    let extra = &config.experiments.compression.extra_examples;
    assert_eq!(table.rows.len(), 2 + extra.len());
    let seen = column(table, "true labels seen");
    assert_eq!(seen[0], Some(harness.data.train.n as f64));
    assert!(seen[1..].iter().all(|&s| s == Some(0.0)), "{seen:?}");
    assert_learned(&column(table, "test accuracy"), "compression");
    check_comparisons(&results, &against_first(table.rows.len()));
    let students = results
        .models
        .iter()
        .filter(|m| m.role.is_student())
        .count();
    assert_eq!(students, table.rows.len(), "one model per row");

    // munge
    let config = harness.config(Experiment::Munge);
    let results = harness.run(&config, Some(&teachers)).unwrap();
    let table = results.experiment.as_ref().unwrap();
    assert_eq!(
        table.rows.len(),
        2 + config.experiments.munge.multipliers.len()
    );
    assert_learned(&column(table, "test accuracy"), "munge");
    check_comparisons(&results, &against_first(table.rows.len()));

    // omit-class: the bias can only raise the omitted class's recall.
    let config = harness.config(Experiment::OmitClass);
    let results = harness.run(&config, Some(&teachers)).unwrap();
    let table = results.experiment.as_ref().unwrap();
    assert_eq!(table.rows.len(), 5);
    check_comparisons(&results, &[None, Some(0), Some(1), Some(0), Some(3)]);
    let on_class = column(table, "test accuracy on Dress");
    let shift = column(table, "bias shift");
    assert!(shift[3].unwrap() >= 0.0 && shift[4].unwrap() >= 0.0);
    assert!(
        on_class[4].unwrap() >= on_class[2].unwrap(),
        "raising the bias lowered the class's recall: {on_class:?}"
    );
    let ExperimentRows::OmitClass { class_name, rows } = &table.rows else {
        panic!("omit-class rows: {:?}", table.rows);
    };
    assert_eq!(class_name, "Dress");
    assert_eq!(rows[4].student, "student-omit-kd-bias");
    assert!(
        results
            .models
            .iter()
            .any(|m| m.name == "student-omit-kd-bias" && m.checkpoint.is_some())
    );

    // small-data
    let config = harness.config(Experiment::SmallData);
    let results = harness.run(&config, Some(&teachers)).unwrap();
    let table = results.experiment.as_ref().unwrap();
    assert_eq!(table.rows.len(), 3);
    check_comparisons(&results, &[Some(1), None, Some(1)]);
    let epochs = column(table, "epochs");
    assert_eq!(
        epochs[1],
        config.experiments.small_data.epochs.map(|e| e as f64)
    );
    let ExperimentRows::SmallData(rows) = &table.rows else {
        panic!("small-data rows: {:?}", table.rows);
    };
    assert!(rows[2].transfer_set.contains("soft targets"));

    // Teachers from a run with other settings are refused, naming what differs.
    let mut config = harness.config(Experiment::Temperature);
    config.seed += 1;
    config.out_dir = Some(root.join("refused"));
    let err = harness.run(&config, Some(&teachers)).err().unwrap();
    let text = format!("{err:#}");
    assert!(
        text.contains("config.toml") && text.contains("seed"),
        "{text}"
    );
}
