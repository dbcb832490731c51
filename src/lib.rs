//! darkknowledge: knowledge distillation on any GPU.
//!
//! This facade re-exports the three crates of the workspace.
pub use dk_distill as distill;
pub use dk_nn as nn;
pub use dk_tensor as tensor;
