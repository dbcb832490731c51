//! Finding the files of a data set, and downloading them when they are nowhere.
//!
//! Folders are searched in this order; the first one holding all the data set's files wins:
//! 1. `--data-dir DIR` (explicit: when given and incomplete, that is an error, no fallback),
//! 2. `$DARKKNOWLEDGE_DATA` (explicit too, same rule),
//! 3. the user cache: `$XDG_CACHE_HOME/darkknowledge/<name>`, else `~/.cache/darkknowledge/<name>`
//!    (`%LOCALAPPDATA%\darkknowledge\<name>` on Windows),
//! 4. the system folder `/usr/share/datasets/<name>` (Debian's `dataset-fashion-mnist`).
//!
//! `<name>` is the data set's [`DatasetSource::folder`]. `--data-dir DIR` and
//! `$DARKKNOWLEDGE_DATA` may hold one subfolder per data set (`DIR/<name>`, taken when it
//! exists) or the files themselves; the variable holds the files themselves only for data
//! sets whose file names are their own ([`DatasetSource::env_flat`]), and is passed over for
//! the others when it has no `<name>` subfolder.
//!
//! IDX files may be gzip-compressed (`<stem>.gz`) or raw (`<stem>`); `.gz` is preferred.
//! CIFAR-10's batches may sit in the folder or in its `cifar-10-batches-bin` subfolder.
//! When no folder is complete, the missing files are downloaded into the cache folder
//! (see [`Fetch`]), checked by parsing, and only then given their final names.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

use super::cifar::{self, CifarError};
use super::idx::{self, Dataset, IdxError};
pub use super::sources::{
    CIFAR10, DatasetSource, FASHION_MNIST, Format, IDX_FILE_STEMS, KMNIST, MNIST,
};

/// The environment variable naming a folder that holds the data files.
pub const DATA_ENV_VAR: &str = "DARKKNOWLEDGE_DATA";

/// Why the files of a data set are not valid.
#[derive(Debug, Error)]
pub enum DataError {
    #[error(transparent)]
    Idx(#[from] IdxError),
    #[error(transparent)]
    Cifar(#[from] CifarError),
    #[error("{path}: {field}: found {found}, expected {expected}")]
    Count {
        path: PathBuf,
        field: &'static str,
        found: usize,
        expected: usize,
    },
    #[error(
        "{test}: the test images are {test_size}, but the training images ({train}) are {train_size}; both sets need one image size"
    )]
    ShapeMismatch {
        train: PathBuf,
        test: PathBuf,
        train_size: String,
        test_size: String,
    },
}

/// Which search location a folder came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    DataDirFlag,
    EnvironmentVariable,
    UserCache,
    SystemFolder,
    Downloaded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::DataDirFlag => "--data-dir",
            Origin::EnvironmentVariable => DATA_ENV_VAR,
            Origin::UserCache => "user cache",
            Origin::SystemFolder => "system folder",
            Origin::Downloaded => "downloaded into the user cache",
        })
    }
}

/// The files of a data set, found in one folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFiles {
    /// The folder searched (CIFAR-10's batches may sit in a subfolder of it).
    pub dir: PathBuf,
    pub origin: Origin,
    /// One path per [`DatasetSource::files`] entry, in that order.
    pub files: Vec<PathBuf>,
}

impl DataFiles {
    /// All paths, in [`DatasetSource::files`] order.
    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(PathBuf::as_path).collect()
    }

    /// Reads and validates the training and test sets.
    pub fn load(&self, source: &DatasetSource) -> Result<(Dataset, Dataset), DataError> {
        match source.format {
            Format::Idx => {
                let [train_images, train_labels, test_images, test_labels] = &self.files[..] else {
                    panic!("an IDX data set has four files");
                };
                let train = idx::load_dataset(train_images, train_labels, source.class_names)?;
                let test = idx::load_dataset(test_images, test_labels, source.class_names)?;
                if train.example_shape() != test.example_shape() {
                    return Err(DataError::ShapeMismatch {
                        train: train_images.clone(),
                        test: test_images.clone(),
                        train_size: train.image_size_text(),
                        test_size: test.image_size_text(),
                    });
                }
                Ok((train, test))
            }
            Format::CifarBinary { .. } => {
                let folder = self.files[0].parent().unwrap_or(&self.dir);
                let names = cifar::class_names_in(folder)?;
                let (train, test) = self.files.split_at(self.files.len() - 1);
                let train: Vec<&Path> = train.iter().map(PathBuf::as_path).collect();
                Ok((
                    cifar::load_batches(&train, &names)?,
                    cifar::load_batches(&[&test[0]], &names)?,
                ))
            }
        }
    }
}

/// The parts of the process environment the search depends on (a struct so tests can fake it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchEnv {
    /// `$DARKKNOWLEDGE_DATA`.
    pub data_var: Option<PathBuf>,
    /// `$XDG_CACHE_HOME`.
    pub xdg_cache_home: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `%LOCALAPPDATA%` (Windows).
    pub local_app_data: Option<PathBuf>,
    /// The system data folder root, `/usr/share/datasets` on Unix.
    pub system_root: Option<PathBuf>,
}

