//! Model specs: one short string that a command line can carry describes an MLP or a CNN.
//!
//! # Grammar
//!
//! A spec is a list of tokens joined by `-`. The first token is the shape of one input
//! example, the last token is the number of classes, and the tokens between are layers:
//!
//! | token | meaning | nn.Sequential entries |
//! |---|---|---|
//! | `N` (first) | input of N features (flat) | — |
//! | `CxHxW` (first) | input image of C channels, H rows, W columns | — |
//! | `cNkM` | convolution, N output channels, M x M kernel (M odd), stride 1, 'same' padding M/2, then ReLU | `Conv2d`, `ReLU` |
//! | `pN` | max pooling, N x N window, stride N | `MaxPool2d` |
//! | `fN` or `N` (not last) | fully connected layer of N units, then ReLU | `Linear`, `ReLU` |
//! | `dP` | dropout with drop probability P in [0, 1) | `Dropout` |
//! | `N` (last) | fully connected output layer of N classes, no activation (logits) | `Linear` |
//!
//! A `Flatten` is inserted automatically before the first fully connected layer that follows
//! an image-shaped activation. Examples:
//!
//! - `784-1200-1200-10`: MLP, 784 inputs, two hidden layers of 1200 units, 10 classes.
//! - `784-d0.2-1200-d0.5-1200-d0.5-10`: the same with dropout on the input and hidden layers.
//! - `1x28x28-c32k5-p2-c64k5-p2-f512-10`: a CNN on 28x28 grey images.
//!
//! When the input shape is known from elsewhere (the data set), [`ModelSpec::parse_with_input`]
//! takes the spec without its first token, e.g. `c16k5-p2-c32k5-p2-10` with input `[1, 28, 28]`.
//!
//! Layers are numbered as PyTorch's `nn.Sequential` numbers them: every entry of the table's
//! last column takes one index, and parameters are named `<index>.weight` / `<index>.bias`.
//! `1x28x28-c8k3-p2-10` is `0 Conv2d, 1 ReLU, 2 MaxPool2d, 3 Flatten, 4 Linear`, with
//! tensors `0.weight [8, 1, 3, 3]`, `0.bias [8]`, `4.weight [10, 1568]`, `4.bias [10]`.

use std::fmt;

use crate::error::{NnError, Result};

/// One entry of the expanded model, in `nn.Sequential` order.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    /// y = x W^T + b with W `[out_features, in_features]`.
    Linear {
        in_features: usize,
        out_features: usize,
    },
    /// 2-D convolution with square kernel, weight `[out, in, kernel, kernel]`.
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    },
    Relu,
    /// Inverted dropout: kept values are scaled by 1 / (1 - rate) during training.
    Dropout {
        rate: f32,
    },
    /// Max pooling with a square window.
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    /// `[C, H, W]` to `[C * H * W]` per example; a view, no copy.
    Flatten,
}

impl LayerSpec {
    /// The PyTorch class this entry corresponds to.
    pub fn torch_name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "Linear",
            LayerSpec::Conv2d { .. } => "Conv2d",
            LayerSpec::Relu => "ReLU",
            LayerSpec::Dropout { .. } => "Dropout",
            LayerSpec::MaxPool2d { .. } => "MaxPool2d",
            LayerSpec::Flatten => "Flatten",
        }
    }

    /// Shape of one example after this layer, given the shape before it.
    pub fn output_shape(&self, input: &[usize]) -> Vec<usize> {
        match *self {
            LayerSpec::Linear { out_features, .. } => vec![out_features],
            LayerSpec::Conv2d {
                out_channels,
                kernel,
                stride,
                padding,
                ..
            } => {
                let out = |n: usize| (n + 2 * padding - kernel) / stride + 1;
                vec![out_channels, out(input[1]), out(input[2])]
            }
            LayerSpec::MaxPool2d { kernel, stride } => {
                let out = |n: usize| (n - kernel) / stride + 1;
                vec![input[0], out(input[1]), out(input[2])]
            }
            LayerSpec::Flatten => vec![input.iter().product()],
            LayerSpec::Relu | LayerSpec::Dropout { .. } => input.to_vec(),
        }
    }
}

/// Whether a parameter tensor is a weight or a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Bias,
}

