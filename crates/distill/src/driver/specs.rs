//! From the configuration's architecture strings to the model specs that are trained.

use anyhow::{Result, bail};
use dk_nn::ModelSpec;

use dk_tensor::GpuContext;

use super::session::EVAL_BATCH;
use crate::config::{ModelConfig, RunConfig};
use crate::data::Dataset;

/// The spec of `role` (`"teacher"` or `"student"`) for the examples of `data`, with the
/// configured dropout inserted: after the input (`dropout_input`) and after every hidden
/// fully connected layer (`dropout_hidden`).
///
/// A spec may omit its input token (`c16k3-p2-256-10`): the input is then the data's
/// `[channels, height, width]` (`[1, 1, features]` for tabular data). A spec whose input does
/// not match the data is an error naming both: MLPs take `channels * height * width`
/// values (`3072-256-10` on CIFAR-10, `13-64-3` on 13 features), CNNs `CxHxW`
/// (`3x32x32-c16k3-p2-256-10`).
pub fn model_spec(config: &ModelConfig, role: &str, data: &Dataset) -> Result<ModelSpec> {
    let text = config.spec.trim();
    let [channels, height, width] = data.example_shape();
    let parsed = parse_spec(text, [channels, height, width])
        .map_err(|err| anyhow::anyhow!("{role}.spec: {err}"))?;
    let values = data.values_per_example();
    if parsed.input_len() != values {
        let (what, start) = if data.is_tabular() {
            (
                format!("the data has {values} features"),
                format!("{values}"),
            )
        } else {
            (
                format!("the images are {channels}x{height}x{width} = {values} values"),
                format!("{values} or {channels}x{height}x{width}"),
            )
        };
        bail!(
            "{role}.spec `{text}` takes inputs of {} values ({}), but {what}: start the spec with {start}",
            parsed.input_len(),
            parsed.input_shape_text()
        );
    }
    if config.dropout_input == 0.0 && config.dropout_hidden == 0.0 {
        return Ok(parsed);
    }
    let canonical = parsed.text().to_string();
    let tokens: Vec<&str> = canonical.split('-').collect();
    let mut out: Vec<String> = vec![tokens[0].to_string()];
    if config.dropout_input > 0.0 {
        out.push(format!("d{}", config.dropout_input));
    }
    for (i, token) in tokens.iter().enumerate().skip(1) {
        out.push(token.to_string());
        let last = i + 1 == tokens.len();
        let hidden_dense = token.starts_with('f') || token.chars().all(|c| c.is_ascii_digit());
        if !last && hidden_dense && config.dropout_hidden > 0.0 {
            out.push(format!("d{}", config.dropout_hidden));
        }
    }
    ModelSpec::parse(&out.join("-"))
        .map_err(|err| anyhow::anyhow!("{role}.spec with dropout: {err}"))
}

/// The teacher's and the student's specs for `data` ([`model_spec`]), checked against the
/// data's class count and the adapter's buffer limits at the largest batch a run uses.
pub fn checked_specs(
    ctx: &GpuContext,
    config: &RunConfig,
    data: &Dataset,
) -> Result<(ModelSpec, ModelSpec)> {
    let teacher = model_spec(&config.teacher, "teacher", data)?;
    let student = model_spec(&config.student, "student", data)?;
    let largest_batch = [
        (config.batch_size, Some("batch_size (--batch-size)")),
        (EVAL_BATCH, None),
        (config.eval.throughput_batch, Some("eval.throughput_batch")),
    ]
    .into_iter()
    .max_by_key(|&(size, _)| size)
    .expect("three candidates");
    for (role, spec) in [("teacher", &teacher), ("student", &student)] {
        check_fits_adapter(spec, role, largest_batch, ctx.max_binding_bytes())?;
        anyhow::ensure!(
            spec.classes() == data.classes,
            "{role}.spec `{}` ends in {} classes, but the data set has {}",
            spec.text(),
            spec.classes(),
            data.classes
        );
    }
    Ok((teacher, student))
}

