//! End to end: the `tiny` preset through the library API into a temporary folder, on
//! whatever adapter the machine has (lavapipe in CI). Without the Fashion-MNIST files
//! (`apt-get install dataset-fashion-mnist`) it skips, saying so, except under CI, where it
//! fails.

mod common;

use dk_distill::config::{Preset, RunConfig};
use dk_distill::data::load_data;
use dk_distill::driver::{RunOptions, run_study};
use dk_distill::results::{Results, Role};
use dk_tensor::GpuContext;

#[test]
fn tiny_preset_runs_end_to_end() {
    if !common::fashion_mnist_present("tiny_preset_runs_end_to_end") {
        return;
    }
    let scratch = common::temp_dir("tiny");
    let root = scratch.path();
    let mut config = RunConfig::preset(Preset::Tiny);
    config.out_dir = Some(root.join("run"));
    let data = load_data(&config, true).expect("loading Fashion-MNIST");
    let ctx = GpuContext::new().expect("a GPU adapter (lavapipe on CPU-only machines)");
    let options = RunOptions {
        cache_dir: Some(root.join("cache")),
        teachers_from: None,
        quiet: true,
        ..RunOptions::default()
    };
    let outcome = run_study(&ctx, &config, &data, &options).expect("the tiny study");
    let run = outcome.run_dir;

    let results = Results::read(&run.join("results.json")).expect("results.json parses");
    assert_eq!(
        results, outcome.results,
        "results.json holds what the run returned"
    );
    for role in [
        Role::Teacher,
        Role::Ensemble,
        Role::StudentHard,
        Role::StudentKd,
        Role::StudentLogitMse,
        Role::StudentKdBestTeacher,
    ] {
        assert!(
            results.model(role).is_some(),
            "results.json lacks role {role:?}"
        );
    }
    let teachers = results
        .models
        .iter()
        .filter(|m| m.role == Role::Teacher)
        .count();
    assert_eq!(teachers, config.teachers);
    for model in &results.models {
        let test = &model.test;
        assert_eq!(
            test.examples, data.test.n,
            "{} covers the whole test set",
            model.name
        );
        assert!(
            (0.0..=1.0).contains(&test.accuracy) && test.nll.is_finite(),
            "{}: accuracy {} nll {}",
            model.name,
            test.accuracy,
            test.nll
        );
        // Ten classes: anything trained must beat guessing clearly.
        assert!(
            test.accuracy > 0.3,
            "{} learned nothing: {}",
            model.name,
            test.accuracy
        );
        assert!(
            model.params > 0 && model.flops_per_example > 0,
            "{}",
            model.name
        );
        let serving = model.serving.as_ref().expect("serving cost measured");
        assert!(serving.latency_batch1_ms > 0.0 && serving.throughput_per_s > 0.0);
        if let Some(checkpoint) = &model.checkpoint {
            assert!(run.join(checkpoint).is_file(), "{checkpoint} written");
        }
    }
    check_comparisons(&results);
    check_measured_time(&results);
    assert!(
        results.models.iter().all(|m| m.repeats.is_none()),
        "one repeat: no repeat statistics"
    );
    assert_eq!(
        results.grid.iter().filter(|p| p.chosen).count(),
        1,
        "exactly one (T, alpha) chosen"
    );
    assert!(results.dark_knowledge.is_some());
    assert!(run.join("report.html").is_file(), "report.html written");
    assert!(run.join("config.toml").is_file(), "config.toml written");
    assert!(
        run.join("teachers-training-data.txt").is_file(),
        "the teachers' data fingerprint is written"
    );
    assert!(
        !run.join("dk-distill.lock").exists(),
        "the lock goes with the run"
    );
    // Every distilled candidate was saved as it finished, not only the chosen one.
    for point in &results.grid {
        let file = format!(
            "student-kd_T={}_a={}.safetensors",
            point.temperature, point.alpha
        );
        assert!(run.join(&file).is_file(), "{file} written");
    }
}

/// Every student but student-hard carries a consistent paired comparison with it.
/// The students phase measured beside its estimate counts every student trained, as the
/// estimate does: the kept ones and the (T, alpha) candidate that was not kept.
fn check_measured_time(results: &Results) {
    let estimate = results.run.time_estimate.as_ref().expect("a time estimate");
    let students = estimate
        .phases
        .iter()
        .find(|p| p.name == "students")
        .expect("a students phase");
    let kept: f64 = results
        .models
        .iter()
        .filter(|m| m.role.is_student())
        .filter_map(|m| m.train_seconds)
        .sum();
    let measured = students.actual_s.expect("the students' measured time");
    assert!(
        measured > kept,
        "students measured at {measured} s, no more than the {kept} s of the kept ones"
    );
    assert_eq!(students.models, 5, "4 kept students and 1 other (T, alpha)");
}

