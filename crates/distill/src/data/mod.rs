//! Data sets: reading IDX files (Fashion-MNIST, MNIST, KMNIST), CIFAR-10 batches and CSV
//! tables, finding (or downloading) the files, and splitting them.

pub mod cifar;
pub mod dataset;
pub mod idx;
pub mod locate;
pub mod sources;
pub mod split;
pub mod tabular;

pub use dataset::{Dataset, Storage};
pub use idx::{FASHION_MNIST_CLASSES, IdxError};
pub use sources::{DatasetKind, DatasetSource};
