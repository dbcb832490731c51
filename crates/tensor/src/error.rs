//! Errors of the tensor core. Every variant reads as one sentence that says what to do.

use thiserror::Error;

/// What can go wrong in the tensor core.
#[derive(Debug, Error)]
pub enum TensorError {
    /// No GPU adapter could be opened.
    #[error(
        "no GPU adapter found{detail}: install your GPU's Vulkan/Metal/DX12 driver, or for the CPU fallback \
         run `apt-get install mesa-vulkan-drivers libvulkan1` (Debian/Ubuntu)"
    )]
    NoAdapter {
        /// Extra context, e.g. the name filter that matched nothing.
        detail: String,
    },
    /// The device could not be created from the adapter.
    #[error("could not open the GPU device on adapter {adapter}: {cause}")]
    Device {
        adapter: String,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: wgpu::RequestDeviceError,
    },
    /// Operand shapes do not fit the operation.
    #[error("{op}: {message}")]
    Shape { op: &'static str, message: String },
    /// A setting is outside its allowed range.
    #[error("{op}: {message}")]
    InvalidArgument { op: &'static str, message: String },
    /// A buffer would exceed what the adapter can bind.
    #[error(
        "{what} needs {bytes} bytes, over this adapter's limit of {limit} bytes ({limit_name}); use a smaller batch or model"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },
    /// Reading a buffer back from the GPU failed.
    #[error("reading a GPU buffer back failed: {0}")]
    Readback(String),
}

/// Result alias of the tensor core.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;

/// Shorthand for a shape error.
pub fn shape_error(op: &'static str, message: impl Into<String>) -> TensorError {
    TensorError::Shape {
        op,
        message: message.into(),
    }
}

/// Shorthand for an invalid-argument error.
pub fn invalid_argument(op: &'static str, message: impl Into<String>) -> TensorError {
    TensorError::InvalidArgument {
        op,
        message: message.into(),
    }
}
