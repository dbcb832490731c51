//! What the end-to-end tests share: finding Fashion-MNIST, and a fresh temporary folder.
//! Each test file uses part of it.
#![allow(dead_code)]

use dk_distill::data::locate::{FASHION_MNIST, SearchEnv, locate};

/// True when Fashion-MNIST is installed. Without it a test may skip locally (it says so);
/// under CI (`CI` set and not "false" or "0") it fails, so that CI never passes having run
/// nothing.
pub fn fashion_mnist_present(test: &str) -> bool {
    let env = SearchEnv::from_process();
    if matches!(locate(None, &env, &FASHION_MNIST), Ok(Some(_))) {
        return true;
    }
    prerequisite_missing(
        test,
        "Fashion-MNIST not found (install dataset-fashion-mnist or set the data folder variable)",
    )
}

/// What a test does when `missing` names an absent prerequisite: under CI (`CI` set and not
/// "false" or "0") it fails; locally it says it skips. Returns false, for
/// `if !present { return; }`.
pub fn prerequisite_missing(test: &str, missing: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "{test}: {missing}; CI must run this test");
    eprintln!("SKIPPED {test}: {missing}");
    false
}

/// A new folder under the system's temporary folder, named after `tag`, removed when the
/// returned value is dropped.
pub fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("dk-distill-{tag}-"))
        .tempdir()
        .expect("create a temporary folder")
}
