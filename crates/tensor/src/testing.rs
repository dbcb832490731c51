//! Helpers shared by the test suites and benchmarks of the workspace: one GPU context per
//! test binary (lavapipe is slow to open and tests run in parallel threads), tolerant
//! comparisons, and the matmul products both benchmark tools measure.

use std::sync::OnceLock;

use crate::context::GpuContext;
use crate::error::Result;
use crate::ops::matmul::{MatmulLaunch, MatmulOptions, MatmulVariant, Operands, prepare_matmul};
use crate::splitmix::{GAMMA, SplitMix64};
use crate::tensor::{DType, Tensor};

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

/// One matmul product measured by both `cargo bench --bench matmul` and `cargo xtask bench`:
/// op(A) `[m, k]` times op(B) `[k, n]`, with A and/or B stored transposed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatmulBenchCase {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
}

impl MatmulBenchCase {
    /// op(A) `[m, k]` times op(B) `[k, n]` (note the order: m, n, k).
    pub const fn new(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        Self {
            m,
            n,
            k,
            trans_a,
            trans_b,
        }
    }

    /// Floating-point operations of one product: 2 m n k.
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }

    /// `m x k x n` and the stored layouts, e.g. `128x784x1200 (A, B^T)`.
    pub fn shape(&self) -> String {
        let t = |on: bool| if on { "^T" } else { "" };
        format!(
            "{}x{}x{} (A{}, B{})",
            self.m,
            self.k,
            self.n,
            t(self.trans_a),
            t(self.trans_b)
        )
    }

    /// The runs measured: the automatic choice, on CPU adapters also with its operands kept
    /// in storage (the GPUs' path, against the textures it picks there), then every fixed
    /// variant except on CPU adapters for products of 2^30 multiply-adds or more, which take
    /// minutes there.
    pub fn runs(&self, is_cpu: bool) -> Vec<MatmulBenchRun> {
        let big = self.m * self.n * self.k >= 1 << 30;
        let auto = |operands| MatmulBenchRun {
            variant: None,
            operands,
        };
        let mut runs = vec![auto(Operands::Auto)];
        if is_cpu {
            runs.push(auto(Operands::Storage));
        }
        if !(big && is_cpu) {
            runs.extend(MatmulVariant::ALL.map(|v| MatmulBenchRun {
                variant: Some(v),
                operands: Operands::Auto,
            }));
        }
        runs
    }

    /// Random operands in the stored layouts (seeds 1 and 2) and a zeroed output.
    pub fn operands(&self, ctx: &GpuContext) -> Result<MatmulOperands> {
        let (m, n, k) = (self.m, self.n, self.k);
        let a_shape = if self.trans_a { [k, m] } else { [m, k] };
        let b_shape = if self.trans_b { [n, k] } else { [k, n] };
        Ok(MatmulOperands {
            a: Tensor::from_f32(ctx, &random_f32(m * k, 1, 1.0), &a_shape)?,
            b: Tensor::from_f32(ctx, &random_f32(k * n, 2, 1.0), &b_shape)?,
            c: Tensor::zeros(ctx, &[m, n], DType::F32)?,
        })
    }

    /// The product on `operands` as `run` says.
    pub fn prepare(
        &self,
        ctx: &GpuContext,
        operands: &MatmulOperands,
        run: MatmulBenchRun,
    ) -> Result<MatmulLaunch> {
        let opts = MatmulOptions {
            trans_a: self.trans_a,
            trans_b: self.trans_b,
            variant: run.variant,
            operands: run.operands,
            ..Default::default()
        };
        prepare_matmul(ctx, &operands.a, &operands.b, &operands.c, &opts)
    }
}

/// One way to run a [`MatmulBenchCase`]: a fixed variant or the automatic choice (`None`),
/// and where the kernel reads A and B.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulBenchRun {
    pub variant: Option<MatmulVariant>,
    pub operands: Operands,
}

impl MatmulBenchRun {
    /// `auto`, a variant's name, or either with `, operands in storage`.
    pub fn name(&self) -> String {
        let variant = self.variant.map_or("auto", MatmulVariant::name);
        match self.operands {
            Operands::Auto => variant.to_string(),
            Operands::Storage => format!("{variant}, operands in storage"),
            Operands::Textures => format!("{variant}, operands in textures"),
        }
    }
}

/// The operands of one [`MatmulBenchCase`], kept alive while its dispatches are timed.
pub struct MatmulOperands {
    pub a: Tensor,
    pub b: Tensor,
    pub c: Tensor,
}

/// The matmul products benchmarked on an adapter: squares of 256, 512 and 1024 (and 2048 on
/// hardware GPUs), and the products of a 784-1200 layer and a 1200-10 classifier at batch 128
/// in the layouts training uses.
pub fn matmul_bench_cases(is_cpu: bool) -> Vec<MatmulBenchCase> {
    let mut cases = vec![
        MatmulBenchCase::new(256, 256, 256, false, false),
        MatmulBenchCase::new(512, 512, 512, false, false),
        MatmulBenchCase::new(1024, 1024, 1024, false, false),
        // Linear forward y = x W^T.
        MatmulBenchCase::new(128, 1200, 784, false, true),
        // Input gradient dX = dY W.
        MatmulBenchCase::new(128, 784, 1200, false, false),
        // Weight gradient dW = dY^T X.
        MatmulBenchCase::new(1200, 784, 128, true, false),
        // The classifier layer's forward product.
        MatmulBenchCase::new(128, 10, 1200, false, true),
    ];
    if !is_cpu {
        cases.push(MatmulBenchCase::new(2048, 2048, 2048, false, false));
    }
    cases
}
