//! Finding the four IDX files of a data set, and downloading them when they are nowhere.
//!
//! Folders are searched in this order; the first one holding all four files wins:
//! 1. `--data-dir DIR` (explicit: when given and incomplete, that is an error, no fallback),
//! 2. `$DARKKNOWLEDGE_DATA` (explicit too, same rule),
//! 3. the user cache: `$XDG_CACHE_HOME/darkknowledge/<name>`, else `~/.cache/darkknowledge/<name>`
//!    (`%LOCALAPPDATA%\darkknowledge\<name>` on Windows),
//! 4. the system folder `/usr/share/datasets/<name>` (Debian's `dataset-fashion-mnist`).
//!
//! Each file may be gzip-compressed (`<stem>.gz`) or raw (`<stem>`); `.gz` is preferred.
//! When no folder is complete, the missing files are downloaded into the cache folder
//! (see [`Fetch`]), checked by parsing, and only then given their final names.

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use thiserror::Error;

use super::idx::{self, Dataset, IdxError};

/// The environment variable naming a folder that holds the data files.
pub const DATA_ENV_VAR: &str = "DARKKNOWLEDGE_DATA";

/// Where a data set comes from and what its files must contain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatasetSource {
    /// Human name, e.g. "Fashion-MNIST".
    pub name: &'static str,
    /// Folder name under the cache and system folders.
    pub folder: &'static str,
    /// Base URL; each file is `<base_url>/<stem>.gz`.
    pub base_url: &'static str,
    /// Approximate compressed file sizes in bytes, train images/labels, test images/labels:
    /// only used to size the progress bar.
    pub approx_sizes: [u64; 4],
    pub train_count: usize,
    pub test_count: usize,
    pub height: usize,
    pub width: usize,
    pub class_names: &'static [&'static str],
}

/// Fashion-MNIST from its official repository.
pub const FASHION_MNIST: DatasetSource = DatasetSource {
    name: "Fashion-MNIST",
    folder: "fashion-mnist",
    base_url: "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion",
    approx_sizes: [26_421_880, 29_515, 4_422_102, 5_148],
    train_count: 60_000,
    test_count: 10_000,
    height: 28,
    width: 28,
    class_names: &idx::FASHION_MNIST_CLASSES,
};

/// File stems shared by MNIST-style data sets, in the order train images, train labels,
/// test images, test labels.
pub const FILE_STEMS: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

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

/// The four files of a data set, found in one folder.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFiles {
    pub dir: PathBuf,
    pub origin: Origin,
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: PathBuf,
    pub test_labels: PathBuf,
}

impl DataFiles {
    /// All four paths, in [`FILE_STEMS`] order.
    pub fn paths(&self) -> [&Path; 4] {
        [
            &self.train_images,
            &self.train_labels,
            &self.test_images,
            &self.test_labels,
        ]
    }

    /// Reads and validates the training and test sets.
    pub fn load(&self, source: &DatasetSource) -> Result<(Dataset, Dataset), IdxError> {
        let train = idx::load_dataset(&self.train_images, &self.train_labels, source.class_names)?;
        let test = idx::load_dataset(&self.test_images, &self.test_labels, source.class_names)?;
        Ok((train, test))
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
    #[error("{origin} folder {dir} lacks {missing}")]
    Incomplete {
        origin: Origin,
        dir: PathBuf,
        missing: String,
    },
    #[error(
        "{name} not found and the download failed ({reason}). Get the data one of these ways: \
         `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or download the four files \
         ({files}) from {base_url} into {cache}, or pass --data-dir DIR"
    )]
    DownloadFailed {
        name: &'static str,
        reason: String,
        files: String,
        base_url: &'static str,
        cache: String,
    },
    #[error("downloaded {path} is not valid: {source}")]
    DownloadInvalid { path: PathBuf, source: IdxError },
}