/// One parameter tensor of a model: its checkpoint name and PyTorch shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// `<sequential index>.weight` or `<sequential index>.bias`.
    pub name: String,
    pub shape: Vec<usize>,
    /// Index of the owning layer in [`ModelSpec::layers`].
    pub layer: usize,
    pub kind: ParamKind,
    /// Inputs feeding one output unit (in_features, or in_channels * kernel^2).
    pub fan_in: usize,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A parsed model: input shape, layers in `nn.Sequential` order, number of classes.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    text: String,
    input_shape: Vec<usize>,
    layers: Vec<LayerSpec>,
}

const EXPECTED_LAYER: &str = "expected cNkM, pN, fN, dP or a number";

/// The most elements one parameter tensor, or one example's activation after any layer, may
/// have: 2^28 (1 GiB of f32). Far beyond any model this project trains, far below what
/// overflows an index; specs past it are refused while parsing, before anything is
/// allocated. What an adapter can bind is checked later against its own limits.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 28;

/// The most trainable scalars a whole model may have (4 GiB of f32).
pub const MAX_PARAMETERS: usize = 1 << 30;

/// `dims` multiplied, or `None` past [`MAX_TENSOR_ELEMENTS`] (never overflows).
fn bounded_product(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
}

impl ModelSpec {
    /// Parse a full spec whose first token is the input shape (`784-...` or `1x28x28-...`).
    pub fn parse(text: &str) -> Result<Self> {
        let tokens: Vec<&str> = text.trim().split('-').collect();
        let err = |message: String| NnError::Spec {
            spec: text.to_string(),
            message,
        };
        if tokens.len() < 2 {
            return Err(err(
                "needs at least an input token and a class count, e.g. `784-10` or `1x28x28-c8k3-10`"
                    .into(),
            ));
        }
        let input = parse_input(tokens[0]).ok_or_else(|| {
            err(format!(
                "token 1 `{}` is not an input shape (expected N features or CxHxW, e.g. 784 or 1x28x28)",
                tokens[0]
            ))
        })?;
        if bounded_product(&input).is_none() {
            return Err(err(format!(
                "token 1 `{}` is an input of more than {MAX_TENSOR_ELEMENTS} values per example",
                tokens[0]
            )));
        }
        build(text, input, &tokens[1..], 1)
    }

    /// Parse a spec without its input token; the input shape per example comes from `input`
    /// (`[features]` or `[channels, height, width]`).
    pub fn parse_with_input(text: &str, input: &[usize]) -> Result<Self> {
        let tokens: Vec<&str> = text.trim().split('-').collect();
        if !(input.len() == 1 || input.len() == 3) || input.contains(&0) {
            return Err(NnError::Spec {
                spec: text.to_string(),
                message: format!(
                    "input shape {input:?} is neither [features] nor [channels, height, width]"
                ),
            });
        }
        if bounded_product(input).is_none() {
            return Err(NnError::Spec {
                spec: text.to_string(),
                message: format!(
                    "input shape {input:?} has more than {MAX_TENSOR_ELEMENTS} values per example"
                ),
            });
        }
        build(text, input.to_vec(), &tokens, 0)
    }

    /// Canonical text, input token first; [`ModelSpec::parse`] of it gives the same spec.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Shape of one input example: `[features]` or `[channels, height, width]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Input shape written as in the spec: `784` or `1x28x28`.
    pub fn input_shape_text(&self) -> String {
        shape_text(&self.input_shape)
    }

    /// Elements of one input example.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Layers in `nn.Sequential` order; the position is the PyTorch index.
    pub fn layers(&self) -> &[LayerSpec] {
        &self.layers
    }

    /// Number of output classes (width of the logits).
    pub fn classes(&self) -> usize {
        match self.layers.last() {
            Some(LayerSpec::Linear { out_features, .. }) => *out_features,
            _ => unreachable!("a parsed spec always ends in a Linear layer"),
        }
    }

    /// Shape of one example after each layer (`shapes[i]` is the output of layer i).
    pub fn activation_shapes(&self) -> Vec<Vec<usize>> {
        let mut shape = self.input_shape.clone();
        self.layers
            .iter()
            .map(|layer| {
                shape = layer.output_shape(&shape);
                shape.clone()
            })
            .collect()
    }

