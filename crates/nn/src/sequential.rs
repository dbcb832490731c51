//! `Sequential`: the layers of a [`ModelSpec`] chained for one fixed batch size.

use dk_tensor::{Dispatch, GpuContext, Tensor};

use crate::error::{Result, config_error};
use crate::layers::{Conv2d, Dropout, Flatten, Layer, Linear, MaxPool2d, Mode, ParamGrad, Relu};
use crate::spec::{LayerSpec, ModelSpec};

/// Builds the layers of one model in order, handing each weighted layer its parameters.
struct LayerBuilder<'a> {
    ctx: &'a GpuContext,
    spec: &'a ModelSpec,
    params: &'a [Tensor],
    mode: Mode,
    next_param: usize,
}

impl<'a> LayerBuilder<'a> {
    /// The weight and bias of the next weighted layer.
    fn take_params(&mut self) -> (&'a Tensor, &'a Tensor) {
        let i = self.next_param;
        self.next_param += 2;
        (&self.params[i], &self.params[i + 1])
    }

    /// Layer `index` of the spec over input `x` (gradient `dx` when training).
    fn build(&mut self, index: usize, x: &Tensor, dx: Option<&Tensor>) -> Result<Box<dyn Layer>> {
        let (ctx, spec, mode) = (self.ctx, self.spec, self.mode);
        let fused = spec.relu_follows(index);
        Ok(match spec.layers()[index] {
            LayerSpec::Linear { .. } => {
                let (w, b) = self.take_params();
                Box::new(Linear::new(ctx, w, b, x, dx, fused, mode)?)
            }
            LayerSpec::Conv2d {
                stride, padding, ..
            } => {
                let (w, b) = self.take_params();
                Box::new(Conv2d::new(ctx, w, b, x, dx, stride, padding, fused, mode)?)
            }
            LayerSpec::Relu => {
                let after_fusable = index > 0 && spec.relu_follows(index - 1);
                let how = (after_fusable, spec.pool_follows_relu(index + 1));
                Box::new(Relu::new(ctx, x, dx, how, mode)?)
            }
            LayerSpec::Dropout { rate } => Box::new(Dropout::new(ctx, x, dx, rate, mode)?),
            LayerSpec::MaxPool2d { kernel, stride } => {
                let after_relu = spec.pool_follows_relu(index);
                Box::new(MaxPool2d::new(
                    ctx,
                    x,
                    dx,
                    (kernel, stride),
                    after_relu,
                    mode,
                )?)
            }
            LayerSpec::Flatten => Box::new(Flatten::new(x, dx)?),
        })
    }
}

/// Layers of one model bound to one input tensor `[batch, ...]`.
pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    input: Tensor,
    mode: Mode,
}

impl Sequential {
    /// Build every layer of `spec` over `input`, sharing the parameter tensors `params`
    /// (ordered as [`ModelSpec::parameters`]). `input` may have any shape whose leading
    /// dimension is the batch and whose remaining elements match the spec's input.
    pub fn new(
        ctx: &GpuContext,
        spec: &ModelSpec,
        params: &[Tensor],
        input: &Tensor,
        mode: Mode,
    ) -> Result<Self> {
        let batch = *input.shape().first().unwrap_or(&0);
        if batch == 0 || input.len() != batch * spec.input_len() {
            return Err(config_error(format!(
                "model `{spec}` takes inputs of shape [batch, {}] but the input tensor is {:?}",
                spec.input_shape_text(),
                input.shape()
            )));
        }
        let mut shape = vec![batch];
        shape.extend_from_slice(spec.input_shape());
        let input = input.reshape(&shape)?;

        let mut builder = LayerBuilder {
            ctx,
            spec,
            params,
            mode,
            next_param: 0,
        };
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(spec.layers().len());
        for index in 0..spec.layers().len() {
            let (x, dx) = match layers.last() {
                Some(prev) => (prev.output().clone(), prev.grad_output().cloned()),
                None => (input.clone(), None),
            };
            layers.push(builder.build(index, &x, dx.as_ref())?);
        }
        Ok(Self {
            layers,
            input,
            mode,
        })
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Examples per pass.
    pub fn batch(&self) -> usize {
        self.input.shape()[0]
    }

    /// The input tensor viewed as `[batch, ...input shape]`.
    pub fn input(&self) -> &Tensor {
        &self.input
    }

    /// Logits `[batch, classes]`.
    pub fn output(&self) -> &Tensor {
        self.layers.last().expect("a model has layers").output()
    }

    /// Where the loss writes dL/dlogits (training mode).
    pub fn grad_output(&self) -> Option<&Tensor> {
        self.layers
            .last()
            .expect("a model has layers")
            .grad_output()
    }

    /// Parameters and their gradient buffers, ordered as [`ModelSpec::parameters`].
    pub fn parameters(&self) -> Vec<ParamGrad> {
        self.layers.iter().flat_map(|l| l.parameters()).collect()
    }

    /// The forward pass, one `(name, dispatches)` part per layer that launches anything.
    pub fn forward_parts(&self) -> Vec<StepPart<'_>> {
        self.parts("forward", self.layers.iter().enumerate(), |l| {
            l.forward_dispatches()
        })
    }

    /// The backward pass, last layer first, named as [`Sequential::forward_parts`].
    pub fn backward_parts(&self) -> Vec<StepPart<'_>> {
        let layers = self.layers.iter().enumerate().rev();
        self.parts("backward", layers, |l| l.backward_dispatches())
    }

    fn parts<'a>(
        &'a self,
        pass: &str,
        layers: impl Iterator<Item = (usize, &'a Box<dyn Layer>)>,
        dispatches: impl Fn(&'a dyn Layer) -> Vec<&'a Dispatch>,
    ) -> Vec<StepPart<'a>> {
        layers
            .map(|(index, layer)| StepPart {
                name: format!("{pass} {index} {}", layer.kind()),
                dispatches: dispatches(layer.as_ref()),
            })
            .filter(|part| !part.dispatches.is_empty())
            .collect()
    }

    pub fn record_forward(&self, pass: &mut wgpu::ComputePass<'_>) {
        record_parts(pass, &self.forward_parts());
    }

    /// Give every dropout layer its mask seed for the coming step: `seed_of(layer index)`.
    pub fn set_seeds(&mut self, ctx: &GpuContext, seed_of: impl Fn(usize) -> u32) {
        for (index, layer) in self.layers.iter_mut().enumerate() {
            layer.set_seed(ctx, seed_of(index));
        }
    }
}

/// A named group of dispatches of one step (a layer's forward or backward, the loss, an
/// update): what a profile times separately.
pub struct StepPart<'a> {
    pub name: String,
    pub dispatches: Vec<&'a Dispatch>,
}

/// Record every dispatch of `parts`, in order, into `pass`.
pub fn record_parts(pass: &mut wgpu::ComputePass<'_>, parts: &[StepPart<'_>]) {
    for dispatch in parts.iter().flat_map(|part| &part.dispatches) {
        dispatch.record(pass);
    }
}