/// The folders to search, in order, with where each came from.
pub fn search_order(
    data_dir: Option<&Path>,
    env: &SearchEnv,
    source: &DatasetSource,
) -> Vec<(Origin, PathBuf)> {
    let mut order = Vec::new();
    if let Some(dir) = data_dir {
        order.push((Origin::DataDirFlag, dir.to_path_buf()));
    }
    if let Some(dir) = &env.data_var {
        order.push((Origin::EnvironmentVariable, dir.clone()));
    }
    if let Some(dir) = env.cache_dir(source) {
        order.push((Origin::UserCache, dir));
    }
    if let Some(root) = &env.system_root {
        order.push((Origin::SystemFolder, root.join(source.folder)));
    }
    order
}

/// The path of file `stem` in `dir` (`.gz` preferred over raw), or `None`.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// The four files in `dir`, or the names of the missing ones.
pub fn find_in_dir(dir: &Path, origin: Origin) -> Result<DataFiles, Vec<&'static str>> {
    let found: Vec<Option<PathBuf>> = FILE_STEMS.iter().map(|stem| find_file(dir, stem)).collect();
    let missing: Vec<&'static str> = FILE_STEMS
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(stem, _)| *stem)
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let mut paths = found.into_iter().flatten();
    let mut next = || paths.next().expect("four files found");
    Ok(DataFiles {
        dir: dir.to_path_buf(),
        origin,
        train_images: next(),
        train_labels: next(),
        test_images: next(),
        test_labels: next(),
    })
}

