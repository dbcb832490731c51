//! Checkpoints in safetensors format with PyTorch's names and layouts.
//!
//! Tensor names are those of a PyTorch `nn.Sequential` built from the same spec:
//! `<index>.weight` (`[out, in]` for Linear, `[out, in, kh, kw]` for Conv2d) and
//! `<index>.bias` (`[out]`), all F32 little-endian. The metadata holds
//! `format = "pt"`, `darkknowledge.spec` (the canonical spec text, input token first) and
//! `darkknowledge.input_shape` (e.g. `1x28x28`). In Python:
//!
//! ```python
//! from safetensors.numpy import load_file
//! weights = load_file("student.safetensors")   # {"1.weight": array(1200, 784), ...}
//! ```
//!
//! and `model.load_state_dict(safetensors.torch.load_file(path))` loads it into the
//! matching `nn.Sequential`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{NnError, Result};
use crate::spec::ModelSpec;

/// Metadata key of the canonical spec text.
pub const SPEC_KEY: &str = "darkknowledge.spec";
/// Metadata key of the input shape per example.
pub const INPUT_SHAPE_KEY: &str = "darkknowledge.input_shape";

fn checkpoint_error(path: &Path, message: impl Into<String>) -> NnError {
    NnError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Write `values` (one vector per entry of [`ModelSpec::parameters`]) to `path`.
///
/// The file is written to a temporary sibling and renamed over `path`, so a crash never
/// leaves a half-written checkpoint under the real name.
pub fn save(path: &Path, spec: &ModelSpec, values: &[Vec<f32>]) -> Result<()> {
    let params = spec.parameters();
    if values.len() != params.len() {
        return Err(checkpoint_error(
            path,
            format!(
                "the model has {} parameter tensors but {} were given",
                params.len(),
                values.len()
            ),
        ));
    }
    let mut views = Vec::with_capacity(params.len());
    for (p, v) in params.iter().zip(values) {
        if v.len() != p.len() {
            return Err(checkpoint_error(
                path,
                format!(
                    "{} should have shape {:?} ({} values) but {} were given",
                    p.name,
                    p.shape,
                    p.len(),
                    v.len()
                ),
            ));
        }
        let view = TensorView::new(Dtype::F32, p.shape.clone(), bytemuck::cast_slice(v))
            .map_err(|e| checkpoint_error(path, e.to_string()))?;
        views.push((p.name.clone(), view));
    }
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (SPEC_KEY.to_string(), spec.text().to_string()),
        (INPUT_SHAPE_KEY.to_string(), spec.input_shape_text()),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| checkpoint_error(path, e.to_string()))?;
    write_atomically(path, &bytes)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| NnError::Io {
            path: p,
            cause: source,
        }
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| checkpoint_error(path, "is not a file path"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".tmp{}", std::process::id()));
    let temp: PathBuf = path.with_file_name(temp_name);
    let result = (|| {
        let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
        file.write_all(bytes).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        std::fs::rename(&temp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Read a checkpoint, taking the model spec from its metadata.
pub fn load(path: &Path) -> Result<(ModelSpec, Vec<Vec<f32>>)> {
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let (_, metadata) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| checkpoint_error(path, format!("is not a safetensors file: {e}")))?;
    let text = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SPEC_KEY))
        .ok_or_else(|| {
            checkpoint_error(
                path,
                format!("has no `{SPEC_KEY}` metadata; load it with `load_for` and the spec it was trained with"),
            )
        })?;
    let spec = ModelSpec::parse(text)
        .map_err(|e| checkpoint_error(path, format!("metadata spec does not parse: {e}")))?;
    let values = read_values(path, &bytes, &spec)?;
    Ok((spec, values))
}

/// Read a checkpoint into a model of the given spec, checking every name and shape.
pub fn load_for(path: &Path, spec: &ModelSpec) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).map_err(|source| NnError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    read_values(path, &bytes, spec)
}

