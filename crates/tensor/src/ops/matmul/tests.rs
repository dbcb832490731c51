//! GPU against the CPU reference for every variant, layout and epilogue, on shapes that are
//! not multiples of any tile size.

use super::*;
use crate::testing::{ctx, random_f32};

/// (m, n, k) products to check: degenerate, odd, several tiles with ragged edges, tall.
const SHAPES: [[usize; 3]; 4] = [[1, 1, 1], [7, 5, 13], [129, 33, 65], [300, 11, 70]];

/// Products whose dimensions are multiples of 4 (the vec4 fast path runs them in every
/// layout) but not of any tile size, and one where only k and n are (it runs them only
/// with A untransposed).
const FOUR_SHAPES: [[usize; 3]; 4] = [[4, 4, 4], [36, 20, 44], [132, 68, 24], [6, 8, 12]];

/// Products as wide as the subgroup kernel's 16-, 32- and 64-invocation workgroups (the
/// narrower FOUR_SHAPES all run 8-wide ones), with ragged last columns.
const WIDE_SHAPES: [[usize; 3]; 3] = [[12, 116, 8], [8, 244, 12], [4, 500, 8]];

/// Bias, ReLU and accumulate all on (the epilogue flags of `check`).
const ALL_EPILOGUES: u32 = 7;

/// f32 sums of k products of values in [-1, 1] drift by about sqrt(k) ulps of the terms.
fn tolerance(k: usize) -> f32 {
    1e-4 * (k as f32).sqrt().max(1.0)
}

/// Run one product on the GPU and on the CPU, and compare.
fn check(
    (variant, operands): (MatmulVariant, Operands),
    [m, n, k]: [usize; 3],
    trans_a: bool,
    trans_b: bool,
    epilogue: u32,
) {
    let ctx = ctx();
    let (with_bias, relu, accumulate) = (epilogue & 1 != 0, epilogue & 2 != 0, epilogue & 4 != 0);
    let seed = (m * 31 + n * 7 + k) as u64;
    let a_data = random_f32(m * k, seed, 1.0);
    let b_data = random_f32(k * n, seed + 1, 1.0);
    let c_data = random_f32(m * n, seed + 2, 1.0);
    let bias_data = random_f32(n, seed + 3, 1.0);
    let a_shape = if trans_a { [k, m] } else { [m, k] };
    let b_shape = if trans_b { [n, k] } else { [k, n] };
    let a = Tensor::from_f32(ctx, &a_data, &a_shape).unwrap();
    let b = Tensor::from_f32(ctx, &b_data, &b_shape).unwrap();
    let c = Tensor::from_f32(ctx, &c_data, &[m, n]).unwrap();
    let bias = Tensor::from_f32(ctx, &bias_data, &[n]).unwrap();
    let opts = MatmulOptions {
        trans_a,
        trans_b,
        bias: with_bias.then_some(&bias),
        relu,
        accumulate,
        variant: Some(variant),
        operands,
    };
    let mut encoder = ctx.encoder();
    prepare_matmul(ctx, &a, &b, &c, &opts)
        .unwrap()
        .encode(&mut encoder);
    ctx.submit_and_wait(encoder);

    let mut expected = c_data;
    let cpu_opts = cpu::Options {
        trans_a,
        trans_b,
        bias: with_bias.then_some(&bias_data[..]),
        relu,
        accumulate,
    };
    cpu::matmul(&a_data, &b_data, &mut expected, m, n, k, cpu_opts);
    let got = c.to_f32(ctx).unwrap();
    let tol = tolerance(k);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert!(
            (g - e).abs() <= tol * (1.0 + e.abs()),
            "{variant} ({operands:?}) m={m} n={n} k={k} trans_a={trans_a} trans_b={trans_b} bias={with_bias} \
             relu={relu} accumulate={accumulate}: C[{}, {}] = {g}, expected {e} \
             (tolerance {tol} * (1 + |expected|))",
            i / n,
            i % n
        );
    }
}

