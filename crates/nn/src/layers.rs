//! GPU layers with explicit forward and backward passes.
//!
//! Each layer is built once for a fixed batch: it is handed its input tensor (the previous
//! layer's output) and, in training mode, the buffer where its input gradient goes (the
//! previous layer's output gradient). It allocates its output, its output gradient, its
//! parameter gradients and whatever else backward needs, and prepares every kernel launch
//! once. A step then only records the prepared launches. Every gradient buffer is fully
//! overwritten by its backward launch, so nothing needs zeroing between steps.

use dk_tensor::ops::conv2d::{
    Conv2dGeometry, Conv2dLaunch, prepare_conv2d, prepare_conv2d_bias_grad,
    prepare_conv2d_input_grad, prepare_conv2d_weight_grad,
};
use dk_tensor::ops::dropout::{DropoutDispatch, prepare_dropout, prepare_dropout_backward};
use dk_tensor::ops::elementwise::{prepare_relu, prepare_relu_backward};
use dk_tensor::ops::matmul::{MatmulLaunch, MatmulOptions, prepare_matmul};
use dk_tensor::ops::maxpool::{prepare_maxpool2d, prepare_maxpool2d_backward};
use dk_tensor::ops::reduce::prepare_column_sum;
use dk_tensor::{DType, Dispatch, GpuContext, Tensor};

use crate::error::Result;

/// Whether a layer is built for training (gradients, dropout) or for inference only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// A parameter tensor and the gradient buffer its layer's backward pass writes.
#[derive(Clone, Debug)]
pub struct ParamGrad {
    pub param: Tensor,
    pub grad: Tensor,
}

/// One layer of a [`crate::Sequential`].
pub trait Layer {
    /// PyTorch class name (`Linear`, `ReLU`, ...).
    fn kind(&self) -> &'static str;
    /// The activation this layer produces, `[batch, ...]`.
    fn output(&self) -> &Tensor;
    /// Where the gradient of the loss with respect to [`Layer::output`] must be written
    /// before its [`Layer::backward_dispatches`] run; `None` in evaluation mode or when nothing
    /// upstream needs it.
    fn grad_output(&self) -> Option<&Tensor>;
    /// The forward pass's dispatches, in recording order.
    fn forward_dispatches(&self) -> Vec<&Dispatch>;
    /// The backward pass's dispatches, in recording order (none in evaluation mode).
    fn backward_dispatches(&self) -> Vec<&Dispatch>;
    /// Parameters with their gradients (training mode; empty for layers without parameters).
    fn parameters(&self) -> Vec<ParamGrad> {
        Vec::new()
    }
    /// Set the random stream of this step (dropout); other layers ignore it.
    fn set_seed(&mut self, _ctx: &GpuContext, _seed: u32) {}
}

/// Output gradient buffer: needed when training and either this layer has parameters or
/// a gradient has to flow on to its input.
fn grad_buffer(
    ctx: &GpuContext,
    mode: Mode,
    shape: &[usize],
    needed: bool,
) -> Result<Option<Tensor>> {
    Ok(if mode == Mode::Train && needed {
        Some(Tensor::zeros(ctx, shape, DType::F32)?)
    } else {
        None
    })
}

/// One prepared launch of a layer with a weight and a bias.
enum Launch {
    Single(Dispatch),
    /// A matrix product: its operands' copies into textures, where it reads them there, and
    /// the product.
    Matmul(MatmulLaunch),
    /// A convolution pass: one or more dispatches (padding, packing, GEMM, reduction).
    Conv(Conv2dLaunch),
}

impl Launch {
    fn dispatches(&self) -> Vec<&Dispatch> {
        match self {
            Launch::Single(d) => vec![d],
            Launch::Matmul(m) => m.dispatches(),
            Launch::Conv(c) => c.dispatches(),
        }
    }
}

/// What [`Linear`] and [`Conv2d`] share: a weight and a bias, the output, the forward
/// launch and, in training, the gradient buffers and the backward launches.
struct Weighted {
    weight: Tensor,
    bias: Tensor,
    output: Tensor,
    forward: Launch,
    grad_output: Option<Tensor>,
    /// dW and db (training only).
    grads: Option<(Tensor, Tensor)>,
    /// Backward, in recording order: dW, db, then dX when the input needs a gradient.
    backward: Vec<Launch>,
}

