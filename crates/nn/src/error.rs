//! Errors of the module crate. Each reads as one sentence naming what is wrong and where.

use std::path::PathBuf;

use dk_tensor::TensorError;
use thiserror::Error;

/// What can go wrong when building, training or checkpointing a model.
#[derive(Debug, Error)]
pub enum NnError {
    /// A model spec string does not parse; the message points at the bad token.
    #[error("spec `{spec}`: {message}")]
    Spec { spec: String, message: String },
    /// A setting (batch size, learning rate, tensor shape...) does not fit the model.
    #[error("{0}")]
    Config(String),
    /// A checkpoint file does not match the model it is loaded into, or is not readable.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// An error from the tensor core (shape checks, adapter limits, read-back).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// A file could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: std::io::Error,
    },
}

/// Result alias of the module crate.
pub type Result<T, E = NnError> = std::result::Result<T, E>;

pub(crate) fn config_error(message: impl Into<String>) -> NnError {
    NnError::Config(message.into())
}