/// Every layout on every shape, plain and with the full epilogue; every epilogue
/// combination (bias, relu, accumulate) in every layout on one odd shape.
fn check_variant(variant: MatmulVariant) {
    let variant = (variant, Operands::Auto);
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        for shape in SHAPES {
            for epilogue in [0, ALL_EPILOGUES] {
                check(variant, shape, trans_a, trans_b, epilogue);
            }
        }
        for epilogue in 1..ALL_EPILOGUES {
            check(variant, SHAPES[1], trans_a, trans_b, epilogue);
        }
    }
}

/// The vec4 fast path in every layout on shapes of multiples of 4, with every epilogue, and
/// its fallback on the odd shapes, reading its operands from where `operands` says.
fn check_fast_path(variant: MatmulVariant, operands: Operands) {
    let variant = (variant, operands);
    for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
        for shape in FOUR_SHAPES {
            check(variant, shape, trans_a, trans_b, ALL_EPILOGUES);
        }
        // Each width and layout is a pipeline to compile: one wide shape per layout, none
        // for the (A^T, B^T) layout that no layer uses.
        if let Some(&shape) = WIDE_SHAPES.get(usize::from(trans_a) + 2 * usize::from(trans_b)) {
            check(variant, shape, trans_a, trans_b, ALL_EPILOGUES);
        }
        for epilogue in 0..ALL_EPILOGUES {
            check(variant, FOUR_SHAPES[1], trans_a, trans_b, epilogue);
        }
        for shape in &SHAPES[1..3] {
            check(variant, *shape, trans_a, trans_b, ALL_EPILOGUES);
        }
    }
}

#[test]
fn subgroup_workgroups_narrow_to_the_product() {
    let width = |variant: MatmulVariant, n: usize| variant.config().narrowed_to(n).wg_x;
    let fast = MatmulVariant::Subgroup32x8;
    for ([_, n, _], expected) in WIDE_SHAPES.into_iter().zip([16, 32, 64]) {
        assert_eq!(width(fast, n), expected, "n = {n}");
    }
    assert_eq!(width(fast, 64), 8, "8 lanes of 8 columns");
    assert_eq!(width(fast, 784), 16, "98 lanes: 112 launched, not 128");
    assert_eq!(width(fast, 4096), 64);
    assert_eq!(width(MatmulVariant::Subgroup16x8, 3), 8, "never under 8");
    assert_eq!(
        width(MatmulVariant::Register8x8, 4),
        8,
        "general variants unchanged"
    );
}

#[test]
fn subgroup64x8_matches_cpu() {
    check_fast_path(MatmulVariant::Subgroup64x8, Operands::Textures);
}

#[test]
fn subgroup64x8_from_storage_matches_cpu() {
    check_fast_path(MatmulVariant::Subgroup64x8, Operands::Storage);
}

#[test]
fn tall_subgroup_blocks_shrink_to_short_products() {
    use MatmulVariant::{Subgroup16x8, Subgroup32x8, Subgroup64x8, Tiled128};
    // (variant asked for, rows of the product, variant that runs it)
    let cases = [
        (Subgroup64x8, 65, Subgroup64x8),
        (Subgroup64x8, 33, Subgroup64x8),
        (Subgroup64x8, 32, Subgroup32x8),
        (Subgroup64x8, 16, Subgroup16x8),
        (Subgroup32x8, 20, Subgroup32x8),
        (Subgroup16x8, 1, Subgroup16x8),
        (Tiled128, 1, Tiled128),
    ];
    for (asked, m, expected) in cases {
        assert_eq!(asked.fitted_to_rows(m), expected, "{asked} for {m} rows");
    }
}

#[test]
fn subgroup32x8_matches_cpu() {
    check_fast_path(MatmulVariant::Subgroup32x8, Operands::Textures);
}

#[test]
fn subgroup32x8_from_storage_matches_cpu() {
    check_fast_path(MatmulVariant::Subgroup32x8, Operands::Storage);
}

#[test]
fn subgroup16x8_matches_cpu() {
    check_fast_path(MatmulVariant::Subgroup16x8, Operands::Textures);
}

