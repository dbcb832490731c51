//! Plain CPU reference of whole-model forward and backward passes, in f64.
//!
//! Straight loops with no tiling, written to be obviously right rather than fast. The tests
//! hold the GPU layers to it and it to finite differences. Parameters are ordered and
//! shaped as [`ModelSpec::parameters`] lists them; activations are row-major `[batch, ...]`.

use dk_tensor::ops::loss::{DistillLossParams, cpu};
use dk_tensor::ops::softmax::cpu::argmax_row;

use crate::spec::{LayerSpec, ModelSpec};

/// Which elements dropout keeps: `keep(layer index, element index)` over the layer's
/// whole `[batch, ...]` activation. `None` runs the model in evaluation mode.
pub type KeepMask<'a> = Option<&'a dyn Fn(usize, usize) -> bool>;

/// Everything the backward pass needs from a forward pass.
#[derive(Clone, Debug)]
pub struct Trace {
    /// `values[0]` is the input, `values[i + 1]` the output of layer i; the last is the logits.
    pub values: Vec<Vec<f64>>,
    /// For each MaxPool2d layer, the flat input index each output came from.
    pool_sources: Vec<Vec<usize>>,
}

impl Trace {
    pub fn logits(&self) -> &[f64] {
        self.values.last().expect("trace of a model with layers")
    }
}

/// Forward pass of `batch` examples stacked in `input`.
pub fn forward(
    spec: &ModelSpec,
    params: &[Vec<f64>],
    input: &[f64],
    batch: usize,
    keep: KeepMask<'_>,
) -> Trace {
    assert_eq!(
        input.len(),
        batch * spec.input_len(),
        "reference input size"
    );
    let shapes = layer_shapes(spec);
    let mut values = vec![input.to_vec()];
    let mut pool_sources = Vec::new();
    let mut next_param = 0;
    for (index, layer) in spec.layers().iter().enumerate() {
        let x = values.last().unwrap();
        let (shape, out_shape) = (&shapes[index], &shapes[index + 1]);
        let y = match *layer {
            LayerSpec::Linear { .. } => {
                let (w, b) = (&params[next_param], &params[next_param + 1]);
                next_param += 2;
                LinearShape::new(layer, batch).forward(x, w, b)
            }
            LayerSpec::Conv2d { .. } => {
                let (w, b) = (&params[next_param], &params[next_param + 1]);
                next_param += 2;
                ConvShape::new(layer, batch, shape, out_shape).forward(x, w, b)
            }
            LayerSpec::Relu => x.iter().map(|v| v.max(0.0)).collect(),
            LayerSpec::Dropout { rate } => dropout(x, rate, keep, index),
            LayerSpec::MaxPool2d { kernel, stride } => {
                let (y, sources) = max_pool(x, batch, shape, out_shape, kernel, stride);
                pool_sources.push(sources);
                y
            }
            LayerSpec::Flatten => x.clone(),
        };
        values.push(y);
    }
    Trace {
        values,
        pool_sources,
    }
}

/// Backward pass: gradients of every parameter (in [`ModelSpec::parameters`] order) given
/// the gradient of the loss with respect to the logits.
pub fn backward(
    spec: &ModelSpec,
    params: &[Vec<f64>],
    trace: &Trace,
    grad_logits: &[f64],
    batch: usize,
    keep: KeepMask<'_>,
) -> Vec<Vec<f64>> {
    let mut grads: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    let shapes = layer_shapes(spec);
    // Layers run last to first, so parameters and pooling records are taken from the end.
    let mut next_param = params.len();
    let mut next_pool = trace.pool_sources.len();
    let mut dy = grad_logits.to_vec();
    for (index, layer) in spec.layers().iter().enumerate().rev() {
        let x = &trace.values[index];
        let (shape, out_shape) = (&shapes[index], &shapes[index + 1]);
        dy = match *layer {
            LayerSpec::Linear { .. } => {
                next_param -= 2;
                let (gw, gb) = weight_and_bias_mut(&mut grads, next_param);
                let linear = LinearShape::new(layer, batch);
                linear.backward(x, &params[next_param], &dy, gw, gb)
            }
            LayerSpec::Conv2d { .. } => {
                next_param -= 2;
                let (gw, gb) = weight_and_bias_mut(&mut grads, next_param);
                let conv = ConvShape::new(layer, batch, shape, out_shape);
                conv.backward(x, &params[next_param], &dy, gw, gb)
            }
            LayerSpec::Relu => relu_backward(&trace.values[index + 1], &dy),
            LayerSpec::Dropout { rate } => dropout(&dy, rate, keep, index),
            LayerSpec::MaxPool2d { .. } => {
                next_pool -= 1;
                max_pool_backward(&trace.pool_sources[next_pool], &dy, x.len())
            }
            LayerSpec::Flatten => dy,
        };
    }
    grads
}