impl Weighted {
    /// In training, allocates dY, dW and db and asks `prepare_backward(dY, dW, db)` for the
    /// backward launches.
    fn new(
        ctx: &GpuContext,
        (weight, bias): (&Tensor, &Tensor),
        output: Tensor,
        forward: Launch,
        mode: Mode,
        prepare_backward: impl FnOnce(&Tensor, &Tensor, &Tensor) -> Result<Vec<Launch>>,
    ) -> Result<Self> {
        let grad_output = grad_buffer(ctx, mode, output.shape(), true)?;
        let (mut grads, mut backward) = (None, Vec::new());
        if let Some(dy) = &grad_output {
            let dw = Tensor::zeros(ctx, weight.shape(), DType::F32)?;
            let db = Tensor::zeros(ctx, bias.shape(), DType::F32)?;
            backward = prepare_backward(dy, &dw, &db)?;
            grads = Some((dw, db));
        }
        Ok(Self {
            weight: weight.clone(),
            bias: bias.clone(),
            output,
            forward,
            grad_output,
            grads,
            backward,
        })
    }

    fn backward_dispatches(&self) -> Vec<&Dispatch> {
        self.backward.iter().flat_map(Launch::dispatches).collect()
    }

    /// The (parameter, gradient) pairs; none when built without gradients (inference).
    fn parameters(&self) -> Vec<ParamGrad> {
        let Some((dw, db)) = &self.grads else {
            return Vec::new();
        };
        vec![
            ParamGrad {
                param: self.weight.clone(),
                grad: dw.clone(),
            },
            ParamGrad {
                param: self.bias.clone(),
                grad: db.clone(),
            },
        ]
    }
}

/// `impl Layer` for a newtype around [`Weighted`].
macro_rules! weighted_layer {
    ($layer:ty, $kind:literal) => {
        impl Layer for $layer {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn output(&self) -> &Tensor {
                &self.0.output
            }
            fn grad_output(&self) -> Option<&Tensor> {
                self.0.grad_output.as_ref()
            }
            fn forward_dispatches(&self) -> Vec<&Dispatch> {
                self.0.forward.dispatches()
            }
            fn backward_dispatches(&self) -> Vec<&Dispatch> {
                self.0.backward_dispatches()
            }
            fn parameters(&self) -> Vec<ParamGrad> {
                self.0.parameters()
            }
        }
    };
}

/// Fully connected layer `y = x W^T + b`, W `[out, in]`, optionally with ReLU fused into
/// the matmul epilogue (then the following [`Relu`] is built as fused and only does backward).
pub struct Linear(Weighted);

impl Linear {
    /// `input` is `[batch, in]`; `grad_input`, when given, receives dL/dx in backward.
    pub fn new(
        ctx: &GpuContext,
        weight: &Tensor,
        bias: &Tensor,
        input: &Tensor,
        grad_input: Option<&Tensor>,
        fused_relu: bool,
        mode: Mode,
    ) -> Result<Self> {
        let batch = input.shape()[0];
        let out_features = weight.shape()[0];
        let output = Tensor::zeros(ctx, &[batch, out_features], DType::F32)?;
        let forward = Launch::Matmul(prepare_matmul(
            ctx,
            input,
            weight,
            &output,
            &MatmulOptions {
                trans_b: true,
                bias: Some(bias),
                relu: fused_relu,
                ..Default::default()
            },
        )?);
        let prepare_backward = |dy: &Tensor, dw: &Tensor, db: &Tensor| -> Result<_> {
            // dW = dY^T X, overwritten each step.
            let transpose_dy = MatmulOptions {
                trans_a: true,
                ..Default::default()
            };
            let mut launches = vec![
                Launch::Matmul(prepare_matmul(ctx, dy, input, dw, &transpose_dy)?),
                Launch::Single(prepare_column_sum(ctx, dy, db, false)?),
            ];
            if let Some(dx) = grad_input {
                // dX = dY W.
                let plain = MatmulOptions::default();
                launches.push(Launch::Matmul(prepare_matmul(ctx, dy, weight, dx, &plain)?));
            }
            Ok(launches)
        };
        Weighted::new(ctx, (weight, bias), output, forward, mode, prepare_backward).map(Self)
    }
}

weighted_layer!(Linear, "Linear");

/// 2-D convolution, weight `[out, in, k, k]`, NCHW activations, optionally with ReLU fused.
pub struct Conv2d(Weighted);