    /// Error unless `values` holds one vector per entry of [`ModelSpec::parameters`], each
    /// of its tensor's length.
    pub fn check_parameter_values(&self, values: &[Vec<f32>]) -> Result<()> {
        let params = self.parameters();
        if values.len() != params.len() {
            return Err(crate::error::config_error(format!(
                "model `{self}` has {} parameter tensors but {} were given",
                params.len(),
                values.len()
            )));
        }
        for (p, v) in params.iter().zip(values) {
            if v.len() != p.len() {
                return Err(crate::error::config_error(format!(
                    "{} of model `{self}` has shape {:?} ({} values) but {} were given",
                    p.name,
                    p.shape,
                    p.len(),
                    v.len()
                )));
            }
        }
        Ok(())
    }

    /// Every parameter tensor in checkpoint order (by layer index, weight before bias).
    pub fn parameters(&self) -> Vec<ParamSpec> {
        let mut out = Vec::new();
        for (index, layer) in self.layers.iter().enumerate() {
            let (weight, bias, fan_in) = match *layer {
                LayerSpec::Linear {
                    in_features,
                    out_features,
                } => (vec![out_features, in_features], out_features, in_features),
                LayerSpec::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    ..
                } => (
                    vec![out_channels, in_channels, kernel, kernel],
                    out_channels,
                    in_channels * kernel * kernel,
                ),
                _ => continue,
            };
            out.push(ParamSpec {
                name: format!("{index}.weight"),
                shape: weight,
                layer: index,
                kind: ParamKind::Weight,
                fan_in,
            });
            out.push(ParamSpec {
                name: format!("{index}.bias"),
                shape: vec![bias],
                layer: index,
                kind: ParamKind::Bias,
                fan_in,
            });
        }
        out
    }

    /// Total number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(ParamSpec::len).sum()
    }

    /// Forward FLOPs per example: each multiply-add of a Linear or Conv2d layer counts 2;
    /// biases, activations, pooling and dropout are not counted.
    pub fn flops_per_example(&self) -> u64 {
        let mut shape = self.input_shape.clone();
        let mut flops = 0u64;
        for layer in &self.layers {
            let out = layer.output_shape(&shape);
            flops += match *layer {
                LayerSpec::Linear {
                    in_features,
                    out_features,
                } => 2 * (in_features * out_features) as u64,
                LayerSpec::Conv2d {
                    in_channels,
                    kernel,
                    ..
                } => 2 * (out.iter().product::<usize>() * in_channels * kernel * kernel) as u64,
                _ => 0,
            };
            shape = out;
        }
        flops
    }

    /// True when layer `index` is a MaxPool2d directly after a ReLU, so the pooling's backward
    /// can apply the ReLU's mask and the ReLU needs no backward pass of its own.
    pub fn pool_follows_relu(&self, index: usize) -> bool {
        index > 0
            && matches!(self.layers.get(index), Some(LayerSpec::MaxPool2d { .. }))
            && matches!(self.layers.get(index - 1), Some(LayerSpec::Relu))
    }

    /// True when layer `index` is a Linear or Conv2d directly followed by a ReLU, so the
    /// ReLU can run in the matmul/convolution epilogue.
    pub fn relu_follows(&self, index: usize) -> bool {
        matches!(
            self.layers.get(index),
            Some(LayerSpec::Linear { .. } | LayerSpec::Conv2d { .. })
        ) && matches!(self.layers.get(index + 1), Some(LayerSpec::Relu))
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

fn parse_input(token: &str) -> Option<Vec<usize>> {
    let dims: Vec<usize> = token
        .split('x')
        .map(|d| d.parse().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()?;
    (dims.len() == 1 || dims.len() == 3).then_some(dims)
}

fn positive(digits: &str) -> Option<usize> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n > 0)
}

/// What one layer token asks for, before shapes are known.
enum Token {
    Conv { channels: usize, kernel: usize },
    Pool(usize),
    Dense(usize),
    Dropout(f32),
}

fn parse_token(token: &str) -> Option<Token> {
    if let Some(rest) = token.strip_prefix('c') {
        let (channels, kernel) = rest.split_once('k')?;
        return Some(Token::Conv {
            channels: positive(channels)?,
            kernel: positive(kernel)?,
        });
    }
    if let Some(rest) = token.strip_prefix('p') {
        return positive(rest).map(Token::Pool);
    }
    if let Some(rest) = token.strip_prefix('f') {
        return positive(rest).map(Token::Dense);
    }
    if let Some(rest) = token.strip_prefix('d') {
        return rest.parse::<f32>().ok().map(Token::Dropout);
    }
    positive(token).map(Token::Dense)
}

