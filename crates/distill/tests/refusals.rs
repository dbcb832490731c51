//! Bad input to the `dk-distill` binary: each case ends with exit code 1 and one line
//! naming the flag, file or setting, before any training (most before the adapter is even
//! opened). The binary runs with `--preset tiny` and `--no-download`.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use dk_distill::data::idx::write;
use dk_distill::testutil::sample_results;

/// Runs the binary with `--preset tiny --no-download` and `args`; returns (exit code,
/// stderr). The data search never leaves `home` (no user cache, no data variable).
fn run(home: &Path, args: &[OsString]) -> (i32, String) {
    let (code, _, stderr) = run_with_stdout(home, args);
    (code, stderr)
}

/// [`run`], with stdout as well: (exit code, stdout, stderr).
fn run_with_stdout(home: &Path, args: &[OsString]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dk-distill"))
        .args(["--preset", "tiny", "--no-download"])
        .args(args)
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env_remove("DARKKNOWLEDGE_DATA")
        .current_dir(home)
        .output()
        .expect("running dk-distill");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn args(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

/// Asserts exit code 1 and a single stderr line `error: <expected...>`, before the plan.
fn assert_refused(home: &Path, list: Vec<OsString>, expected: &str) {
    let (code, stdout, stderr) = run_with_stdout(home, &list);
    assert!(
        !stdout.contains("plan ("),
        "{list:?}: refused after the plan: {stdout}"
    );
    assert_eq!(code, 1, "{list:?}: exit code {code}, stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("note:")).collect();
    assert_eq!(lines.len(), 1, "{list:?}: one line expected, got: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(expected),
        "{list:?}: expected `{expected}` in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn model_specs_with_absurd_sizes() {
    let scratch = common::temp_dir("refusals-specs");
    let home = scratch.path();
    for (spec, expected) in [
        (
            "4294967296x4294967296x4294967296-10",
            "teacher.spec: spec `4294967296x4294967296x4294967296-10`: token 1 `4294967296x4294967296x4294967296` is an input of more than 268435456 values per example",
        ),
        (
            "784-99999999999999999-10",
            "teacher.spec: spec `784-99999999999999999-10`: token 2 `99999999999999999` needs a Linear weight of shape [99999999999999999, 784], more than 268435456 values",
        ),
        (
            "784-99999999999-10",
            "token 2 `99999999999` needs a Linear weight of shape [99999999999, 784]",
        ),
    ] {
        assert_refused(home, args(&["--teacher-spec", spec]), expected);
    }
}

#[test]
fn sizes_and_seeds_past_their_bounds() {
    let scratch = common::temp_dir("refusals-sizes");
    let home = scratch.path();
    assert_refused(
        home,
        args(&[
            "--validation-size",
            "18446744073709551615",
            "--train-size",
            "1",
        ]),
        "invalid setting: data.validation_size = 18446744073709551615: expected at most 9223372036854775807",
    );
    assert_refused(
        home,
        args(&["--seed", "18446744073709551615"]),
        "invalid setting: seed = 18446744073709551615: expected at most 9223372036854775807 (config.toml holds signed 64-bit integers)",
    );
    for (toml, expected) in [
        (
            "[eval]\nece_bins = 100000000000000000\n",
            "invalid setting: eval.ece_bins = 100000000000000000: expected 1 to 1000 bins",
        ),
        (
            "[eval]\nthroughput_batch = 1000000000000\n",
            "invalid setting: eval.throughput_batch = 1000000000000: expected 1 to 65536",
        ),
        (
            "[experiments.munge]\nmultipliers = [100000000000000000]\n",
            "invalid setting: experiments.munge.multipliers contains 100000000000000000: 100000000000000000 x base_size 300 is more than 5000000 synthetic examples",
        ),
    ] {
        let file = home.join("settings.toml");
        std::fs::write(&file, toml).unwrap();
        let list = vec![OsString::from("--config"), file.into_os_string()];
        assert_refused(home, list, expected);
    }
}

#[cfg(unix)]
#[test]
fn paths_that_are_not_utf8() {
    use std::os::unix::ffi::OsStringExt;
    let scratch = common::temp_dir("refusals-utf8");
    let home = scratch.path();
    let odd = || OsString::from_vec(b"run-\xff".to_vec());
    for flag in ["--out", "--data-dir"] {
        let list = vec![OsString::from(flag), odd()];
        assert_refused(
            home,
            list,
            "the path is not valid UTF-8, which config.toml cannot record; use a UTF-8 name",
        );
    }
    assert!(!home.join(odd()).exists(), "nothing was created");
}

#[test]
fn out_protects_other_folders_and_earlier_runs() {
    let scratch = common::temp_dir("refusals-out");
    let home = scratch.path();
    let photos = home.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("holiday.jpg"), b"jpeg").unwrap();
    let list = vec![OsString::from("--out"), photos.clone().into_os_string()];
    assert_refused(
        home,
        list,
        &format!(
            "--out {}: the folder is not empty and is not a dk-distill run folder",
            photos.display()
        ),
    );
    let earlier = home.join("earlier");
    std::fs::create_dir_all(&earlier).unwrap();
    for (name, text) in [
        (
            "config.toml",
            "# Effective settings of this run (preset, then config file, then flags).\n",
        ),
        ("results.json", "{}"),
        ("report.html", "<html></html>"),
    ] {
        std::fs::write(earlier.join(name), text).unwrap();
    }
    let list = vec![OsString::from("--out"), earlier.clone().into_os_string()];
    assert_refused(
        home,
        list,
        &format!(
            "--out {}: holds an earlier run (config.toml, checkpoints, results); pass --overwrite to replace it",
            earlier.display()
        ),
    );
    // A live run holds the folder: the lock names it (this test's own pid is alive).
    std::fs::write(
        earlier.join("dk-distill.lock"),
        format!("pid {}\nstarted 2026-01-01T00:00:00Z\n", std::process::id()),
    )
    .unwrap();
    let list = vec![
        OsString::from("--out"),
        earlier.clone().into_os_string(),
        OsString::from("--overwrite"),
    ];
    assert_refused(
        home,
        list,
        &format!(
            "another run (pid {}, started 2026-01-01T00:00:00Z) is using this folder",
            std::process::id()
        ),
    );
    for name in ["config.toml", "results.json", "report.html"] {
        assert!(earlier.join(name).is_file(), "{name} untouched");
    }
}

#[test]
fn report_from_results_with_absurd_values() {
    let scratch = common::temp_dir("refusals-report");
    let home = scratch.path();
    let path = home.join("results.json");
    let write_results = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value = serde_json::to_value(sample_results()).unwrap();
        edit(&mut value);
        std::fs::write(&path, serde_json::to_string(&value).unwrap()).unwrap();
    };
    let list = || {
        vec![
            OsString::from("--report-from"),
            path.clone().into_os_string(),
        ]
    };
    write_results(&|v| {
        v["dark_knowledge"]["height"] = (1u64 << 32).into();
        v["dark_knowledge"]["width"] = (1u64 << 32).into();
    });
    assert_refused(
        home,
        list(),
        "results.json: dark_knowledge.height = 4294967296: expected at most 4096",
    );
    for (latency, shown) in [(1.7e308, "1.7e308"), (5e-324, "5e-324")] {
        write_results(&|v| {
            v["models"][0]["serving"]["latency_batch1_ms"] = latency.into();
        });
        assert_refused(
            home,
            list(),
            &format!("models[0].serving.latency_batch1_ms = {shown}: expected a time between"),
        );
    }
    assert!(!home.join("report.html").exists());
}

/// A Fashion-MNIST-shaped folder of `train` and `test` images, each (count, side): grey,
/// square, labels cycling through 10 classes.
fn idx_folder(dir: &Path, train: (usize, usize), test: (usize, usize)) {
    std::fs::create_dir_all(dir).unwrap();
    let labels = |n: usize| (0..n).map(|i| (i % 10) as u8).collect::<Vec<u8>>();
    let images =
        |(n, side): (usize, usize)| write::images(n, side, side, &vec![7; n * side * side]);
    let files = [
        ("train-images-idx3-ubyte", images(train)),
        ("train-labels-idx1-ubyte", write::labels(&labels(train.0))),
        ("t10k-images-idx3-ubyte", images(test)),
        ("t10k-labels-idx1-ubyte", write::labels(&labels(test.0))),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn a_test_set_without_examples_is_refused_before_training() {
    let scratch = common::temp_dir("refusals-empty-test");
    let home = scratch.path();
    let data = home.join("data");
    idx_folder(&data, (60, 28), (0, 28));
    let out = home.join("run");
    let list = vec![
        OsString::from("--data-dir"),
        data.clone().into_os_string(),
        OsString::from("--out"),
        out.clone().into_os_string(),
        OsString::from("--validation-size"),
        OsString::from("10"),
        OsString::from("--train-size"),
        OsString::from("50"),
        OsString::from("--test-size"),
        OsString::from("1"),
    ];
    let (code, stderr) = run(home, &list);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {}: the Fashion-MNIST test set has 0 examples; need at least 1",
            data.display()
        )),
        "{stderr}"
    );
    assert!(!out.exists(), "no run folder for a refused run");
}

#[test]
fn settings_the_data_refutes_are_refused_before_the_plan() {
    let scratch = common::temp_dir("refusals-data");
    let home = scratch.path();
    let data = home.join("data");
    idx_folder(&data, (60, 28), (20, 28));
    let with_data = |extra: &[&str]| {
        let mut list = vec![OsString::from("--data-dir"), data.clone().into_os_string()];
        list.extend(extra.iter().map(OsString::from));
        list.extend(args(&[
            "--validation-size",
            "10",
            "--train-size",
            "50",
            "--test-size",
            "20",
        ]));
        list
    };
    assert_refused(
        home,
        with_data(&["--max-shift", "28"]),
        "teacher.max_shift (--max-shift) = 28: expected fewer pixels than the images' 28x28",
    );
    assert_refused(
        home,
        with_data(&["--student-spec", "c8k3-hello-10"]),
        "student.spec: spec `c8k3-hello-10`: token 2 `hello` is not a layer",
    );
    assert_refused(
        home,
        with_data(&["--teacher-spec", "1x28x28-c8k99-10"]),
        "token 2 `c8k99` has a 99x99 kernel, larger than its 28x28 input planes",
    );
    for (toml, experiment, expected) in [
        (
            "[experiments.omit_class]\nclass = \"Spaceship\"\n",
            "omit-class",
            "experiments.omit_class.class = \"Spaceship\": expected a label index below 10",
        ),
        (
            "[experiments.small_data]\nfraction = 1e-9\n",
            "small-data",
            "experiments.small_data.fraction = 0.000000001: 0 of 50 training examples is less than one batch",
        ),
    ] {
        let file = home.join("experiment.toml");
        std::fs::write(&file, toml).unwrap();
        let file = file.to_str().unwrap();
        assert_refused(
            home,
            with_data(&["--config", file, "--experiment", experiment]),
            expected,
        );
    }
    let missing = home.join("no-such-run");
    let mut list = with_data(&[]);
    list.extend([OsString::from("--teachers-from"), missing.clone().into()]);
    assert_refused(
        home,
        list,
        &format!(
            "--teachers-from {}: cannot read {}",
            missing.display(),
            missing.join("config.toml").display()
        ),
    );
    let file = home.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let mut list = with_data(&[]);
    list.extend([OsString::from("--out"), file.join("run").into()]);
    assert_refused(
        home,
        list,
        &format!(
            "{} is a file, so no folder can be made under it",
            file.display()
        ),
    );
}

#[test]
fn data_folders_that_are_missing_or_mixed_are_refused() {
    let scratch = common::temp_dir("refusals-folders");
    let home = scratch.path();
    let missing = home.join("no-such-folder");
    let list = vec![OsString::from("--data-dir"), missing.clone().into()];
    assert_refused(
        home,
        list,
        &format!("--data-dir {} does not exist", missing.display()),
    );
    let mixed = home.join("mixed");
    idx_folder(&mixed, (60, 20), (20, 28));
    let list = vec![OsString::from("--data-dir"), mixed.clone().into()];
    assert_refused(
        home,
        list,
        &format!(
            "{}: the test images are 28x28, but the training images ({}) are 20x20; both sets need one image size",
            mixed.join("t10k-images-idx3-ubyte").display(),
            mixed.join("train-images-idx3-ubyte").display()
        ),
    );
}

#[test]
fn resume_refuses_flags_that_change_the_settings() {
    let scratch = common::temp_dir("refusals-resume");
    let home = scratch.path();
    let run = home.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let printed = Command::new(env!("CARGO_BIN_EXE_dk-distill"))
        .args(["--preset", "tiny", "--print-config"])
        .output()
        .expect("running dk-distill");
    std::fs::write(run.join("config.toml"), &printed.stdout).unwrap();
    let list = vec![
        OsString::from("--resume"),
        run.clone().into(),
        OsString::from("--teacher-spec"),
        OsString::from("784-64-10"),
    ];
    assert_refused(
        home,
        list,
        &format!(
            "--resume {}: the flags given change the run's settings, and the models it finished would be trained again",
            run.display()
        ),
    );
    std::fs::write(run.join("config.toml"), "").unwrap();
    let list = vec![OsString::from("--resume"), run.clone().into()];
    assert_refused(
        home,
        list,
        &format!(
            "--resume {}: no config.toml of a dk-distill run there",
            run.display()
        ),
    );
}