impl SearchEnv {
    /// Reads the real environment. Empty variables count as unset.
    pub fn from_process() -> SearchEnv {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        SearchEnv {
            data_var: var(DATA_ENV_VAR),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
            local_app_data: var("LOCALAPPDATA"),
            system_root: cfg!(unix).then(|| PathBuf::from("/usr/share/datasets")),
        }
    }

    /// The user cache folder for `source`, if the environment names one.
    pub fn cache_dir(&self, source: &DatasetSource) -> Option<PathBuf> {
        let base = self
            .xdg_cache_home
            .clone()
            .or_else(|| self.home.as_ref().map(|home| home.join(".cache")))
            .or_else(|| self.local_app_data.clone())?;
        Some(base.join("darkknowledge").join(source.folder))
    }
}

/// Why the data could not be found or fetched. Each message is one line and says what to do.
#[derive(Debug, Error)]
pub enum LocateError {
    #[error("{origin} {dir} {problem}")]
    NotAFolder {
        origin: Origin,
        dir: PathBuf,
        problem: &'static str,
    },
    #[error("{origin} folder {dir} lacks {missing}")]
    Incomplete {
        origin: Origin,
        dir: PathBuf,
        missing: String,
    },
    #[error(
        "{name} not found and the download failed ({reason}). Get the data one of these ways: \
         {ways}, or pass --data-dir DIR"
    )]
    DownloadFailed {
        name: &'static str,
        reason: String,
        ways: String,
    },
    #[error("downloaded {path} is not valid: {cause}")]
    DownloadInvalid { path: PathBuf, cause: DataError },
}

/// The folder of `source` under an explicit folder `dir`: `dir/<folder>` when it exists,
/// else `dir` itself when `flat` allows, else `None`.
fn explicit_folder(dir: &Path, source: &DatasetSource, flat: bool) -> Option<PathBuf> {
    let nested = dir.join(source.folder);
    if nested.is_dir() {
        Some(nested)
    } else {
        flat.then(|| dir.to_path_buf())
    }
}

/// The folders to search, in order, with where each came from.
pub fn search_order(
    data_dir: Option<&Path>,
    env: &SearchEnv,
    source: &DatasetSource,
) -> Vec<(Origin, PathBuf)> {
    let mut order = Vec::new();
    if let Some(dir) = data_dir.and_then(|dir| explicit_folder(dir, source, true)) {
        order.push((Origin::DataDirFlag, dir));
    }
    if let Some(dir) = env
        .data_var
        .as_deref()
        .and_then(|dir| explicit_folder(dir, source, source.env_flat))
    {
        order.push((Origin::EnvironmentVariable, dir));
    }
    if let Some(dir) = env.cache_dir(source) {
        order.push((Origin::UserCache, dir));
    }
    if let Some(root) = &env.system_root {
        order.push((Origin::SystemFolder, root.join(source.folder)));
    }
    order
}

/// The path of `name` in `dir` (for IDX `.gz` preferred over raw), or `None`.
fn find_file(dir: &Path, name: &str, format: Format) -> Option<PathBuf> {
    let candidates = match format {
        Format::Idx => vec![format!("{name}.gz"), name.to_string()],
        Format::CifarBinary { .. } => vec![name.to_string()],
    };
    candidates
        .into_iter()
        .map(|candidate| dir.join(candidate))
        .find(|path| path.is_file())
}

/// The files of `source` found directly in `dir`, one `Option` per file.
fn find_files(dir: &Path, source: &DatasetSource) -> Vec<Option<PathBuf>> {
    source
        .files
        .iter()
        .map(|name| find_file(dir, name, source.format))
        .collect()
}

/// The files in `dir` (or, for CIFAR-10, its subfolder), or the names of the missing ones.
pub fn find_in_dir(
    dir: &Path,
    origin: Origin,
    source: &DatasetSource,
) -> Result<DataFiles, Vec<String>> {
    let mut found = find_files(dir, source);
    if let Format::CifarBinary { subfolder } = source.format {
        let nested = find_files(&dir.join(subfolder), source);
        if found.iter().any(Option::is_none) && nested.iter().all(Option::is_some) {
            found = nested;
        }
    }
    let missing: Vec<String> = source
        .files
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| match source.format {
            Format::Idx => format!("{name}(.gz)"),
            Format::CifarBinary { .. } => name.to_string(),
        })
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(DataFiles {
        dir: dir.to_path_buf(),
        origin,
        files: found.into_iter().flatten().collect(),
    })
}

