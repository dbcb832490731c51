//! Finished models that a resumed run (`--resume RUN_DIR`) takes over instead of training
//! them again.
//!
//! Beside each checkpoint `<name>.safetensors` a run writes `<name>.trained.json`: what
//! training produced besides the weights (learning curve, kept epoch, stop, steps, time),
//! and the key of the run that trained it. The key hashes the run's effective settings
//! (`config.toml` less the output folder) and the fingerprint of its training data, so a
//! record is reused only by a run that would train the same model: one left by an earlier
//! run with other settings (say after `--overwrite`) is ignored and the model retrained.
//! Validation logits are not stored: they are recomputed from the weights, by the same
//! evaluation pass as during training, so they come out bit for bit the same.

use std::path::Path;

use anyhow::{Context, Result};
use dk_nn::{Model, ModelSpec};
use dk_tensor::GpuContext;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::evaluate::predict;
use super::gpu_data::GpuSplit;
use super::session::EVAL_BATCH;
use super::train::{Stop, Trained};
use crate::config::{RunConfig, effective_config_toml};
use crate::metrics;
use crate::results::EpochStats;
use crate::run_dir::RunDir;

/// What `<name>.trained.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TrainedRecord {
    run_key: String,
    curve: Vec<EpochStats>,
    seconds: f64,
    best_epoch: usize,
    stop: Stop,
    steps: usize,
}

/// The key of the run `config` on the training data fingerprinted by `data_key`.
pub fn run_key(config: &RunConfig, data_key: &str) -> String {
    let settings = RunConfig {
        out_dir: None,
        ..config.clone()
    };
    let mut hash = Sha256::new();
    hash.update(effective_config_toml(&settings).as_bytes());
    hash.update(data_key.as_bytes());
    format!("{:x}", hash.finalize())
}

/// The record file of the checkpoint `checkpoint` (`teacher-1.safetensors` gives
/// `teacher-1.trained.json`).
fn record_file(checkpoint: &str) -> String {
    let stem = checkpoint
        .strip_suffix(".safetensors")
        .unwrap_or(checkpoint);
    format!("{stem}.trained.json")
}

/// Writes the record of a model just trained and saved as `checkpoint`.
pub fn write_record(
    run_dir: &RunDir,
    checkpoint: &str,
    run_key: &str,
    trained: &Trained,
) -> Result<()> {
    let record = TrainedRecord {
        run_key: run_key.to_string(),
        curve: trained.curve.clone(),
        seconds: trained.seconds,
        best_epoch: trained.best_epoch,
        stop: trained.stop.clone(),
        steps: trained.steps,
    };
    let file = record_file(checkpoint);
    let text = serde_json::to_string_pretty(&record)?;
    run_dir
        .write(&file, text.as_bytes())
        .with_context(|| format!("writing {file}"))?;
    Ok(())
}

/// The model saved as `checkpoint` in `run_dir` by a run of key `run_key`, with what its
/// training produced; `None` when either file is missing or the record belongs to another
/// run (the model is then trained again).
pub fn restore(
    ctx: &GpuContext,
    run_dir: &RunDir,
    checkpoint: &str,
    run_key: &str,
    (spec, validation): (&ModelSpec, &GpuSplit),
) -> Result<Option<(Model, Trained)>> {
    let Some(record) = read_record(&run_dir.path(record_file(checkpoint)))? else {
        return Ok(None);
    };
    let weights = run_dir.path(checkpoint);
    if record.run_key != run_key || !weights.is_file() {
        return Ok(None);
    }
    let model = Model::load_as(ctx, spec.clone(), &weights)
        .with_context(|| format!("--resume: cannot load the finished model {checkpoint}"))?;
    let logits = predict(ctx, &model, validation, EVAL_BATCH)?;
    let accuracy = metrics::accuracy(&logits, spec.classes(), &validation.host_labels);
    let trained = Trained {
        curve: record.curve,
        seconds: record.seconds,
        validation_logits: logits,
        validation_accuracy: accuracy,
        best_epoch: record.best_epoch,
        stop: record.stop,
        steps: record.steps,
    };
    Ok(Some((model, trained)))
}

/// The record at `path`; `None` when there is none. An unreadable one is an error naming
/// the file, since a resumed run should not silently redo work it was asked to keep.
fn read_record(path: &Path) -> Result<Option<TrainedRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("{}: cannot read", path.display())),
    };
    let record = serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a training record of dk-distill (delete it to train that model again)",
            path.display()
        )
    })?;
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;
    use crate::testutil::temp_dir;

    #[test]
    fn the_key_follows_the_settings_and_the_data_but_not_the_folder() {
        let config = RunConfig::preset(Preset::Tiny);
        let key = run_key(&config, "data-a");
        let elsewhere = RunConfig {
            out_dir: Some("elsewhere".into()),
            ..config.clone()
        };
        assert_eq!(run_key(&elsewhere, "data-a"), key);
        assert_ne!(run_key(&config, "data-b"), key, "other data");
        let other_seed = RunConfig {
            seed: config.seed + 1,
            ..config
        };
        assert_ne!(run_key(&other_seed, "data-a"), key, "other settings");
    }

    #[test]
    fn records_sit_beside_their_checkpoints() {
        assert_eq!(
            record_file("student-kd_T=4_a=0.5.safetensors"),
            "student-kd_T=4_a=0.5.trained.json"
        );
    }

    #[test]
    fn a_damaged_record_is_named() {
        let dir = temp_dir("resume-record");
        let path = dir.path().join("teacher-1.trained.json");
        assert!(read_record(&path).unwrap().is_none(), "missing: none");
        std::fs::write(&path, "{ not json").unwrap();
        let err = format!("{:#}", read_record(&path).unwrap_err());
        assert!(err.contains("teacher-1.trained.json"), "{err}");
    }
}
