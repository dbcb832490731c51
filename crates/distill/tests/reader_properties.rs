//! Property tests of the readers of outside input: IDX (raw and gzip), CIFAR batches, CSV,
//! config files and cached teacher logits. Arbitrary bytes and mutated valid files never
//! panic; what is accepted is no larger than the input justifies. Cases per property: 256,
//! or `PROPTEST_CASES`.

use std::io::Write;
use std::path::Path;

use dk_distill::config::parse_config_text;
use dk_distill::data::cifar::{IMAGE_BYTES, encode_batch, parse_batch};
use dk_distill::data::idx::{LABELS_MAGIC, parse_images, parse_labels, read_idx, write};
use dk_distill::data::tabular::{CsvOptions, read_csv};
use dk_distill::teacher_cache::{Lookup, decode, encode};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig::with_cases(cases)
}

/// A temporary file whose name ends in `name`, written with `bytes`; removed when dropped.
fn scratch(name: &str, bytes: &[u8]) -> tempfile::TempPath {
    let mut file = tempfile::Builder::new()
        .prefix("dk-distill-prop-")
        .suffix(name)
        .tempfile()
        .unwrap();
    file.write_all(bytes).unwrap();
    file.into_temp_path()
}

/// `bytes` with a few bytes overwritten and maybe cut short.
fn mutate(
    mut bytes: Vec<u8>,
    edits: &[(prop::sample::Index, u8)],
    cut: Option<prop::sample::Index>,
) -> Vec<u8> {
    if !bytes.is_empty() {
        for (at, value) in edits {
            let at = at.index(bytes.len());
            bytes[at] = *value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len() + 1));
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(prop::sample::Index, u8)>> {
    prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6)
}

/// A valid small IDX image file: 3 images of 2x2.
fn valid_images() -> Vec<u8> {
    write::images(3, 2, 2, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn idx_parsers_take_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let path = Path::new("arbitrary");
        if let Ok(images) = parse_images(&bytes, path) {
            prop_assert_eq!(images.pixels.len(), images.n * images.height * images.width);
            prop_assert!(images.pixels.len() <= bytes.len());
        }
        if let Ok(labels) = parse_labels(&bytes, path, 10) {
            prop_assert!(labels.len() <= bytes.len());
        }
    }

    #[test]
    fn mutated_idx_files_read_or_fail_cleanly(
        edits in edits(),
        cut in prop::option::of(any::<prop::sample::Index>()),
        gzip in any::<bool>(),
    ) {
        let mut bytes = mutate(valid_images(), &edits, cut);
        if gzip {
            bytes = write::gzip(&bytes);
        }
        let path = scratch("mutated-images", &bytes);
        if let Ok(images) = dk_distill::data::idx::read_images(&path) {
            prop_assert_eq!(images.pixels.len(), images.n * images.height * images.width);
        }
        // A damaged gzip stream is refused too.
        let damaged = mutate(write::gzip(&valid_images()), &edits, cut);
        let path = scratch("damaged.gz", &damaged);
        let _ = dk_distill::data::idx::read_images(&path);
    }

    #[test]
    fn gzip_idx_reads_stop_at_what_the_header_promises(
        count in 0usize..16,
        extra in 0usize..4096,
    ) {
        let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
        let mut bytes = write::labels(&labels);
        bytes.extend(std::iter::repeat_n(0u8, extra));
        let path = scratch("padded-labels.gz", &write::gzip(&bytes));
        match read_idx(&path, LABELS_MAGIC) {
            Ok(read) => {
                prop_assert_eq!(extra, 0);
                prop_assert_eq!(read.len(), 8 + count);
            }
            Err(err) => {
                prop_assert!(extra > 0);
                prop_assert!(err.to_string().contains("trailing bytes"), "{}", err);
            }
        }
    }

    #[test]
    fn cifar_batches_take_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..8000),
        edits in edits(),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let path = Path::new("batch.bin");
        if let Ok((pixels, labels)) = parse_batch(&bytes, path, 10) {
            prop_assert_eq!(pixels.len(), labels.len() * IMAGE_BYTES);
        }
        let valid = encode_batch(&vec![9; 2 * IMAGE_BYTES], &[1, 2]);
        let _ = parse_batch(&mutate(valid, &edits, cut), path, 10);
    }

    #[test]
    fn csv_files_read_or_fail_cleanly(
        text in "([-0-9a-z.e,\" ]{0,12}\n){0,6}",
        header in prop::option::of(any::<bool>()),
    ) {
        let path = scratch("table.csv", text.as_bytes());
        let options = CsvOptions { label: None, header };
        if let Ok(table) = read_csv(&path, &options) {
            prop_assert_eq!(table.features.len(), table.labels.len() * table.feature_count);
            prop_assert!(table.features.iter().all(|v| v.is_finite()));
            if let Ok(classes) = table.class_names() {
                let data = table.to_dataset(&classes).expect("the training file's own labels");
                prop_assert_eq!(data.n, table.labels.len());
            }
        }
    }

    #[test]
    fn csv_bytes_that_are_not_text_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let path = scratch("bytes.csv", &bytes);
        let _ = read_csv(&path, &CsvOptions::default()).and_then(|t| t.class_names());
    }

    #[test]
    fn config_text_parses_or_names_a_line(text in "([a-z_.\\[\\]]{0,12} ?= ?[-0-9a-z\"\\[\\],.e]{0,12}\n){0,5}") {
        match parse_config_text(&text, Path::new("fuzz.toml"), None) {
            Ok(config) => {
                let _ = config.problems();
            }
            Err(err) => {
                let message = err.to_string();
                prop_assert!(message.starts_with("fuzz.toml:"), "{}", message);
                prop_assert!(!message.contains('\n'), "{}", message);
            }
        }
    }

    #[test]
    fn cached_logits_are_checked_never_trusted(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        edits in edits(),
        cut in prop::option::of(any::<prop::sample::Index>()),
        values in prop::collection::vec(any::<f32>(), 6),
    ) {
        let _ = decode(&bytes, 7, 2, 3);
        let good = encode(7, 2, 3, &values);
        let all_finite = values.iter().all(|v| v.is_finite());
        prop_assert_eq!(matches!(decode(&good, 7, 2, 3), Lookup::Hit(_)), all_finite);
        if let Lookup::Hit(hit) = decode(&mutate(good, &edits, cut), 7, 2, 3) {
            prop_assert_eq!(hit.logits.len(), 6);
            prop_assert!(hit.logits.iter().all(|v| v.is_finite()));
        }
    }
}