/// `text` parsed as it stands when it starts with an input token (`784-…`, `1x28x28-…`),
/// else with `input` as its input shape.
pub(crate) fn parse_spec(text: &str, input: [usize; 3]) -> dk_nn::Result<ModelSpec> {
    let first = text.split('-').next().unwrap_or("");
    let has_input_token =
        !first.is_empty() && first.chars().all(|c| c.is_ascii_digit() || c == 'x');
    if has_input_token {
        ModelSpec::parse(text)
    } else {
        ModelSpec::parse_with_input(text, &input)
    }
}

/// Fits the preset's own specs to the data, so that a preset's defaults run on any data
/// set: an MLP spec's input token becomes the data's values per example, and the output
/// token of any spec the data's class count. Specs the user set (different from the
/// preset's) are left alone; their mismatches are reported by [`model_spec`]. Returns one
/// line per change, for the plan. The preset student's step budget is fitted to its spec
/// and to the size of `data` (the training split) unless `keep_student_length` (the user
/// gave the students' steps or epochs).
pub fn fit_preset_specs(
    config: &mut RunConfig,
    data: &Dataset,
    keep_student_length: bool,
) -> Vec<String> {
    let preset = RunConfig::preset(config.preset);
    let presets_student = config.student.spec == preset.student.spec;
    let mut notes = Vec::new();
    for (role, model, default) in [
        ("teacher", &mut config.teacher, &preset.teacher.spec),
        ("student", &mut config.student, &preset.student.spec),
    ] {
        if model.spec != *default {
            continue;
        }
        if let Some(fitted) = fitted_spec(default, data) {
            notes.push(format!(
                "{role}.spec: the preset's {default} fitted to the data: {fitted}"
            ));
            model.spec = fitted;
        }
    }
    if let Some(steps) = config
        .experiments
        .student_steps
        .filter(|_| config.experiment.is_some())
    {
        if !keep_student_length {
            config.student.steps = Some(steps);
            notes.push(format!(
                "student.steps: {steps} for the experiment (experiments.student_steps)"
            ));
            return notes;
        }
    }
    // Only the students': on a small table the teachers fit their training rows well
    // within the preset's budget, and a teacher's step costs several times a student's
    // whatever its FLOPs (dispatches dominate small models).
    if presets_student && !keep_student_length {
        // The experiments give their rows epochs from the students' steps on transfer sets
        // of their own, often several times the training split: they keep the preset's
        // steps for the data size, which was measured on the standard study only.
        let reference = preset_train_examples(&preset);
        let examples = match config.experiment {
            None => data.n,
            Some(_) => reference,
        };
        let scale = StepScale::of(
            &preset.student.spec,
            &config.student.spec,
            (examples, reference),
        );
        notes.extend(scale.apply(&mut config.student, preset.student.steps));
    }
    notes
}

/// Most times a preset's step budget is multiplied for a model cheaper than the preset's or
/// a data set smaller than the presets' own. A small model's step costs a few dispatches
/// whatever its FLOPs (about 4 ms for the quick student on a table of 64 features through
/// lavapipe, 6 ms on 28x28 images), so the cap bounds the time.
const MAX_STEP_SCALE: u64 = 5;

/// Most steps a preset's student budget is raised to (a budget already past it stays as it
/// is): about 80 s of a small student's steps through lavapipe.
const MAX_SCALED_STEPS: usize = 20_000;

/// The training examples the presets' step budgets were sized on, unless the preset says
/// otherwise: Fashion-MNIST's 60,000 training images less 5,000 for validation.
const PRESET_TRAIN_EXAMPLES: usize = 55_000;

/// The training examples `preset`'s step budgets were sized on: its own training split on
/// Fashion-MNIST's 60,000 training images.
fn preset_train_examples(preset: &RunConfig) -> usize {
    preset
        .data
        .train_count(60_000)
        .unwrap_or(PRESET_TRAIN_EXAMPLES)
}

