//! The teachers' logits on the transfer set, computed once and cached on disk.
//!
//! The cache is valid only for the exact data and teachers it was computed from: its key is
//! a 128-bit fingerprint of the data (image and label bytes, in transfer-set order) and of
//! every teacher's parameters (its spec and values; not the checkpoint file, whose metadata
//! order varies between writes). Any difference means a different key and a recompute.
//!
//! File layout (little-endian):
//! ```text
//! offset  size  field
//! 0       8     magic "DKLOGIT1"
//! 8       8     N (u64, examples)
//! 16      4     C (u32, classes)
//! 20      4     reserved, 0
//! 24      16    key (u128)
//! 40      8     checksum of the payload (FNV-1a 64)
//! 48      4*N*C payload: f32 logits [N, C], row i = example i of the transfer set
//! ```
//! A file with another magic, N, C or key, the wrong size, or a payload whose checksum does
//! not match is reported as a miss with the reason, and recomputed, never trusted.

use std::path::Path;

use crate::run_dir::write_atomic;

const MAGIC: &[u8; 8] = b"DKLOGIT1";
const HEADER_LEN: usize = 48;

/// FNV-1a, 64-bit: a checksum against torn or corrupted files (not a cryptographic hash).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &byte in bytes {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Builds a cache key from labelled parts. 128-bit FNV-1a over length-prefixed parts, so
/// `("ab", "c")` and `("a", "bc")` differ. Collisions between honest inputs are negligible;
/// it is not meant to resist deliberate forgery.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    state: u128,
}

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint {
            state: 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d,
        }
    }
}

impl Fingerprint {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    pub fn new() -> Fingerprint {
        Fingerprint::default()
    }

    fn absorb(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state ^= byte as u128;
            self.state = self.state.wrapping_mul(Self::PRIME);
        }
    }

    /// Adds one named part (e.g. "train-images", the bytes).
    pub fn part(mut self, name: &str, bytes: &[u8]) -> Fingerprint {
        for piece in [name.as_bytes(), bytes] {
            self.absorb(&(piece.len() as u64).to_le_bytes());
            self.absorb(piece);
        }
        self
    }

    pub fn finish(&self) -> u128 {
        self.state
    }
}

/// A teacher as bytes for [`transfer_key`]: its spec text, then every parameter value.
pub fn teacher_bytes(spec: &str, values: &[Vec<f32>]) -> Vec<u8> {
    let mut bytes = spec.as_bytes().to_vec();
    for tensor in values {
        bytes.extend_from_slice(&(tensor.len() as u64).to_le_bytes());
        bytes.extend_from_slice(bytemuck::cast_slice(tensor));
    }
    bytes
}

/// The key of the teachers' logits on a transfer set: the bytes of the transfer set's
/// examples (pixels, or f32 features through [`crate::data::Storage`]'s `AsRef<[u8]>`) and
/// labels, in order, and each teacher's parameter bytes (in ensemble order, see
/// [`teacher_bytes`]).
pub fn transfer_key(
    images: &(impl AsRef<[u8]> + ?Sized),
    labels: &[u8],
    teacher_checkpoints: &[&[u8]],
) -> u128 {
    let mut fingerprint = Fingerprint::new()
        .part("images", images.as_ref())
        .part("labels", labels);
    for (index, checkpoint) in teacher_checkpoints.iter().enumerate() {
        fingerprint = fingerprint.part(&format!("teacher-{index}"), checkpoint);
    }
    fingerprint.finish()
}

/// Logits `[n, classes]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedLogits {
    pub n: usize,
    pub classes: usize,
    pub logits: Vec<f32>,
}

/// The outcome of a cache lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit(CachedLogits),
    /// Why the file cannot be used (absent, other key, truncated, corrupt, ...).
    Miss(String),
}