impl Conv2d {
    /// `input` is `[batch, in_channels, height, width]`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ctx: &GpuContext,
        weight: &Tensor,
        bias: &Tensor,
        input: &Tensor,
        grad_input: Option<&Tensor>,
        stride: usize,
        padding: usize,
        fused_relu: bool,
        mode: Mode,
    ) -> Result<Self> {
        let (x, w) = (input.shape(), weight.shape());
        let geom = Conv2dGeometry {
            batch: x[0],
            in_channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: w[0],
            kernel_h: w[2],
            kernel_w: w[3],
            stride,
            padding,
        };
        let out_shape = [x[0], w[0], geom.out_height(), geom.out_width()];
        let output = Tensor::zeros(ctx, &out_shape, DType::F32)?;
        let forward = Launch::Conv(prepare_conv2d(
            ctx,
            input,
            weight,
            Some(bias),
            &output,
            fused_relu,
            &geom,
        )?);
        let prepare_backward = |dy: &Tensor, dw: &Tensor, db: &Tensor| -> Result<_> {
            let mut launches = vec![
                Launch::Conv(prepare_conv2d_weight_grad(
                    ctx, input, dy, dw, false, &geom,
                )?),
                Launch::Single(prepare_conv2d_bias_grad(ctx, dy, db, &geom)?),
            ];
            if let Some(dx) = grad_input {
                launches.push(Launch::Conv(prepare_conv2d_input_grad(
                    ctx, dy, weight, dx, &geom,
                )?));
            }
            Ok(launches)
        };
        Weighted::new(ctx, (weight, bias), output, forward, mode, prepare_backward).map(Self)
    }
}

weighted_layer!(Conv2d, "Conv2d");

/// ReLU. When `fused`, the previous Linear/Conv2d already applied it and this layer's
/// output is that layer's output; backward is the same either way (dx = dy where y > 0).
/// When `masked_by_next`, the next layer (a max pooling) applies the mask in its own
/// backward and writes straight into `grad_input`: this layer then has no backward pass.
pub struct Relu {
    output: Tensor,
    grad_output: Option<Tensor>,
    forward: Option<Dispatch>,
    backward: Option<Dispatch>,
}

impl Relu {
    pub fn new(
        ctx: &GpuContext,
        input: &Tensor,
        grad_input: Option<&Tensor>,
        (fused, masked_by_next): (bool, bool),
        mode: Mode,
    ) -> Result<Self> {
        let (output, forward) = if fused {
            (input.clone(), None)
        } else {
            let y = Tensor::zeros(ctx, input.shape(), DType::F32)?;
            let launch = prepare_relu(ctx, input, &y)?;
            (y, Some(launch))
        };
        if masked_by_next && mode == Mode::Train {
            return Ok(Self {
                output,
                grad_output: grad_input.cloned(),
                forward,
                backward: None,
            });
        }
        let grad_output = grad_buffer(ctx, mode, input.shape(), grad_input.is_some())?;
        let backward = match (&grad_output, grad_input) {
            (Some(dy), Some(dx)) => Some(prepare_relu_backward(ctx, &output, dy, dx)?),
            _ => None,
        };
        Ok(Self {
            output,
            grad_output,
            forward,
            backward,
        })
    }
}

impl Layer for Relu {
    fn kind(&self) -> &'static str {
        "ReLU"
    }
    fn output(&self) -> &Tensor {
        &self.output
    }
    fn grad_output(&self) -> Option<&Tensor> {
        self.grad_output.as_ref()
    }
    fn forward_dispatches(&self) -> Vec<&Dispatch> {
        self.forward.iter().collect()
    }
    fn backward_dispatches(&self) -> Vec<&Dispatch> {
        self.backward.iter().collect()
    }
}

/// Inverted dropout with a fresh mask every step ([`Layer::set_seed`]); the identity in
/// evaluation mode (its output is then its input, no copy).
pub struct Dropout {
    output: Tensor,
    grad_output: Option<Tensor>,
    forward: Option<DropoutDispatch>,
    backward: Option<DropoutDispatch>,
}

