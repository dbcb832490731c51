//! dk-tensor: the GPU tensor core of darkknowledge.
//!
//! A [`GpuContext`] opens an adapter; a [`Tensor`] is a storage buffer with a shape; each kernel
//! family in `shaders/` has a launcher module in [`ops`] with a `prepare_<op>` that returns a
//! reusable [`Dispatch`] (recorded into a command encoder with [`Dispatch::encode`]), and a
//! plain CPU reference (`ops::<family>::cpu`) that the tests hold the GPU to.

pub mod context;
pub mod error;
pub mod kernel;
pub mod ops;
pub mod splitmix;
pub mod tensor;
#[doc(hidden)]
pub mod testing;

pub use context::{
    AdapterSummary, ContextOptions, ENABLE_SUBGROUPS, GpuContext, ShaderSource, wgsl_for_naga,
};
pub use error::{Result, TensorError};
pub use kernel::{Binding, Dispatch, grid_1d, groups_for, record_all};
pub use tensor::{DType, Tensor, UNIFORM_BLOCK_BYTES};
