//! `dk-distill`: the command line of the distillation study (`cargo xtask distill`).
//!
//! Resolves the settings (preset, `--config FILE.toml`, flags; `quick` on a software adapter
//! unless a preset is named), finds or downloads the data set (Fashion-MNIST unless
//! `--dataset` says otherwise), reads and splits it, states the plan, runs the study
//! (`dk_distill::driver`) and prints the final table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use dk_nn::ModelSpec;
use dk_tensor::GpuContext;

use dk_distill::config::{
    Experiment, ModelConfig, Overrides, Preset, RunConfig, ScheduleKind, effective_config_toml,
    load_config,
};
use dk_distill::data::{StudyData, default_cache_dir, load_data};
use dk_distill::driver::experiments::experiment_summary;
use dk_distill::driver::experiments::small_data::small_share_epochs;
use dk_distill::driver::session::length_text;
use dk_distill::driver::specs::fit_preset_specs;
use dk_distill::driver::transfer::{transfer_epochs, unlabeled_count};
use dk_distill::driver::{RunOptions, run_study};
use dk_distill::export::{ExportArgs, export};
use dk_distill::report::{text_table, write_report};
use dk_distill::results::Results;
use dk_distill::results_check::check_for_report;
use dk_distill::run_dir::{check_out, folder_timestamp};

/// Train a teacher ensemble on a data set (Fashion-MNIST, MNIST, KMNIST, CIFAR-10 or your own
/// CSV file), distill small students from it, evaluate everything and write results.json and
/// report.html into the run folder.
///
/// Settings come from the preset, then --config FILE.toml, then the flags below.
/// `dk-distill export RUN_DIR` writes a trained model as an ONNX file instead.
#[derive(Debug, Parser)]
#[command(name = "dk-distill", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

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

    /// Load the teachers from an earlier run folder (same data and teacher settings)
    /// instead of training them
    #[arg(long, value_name = "RUN_DIR")]
    teachers_from: Option<PathBuf>,

    /// Let --out name an earlier run folder and replace its files
    #[arg(long)]
    overwrite: bool,

    /// Continue a run that was stopped: its settings (RUN_DIR/config.toml, then any flags
    /// given), its folder, and every model it finished with those settings
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "out", "overwrite"])]
    resume: Option<PathBuf>,

    /// Render report.html from an existing results.json (written next to it) and exit
    #[arg(long, value_name = "RESULTS_JSON")]
    report_from: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a trained model of a run folder as an ONNX file (see README "Deploying a student")
    Export(ExportArgs),
}

/// States what the run will do before it starts: the data, the models and their recipes,
/// the study or experiment, and the output folder.
fn plan_text(config: &RunConfig, data: &StudyData, max_binding_bytes: u64) -> String {
    let mut out = String::new();
    let (unlabeled, capped) = unlabeled_count(config, data, max_binding_bytes);
    data_plan(&mut out, data, unlabeled);
    if let Some(note) = capped {
        let _ = writeln!(out, "  {note}");
    }
    let folder = config
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(folder_timestamp(SystemTime::now())));
    let _ = writeln!(
        out,
        "plan (preset {}, seed {}):",
        config.preset.name(),
        config.seed
    );
    teacher_plan(&mut out, config, data);
    let train_n = data.train.n;
    match config.experiment {
        Some(experiment) => experiment_plan(&mut out, config, experiment, train_n),
        None => students_plan(&mut out, config, train_n, unlabeled),
    }
    let _ = writeln!(out, "  output: {}", folder.display());
    out
}

/// The data set's name, origin and split sizes, and how many of the pool's images the
/// distilled students learn from (`unlabeled`).
fn data_plan(out: &mut String, data: &StudyData, unlabeled: usize) {
    let _ = writeln!(
        out,
        "{} from {} ({}): train {}, validation {}, test {} {}, {} classes",
        data.name,
        data.source_dir.display(),
        data.origin,
        data.train.n,
        data.validation.n,
        data.test.n,
        data.example_description(),
        data.train.classes
    );
    if unlabeled > 0 {
        let _ = writeln!(
            out,
            "  {} more training examples, their labels withheld (the pool): {unlabeled} of them for the distilled students",
            data.pool.n
        );
    } else if data.pool.n > 0 {
        let _ = writeln!(
            out,
            "  {} more training examples unused (the pool)",
            data.pool.n
        );
    }
}