/// Searches the folders in [`search_order`]; `Ok(None)` when no folder is complete.
pub fn locate(
    data_dir: Option<&Path>,
    env: &SearchEnv,
    source: &DatasetSource,
) -> Result<Option<DataFiles>, LocateError> {
    for (origin, dir) in search_order(data_dir, env, source) {
        match find_in_dir(&dir, origin, source) {
            Ok(files) => return Ok(Some(files)),
            Err(missing) => {
                let explicit = matches!(origin, Origin::DataDirFlag | Origin::EnvironmentVariable);
                if explicit && !dir.is_dir() {
                    let problem = if dir.exists() {
                        "is not a folder"
                    } else {
                        "does not exist"
                    };
                    return Err(LocateError::NotAFolder {
                        origin,
                        dir,
                        problem,
                    });
                }
                if explicit {
                    let mut missing = missing.join(", ");
                    if let Format::CifarBinary { subfolder } = source.format {
                        missing.push_str(&format!(" (directly or in {subfolder}/)"));
                    }
                    return Err(LocateError::Incomplete {
                        origin,
                        dir,
                        missing,
                    });
                }
            }
        }
    }
    Ok(None)
}

/// What to do by hand when the download fails: install, download, unpack.
fn manual_ways(source: &DatasetSource, cache: Option<&Path>) -> String {
    let cache = cache.map_or_else(
        || {
            format!(
                "~/.cache/darkknowledge/{} (no cache folder: HOME is unset)",
                source.folder
            )
        },
        |dir| dir.display().to_string(),
    );
    let download = match source.format {
        Format::Idx => format!(
            "download the files {} from {} into {cache}",
            source
                .files
                .iter()
                .map(|stem| format!("{stem}.gz"))
                .collect::<Vec<_>>()
                .join(", "),
            source.base_url
        ),
        Format::CifarBinary { subfolder } => format!(
            "download {} and unpack it into {cache} (it holds {subfolder}/)",
            source.base_url
        ),
    };
    match source.install_hint {
        Some(hint) => format!("{hint}, or {download}"),
        None => download,
    }
}

/// Like [`locate`], but downloads the missing files into the user cache when no folder is
/// complete.
pub fn locate_or_download(
    data_dir: Option<&Path>,
    env: &SearchEnv,
    source: &DatasetSource,
    fetcher: &dyn Fetch,
) -> Result<DataFiles, LocateError> {
    if let Some(files) = locate(data_dir, env, source)? {
        return Ok(files);
    }
    let cache = env.cache_dir(source);
    let failed = |reason: String| LocateError::DownloadFailed {
        name: source.name,
        reason,
        ways: manual_ways(source, cache.as_deref()),
    };
    let Some(dir) = cache.clone() else {
        return Err(failed("no cache folder to download into".into()));
    };
    std::fs::create_dir_all(&dir)
        .map_err(|err| failed(format!("cannot create {}: {err}", dir.display())))?;
    match source.format {
        Format::Idx => download_idx(&dir, source, fetcher, &failed)?,
        Format::CifarBinary { subfolder } => {
            download_archive(&dir, subfolder, source, fetcher, &failed)?
        }
    }
    let mut files = find_in_dir(&dir, Origin::Downloaded, source)
        .map_err(|missing| failed(format!("still missing after download: {missing:?}")))?;
    files.origin = Origin::Downloaded;
    Ok(files)
}

/// Fetches each missing IDX file as `<stem>.gz`, checks it, then gives it its final name.
fn download_idx(
    dir: &Path,
    source: &DatasetSource,
    fetcher: &dyn Fetch,
    failed: &dyn Fn(String) -> LocateError,
) -> Result<(), LocateError> {
    for (slot, stem) in source.files.iter().enumerate() {
        if find_file(dir, stem, source.format).is_some() {
            continue;
        }
        let name = format!("{stem}.gz");
        let url = format!("{}/{name}", source.base_url);
        let part = dir.join(format!("{name}.part"));
        fetcher
            .fetch(&url, &part, source.approx_sizes[slot])
            .and_then(|()| check_digest(&part, source, slot))
            .map_err(|reason| {
                let _ = std::fs::remove_file(&part);
                failed(reason)
            })?;
        if let Err(err) = check_downloaded_idx(&part, slot, source) {
            let _ = std::fs::remove_file(&part);
            return Err(LocateError::DownloadInvalid {
                path: dir.join(&name),
                cause: err.into(),
            });
        }
        std::fs::rename(&part, dir.join(&name))
            .map_err(|err| failed(format!("cannot rename {}: {err}", part.display())))?;
    }
    Ok(())
}