/// How many times the preset's step budget the preset's student gets on some data, and why.
#[derive(Debug)]
struct StepScale {
    /// FLOPs per example of the preset's student on 28x28 images.
    reference_flops: u64,
    /// FLOPs per example of the student fitted to the data.
    fitted_flops: u64,
    train_examples: usize,
    /// The training examples the preset's budget was sized on.
    reference_examples: usize,
}

impl StepScale {
    /// The scale for the preset's student `preset_spec` (on 28x28 images), fitted to
    /// `fitted` on data of `train_examples` training examples, for a budget sized on
    /// `reference_examples`.
    fn of(
        preset_spec: &str,
        fitted: &str,
        (train_examples, reference_examples): (usize, usize),
    ) -> StepScale {
        let reference = parse_spec(preset_spec, [1, 28, 28]).map(|s| s.flops_per_example());
        let cost = ModelSpec::parse(fitted).map(|s| s.flops_per_example());
        let (reference_flops, fitted_flops) = match (reference, cost) {
            (Ok(reference), Ok(cost)) => (reference.max(1), cost.max(1)),
            _ => (1, 1),
        };
        StepScale {
            reference_flops,
            fitted_flops,
            train_examples: train_examples.max(1),
            reference_examples: reference_examples.max(1),
        }
    }

    /// The preset's student's FLOPs per example over the fitted student's.
    fn cheaper(&self) -> f64 {
        self.reference_flops as f64 / self.fitted_flops as f64
    }

    /// The presets' training examples over this data's.
    fn smaller(&self) -> f64 {
        self.reference_examples as f64 / self.train_examples as f64
    }

    /// Whole times the steps: the product of both ratios, rounded down (in integers, so
    /// that an exact product is not lost to rounding), from 1 to [`MAX_STEP_SCALE`].
    fn times(&self) -> u64 {
        let numerator = u128::from(self.reference_flops) * self.reference_examples as u128;
        let denominator = u128::from(self.fitted_flops) * self.train_examples as u128;
        let times = (numerator / denominator).min(u128::from(MAX_STEP_SCALE)) as u64;
        times.max(1)
    }

    /// Multiplies `model.steps` when it is the preset's `preset_steps` (never fewer steps;
    /// a budget in epochs is left alone). Returns the plan's note.
    ///
    /// A cheaper student (an MLP on a table of 64 features: 10x fewer FLOPs than the quick
    /// student on images) gets about the same compute, which such small students need to
    /// converge (on 64 features the quick student's best epoch came after about 3,500
    /// steps). On a training set smaller than the presets' own, the students overfit the
    /// labels early and keep an early epoch, while soft targets go on improving for longer:
    /// five times the steps took distillation over hard labels from -0.02 +- 0.08 to +0.83
    /// +- 0.12 points on 3,200 MNIST digits and from +0.06 +- 0.11 to +0.29 +- 0.19 on 6,000
    /// Fashion-MNIST images (README: "Results").
    fn apply(&self, model: &mut ModelConfig, preset_steps: Option<usize>) -> Option<String> {
        let steps = preset_steps.filter(|&s| model.steps == Some(s))?;
        let times = self.times();
        if times == 1 {
            return None;
        }
        let scaled = steps
            .saturating_mul(times as usize)
            .min(MAX_SCALED_STEPS.max(steps));
        if scaled == steps {
            return None;
        }
        model.steps = Some(scaled);
        let mut reasons = Vec::new();
        if self.cheaper() >= 1.05 {
            reasons.push(format!(
                "{:.1}x fewer FLOPs per example than on 28x28 images",
                self.cheaper()
            ));
        }
        if self.smaller() >= 1.05 {
            reasons.push(format!(
                "{} training examples, {:.1}x fewer than the preset's {}",
                self.train_examples,
                self.smaller(),
                self.reference_examples
            ));
        }
        Some(format!(
            "student.steps: the preset's {steps} steps times {times} for {} (at most {MAX_STEP_SCALE}x and {MAX_SCALED_STEPS} steps): {scaled}",
            reasons.join(" and ")
        ))
    }
}