/// Per-example shapes of the input and of each layer's output, in order.
fn layer_shapes(spec: &ModelSpec) -> Vec<Vec<usize>> {
    let mut shapes = vec![spec.input_shape().to_vec()];
    shapes.extend(spec.activation_shapes());
    shapes
}

/// The gradients of a layer's weight and of its bias, which follows it in parameter order.
fn weight_and_bias_mut(grads: &mut [Vec<f64>], weight: usize) -> (&mut [f64], &mut [f64]) {
    let (gw, rest) = grads[weight..].split_at_mut(1);
    (&mut gw[0], &mut rest[0])
}

/// Index arithmetic of one Linear layer, `[batch, in]` input and `[out, in]` weights.
struct LinearShape {
    batch: usize,
    inputs: usize,
    outputs: usize,
}

impl LinearShape {
    /// `layer` must be a Linear layer.
    fn new(layer: &LayerSpec, batch: usize) -> Self {
        let LayerSpec::Linear {
            in_features,
            out_features,
        } = *layer
        else {
            unreachable!("linear layer geometry of {layer:?}")
        };
        Self {
            batch,
            inputs: in_features,
            outputs: out_features,
        }
    }

    fn forward(&self, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let (fi, fo) = (self.inputs, self.outputs);
        let mut y = vec![0.0; self.batch * fo];
        for n in 0..self.batch {
            for o in 0..fo {
                let row = &w[o * fi..(o + 1) * fi];
                let xs = &x[n * fi..(n + 1) * fi];
                y[n * fo + o] = b[o] + row.iter().zip(xs).map(|(a, b)| a * b).sum::<f64>();
            }
        }
        y
    }

    /// Adds this batch's gradients to `gw` and `gb` and returns the input gradient.
    fn backward(
        &self,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
        gw: &mut [f64],
        gb: &mut [f64],
    ) -> Vec<f64> {
        let (fi, fo) = (self.inputs, self.outputs);
        let mut dx = vec![0.0; x.len()];
        for n in 0..self.batch {
            for o in 0..fo {
                let g = dy[n * fo + o];
                gb[o] += g;
                for i in 0..fi {
                    gw[o * fi + i] += g * x[n * fi + i];
                    dx[n * fi + i] += g * w[o * fi + i];
                }
            }
        }
        dx
    }
}

/// Index arithmetic of one convolution, NCHW input and `[out, in, k, k]` weights.
struct ConvShape {
    batch: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    k: usize,
    stride: usize,
    padding: usize,
}

impl ConvShape {
    /// `layer` must be a Conv2d taking `[C, H, W]` examples of shape `input` to `output`.
    fn new(layer: &LayerSpec, batch: usize, input: &[usize], output: &[usize]) -> Self {
        let LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            padding,
        } = *layer
        else {
            unreachable!("convolution geometry of {layer:?}")
        };
        Self {
            batch,
            cin: in_channels,
            cout: out_channels,
            h: input[1],
            w: input[2],
            ho: output[1],
            wo: output[2],
            k: kernel,
            stride,
            padding,
        }
    }

    fn forward(&self, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
        let mut y = vec![0.0; self.batch * self.cout * self.ho * self.wo];
        for n in 0..self.batch {
            for o in 0..self.cout {
                for i in 0..self.ho {
                    for j in 0..self.wo {
                        let mut acc = b[o];
                        self.for_taps(n, o, i, j, |xi, wi| acc += x[xi] * w[wi]);
                        y[self.output_index(n, o, i, j)] = acc;
                    }
                }
            }
        }
        y
    }

    /// Adds this batch's gradients to `gw` and `gb` and returns the input gradient.
    fn backward(
        &self,
        x: &[f64],
        w: &[f64],
        dy: &[f64],
        gw: &mut [f64],
        gb: &mut [f64],
    ) -> Vec<f64> {
        let mut dx = vec![0.0; x.len()];
        for n in 0..self.batch {
            for o in 0..self.cout {
                for i in 0..self.ho {
                    for j in 0..self.wo {
                        let d = dy[self.output_index(n, o, i, j)];
                        gb[o] += d;
                        self.for_taps(n, o, i, j, |xi, wi| {
                            gw[wi] += d * x[xi];
                            dx[xi] += d * w[wi];
                        });
                    }
                }
            }
        }
        dx
    }

    fn output_index(&self, n: usize, o: usize, i: usize, j: usize) -> usize {
        ((n * self.cout + o) * self.ho + i) * self.wo + j
    }

    /// Call `tap(input index, weight index)` for every in-bounds tap of output (n, o, i, j).
    fn for_taps(&self, n: usize, o: usize, i: usize, j: usize, mut tap: impl FnMut(usize, usize)) {
        for c in 0..self.cin {
            for ki in 0..self.k {
                let row = (i * self.stride + ki) as isize - self.padding as isize;
                if row < 0 || row >= self.h as isize {
                    continue;
                }
                for kj in 0..self.k {
                    let col = (j * self.stride + kj) as isize - self.padding as isize;
                    if col < 0 || col >= self.w as isize {
                        continue;
                    }
                    let xi = ((n * self.cin + c) * self.h + row as usize) * self.w + col as usize;
                    let wi = ((o * self.cin + c) * self.k + ki) * self.k + kj;
                    tap(xi, wi);
                }
            }
        }
    }
}

