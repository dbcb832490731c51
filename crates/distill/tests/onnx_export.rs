//! `dk-distill export RUN_DIR --format onnx` writes a file that onnxruntime (Python) runs to
//! the logits of dk-nn's CPU reference: same argmax for every example, every logit within
//! 1e-4, for an MLP with dropout and for CNNs; with `--softmax --temperature T`, the
//! tempered softmax of those logits. Refusals are one line naming what is missing.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use dk_nn::init::he_normal;
use dk_nn::{ModelSpec, ParamKind, checkpoint, reference};

const PYTHON_RUNNER: &str = r#"
import json, sys
import numpy as np
import onnxruntime as ort
model, request_path = sys.argv[1], sys.argv[2]
with open(request_path) as f:
    request = json.load(f)
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
inp, out = session.get_inputs()[0], session.get_outputs()[0]
x = np.array(request["values"], dtype=np.float32).reshape([-1] + request["shape"])
(y,) = session.run(None, {inp.name: x})
print(json.dumps({
    "input": inp.name, "input_shape": [str(d) for d in inp.shape],
    "output": out.name, "output_shape": [str(d) for d in out.shape],
    "rows": int(y.shape[0]), "values": y.astype(np.float64).ravel().tolist(),
}))
"#;

/// True when python3 has onnxruntime and numpy. Without them the comparison skips locally
/// (saying so); under CI (`CI` set and not "false" or "0") it fails.
fn onnxruntime_present(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import onnxruntime, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    common::prerequisite_missing(
        test,
        "Python's onnxruntime is missing (python3 -m pip install onnxruntime numpy)",
    )
}

fn dk_distill(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dk-distill"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running dk-distill")
}

/// He-normal weights with non-zero biases, so that every bias reaches the output.
fn weights(spec: &ModelSpec, seed: u64) -> Vec<Vec<f32>> {
    let mut values = he_normal(spec, seed);
    for (p, v) in spec.parameters().iter().zip(&mut values) {
        if p.kind == ParamKind::Bias {
            for (i, b) in v.iter_mut().enumerate() {
                *b = 0.1 * ((i as f32) * 1.7 + seed as f32).sin();
            }
        }
    }
    values
}

