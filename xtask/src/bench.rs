//! `cargo xtask bench`: a short table of kernel throughput on the current adapter, each row
//! also given as a share of ceilings measured in the same run (a copy kernel's GB/s and a
//! pure-FMA kernel's GFLOP/s; load-only kernels' GB/s, from storage and from a uniform block, are
//! shown beside them), appended to BENCHMARKS.md with the adapter's name and date.
//!
//! Options: `--no-write` prints the table without appending it; `--only GROUP[,GROUP]` measures
//! only those row groups (matmul, epilogue, loss, conv, cnn, train, profile, epoch) after the ceilings, e.g.
//! `cargo xtask bench --only conv,cnn --no-write` for the conv layers and CNN steps alone
//! (`DK_CONV_PATH=direct` measures the CNN steps on the direct conv kernels).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use dk_tensor::ops::ceiling;
use dk_tensor::{DType, Dispatch, GpuContext, Tensor, record_all};

/// One measured row of the table.
pub struct Row {
    pub kernel: String,
    pub shape: String,
    /// Work per launch: FLOPs for compute-bound rows, bytes for memory-bound rows.
    pub work: Work,
    pub seconds: f64,
}

#[derive(Clone)]
pub enum Work {
    Flops(f64),
    Bytes(f64),
    Examples(f64),
    /// One part of a whole that takes `whole` seconds: the rate column shows its share.
    PartOf(f64),
    /// `examples` per launch, against a reference that does the same work in `reference`
    /// seconds: the share column shows this row's rate as a share of the reference's.
    ExamplesAgainst {
        examples: f64,
        reference: f64,
    },
    /// FLOPs per launch, against a reference kernel's rate in GFLOP/s (a convolution against
    /// the matmul of its GEMM size): the share column adds this row's rate as a share of it.
    FlopsAgainst {
        flops: f64,
        reference_gflops: f64,
    },
}

/// Seconds per submission of `dispatches` (recorded into one pass), GPU work included:
/// one warm-up, then repeats until `budget` has passed (at least 3 runs), median taken.
pub fn time_dispatches(ctx: &GpuContext, dispatches: &[&Dispatch], budget: Duration) -> f64 {
    time_closure(ctx, budget, || {
        let mut enc = ctx.encoder();
        record_all(&mut enc, dispatches.iter().copied());
        ctx.queue.submit(Some(enc.finish()));
    })
}