/// The teacher ensemble: size, spec, length, augmentation and recipe.
fn teacher_plan(out: &mut String, config: &RunConfig, data: &StudyData) {
    // Shifts move pixels; tabular features are never shifted.
    let shift = if data.train.is_tabular() {
        "no shift".to_string()
    } else {
        format!("shift +-{} px", config.teacher.max_shift)
    };
    let _ = writeln!(
        out,
        "  teachers: {} x {}, {} ({shift}, dropout {}/{}); {}",
        config.teachers,
        config.teacher.spec,
        length_for(&config.teacher, data.train.n, config.batch_size),
        config.teacher.dropout_input,
        config.teacher.dropout_hidden,
        recipe_text(&config.teacher)
    );
}

/// The experiment run instead of the standard study, with its student.
fn experiment_plan(out: &mut String, config: &RunConfig, experiment: Experiment, train_n: usize) {
    // Only small-data trains its students for a length of their own.
    let small_share = if experiment == Experiment::SmallData {
        format!(
            "; {} on the small share",
            small_share_epochs(config, train_n)
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "  experiment {}: {} ({}, {}{})",
        experiment.name(),
        experiment_summary(experiment),
        config.student.spec,
        length_for(&config.student, train_n, config.batch_size),
        small_share
    );
}

/// The standard study's students: spec, length, recipe, repeats and distillation settings.
fn students_plan(out: &mut String, config: &RunConfig, train_n: usize, unlabeled: usize) {
    let candidates = config.distill.candidates();
    let settings: Vec<String> = candidates
        .iter()
        .map(|(t, a)| format!("T={t} alpha={a}"))
        .collect();
    let _ = writeln!(
        out,
        "  students: {}, {}; {}",
        config.student.spec,
        length_for(&config.student, train_n, config.batch_size),
        recipe_text(&config.student)
    );
    if config.repeats > 1 {
        let _ = writeln!(
            out,
            "    each student {} times with seeds of its own (mean and sd)",
            config.repeats
        );
    }
    let _ = writeln!(
        out,
        "    hard labels, distilled ({}){}{}",
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
    if unlabeled > 0 {
        let (batch, transfer_n) = (config.batch_size, train_n + unlabeled);
        let epochs = transfer_epochs(&config.student, batch, train_n, transfer_n);
        let _ = writeln!(
            out,
            "    the distilled students learn from the training split and {unlabeled} unlabeled images, labeled by the ensemble: {} (at most the hard-label student's steps)",
            length_text(epochs, transfer_n, batch)
        );
    }
}

/// "12 epochs of 156 steps = 1872 steps" for `model` on `examples` training examples.
fn length_for(model: &ModelConfig, examples: usize, batch: usize) -> String {
    length_text(model.epochs_for(examples, batch), examples, batch)
}

/// The optimizer, schedule and stopping rule of `model`, in words.
fn recipe_text(model: &ModelConfig) -> String {
    let o = &model.optimizer;
    let s = &model.schedule;
    let schedule = match s.kind {
        ScheduleKind::Constant => "constant lr".to_string(),
        ScheduleKind::Step => format!("lr x{} every {} epochs", s.decay_factor, s.decay_epochs),
        // Only the cosine schedule warms up.
        ScheduleKind::Cosine => {
            format!("cosine lr to {}x, warm-up {}%", s.min_lr, 100.0 * s.warmup)
        }
    };
    let mut text =
        format!("{:?} lr {} wd {}, {schedule}", o.kind, o.lr, o.weight_decay).to_lowercase();
    if model.label_smoothing > 0.0 {
        text += &format!(", label smoothing {}", model.label_smoothing);
    }
    text += &match model.patience {
        Some(p) => format!(", early stop after {p} epochs without gain"),
        None => String::new(),
    };
    text + ", best validation epoch kept"
}

fn train_and_report(
    ctx: &GpuContext,
    config: &RunConfig,
    data: &StudyData,
    options: &RunOptions,
) -> Result<()> {
    let outcome = run_study(ctx, config, data, options)?;
    let results = &outcome.results;
    println!();
    print!("{}", dk_distill::report::summary_table(results));
    if let Some(table) = &results.experiment {
        println!();
        print!("{}", text_table(table));
    }
    if let Some(point) = results.grid.iter().find(|p| p.chosen) {
        println!(
            "distillation settings chosen on validation: T = {}, alpha = {} ({} candidate{})",
            point.temperature,
            point.alpha,
            results.grid.len(),
            if results.grid.len() == 1 { "" } else { "s" }
        );
    }
    for warning in &results.warnings {
        println!("warning: {warning}");
    }
    println!(
        "wrote {} (results.json, report.html, checkpoints) in {:.0} s",
        outcome.run_dir.display(),
        results.run.duration_s.unwrap_or(0.0)
    );
    Ok(())
}

/// What can be checked before the adapter is opened and the data read: the run folder,
/// and the specs that give their input shape (the others need the data's shape).
fn check_before_work(config: &RunConfig, overwrite: bool) -> Result<()> {
    if let Some(out) = &config.out_dir {
        check_out(out, overwrite)?;
    }
    for (role, spec) in [
        ("teacher", &config.teacher.spec),
        ("student", &config.student.spec),
    ] {
        let first = spec.trim().split('-').next().unwrap_or("");
        if !first.is_empty() && first.chars().all(|c| c.is_ascii_digit() || c == 'x') {
            ModelSpec::parse(spec).map_err(|err| anyhow!("{role}.spec: {err}"))?;
        }
    }
    Ok(())
}

/// True when the settings name a preset: the --preset flag or a `preset` key in the file.
fn preset_given(cli: &Cli) -> Result<bool> {
    if cli.overrides.preset.is_some() {
        return Ok(true);
    }
    Ok(config_file_table(cli)?.is_some_and(|table| table.contains_key("preset")))
}

/// Whether the students' training length (steps or epochs) was given by flag or in the
/// config file: then the preset's step budget is not fitted to a cheaper student or to a
/// smaller training set.
fn student_length_given(cli: &Cli) -> Result<bool> {
    let o = &cli.overrides;
    if [o.student_steps, o.student_epochs, o.steps, o.epochs]
        .iter()
        .any(Option::is_some)
    {
        return Ok(true);
    }
    let student = config_file_table(cli)?.and_then(|table| table.get("student").cloned());
    Ok(student
        .as_ref()
        .and_then(toml::Value::as_table)
        .is_some_and(|s| s.contains_key("steps") || s.contains_key("epochs")))
}

/// The `--config` file as a TOML table (`None` without one, or when it does not parse:
/// loading it reports that).
fn config_file_table(cli: &Cli) -> Result<Option<toml::Table>> {
    let Some(path) = &cli.config else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read config file", path.display()))?;
    Ok(text.parse::<toml::Table>().ok())
}

fn run(cli: Cli) -> Result<()> {
    if let Some(Command::Export(args)) = &cli.command {
        return export_model(args);
    }
    if let Some(results_path) = &cli.report_from {
        return render_report(results_path);
    }
    let cli = resume_settings(cli)?;
    let config = load_config(cli.config.as_deref(), &cli.overrides)?;
    config.validate()?;
    check_resume_keeps_settings(&cli, &config)?;
    if cli.print_config {
        print!("{}", effective_config_toml(&config));
        return Ok(());
    }
    check_before_work(&config, cli.overwrite || cli.resume.is_some())?;
    let ctx = GpuContext::new().context("opening a GPU adapter")?;
    let config = config_for_adapter(&ctx, &cli, config)?;
    let data = load_data(&config, cli.no_download)?;
    let mut config = config;
    let keep_student_length = student_length_given(&cli)?;
    for note in fit_preset_specs(&mut config, &data.train, keep_student_length) {
        println!("{note}");
    }
    let options = RunOptions {
        cache_dir: default_cache_dir(),
        teachers_from: cli.teachers_from,
        quiet: false,
        overwrite: cli.overwrite,
        resume: cli.resume.is_some(),
        plan: Some(plan_text(
            &config,
            &data,
            ctx.limits.max_storage_buffer_binding_size,
        )),
    };
    train_and_report(&ctx, &config, &data, &options)
}

/// `dk-distill export`: writes the ONNX file and says what it holds.
fn export_model(args: &ExportArgs) -> Result<()> {
    let done = export(args)?;
    println!(
        "wrote {} ({} bytes): model {} `{}`, input {}, output {}",
        done.path.display(),
        done.bytes,
        done.model,
        done.spec,
        done.input_shape,
        done.output
    );
    Ok(())
}

/// `--report-from`: renders report.html next to an existing results.json.
fn render_report(results_path: &Path) -> Result<()> {
    let results = Results::read(results_path)?;
    check_for_report(&results)
        .map_err(|problem| anyhow!("{}: {problem}", results_path.display()))?;
    let report = results_path.with_file_name("report.html");
    write_report(&report, &results)
        .with_context(|| format!("{}: cannot write", report.display()))?;
    println!("wrote {}", report.display());
    Ok(())
}

/// Names the adapter. On a software (CPU) adapter with no preset named, the settings are
/// loaded again with preset quick, the one chosen to fit such an adapter.
fn config_for_adapter(ctx: &GpuContext, cli: &Cli, config: RunConfig) -> Result<RunConfig> {
    if ctx.summary.is_cpu && !preset_given(cli)? {
        println!(
            "adapter {} is a software (CPU) adapter and no preset was given: using preset quick (pass --preset default to override)",
            ctx.summary.name
        );
        let mut overrides = cli.overrides.clone();
        overrides.preset = Some(Preset::Quick);
        let config = load_config(cli.config.as_deref(), &overrides)?;
        config.validate()?;
        return Ok(config);
    }
    println!("adapter: {} ({})", ctx.summary.name, ctx.summary.backend);
    Ok(config)
}

/// With `--resume RUN_DIR`, flags that change the run's settings are refused: every model
/// it finished would no longer match them and would be trained again over its checkpoint.
fn check_resume_keeps_settings(cli: &Cli, config: &RunConfig) -> Result<()> {
    let Some(dir) = &cli.resume else {
        return Ok(());
    };
    let bare = Overrides {
        out: cli.overrides.out.clone(),
        ..Overrides::default()
    };
    let saved = load_config(cli.config.as_deref(), &bare)?;
    if effective_config_toml(&saved) != effective_config_toml(config) {
        bail!(
            "--resume {}: the flags given change the run's settings, and the models it finished would be trained again over their checkpoints; resume without them, or start a new run (--out DIR, with --teachers-from {} to reuse its teachers where the teacher settings match)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// With `--resume RUN_DIR`: the settings file and the output folder are the run's own.
fn resume_settings(mut cli: Cli) -> Result<Cli> {
    let Some(dir) = &cli.resume else {
        return Ok(cli);
    };
    let settings = dir.join("config.toml");
    let ours = std::fs::read_to_string(&settings)
        .is_ok_and(|text| text.starts_with(dk_distill::run_dir::CONFIG_HEADER));
    if !ours {
        bail!(
            "--resume {}: no config.toml of a dk-distill run there; name the folder of a dk-distill run",
            dir.display()
        );
    }
    cli.config = Some(settings);
    cli.overrides.out = Some(dir.clone());
    Ok(cli)
}

fn main() -> ExitCode {
    dk_tensor::context::ensure_runtime_dir();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the context chain on one line; no backtrace.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("dk-distill").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_plan_names_the_unlabeled_images_and_the_distilled_students_steps() {
        // quick's split of Fashion-MNIST: 15,000 labeled, 5,000 to validate, 40,000 more.
        let data = dk_distill::testutil::blank_study(15_000, 5_000, 40_000);
        let mut config = RunConfig::preset(Preset::Quick);
        let plan = plan_text(&config, &data, u64::MAX);
        for needle in [
            "40000 more training examples, their labels withheld (the pool): 40000 of them for the distilled students",
            "students: 784-64-10, 116 epochs of 117 steps = 13572 steps",
            "the distilled students learn from the training split and 40000 unlabeled images, labeled by the ensemble: 31 epochs of 429 steps = 13299 steps (at most the hard-label student's steps)",
        ] {
            assert!(plan.contains(needle), "missing {needle:?} in\n{plan}");
        }
        config.distill.unlabeled = 50_000;
        let plan = plan_text(&config, &data, u64::MAX);
        let capped = "distill.unlabeled (--unlabeled) = 50000: 40000 used, as the pool holds 40000";
        assert!(
            plan.contains("40000 unlabeled images") && plan.contains(capped),
            "at most the pool: {plan}"
        );
        // The experiments choose their own transfer sets.
        config.experiment = Some(Experiment::Compression);
        let plan = plan_text(&config, &data, u64::MAX);
        assert!(
            plan.contains("40000 more training examples unused (the pool)"),
            "{plan}"
        );
        assert!(!plan.contains("unlabeled images"), "{plan}");
    }

    #[test]
    fn a_student_length_given_by_flag_or_file_is_kept() {
        assert!(!student_length_given(&cli(&[])).unwrap());
        for flag in ["--student-steps", "--steps", "--student-epochs", "--epochs"] {
            assert!(
                student_length_given(&cli(&[flag, "1500"])).unwrap(),
                "{flag}"
            );
        }
        assert!(!student_length_given(&cli(&["--teacher-steps", "900"])).unwrap());
        let dir = tempfile::Builder::new()
            .prefix("dk-length-given-")
            .tempdir()
            .unwrap();
        let cases = [
            ("[student]\nsteps = 1500\n", true),
            ("[student]\nepochs = 4\n", true),
            (
                "[student]\nspec = \"64-64-10\"\n[teacher]\nsteps = 900\n",
                false,
            ),
            ("dataset = \"csv\"\n", false),
        ];
        for (i, (text, given)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("{i}.toml"));
            std::fs::write(&path, text).unwrap();
            let path = path.to_str().unwrap();
            assert_eq!(
                student_length_given(&cli(&["--config", path])).unwrap(),
                given,
                "{text}"
            );
        }
    }
}