/// `n` examples of values in [0, 1) from a fixed sequence.
fn inputs(spec: &ModelSpec, n: usize) -> Vec<f32> {
    (0..n * spec.input_len())
        .map(|i| ((i as f32 * 0.618_034).fract() + (i as f32 * 0.1).sin().abs()) / 2.0)
        .collect()
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

/// Export `spec` with random weights through the binary, run it in onnxruntime and return
/// (onnxruntime's outputs, the reference logits, the runner's JSON).
fn export_and_run(
    spec_text: &str,
    extra: &[&str],
    examples: usize,
) -> (Vec<f64>, Vec<f64>, serde_json::Value) {
    let spec = ModelSpec::parse(spec_text).unwrap();
    let scratch = common::temp_dir("onnx-export");
    let dir = scratch.path();
    let values = weights(&spec, 5);
    checkpoint::save(&dir.join("student-kd.safetensors"), &spec, &values).unwrap();
    let run_dir = dir.to_str().unwrap();
    let output = dk_distill(
        &[&["export", run_dir, "--format", "onnx"][..], extra].concat(),
        dir,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "export of `{spec_text}` failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("wrote "), "{stdout}");
    let x = inputs(&spec, examples);
    let request = serde_json::json!({ "shape": spec.input_shape(), "values": x });
    let request_path = dir.join("request.json");
    std::fs::write(&request_path, request.to_string()).unwrap();
    let run = Command::new("python3")
        .args(["-c", PYTHON_RUNNER])
        .arg(dir.join("student-kd.onnx"))
        .arg(&request_path)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "onnxruntime could not run the export of `{spec_text}`: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let found: Vec<f64> = serde_json::from_value(json["values"].clone()).unwrap();
    let params: Vec<Vec<f64>> = values
        .iter()
        .map(|v| v.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let logits = reference::forward(&spec, &params, &x, examples, None)
        .logits()
        .to_vec();
    (found, logits, json)
}

/// Largest difference between `found` and `expected`, after checking the argmax of each row.
fn compare(found: &[f64], expected: &[f64], classes: usize, what: &str) -> f64 {
    assert_eq!(found.len(), expected.len(), "{what}: number of values");
    for (row, (f, e)) in found
        .chunks(classes)
        .zip(expected.chunks(classes))
        .enumerate()
    {
        assert_eq!(argmax(f), argmax(e), "{what}: argmax of example {row}");
    }
    found
        .iter()
        .zip(expected)
        .map(|(f, e)| (f - e).abs())
        .fold(0.0, f64::max)
}

#[test]
fn onnxruntime_gives_the_reference_logits_of_mlps_and_cnns() {
    if !onnxruntime_present("onnxruntime_gives_the_reference_logits_of_mlps_and_cnns") {
        return;
    }
    for (spec_text, input_shape) in [
        ("20-d0.2-16-d0.5-8-5", vec!["batch", "20"]),
        (
            "1x12x12-c4k5-p2-c6k3-p2-d0.3-f8-5",
            vec!["batch", "1", "12", "12"],
        ),
        ("3x9x7-c5k3-p2-7", vec!["batch", "3", "9", "7"]),
    ] {
        let (found, logits, json) = export_and_run(spec_text, &[], 9);
        assert_eq!(json["input"], "input", "{spec_text}");
        assert_eq!(json["input_shape"], serde_json::json!(input_shape));
        assert_eq!(json["output"], "logits", "{spec_text}");
        assert_eq!(json["rows"], 9, "{spec_text}");
        let classes = ModelSpec::parse(spec_text).unwrap().classes();
        let gap = compare(&found, &logits, classes, spec_text);
        println!("{spec_text}: onnxruntime vs CPU reference, largest logit difference {gap:.2e}");
        assert!(gap < 1e-4, "{spec_text}: logits differ by {gap}");
    }
}

#[test]
fn onnxruntime_gives_the_tempered_softmax() {
    if !onnxruntime_present("onnxruntime_gives_the_tempered_softmax") {
        return;
    }
    let spec_text = "1x8x8-c3k3-p2-f6-4";
    let temperature = 2.5;
    let (found, logits, json) =
        export_and_run(spec_text, &["--softmax", "--temperature", "2.5"], 6);
    assert_eq!(json["output"], "probabilities");
    let mut expected = Vec::new();
    for row in logits.chunks(4) {
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = row
            .iter()
            .map(|z| ((z - max) / temperature).exp())
            .collect();
        let sum: f64 = exps.iter().sum();
        expected.extend(exps.iter().map(|e| e / sum));
    }
    let gap = compare(&found, &expected, 4, spec_text);
    println!("{spec_text} at T = {temperature}: largest probability difference {gap:.2e}");
    assert!(gap < 1e-5, "probabilities differ by {gap}");
}

/// Exit code 1 and one line `error: ...` containing `expected`.
fn assert_refused(args: &[&str], dir: &Path, expected: &str) {
    let output = dk_distill(args, dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected, got: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(expected),
        "{args:?}: expected `{expected}` in: {stderr}"
    );
}

#[test]
fn export_refuses_a_missing_model_and_a_folder_without_checkpoints() {
    let scratch = common::temp_dir("onnx-refusals");
    let dir = scratch.path();
    let run_dir = dir.to_str().unwrap();
    assert_refused(
        &["export", run_dir],
        dir,
        "no model checkpoints (*.safetensors) there",
    );
    let spec = ModelSpec::parse("6-4-3").unwrap();
    checkpoint::save(
        &dir.join("student-kd.safetensors"),
        &spec,
        &he_normal(&spec, 1),
    )
    .unwrap();
    assert_refused(
        &["export", run_dir, "--model", "teacher-1"],
        dir,
        "--model teacher-1: no checkpoint teacher-1.safetensors in",
    );
    assert_refused(
        &["export", run_dir, "--temperature", "2"],
        dir,
        "--temperature sets the softmax's temperature: add --softmax",
    );
}
