//! `dk-distill export RUN_DIR`: a trained model of a run folder as a file that runs without
//! this project (ONNX, see [`dk_nn::onnx`]).
//!
//! The model is read from its checkpoint `RUN_DIR/<model>.safetensors` on the CPU (no GPU
//! adapter is opened); the checkpoint's metadata names its spec. Without `--model` the
//! distilled student `student-kd` is exported, or the run's only student when it has no
//! `student-kd` (an experiment's run); with several and no `student-kd`, `--model` must
//! choose.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dk_nn::onnx::{self, OnnxOutput};

use crate::driver::teachers::checkpoint_file;
use crate::run_dir::write_atomic;

/// The model exported when `--model` is not given and the run folder has it.
pub const DEFAULT_MODEL: &str = "student-kd";

/// File formats `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// ONNX, opset 17: runs in onnxruntime, OpenCV, ONNX.js and most inference servers
    Onnx,
}

/// Write a trained model of a run folder as an ONNX file (evaluation mode: no dropout).
///
/// Input `input`: [batch, features] for an MLP, [batch, C, H, W] for a CNN. Output `logits`
/// [batch, classes], or `probabilities` with --softmax.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Run folder of dk-distill holding the model's checkpoint <model>.safetensors
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    /// Model to export as results.json names it (student-kd, student-hard, teacher-1, ...);
    /// default: student-kd, else the run's only student
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// File format
    #[arg(long, value_enum, default_value_t = ExportFormat::Onnx)]
    pub format: ExportFormat,

    /// File to write; default RUN_DIR/<model>.onnx
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// End the graph with a softmax over the classes: output `probabilities`
    #[arg(long)]
    pub softmax: bool,

    /// Divide the logits by T before the softmax (needs --softmax; default 1)
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    pub temperature: Option<f32>,
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    pub model: String,
    pub spec: String,
    pub path: PathBuf,
    pub bytes: usize,
    /// `[batch, 784]` or `[batch, 1, 28, 28]`.
    pub input_shape: String,
    /// `logits [batch, 10]` or `probabilities [batch, 10]`.
    pub output: String,
}

/// Export the model `args` names; every refusal is one line naming the folder, file or flag.
pub fn export(args: &ExportArgs) -> Result<Exported> {
    let output = output_of(args)?;
    check_out_file(args.out.as_deref())?;
    let model = choose_model(&args.run_dir, args.model.as_deref())?;
    let checkpoint = args.run_dir.join(checkpoint_file(&model));
    let (spec, values) = dk_nn::checkpoint::load(&checkpoint)?;
    let bytes = match args.format {
        ExportFormat::Onnx => onnx::to_onnx(&spec, &values, output)?,
    };
    let stem = checkpoint_file(&model);
    let stem = stem.trim_end_matches(".safetensors");
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| args.run_dir.join(format!("{stem}.onnx")));
    write_atomic(&path, &bytes).with_context(|| format!("{}: cannot write", path.display()))?;
    let dims: Vec<String> = spec.input_shape().iter().map(|d| d.to_string()).collect();
    Ok(Exported {
        model,
        spec: spec.text().to_string(),
        path,
        bytes: bytes.len(),
        input_shape: format!("[batch, {}]", dims.join(", ")),
        output: format!("{} [batch, {}]", output.name(), spec.classes()),
    })
}

/// An `--out` that names an existing file may only replace an earlier export (`.onnx`),
/// never a checkpoint, results or settings of a run.
fn check_out_file(out: Option<&Path>) -> Result<()> {
    let Some(path) = out else {
        return Ok(());
    };
    let onnx = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    if path.exists() && !(path.is_file() && onnx) {
        bail!(
            "--out {}: exists and is not an earlier ONNX export; choose a new file name",
            path.display()
        );
    }
    Ok(())
}

fn output_of(args: &ExportArgs) -> Result<OnnxOutput> {
    match (args.softmax, args.temperature) {
        (false, None) => Ok(OnnxOutput::Logits),
        (false, Some(_)) => {
            bail!(
                "--temperature sets the softmax's temperature: add --softmax, or drop it to export logits"
            )
        }
        (true, t) => {
            let temperature = t.unwrap_or(1.0);
            if !(temperature.is_finite() && temperature > 0.0) {
                bail!("--temperature {temperature}: expected a finite number above 0");
            }
            Ok(OnnxOutput::Probabilities { temperature })
        }
    }
}

