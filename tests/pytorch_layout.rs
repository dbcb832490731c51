//! A checkpoint written by dk-nn loads in Python with `safetensors.numpy.load_file`, with
//! the tensor names and shapes of the equivalent PyTorch `nn.Sequential` and the exact values.

use std::process::Command;

use darkknowledge::nn::ModelSpec;
use darkknowledge::nn::checkpoint::{self, INPUT_SHAPE_KEY, SPEC_KEY};
use darkknowledge::nn::init::he_normal;

const PYTHON_READER: &str = r#"
import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
import numpy as np
path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="numpy") as f:
    metadata = f.metadata()
print(json.dumps({
    "metadata": metadata,
    "tensors": {name: {"shape": list(a.shape), "dtype": str(a.dtype),
                       "bits": a.astype(np.float32).view(np.uint32).ravel().tolist()}
                for name, a in tensors.items()},
}))
"#;

fn python_has_safetensors() -> bool {
    Command::new("python3")
        .args(["-c", "import safetensors.numpy, numpy"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn checkpoint_loads_in_python_with_pytorch_names_and_shapes() {
    assert!(
        python_has_safetensors(),
        "this test reads a checkpoint with Python's safetensors package: run `pip install safetensors numpy`"
    );
    let spec = ModelSpec::parse("1x8x8-c3k3-p2-d0.5-f5-4").unwrap();
    let values = he_normal(&spec, 21);
    let file = tempfile::Builder::new()
        .suffix(".safetensors")
        .tempfile()
        .unwrap();
    let path = file.into_temp_path();
    checkpoint::save(&path, &spec, &values).unwrap();
    let output = Command::new("python3")
        .args(["-c", PYTHON_READER])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python could not read the checkpoint: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    // nn.Sequential(Conv2d, ReLU, MaxPool2d, Dropout, Flatten, Linear, ReLU, Linear):
    // parameters at indices 0, 5 and 7.
    let expected = [
        ("0.weight", vec![3, 1, 3, 3]),
        ("0.bias", vec![3]),
        ("5.weight", vec![5, 48]),
        ("5.bias", vec![5]),
        ("7.weight", vec![4, 5]),
        ("7.bias", vec![4]),
    ];
    let tensors = read["tensors"].as_object().unwrap();
    assert_eq!(
        tensors.len(),
        expected.len(),
        "tensor names in the file: {:?}",
        tensors.keys()
    );
    for ((name, shape), values) in expected.iter().zip(&values) {
        let t = &tensors[*name];
        let found: Vec<usize> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(&found, shape, "shape of {name} as numpy sees it");
        assert_eq!(t["dtype"], "float32", "dtype of {name}");
        let bits: Vec<u32> = serde_json::from_value(t["bits"].clone()).unwrap();
        let written: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        assert_eq!(bits, written, "values of {name} read back by numpy");
    }
    assert_eq!(read["metadata"][SPEC_KEY], spec.text());
    assert_eq!(read["metadata"][INPUT_SHAPE_KEY], "1x8x8");
    assert_eq!(read["metadata"]["format"], "pt");
}