/// Hidden layers of the MLP that stands in for a preset's CNN on tabular data, which a
/// convolution cannot read.
const TABULAR_HIDDEN: &str = "256-256";

/// `spec` with its MLP input token and its output token set from `data` (`None` when it
/// fits already). A CNN spec on tabular data becomes an MLP of [`TABULAR_HIDDEN`].
fn fitted_spec(spec: &str, data: &Dataset) -> Option<String> {
    let mut tokens: Vec<String> = spec.split('-').map(str::to_string).collect();
    let numeric = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit());
    let is_mlp = tokens
        .iter()
        .all(|t| numeric(t) || (t.starts_with('d') && t.len() > 1));
    if tokens.len() < 2 || !numeric(tokens.last()?) {
        return None;
    }
    if !is_mlp && data.is_tabular() {
        let (values, classes) = (data.values_per_example(), data.classes);
        return Some(format!("{values}-{TABULAR_HIDDEN}-{classes}"));
    }
    if is_mlp {
        tokens[0] = data.values_per_example().to_string();
    }
    *tokens.last_mut()? = data.classes.to_string();
    let fitted = tokens.join("-");
    (fitted != spec).then_some(fitted)
}

/// Checks, before anything is allocated, that every parameter tensor of `spec` and every
/// activation of a batch of `batch.0` examples fits one storage binding of the adapter
/// (`max_binding_bytes`); the message names the layer as PyTorch numbers it, and for an
/// activation the setting that chose the batch (`batch.1`, `None` for a fixed batch).
pub fn check_fits_adapter(
    spec: &ModelSpec,
    role: &str,
    (batch, batch_setting): (usize, Option<&str>),
    max_binding_bytes: u64,
) -> Result<()> {
    let too_large = |what: String, bytes: u128, remedy: &str| {
        anyhow::anyhow!(
            "{role}.spec `{}`: {what} needs {bytes} bytes, more than this adapter's {max_binding_bytes}-byte limit of one buffer (max_storage_buffer_binding_size); make {remedy} smaller",
            spec.text()
        )
    };
    let f32_bytes = |elements: usize| elements as u128 * 4;
    for param in spec.parameters() {
        let bytes = f32_bytes(param.len());
        if bytes > u128::from(max_binding_bytes) {
            let layer = spec.layers()[param.layer].torch_name();
            return Err(too_large(
                format!(
                    "layer {} ({layer}) parameter `{}` of shape {:?}",
                    param.layer, param.name, param.shape
                ),
                bytes,
                "the model",
            ));
        }
    }
    let input = std::iter::once(("the input".to_string(), spec.input_shape().to_vec()));
    let outputs = spec
        .activation_shapes()
        .into_iter()
        .enumerate()
        .map(|(i, shape)| {
            (
                format!("layer {i} ({}) output", spec.layers()[i].torch_name()),
                shape,
            )
        });
    for (what, shape) in input.chain(outputs) {
        let bytes = f32_bytes(shape.iter().product()) * batch as u128;
        if bytes > u128::from(max_binding_bytes) {
            let remedy = batch_setting.map_or("the model".to_string(), |setting| {
                format!("the model or {setting}")
            });
            return Err(too_large(
                format!("{what} of shape {shape:?} for a batch of {batch}"),
                bytes,
                &remedy,
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

    fn config(spec: &str, dropout_input: f32, dropout_hidden: f32) -> ModelConfig {
        ModelConfig {
            spec: spec.into(),
            dropout_input,
            dropout_hidden,
            ..ModelConfig::default()
        }
    }

    fn images(shape: [usize; 3]) -> Dataset {
        let names = (0..10).map(|c| c.to_string()).collect();
        Dataset::from_pixels(Vec::new(), Vec::new(), shape, names)
    }

    #[test]
    fn dropout_goes_after_input_and_hidden_dense_layers() {
        let grey = images([1, 28, 28]);
        let spec = model_spec(&config("784-100-50-10", 0.2, 0.5), "teacher", &grey).unwrap();
        assert_eq!(spec.text(), "784-d0.2-100-d0.5-50-d0.5-10");
        let plain = model_spec(&config("784-100-10", 0.0, 0.0), "student", &grey).unwrap();
        assert_eq!(plain.text(), "784-100-10");
    }

    #[test]
    fn input_token_may_be_omitted_and_must_fit_the_images() {
        let grey = images([1, 28, 28]);
        let spec = model_spec(&config("c4k3-p2-10", 0.0, 0.0), "teacher", &grey).unwrap();
        assert_eq!(spec.input_shape(), &[1, 28, 28]);
        let err = model_spec(&config("100-10", 0.0, 0.0), "student", &grey).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("student.spec `100-10`") && text.contains("1x28x28 = 784"),
            "{text}"
        );
        let err = model_spec(&config("784-zz-10", 0.0, 0.0), "student", &grey).unwrap_err();
        assert!(err.to_string().starts_with("student.spec"), "{err}");
    }

    #[test]
    fn models_past_the_adapter_limit_are_refused_naming_the_layer() {
        let spec = ModelSpec::parse("784-4096-10").unwrap();
        // The weight [4096, 784] is 12,845,056 bytes; its activations 16 KiB per example.
        let batch = (128, Some("batch_size (--batch-size)"));
        check_fits_adapter(&spec, "teacher", batch, 16 << 20).unwrap();
        let text = check_fits_adapter(&spec, "teacher", batch, 8 << 20)
            .unwrap_err()
            .to_string();
        assert_eq!(
            text,
            "teacher.spec `784-4096-10`: layer 0 (Linear) parameter `0.weight` of shape [4096, 784] needs 12845056 bytes, more than this adapter's 8388608-byte limit of one buffer (max_storage_buffer_binding_size); make the model smaller"
        );
        let batch = (4096, Some("batch_size (--batch-size)"));
        let text = check_fits_adapter(&spec, "student", batch, 16 << 20)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains(
                "layer 0 (Linear) output of shape [4096] for a batch of 4096 needs 67108864 bytes"
            ) && text.ends_with("make the model or batch_size (--batch-size) smaller"),
            "{text}"
        );
    }

    #[test]
    fn colour_images_and_features_set_the_input() {
        let colour = images([3, 32, 32]);
        let cnn = model_spec(&config("c4k3-p2-10", 0.0, 0.0), "teacher", &colour).unwrap();
        assert_eq!(cnn.input_shape(), &[3, 32, 32]);
        let explicit = model_spec(&config("3x32x32-c4k3-p2-10", 0.0, 0.0), "teacher", &colour);
        assert_eq!(explicit.unwrap().input_shape(), &[3, 32, 32]);
        assert_eq!(
            model_spec(&config("3072-16-10", 0.0, 0.0), "student", &colour)
                .unwrap()
                .input_len(),
            3072
        );
        let text = model_spec(&config("784-16-10", 0.0, 0.0), "student", &colour)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("start the spec with 3072 or 3x32x32"),
            "{text}"
        );

        let names = (0..3).map(|c| c.to_string()).collect();
        let table = Dataset::from_features(Vec::new(), Vec::new(), 13, names);
        let mlp = model_spec(&config("13-64-3", 0.0, 0.0), "student", &table).unwrap();
        assert_eq!(mlp.input_len(), 13);
        let text = model_spec(&config("784-64-3", 0.0, 0.0), "student", &table)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("but the data has 13 features: start the spec with 13"),
            "{text}"
        );
    }

    #[test]
    fn preset_specs_fit_other_data() {
        let table = Dataset::from_features(
            vec![0.0; 64 * 3],
            vec![0, 1, 2],
            64,
            vec!["a".into(), "b".into(), "c".into()],
        );
        let mut config = RunConfig::preset(Preset::Quick);
        let preset_teacher = config.teacher.spec.clone();
        config.student.spec = "64-8-3".into();
        let notes = fit_preset_specs(&mut config, &table, false);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains(&preset_teacher), "{notes:?}");
        let tokens: Vec<&str> = config.teacher.spec.split('-').collect();
        assert_eq!((tokens[0], *tokens.last().unwrap()), ("64", "3"));
        assert_eq!(config.student.spec, "64-8-3", "the user's spec stays");
        assert_eq!(config.student.steps, Some(13_500), "so do its steps");
        assert_eq!(
            config.teacher.steps,
            Some(1_500),
            "teachers keep the preset's steps"
        );
        let mut fitted = RunConfig::preset(Preset::Quick);
        let notes = fit_preset_specs(&mut fitted, &table, false);
        // Five times, but no more than 20,000 steps.
        assert_eq!(fitted.student.steps, Some(20_000), "{notes:?}");
        let mut given = RunConfig::preset(Preset::Quick);
        fit_preset_specs(&mut given, &table, true);
        assert_eq!(
            given.student.steps,
            Some(13_500),
            "the user's 13,500 steps stay"
        );
        assert!(
            notes[2].starts_with("student.steps: the preset's 13500 steps times 5")
                && notes[2].ends_with("(at most 5x and 20000 steps): 20000"),
            "{notes:?}"
        );
        assert_eq!(
            fitted_spec("c16k3-p2-256-10", &table).unwrap(),
            "64-256-256-3",
            "an MLP stands in for a CNN on a table"
        );
        assert_eq!(
            fitted_spec("784-d0.2-100-10", &table).unwrap(),
            "64-d0.2-100-3"
        );
    }

    #[test]
    fn cheaper_students_and_smaller_data_get_more_steps_up_to_the_cap() {
        // A preset student of 1,500 steps on 55,000 28x28 images.
        let quick = ModelConfig {
            spec: "784-64-10".into(),
            steps: Some(1_500),
            ..ModelConfig::default()
        };
        let full = PRESET_TRAIN_EXAMPLES;
        let cases = [
            // (fitted spec, training examples, steps set, steps after): 784-64-10 costs
            // 101,632 FLOPs.
            ("64-64-3", full, Some(1_500), Some(5 * 1_500)), // 11.9x cheaper: the cap
            ("196-64-10", full, Some(1_500), Some(3 * 1_500)), // 3.9x: whole times
            ("3072-64-10", full, Some(1_500), Some(1_500)),  // dearer: never fewer
            ("3072-64-10", 2_000, Some(1_500), Some(5 * 1_500)), // dearer, 27.5x fewer examples
            ("784-64-10", 60_000, Some(1_500), Some(1_500)), // more data: never fewer
            ("784-64-10", 27_500, Some(1_500), Some(2 * 1_500)), // half the examples
            ("784-64-10", 6_000, Some(1_500), Some(5 * 1_500)), // 9.2x fewer: the cap
            ("196-64-10", 20_000, Some(1_500), Some(5 * 1_500)), // 3.9 x 2.75: the cap
            ("392-64-10", 27_500, Some(1_500), Some(3 * 1_500)), // 1.98 x 2: the product's floor
            ("64-64-3", 100, Some(999), Some(999)),          // the user's budget
            ("64-64-3", 100, None, None),                    // epochs, not steps
        ];
        // 5 x 6,000 steps passes the 20,000 ceiling; a budget past it stays.
        for (steps, after) in [(6_000, 20_000), (25_000, 25_000)] {
            let mut model = ModelConfig {
                steps: Some(steps),
                ..quick.clone()
            };
            StepScale::of(&quick.spec, "64-64-3", (100, full)).apply(&mut model, Some(steps));
            assert_eq!(model.steps, Some(after), "{steps}");
        }
        for (fitted, examples, set, expected) in cases {
            let mut model = ModelConfig {
                steps: set,
                ..quick.clone()
            };
            let scale = StepScale::of(&quick.spec, fitted, (examples, full));
            let note = scale.apply(&mut model, quick.steps);
            assert_eq!(model.steps, expected, "{fitted} {examples} {set:?}");
            assert_eq!(
                note.is_some(),
                set != expected,
                "{fitted} {examples} {set:?}: {note:?}"
            );
        }
        let notes = [
            (
                "784-64-10",
                6_000,
                "times 5 for 6000 training examples, 9.2x fewer than the preset's 55000 (at most 5x and 20000 steps): 7500",
            ),
            (
                "392-64-10",
                27_500,
                "times 3 for 2.0x fewer FLOPs per example than on 28x28 images and 27500 training examples, 2.0x fewer than the preset's 55000 (at most 5x and 20000 steps): 4500",
            ),
        ];
        for (fitted, examples, said) in notes {
            let mut model = quick.clone();
            let note = StepScale::of(&quick.spec, fitted, (examples, PRESET_TRAIN_EXAMPLES))
                .apply(&mut model, quick.steps);
            assert_eq!(
                note.unwrap(),
                format!("student.steps: the preset's 1500 steps {said}")
            );
        }
    }

    #[test]
    fn a_students_budget_follows_the_training_split_only_for_the_presets_student() {
        let images = crate::testutil::blank_images;
        // The default preset's budget was sized on 55,000 images: 4x on 12,000.
        let mut default = RunConfig::preset(Preset::Default);
        fit_preset_specs(&mut default, &images(12_000), false);
        assert_eq!(
            default.student.steps,
            Some(20_000),
            "4 x 8,000, at most 20,000"
        );
        // The quick preset's on its 15,000 labeled images: 2x on 6,000, at most 20,000.
        let mut small = RunConfig::preset(Preset::Quick);
        fit_preset_specs(&mut small, &images(6_000), false);
        assert_eq!(small.student.steps, Some(20_000));
        assert_eq!(small.teacher.steps, Some(1_500), "teachers keep theirs");
        let mut own_size = RunConfig::preset(Preset::Quick);
        assert!(fit_preset_specs(&mut own_size, &images(15_000), false).is_empty());
        assert_eq!(own_size.student.steps, Some(13_500), "its own data: as set");
        let mut given = RunConfig::preset(Preset::Quick);
        fit_preset_specs(&mut given, &images(6_000), true);
        assert_eq!(given.student.steps, Some(13_500), "steps given stay");
        let mut own = RunConfig::preset(Preset::Quick);
        own.student.spec = "784-32-10".into();
        fit_preset_specs(&mut own, &images(6_000), false);
        assert_eq!(own.student.steps, Some(13_500), "so do a spec's given");
        // Experiments take experiments.student_steps, unless a length is given.
        let mut experiment = RunConfig::preset(Preset::Quick);
        experiment.experiment = Some(crate::config::Experiment::Munge);
        let notes = fit_preset_specs(&mut experiment, &images(6_000), false);
        assert_eq!(
            notes,
            ["student.steps: 1500 for the experiment (experiments.student_steps)"]
        );
        assert_eq!(experiment.student.steps, Some(1_500));
        let mut given = RunConfig::preset(Preset::Quick);
        given.experiment = Some(crate::config::Experiment::Munge);
        fit_preset_specs(&mut given, &images(6_000), true);
        assert_eq!(given.student.steps, Some(13_500), "a length given stays");
        let mut default = RunConfig::preset(Preset::Default);
        default.experiment = Some(crate::config::Experiment::Munge);
        assert!(fit_preset_specs(&mut default, &images(6_000), false).is_empty());
        assert_eq!(
            default.student.steps,
            Some(8_000),
            "without the setting, experiments keep the preset's steps"
        );
        let reference = preset_train_examples(&small);
        let full = StepScale::of(
            &small.student.spec,
            &small.student.spec,
            (reference, reference),
        );
        assert_eq!(full.times(), 1);
    }
}
