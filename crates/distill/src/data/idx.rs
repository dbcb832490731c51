//! Reader for the IDX format shared by MNIST, Fashion-MNIST and KMNIST.
//!
//! An IDX file is a big-endian header followed by raw data: two zero bytes, a type byte
//! (0x08 = unsigned byte, the only type these data sets use), the number of dimensions, then
//! one u32 per dimension. Images are `0x00000803` with dims `[N, H, W]`, labels `0x00000801`
//! with dims `[N]`. Files may be gzip-compressed; that is detected from the gzip magic bytes
//! (`1f 8b`), not from the file name.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use thiserror::Error;

pub use super::dataset::Dataset;

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Everything that can be wrong with an IDX file. Each message names the file, the field,
/// and what was expected, on one line.
#[derive(Debug, Error)]
pub enum IdxError {
    #[error("{path}: cannot read file: {cause}")]
    Io {
        path: PathBuf,
        // In the message, not the error chain, so that `{:#}` names it once.
        cause: std::io::Error,
    },
    #[error("{path}: gzip stream is corrupt or truncated: {cause}")]
    Gzip {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: header: file has {found} bytes, expected at least {expected} for the {field}")]
    ShortHeader {
        path: PathBuf,
        field: &'static str,
        found: usize,
        expected: usize,
    },
    #[error("{path}: magic number: found {found:#010x}, expected {expected:#010x} ({kind})")]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
        kind: &'static str,
    },
    #[error("{path}: {field}: found {found}, expected {expected}")]
    BadDimension {
        path: PathBuf,
        field: &'static str,
        found: usize,
        expected: String,
    },
    #[error(
        "{path}: data size: header promises {expected} bytes after the {header}-byte header, file has {found} ({})",
        if found < expected { "truncated" } else { "trailing bytes" }
    )]
    SizeMismatch {
        path: PathBuf,
        header: usize,
        expected: usize,
        found: usize,
    },
    #[error(
        "{path}: data size: header promises {expected} bytes after the {header}-byte header, the data goes on past that (trailing bytes)"
    )]
    TrailingData {
        path: PathBuf,
        header: usize,
        expected: u64,
    },
    #[error("{path}: label {index}: value {value}, expected < {classes} (the number of classes)")]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        value: u8,
        classes: usize,
    },
    #[error(
        "{images}: image count {image_count} does not match the label count {label_count} of {labels}"
    )]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        image_count: usize,
        label_count: usize,
    },
}

/// The images of one IDX image file.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
}

