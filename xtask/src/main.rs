//! `cargo xtask <command>`: the project's entry points.
//!
//! - `distill [ARGS]`: the main job (teachers, soft targets, students, report). Makes sure a
//!   GPU adapter exists (installing Mesa's lavapipe when it safely can) and, where the run
//!   reads Fashion-MNIST from the default places and they lack it, installs Debian's
//!   `dataset-fashion-mnist` when it safely can; builds dk-distill in view, then runs it.
//!   `distill export RUN_DIR ...` needs neither and only builds and runs dk-distill.
//! - `test [ARGS]`: the same prerequisites, then the whole test suite; on lavapipe, also the
//!   dk-tensor kernel unit tests at the other subgroup sizes of 4, 8 and 32
//!   (`LP_NATIVE_VECTOR_WIDTH` 128, 256, 1024; the whole suite already ran at the current one).
//!
//! "Safely can": running as root with apt-get. A command that fails after printing its own
//! error makes xtask exit with the same code and print nothing more.
//! - `bench [ARGS]`: the kernel benchmark table for the current adapter.

use std::process::{Command, ExitCode};

mod bench;
mod bench_epoch;
mod bench_rows;
mod prereq;

fn main() -> ExitCode {
    dk_tensor::context::ensure_runtime_dir();
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "test" => run_tests(&rest),
        "distill" => run_distill(&rest),
        "bench" => run_bench(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  distill [ARGS]  train teachers, distill a student, write a report (--help for options)\n  test [ARGS]     install what the tests need where possible, then run them\n  bench [ARGS]    benchmark the kernels and training steps on this adapter (--only GROUP,.. --no-write)"
            );
            return if command.is_empty() || command == "help" || command == "--help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The child printed its own error; pass its exit code on and add nothing.
        Err(e) if e.is::<ChildFailed>() => ExitCode::from(e.downcast::<ChildFailed>().unwrap().0),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command that ran and failed after saying why (cargo, the tests, dk-distill).
#[derive(Debug)]
struct ChildFailed(u8);

impl std::fmt::Display for ChildFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for ChildFailed {}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs `cmd`; a failure with an exit code becomes [`ChildFailed`] (the command has said why),
/// one without (a signal) an error naming the command.
fn status_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status()?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(ChildFailed(u8::try_from(code).unwrap_or(1)).into()),
        None => anyhow::bail!("{cmd:?} stopped: {status}"),
    }
}

/// Subgroup sizes of 4, 8 and 32 lanes on lavapipe (`LP_NATIVE_VECTOR_WIDTH` in bits).
const LAVAPIPE_VECTOR_WIDTHS: [&str; 3] = ["128", "256", "1024"];

fn run_tests(rest: &[String]) -> anyhow::Result<()> {
    prereq::ensure_adapter()?;
    // The end-to-end tests train on Fashion-MNIST, and skip (saying so) without it.
    prereq::ensure_default_data(&[]);
    status_ok(cargo().args(["test", "--workspace"]).args(rest))?;
    // Subgroup kernels must not depend on one subgroup size: on lavapipe, where it can be
    // set, run the kernel unit tests again at each size.
    let adapter = dk_tensor::GpuContext::new()?.summary.name.to_lowercase();
    if adapter.contains("llvmpipe") {
        // The workspace run above already ran them at the current width.
        let current = std::env::var("LP_NATIVE_VECTOR_WIDTH").unwrap_or_else(|_| "256".into());
        for width in LAVAPIPE_VECTOR_WIDTHS.into_iter().filter(|w| *w != current) {
            eprintln!("kernel tests with LP_NATIVE_VECTOR_WIDTH={width}");
            status_ok(
                cargo()
                    .args(["test", "-p", "dk-tensor", "--lib"])
                    .env("LP_NATIVE_VECTOR_WIDTH", width),
            )?;
        }
    }
    Ok(())
}

fn run_distill(rest: &[String]) -> anyhow::Result<()> {
    // `export` reads a run folder's checkpoints on the CPU: no adapter, no data.
    if rest.first().map(String::as_str) != Some("export") {
        prereq::ensure_adapter()?;
        prereq::ensure_default_data(rest);
    }
    // Build in view (the first build is long), then run the built binary without cargo's noise.
    if !built_beside_xtask("dk-distill") {
        eprintln!("building dk-distill (first build: about 10 minutes on 2 cores)…");
    }
    status_ok(cargo().args(["build", "-p", "dk-distill"]))?;
    status_ok(
        cargo()
            .args(["run", "--quiet", "-p", "dk-distill", "--"])
            .args(rest),
    )
}

/// Whether the binary `name` exists next to xtask's own (same target folder and profile).
fn built_beside_xtask(name: &str) -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            Some(
                exe.parent()?
                    .join(format!("{name}{}", std::env::consts::EXE_SUFFIX)),
            )
        })
        .is_some_and(|path| path.is_file())
}

fn run_bench(rest: &[String]) -> anyhow::Result<()> {
    // Arguments first: --help or a mistyped flag needs no adapter (nor its installation).
    if !bench::check_args(rest)? {
        return Ok(());
    }
    prereq::ensure_adapter()?;
    bench::run(rest)
}