/// The model to export: `requested`, else [`DEFAULT_MODEL`], else the only student.
fn choose_model(run_dir: &Path, requested: Option<&str>) -> Result<String> {
    let found = checkpoints(run_dir)?;
    if found.is_empty() {
        bail!(
            "{}: no model checkpoints (*.safetensors) there; name the folder of a finished dk-distill run",
            run_dir.display()
        );
    }
    let listing = found.join(", ");
    if let Some(name) = requested {
        let stem = checkpoint_file(name);
        if !found.iter().any(|f| stem == checkpoint_file(f)) {
            bail!(
                "--model {name}: no checkpoint {stem} in {}; it holds: {listing}",
                run_dir.display()
            );
        }
        return Ok(name.to_string());
    }
    if found.iter().any(|f| f == DEFAULT_MODEL) {
        return Ok(DEFAULT_MODEL.to_string());
    }
    let students: Vec<&String> = found.iter().filter(|f| f.starts_with("student")).collect();
    match students.as_slice() {
        [only] => Ok(only.to_string()),
        _ => bail!(
            "{}: no {DEFAULT_MODEL} checkpoint and {} other students; choose one with --model NAME among: {listing}",
            run_dir.display(),
            students.len()
        ),
    }
}

/// Names of the checkpoints in `run_dir` (file stems of `*.safetensors`), sorted.
fn checkpoints(run_dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(run_dir)
        .with_context(|| format!("{}: cannot read the run folder", run_dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let name = entry
            .with_context(|| format!("{}: cannot list the run folder", run_dir.display()))?
            .file_name();
        let name = name.to_string_lossy();
        // Dot files are the temporaries of an interrupted write.
        match name.strip_suffix(".safetensors") {
            Some(stem) if !stem.starts_with('.') => names.push(stem.to_string()),
            _ => {}
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dk_nn::ModelSpec;
    use dk_nn::init::he_normal;

    fn folder(name: &str, models: &[&str]) -> tempfile::TempDir {
        let dir = crate::testutil::temp_dir(&format!("export-{name}"));
        let spec = ModelSpec::parse("6-4-3").unwrap();
        for model in models {
            let path = dir.path().join(checkpoint_file(model));
            dk_nn::checkpoint::save(&path, &spec, &he_normal(&spec, 1)).unwrap();
        }
        dir
    }

    #[test]
    fn the_default_is_student_kd_then_the_only_student() {
        let full = folder("full", &["teacher-1", "student-hard", "student-kd"]);
        let single = folder("single", &["teacher-1", "student-kd-t4-a0.5"]);
        let two = folder("two", &["teacher-1", "student-a", "student-b"]);
        assert_eq!(choose_model(full.path(), None).unwrap(), "student-kd");
        assert_eq!(
            choose_model(single.path(), None).unwrap(),
            "student-kd-t4-a0.5"
        );
        let refusal = choose_model(two.path(), None).unwrap_err().to_string();
        assert!(
            refusal.contains("no student-kd checkpoint and 2 other students")
                && refusal.contains("student-a, student-b, teacher-1"),
            "{refusal}"
        );
        assert_eq!(
            choose_model(full.path(), Some("teacher-1")).unwrap(),
            "teacher-1"
        );
    }

    #[test]
    fn a_missing_model_and_an_empty_folder_are_named() {
        let dir = folder("missing", &["student-kd"]);
        let missing = choose_model(dir.path(), Some("student-hard"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("--model student-hard: no checkpoint student-hard.safetensors in")
                && missing.ends_with("it holds: student-kd"),
            "{missing}"
        );
        std::fs::remove_file(dir.path().join("student-kd.safetensors")).unwrap();
        let empty = choose_model(dir.path(), None).unwrap_err().to_string();
        assert!(
            empty.contains("no model checkpoints (*.safetensors) there"),
            "{empty}"
        );
    }

    #[test]
    fn an_out_file_may_replace_only_an_earlier_export() {
        let dir = folder("out", &["student-kd"]);
        let args = |out: &Path| ExportArgs {
            run_dir: dir.path().to_path_buf(),
            model: None,
            format: ExportFormat::Onnx,
            out: Some(out.to_path_buf()),
            softmax: false,
            temperature: None,
        };
        let checkpoint = dir.path().join("student-kd.safetensors");
        let before = std::fs::read(&checkpoint).unwrap();
        for target in [checkpoint.clone(), dir.path().to_path_buf()] {
            let refusal = export(&args(&target)).unwrap_err().to_string();
            assert_eq!(
                refusal,
                format!(
                    "--out {}: exists and is not an earlier ONNX export; choose a new file name",
                    target.display()
                )
            );
        }
        assert_eq!(std::fs::read(&checkpoint).unwrap(), before, "untouched");
        let onnx = dir.path().join("kd.onnx");
        export(&args(&onnx)).unwrap();
        export(&args(&onnx)).unwrap();
    }
}
