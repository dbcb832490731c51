//! Prerequisites: a GPU adapter (or Mesa's lavapipe as the CPU fallback).

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

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" as an error on
/// machines without a desktop session (CI, servers), which reads like a failure. Where the
/// variable is unset, point it at a private folder for this process and its children.
pub fn ensure_runtime_dir() {
    if cfg!(not(unix)) || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("darkknowledge-runtime-{user}"));
    if std::fs::create_dir_all(&dir).is_err() || !private(&dir) {
        return;
    }
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
}

/// Makes `dir` readable by its owner only, as the runtime folder must be.
#[cfg(unix)]
fn private(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).is_ok()
}

#[cfg(not(unix))]
fn private(_: &std::path::Path) -> bool {
    false
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
