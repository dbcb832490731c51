//! Prerequisites: a GPU adapter (or Mesa's lavapipe as the CPU fallback), and the default
//! data set (Debian's Fashion-MNIST package) where a run would look for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use dk_tensor::{GpuContext, TensorError};

const LAVAPIPE_PACKAGES: [&str; 2] = ["mesa-vulkan-drivers", "libvulkan1"];

/// Open an adapter; when none exists, install lavapipe if we are root on a Debian-like
/// system, otherwise say exactly what to install.
pub fn ensure_adapter() -> anyhow::Result<()> {
    match GpuContext::new() {
        Ok(ctx) => {
            eprintln!("GPU adapter: {}", ctx.summary);
            Ok(())
        }
        Err(TensorError::NoAdapter { .. }) if can_install() => {
            eprintln!(
                "no GPU adapter found; installing Mesa's software Vulkan driver (lavapipe): apt-get install {}",
                LAVAPIPE_PACKAGES.join(" ")
            );
            apt_install(&LAVAPIPE_PACKAGES)?;
            let ctx = GpuContext::new()?;
            eprintln!("GPU adapter: {}", ctx.summary);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Root with apt-get available: installing system packages is then safe and expected.
fn can_install() -> bool {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    is_root && Command::new("apt-get").arg("--version").output().is_ok()
}

/// `apt-get update` then `apt-get install -y PACKAGES`.
pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    let update = Command::new("apt-get").arg("update").status()?;
    anyhow::ensure!(update.success(), "apt-get update failed");
    let install = Command::new("apt-get")
        .args(["install", "-y"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    anyhow::ensure!(
        install.success(),
        "apt-get install {} failed",
        packages.join(" ")
    );
    Ok(())
}

/// Debian's package of the default data set; it fills [`SYSTEM_DATA_DIR`].
pub const DATASET_PACKAGE: &str = "dataset-fashion-mnist";
/// Where the package puts the files (dk-distill's system folder for Fashion-MNIST).
const SYSTEM_DATA_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The file whose presence, raw or gzip-compressed, says the data set is there.
const PROBE_FILE: &str = "train-images-idx3-ubyte";

/// Flags of dk-distill after which it reads no data or takes it from somewhere else than
/// the default search, so nothing is installed for it.
const ELSEWHERE_FLAGS: [&str; 10] = [
    "--data-dir",
    "--config",
    "--csv-train",
    "--no-download",
    "--print-config",
    "--report-from",
    "--help",
    "-h",
    "--version",
    "-V",
];

/// What a run needs of the default data set (Fashion-MNIST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataNeed {
    /// The arguments or `$DARKKNOWLEDGE_DATA` point elsewhere, or no data is read.
    Elsewhere,
    /// Found in this folder.
    Present(PathBuf),
    /// In none of the folders dk-distill searches by default.
    Missing,
}

/// The parts of the environment the check reads (a struct so tests can fake it).
#[derive(Debug, Clone, Default)]
pub struct DataEnv {
    /// `$DARKKNOWLEDGE_DATA` is set and not empty.
    pub data_var_set: bool,
    /// The user cache root: `$XDG_CACHE_HOME`, else `$HOME/.cache`.
    pub cache_root: Option<PathBuf>,
    /// The system folder of the data set.
    pub system_dir: PathBuf,
}

impl DataEnv {
    pub fn from_process() -> DataEnv {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        DataEnv {
            data_var_set: var("DARKKNOWLEDGE_DATA").is_some(),
            cache_root: var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| Path::new(&home).join(".cache"))),
            system_dir: PathBuf::from(SYSTEM_DATA_DIR),
        }
    }
}

/// Whether `dk-distill ARGS` reads Fashion-MNIST from the default search, and whether the
/// user cache or the system folder has it. A small check only: dk-distill's own search
/// (crates/distill/src/data/locate.rs) decides in the end.
pub fn default_data_need(args: &[String], env: &DataEnv) -> DataNeed {
    let elsewhere = args.iter().enumerate().any(|(i, arg)| {
        let flag = arg.split('=').next().unwrap_or_default();
        let dataset = match arg.strip_prefix("--dataset=") {
            Some(value) => Some(value),
            None if arg == "--dataset" => args.get(i + 1).map(String::as_str),
            None => None,
        };
        ELSEWHERE_FLAGS.contains(&flag) || dataset.is_some_and(|name| name != "fashion-mnist")
    });
    if elsewhere || env.data_var_set {
        return DataNeed::Elsewhere;
    }
    let cache = env
        .cache_root
        .as_ref()
        .map(|root| root.join("darkknowledge/fashion-mnist"));
    cache
        .into_iter()
        .chain([env.system_dir.clone()])
        .find(|dir| {
            [format!("{PROBE_FILE}.gz"), PROBE_FILE.into()]
                .iter()
                .any(|f| dir.join(f).is_file())
        })
        .map_or(DataNeed::Missing, DataNeed::Present)
}

/// Installs Fashion-MNIST's Debian package when `dk-distill ARGS` would look for it and find
/// it nowhere, as root with apt-get; otherwise leaves it to dk-distill, which downloads the
/// files or says exactly what to run.
pub fn ensure_default_data(args: &[String]) {
    if default_data_need(args, &DataEnv::from_process()) != DataNeed::Missing || !can_install() {
        return;
    }
    eprintln!("Fashion-MNIST not found; installing it: apt-get install {DATASET_PACKAGE}");
    if let Err(err) = apt_install(&[DATASET_PACKAGE]) {
        eprintln!("warning: {err:#}; dk-distill will try to download the files");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp folder, removed on drop.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        let prefix = format!("xtask-{name}-");
        tempfile::Builder::new().prefix(&prefix).tempdir().unwrap()
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn env_in(root: &Path) -> DataEnv {
        DataEnv {
            data_var_set: false,
            cache_root: Some(root.join("cache")),
            system_dir: root.join("system/fashion-mnist"),
        }
    }

    fn put(dir: &Path, file: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file), b"idx").unwrap();
    }

    #[test]
    fn the_default_run_needs_fashion_mnist_in_the_cache_or_the_system_folder() {
        let root = temp_dir("data-need");
        let env = env_in(root.path());
        for line in [
            "",
            "--preset tiny --out /tmp/x",
            "--dataset fashion-mnist",
            "--dataset=fashion-mnist --seed 3",
        ] {
            assert_eq!(
                default_data_need(&args(line), &env),
                DataNeed::Missing,
                "{line:?}"
            );
        }
        let system = root.path().join("system/fashion-mnist");
        put(&system, "train-images-idx3-ubyte.gz");
        assert_eq!(
            default_data_need(&[], &env),
            DataNeed::Present(system.clone())
        );
        // The user cache comes first, raw files count too.
        let cache = root.path().join("cache/darkknowledge/fashion-mnist");
        put(&cache, "train-images-idx3-ubyte");
        assert_eq!(default_data_need(&[], &env), DataNeed::Present(cache));
        // A folder with other files only does not count.
        let root = temp_dir("data-need-other");
        let env = env_in(root.path());
        put(
            &root.path().join("system/fashion-mnist"),
            "t10k-images-idx3-ubyte.gz",
        );
        assert_eq!(default_data_need(&[], &env), DataNeed::Missing);
    }

    #[test]
    fn arguments_or_the_variable_pointing_elsewhere_need_nothing_installed() {
        let root = temp_dir("data-elsewhere");
        let mut env = env_in(root.path());
        for line in [
            "--dataset mnist",
            "--dataset=cifar10",
            "--dataset csv --csv-train iris.csv",
            "--data-dir /data",
            "--data-dir=/data",
            "--config run.toml",
            "--preset tiny --no-download",
            "--help",
            "-h",
            "--version",
            "--print-config",
            "--report-from runs/a/results.json",
        ] {
            assert_eq!(
                default_data_need(&args(line), &env),
                DataNeed::Elsewhere,
                "{line:?}"
            );
        }
        env.data_var_set = true;
        assert_eq!(default_data_need(&[], &env), DataNeed::Elsewhere);
    }
}
