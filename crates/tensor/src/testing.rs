//! Helpers shared by the test suites of the workspace: one GPU context per test binary
//! (lavapipe is slow to open and tests run in parallel threads), and tolerant comparisons.

use std::sync::OnceLock;

use crate::context::GpuContext;
use crate::splitmix::{GAMMA, SplitMix64};

/// The test binary's one shared context. Panics with the install hint when no adapter exists.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => panic!("{e}"),
    })
}

/// Largest |a - b| / (atol + rtol * |b|) over two slices; <= 1 means within tolerance.
pub fn max_scaled_error(a: &[f32], b: &[f32], atol: f32, rtol: f32) -> f32 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (atol + rtol * y.abs()))
        .fold(0.0, f32::max)
}

/// Assert two slices agree within `atol + rtol * |expected|`, naming the first bad index.
#[track_caller]
pub fn assert_close(actual: &[f32], expected: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let tol = atol + rtol * e.abs();
        assert!(
            (a - e).abs() <= tol && a.is_finite() == e.is_finite(),
            "{what}: index {i}: got {a}, expected {e} (tolerance {tol})"
        );
    }
}

/// Deterministic pseudo-random f32s in [-scale, scale) for test inputs (SplitMix64).
pub fn random_f32(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut stream = SplitMix64::new(seed.wrapping_add(GAMMA));
    (0..n)
        .map(|_| {
            let unit = (stream.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
            (unit * 2.0 - 1.0) * scale
        })
        .collect()
}
