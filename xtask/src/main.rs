//! `cargo xtask <command>`: the project's entry points.
//!
//! - `distill [ARGS]`: the main job (teachers, soft targets, students, report).
//! - `test [ARGS]`: make sure a GPU adapter exists (installing Mesa's lavapipe when it safely
//!   can), then run the whole test suite; on lavapipe, also the dk-tensor kernel unit tests
//!   at subgroup sizes 4, 8 and 32 (`LP_NATIVE_VECTOR_WIDTH` 128, 256, 1024).
//! - `bench [ARGS]`: the kernel benchmark table for the current adapter.

use std::process::{Command, ExitCode};

mod bench;
mod bench_rows;
mod prereq;

fn main() -> ExitCode {
    prereq::ensure_runtime_dir();
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "test" => run_tests(&rest),
        "distill" => run_distill(&rest),
        "bench" => run_bench(&rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n  distill [ARGS]  train teachers, distill a student, write a report (--help for options)\n  test [ARGS]     install what the tests need where possible, then run them\n  bench [ARGS]    benchmark every kernel on this adapter"
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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn status_ok(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "{cmd:?} failed with {status}");
    Ok(())
}

/// Subgroup sizes of 4, 8 and 32 lanes on lavapipe (`LP_NATIVE_VECTOR_WIDTH` in bits).
const LAVAPIPE_VECTOR_WIDTHS: [&str; 3] = ["128", "256", "1024"];

fn run_tests(rest: &[String]) -> anyhow::Result<()> {
    prereq::ensure_adapter()?;
    status_ok(cargo().args(["test", "--workspace"]).args(rest))?;
    // Subgroup kernels must not depend on one subgroup size: on lavapipe, where it can be
    // set, run the kernel unit tests again at each size.
    let adapter = dk_tensor::GpuContext::new()?.summary.name.to_lowercase();
    if adapter.contains("llvmpipe") {
        for width in LAVAPIPE_VECTOR_WIDTHS {
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
    prereq::ensure_adapter()?;
    status_ok(
        cargo()
            .args(["run", "--quiet", "-p", "dk-distill", "--"])
            .args(rest),
    )
}

fn run_bench(rest: &[String]) -> anyhow::Result<()> {
    prereq::ensure_adapter()?;
    bench::run(rest)
}
