//! dk-nn: models with explicit forward and backward passes on the darkknowledge tensor core.
//!
//! - [`spec`]: the model spec grammar shared by MLPs and CNNs (`784-1200-1200-10`,
//!   `1x28x28-c32k5-p2-c64k5-p2-f512-10`), layer numbering as PyTorch's `nn.Sequential`.
//! - [`Model`]: a spec plus its parameters on the GPU, seeded He initialisation
//!   ([`init`]), parameter count and FLOPs, safetensors checkpoints ([`checkpoint`]).
//! - [`layers`] and [`Sequential`]: GPU layers built once for a fixed batch size, each
//!   owning its activations and gradients, with every kernel launch prepared once.
//! - [`Trainer`]: a whole training step (forward, loss, backward, optimizer) recorded into
//!   one command encoder; loss and accuracy accumulate on the GPU. [`LrSchedule`] sets the
//!   learning rate of each step ([`schedule`]).
//! - [`Inference`]: batched evaluation-mode forward passes for any number of examples.
//! - [`onnx`]: export of a model as an ONNX file (opset 17) for other runtimes.
//! - [`reference`]: a plain CPU forward/backward of whole models that the tests trust.
//!
//! ```no_run
//! use dk_nn::{Model, ModelSpec, Optimizer, TrainConfig, Trainer};
//! use dk_tensor::{DType, GpuContext, Tensor};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let ctx = GpuContext::new()?;
//! let model = Model::new(&ctx, ModelSpec::parse("784-800-800-10")?, 1)?;
//! let inputs = Tensor::zeros(&ctx, &[128, 784], DType::F32)?;
//! let labels = Tensor::zeros(&ctx, &[128], DType::U32)?;
//! let mut trainer = Trainer::new(&ctx, &model, &inputs, &labels, None,
//!                                TrainConfig::new(Optimizer::adam(1e-3)))?;
//! for _ in 0..100 {
//!     // ... fill `inputs` and `labels` (e.g. with a gather kernel in the same encoder) ...
//!     trainer.step(&ctx);
//! }
//! let stats = trainer.take_stats(&ctx)?;
//! println!("loss {:.4}, accuracy {:.2}%", stats.mean_loss(), 100.0 * stats.accuracy());
//! model.save(&ctx, std::path::Path::new("student.safetensors"))?;
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod error;
pub mod init;
pub mod layers;
pub mod model;
pub mod onnx;
pub mod reference;
pub mod schedule;
pub mod sequential;
pub mod spec;
pub mod trainer;

#[cfg(test)]
mod gpu_tests;

pub use error::{NnError, Result};
pub use layers::{Layer, Mode, ParamGrad};
pub use model::{Inference, Model};
pub use schedule::LrSchedule;
pub use sequential::{Sequential, StepPart};
pub use spec::{LayerSpec, ModelSpec, ParamKind, ParamSpec};
pub use trainer::{LossConfig, Optimizer, TrainConfig, Trainer, dropout_seed};