impl Dropout {
    pub fn new(
        ctx: &GpuContext,
        input: &Tensor,
        grad_input: Option<&Tensor>,
        rate: f32,
        mode: Mode,
    ) -> Result<Self> {
        if mode == Mode::Eval {
            return Ok(Self {
                output: input.clone(),
                grad_output: None,
                forward: None,
                backward: None,
            });
        }
        let output = Tensor::zeros(ctx, input.shape(), DType::F32)?;
        let forward = Some(prepare_dropout(ctx, input, &output, rate, 0)?);
        let grad_output = grad_buffer(ctx, mode, input.shape(), grad_input.is_some())?;
        let backward = match (&grad_output, grad_input) {
            (Some(dy), Some(dx)) => Some(prepare_dropout_backward(ctx, dy, dx, rate, 0)?),
            _ => None,
        };
        Ok(Self {
            output,
            grad_output,
            forward,
            backward,
        })
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }
    fn output(&self) -> &Tensor {
        &self.output
    }
    fn grad_output(&self) -> Option<&Tensor> {
        self.grad_output.as_ref()
    }
    fn forward_dispatches(&self) -> Vec<&Dispatch> {
        self.forward.iter().map(DropoutDispatch::dispatch).collect()
    }
    fn backward_dispatches(&self) -> Vec<&Dispatch> {
        self.backward
            .iter()
            .map(DropoutDispatch::dispatch)
            .collect()
    }
    fn set_seed(&mut self, ctx: &GpuContext, seed: u32) {
        // Forward and backward must see the same mask.
        for d in self.forward.iter_mut().chain(self.backward.iter_mut()) {
            d.set_seed(ctx, seed);
        }
    }
}

/// Max pooling; remembers where each maximum came from for backward. With `after_relu` its
/// backward also applies the preceding ReLU's mask (see [`Relu`]).
pub struct MaxPool2d {
    output: Tensor,
    /// Flat input index of each output's maximum, written by forward.
    argmax: Tensor,
    grad_output: Option<Tensor>,
    forward: Dispatch,
    backward: Option<Dispatch>,
}

impl MaxPool2d {
    pub fn new(
        ctx: &GpuContext,
        input: &Tensor,
        grad_input: Option<&Tensor>,
        (kernel, stride): (usize, usize),
        after_relu: bool,
        mode: Mode,
    ) -> Result<Self> {
        let x = input.shape();
        let out = |n: usize| (n - kernel) / stride + 1;
        let out_shape = [x[0], x[1], out(x[2]), out(x[3])];
        let output = Tensor::zeros(ctx, &out_shape, DType::F32)?;
        let argmax = Tensor::zeros(ctx, &out_shape, DType::U32)?;
        let forward = prepare_maxpool2d(ctx, input, &output, &argmax, kernel, stride)?;
        let grad_output = grad_buffer(ctx, mode, &out_shape, grad_input.is_some())?;
        let backward = match (&grad_output, grad_input) {
            (Some(dy), Some(dx)) => {
                let mask = after_relu.then_some(&output);
                Some(prepare_maxpool2d_backward(
                    ctx, dy, &argmax, mask, dx, kernel, stride,
                )?)
            }
            _ => None,
        };
        Ok(Self {
            output,
            argmax,
            grad_output,
            forward,
            backward,
        })
    }

    /// Where each maximum came from (U32, same shape as the output).
    pub fn argmax(&self) -> &Tensor {
        &self.argmax
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }
    fn output(&self) -> &Tensor {
        &self.output
    }
    fn grad_output(&self) -> Option<&Tensor> {
        self.grad_output.as_ref()
    }
    fn forward_dispatches(&self) -> Vec<&Dispatch> {
        vec![&self.forward]
    }
    fn backward_dispatches(&self) -> Vec<&Dispatch> {
        self.backward.iter().collect()
    }
}

/// `[batch, C, H, W]` seen as `[batch, C * H * W]`: a view of the same buffer, no launch.
pub struct Flatten {
    output: Tensor,
    grad_output: Option<Tensor>,
}

impl Flatten {
    pub fn new(input: &Tensor, grad_input: Option<&Tensor>) -> Result<Self> {
        let batch = input.shape()[0];
        let flat = [batch, input.len() / batch.max(1)];
        Ok(Self {
            output: input.reshape(&flat)?,
            grad_output: grad_input.map(|g| g.reshape(&flat)).transpose()?,
        })
    }
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }
    fn output(&self) -> &Tensor {
        &self.output
    }
    fn grad_output(&self) -> Option<&Tensor> {
        self.grad_output.as_ref()
    }
    fn forward_dispatches(&self) -> Vec<&Dispatch> {
        Vec::new()
    }
    fn backward_dispatches(&self) -> Vec<&Dispatch> {
        Vec::new()
    }
}