fn relu_backward(y: &[f64], dy: &[f64]) -> Vec<f64> {
    y.iter()
        .zip(dy)
        .map(|(&y, &d)| if y > 0.0 { d } else { 0.0 })
        .collect()
}

/// Dropout of layer `layer`: kept elements scaled by 1 / (1 - rate), the rest zeroed; the
/// identity in evaluation mode. It is elementwise and linear, so the backward pass applies
/// the same function to the output gradient.
fn dropout(values: &[f64], rate: f32, keep: KeepMask<'_>, layer: usize) -> Vec<f64> {
    let Some(keep) = keep else {
        return values.to_vec();
    };
    let scale = 1.0 / (1.0 - f64::from(rate));
    values
        .iter()
        .enumerate()
        .map(|(e, v)| if keep(layer, e) { v * scale } else { 0.0 })
        .collect()
}

/// Max pooling of `[batch, C, H, W]` input to `output` (`[C, Ho, Wo]` per example): the
/// outputs and, for each, the flat input index it came from.
fn max_pool(
    x: &[f64],
    batch: usize,
    input: &[usize],
    output: &[usize],
    kernel: usize,
    stride: usize,
) -> (Vec<f64>, Vec<usize>) {
    let (c, h, w) = (input[0], input[1], input[2]);
    let (ho, wo) = (output[1], output[2]);
    let mut y = vec![0.0; batch * c * ho * wo];
    let mut sources = vec![0; y.len()];
    for plane in 0..batch * c {
        for i in 0..ho {
            for j in 0..wo {
                let corner = (plane * h + i * stride) * w + j * stride;
                let out = (plane * ho + i) * wo + j;
                (y[out], sources[out]) = window_max(x, corner, w, kernel);
            }
        }
    }
    (y, sources)
}

/// Largest value of the `kernel x kernel` window whose top-left element is `x[corner]`, in
/// rows of `width`, and its index; the first maximum wins.
fn window_max(x: &[f64], corner: usize, width: usize, kernel: usize) -> (f64, usize) {
    let mut best = (f64::NEG_INFINITY, 0);
    for ki in 0..kernel {
        for kj in 0..kernel {
            let src = corner + ki * width + kj;
            if x[src] > best.0 {
                best = (x[src], src);
            }
        }
    }
    best
}

/// Each output's gradient goes to the input element it was taken from.
fn max_pool_backward(sources: &[usize], dy: &[f64], input_len: usize) -> Vec<f64> {
    let mut dx = vec![0.0; input_len];
    for (out, &src) in sources.iter().enumerate() {
        dx[src] += dy[out];
    }
    dx
}

/// Batch-mean loss and its gradient with respect to the student logits `[batch, classes]`.
///
/// Per example: `alpha * T^2 * CE(softmax(t / T), softmax(z / T)) + (1 - alpha) * CE(h, softmax(z))`
/// with the (smoothed) hard target `h`; with `teacher = None` alpha must be 0 (hard labels
/// only). The formula is the tensor core's reference, [`cpu::distill_loss_f64`].
pub fn distill_loss(
    logits: &[f64],
    teacher: Option<&[f64]>,
    labels: &[u32],
    classes: usize,
    p: DistillLossParams,
) -> (f64, Vec<f64>) {
    assert!(
        teacher.is_some() || p.alpha == 0.0,
        "hard labels need alpha 0"
    );
    let exact = cpu::distill_loss_f64(logits, teacher, labels, classes, p);
    (mean(&exact.losses), exact.grad)
}

