//! End to end: a run stopped after its first teacher, then resumed, gives the numbers of the
//! uninterrupted run (the `tiny` preset, on whatever adapter the machine has). Without the
//! Fashion-MNIST files it skips, saying so, except under CI, where it fails.

mod common;

use std::path::Path;

use dk_distill::config::{Preset, RunConfig};
use dk_distill::data::{StudyData, load_data};
use dk_distill::driver::{RunOptions, run_study};
use dk_tensor::GpuContext;
use serde_json::Value;

/// Keys of results.json that hold times, dates or paths: they differ between any two runs.
const UNREPEATABLE: [&str; 14] = [
    "seconds",
    "train_seconds",
    "duration_s",
    "actual_s",
    "estimated_s",
    "total_s",
    "started_utc",
    "finished_utc",
    "latency_batch1_ms",
    "throughput_per_s",
    "time_estimate",
    "serving",
    "out_dir",
    "dir",
];

/// `value` without the [`UNREPEATABLE`] keys, at any depth.
fn repeatable(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(key, _)| !UNREPEATABLE.contains(&key.as_str()))
                .map(|(key, value)| (key, repeatable(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(repeatable).collect()),
        other => other,
    }
}

fn results_of(run: &Path) -> Value {
    let text = std::fs::read_to_string(run.join("results.json")).expect("results.json");
    repeatable(serde_json::from_str(&text).expect("results.json parses"))
}

fn run(ctx: &GpuContext, config: &RunConfig, data: &StudyData, root: &Path, resume: bool) {
    let options = RunOptions {
        cache_dir: Some(root.join("cache")),
        quiet: true,
        resume,
        ..RunOptions::default()
    };
    run_study(ctx, config, data, &options).expect("the tiny study");
}

/// Leaves in `run` what a kill during the second teacher leaves: the settings, the data
/// fingerprint, the first teacher's checkpoint and record.
fn stop_after_first_teacher(run: &Path) {
    for entry in std::fs::read_dir(run).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let kept = name == "config.toml"
            || name == "teachers-training-data.txt"
            || name.starts_with("teacher-1.");
        if !kept && path.is_file() {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn a_resumed_run_gives_the_uninterrupted_numbers() {
    if !common::fashion_mnist_present("a_resumed_run_gives_the_uninterrupted_numbers") {
        return;
    }
    let scratch = common::temp_dir("resume");
    let root = scratch.path();
    let mut config = RunConfig::preset(Preset::Tiny);
    config.distill.temperature = Some(4.0);
    config.distill.alpha = Some(0.5);
    config.distill.logit_mse = false;
    config.out_dir = Some(root.join("whole"));
    let data = load_data(&config, true).expect("loading Fashion-MNIST");
    let ctx = GpuContext::new().expect("a GPU adapter (lavapipe on CPU-only machines)");
    run(&ctx, &config, &data, root, false);
    let whole = results_of(&root.join("whole"));

    let stopped = root.join("stopped");
    config.out_dir = Some(stopped.clone());
    run(&ctx, &config, &data, root, false);
    stop_after_first_teacher(&stopped);
    let first_teacher_record = std::fs::read(stopped.join("teacher-1.trained.json")).unwrap();
    run(&ctx, &config, &data, root, true);

    assert_eq!(
        std::fs::read(stopped.join("teacher-1.trained.json")).unwrap(),
        first_teacher_record,
        "the finished teacher was taken over, not trained again"
    );
    assert!(
        stopped.join("teacher-2.trained.json").is_file(),
        "the missing teacher was trained"
    );
    assert_eq!(results_of(&stopped), whole, "resumed against uninterrupted");
}