/// Seconds per call of `run` (which submits GPU work), waiting for the GPU after each call.
pub fn time_closure(ctx: &GpuContext, budget: Duration, mut run: impl FnMut()) -> f64 {
    let mut run = || {
        run();
        ctx.wait();
    };
    run();
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 3 || (start.elapsed() < budget && samples.len() < 50) {
        let t = Instant::now();
        run();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

pub struct Ceilings {
    pub gbps: f64,
    pub gflops: f64,
}

fn measure_ceilings(ctx: &GpuContext, budget: Duration) -> anyhow::Result<(Ceilings, Vec<Row>)> {
    let len = if ctx.summary.is_cpu {
        4 << 20
    } else {
        64 << 20
    };
    let src = Tensor::zeros(ctx, &[len], DType::F32)?;
    let dst = Tensor::zeros(ctx, &[len], DType::F32)?;
    let copy = ceiling::prepare_copy(ctx, &src, &dst)?;
    let copy_s = time_dispatches(ctx, &[&copy], budget);
    let fma_len = if ctx.summary.is_cpu {
        4 * 16_384
    } else {
        4 << 20
    };
    let out = Tensor::zeros(ctx, &[fma_len], DType::F32)?;
    let fma = ceiling::prepare_fma(ctx, &out, 0.5)?;
    let fma_s = time_dispatches(ctx, &[&fma], budget);
    let copy_bytes = 2.0 * 4.0 * len as f64;
    let fma_flops = ceiling::fma_flops(fma_len) as f64;
    let mut rows = vec![Row {
        kernel: "ceiling: copy".into(),
        shape: format!("{len} f32"),
        work: Work::Bytes(copy_bytes),
        seconds: copy_s,
    }];
    rows.extend(measure_loads(ctx, budget, &src)?);
    rows.push(Row {
        kernel: "ceiling: fma".into(),
        shape: format!("{} invocations", fma_len / 4),
        work: Work::Flops(fma_flops),
        seconds: fma_s,
    });
    Ok((
        Ceilings {
            gbps: copy_bytes / copy_s / 1e9,
            gflops: fma_flops / fma_s / 1e9,
        },
        rows,
    ))
}

/// The load-only rows: `src.len()` floats read from storage, and as many from a uniform block.
fn measure_loads(ctx: &GpuContext, budget: Duration, src: &Tensor) -> anyhow::Result<[Row; 2]> {
    let len = src.len();
    let written = len / ceiling::LOAD_SUM_READS;
    let sums = Tensor::zeros(ctx, &[written], DType::F32)?;
    let load = ceiling::prepare_load_sum(ctx, src, &sums)?;
    let block_floats = (dk_tensor::UNIFORM_BLOCK_BYTES / 4) as usize;
    let block = Tensor::zeros_uniform_block(ctx, &[block_floats], DType::F32)?;
    let block_load = ceiling::prepare_block_load_sum(ctx, &block, &sums)?;
    Ok([
        Row {
            kernel: "ceiling: load".into(),
            shape: format!("{len} f32 read, {written} written"),
            work: Work::Bytes(4.0 * len as f64),
            seconds: time_dispatches(ctx, &[&load], budget),
        },
        Row {
            kernel: "ceiling: uniform load".into(),
            shape: format!("{len} f32 read from a 64 KiB uniform block, {written} written"),
            work: Work::Bytes(4.0 * len as f64),
            seconds: time_dispatches(ctx, &[&block_load], budget),
        },
    ])
}

/// Render rows as a Markdown table with rates and shares of the ceilings.
pub fn render(rows: &[Row], ceilings: &Ceilings) -> String {
    let mut out = String::from(
        "| kernel | shape | time/launch | rate | share of ceiling |\n|---|---|---:|---:|---:|\n",
    );
    for r in rows {
        let (rate, share) = match r.work {
            Work::Flops(f) => {
                let g = f / r.seconds / 1e9;
                (
                    format!("{g:.2} GFLOP/s"),
                    format!("{:.0}%", 100.0 * g / ceilings.gflops),
                )
            }
            Work::FlopsAgainst {
                flops,
                reference_gflops,
            } => {
                let g = flops / r.seconds / 1e9;
                (
                    format!("{g:.2} GFLOP/s"),
                    format!(
                        "{:.0}%; {:.0}% of the matmul",
                        100.0 * g / ceilings.gflops,
                        100.0 * g / reference_gflops
                    ),
                )
            }
            Work::Bytes(b) => {
                let g = b / r.seconds / 1e9;
                (
                    format!("{g:.2} GB/s"),
                    format!("{:.0}%", 100.0 * g / ceilings.gbps),
                )
            }
            Work::Examples(e) => (format!("{:.0} examples/s", e / r.seconds), "-".into()),
            Work::ExamplesAgainst {
                examples,
                reference,
            } => (
                format!("{:.0} examples/s", examples / r.seconds),
                format!("{:.0}% of the step alone", 100.0 * reference / r.seconds),
            ),
            Work::PartOf(whole) => (
                format!("{:.1}% of the step", 100.0 * r.seconds / whole),
                "-".into(),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.3} ms | {rate} | {share} |",
            r.kernel,
            r.shape,
            r.seconds * 1e3
        );
    }
    out
}

/// Days since 1970-01-01 to a civil (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The groups named by `--only GROUP[,GROUP]` (all when absent); an unknown name is an error.
fn only_groups(args: &[String]) -> anyhow::Result<Vec<String>> {
    let Some(i) = args.iter().position(|a| a == "--only") else {
        return Ok(Vec::new());
    };
    let known = crate::bench_rows::GROUPS;
    let list = args.get(i + 1).map(String::as_str).unwrap_or("");
    let groups: Vec<String> = list.split(',').map(|g| g.trim().to_string()).collect();
    for g in &groups {
        anyhow::ensure!(
            known.contains(&g.as_str()),
            "cargo xtask bench --only: {g:?} is not a group; expected one or more of {} joined by commas",
            known.join(", ")
        );
    }
    Ok(groups)
}

const USAGE: &str = "usage: cargo xtask bench [--only GROUP[,GROUP]] [--no-write]";

/// Refuses any argument but `--no-write` and `--only LIST` (and prints the usage for --help),
/// so that a mistyped flag does not start a run that appends to BENCHMARKS.md.
pub fn check_args(args: &[String]) -> anyhow::Result<bool> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--no-write" => {}
            "--only" => {
                rest.next();
            }
            "-h" | "--help" => {
                println!(
                    "{USAGE}\n  groups: {}",
                    crate::bench_rows::GROUPS.join(", ")
                );
                return Ok(false);
            }
            other => anyhow::bail!("cargo xtask bench: unknown argument {other:?}; {USAGE}"),
        }
    }
    Ok(true)
}

/// The host's CPU and its cores ("2 cores of AMD EPYC"): a software adapter's speed is the
/// CPU's, and hosts of one name differ.
fn host_text() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "an unnamed CPU".into());
    format!("{cores} cores of {model}")
}

/// Runs the benchmarks `args` ask for (checked by [`check_args`]).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let no_write = args.iter().any(|a| a == "--no-write");
    let only = only_groups(args)?;
    let ctx = GpuContext::new()?;
    eprintln!("benchmarking on {}", ctx.summary);
    let budget = Duration::from_millis(if ctx.summary.is_cpu { 400 } else { 200 });
    let (ceilings, mut rows) = measure_ceilings(&ctx, budget)?;
    rows.extend(crate::bench_rows::kernel_rows(&ctx, budget, &only)?);
    let table = render(&rows, &ceilings);
    println!("{table}");
    if !no_write {
        let command = std::iter::once("cargo xtask bench")
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let section = format!(
            "\n## {} ({}, {}) — {}\n\nMeasured by `{command}` on {}.\n\n{table}",
            ctx.summary.name,
            ctx.summary.backend,
            ctx.summary.device_type,
            today_utc(),
            host_text()
        );
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../BENCHMARKS.md");
        let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            "# Benchmarks\n\nEach section was appended by `cargo xtask bench` on the machine it names.\n"
                .into()
        });
        text.push_str(&section);
        std::fs::write(&path, text)?;
        eprintln!("appended to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_arguments_start_a_run() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(check_args(&args(&["--only", "conv,cnn", "--no-write"])).unwrap());
        assert!(!check_args(&args(&["--help"])).unwrap());
        let err = check_args(&args(&["--no-write", "--quick"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"--quick\""), "{err}");
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }
}
