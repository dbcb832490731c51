//! `dk-distill`: the command line of the distillation study (`cargo xtask distill`).
//!
//! Resolves the settings (preset, `--config FILE.toml`, flags), finds or downloads
//! Fashion-MNIST, reads and splits it, and states the plan. The training part (teachers,
//! soft targets, students, evaluation on the GPU) plugs in where `train_and_report` stops.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use clap::Parser;

use dk_distill::config::{Overrides, RunConfig, effective_config_toml, load_config};
use dk_distill::data::Dataset;
use dk_distill::data::locate::{self, CurlFetch, DataFiles, FASHION_MNIST, Fetch, SearchEnv};
use dk_distill::data::split::{Split, subsample, train_validation_split};
use dk_distill::report::write_report;
use dk_distill::results::Results;
use dk_distill::run_dir::folder_timestamp;

/// Train a teacher ensemble on Fashion-MNIST, distill small students from it, evaluate
/// everything and write results.json and report.html into the run folder.
///
/// Settings come from the preset, then --config FILE.toml, then the flags below.
#[derive(Debug, Parser)]
#[command(name = "dk-distill", version)]
struct Cli {
    /// TOML file of settings: any subset of the keys of a run folder's config.toml
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    overrides: Overrides,

    /// Print the effective settings as TOML and exit
    #[arg(long)]
    print_config: bool,

    /// Never download the data; fail with instructions when it is not found
    #[arg(long)]
    no_download: bool,

    /// Render report.html from an existing results.json (written next to it) and exit
    #[arg(long, value_name = "RESULTS_JSON")]
    report_from: Option<PathBuf>,
}

/// Stands in for the downloader under `--no-download`.
struct NoDownload;

impl Fetch for NoDownload {
    fn fetch(&self, _: &str, _: &std::path::Path, _: u64) -> Result<(), String> {
        Err("downloads disabled by --no-download".into())
    }
}

/// The data of a run, split and ready for training.
struct RunData {
    files: DataFiles,
    train: Dataset,
    validation: Dataset,
    test: Dataset,
}

fn load_data(config: &RunConfig, no_download: bool) -> Result<RunData> {
    let env = SearchEnv::from_process();
    let fetcher: &dyn Fetch = if no_download { &NoDownload } else { &CurlFetch };
    let files =
        locate::locate_or_download(config.data.dir.as_deref(), &env, &FASHION_MNIST, fetcher)?;
    let (full_train, full_test) = files.load(&FASHION_MNIST)?;
    let data = &config.data;
    let Split { train, validation } = train_validation_split(
        &full_train.labels,
        data.validation_size,
        data.train_size,
        data.stratified,
        config.seed,
    )
    .context("splitting the training set")?;
    let all_test: Vec<usize> = (0..full_test.n).collect();
    let test_indices = match data.test_size {
        Some(size) if size > full_test.n => {
            bail!(
                "data.test_size = {size}, but the test set has only {} examples",
                full_test.n
            )
        }
        Some(size) => subsample(
            &all_test,
            &full_test.labels,
            size,
            data.stratified,
            config.seed,
        ),
        None => all_test,
    };
    Ok(RunData {
        train: full_train.select(&train),
        validation: full_train.select(&validation),
        test: full_test.select(&test_indices),
        files,
    })
}

fn print_plan(config: &RunConfig, data: &RunData) {
    let train = &data.train;
    println!(
        "{} from {} ({}): train {}, validation {}, test {} images of {}x{}, {} classes",
        FASHION_MNIST.name,
        data.files.dir.display(),
        data.files.origin,
        train.n,
        data.validation.n,
        data.test.n,
        train.height,
        train.width,
        train.classes
    );
    let out = config
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(folder_timestamp(SystemTime::now())));
    println!(
        "plan (preset {}, seed {}):",
        config.preset.name(),
        config.seed
    );
    println!(
        "  teachers: {} x {} for {} epochs (shift +-{} px, dropout {}/{})",
        config.teachers,
        config.teacher.spec,
        config.teacher.epochs,
        config.teacher.max_shift,
        config.teacher.dropout_input,
        config.teacher.dropout_hidden
    );
    let candidates = config.distill.candidates();
    let settings: Vec<String> = candidates
        .iter()
        .map(|(t, a)| format!("T={t} alpha={a}"))
        .collect();
    println!(
        "  students: {} for {} epochs: hard labels, distilled ({}){}{}",
        config.student.spec,
        config.student.epochs,
        settings.join(", "),
        if config.distill.logit_mse {
            ", logit MSE"
        } else {
            ""
        },
        if config.distill.best_teacher {
            ", distilled from the best teacher"
        } else {
            ""
        },
    );
    println!("  output: {}", out.display());
}

fn train_and_report(config: &RunConfig, data: &RunData) -> Result<()> {
    print_plan(config, data);
    bail!(
        "the training driver is not built yet: settings and data are valid, but teachers and students cannot be trained by this build"
    )
}

fn run(cli: Cli) -> Result<()> {
    if let Some(results_path) = &cli.report_from {
        let results = Results::read(results_path)?;
        let report = results_path.with_file_name("report.html");
        write_report(&report, &results)
            .with_context(|| format!("{}: cannot write", report.display()))?;
        println!("wrote {}", report.display());
        return Ok(());
    }
    let config = load_config(cli.config.as_deref(), &cli.overrides)?;
    config.validate()?;
    if cli.print_config {
        print!("{}", effective_config_toml(&config));
        return Ok(());
    }
    let data = load_data(&config, cli.no_download)?;
    train_and_report(&config, &data)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the context chain on one line; no backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