/// Reads an IDX file whose magic number should be `expected_magic`, decompressing it when
/// it starts with the gzip magic bytes. Reads the header first and then at most the bytes
/// the header promises (and one more, to tell trailing bytes): a small file that inflates
/// far beyond its header, or a header that promises more than the file holds, never makes
/// this allocate more than the data that is really there, up to what the header justifies.
pub fn read_idx(path: &Path, expected_magic: u32) -> Result<Vec<u8>, IdxError> {
    let io = |source| IdxError::Io {
        path: path.to_path_buf(),
        cause: source,
    };
    let mut file = std::io::BufReader::new(std::fs::File::open(path).map_err(io)?);
    let gzip = std::io::BufRead::fill_buf(&mut file)
        .map_err(io)?
        .starts_with(&GZIP_MAGIC);
    let mut source: Box<dyn Read> = if gzip {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let read_error = |source| {
        if gzip {
            IdxError::Gzip {
                path: path.to_path_buf(),
                cause: source,
            }
        } else {
            IdxError::Io {
                path: path.to_path_buf(),
                cause: source,
            }
        }
    };
    let header_len = 4 + 4 * (expected_magic & 0xff) as usize;
    let mut bytes = Vec::with_capacity(header_len);
    (&mut source)
        .take(header_len as u64)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let Some(promised) = promised_bytes(&bytes, expected_magic) else {
        // Too short or another magic: parse_header says which.
        return Ok(bytes);
    };
    (&mut source)
        .take(promised.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if (bytes.len() - header_len) as u64 > promised {
        return Err(IdxError::TrailingData {
            path: path.to_path_buf(),
            header: header_len,
            expected: promised,
        });
    }
    Ok(bytes)
}

/// The data bytes a complete header of magic `expected_magic` promises (saturating), or
/// `None` when `header` is not such a header.
fn promised_bytes(header: &[u8], expected_magic: u32) -> Option<u64> {
    let ndims = (expected_magic & 0xff) as usize;
    if header.len() < 4 + 4 * ndims || header[..4] != expected_magic.to_be_bytes() {
        return None;
    }
    Some(
        header[4..4 + 4 * ndims]
            .chunks_exact(4)
            .map(|d| u64::from(u32::from_be_bytes([d[0], d[1], d[2], d[3]])))
            .fold(1u64, u64::saturating_mul),
    )
}

/// Checks the magic number and dimension count, returns the dimensions.
fn parse_header(
    bytes: &[u8],
    path: &Path,
    expected_magic: u32,
    kind: &'static str,
) -> Result<Vec<usize>, IdxError> {
    let ndims = (expected_magic & 0xff) as usize;
    let header_len = 4 + 4 * ndims;
    if bytes.len() < 4 {
        return Err(IdxError::ShortHeader {
            path: path.to_path_buf(),
            field: "magic number",
            found: bytes.len(),
            expected: 4,
        });
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(IdxError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: expected_magic,
            kind,
        });
    }
    if bytes.len() < header_len {
        return Err(IdxError::ShortHeader {
            path: path.to_path_buf(),
            field: "dimension sizes",
            found: bytes.len(),
            expected: header_len,
        });
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let at = 4 + 4 * d;
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize
        })
        .collect();
    // Saturate so an absurd header reads as "file too short", never as an overflow.
    let expected = dims.iter().fold(1usize, |acc, &d| acc.saturating_mul(d));
    let found = bytes.len() - header_len;
    if found != expected {
        return Err(IdxError::SizeMismatch {
            path: path.to_path_buf(),
            header: header_len,
            expected,
            found,
        });
    }
    Ok(dims)
}

/// Parses the bytes of an image file (`0x00000803`, dims `[N, H, W]`).
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<IdxImages, IdxError> {
    let dims = parse_header(bytes, path, IMAGES_MAGIC, "unsigned-byte images, 3 dims")?;
    for (field, &size) in ["image height", "image width"].iter().zip(&dims[1..]) {
        if size == 0 {
            return Err(IdxError::BadDimension {
                path: path.to_path_buf(),
                field,
                found: 0,
                expected: "at least 1".into(),
            });
        }
    }
    Ok(IdxImages {
        n: dims[0],
        height: dims[1],
        width: dims[2],
        pixels: bytes[16..].to_vec(),
    })
}

/// Parses the bytes of a label file (`0x00000801`, dims `[N]`); every label must be `< classes`.
pub fn parse_labels(bytes: &[u8], path: &Path, classes: usize) -> Result<Vec<u8>, IdxError> {
    parse_header(bytes, path, LABELS_MAGIC, "unsigned-byte labels, 1 dim")?;
    let labels = bytes[8..].to_vec();
    if let Some((index, &value)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &value)| value as usize >= classes)
    {
        return Err(IdxError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            value,
            classes,
        });
    }
    Ok(labels)
}

/// Reads an image file, gzip or raw.
pub fn read_images(path: &Path) -> Result<IdxImages, IdxError> {
    parse_images(&read_idx(path, IMAGES_MAGIC)?, path)
}

/// Reads a label file, gzip or raw.
pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<u8>, IdxError> {
    parse_labels(&read_idx(path, LABELS_MAGIC)?, path, classes)
}

/// Reads an image file and its label file into a [`Dataset`] whose classes are `class_names`.
pub fn load_dataset(
    images_path: &Path,
    labels_path: &Path,
    class_names: &[&str],
) -> Result<Dataset, IdxError> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path, class_names.len())?;
    if images.n != labels.len() {
        return Err(IdxError::CountMismatch {
            images: images_path.to_path_buf(),
            labels: labels_path.to_path_buf(),
            image_count: images.n,
            label_count: labels.len(),
        });
    }
    Ok(Dataset::from_pixels(
        images.pixels,
        labels,
        [1, images.height, images.width],
        class_names.iter().map(|s| s.to_string()).collect(),
    ))
}

