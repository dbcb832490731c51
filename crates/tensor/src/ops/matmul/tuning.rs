//! Per-adapter choice of the matmul variant: time each candidate once on a representative
//! shape of every [`ShapeClass`], keep the fastest, and cache the result on disk in
//! `$XDG_CACHE_HOME/darkknowledge/matmul-tuning-<adapter>.txt` (or `~/.cache/...`).
//!
//! Each class keeps two choices: the fastest variant, and the fastest general one (which
//! runs every shape) for shapes the fastest cannot run ([`MatmulVariant::runs`]).
//!
//! Before a variant is timed it must reproduce the CPU reference on a small product whose
//! sizes are no multiple of any tile ([`VALIDATION_SHAPE`]), with the bias and ReLU epilogue,
//! on this adapter: a variant that computes wrong results here is never chosen.
//!
//! The cache is plain text, one `<class> <variant> <general variant>` line per class after a
//! header that names the adapter and a hash of the shaders' code (comments left out). A
//! missing, stale or unreadable cache is re-tuned.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{
    MatmulLaunch, MatmulOptions, MatmulVariant, SHADER, SUBGROUP_SHADER, cpu, prepare_matmul,
};
use crate::context::GpuContext;
use crate::error::{Result, TensorError, invalid_argument};
use crate::tensor::{DType, Tensor};

/// Version 6: the subgroup64x8 variant, large products timed at 256^3.
const CACHE_VERSION: &str = "darkknowledge-matmul-tuning 6";

/// Tuning stops trying further candidates once this much time has gone by.
const TIME_BUDGET: Duration = Duration::from_secs(3);

/// Variants timed by the tuner, in order. Subgroup16x8 is left out: Subgroup32x8 beat it at
/// every shape measured, and each extra candidate costs a pipeline compile on a cold start;
/// products of few rows get it anyway through `MatmulVariant::fitted_to_rows`. It can still
/// be forced through `MatmulOptions::variant` or `DK_MATMUL_VARIANT`.
const TUNING_CANDIDATES: [MatmulVariant; 6] = [
    MatmulVariant::Subgroup64x8,
    MatmulVariant::Subgroup32x8,
    MatmulVariant::Register4x4,
    MatmulVariant::Register8x8,
    MatmulVariant::Tiled64,
    MatmulVariant::Tiled128,
];

/// `(m, n, k)` of the product each candidate must get right before it is timed: multiples of
/// 4 (so the vec4 variants run it) but of no tile size, with ragged edges in every tile.
pub const VALIDATION_SHAPE: [usize; 3] = [36, 44, 52];

/// Problem sizes that favour different kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShapeClass {
    /// Under 128^3 multiply-adds: launch overhead and occupancy dominate.
    Small,
    /// m or n of at most 16 (a classifier layer, its gradients): big tiles would idle.
    Skinny,
    /// Everything else.
    Large,
}

impl ShapeClass {
    pub const ALL: [ShapeClass; 3] = [ShapeClass::Small, ShapeClass::Skinny, ShapeClass::Large];

    /// The class of an m x k by k x n product.
    pub fn of(m: usize, n: usize, k: usize) -> Self {
        if m.min(n) <= 16 {
            ShapeClass::Skinny
        } else if m * n * k < 128 * 128 * 128 {
            ShapeClass::Small
        } else {
            ShapeClass::Large
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ShapeClass::Small => "small",
            ShapeClass::Skinny => "skinny",
            ShapeClass::Large => "large",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The `(m, n, k)` timed for this class: modest, so that tuning stays quick on lavapipe.
    /// Large is 256^3: at 192^3 (3 or 6 row blocks) two tunings on one lavapipe machine
    /// picked different ones of the subgroup variants of 32 and 64 rows, where 64 rows are
    /// 1.3-1.4x faster at 256^3 and every larger product benchmarked.
    pub fn representative(self) -> [usize; 3] {
        match self {
            ShapeClass::Small => [64, 64, 64],
            ShapeClass::Skinny => [256, 12, 256],
            ShapeClass::Large => [256, 256, 256],
        }
    }
}

/// One measurement taken while tuning.
#[derive(Clone, Debug)]
pub struct Timing {
    pub class: ShapeClass,
    pub variant: MatmulVariant,
    /// Best of a few submit-and-wait runs.
    pub seconds: f64,
}

impl Timing {
    pub fn gflops(&self) -> f64 {
        let [m, n, k] = self.class.representative();
        2.0 * (m * n * k) as f64 / self.seconds / 1e9
    }
}

/// The variants chosen for one shape class: the fastest, and the fastest general one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassChoice {
    pub class: ShapeClass,
    pub best: MatmulVariant,
    pub general: MatmulVariant,
}

/// The variants chosen for each shape class on one adapter.
#[derive(Clone, Debug)]
pub struct MatmulTuning {
    pub adapter: String,
    pub choices: Vec<ClassChoice>,
    /// What was measured; empty when the choice came from the cache.
    pub timings: Vec<Timing>,
    /// Variants left out because they did not reproduce the CPU reference, and how.
    pub rejected: Vec<(MatmulVariant, String)>,
    pub from_cache: bool,
    /// Wall-clock time spent tuning (or reading the cache).
    pub seconds: f64,
    pub cache_path: Option<PathBuf>,
}

impl MatmulTuning {
    /// The fastest variant for `class` (register blocking if the class is somehow missing).
    pub fn choice(&self, class: ShapeClass) -> MatmulVariant {
        self.class_choice(class)
            .map_or(MatmulVariant::Register8x8, |c| c.best)
    }