/// Checks the weights of `new` (the entries of one token, fed `shape`) and every activation
/// they produce against [`MAX_TENSOR_ELEMENTS`], without overflowing; the message says
/// which size is too large.
fn check_sizes(new: &[LayerSpec], shape: &[usize]) -> std::result::Result<(), String> {
    let mut shape = shape.to_vec();
    for layer in new {
        let weight = match *layer {
            LayerSpec::Linear {
                in_features,
                out_features,
            } => Some(vec![out_features, in_features]),
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => Some(vec![out_channels, in_channels, kernel, kernel]),
            _ => None,
        };
        if let Some(weight) = weight
            && bounded_product(&weight).is_none()
        {
            return Err(format!(
                "needs a {} weight of shape {weight:?}, more than {MAX_TENSOR_ELEMENTS} values",
                layer.torch_name()
            ));
        }
        shape = layer.output_shape(&shape);
        if bounded_product(&shape).is_none() {
            return Err(format!(
                "gives activations of shape {shape:?} per example, more than {MAX_TENSOR_ELEMENTS} values"
            ));
        }
    }
    Ok(())
}

/// `total` plus the parameters of `new`, or `None` past [`MAX_PARAMETERS`]. Only called
/// after [`check_sizes`], so every tensor's own size is known to be small.
fn add_parameters(total: usize, new: &[LayerSpec]) -> Option<usize> {
    new.iter()
        .map(|layer| match *layer {
            LayerSpec::Linear {
                in_features,
                out_features,
            } => out_features * in_features + out_features,
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                ..
            } => out_channels * in_channels * kernel * kernel + out_channels,
            _ => 0,
        })
        .try_fold(total, usize::checked_add)
        .filter(|&n| n <= MAX_PARAMETERS)
}

/// Expand layer tokens into `nn.Sequential` entries. `offset` is how many tokens of the
/// user's text came before `tokens`, so errors number tokens as the user sees them.
fn build(text: &str, input: Vec<usize>, tokens: &[&str], offset: usize) -> Result<ModelSpec> {
    let err = |position: usize, message: String| NnError::Spec {
        spec: text.to_string(),
        message: format!(
            "token {} `{}` {message}",
            position + offset + 1,
            tokens[position]
        ),
    };
    if tokens.is_empty() || tokens == [""] {
        return Err(NnError::Spec {
            spec: text.to_string(),
            message: "has no layers; it must end with the number of classes".into(),
        });
    }
    let mut layers = Vec::new();
    let mut shape = input.clone();
    let mut parameters = 0usize;
    for (position, token) in tokens.iter().enumerate() {
        let last = position + 1 == tokens.len();
        let first_new = layers.len();
        layers.extend(token_layers(token, &shape, last).map_err(|m| err(position, m))?);
        check_sizes(&layers[first_new..], &shape).map_err(|m| err(position, m))?;
        parameters = add_parameters(parameters, &layers[first_new..]).ok_or_else(|| {
            err(
                position,
                format!("takes the model past {MAX_PARAMETERS} parameters"),
            )
        })?;
        shape = layers[first_new..]
            .iter()
            .fold(shape, |s, layer| layer.output_shape(&s));
    }
    let mut canonical = vec![shape_text(&input)];
    canonical.extend(tokens.iter().map(|t| t.to_string()));
    Ok(ModelSpec {
        text: canonical.join("-"),
        input_shape: input,
        layers,
    })
}

/// The `nn.Sequential` entries that `token` adds where the input per example is `shape`;
/// the `last` token must be the number of classes. An error is the end of a sentence that
/// starts by naming the token.
fn token_layers(
    token: &str,
    shape: &[usize],
    last: bool,
) -> std::result::Result<Vec<LayerSpec>, String> {
    let parsed = parse_token(token).ok_or_else(|| format!("is not a layer ({EXPECTED_LAYER})"))?;
    if last && !matches!(parsed, Token::Dense(_) if positive(token).is_some()) {
        return Err("must be the number of classes (a plain number such as 10)".into());
    }
    Ok(match parsed {
        Token::Conv { channels, kernel } => conv_layers(shape, channels, kernel)?,
        Token::Pool(size) => {
            if shape.len() != 3 || shape[1] < size || shape[2] < size {
                return Err(format!(
                    "pools {size}x{size} but its input per example is {shape:?}; pooling needs CxHxW of at least that size"
                ));
            }
            vec![LayerSpec::MaxPool2d {
                kernel: size,
                stride: size,
            }]
        }
        Token::Dropout(rate) => {
            if !(0.0..1.0).contains(&rate) {
                return Err(format!("has drop probability {rate}; it must be in [0, 1)"));
            }
            vec![LayerSpec::Dropout { rate }]
        }
        Token::Dense(units) => dense_layers(shape, units, last),
    })
}