fn check_comparisons(results: &Results) {
    let hard = results.model(Role::StudentHard).expect("student-hard");
    assert!(
        hard.versus_hard.is_none(),
        "the baseline is not compared with itself"
    );
    for model in results.models.iter().filter(|m| m.role.is_student()) {
        if model.role == Role::StudentHard {
            continue;
        }
        let versus = model
            .versus_hard
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no comparison with student-hard", model.name));
        assert_eq!(versus.baseline, "student-hard");
        assert!(
            versus.ci_low <= versus.difference && versus.difference <= versus.ci_high,
            "{}: {versus:?}",
            model.name
        );
        assert!((0.0..=1.0).contains(&versus.p_value), "{versus:?}");
        let accuracy_gap = model.test.accuracy - hard.test.accuracy;
        assert!(
            (versus.difference - accuracy_gap).abs() < 1e-9,
            "{}: difference {} but accuracies differ by {accuracy_gap}",
            model.name,
            versus.difference
        );
        let n = model.test.examples;
        assert!(versus.only_this_right + versus.only_baseline_right <= n);
    }
}

/// `repeats = 2` on a slimmed tiny study (one teacher, one (T, alpha), no logit matching or
/// best-teacher student): each student reports both test accuracies, the first being its
/// own, with their mean and sd. The distilled students also learn from unlabeled images of
/// the pool, as many as one epoch within the hard-label student's steps holds.
#[test]
fn tiny_preset_with_two_repeats() {
    if !common::fashion_mnist_present("tiny_preset_with_two_repeats") {
        return;
    }
    let scratch = common::temp_dir("tiny");
    let root = scratch.path();
    let mut config = RunConfig::preset(Preset::Tiny);
    config.out_dir = Some(root.join("run"));
    config.repeats = 2;
    config.teachers = 1;
    config.distill.temperature = Some(4.0);
    config.distill.alpha = Some(0.5);
    config.distill.logit_mse = false;
    config.distill.best_teacher = false;
    config.distill.unlabeled = 1_500;
    assert_eq!(config.problems(), Vec::<String>::new());
    let data = load_data(&config, true).expect("loading Fashion-MNIST");
    let ctx = GpuContext::new().expect("a GPU adapter (lavapipe on CPU-only machines)");
    let options = RunOptions {
        cache_dir: Some(root.join("cache")),
        teachers_from: None,
        quiet: true,
        ..RunOptions::default()
    };
    let outcome = run_study(&ctx, &config, &data, &options).expect("the tiny study, twice");
    let results = outcome.results;
    for role in [Role::StudentHard, Role::StudentKd] {
        let model = results.model(role).expect("both students");
        let repeats = model
            .repeats
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no repeat statistics", model.name));
        let accuracies = &repeats.test_accuracies;
        assert_eq!(accuracies.len(), 2, "{}", model.name);
        assert_eq!(
            accuracies[0], model.test.accuracy,
            "the first repeat is the model"
        );
        assert!(
            accuracies[1] > 0.3,
            "{}: repeat 2 learned nothing",
            model.name
        );
        let mean = (accuracies[0] + accuracies[1]) / 2.0;
        // Two values: sd = |a - b| / sqrt(2).
        let sd = (accuracies[0] - accuracies[1]).abs() / 2f64.sqrt();
        assert!((repeats.mean - mean).abs() < 1e-12 && (repeats.sd - sd).abs() < 1e-12);
    }
    for model in results.models.iter().filter(|m| !m.role.is_student()) {
        assert!(model.repeats.is_none(), "{} is trained once", model.name);
    }
    check_comparisons(&results);
    check_unlabeled(&results, data.train.n);
}

/// 1,500 labeled examples at batch 64: the hard-label student's two epochs of 23 steps
/// hold one epoch of 46 steps over 2,944 examples, so 1,444 of the 1,500 unlabeled asked.
fn check_unlabeled(results: &Results, labeled: usize) {
    assert_eq!((labeled, results.run.dataset.unlabeled), (1_500, 1_444));
    let hard = results.model(Role::StudentHard).unwrap();
    let kd = results.model(Role::StudentKd).unwrap();
    assert_eq!((hard.curve.len(), hard.train_steps), (2, Some(46)));
    assert_eq!((kd.curve.len(), kd.train_steps), (1, Some(46)));
}