#[test]
fn subgroup16x8_from_storage_matches_cpu() {
    check_fast_path(MatmulVariant::Subgroup16x8, Operands::Storage);
}

#[test]
fn fast_path_runs_rows_of_four_and_falls_back_otherwise() {
    let ctx = ctx();
    let fast = MatmulVariant::Subgroup32x8;
    let has_subgroups = subgroups_of_eight(ctx);
    for trans_a in [false, true] {
        for trans_b in [false, true] {
            assert_eq!(
                fast.runs(ctx, [36, 20, 44], trans_a, trans_b),
                has_subgroups,
                "multiples of 4, trans_a={trans_a} trans_b={trans_b}"
            );
            assert!(!fast.runs(ctx, [36, 20, 45], trans_a, trans_b), "odd k");
        }
    }
    // m only matters when A is stored transposed, n only when B is not.
    assert_eq!(fast.runs(ctx, [6, 8, 12], false, false), has_subgroups);
    assert!(
        !fast.runs(ctx, [6, 8, 12], true, false),
        "odd m, A transposed"
    );
    assert_eq!(fast.runs(ctx, [8, 6, 12], false, true), has_subgroups);
    assert!(!fast.runs(ctx, [8, 6, 12], false, false), "odd n, B plain");
    for v in MatmulVariant::ALL.into_iter().filter(|v| v.is_general()) {
        assert!(v.runs(ctx, [7, 5, 13], true, true), "{v} is general");
    }

    let forced = |m, n, k| {
        let opts = MatmulOptions {
            variant: Some(fast),
            ..Default::default()
        };
        choose_variant(ctx, m, n, k, &opts).unwrap()
    };
    assert_eq!(forced(7, 5, 13), fast.general_fallback());
    let expected = if has_subgroups {
        fast
    } else {
        fast.general_fallback()
    };
    assert_eq!(forced(36, 20, 44), expected);
}

#[test]
fn texture_operands_span_rows_and_mix_with_storage() {
    let fast = MatmulVariant::Subgroup16x8;
    // A of 520 x 36 floats fills more than one 4096-texel row of its texture, in both layouts.
    for trans_a in [false, true] {
        check(
            (fast, Operands::Textures),
            [520, 8, 36],
            trans_a,
            false,
            ALL_EPILOGUES,
        );
    }
    // On CPU adapters the automatic choice reads A from a texture and B from storage here.
    let ctx = ctx();
    let mix = operand_textures(ctx, fast, &fast.config(), [8, 244, 12], Operands::Auto);
    assert_eq!(mix, (ctx.summary.is_cpu, false));
    check(
        (fast, Operands::Auto),
        [8, 244, 12],
        false,
        false,
        ALL_EPILOGUES,
    );
}

#[test]
fn cpu_adapters_copy_operands_into_textures_where_the_product_reuses_them() {
    let ctx = ctx();
    let fast = MatmulVariant::Subgroup64x8;
    let textures = |variant: MatmulVariant, shape: [usize; 3], operands| {
        operand_textures(ctx, variant, &variant.config(), shape, operands)
    };
    let cpu = ctx.summary.is_cpu;
    assert_eq!(
        textures(fast, [1024, 1024, 1024], Operands::Auto),
        (cpu, cpu)
    );
    // 8 columns read each row of A only once per 8-column lane; 8 rows read B once.
    assert_eq!(textures(fast, [8, 8, 12], Operands::Auto), (false, false));
    // Only A is reused enough by a wide, short product; only B by a tall, narrow one.
    assert_eq!(textures(fast, [8, 1200, 784], Operands::Auto), (cpu, false));
    assert_eq!(
        textures(fast, [1200, 10, 128], Operands::Auto),
        (false, cpu)
    );
    assert_eq!(
        textures(fast, [1024, 1024, 1024], Operands::Storage),
        (false, false)
    );
    assert_eq!(textures(fast, [8, 8, 12], Operands::Textures), (true, true));
    let general = MatmulVariant::Register8x8;
    assert_eq!(
        textures(general, [1024, 1024, 1024], Operands::Textures),
        (false, false)
    );
}