/// Searches the folders in [`search_order`]; `Ok(None)` when no folder is complete.
pub fn locate(
    data_dir: Option<&Path>,
    env: &SearchEnv,
    source: &DatasetSource,
) -> Result<Option<DataFiles>, LocateError> {
    for (origin, dir) in search_order(data_dir, env, source) {
        match find_in_dir(&dir, origin) {
            Ok(files) => return Ok(Some(files)),
            Err(missing) => {
                let explicit = matches!(origin, Origin::DataDirFlag | Origin::EnvironmentVariable);
                if explicit {
                    let missing = missing
                        .iter()
                        .map(|stem| format!("{stem}(.gz)"))
                        .collect::<Vec<_>>()
                        .join(", ");
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
        files: FILE_STEMS.map(|stem| format!("{stem}.gz")).join(", "),
        base_url: source.base_url,
        cache: cache.as_ref().map_or_else(
            || "~/.cache/darkknowledge/fashion-mnist (no cache folder: HOME is unset)".into(),
            |dir| dir.display().to_string(),
        ),
    };
    let Some(dir) = cache.clone() else {
        return Err(failed("no cache folder to download into".into()));
    };
    std::fs::create_dir_all(&dir)
        .map_err(|err| failed(format!("cannot create {}: {err}", dir.display())))?;
    for (slot, stem) in FILE_STEMS.iter().enumerate() {
        if find_file(&dir, stem).is_some() {
            continue;
        }
        let name = format!("{stem}.gz");
        let url = format!("{}/{name}", source.base_url);
        let part = dir.join(format!("{name}.part"));
        fetcher
            .fetch(&url, &part, source.approx_sizes[slot])
            .map_err(|reason| {
                let _ = std::fs::remove_file(&part);
                failed(reason)
            })?;
        if let Err(err) = check_downloaded(&part, slot, source) {
            let _ = std::fs::remove_file(&part);
            return Err(LocateError::DownloadInvalid {
                path: dir.join(&name),
                source: err,
            });
        }
        std::fs::rename(&part, dir.join(&name))
            .map_err(|err| failed(format!("cannot rename {}: {err}", part.display())))?;
    }
    let mut files = find_in_dir(&dir, Origin::Downloaded)
        .map_err(|missing| failed(format!("still missing after download: {missing:?}")))?;
    files.origin = Origin::Downloaded;
    Ok(files)
}

/// Checks a downloaded file by parsing it and comparing its shape with the source's.
fn check_downloaded(path: &Path, slot: usize, source: &DatasetSource) -> Result<(), IdxError> {
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
    use crate::data::idx::write;
    use crate::testutil::TempDir;

    /// A two-class, 2x2-pixel data set with 4 training and 2 test examples.
    const SMALL: DatasetSource = DatasetSource {
        name: "Small",
        folder: "small",
        base_url: "https://example.invalid/small",
        approx_sizes: [100, 100, 100, 100],
        train_count: 4,
        test_count: 2,
        height: 2,
        width: 2,
        class_names: &["zero", "one"],
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
        for (slot, stem) in FILE_STEMS.iter().enumerate() {
            let (name, bytes) = if gzip {
                (format!("{stem}.gz"), write::gzip(&file_bytes(slot)))
            } else {
                (stem.to_string(), file_bytes(slot))
            };
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }

    fn env_in(root: &TempDir) -> SearchEnv {
        SearchEnv {
            data_var: Some(root.join("env")),
            xdg_cache_home: Some(root.join("xdg")),
            home: Some(root.join("home")),
            local_app_data: None,
            system_root: Some(root.join("system")),
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
            let slot = FILE_STEMS
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

    #[test]
    fn search_order_is_flag_env_cache_system() {
        let root = TempDir::new("locate-order");
        let mut env = env_in(&root);
        let flag = root.join("flag");
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
            Some(root.join("xdg/darkknowledge/small"))
        );
        env.xdg_cache_home = None;
        assert_eq!(
            env.cache_dir(&SMALL),
            Some(root.join("home/.cache/darkknowledge/small"))
        );

        // Each complete folder wins over the ones after it.
        env.data_var = None;
        fill(&root.join("system/small"), true);
        let found = locate(None, &env, &SMALL).unwrap().unwrap();
        assert_eq!(found.origin, Origin::SystemFolder);
        fill(&root.join("home/.cache/darkknowledge/small"), false);
        let found = locate(None, &env, &SMALL).unwrap().unwrap();
        assert_eq!(found.origin, Origin::UserCache);
        assert!(found.train_images.ends_with("train-images-idx3-ubyte"));
        env.data_var = Some(root.join("env"));
        fill(&root.join("env"), true);
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
    fn an_incomplete_explicit_folder_is_an_error() {
        let root = TempDir::new("locate-explicit");
        let env = env_in(&root);
        fill(&root.join("system/small"), true);
        let flag = root.join("flag");
        fill(&flag, true);
        std::fs::remove_file(flag.join("t10k-labels-idx1-ubyte.gz")).unwrap();
        let text = locate(Some(&flag), &env, &SMALL).unwrap_err().to_string();
        assert!(text.starts_with("--data-dir folder"), "{text}");
        assert!(text.contains("lacks t10k-labels-idx1-ubyte(.gz)"), "{text}");
    }

    #[test]
    fn offline_download_says_how_to_get_the_data() {
        let root = TempDir::new("locate-offline");
        let mut env = env_in(&root);
        env.data_var = None;
        let err = locate_or_download(None, &env, &SMALL, &Offline).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        for needle in [
            "Could not resolve host",
            "apt-get install dataset-fashion-mnist",
            "--data-dir",
            "train-images-idx3-ubyte.gz",
            "https://example.invalid/small",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in: {text}");
        }
        let cache = root.join("xdg/darkknowledge/small");
        assert!(text.contains(&cache.display().to_string()), "{text}");
        // No partial file is left behind.
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
    }

    #[test]
    fn download_fills_the_cache_and_checks_the_files() {
        let root = TempDir::new("locate-download");
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
        assert_eq!(files.dir, root.join("xdg/darkknowledge/small"));
        assert_eq!(files.load(&SMALL).unwrap().1.labels, vec![1, 0]);
        // The next search finds the cache without downloading.
        let again = locate_or_download(None, &env, &SMALL, &Offline).unwrap();
        assert_eq!(again.origin, Origin::UserCache);

        let root = TempDir::new("locate-download-bad");
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
        let cache = root.join("xdg/darkknowledge/small");
        assert!(!cache.join("t10k-labels-idx1-ubyte.gz").exists());
        assert!(!cache.join("t10k-labels-idx1-ubyte.gz.part").exists());
    }
}
