//! The data sets the tool knows: their names, files, download addresses and shapes.

use serde::{Deserialize, Serialize};

use super::cifar;
use super::idx::FASHION_MNIST_CLASSES;

/// The data set of a run (`data.dataset`, `--dataset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Zalando's Fashion-MNIST: 28x28 grey images of clothing, 10 classes
    #[default]
    FashionMnist,
    /// MNIST handwritten digits: 28x28 grey images, 10 classes
    Mnist,
    /// Kuzushiji-MNIST: 28x28 grey images of cursive hiragana, 10 classes
    Kmnist,
    /// CIFAR-10, binary version: 32x32 colour images, 10 classes
    Cifar10,
    /// Your own CSV file: numeric feature columns and a label column (see data.csv)
    Csv,
}

impl DatasetKind {
    /// The name used in settings and flags.
    pub fn key(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Kmnist => "kmnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Csv => "csv",
        }
    }

    /// Where the files of a known data set come from; `None` for CSV (the user's own file).
    pub fn source(self) -> Option<&'static DatasetSource> {
        match self {
            DatasetKind::FashionMnist => Some(&FASHION_MNIST),
            DatasetKind::Mnist => Some(&MNIST),
            DatasetKind::Kmnist => Some(&KMNIST),
            DatasetKind::Cifar10 => Some(&CIFAR10),
            DatasetKind::Csv => None,
        }
    }
}

/// How a data set's files are laid out and fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Four IDX files ([`IDX_FILE_STEMS`]), each `<stem>.gz` or raw `<stem>`, each
    /// downloaded as `<base_url>/<stem>.gz`.
    Idx,
    /// CIFAR-10's binary batches, found in a folder or in its `subfolder`; downloaded as one
    /// `.tar.gz` archive (at `base_url`) that unpacks into `subfolder`.
    CifarBinary { subfolder: &'static str },
}

/// Where a data set comes from and what its files must contain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetSource {
    /// Human name, e.g. "Fashion-MNIST".
    pub name: &'static str,
    /// Folder name under the cache, the system folder and `$DARKKNOWLEDGE_DATA`.
    pub folder: &'static str,
    pub format: Format,
    /// The files a folder must hold, in load order.
    pub files: &'static [&'static str],
    /// IDX: the folder URL of the `.gz` files; archives: the archive's URL.
    pub base_url: &'static str,
    /// Approximate download sizes in bytes, one per downloaded file: only used to size the
    /// progress bar.
    pub approx_sizes: &'static [u64],
    /// SHA-256 of each downloaded file (lowercase hex), in `approx_sizes` order; a download
    /// is checked against it before it is used. Empty: not checked (parsing still is).
    pub sha256: &'static [&'static str],
    /// A package that installs the data, when there is one (shown when the data is missing).
    pub install_hint: Option<&'static str>,
    /// Whether `$DARKKNOWLEDGE_DATA` may hold the files directly rather than in `folder`:
    /// true where the file names say which data set it is (MNIST, KMNIST and Fashion-MNIST
    /// share theirs; Fashion-MNIST keeps it for compatibility).
    pub env_flat: bool,
    pub train_count: usize,
    pub test_count: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub class_names: &'static [&'static str],
}

/// File stems shared by MNIST-style data sets, in the order train images, train labels,
/// test images, test labels.
pub const IDX_FILE_STEMS: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// MNIST's class names: the digits.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Kuzushiji-MNIST's classes: the romanised hiragana of each label.
pub const KMNIST_CLASSES: [&str; 10] = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"];

/// Fashion-MNIST from its official repository.
pub const FASHION_MNIST: DatasetSource = DatasetSource {
    name: "Fashion-MNIST",
    folder: "fashion-mnist",
    format: Format::Idx,
    files: &IDX_FILE_STEMS,
    base_url: "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    approx_sizes: &[26_421_880, 29_515, 4_422_102, 5_148],
    sha256: &[
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    ],
    install_hint: Some("`apt-get install dataset-fashion-mnist` (Debian/Ubuntu)"),
    env_flat: true,
    train_count: 60_000,
    test_count: 10_000,
    channels: 1,
    height: 28,
    width: 28,
    class_names: &FASHION_MNIST_CLASSES,
};

