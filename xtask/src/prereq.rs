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