/// Fetches the archive, checks its digest, unpacks it into a private folder beside `dir`'s
/// files, moves the files that `dir/subfolder` lacks into it, checks the batches by reading
/// them, and removes the archive. A failed or invalid download removes only what it wrote:
/// files the user had put in `dir/subfolder` stay.
fn download_archive(
    dir: &Path,
    subfolder: &str,
    source: &DatasetSource,
    fetcher: &dyn Fetch,
    failed: &dyn Fn(String) -> LocateError,
) -> Result<(), LocateError> {
    let name = source
        .base_url
        .rsplit('/')
        .next()
        .unwrap_or("archive.tar.gz");
    let part = dir.join(format!("{name}.part"));
    fetcher
        .fetch(source.base_url, &part, source.approx_sizes[0])
        .and_then(|()| check_digest(&part, source, 0))
        .map_err(|reason| {
            let _ = std::fs::remove_file(&part);
            failed(reason)
        })?;
    let staging = dir.join(format!(".{name}.unpack-{}", std::process::id()));
    let unpacked = std::fs::create_dir(&staging)
        .map_err(|err| format!("cannot create {}: {err}", staging.display()))
        .and_then(|()| unpack_tar_gz(&part, &staging));
    let _ = std::fs::remove_file(&part);
    let moved =
        unpacked.and_then(|()| move_missing(&staging.join(subfolder), &dir.join(subfolder)));
    // The staging folder is ours alone: whatever is left in it goes.
    let _ = std::fs::remove_dir_all(&staging);
    let written = moved.map_err(failed)?;
    let checked = find_in_dir(dir, Origin::Downloaded, source)
        .map_err(|missing| DataError::Count {
            path: dir.join(name),
            field: "files",
            found: source.files.len() - missing.len(),
            expected: source.files.len(),
        })
        .and_then(|files| check_counts(&files, source));
    if let Err(err) = checked {
        written.remove();
        return Err(LocateError::DownloadInvalid {
            path: dir.join(name),
            cause: err,
        });
    }
    Ok(())
}

/// The files (and the folder, if it was created) a download put in place.
struct Written {
    files: Vec<PathBuf>,
    created_dir: Option<PathBuf>,
}

