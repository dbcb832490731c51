//! Data sets: reading IDX files, finding (or downloading) them, splitting them, and growing a
//! synthetic transfer set from them (MUNGE).

pub mod idx;
pub mod locate;
pub mod munge;
pub mod neighbours;
pub mod split;

pub use idx::{Dataset, FASHION_MNIST_CLASSES, IdxError};
pub use munge::{MungeError, MungeParams, munge};
pub use neighbours::nearest_neighbours;