    /// The fastest variant for `class` among those that run every shape.
    pub fn general_choice(&self, class: ShapeClass) -> MatmulVariant {
        self.class_choice(class)
            .map_or(MatmulVariant::Register8x8, |c| c.general)
    }

    fn class_choice(&self, class: ShapeClass) -> Option<&ClassChoice> {
        self.choices.iter().find(|c| c.class == class)
    }
}

impl std::fmt::Display for MatmulTuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.from_cache { "cached" } else { "tuned" };
        write!(
            f,
            "matmul on {} ({how} in {:.2} s):",
            self.adapter, self.seconds
        )?;
        for c in &self.choices {
            write!(f, " {}={}", c.class.name(), c.best)?;
            if c.general != c.best {
                write!(f, " (else {})", c.general)?;
            }
        }
        for (variant, why) in &self.rejected {
            write!(f, "; {variant} rejected: {why}")?;
        }
        Ok(())
    }
}

/// Tunings of this process, by adapter; the mutex also keeps two threads from tuning at once.
fn memo() -> &'static Mutex<HashMap<String, MatmulTuning>> {
    static MEMO: OnceLock<Mutex<HashMap<String, MatmulTuning>>> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The tuning of this adapter: from memory, else from the disk cache, else by timing.
pub fn tune_matmul(ctx: &GpuContext) -> Result<MatmulTuning> {
    let mut memo = memo().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = memo.get(&ctx.summary.name) {
        return Ok(t.clone());
    }
    let started = Instant::now();
    let path = cache_path(&ctx.summary.name);
    let cached = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| parse_cache(&text, &ctx.summary.name));
    let tuning = match cached {
        Some(choices) => MatmulTuning {
            adapter: ctx.summary.name.clone(),
            choices,
            timings: Vec::new(),
            rejected: Vec::new(),
            from_cache: true,
            seconds: started.elapsed().as_secs_f64(),
            cache_path: path,
        },
        None => measure_and_store(ctx, path)?,
    };
    memo.insert(ctx.summary.name.clone(), tuning.clone());
    Ok(tuning)
}

/// Time the candidates again, ignoring and then overwriting any cached choice.
pub fn retune_matmul(ctx: &GpuContext) -> Result<MatmulTuning> {
    let mut memo = memo().lock().unwrap_or_else(|e| e.into_inner());
    let tuning = measure_and_store(ctx, cache_path(&ctx.summary.name))?;
    memo.insert(ctx.summary.name.clone(), tuning.clone());
    Ok(tuning)
}