/// Serialises logits with their header.
pub fn encode(key: u128, n: usize, classes: usize, logits: &[f32]) -> Vec<u8> {
    assert_eq!(
        logits.len(),
        n * classes,
        "teacher cache: logits are not [{n}, {classes}]"
    );
    let mut payload = Vec::with_capacity(logits.len() * 4);
    for value in logits {
        payload.extend_from_slice(&value.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(n as u64).to_le_bytes());
    out.extend_from_slice(&(classes as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&key.to_le_bytes());
    out.extend_from_slice(&fnv1a64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Checks and decodes a cache file's bytes against the expected key and shape.
pub fn decode(bytes: &[u8], key: u128, n: usize, classes: usize) -> Lookup {
    if bytes.len() < HEADER_LEN {
        return Lookup::Miss(format!("header truncated ({} bytes)", bytes.len()));
    }
    if &bytes[..8] != MAGIC {
        return Lookup::Miss("not a teacher-logits cache file (bad magic)".into());
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let file_n = u64_at(8);
    let file_classes = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let file_key = u128::from_le_bytes(bytes[24..40].try_into().expect("16 bytes"));
    if file_key != key {
        return Lookup::Miss("computed from other data or other teachers (key differs)".into());
    }
    if file_n != n as u64 || file_classes as usize != classes {
        return Lookup::Miss(format!(
            "shape [{file_n}, {file_classes}], expected [{n}, {classes}]"
        ));
    }
    let expected_len = HEADER_LEN + n * classes * 4;
    if bytes.len() != expected_len {
        return Lookup::Miss(format!(
            "size {} bytes, expected {expected_len} (truncated or padded)",
            bytes.len()
        ));
    }
    let payload = &bytes[HEADER_LEN..];
    if fnv1a64(payload) != u64_at(40) {
        return Lookup::Miss("payload checksum mismatch (corrupt)".into());
    }
    let logits: Vec<f32> = payload
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes(chunk.try_into().expect("4 bytes")))
        .collect();
    if let Some(index) = logits.iter().position(|v| !v.is_finite()) {
        return Lookup::Miss(format!(
            "logit {index} is {}: expected finite numbers (never trusted)",
            logits[index]
        ));
    }
    Lookup::Hit(CachedLogits { n, classes, logits })
}

/// Looks `path` up; a missing or unreadable file is a miss.
pub fn load(path: &Path, key: u128, n: usize, classes: usize) -> Lookup {
    match std::fs::read(path) {
        Ok(bytes) => decode(&bytes, key, n, classes),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Lookup::Miss("no cache file".into())
        }
        Err(err) => Lookup::Miss(format!("cannot read: {err}")),
    }
}

/// Writes the cache file atomically.
pub fn store(
    path: &Path,
    key: u128,
    n: usize,
    classes: usize,
    logits: &[f32],
) -> std::io::Result<()> {
    write_atomic(path, &encode(key, n, classes, logits))
}

/// How [`load_or_compute`] got its logits.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Cache,
    /// Recomputed, with the reason the cache was not used.
    Computed {
        reason: String,
    },
}

/// Returns the cached logits when valid, else calls `compute` and stores its result.
pub fn load_or_compute<E>(
    path: &Path,
    key: u128,
    n: usize,
    classes: usize,
    compute: impl FnOnce() -> Result<Vec<f32>, E>,
) -> Result<(CachedLogits, Source), E>
where
    E: From<std::io::Error>,
{
    match load(path, key, n, classes) {
        Lookup::Hit(cached) => Ok((cached, Source::Cache)),
        Lookup::Miss(reason) => {
            let logits = compute()?;
            store(path, key, n, classes, &logits)?;
            Ok((
                CachedLogits { n, classes, logits },
                Source::Computed { reason },
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::temp_dir;

    #[test]
    fn teacher_bytes_follow_the_values_and_the_spec() {
        let values = vec![vec![1.0f32, 2.0], vec![3.0]];
        let key = |spec: &str, values: &[Vec<f32>]| {
            transfer_key(&[0u8; 4], &[1], &[&teacher_bytes(spec, values)])
        };
        assert_eq!(key("2-1", &values), key("2-1", &values.clone()));
        assert_ne!(key("2-1", &values), key("2-2", &values));
        let mut nudged = values.clone();
        nudged[1][0] = 3.0001;
        assert_ne!(key("2-1", &values), key("2-1", &nudged));
        // The same numbers split differently between tensors are another model.
        assert_ne!(
            key("2-1", &values),
            key("2-1", &[vec![1.0], vec![2.0, 3.0]])
        );
    }

    #[test]
    fn fnv_matches_the_published_test_vectors() {
        // Reference values of FNV-1a 64 for "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        // FNV-1a 128 of "" is its offset basis.
        assert_eq!(
            Fingerprint::new().finish(),
            0x6c62_272e_07bb_0142_62b8_2175_6295_c58d
        );
    }

    #[test]
    fn keys_depend_on_every_input() {
        let base = transfer_key(&[1, 2, 3], &[0], &[b"teacher a", b"teacher b"]);
        assert_eq!(
            base,
            transfer_key(&[1, 2, 3], &[0], &[b"teacher a", b"teacher b"])
        );
        assert_ne!(
            base,
            transfer_key(&[1, 2, 4], &[0], &[b"teacher a", b"teacher b"])
        );
        assert_ne!(
            base,
            transfer_key(&[1, 2, 3], &[1], &[b"teacher a", b"teacher b"])
        );
        assert_ne!(
            base,
            transfer_key(&[1, 2, 3], &[0], &[b"teacher b", b"teacher a"])
        );
        assert_ne!(base, transfer_key(&[1, 2, 3], &[0], &[b"teacher a"]));
        // Tabular features count by their f32 bits.
        use crate::data::Storage;
        let features = |v: f32| transfer_key(&Storage::Features(vec![0.5, v]), &[0], &[b"t"]);
        assert_eq!(features(1.0), features(1.0));
        assert_ne!(features(1.0), features(1.0 + f32::EPSILON));
        assert_ne!(
            transfer_key(&Storage::Pixels(vec![1, 2, 3]), &[0], &[b"t"]),
            transfer_key(&Storage::Pixels(vec![1, 2, 4]), &[0], &[b"t"])
        );
        // Boundaries matter: moving a byte from one part to the next changes the key.
        assert_ne!(
            Fingerprint::new().part("x", b"ab").part("y", b"c").finish(),
            Fingerprint::new().part("x", b"a").part("y", b"bc").finish()
        );
    }

    #[test]
    fn computes_once_then_hits() {
        let dir = temp_dir("cache-hit");
        let path = dir.path().join("transfer-logits.bin");
        let logits = vec![0.5f32, -1.25, 3.0, 7.5, -0.0, 1e-30];
        let mut calls = 0;
        let mut get = |key: u128| {
            load_or_compute::<std::io::Error>(&path, key, 3, 2, || {
                calls += 1;
                Ok(logits.clone())
            })
            .unwrap()
        };
        let (first, source) = get(7);
        assert_eq!(
            source,
            Source::Computed {
                reason: "no cache file".into()
            }
        );
        let (second, source) = get(7);
        assert_eq!(source, Source::Cache);
        assert_eq!(first, second);
        assert_eq!(second.logits, logits, "bit-exact round trip");
        let (_, source) = get(8);
        assert!(matches!(source, Source::Computed { reason } if reason.contains("key differs")));
        assert_eq!(calls, 2);
    }

    #[test]
    fn damaged_files_are_misses_with_reasons() {
        let good = encode(42, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(matches!(decode(&good, 42, 2, 3), Lookup::Hit(_)));
        let reason = |bytes: &[u8]| match decode(bytes, 42, 2, 3) {
            Lookup::Miss(reason) => reason,
            Lookup::Hit(_) => panic!("damaged file accepted"),
        };
        assert!(reason(&good[..good.len() - 1]).contains("truncated"));
        assert!(reason(&good[..20]).contains("header truncated"));
        let mut padded = good.clone();
        padded.push(0);
        assert!(reason(&padded).contains("padded"));
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 0x40;
        assert!(reason(&flipped).contains("checksum"));
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(reason(&magic).contains("bad magic"));
        assert!(
            matches!(decode(&good, 42, 3, 2), Lookup::Miss(r) if r.contains("shape [2, 3], expected [3, 2]"))
        );

        // Non-finite logits with a valid checksum are never trusted.
        let nan = encode(42, 2, 3, &[1.0, 2.0, f32::NAN, 4.0, 5.0, 6.0]);
        assert_eq!(
            reason(&nan),
            "logit 2 is NaN: expected finite numbers (never trusted)"
        );
        let inf = encode(42, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, f32::INFINITY]);
        assert!(reason(&inf).starts_with("logit 5 is inf"));

        // On disk: a truncated file is recomputed and replaced.
        let dir = temp_dir("cache-damaged");
        let path = dir.path().join("logits.bin");
        std::fs::write(&path, &good[..good.len() - 4]).unwrap();
        let (cached, source) =
            load_or_compute::<std::io::Error>(&path, 42, 2, 3, || Ok(vec![9.0; 6])).unwrap();
        assert!(matches!(source, Source::Computed { .. }));
        assert_eq!(cached.logits, vec![9.0; 6]);
        assert!(matches!(load(&path, 42, 2, 3), Lookup::Hit(_)));
    }
}
