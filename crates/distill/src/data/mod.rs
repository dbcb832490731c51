//! Data sets: reading IDX files (Fashion-MNIST, MNIST, KMNIST), CIFAR-10 batches and CSV
//! tables, finding (or downloading) the files, splitting them, and growing a synthetic
//! transfer set from them (MUNGE). [`load_data`] does all of it for a run's settings.

pub mod cifar;
pub mod dataset;
pub mod idx;
pub mod load;
pub mod locate;
pub mod munge;
pub mod neighbours;
pub mod sources;
pub mod split;
pub mod tabular;

pub use dataset::{Dataset, Storage};
pub use idx::{FASHION_MNIST_CLASSES, IdxError};
pub use load::{StudyData, default_cache_dir, load_data};
pub use munge::{MungeError, MungeParams, munge};
pub use neighbours::nearest_neighbours;
pub use sources::{DatasetKind, DatasetSource};