/// Encoders for writing IDX files: used to craft test data and by tools that export subsets.
pub mod write {
    use std::io::Write;

    /// The bytes of an image file holding `n` images of `height x width`.
    pub fn images(n: usize, height: usize, width: usize, pixels: &[u8]) -> Vec<u8> {
        assert_eq!(pixels.len(), n * height * width, "pixel count");
        let mut out = super::IMAGES_MAGIC.to_be_bytes().to_vec();
        for dim in [n, height, width] {
            out.extend_from_slice(&(dim as u32).to_be_bytes());
        }
        out.extend_from_slice(pixels);
        out
    }

    /// The bytes of a label file.
    pub fn labels(labels: &[u8]) -> Vec<u8> {
        let mut out = super::LABELS_MAGIC.to_be_bytes().to_vec();
        out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        out.extend_from_slice(labels);
        out
    }

    /// Gzip-compresses `bytes`.
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).expect("writing to memory");
        encoder.finish().expect("writing to memory")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    fn class_names(count: usize) -> Vec<&'static str> {
        FASHION_MNIST_CLASSES[..count].to_vec()
    }

    /// Three 2x3 images with pixel value = 10 * image + position, labels 0, 2, 1.
    fn tiny_files(dir: &tempfile::TempDir, gzip: bool) -> (PathBuf, PathBuf) {
        let pixels: Vec<u8> = (0..3u8)
            .flat_map(|i| (0..6u8).map(move |p| 10 * i + p))
            .collect();
        let mut image_bytes = write::images(3, 2, 3, &pixels);
        let mut label_bytes = write::labels(&[0, 2, 1]);
        if gzip {
            image_bytes = write::gzip(&image_bytes);
            label_bytes = write::gzip(&label_bytes);
        }
        let images = dir.path().join("images");
        let labels = dir.path().join("labels");
        std::fs::write(&images, image_bytes).unwrap();
        std::fs::write(&labels, label_bytes).unwrap();
        (images, labels)
    }

    #[test]
    fn reads_raw_and_gzip_files_alike() {
        let dir = temp_dir("idx-ok");
        for gzip in [false, true] {
            let (images, labels) = tiny_files(&dir, gzip);
            let data = load_dataset(&images, &labels, &class_names(3)).unwrap();
            assert_eq!(
                (data.n, data.channels, data.height, data.width, data.classes),
                (3, 1, 2, 3, 3)
            );
            assert_eq!(data.labels, vec![0, 2, 1]);
            assert_eq!(data.image(1), &[10, 11, 12, 13, 14, 15]);
            assert_eq!(data.class_names[2], "Pullover");
            assert_eq!(data.class_counts(), vec![1, 1, 1]);
            let picked = data.select(&[2, 0]);
            assert_eq!(picked.labels, vec![1, 0]);
            assert_eq!(picked.image(0), &[20, 21, 22, 23, 24, 25]);
        }
    }

    fn error_text(result: Result<impl std::fmt::Debug, IdxError>) -> String {
        let text = result.expect_err("expected an error").to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        text
    }

    #[test]
    fn rejects_wrong_magic_naming_file_and_values() {
        let dir = temp_dir("idx-magic");
        let (images, labels) = tiny_files(&dir, false);
        // A label file where an image file is expected, and the reverse.
        let text = error_text(read_images(&labels));
        assert!(
            text.contains("labels") && text.contains("magic number"),
            "{text}"
        );
        assert!(
            text.contains("0x00000801") && text.contains("0x00000803"),
            "{text}"
        );
        let text = error_text(read_labels(&images, 10));
        assert!(text.contains("expected 0x00000801"), "{text}");
    }

    #[test]
    fn rejects_truncated_and_oversized_files() {
        let dir = temp_dir("idx-size");
        let full = write::images(3, 2, 3, &[7; 18]);
        let path = dir.path().join("cut-images");
        std::fs::write(&path, &full[..full.len() - 1]).unwrap();
        let text = error_text(read_images(&path));
        assert!(
            text.contains("truncated") && text.contains("promises 18 bytes"),
            "{text}"
        );
        assert!(text.contains("has 17"), "{text}");

        let mut long = full.clone();
        long.push(0);
        std::fs::write(&path, &long).unwrap();
        let text = error_text(read_images(&path));
        assert!(text.contains("trailing bytes"), "{text}");

        std::fs::write(&path, &full[..10]).unwrap();
        let text = error_text(read_images(&path));
        assert!(
            text.contains("dimension sizes") && text.contains("at least 16"),
            "{text}"
        );

        std::fs::write(&path, [0u8, 0]).unwrap();
        let text = error_text(read_images(&path));
        assert!(text.contains("magic number"), "{text}");

        // Trailing bytes of a gzip file are refused too, after reading one byte of them.
        let mut long_gz = full.clone();
        long_gz.extend_from_slice(&[0; 64]);
        std::fs::write(&path, write::gzip(&long_gz)).unwrap();
        let text = error_text(read_images(&path));
        assert!(
            text.contains("promises 18 bytes") && text.contains("trailing bytes"),
            "{text}"
        );

        // A truncated gzip stream is reported as such.
        let gz = write::gzip(&full);
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let text = error_text(read_images(&path));
        assert!(text.contains("gzip"), "{text}");
    }

    #[test]
    fn a_small_gzip_that_inflates_far_past_its_header_is_not_read_whole() {
        let dir = temp_dir("idx-bomb");
        let path = dir.path().join("bomb-labels.gz");
        // A label header promising 3 labels, then 64 MiB of zeros: about 64 KiB compressed.
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut encoder, &write::labels(&[0, 1, 2])).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut encoder, &zeros).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        assert!(compressed.len() < 1 << 20);
        std::fs::write(&path, &compressed).unwrap();
        let read = read_idx(&path, LABELS_MAGIC).unwrap_err().to_string();
        assert!(
            read.contains("promises 3 bytes after the 8-byte header")
                && read.contains("trailing bytes"),
            "{read}"
        );
    }

    #[test]
    fn rejects_labels_out_of_range_and_count_mismatch() {
        let dir = temp_dir("idx-labels");
        let (images, _) = tiny_files(&dir, false);
        let labels = dir.path().join("bad-labels");
        std::fs::write(&labels, write::labels(&[0, 1, 9])).unwrap();
        let text = error_text(load_dataset(&images, &labels, &class_names(3)));
        assert!(
            text.contains("label 2") && text.contains("value 9"),
            "{text}"
        );
        assert!(text.contains("expected < 3"), "{text}");

        std::fs::write(&labels, write::labels(&[0, 1])).unwrap();
        let text = error_text(load_dataset(&images, &labels, &class_names(3)));
        assert!(
            text.contains("image count 3") && text.contains("label count 2"),
            "{text}"
        );
    }

    #[test]
    fn rejects_zero_sized_images_and_missing_files() {
        let dir = temp_dir("idx-dims");
        let path = dir.path().join("flat");
        std::fs::write(&path, write::images(2, 0, 5, &[])).unwrap();
        let text = error_text(read_images(&path));
        assert!(
            text.contains("image height") && text.contains("at least 1"),
            "{text}"
        );
        let text = error_text(read_images(&dir.path().join("absent")));
        assert!(
            text.contains("absent") && text.contains("cannot read"),
            "{text}"
        );
    }

    #[test]
    fn reads_the_installed_fashion_mnist_test_set() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.join("t10k-labels-idx1-ubyte.gz").exists() {
            eprintln!(
                "skipped: Fashion-MNIST is not installed under {}",
                dir.display()
            );
            return;
        }
        let data = load_dataset(
            &dir.join("t10k-images-idx3-ubyte.gz"),
            &dir.join("t10k-labels-idx1-ubyte.gz"),
            &FASHION_MNIST_CLASSES,
        )
        .unwrap();
        assert_eq!((data.n, data.height, data.width), (10_000, 28, 28));
        // The test set is balanced: 1,000 of each class.
        assert_eq!(data.class_counts(), vec![1000; 10]);
    }
}