/// A 'same'-padded convolution and its ReLU.
fn conv_layers(
    shape: &[usize],
    channels: usize,
    kernel: usize,
) -> std::result::Result<Vec<LayerSpec>, String> {
    if shape.len() != 3 {
        return Err(format!(
            "is a convolution but its input is flat ({shape:?}); convolutions need CxHxW"
        ));
    }
    if kernel.is_multiple_of(2) {
        return Err(format!(
            "has an even kernel {kernel}; 'same' padding needs an odd kernel"
        ));
    }
    // Taps beyond the plane would only ever read padding.
    if kernel > shape[1] || kernel > shape[2] {
        return Err(format!(
            "has a {kernel}x{kernel} kernel, larger than its {}x{} input planes",
            shape[1], shape[2]
        ));
    }
    Ok(vec![
        LayerSpec::Conv2d {
            in_channels: shape[0],
            out_channels: channels,
            kernel,
            stride: 1,
            padding: kernel / 2,
        },
        LayerSpec::Relu,
    ])
}

/// A Linear layer, flattening image input first; every one but the output layer is
/// followed by a ReLU.
fn dense_layers(shape: &[usize], units: usize, last: bool) -> Vec<LayerSpec> {
    let mut layers = Vec::new();
    if shape.len() != 1 {
        layers.push(LayerSpec::Flatten);
    }
    layers.push(LayerSpec::Linear {
        in_features: shape.iter().product(),
        out_features: units,
    });
    if !last {
        layers.push(LayerSpec::Relu);
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_with_dropout_numbers_layers_like_pytorch() {
        let spec = ModelSpec::parse("784-d0.2-1200-d0.5-1200-d0.5-10").unwrap();
        let names: Vec<_> = spec.layers().iter().map(LayerSpec::torch_name).collect();
        assert_eq!(
            names,
            [
                "Dropout", "Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"
            ]
        );
        let params: Vec<_> = spec
            .parameters()
            .into_iter()
            .map(|p| (p.name, p.shape))
            .collect();
        assert_eq!(
            params,
            [
                ("1.weight".to_string(), vec![1200, 784]),
                ("1.bias".to_string(), vec![1200]),
                ("4.weight".to_string(), vec![1200, 1200]),
                ("4.bias".to_string(), vec![1200]),
                ("7.weight".to_string(), vec![10, 1200]),
                ("7.bias".to_string(), vec![10]),
            ]
        );
        assert_eq!(spec.classes(), 10);
        // 784*1200 + 1200 + 1200*1200 + 1200 + 1200*10 + 10, counted by hand from the shapes.
        let by_shapes: usize = spec.parameters().iter().map(|p| p.len()).sum();
        assert_eq!(spec.parameter_count(), by_shapes);
        assert_eq!(
            spec.flops_per_example(),
            2 * (784 * 1200 + 1200 * 1200 + 1200 * 10)
        );
    }

    #[test]
    fn cnn_inserts_flatten_and_tracks_shapes() {
        let spec = ModelSpec::parse("1x28x28-c32k5-p2-c64k5-p2-f512-10").unwrap();
        let names: Vec<_> = spec.layers().iter().map(LayerSpec::torch_name).collect();
        assert_eq!(
            names,
            [
                "Conv2d",
                "ReLU",
                "MaxPool2d",
                "Conv2d",
                "ReLU",
                "MaxPool2d",
                "Flatten",
                "Linear",
                "ReLU",
                "Linear"
            ]
        );
        let shapes = spec.activation_shapes();
        assert_eq!(shapes[0], [32, 28, 28]);
        assert_eq!(shapes[2], [32, 14, 14]);
        assert_eq!(shapes[5], [64, 7, 7]);
        assert_eq!(shapes[6], [64 * 7 * 7]);
        let params = spec.parameters();
        assert_eq!(params[0].name, "0.weight");
        assert_eq!(params[0].shape, [32, 1, 5, 5]);
        assert_eq!(params[2].shape, [64, 32, 5, 5]);
        assert_eq!(params[4].name, "7.weight");
        assert_eq!(params[4].shape, [512, 3136]);
        assert!(spec.relu_follows(0) && spec.relu_follows(7) && !spec.relu_follows(9));
    }

    #[test]
    fn parse_with_input_matches_full_spec_and_round_trips() {
        let a = ModelSpec::parse_with_input("c16k5-p2-c32k5-p2-10", &[1, 28, 28]).unwrap();
        let b = ModelSpec::parse("1x28x28-c16k5-p2-c32k5-p2-10").unwrap();
        assert_eq!(a, b);
        assert_eq!(ModelSpec::parse(a.text()).unwrap(), a);
    }

    #[test]
    fn absurd_sizes_are_refused_naming_the_token_without_overflow() {
        let cases = [
            (
                "4294967296x4294967296x4294967296-10",
                "token 1 `4294967296x4294967296x4294967296` is an input of more than 268435456 values",
            ),
            (
                "784-99999999999999999-10",
                "token 2 `99999999999999999` needs a Linear weight of shape [99999999999999999, 784]",
            ),
            (
                "784-99999999999-10",
                "token 2 `99999999999` needs a Linear weight of shape [99999999999, 784]",
            ),
            (
                "1x28x28-c99999999999k3-10",
                "token 2 `c99999999999k3` needs a Conv2d weight",
            ),
            (
                "1x28x28-c4k99999999999-10",
                "token 2 `c4k99999999999` has a 99999999999x99999999999 kernel, larger than",
            ),
            (
                "1x16384x16384-c16k1-10",
                "token 2 `c16k1` gives activations of shape [16, 16384, 16384]",
            ),
            (
                "16384-16384-16384-16384-16384-10",
                "token 5 `16384` takes the model past 1073741824 parameters",
            ),
        ];
        for (text, expected) in cases {
            let message = ModelSpec::parse(text).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "spec {text}: got `{message}`, expected it to contain `{expected}`"
            );
            assert!(!message.contains('\n'), "{message}");
        }
        let message = ModelSpec::parse_with_input("10", &[1 << 20, 1 << 20, 1])
            .unwrap_err()
            .to_string();
        assert!(message.contains("more than 268435456 values"), "{message}");
        // The largest accepted sizes still parse.
        let spec = ModelSpec::parse("16384-16384-10").unwrap();
        assert_eq!(
            spec.parameter_count(),
            16384 * 16384 + 16384 + 16384 * 10 + 10
        );
    }

    #[test]
    fn errors_point_at_the_bad_token() {
        let cases = [
            (
                "1x28x28-c32k5-p2-x9",
                "spec `1x28x28-c32k5-p2-x9`: token 4 `x9` is not a layer (expected cNkM, pN, fN, dP or a number)",
            ),
            (
                "784-1200-d0.5",
                "token 3 `d0.5` must be the number of classes",
            ),
            ("784-d1.5-10", "token 2 `d1.5` has drop probability 1.5"),
            (
                "784-c8k3-10",
                "token 2 `c8k3` is a convolution but its input is flat",
            ),
            ("1x4x4-p8-10", "token 2 `p8` pools 8x8"),
            ("1x8x8-c8k4-10", "token 2 `c8k4` has an even kernel"),
            (
                "1x28x28-c8k99-10",
                "token 2 `c8k99` has a 99x99 kernel, larger than its 28x28 input planes",
            ),
            (
                "1x28x28-c8k5-p2-p2-c8k9-10",
                "token 5 `c8k9` has a 9x9 kernel, larger than its 7x7 input planes",
            ),
            ("28x28-10", "token 1 `28x28` is not an input shape"),
            ("784--10", "token 2 `` is not a layer"),
        ];
        for (text, expected) in cases {
            let message = ModelSpec::parse(text).unwrap_err().to_string();
            assert!(
                message.contains(expected),
                "spec {text}: got `{message}`, expected it to contain `{expected}`"
            );
        }
        let message = ModelSpec::parse_with_input("c32k5-p2-x9", &[1, 28, 28])
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "spec `c32k5-p2-x9`: token 3 `x9` is not a layer (expected cNkM, pN, fN, dP or a number)"
        );
    }
}