fn measure_and_store(ctx: &GpuContext, path: Option<PathBuf>) -> Result<MatmulTuning> {
    let started = Instant::now();
    let mut rejected = Vec::new();
    let mut candidates = Vec::new();
    for variant in TUNING_CANDIDATES {
        let [m, n, k] = VALIDATION_SHAPE;
        if !variant.runs(ctx, [m, n, k], false, false) {
            continue;
        }
        match validate_variant(ctx, variant)? {
            Ok(()) => candidates.push(variant),
            Err(why) => rejected.push((variant, why)),
        }
    }
    let mut choices = Vec::new();
    let mut timings = Vec::new();
    for class in ShapeClass::ALL {
        let (choice, measured) = tune_class(ctx, class, &candidates, started)?;
        choices.push(choice);
        timings.extend(measured);
    }
    if let Some(p) = &path {
        // A cache that cannot be written only costs a re-tune next time.
        let _ = p
            .parent()
            .map(std::fs::create_dir_all)
            .transpose()
            .and_then(|_| std::fs::write(p, format_cache(&ctx.summary.name, &choices)));
    }
    Ok(MatmulTuning {
        adapter: ctx.summary.name.clone(),
        choices,
        timings,
        rejected,
        from_cache: false,
        seconds: started.elapsed().as_secs_f64(),
        cache_path: path,
    })
}

/// `Ok(Err(why))` when `variant` does not reproduce the CPU reference on
/// [`VALIDATION_SHAPE`] (plain layout, bias and ReLU) on this adapter.
pub fn validate_variant(
    ctx: &GpuContext,
    variant: MatmulVariant,
) -> Result<std::result::Result<(), String>> {
    let [m, n, k] = VALIDATION_SHAPE;
    let a_data = crate::testing::random_f32(m * k, 11, 1.0);
    let b_data = crate::testing::random_f32(k * n, 12, 1.0);
    let bias_data = crate::testing::random_f32(n, 13, 1.0);
    let a = Tensor::from_f32(ctx, &a_data, &[m, k])?;
    let b = Tensor::from_f32(ctx, &b_data, &[k, n])?;
    let bias = Tensor::from_f32(ctx, &bias_data, &[n])?;
    // Start from NaN: an output the variant forgets to write cannot pass.
    let c = Tensor::from_f32(ctx, &vec![f32::NAN; m * n], &[m, n])?;
    let opts = MatmulOptions {
        bias: Some(&bias),
        relu: true,
        variant: Some(variant),
        ..Default::default()
    };
    let mut encoder = ctx.encoder();
    prepare_matmul(ctx, &a, &b, &c, &opts)?.encode(&mut encoder);
    ctx.submit_and_wait(encoder);
    let mut expected = vec![0.0; m * n];
    let cpu_opts = cpu::Options {
        bias: Some(&bias_data),
        relu: true,
        ..Default::default()
    };
    cpu::matmul(&a_data, &b_data, &mut expected, m, n, k, cpu_opts);
    Ok(compare_to_reference(&c.to_f32(ctx)?, &expected, k))
}

/// `Err` naming the first element of `actual` off `expected` by more than f32 summation of
/// `k` products can explain (or that is not finite).
fn compare_to_reference(
    actual: &[f32],
    expected: &[f32],
    k: usize,
) -> std::result::Result<(), String> {
    let atol = 1e-4 * (k as f32).sqrt();
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let tol = atol + 1e-4 * e.abs();
        if !(a - e).abs().le(&tol) {
            let [m, n, k] = VALIDATION_SHAPE;
            return Err(format!(
                "element {i} of a {m}x{k} by {k}x{n} product is {a}, the CPU reference {e}"
            ));
        }
    }
    Ok(())
}

/// The fastest of `candidates` (already validated) on `class`'s representative shape, and
/// what each candidate took.
fn tune_class(
    ctx: &GpuContext,
    class: ShapeClass,
    candidates: &[MatmulVariant],
    started: Instant,
) -> Result<(ClassChoice, Vec<Timing>)> {
    let [m, n, k] = class.representative();
    let a = Tensor::from_f32(ctx, &crate::testing::random_f32(m * k, 1, 1.0), &[m, k])?;
    let b = Tensor::from_f32(ctx, &crate::testing::random_f32(k * n, 2, 1.0), &[k, n])?;
    let c = Tensor::zeros(ctx, &[m, n], DType::F32)?;
    let mut timings: Vec<Timing> = Vec::new();
    let mut best: Option<(MatmulVariant, f64)> = None;
    let mut best_general: Option<(MatmulVariant, f64)> = None;
    for &variant in candidates {
        if !variant.runs(ctx, [m, n, k], false, false) {
            continue;
        }
        // Past the budget, only a missing general choice is still worth a measurement.
        if best_general.is_some() && started.elapsed() > TIME_BUDGET {
            break;
        }
        let opts = MatmulOptions {
            variant: Some(variant),
            ..Default::default()
        };
        let launch = prepare_matmul(ctx, &a, &b, &c, &opts)?;
        let seconds = fastest_run(ctx, &launch, best.map(|(_, s)| s));
        timings.push(Timing {
            class,
            variant,
            seconds,
        });
        keep_faster(&mut best, variant, seconds);
        if variant.is_general() {
            keep_faster(&mut best_general, variant, seconds);
        }
    }
    let (Some((best, _)), Some((general, _))) = (best, best_general) else {
        return Err(no_general_variant(ctx, candidates));
    };
    let choice = ClassChoice {
        class,
        best,
        general,
    };
    Ok((choice, timings))
}