#[test]
fn register4x4_matches_cpu() {
    check_variant(MatmulVariant::Register4x4);
}

#[test]
fn register8x8_matches_cpu() {
    check_variant(MatmulVariant::Register8x8);
}

#[test]
fn tiled64_matches_cpu() {
    check_variant(MatmulVariant::Tiled64);
}

#[test]
fn tiled128_matches_cpu() {
    check_variant(MatmulVariant::Tiled128);
}

#[test]
fn automatic_choice_is_tuned_and_correct() {
    let ctx = ctx();
    let tuning = tune_matmul(ctx).unwrap();
    eprintln!("matmul tuning: {tuning}");
    assert_eq!(tuning.choices.len(), ShapeClass::ALL.len(), "{tuning}");
    // A second request is answered from memory, with the same choices.
    assert_eq!(tune_matmul(ctx).unwrap().choices, tuning.choices);
    let [m, n, k] = [37, 19, 45];
    let a_data = random_f32(m * k, 5, 1.0);
    let b_data = random_f32(k * n, 6, 1.0);
    let a = Tensor::from_f32(ctx, &a_data, &[m, k]).unwrap();
    let b = Tensor::from_f32(ctx, &b_data, &[k, n]).unwrap();
    let c = Tensor::zeros(ctx, &[m, n], DType::F32).unwrap();
    let mut encoder = ctx.encoder();
    prepare_matmul(ctx, &a, &b, &c, &MatmulOptions::default())
        .unwrap()
        .encode(&mut encoder);
    ctx.submit_and_wait(encoder);
    let mut expected = vec![0.0; m * n];
    cpu::matmul(
        &a_data,
        &b_data,
        &mut expected,
        m,
        n,
        k,
        cpu::Options::default(),
    );
    crate::testing::assert_close(
        &c.to_f32(ctx).unwrap(),
        &expected,
        tolerance(k),
        tolerance(k),
        "automatic variant, tolerance 1e-4 * sqrt(k)",
    );
}

#[test]
fn shape_errors_name_both_shapes() {
    let ctx = ctx();
    let a = Tensor::zeros(ctx, &[7, 13], DType::F32).unwrap();
    let b = Tensor::zeros(ctx, &[12, 5], DType::F32).unwrap();
    let c = Tensor::zeros(ctx, &[7, 5], DType::F32).unwrap();
    let err = prepare_matmul(ctx, &a, &b, &c, &MatmulOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[7, 13]") && err.contains("[12, 5]"), "{err}");

    let b = Tensor::zeros(ctx, &[13, 5], DType::F32).unwrap();
    let wrong_c = Tensor::zeros(ctx, &[5, 7], DType::F32).unwrap();
    let err = prepare_matmul(ctx, &a, &b, &wrong_c, &MatmulOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[5, 7]") && err.contains("[7, 5]"), "{err}");

    let bias = Tensor::zeros(ctx, &[7], DType::F32).unwrap();
    let opts = MatmulOptions {
        bias: Some(&bias),
        ..Default::default()
    };
    let err = prepare_matmul(ctx, &a, &b, &c, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("[7]") && err.contains("[7, 5]"), "{err}");

    let integer = Tensor::zeros(ctx, &[13, 5], DType::U32).unwrap();
    let err = prepare_matmul(ctx, &a, &integer, &c, &MatmulOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("F32") && err.contains("U32"), "{err}");

    let err = prepare_matmul(ctx, &a, &b, &a, &MatmulOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("[7, 13]"), "aliased output: {err}");
}

#[test]
fn variant_names_round_trip() {
    for v in MatmulVariant::ALL {
        assert_eq!(v.name().parse::<MatmulVariant>().unwrap(), v);
    }
    let err = "fastest".parse::<MatmulVariant>().unwrap_err().to_string();
    assert!(err.contains("register8x8"), "{err}");
}
