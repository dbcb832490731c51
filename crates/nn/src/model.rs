//! `Model`: a spec plus its parameters on the GPU, and batched inference over it.

use std::path::Path;

use dk_tensor::{DType, GpuContext, Tensor};

use crate::checkpoint;
use crate::error::{Result, config_error};
use crate::init::he_normal;
use crate::layers::Mode;
use crate::sequential::Sequential;
use crate::spec::{ModelSpec, ParamSpec};

/// A model's architecture and its parameter tensors (PyTorch shapes) on the GPU.
///
/// The parameter tensors are shared (not copied) with every [`crate::Trainer`] and
/// [`Inference`] built from the model, so what a trainer learns is what inference and
/// [`Model::save`] see.
pub struct Model {
    spec: ModelSpec,
    params: Vec<Tensor>,
}

impl Model {
    /// He-normal weights and zero biases from `seed` (see [`crate::init::he_normal`]).
    pub fn new(ctx: &GpuContext, spec: ModelSpec, seed: u64) -> Result<Self> {
        let values = he_normal(&spec, seed);
        Self::from_values(ctx, spec, &values)
    }

    /// Upload the given parameter values, one vector per entry of [`ModelSpec::parameters`].
    pub fn from_values(ctx: &GpuContext, spec: ModelSpec, values: &[Vec<f32>]) -> Result<Self> {
        spec.check_parameter_values(values)?;
        let params = spec
            .parameters()
            .iter()
            .zip(values)
            .map(|(p, v)| Ok(Tensor::from_f32(ctx, v, &p.shape)?))
            .collect::<Result<_>>()?;
        Ok(Self { spec, params })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Parameter tensors ordered as [`ModelSpec::parameters`].
    pub fn parameters(&self) -> &[Tensor] {
        &self.params
    }

    /// The parameter with this checkpoint name (`"0.weight"`), if the model has it.
    pub fn parameter(&self, name: &str) -> Option<&Tensor> {
        self.spec
            .parameters()
            .iter()
            .position(|p| p.name == name)
            .map(|i| &self.params[i])
    }

    /// Names and shapes of the parameters.
    pub fn parameter_specs(&self) -> Vec<ParamSpec> {
        self.spec.parameters()
    }

    pub fn parameter_count(&self) -> usize {
        self.spec.parameter_count()
    }

    pub fn flops_per_example(&self) -> u64 {
        self.spec.flops_per_example()
    }

    /// Download every parameter (blocks on the GPU).
    pub fn read_values(&self, ctx: &GpuContext) -> Result<Vec<Vec<f32>>> {
        self.params.iter().map(|t| Ok(t.to_f32(ctx)?)).collect()
    }

    /// Overwrite every parameter from the CPU.
    pub fn write_values(&self, ctx: &GpuContext, values: &[Vec<f32>]) -> Result<()> {
        if values.len() != self.params.len() {
            return Err(config_error(format!(
                "model `{}` has {} parameter tensors but {} were given",
                self.spec,
                self.params.len(),
                values.len()
            )));
        }
        for (t, v) in self.params.iter().zip(values) {
            t.write_f32(ctx, v)?;
        }
        Ok(())
    }

    /// Write a safetensors checkpoint (atomically; see [`crate::checkpoint`]).
    pub fn save(&self, ctx: &GpuContext, path: &Path) -> Result<()> {
        checkpoint::save(path, &self.spec, &self.read_values(ctx)?)
    }

    /// Load a checkpoint, taking the spec from its metadata.
    pub fn load(ctx: &GpuContext, path: &Path) -> Result<Self> {
        let (spec, values) = checkpoint::load(path)?;
        Self::from_values(ctx, spec, &values)
    }

    /// Load a checkpoint into a model of `spec`, checking every tensor name and shape.
    pub fn load_as(ctx: &GpuContext, spec: ModelSpec, path: &Path) -> Result<Self> {
        let values = checkpoint::load_for(path, &spec)?;
        Self::from_values(ctx, spec, &values)
    }

    /// Logits `[n, classes]` (row-major) for `n` examples stacked in `inputs`, in batches of
    /// `batch`. Convenience over [`Inference`]; build one `Inference` to reuse it.
    pub fn predict(&self, ctx: &GpuContext, inputs: &[f32], batch: usize) -> Result<Vec<f32>> {
        Inference::new(ctx, self, batch)?.predict(ctx, inputs)
    }
}

/// Forward passes in evaluation mode (dropout off) for a fixed batch size.
pub struct Inference {
    net: Sequential,
    input_len: usize,
    classes: usize,
}

impl Inference {
    /// Inference with its own input tensor `[batch, ...]`.
    pub fn new(ctx: &GpuContext, model: &Model, batch: usize) -> Result<Self> {
        if batch == 0 {
            return Err(config_error("inference batch size must be at least 1"));
        }
        let mut shape = vec![batch];
        shape.extend_from_slice(model.spec.input_shape());
        let input = Tensor::zeros(ctx, &shape, DType::F32)?;
        Self::with_input(ctx, model, &input)
    }

    /// Inference reading a caller-owned input tensor `[batch, ...]` (e.g. filled on the GPU
    /// by a gather kernel in the same encoder).
    pub fn with_input(ctx: &GpuContext, model: &Model, input: &Tensor) -> Result<Self> {
        let net = Sequential::new(ctx, &model.spec, &model.params, input, Mode::Eval)?;
        Ok(Self {
            net,
            input_len: model.spec.input_len(),
            classes: model.spec.classes(),
        })
    }

    pub fn batch(&self) -> usize {
        self.net.batch()
    }

    /// The input tensor `[batch, ...input shape]`.
    pub fn input(&self) -> &Tensor {
        self.net.input()
    }

    /// The logits tensor `[batch, classes]` that [`Inference::record`] writes.
    pub fn logits(&self) -> &Tensor {
        self.net.output()
    }

    /// Record one forward pass of the current input into `encoder`.
    pub fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        self.net.record_forward(&mut pass);
    }

    /// Logits `[n, classes]` for any number `n` of examples stacked in `inputs`. The last
    /// partial batch is padded with zeros and its padding rows dropped from the result.
    pub fn predict(&self, ctx: &GpuContext, inputs: &[f32]) -> Result<Vec<f32>> {
        if !inputs.len().is_multiple_of(self.input_len) {
            return Err(config_error(format!(
                "{} input values are not a whole number of examples of {} values",
                inputs.len(),
                self.input_len
            )));
        }
        let n = inputs.len() / self.input_len;
        let batch = self.batch();
        let mut logits = Vec::with_capacity(n * self.classes);
        let mut padded = vec![0.0; batch * self.input_len];
        for start in (0..n).step_by(batch) {
            let rows = batch.min(n - start);
            let chunk = &inputs[start * self.input_len..(start + rows) * self.input_len];
            padded[..chunk.len()].copy_from_slice(chunk);
            padded[chunk.len()..].fill(0.0);
            self.input().write_f32(ctx, &padded)?;
            let mut encoder = ctx.encoder();
            self.record(&mut encoder);
            ctx.submit_and_wait(encoder);
            let out = self.logits().to_f32(ctx)?;
            logits.extend_from_slice(&out[..rows * self.classes]);
        }
        Ok(logits)
    }
}
