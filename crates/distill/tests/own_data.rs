//! End to end on data sets other than Fashion-MNIST, made up here so nothing is downloaded:
//! a CSV file of Gaussian blobs (`--dataset csv`) and a CIFAR-10-format folder of
//! class-coloured images (`--dataset cifar10`), each through the `tiny` preset, with more
//! epochs on these few examples, on whatever adapter the machine has (lavapipe in CI).

mod common;

use std::fmt::Write as _;
use std::path::Path;

use clap::Parser;
use dk_distill::config::{Overrides, RunConfig, load_config};
use dk_distill::data::cifar::{IMAGE_BYTES, META_FILE, TEST_FILE, TRAIN_FILES, encode_batch};
use dk_distill::data::{StudyData, load_data};
use dk_distill::driver::{RunOptions, run_study};
use dk_distill::results::{Results, Role};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    overrides: Overrides,
}

/// The settings the command line would give for these flags.
fn config_from_flags(flags: &[&str]) -> RunConfig {
    let cli = Cli::try_parse_from(std::iter::once("dk-distill").chain(flags.iter().copied()))
        .expect("valid flags");
    let config = load_config(None, &cli.overrides).expect("settings");
    config.validate().expect("valid settings");
    config
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Runs the study and checks what every run must hold (the ensemble and the distilled
/// student well above chance); returns the results.
fn run_and_check(config: &RunConfig, data: &StudyData, root: &Path, classes: usize) -> Results {
    let ctx = dk_tensor::testing::ctx();
    let options = RunOptions {
        cache_dir: Some(root.join("cache")),
        quiet: true,
        ..RunOptions::default()
    };
    let outcome = run_study(ctx, config, data, &options).expect("the study");
    let results = Results::read(&outcome.run_dir.join("results.json")).expect("results.json");
    assert_eq!(results.run.dataset.name, data.name);
    assert_eq!(results.run.dataset.class_names.len(), classes);
    assert!(outcome.run_dir.join("report.html").is_file());
    let chance = 1.0 / classes as f64;
    for role in [Role::Ensemble, Role::StudentKd] {
        let model = results.model(role).expect("model of the role");
        assert_eq!(model.test.examples, data.test.n);
        // At least half of the way from chance to perfect.
        assert!(
            model.test.accuracy > chance + 0.5 * (1.0 - chance),
            "{}: test accuracy {:.3} is too close to chance {chance:.3}",
            model.name,
            model.test.accuracy
        );
    }
    results
}

#[test]
fn csv_blobs_run_end_to_end() {
    let scratch = common::temp_dir("csv");
    let root = scratch.path();
    // Three Gaussian blobs in 5 dimensions, 100 rows each, with columns on very different
    // scales (standardisation must cope) and text labels in the middle column.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let names = ["north", "east", "south"];
    let centres = [
        [3.0, 0.0, 0.0, 1.0, -2.0],
        [0.0, 3.0, 0.0, -2.0, 1.0],
        [0.0, 0.0, 3.0, 1.0, 1.0],
    ];
    let scales = [1.0, 100.0, 0.01, 1.0, 1000.0];
    let mut text = String::from("a,b,label,c,d,e\n");
    for row in 0..300 {
        let class = row % 3;
        let values: Vec<f64> = (0..5)
            .map(|d| (centres[class][d] + normal(&mut rng)) * scales[d] + 7.0)
            .collect();
        writeln!(
            text,
            "{},{},{},{},{},{}",
            values[0], values[1], names[class], values[2], values[3], values[4]
        )
        .unwrap();
    }
    let path = root.join("blobs.csv");
    std::fs::write(&path, text).unwrap();

    let mut config = config_from_flags(&[
        "--preset",
        "tiny",
        "--dataset",
        "csv",
        "--csv-train",
        path.to_str().unwrap(),
        "--validation-size",
        "60",
        "--train-size",
        "160",
        "--teacher-spec",
        "5-32-3",
        "--student-spec",
        "5-8-3",
        "--epochs",
        "12",
        "--batch-size",
        "16",
        "--out",
        root.join("run").to_str().unwrap(),
    ]);
    config.data.test_size = None;
    let data = load_data(&config, true).expect("loading the CSV file");
    assert_eq!(data.name, "CSV blobs.csv");
    // 300 rows: 60 held out for the test set, 60 for validation, 160 trained on, 20 left.
    assert_eq!(
        (data.train.n, data.validation.n, data.test.n, data.pool.n),
        (160, 60, 60, 20)
    );
    assert_eq!(data.train.class_names, vec!["east", "north", "south"]);
    assert!(data.train.is_tabular() && data.pool.is_tabular());
    // Standardised with the training split's statistics: mean 0, variance 1 there.
    let scaling = data.feature_scaling.as_ref().expect("fitted scaling");
    assert!(scaling.std[4] > 100.0, "column e is on a large scale");
    let train = data.train.to_f32();
    for column in 0..5 {
        let values: Vec<f64> = train
            .iter()
            .skip(column)
            .step_by(5)
            .map(|&v| f64::from(v))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        assert!(
            mean.abs() < 1e-4 && (variance - 1.0).abs() < 1e-3,
            "column {column}: {mean} {variance}"
        );
    }

    let results = run_and_check(&config, &data, root, 3);
    assert!(results.run.dataset.name.contains("blobs.csv"));
    assert_eq!(
        (results.run.dataset.height, results.run.dataset.width),
        (1, 5)
    );
    let dark = results.dark_knowledge.as_ref().expect("dark knowledge");
    assert!(dark.image.is_empty(), "tabular data has no picture");
}

/// Class `c`'s colour: distinct red, green and blue levels per class.
fn class_colour(class: usize) -> [f64; 3] {
    let level = |k: usize| 40.0 + 170.0 * ((class * k + class / 3) % 4) as f64 / 3.0;
    [level(1), level(2), level(3)]
}

/// `count` 3x32x32 images, each its class's colour plus noise, labels cycling through 10.
fn coloured_images(count: usize, rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::with_capacity(count * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(count);
    for index in 0..count {
        let class = index % 10;
        let colour = class_colour(class);
        for plane in colour {
            for _ in 0..32 * 32 {
                pixels.push((plane + 25.0 * normal(rng)).clamp(0.0, 255.0) as u8);
            }
        }
        labels.push(class as u8);
    }
    (pixels, labels)
}

#[test]
fn cifar_format_folder_runs_end_to_end() {
    let scratch = common::temp_dir("cifar");
    let root = scratch.path();
    let folder = root.join("data").join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for name in TRAIN_FILES {
        let (pixels, labels) = coloured_images(60, &mut rng);
        std::fs::write(folder.join(name), encode_batch(&pixels, &labels)).unwrap();
    }
    let (pixels, labels) = coloured_images(100, &mut rng);
    std::fs::write(folder.join(TEST_FILE), encode_batch(&pixels, &labels)).unwrap();
    let names = "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(folder.join(META_FILE), names).unwrap();

    let config = config_from_flags(&[
        "--preset",
        "tiny",
        "--dataset",
        "cifar10",
        "--data-dir",
        root.join("data").to_str().unwrap(),
        "--validation-size",
        "60",
        "--test-size",
        "100",
        "--teacher-spec",
        "3072-32-10",
        "--student-spec",
        "3072-16-10",
        "--epochs",
        "12",
        "--lr",
        "0.003",
        "--temperature",
        "2",
        "--batch-size",
        "16",
        "--max-shift",
        "2",
        "--out",
        root.join("run").to_str().unwrap(),
    ]);
    // One distilled student is enough here; the Fashion-MNIST test covers the other kinds.
    let mut config = config;
    config.data.train_size = None;
    config.distill.logit_mse = false;
    config.distill.best_teacher = false;
    let data = load_data(&config, true).expect("loading the CIFAR folder");
    assert_eq!(data.name, "CIFAR-10");
    assert_eq!(
        (data.train.n, data.validation.n, data.test.n, data.pool.n),
        (240, 60, 100, 0)
    );
    assert_eq!(data.train.example_shape(), [3, 32, 32]);
    assert_eq!(
        data.train.class_names[1], "car",
        "names from batches.meta.txt"
    );

    let results = run_and_check(&config, &data, root, 10);
    let dark = results.dark_knowledge.as_ref().expect("dark knowledge");
    assert_eq!(
        dark.image.len(),
        IMAGE_BYTES,
        "the colour picture, all three planes"
    );
}