impl Written {
    /// Removes exactly what the download wrote.
    fn remove(&self) {
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        if let Some(dir) = &self.created_dir {
            // Only when empty: remove_dir fails on a folder that holds anything else.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Moves each file of `from` that `to` does not hold yet into `to` (created if needed);
/// files already in `to` are left as they are.
fn move_missing(from: &Path, to: &Path) -> Result<Written, String> {
    let created_dir = (!to.is_dir()).then(|| to.to_path_buf());
    std::fs::create_dir_all(to).map_err(|err| format!("cannot create {}: {err}", to.display()))?;
    let mut written = Written {
        files: Vec::new(),
        created_dir,
    };
    let entries = std::fs::read_dir(from)
        .map_err(|err| format!("the archive has no {}: {err}", from.display()));
    let result = entries.and_then(|entries| {
        for entry in entries {
            let entry = entry.map_err(|err| format!("reading {}: {err}", from.display()))?;
            let dest = to.join(entry.file_name());
            if dest.exists() {
                continue;
            }
            std::fs::rename(entry.path(), &dest)
                .map_err(|err| format!("cannot move into {}: {err}", dest.display()))?;
            written.files.push(dest);
        }
        Ok(())
    });
    match result {
        Ok(()) => Ok(written),
        Err(reason) => {
            written.remove();
            Err(reason)
        }
    }
}

/// Checks a downloaded file against the source's SHA-256 digest for download `slot`, when
/// the source has one. The error names the file and both digests.
fn check_digest(path: &Path, source: &DatasetSource, slot: usize) -> Result<(), String> {
    let Some(expected) = source.sha256.get(slot) else {
        return Ok(());
    };
    let found = sha256_hex(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    if found != *expected {
        return Err(format!(
            "{}: SHA-256 {found}, expected {expected} (a damaged or different file; removed)",
            path.display()
        ));
    }
    Ok(())
}

/// The SHA-256 of a file's contents, lowercase hex.
pub fn sha256_hex(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Unpacks a `.tar.gz` archive into `dest` with the `tar` program (on Linux, macOS and
/// Windows 10+ alike, as `curl` is), which keeps an archive reader out of this crate.
fn unpack_tar_gz(archive: &Path, dest: &Path) -> Result<(), String> {
    let output = Command::new("tar")
        .arg("-xzf")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .output()
        .map_err(|err| format!("cannot run tar: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(format!(
        "tar could not unpack {}: {}",
        archive.display(),
        stderr.trim().lines().last().unwrap_or("no message")
    ))
}

/// Loads the data set and compares its example counts with the source's.
fn check_counts(files: &DataFiles, source: &DatasetSource) -> Result<(), DataError> {
    let (train, test) = files.load(source)?;
    for (path, field, found, expected) in [
        (
            &files.files[0],
            "training examples",
            train.n,
            source.train_count,
        ),
        (
            files.files.last().unwrap(),
            "test examples",
            test.n,
            source.test_count,
        ),
    ] {
        if found != expected {
            return Err(DataError::Count {
                path: path.clone(),
                field,
                found,
                expected,
            });
        }
    }
    Ok(())
}

/// Checks a downloaded IDX file by parsing it and comparing its shape with the source's.
fn check_downloaded_idx(path: &Path, slot: usize, source: &DatasetSource) -> Result<(), IdxError> {
    let count = if slot < 2 {
        source.train_count
    } else {
        source.test_count
    };
    let bad = |field: &'static str, found: usize, expected: usize| IdxError::BadDimension {
        path: path.to_path_buf(),
        field,
        found,
        expected: expected.to_string(),
    };
    if slot.is_multiple_of(2) {
        let images = idx::read_images(path)?;
        for (field, found, expected) in [
            ("image count", images.n, count),
            ("image height", images.height, source.height),
            ("image width", images.width, source.width),
        ] {
            if found != expected {
                return Err(bad(field, found, expected));
            }
        }
    } else {
        let labels = idx::read_labels(path, source.class_names.len())?;
        if labels.len() != count {
            return Err(bad("label count", labels.len(), count));
        }
    }
    Ok(())
}

/// Downloads one URL to a file. Implemented by [`CurlFetch`]; tests substitute their own.
pub trait Fetch {
    /// Writes the body of `url` to `dest`; `approx_bytes` sizes the progress display.
    /// The error is a short human-readable reason.
    fn fetch(&self, url: &str, dest: &Path, approx_bytes: u64) -> Result<(), String>;
}

/// Downloads with the `curl` program (present on Linux distributions, macOS and Windows 10+),
/// which keeps TLS and HTTP out of this crate's dependencies. Shows an indicatif progress bar.
pub struct CurlFetch;

impl Fetch for CurlFetch {
    fn fetch(&self, url: &str, dest: &Path, approx_bytes: u64) -> Result<(), String> {
        let mut child = Command::new("curl")
            .args(["--fail", "--location", "--silent", "--show-error"])
            .args(["--connect-timeout", "20", "--retry", "2"])
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run curl: {err}"))?;
        let mut out = std::fs::File::create(dest)
            .map_err(|err| format!("cannot create {}: {err}", dest.display()))?;
        let bar = indicatif::ProgressBar::new(approx_bytes);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(url.rsplit('/').next().unwrap_or(url).to_string());
        let mut body = child.stdout.take().expect("stdout is piped");
        let mut buffer = vec![0u8; 64 * 1024];
        let copy_result = loop {
            match body.read(&mut buffer) {
                Ok(0) => break Ok(()),
                Ok(read) => {
                    if let Err(err) = out.write_all(&buffer[..read]) {
                        break Err(format!("cannot write {}: {err}", dest.display()));
                    }
                    bar.inc(read as u64);
                }
                Err(err) => break Err(format!("reading from curl: {err}")),
            }
        };
        bar.finish_and_clear();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child.wait().map_err(|err| format!("curl: {err}"))?;
        copy_result?;
        if !status.success() {
            let detail = stderr
                .trim()
                .lines()
                .last()
                .unwrap_or("no message")
                .to_string();
            return Err(format!("curl {url}: {detail}"));
        }
        out.sync_all()
            .map_err(|err| format!("cannot write {}: {err}", dest.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::cifar::{IMAGE_BYTES, encode_batch};
    use crate::data::idx::write;
    use crate::data::sources::CIFAR10_FILES;
    use crate::testutil::temp_dir;

    /// A two-class, 2x2-pixel data set with 4 training and 2 test examples.
    const SMALL: DatasetSource = DatasetSource {
        name: "Small",
        folder: "small",
        format: Format::Idx,
        files: &IDX_FILE_STEMS,
        base_url: "https://example.invalid/small",
        approx_sizes: &[100, 100, 100, 100],
        sha256: &[],
        install_hint: Some("`apt-get install dataset-small`"),
        env_flat: true,
        train_count: 4,
        test_count: 2,
        channels: 1,
        height: 2,
        width: 2,
        class_names: &["zero", "one"],
    };

    /// CIFAR-10's layout with one training image per batch and two test images.
    const SMALL_CIFAR: DatasetSource = DatasetSource {
        name: "Small CIFAR",
        folder: "small-cifar",
        format: Format::CifarBinary {
            subfolder: "cifar-10-batches-bin",
        },
        files: &CIFAR10_FILES,
        base_url: "https://example.invalid/small-cifar-binary.tar.gz",
        approx_sizes: &[100],
        sha256: &[],
        install_hint: None,
        env_flat: true,
        train_count: 5,
        test_count: 2,
        channels: 3,
        height: 32,
        width: 32,
        class_names: &crate::data::cifar::CIFAR10_CLASSES,
    };

    fn file_bytes(slot: usize) -> Vec<u8> {
        match slot {
            0 => write::images(4, 2, 2, &[1; 16]),
            1 => write::labels(&[0, 1, 1, 0]),
            2 => write::images(2, 2, 2, &[2; 8]),
            _ => write::labels(&[1, 0]),
        }
    }

    fn fill(dir: &Path, gzip: bool) {
        std::fs::create_dir_all(dir).unwrap();
        for (slot, stem) in IDX_FILE_STEMS.iter().enumerate() {
            let (name, bytes) = if gzip {
                (format!("{stem}.gz"), write::gzip(&file_bytes(slot)))
            } else {
                (stem.to_string(), file_bytes(slot))
            };
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    /// Writes CIFAR batches (one record per training batch, two test records) into `dir`;
    /// `label_of_test` is the first test record's label byte.
    fn fill_cifar(dir: &Path, label_of_test: u8) {
        std::fs::create_dir_all(dir).unwrap();
        for (slot, name) in CIFAR10_FILES.iter().enumerate() {
            let labels = if slot < 5 {
                vec![slot as u8]
            } else {
                vec![label_of_test, 9]
            };
            let pixels = vec![slot as u8 * 40; labels.len() * IMAGE_BYTES];
            std::fs::write(dir.join(name), encode_batch(&pixels, &labels)).unwrap();
        }
    }

    fn env_in(root: &tempfile::TempDir) -> SearchEnv {
        SearchEnv {
            data_var: Some(root.path().join("env")),
            xdg_cache_home: Some(root.path().join("xdg")),
            home: Some(root.path().join("home")),
            local_app_data: None,
            system_root: Some(root.path().join("system")),
        }
    }

    struct Offline;
    impl Fetch for Offline {
        fn fetch(&self, url: &str, _: &Path, _: u64) -> Result<(), String> {
            Err(format!("curl {url}: Could not resolve host"))
        }
    }

    /// Serves the crafted files, optionally corrupting the test labels.
    struct FakeServer {
        corrupt_labels: bool,
    }
    impl Fetch for FakeServer {
        fn fetch(&self, url: &str, dest: &Path, _: u64) -> Result<(), String> {
            let slot = IDX_FILE_STEMS
                .iter()
                .position(|stem| url.ends_with(&format!("/{stem}.gz")))
                .ok_or("unknown url")?;
            let mut bytes = file_bytes(slot);
            if self.corrupt_labels && slot == 3 {
                bytes.push(0);
            }
            std::fs::write(dest, write::gzip(&bytes)).map_err(|err| err.to_string())
        }
    }

    /// Serves a CIFAR-style `.tar.gz` made with the `tar` program from a crafted folder.
    struct FakeArchiveServer {
        staging: PathBuf,
        label_of_test: u8,
    }
    impl Fetch for FakeArchiveServer {
        fn fetch(&self, url: &str, dest: &Path, _: u64) -> Result<(), String> {
            assert_eq!(url, SMALL_CIFAR.base_url);
            fill_cifar(
                &self.staging.join("cifar-10-batches-bin"),
                self.label_of_test,
            );
            let status = Command::new("tar")
                .arg("-czf")
                .arg(dest)
                .arg("-C")
                .arg(&self.staging)
                .arg("cifar-10-batches-bin")
                .status()
                .map_err(|err| err.to_string())?;
            status.success().then_some(()).ok_or("tar failed".into())
        }
    }

    #[test]
    fn search_order_is_flag_env_cache_system() {
        let root = temp_dir("locate-order");
        let mut env = env_in(&root);
        let flag = root.path().join("flag");
        let order: Vec<Origin> = search_order(Some(&flag), &env, &SMALL)
            .into_iter()
            .map(|(origin, _)| origin)
            .collect();
        assert_eq!(
            order,
            [
                Origin::DataDirFlag,
                Origin::EnvironmentVariable,
                Origin::UserCache,
                Origin::SystemFolder
            ]
        );
        // XDG_CACHE_HOME wins over HOME; HOME/.cache is the fallback.
        assert_eq!(
            env.cache_dir(&SMALL),
            Some(root.path().join("xdg/darkknowledge/small"))
        );
        env.xdg_cache_home = None;
        assert_eq!(
            env.cache_dir(&SMALL),
            Some(root.path().join("home/.cache/darkknowledge/small"))
        );

        // Each complete folder wins over the ones after it.
        env.data_var = None;
        fill(&root.path().join("system/small"), true);
        let found = locate(None, &env, &SMALL).unwrap().unwrap();
        assert_eq!(found.origin, Origin::SystemFolder);
        fill(&root.path().join("home/.cache/darkknowledge/small"), false);
        let found = locate(None, &env, &SMALL).unwrap().unwrap();
        assert_eq!(found.origin, Origin::UserCache);
        assert!(found.files[0].ends_with("train-images-idx3-ubyte"));
        env.data_var = Some(root.path().join("env"));
        fill(&root.path().join("env"), true);
        assert_eq!(
            locate(None, &env, &SMALL).unwrap().unwrap().origin,
            Origin::EnvironmentVariable
        );
        fill(&flag, true);
        let found = locate(Some(&flag), &env, &SMALL).unwrap().unwrap();
        assert_eq!(found.origin, Origin::DataDirFlag);
        let (train, test) = found.load(&SMALL).unwrap();
        assert_eq!((train.n, test.n, train.classes), (4, 2, 2));
    }

    #[test]
    fn explicit_folders_may_hold_one_subfolder_per_data_set() {
        let root = temp_dir("locate-per-set");
        let mut env = env_in(&root);
        // The variable holds Fashion-MNIST-style files directly: the sets that share those
        // file names do not take them for theirs, they look for their own subfolder.
        fill(&root.path().join("env"), true);
        let shared_names = DatasetSource {
            env_flat: false,
            ..SMALL
        };
        assert!(
            search_order(None, &env, &shared_names)
                .iter()
                .all(|(origin, _)| *origin != Origin::EnvironmentVariable)
        );
        assert_eq!(locate(None, &env, &shared_names).unwrap(), None);
        fill(&root.path().join("env/small"), false);
        let found = locate(None, &env, &shared_names).unwrap().unwrap();
        assert_eq!(
            (found.origin, found.dir.clone()),
            (Origin::EnvironmentVariable, root.path().join("env/small"))
        );
        // The flag takes DIR/<folder> when it exists, else DIR.
        let flag = root.path().join("flag");
        fill(&flag.join("small"), true);
        let found = locate(Some(&flag), &env, &SMALL).unwrap().unwrap();
        assert_eq!(found.dir, flag.join("small"));
        // Each data set has its own cache folder.
        env.data_var = None;
        assert_eq!(
            env.cache_dir(&MNIST),
            Some(root.path().join("xdg/darkknowledge/mnist"))
        );
        assert_eq!(
            env.cache_dir(&KMNIST),
            Some(root.path().join("xdg/darkknowledge/kmnist"))
        );
    }

    #[test]
    fn an_incomplete_explicit_folder_is_an_error() {
        let root = temp_dir("locate-explicit");
        let env = env_in(&root);
        fill(&root.path().join("system/small"), true);
        let flag = root.path().join("flag");
        fill(&flag, true);
        std::fs::remove_file(flag.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let text = locate(Some(&flag), &env, &SMALL).unwrap_err().to_string();
        assert!(text.starts_with("--data-dir folder"), "{text}");
        assert!(text.contains("lacks t10k-labels-idx1-ubyte(.gz)"), "{text}");

        std::fs::create_dir_all(root.path().join("cifar")).unwrap();
        let text = locate(Some(&root.path().join("cifar")), &env, &SMALL_CIFAR)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("lacks data_batch_1.bin")
                && text.contains("test_batch.bin (directly or in cifar-10-batches-bin/)"),
            "{text}"
        );
    }

    #[test]
    fn offline_download_says_how_to_get_the_data() {
        let root = temp_dir("locate-offline");
        let mut env = env_in(&root);
        env.data_var = None;
        let err = locate_or_download(None, &env, &SMALL, &Offline).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        for needle in [
            "Could not resolve host",
            "apt-get install dataset-small",
            "--data-dir",
            "train-images-idx3-ubyte.gz",
            "https://example.invalid/small",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in: {text}");
        }
        let cache = root.path().join("xdg/darkknowledge/small");
        assert!(text.contains(&cache.display().to_string()), "{text}");
        // No partial file is left behind.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);

        // Each data set names its own files, address and cache folder.
        let text = locate_or_download(None, &env, &MNIST, &Offline)
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("MNIST not found"), "{text}");
        assert!(
            text.contains("https://ossci-datasets.s3.amazonaws.com/mnist")
                && text.contains("xdg/darkknowledge/mnist")
                && !text.contains("apt-get"),
            "{text}"
        );
        let text = locate_or_download(None, &env, &FASHION_MNIST, &Offline)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("apt-get install dataset-fashion-mnist"),
            "{text}"
        );
        let text = locate_or_download(None, &env, &CIFAR10, &Offline)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz and unpack it into")
                && text.contains("xdg/darkknowledge/cifar10 (it holds cifar-10-batches-bin/)"),
            "{text}"
        );
    }

    #[test]
    fn download_fills_the_cache_and_checks_the_files() {
        let root = temp_dir("locate-download");
        let mut env = env_in(&root);
        env.data_var = None;
        let files = locate_or_download(
            None,
            &env,
            &SMALL,
            &FakeServer {
                corrupt_labels: false,
            },
        )
        .unwrap();
        assert_eq!(files.origin, Origin::Downloaded);
        assert_eq!(files.dir, root.path().join("xdg/darkknowledge/small"));
        assert_eq!(files.load(&SMALL).unwrap().1.labels, vec![1, 0]);
        // The next search finds the cache without downloading.
        let again = locate_or_download(None, &env, &SMALL, &Offline).unwrap();
        assert_eq!(again.origin, Origin::UserCache);

        let root = temp_dir("locate-download-bad");
        let mut env = env_in(&root);
        env.data_var = None;
        let text = locate_or_download(
            None,
            &env,
            &SMALL,
            &FakeServer {
                corrupt_labels: true,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            text.contains("t10k-labels-idx1-ubyte.gz is not valid"),
            "{text}"
        );
        assert!(text.contains("trailing bytes"), "{text}");
        let cache = root.path().join("xdg/darkknowledge/small");
        assert!(!cache.join("t10k-labels-idx1-ubyte.gz").exists());
        assert!(!cache.join("t10k-labels-idx1-ubyte.gz.part").exists());
    }

    #[test]
    fn cifar_batches_are_found_in_their_subfolder_and_loaded() {
        let root = temp_dir("locate-cifar");
        let env = env_in(&root);
        let flag = root.path().join("flag");
        fill_cifar(&flag.join("cifar-10-batches-bin"), 3);
        let found = locate(Some(&flag), &env, &SMALL_CIFAR).unwrap().unwrap();
        assert!(found.files[5].ends_with("cifar-10-batches-bin/test_batch.bin"));
        let (train, test) = found.load(&SMALL_CIFAR).unwrap();
        assert_eq!((train.n, test.n, train.channels), (5, 2, 3));
        assert_eq!(train.labels, vec![0, 1, 2, 3, 4], "batches in order");
        assert_eq!(test.labels, vec![3, 9]);
        assert_eq!(train.class_names[0], "airplane");
    }

    #[test]
    fn cifar_download_unpacks_checks_and_cleans_up() {
        let root = temp_dir("locate-cifar-download");
        let mut env = env_in(&root);
        env.data_var = None;
        let server = FakeArchiveServer {
            staging: root.path().join("staging"),
            label_of_test: 1,
        };
        let files = locate_or_download(None, &env, &SMALL_CIFAR, &server).unwrap();
        let cache = root.path().join("xdg/darkknowledge/small-cifar");
        assert_eq!(
            (files.origin, files.dir.clone()),
            (Origin::Downloaded, cache.clone())
        );
        assert_eq!(files.load(&SMALL_CIFAR).unwrap().1.labels, vec![1, 9]);
        assert!(
            !cache.join("small-cifar-binary.tar.gz.part").exists(),
            "the archive is removed once unpacked"
        );
        let again = locate_or_download(None, &env, &SMALL_CIFAR, &Offline).unwrap();
        assert_eq!(again.origin, Origin::UserCache);

        // An archive whose test batch holds a label out of range is refused, and removed.
        let root = temp_dir("locate-cifar-download-bad");
        let mut env = env_in(&root);
        env.data_var = None;
        let server = FakeArchiveServer {
            staging: root.path().join("staging"),
            label_of_test: 12,
        };
        let text = locate_or_download(None, &env, &SMALL_CIFAR, &server)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("small-cifar-binary.tar.gz is not valid")
                && text.contains("test_batch.bin: record 0: label byte 12"),
            "{text}"
        );
        let cache = root.path().join("xdg/darkknowledge/small-cifar");
        assert_eq!(
            std::fs::read_dir(&cache).unwrap().count(),
            0,
            "nothing left"
        );
    }

    #[test]
    fn a_failed_cifar_download_keeps_the_users_files() {
        let root = temp_dir("locate-cifar-keep");
        let mut env = env_in(&root);
        env.data_var = None;
        let batches = root
            .path()
            .join("xdg/darkknowledge/small-cifar/cifar-10-batches-bin");
        std::fs::create_dir_all(&batches).unwrap();
        std::fs::write(batches.join("notes.txt"), b"mine").unwrap();
        std::fs::write(batches.join("data_batch_1.bin"), b"my own copy").unwrap();
        let server = FakeArchiveServer {
            staging: root.path().join("staging"),
            label_of_test: 12,
        };
        let text = locate_or_download(None, &env, &SMALL_CIFAR, &server)
            .unwrap_err()
            .to_string();
        assert!(text.contains("is not valid"), "{text}");
        let mut left: Vec<String> = std::fs::read_dir(&batches)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["data_batch_1.bin", "notes.txt"],
            "only the download's files go"
        );
        assert_eq!(
            std::fs::read(batches.join("data_batch_1.bin")).unwrap(),
            b"my own copy"
        );
        let cache = root.path().join("xdg/darkknowledge/small-cifar");
        assert_eq!(
            std::fs::read_dir(&cache).unwrap().count(),
            1,
            "no archive, no staging"
        );
    }

    #[test]
    fn downloads_are_checked_against_their_digests() {
        let digests: Vec<&'static str> = (0..4)
            .map(|slot| {
                let dir = temp_dir("locate-digest-file");
                let path = dir.path().join("file");
                std::fs::write(&path, write::gzip(&file_bytes(slot))).unwrap();
                &*Box::leak(sha256_hex(&path).unwrap().into_boxed_str())
            })
            .collect();
        let mut checked = SMALL;
        checked.sha256 = Box::leak(digests.into_boxed_slice());
        let root = temp_dir("locate-digest-ok");
        let mut env = env_in(&root);
        env.data_var = None;
        let server = FakeServer {
            corrupt_labels: false,
        };
        locate_or_download(None, &env, &checked, &server).unwrap();

        let mut wrong = checked;
        let mut digests = checked.sha256.to_vec();
        digests[3] = "0000000000000000000000000000000000000000000000000000000000000000";
        wrong.sha256 = Box::leak(digests.into_boxed_slice());
        let root = temp_dir("locate-digest-bad");
        let mut env = env_in(&root);
        env.data_var = None;
        let text = locate_or_download(None, &env, &wrong, &server)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("t10k-labels-idx1-ubyte.gz.part: SHA-256 ")
                && text.contains("expected 0000000000000000000000000000000000000000000000000000000000000000 (a damaged or different file; removed)"),
            "{text}"
        );
        let cache = root.path().join("xdg/darkknowledge/small");
        assert!(!cache.join("t10k-labels-idx1-ubyte.gz.part").exists());
        assert!(
            cache.join("train-images-idx3-ubyte.gz").is_file(),
            "files that passed stay"
        );
    }

    #[test]
    fn sha256_matches_the_published_test_vector() {
        let dir = temp_dir("locate-sha");
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            sha256_hex(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
