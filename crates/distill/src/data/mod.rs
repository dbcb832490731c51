//! Data sets: reading IDX files, finding (or downloading) them, and splitting them.

pub mod idx;
pub mod locate;
pub mod split;

pub use idx::{Dataset, FASHION_MNIST_CLASSES, IdxError};