fn read_values(path: &Path, bytes: &[u8], spec: &ModelSpec) -> Result<Vec<Vec<f32>>> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| checkpoint_error(path, format!("is not a safetensors file: {e}")))?;
    let params = spec.parameters();
    let mut values = Vec::with_capacity(params.len());
    for p in &params {
        let view = file.tensor(&p.name).map_err(|_| {
            checkpoint_error(
                path,
                format!(
                    "has no tensor `{}` (expected shape {:?} for model `{spec}`); it holds {:?}",
                    p.name,
                    p.shape,
                    sorted_names(&file)
                ),
            )
        })?;
        if view.shape() != p.shape.as_slice() || view.dtype() != Dtype::F32 {
            return Err(checkpoint_error(
                path,
                format!(
                    "tensor `{}` should be F32 of shape {:?} for model `{spec}` but is {:?} of shape {:?}",
                    p.name,
                    p.shape,
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        let tensor: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(index) = tensor.iter().position(|v| !v.is_finite()) {
            return Err(checkpoint_error(
                path,
                format!(
                    "tensor `{}` holds {} at index {index}: expected finite weights (the file is damaged or its training diverged)",
                    p.name, tensor[index]
                ),
            ));
        }
        values.push(tensor);
    }
    if file.len() != params.len() {
        let expected: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        let extra: Vec<&str> = sorted_names(&file)
            .into_iter()
            .filter(|n| !expected.contains(n))
            .collect();
        return Err(checkpoint_error(
            path,
            format!("has tensors {extra:?} that model `{spec}` does not have"),
        ));
    }
    Ok(values)
}

fn sorted_names<'a>(file: &'a SafeTensors<'_>) -> Vec<&'a str> {
    let mut names = file.names();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::he_normal;

    /// A fresh temporary file whose name ends in `name`, removed when dropped.
    fn temp_path(name: &str) -> tempfile::TempPath {
        let file = tempfile::Builder::new()
            .prefix("dk-nn-")
            .suffix(name)
            .tempfile();
        file.unwrap().into_temp_path()
    }

    #[test]
    fn round_trip_is_bitwise_and_keeps_the_spec() {
        let spec = ModelSpec::parse("1x6x6-c3k3-p2-d0.5-7-4").unwrap();
        let values = he_normal(&spec, 3);
        let path = temp_path("round-trip.safetensors");
        save(&path, &spec, &values).unwrap();
        let (loaded_spec, loaded) = load(&path).unwrap();
        assert_eq!(loaded_spec, spec);
        let bits =
            |v: &[Vec<f32>]| -> Vec<u32> { v.iter().flatten().map(|x| x.to_bits()).collect() };
        assert_eq!(bits(&loaded), bits(&values));
    }

    #[test]
    fn non_finite_weights_are_refused_naming_file_and_tensor() {
        let spec = ModelSpec::parse("4-3-2").unwrap();
        for (bad, shown) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (f32::NEG_INFINITY, "-inf"),
        ] {
            let mut values = he_normal(&spec, 2);
            values[2][5] = bad;
            let path = temp_path(&format!("non-finite-{shown}.safetensors"));
            save(&path, &spec, &values).unwrap();
            let message = load(&path).unwrap_err().to_string();
            let message_for = load_for(&path, &spec).unwrap_err().to_string();
            let expected = format!(
                "checkpoint {}: tensor `2.weight` holds {shown} at index 5: expected finite weights",
                path.display()
            );
            assert!(message.starts_with(&expected), "{message}");
            assert_eq!(message, message_for);
        }
    }

    #[test]
    fn loading_into_another_shape_names_tensor_shapes_and_file() {
        let spec = ModelSpec::parse("8-5-3").unwrap();
        let path = temp_path("mismatch.safetensors");
        save(&path, &spec, &he_normal(&spec, 1)).unwrap();
        let wider = ModelSpec::parse("8-6-3").unwrap();
        let message = load_for(&path, &wider).unwrap_err().to_string();
        let deeper = ModelSpec::parse("8-5-5-3").unwrap();
        let missing = load_for(&path, &deeper).unwrap_err().to_string();
        for needle in ["0.weight", "[6, 8]", "[5, 8]", "mismatch.safetensors"] {
            assert!(message.contains(needle), "`{message}` lacks `{needle}`");
        }
        assert!(
            missing.contains("2.weight") && missing.contains("[5, 5]"),
            "`{missing}` should name the first differing tensor"
        );
    }
}
