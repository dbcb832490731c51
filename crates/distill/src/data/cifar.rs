//! Reader for the binary version of CIFAR-10 (`cifar-10-batches-bin`).
//!
//! Each batch file is a plain sequence of 3,073-byte records: one label byte, then the
//! 32x32 image as three planes of 1,024 bytes (red, green, blue), each row-major. The
//! training set is `data_batch_1.bin` .. `data_batch_5.bin` (10,000 records each), the test
//! set `test_batch.bin`. `batches.meta.txt` lists the class names, one per line.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::dataset::Dataset;

/// CIFAR-10's class names, in label order (as in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// `[channels, height, width]` of a CIFAR image.
pub const IMAGE_SHAPE: [usize; 3] = [3, 32, 32];
/// Bytes of one image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
/// Bytes of one record: the label byte and the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;

/// The training batches, in order.
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
/// The test batch.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class-name file (optional: the built-in names are used without it).
pub const META_FILE: &str = "batches.meta.txt";

/// Everything that can be wrong with a CIFAR batch file. Each message names the file, the
/// field or record, and what was expected, on one line.
#[derive(Debug, Error)]
pub enum CifarError {
    #[error("{path}: cannot read file: {cause}")]
    Io {
        path: PathBuf,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: std::io::Error,
    },
    #[error(
        "{path}: file size: the file is empty, expected records of {RECORD_BYTES} bytes (1 label byte + 3x32x32 pixels)"
    )]
    Empty { path: PathBuf },
    #[error(
        "{path}: file size: {size} bytes is not a multiple of the {RECORD_BYTES}-byte record (1 label byte + 3x32x32 pixels): record {record} is truncated after {partial} bytes"
    )]
    Truncated {
        path: PathBuf,
        size: usize,
        record: usize,
        partial: usize,
    },
    #[error(
        "{path}: record {record}: label byte {value}, expected < {classes} (the number of classes)"
    )]
    LabelOutOfRange {
        path: PathBuf,
        record: usize,
        value: u8,
        classes: usize,
    },
    #[error("{path}: class names: found {found} non-empty lines, expected {expected}")]
    BadMeta {
        path: PathBuf,
        found: usize,
        expected: usize,
    },
}

/// Parses the bytes of one batch file into pixels (`3 * 32 * 32` per image) and labels.
pub fn parse_batch(
    bytes: &[u8],
    path: &Path,
    classes: usize,
) -> Result<(Vec<u8>, Vec<u8>), CifarError> {
    if bytes.is_empty() {
        return Err(CifarError::Empty {
            path: path.to_path_buf(),
        });
    }
    if !bytes.len().is_multiple_of(RECORD_BYTES) {
        return Err(CifarError::Truncated {
            path: path.to_path_buf(),
            size: bytes.len(),
            record: bytes.len() / RECORD_BYTES,
            partial: bytes.len() % RECORD_BYTES,
        });
    }
    let records = bytes.len() / RECORD_BYTES;
    let mut pixels = Vec::with_capacity(records * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(records);
    for (record, chunk) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
        let value = chunk[0];
        if value as usize >= classes {
            return Err(CifarError::LabelOutOfRange {
                path: path.to_path_buf(),
                record,
                value,
                classes,
            });
        }
        labels.push(value);
        pixels.extend_from_slice(&chunk[1..]);
    }
    Ok((pixels, labels))
}