fn no_general_variant(ctx: &GpuContext, candidates: &[MatmulVariant]) -> TensorError {
    invalid_argument(
        "matmul",
        format!(
            "no general matmul variant reproduced the CPU reference on {} (candidates left: {candidates:?})",
            ctx.summary.name
        ),
    )
}

/// Seconds of the fastest of a few runs of `dispatch`, after one warm-up run (the first use
/// of its pipeline).
fn fastest_run(ctx: &GpuContext, launch: &MatmulLaunch, leader: Option<f64>) -> f64 {
    const RUNS: usize = 3;
    let run_once = || {
        let t = Instant::now();
        let mut encoder = ctx.encoder();
        launch.encode(&mut encoder);
        ctx.submit_and_wait(encoder);
        t.elapsed().as_secs_f64()
    };
    run_once();
    let mut fastest = f64::INFINITY;
    for _ in 0..RUNS {
        fastest = fastest.min(run_once());
        // A candidate far behind the leader's seconds needs no more runs to be ruled out.
        if leader.is_some_and(|s| fastest > 4.0 * s) {
            break;
        }
    }
    fastest
}

/// Makes `variant` the leader if it beat the current one (or there is none).
fn keep_faster(leader: &mut Option<(MatmulVariant, f64)>, variant: MatmulVariant, seconds: f64) {
    if leader.is_none_or(|(_, s)| seconds < s) {
        *leader = Some((variant, seconds));
    }
}

/// `$XDG_CACHE_HOME` or `~/.cache`, then `darkknowledge/matmul-tuning-<adapter>.txt`.
pub fn cache_path(adapter: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let safe: String = adapter
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .collect();
    Some(
        base.join("darkknowledge")
            .join(format!("matmul-tuning-{safe}.txt")),
    )
}

/// FNV-1a of the shader sources: a cache written for another kernel version is ignored.
fn shader_hash() -> u64 {
    code_hash(&[
        SHADER.wgsl,
        SUBGROUP_SHADER.wgsl,
        crate::ops::texture::SHADER.wgsl,
    ])
}