/// Batch-mean of per-example `mean_j (z_j - t_j)^2` and its gradient
/// ([`cpu::logit_mse_f64`]).
pub fn logit_mse(logits: &[f64], teacher: &[f64], labels: &[u32]) -> (f64, Vec<f64>) {
    let classes = logits.len() / labels.len();
    let exact = cpu::logit_mse_f64(logits, teacher, labels, classes);
    (mean(&exact.losses), exact.grad)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Number of rows whose largest logit is at the label (first maximum wins ties).
pub fn correct(logits: &[f64], labels: &[u32]) -> usize {
    let classes = logits.len() / labels.len();
    labels
        .iter()
        .enumerate()
        .filter(|&(n, &label)| argmax_row(&logits[n * classes..(n + 1) * classes]) == label)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::he_normal;

    const HARD: DistillLossParams = DistillLossParams::HARD_LABELS;

    fn to_f64(v: &[Vec<f32>]) -> Vec<Vec<f64>> {
        v.iter()
            .map(|p| p.iter().map(|&x| f64::from(x)).collect())
            .collect()
    }

    /// Central differences of the hard-label loss against the analytic backward pass.
    fn check_finite_differences(spec: &ModelSpec, batch: usize, seed: u64) {
        let mut params = to_f64(&he_normal(spec, seed));
        // Nonzero biases so that a bias-gradient bug can not hide behind zeros.
        for (p, ps) in params.iter_mut().zip(spec.parameters()) {
            if ps.kind == crate::spec::ParamKind::Bias {
                p.iter_mut()
                    .enumerate()
                    .for_each(|(i, b)| *b = 0.05 * ((i % 5) as f64 - 2.0));
            }
        }
        let input: Vec<f64> = dk_tensor::testing::random_f32(batch * spec.input_len(), seed, 1.0)
            .into_iter()
            .map(f64::from)
            .collect();
        let labels: Vec<u32> = (0..batch as u32)
            .map(|n| n % spec.classes() as u32)
            .collect();
        let loss_of = |params: &[Vec<f64>]| {
            let trace = forward(spec, params, &input, batch, None);
            distill_loss(trace.logits(), None, &labels, spec.classes(), HARD).0
        };
        let trace = forward(spec, &params, &input, batch, None);
        let (_, grad_logits) = distill_loss(trace.logits(), None, &labels, spec.classes(), HARD);
        let grads = backward(spec, &params, &trace, &grad_logits, batch, None);
        let eps = 1e-6;
        for (t, ps) in spec.parameters().iter().enumerate() {
            // A spread of entries per tensor keeps the test fast on large layers.
            let stride = (ps.len() / 17).max(1);
            for i in (0..ps.len()).step_by(stride) {
                let saved = params[t][i];
                params[t][i] = saved + eps;
                let up = loss_of(&params);
                params[t][i] = saved - eps;
                let down = loss_of(&params);
                params[t][i] = saved;
                let numeric = (up - down) / (2.0 * eps);
                let analytic = grads[t][i];
                assert!(
                    (numeric - analytic).abs() <= 1e-6 + 1e-4 * numeric.abs(),
                    "{} [{i}] of `{spec}`: finite difference {numeric}, backward {analytic} (tolerance 1e-6 + 1e-4 rel)",
                    ps.name
                );
            }
        }
    }

    #[test]
    fn mlp_backward_matches_finite_differences() {
        check_finite_differences(&ModelSpec::parse("7-9-5-3").unwrap(), 4, 1);
    }

    #[test]
    fn cnn_backward_matches_finite_differences() {
        let spec = ModelSpec::parse("2x7x6-c3k3-p2-c4k3-f6-3").unwrap();
        check_finite_differences(&spec, 3, 2);
    }

    #[test]
    fn distill_gradient_matches_finite_differences() {
        let (batch, classes) = (3, 5);
        let z: Vec<f64> = (0..15).map(|i| ((i * 7) % 11) as f64 * 0.3 - 1.5).collect();
        let t: Vec<f64> = (0..15).map(|i| ((i * 5) % 13) as f64 * 0.4 - 2.0).collect();
        let labels = [1, 4, 0];
        for (temperature, alpha, label_smoothing) in [
            (1.0, 0.0, 0.0),
            (4.0, 0.9, 0.0),
            (2.0, 0.5, 0.1),
            (1.0, 0.0, 0.3),
        ] {
            let p = DistillLossParams {
                temperature,
                alpha,
                label_smoothing,
            };
            let (_, grad) = distill_loss(&z, Some(&t), &labels, classes, p);
            for i in 0..batch * classes {
                let mut zp = z.clone();
                zp[i] += 1e-6;
                let mut zm = z.clone();
                zm[i] -= 1e-6;
                let up = distill_loss(&zp, Some(&t), &labels, classes, p).0;
                let down = distill_loss(&zm, Some(&t), &labels, classes, p).0;
                let numeric = (up - down) / 2e-6;
                assert!(
                    (numeric - grad[i]).abs() < 1e-7,
                    "{p:?} logit {i}: numeric {numeric}, analytic {} (tolerance 1e-7)",
                    grad[i]
                );
            }
        }
    }
}