/// MNIST from the mirror PyTorch's torchvision uses.
pub const MNIST: DatasetSource = DatasetSource {
    name: "MNIST",
    folder: "mnist",
    format: Format::Idx,
    files: &IDX_FILE_STEMS,
    base_url: "https://ossci-datasets.s3.amazonaws.com/mnist",
    approx_sizes: &[9_912_422, 28_881, 1_648_877, 4_542],
    sha256: &[
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ],
    install_hint: None,
    env_flat: false,
    train_count: 60_000,
    test_count: 10_000,
    channels: 1,
    height: 28,
    width: 28,
    class_names: &MNIST_CLASSES,
};

/// Kuzushiji-MNIST from the ROIS-DS Center for Open Data in the Humanities.
pub const KMNIST: DatasetSource = DatasetSource {
    name: "Kuzushiji-MNIST",
    folder: "kmnist",
    format: Format::Idx,
    files: &IDX_FILE_STEMS,
    base_url: "http://codh.rois.ac.jp/kmnist/dataset/kmnist",
    approx_sizes: &[18_165_135, 29_497, 3_041_136, 5_120],
    sha256: &[
        "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
        "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
        "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
    ],
    install_hint: None,
    env_flat: false,
    train_count: 60_000,
    test_count: 10_000,
    channels: 1,
    height: 28,
    width: 28,
    class_names: &KMNIST_CLASSES,
};

/// The CIFAR-10 training batches and then the test batch.
pub const CIFAR10_FILES: [&str; 6] = [
    cifar::TRAIN_FILES[0],
    cifar::TRAIN_FILES[1],
    cifar::TRAIN_FILES[2],
    cifar::TRAIN_FILES[3],
    cifar::TRAIN_FILES[4],
    cifar::TEST_FILE,
];

/// CIFAR-10's binary version from its authors' page.
pub const CIFAR10: DatasetSource = DatasetSource {
    name: "CIFAR-10",
    folder: "cifar10",
    format: Format::CifarBinary {
        subfolder: "cifar-10-batches-bin",
    },
    files: &CIFAR10_FILES,
    base_url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    approx_sizes: &[170_052_171],
    sha256: &["c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"],
    install_hint: None,
    env_flat: true,
    train_count: 50_000,
    test_count: 10_000,
    channels: 3,
    height: 32,
    width: 32,
    class_names: &cifar::CIFAR10_CLASSES,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_stable_names_and_sources() {
        for (kind, key) in [
            (DatasetKind::FashionMnist, "fashion-mnist"),
            (DatasetKind::Mnist, "mnist"),
            (DatasetKind::Kmnist, "kmnist"),
            (DatasetKind::Cifar10, "cifar10"),
            (DatasetKind::Csv, "csv"),
        ] {
            assert_eq!(kind.key(), key);
            let as_toml = toml::Value::try_from(kind).unwrap();
            assert_eq!(as_toml.as_str(), Some(key), "serde name of {kind:?}");
            let flag = clap::ValueEnum::to_possible_value(&kind).unwrap();
            assert_eq!(flag.get_name(), key, "flag name of {kind:?}");
        }
        assert_eq!(DatasetKind::default(), DatasetKind::FashionMnist);
        assert!(DatasetKind::Csv.source().is_none());
        let sources = [&FASHION_MNIST, &MNIST, &KMNIST, &CIFAR10];
        for source in sources {
            assert_eq!(source.class_names.len(), 10, "{}", source.name);
            let downloads = match source.format {
                Format::Idx => source.files.len(),
                Format::CifarBinary { .. } => 1,
            };
            assert_eq!(source.approx_sizes.len(), downloads, "{}", source.name);
            assert_eq!(source.sha256.len(), downloads, "{}", source.name);
            for digest in source.sha256 {
                assert!(
                    digest.len() == 64
                        && digest
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                    "{}: {digest}",
                    source.name
                );
            }
        }
        assert_eq!(KMNIST.class_names[9], "wo");
        assert_eq!(CIFAR10.files.len(), 6);
    }
}