/// FNV-1a of WGSL code without its `//` comments and surrounding blanks, so that an edit of
/// a header's documentation keeps the tuning (and the numbers it gives) of the same kernels.
fn code_hash(sources: &[&str]) -> u64 {
    sources
        .iter()
        .flat_map(|source| source.lines())
        .map(|line| line.split("//").next().unwrap_or("").trim())
        .filter(|code| !code.is_empty())
        .flat_map(|code| code.bytes().chain([b'\n']))
        .fold(0xcbf2_9ce4_8422_2325, |h, byte| {
            (h ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

fn format_cache(adapter: &str, choices: &[ClassChoice]) -> String {
    let mut text = format!(
        "{CACHE_VERSION}\nadapter {adapter}\nshader {:016x}\n",
        shader_hash()
    );
    for c in choices {
        text.push_str(&format!("{} {} {}\n", c.class.name(), c.best, c.general));
    }
    text
}

/// The choices in a cache file, or `None` unless it is complete and made for this adapter
/// and shader.
fn parse_cache(text: &str, adapter: &str) -> Option<Vec<ClassChoice>> {
    let mut lines = text.lines();
    if lines.next()? != CACHE_VERSION
        || lines.next()?.strip_prefix("adapter ")? != adapter
        || lines.next()?.strip_prefix("shader ")? != format!("{:016x}", shader_hash())
    {
        return None;
    }
    let mut choices = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let choice = ClassChoice {
            class: ShapeClass::from_name(words.next()?)?,
            best: MatmulVariant::from_name(words.next()?)?,
            general: MatmulVariant::from_name(words.next()?)?,
        };
        if !choice.general.is_general() || words.next().is_some() {
            return None;
        }
        choices.push(choice);
    }
    let complete = ShapeClass::ALL
        .iter()
        .all(|class| choices.iter().any(|c| c.class == *class));
    complete.then_some(choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_hash_ignores_comments_but_not_code() {
        let kernel = "// header\nfn f() -> f32 {\n    return 1.0; // one\n}\n";
        let redocumented = "// another header\n\nfn f() -> f32 {\n    return 1.0;\n}\n";
        let changed = "// header\nfn f() -> f32 {\n    return 2.0; // one\n}\n";
        assert_eq!(code_hash(&[kernel]), code_hash(&[redocumented]));
        assert_ne!(code_hash(&[kernel]), code_hash(&[changed]));
        assert_ne!(code_hash(&[kernel, kernel]), code_hash(&[kernel]));
    }

    #[test]
    fn cache_round_trips_and_rejects_damage() {
        let choice = |class, best, general| ClassChoice {
            class,
            best,
            general,
        };
        let choices = vec![
            choice(
                ShapeClass::Small,
                MatmulVariant::Subgroup16x8,
                MatmulVariant::Register4x4,
            ),
            choice(
                ShapeClass::Skinny,
                MatmulVariant::Register8x8,
                MatmulVariant::Register8x8,
            ),
            choice(
                ShapeClass::Large,
                MatmulVariant::Tiled64,
                MatmulVariant::Tiled64,
            ),
        ];
        let text = format_cache("Some GPU", &choices);
        assert_eq!(parse_cache(&text, "Some GPU"), Some(choices));
        assert_eq!(parse_cache(&text, "Other GPU"), None, "other adapter");
        assert_eq!(
            parse_cache(&text.replace("tiled64", "tiled7"), "Some GPU"),
            None
        );
        assert_eq!(
            parse_cache(&text.replace("large tiled64 tiled64\n", ""), "Some GPU"),
            None
        );
        assert_eq!(
            parse_cache(&text.replace("register4x4", "subgroup32x8"), "Some GPU"),
            None,
            "a fallback that is not general"
        );
        assert_eq!(parse_cache("garbage", "Some GPU"), None);
    }

    /// Every variant that runs on this adapter passes the check; a result off the reference
    /// by one element, or a NaN left unwritten, fails it.
    #[test]
    fn validation_accepts_correct_variants_and_catches_wrong_results() {
        let ctx = crate::testing::ctx();
        let [m, n, k] = VALIDATION_SHAPE;
        for variant in MatmulVariant::ALL {
            if variant.runs(ctx, [m, n, k], false, false) {
                assert_eq!(validate_variant(ctx, variant).unwrap(), Ok(()), "{variant}");
            }
        }
        let expected = crate::testing::random_f32(m * n, 5, 1.0);
        assert_eq!(compare_to_reference(&expected, &expected, k), Ok(()));
        let mut wrong = expected.clone();
        wrong[17] += 0.01;
        let err = compare_to_reference(&wrong, &expected, k).unwrap_err();
        assert!(err.starts_with("element 17 "), "{err}");
        wrong[17] = f32::NAN;
        assert!(compare_to_reference(&wrong, &expected, k).is_err());
    }

    /// A candidate left out by validation is never chosen, even where it would be fastest.
    #[test]
    fn only_validated_candidates_are_chosen() {
        let ctx = crate::testing::ctx();
        let candidates = [MatmulVariant::Register4x4];
        let (choice, timings) =
            tune_class(ctx, ShapeClass::Small, &candidates, Instant::now()).unwrap();
        assert_eq!(
            (choice.best, choice.general),
            (MatmulVariant::Register4x4, MatmulVariant::Register4x4)
        );
        assert!(
            timings
                .iter()
                .all(|t| t.variant == MatmulVariant::Register4x4)
        );
        let none = tune_class(ctx, ShapeClass::Small, &[], Instant::now());
        assert!(none.unwrap_err().to_string().contains("CPU reference"));
    }

    #[test]
    fn shape_classes() {
        assert_eq!(ShapeClass::of(128, 10, 1200), ShapeClass::Skinny);
        assert_eq!(ShapeClass::of(64, 64, 64), ShapeClass::Small);
        assert_eq!(ShapeClass::of(128, 1200, 784), ShapeClass::Large);
        for class in ShapeClass::ALL {
            let [m, n, k] = class.representative();
            assert_eq!(
                ShapeClass::of(m, n, k),
                class,
                "representative of {class:?}"
            );
        }
    }
}
