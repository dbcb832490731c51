//! From the configuration's architecture strings to the model specs that are trained.

use anyhow::{Result, bail};
use dk_nn::ModelSpec;

use crate::config::ModelConfig;

/// The spec of `role` (`"teacher"` or `"student"`) for images of `height` x `width`, with the
/// configured dropout inserted: after the input (`dropout_input`) and after every hidden
/// fully connected layer (`dropout_hidden`).
///
/// A spec may omit its input token (`c16k3-p2-256-10`): the input is then one grey channel of
/// the image size. A spec whose input does not match the images is an error naming both.
pub fn model_spec(
    config: &ModelConfig,
    role: &str,
    height: usize,
    width: usize,
) -> Result<ModelSpec> {
    let text = config.spec.trim();
    let first = text.split('-').next().unwrap_or("");
    let has_input_token =
        !first.is_empty() && first.chars().all(|c| c.is_ascii_digit() || c == 'x');
    let parsed = if has_input_token {
        ModelSpec::parse(text)
    } else {
        ModelSpec::parse_with_input(text, &[1, height, width])
    }
    .map_err(|err| anyhow::anyhow!("{role}.spec: {err}"))?;
    let pixels = height * width;
    if parsed.input_len() != pixels {
        bail!(
            "{role}.spec `{text}` takes inputs of {} values ({}), but the images are {height}x{width} = {pixels} pixels: start the spec with {pixels} or 1x{height}x{width}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(spec: &str, dropout_input: f32, dropout_hidden: f32) -> ModelConfig {
        ModelConfig {
            spec: spec.into(),
            dropout_input,
            dropout_hidden,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn dropout_goes_after_input_and_hidden_dense_layers() {
        let spec = model_spec(&config("784-100-50-10", 0.2, 0.5), "teacher", 28, 28).unwrap();
        assert_eq!(spec.text(), "784-d0.2-100-d0.5-50-d0.5-10");
        let plain = model_spec(&config("784-100-10", 0.0, 0.0), "student", 28, 28).unwrap();
        assert_eq!(plain.text(), "784-100-10");
    }

    #[test]
    fn input_token_may_be_omitted_and_must_fit_the_images() {
        let spec = model_spec(&config("c4k3-p2-10", 0.0, 0.0), "teacher", 28, 28).unwrap();
        assert_eq!(spec.input_shape(), &[1, 28, 28]);
        let err = model_spec(&config("100-10", 0.0, 0.0), "student", 28, 28).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("student.spec `100-10`") && text.contains("28x28 = 784"),
            "{text}"
        );
        let err = model_spec(&config("784-zz-10", 0.0, 0.0), "student", 28, 28).unwrap_err();
        assert!(err.to_string().starts_with("student.spec"), "{err}");
    }
}