/// Reads one batch file.
pub fn read_batch(path: &Path, classes: usize) -> Result<(Vec<u8>, Vec<u8>), CifarError> {
    let bytes = std::fs::read(path).map_err(|source| CifarError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    parse_batch(&bytes, path, classes)
}

/// The class names in `batches.meta.txt` (its non-empty lines); exactly `expected` of them.
pub fn read_class_names(path: &Path, expected: usize) -> Result<Vec<String>, CifarError> {
    let text = std::fs::read_to_string(path).map_err(|source| CifarError::Io {
        path: path.to_path_buf(),
        cause: source,
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    if names.len() != expected {
        return Err(CifarError::BadMeta {
            path: path.to_path_buf(),
            found: names.len(),
            expected,
        });
    }
    Ok(names)
}

/// Reads the given batch files, in order, into one [`Dataset`] with `class_names`.
pub fn load_batches(paths: &[&Path], class_names: &[String]) -> Result<Dataset, CifarError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for path in paths {
        let (batch_pixels, batch_labels) = read_batch(path, class_names.len())?;
        pixels.extend_from_slice(&batch_pixels);
        labels.extend_from_slice(&batch_labels);
    }
    Ok(Dataset::from_pixels(
        pixels,
        labels,
        IMAGE_SHAPE,
        class_names.to_vec(),
    ))
}

/// The class names of the folder holding `batches.meta.txt`, else the built-in ones.
pub fn class_names_in(dir: &Path) -> Result<Vec<String>, CifarError> {
    let meta = dir.join(META_FILE);
    if meta.is_file() {
        read_class_names(&meta, CIFAR10_CLASSES.len())
    } else {
        Ok(CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect())
    }
}

/// The bytes of a batch file holding `labels.len()` records: used to craft test data.
pub fn encode_batch(pixels: &[u8], labels: &[u8]) -> Vec<u8> {
    assert_eq!(pixels.len(), labels.len() * IMAGE_BYTES, "pixel count");
    let mut out = Vec::with_capacity(labels.len() * RECORD_BYTES);
    for (label, image) in labels.iter().zip(pixels.chunks_exact(IMAGE_BYTES)) {
        out.push(*label);
        out.extend_from_slice(image);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    fn error_text<T: std::fmt::Debug>(result: Result<T, CifarError>) -> String {
        let text = result.expect_err("expected an error").to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    /// `count` images whose pixel `p` is `(7 * index + p) % 256`, labels `index % 10`.
    fn records(count: usize) -> (Vec<u8>, Vec<u8>) {
        let pixels = (0..count * IMAGE_BYTES)
            .map(|j| ((j / IMAGE_BYTES) * 7 + j % IMAGE_BYTES) as u8)
            .collect();
        let labels = (0..count).map(|i| (i % 10) as u8).collect();
        (pixels, labels)
    }

    #[test]
    fn reads_batches_in_order_with_their_class_names() {
        let dir = temp_dir("cifar-ok");
        let (pixels, labels) = records(5);
        let first = dir.path().join("data_batch_1.bin");
        let second = dir.path().join("data_batch_2.bin");
        std::fs::write(
            &first,
            encode_batch(&pixels[..3 * IMAGE_BYTES], &labels[..3]),
        )
        .unwrap();
        std::fs::write(
            &second,
            encode_batch(&pixels[3 * IMAGE_BYTES..], &labels[3..]),
        )
        .unwrap();
        std::fs::write(
            dir.path().join(META_FILE),
            "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
        )
        .unwrap();
        let names = class_names_in(dir.path()).unwrap();
        assert_eq!(names[9], "truck");
        let data = load_batches(&[&first, &second], &names).unwrap();
        assert_eq!(
            (data.n, data.channels, data.height, data.width, data.classes),
            (5, 3, 32, 32, 10)
        );
        assert_eq!(data.labels, labels);
        assert_eq!(data.image(4), &pixels[4 * IMAGE_BYTES..]);
        // The green plane of image 1 starts 1,024 bytes into it.
        assert_eq!(data.image(1)[1024], ((7 + 1024) % 256) as u8);
    }

    #[test]
    fn rejects_truncated_empty_and_mislabelled_files() {
        let dir = temp_dir("cifar-bad");
        let (pixels, labels) = records(3);
        let good = encode_batch(&pixels, &labels);
        let path = dir.path().join("data_batch_3.bin");

        std::fs::write(&path, &good[..good.len() - 10]).unwrap();
        let text = error_text(read_batch(&path, 10));
        assert!(text.contains("data_batch_3.bin: file size"), "{text}");
        assert!(
            text.contains("multiple of the 3073-byte record")
                && text.contains("record 2 is truncated after 3063 bytes"),
            "{text}"
        );

        std::fs::write(&path, []).unwrap();
        let text = error_text(read_batch(&path, 10));
        assert!(
            text.contains("data_batch_3.bin: file size: the file is empty"),
            "{text}"
        );

        let mut bad_label = good.clone();
        bad_label[RECORD_BYTES] = 10;
        std::fs::write(&path, &bad_label).unwrap();
        let text = error_text(read_batch(&path, 10));
        assert!(
            text.contains("data_batch_3.bin: record 1: label byte 10, expected < 10"),
            "{text}"
        );

        let text = error_text(read_batch(&dir.path().join("test_batch.bin"), 10));
        assert!(text.contains("test_batch.bin: cannot read file"), "{text}");

        std::fs::write(dir.path().join(META_FILE), "cat\ndog\n").unwrap();
        let text = error_text(class_names_in(dir.path()));
        assert!(
            text.contains("batches.meta.txt: class names: found 2 non-empty lines, expected 10"),
            "{text}"
        );
    }
}
