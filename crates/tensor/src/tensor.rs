//! `Tensor`: a GPU storage buffer plus a row-major shape.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::{Result, TensorError, shape_error};

/// Element type of a tensor's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    U32,
    /// Bytes packed four to a u32 word (WGSL has no 8-bit type); shaders unpack them.
    U8,
}

impl DType {
    /// Bytes the buffer needs for `n` elements (padded to whole 4-byte words).
    pub fn buffer_bytes(self, n: usize) -> u64 {
        let raw = match self {
            DType::F32 | DType::U32 => n * 4,
            DType::U8 => n,
        };
        (raw.div_ceil(4) * 4).max(4) as u64
    }
}

/// A GPU buffer with a shape. Cloning shares the buffer; [`Tensor::reshape`] never copies.
#[derive(Clone, Debug)]
pub struct Tensor {
    buffer: Arc<wgpu::Buffer>,
    shape: Vec<usize>,
    dtype: DType,
}

/// Bytes of a uniform block: WebGPU's guaranteed `max_uniform_buffer_binding_size`.
pub const UNIFORM_BLOCK_BYTES: u64 = 65536;

fn usage() -> wgpu::BufferUsages {
    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST
}

fn check_size(ctx: &GpuContext, what: &str, bytes: u64) -> Result<()> {
    let limit = ctx.max_binding_bytes();
    if bytes > limit {
        return Err(TensorError::TooLarge {
            what: what.to_string(),
            bytes,
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    Ok(())
}

impl Tensor {
    /// A zero-filled tensor.
    pub fn zeros(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<Self> {
        let n = shape.iter().product::<usize>();
        let bytes = dtype.buffer_bytes(n);
        check_size(
            ctx,
            &format!("a {dtype:?} tensor of shape {shape:?}"),
            bytes,
        )?;
        Ok(Self::zeroed(ctx, bytes, usage(), shape, dtype))
    }

    /// A zero-filled tensor whose buffer is also one whole uniform block of
    /// [`UNIFORM_BLOCK_BYTES`], the size a shader declares for it (the tensor must fit).
    pub fn zeros_uniform_block(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<Self> {
        let n = shape.iter().product::<usize>();
        let bytes = dtype.buffer_bytes(n);
        if bytes > UNIFORM_BLOCK_BYTES {
            return Err(TensorError::TooLarge {
                what: format!("a {dtype:?} tensor of shape {shape:?} in a uniform block"),
                bytes,
                limit: UNIFORM_BLOCK_BYTES,
                limit_name: "max_uniform_buffer_binding_size",
            });
        }
        let usage = usage() | wgpu::BufferUsages::UNIFORM;
        Ok(Self::zeroed(ctx, UNIFORM_BLOCK_BYTES, usage, shape, dtype))
    }

    /// A new buffer of `bytes` for a tensor of `shape`; wgpu zero-initialises new buffers.
    fn zeroed(
        ctx: &GpuContext,
        bytes: u64,
        usage: wgpu::BufferUsages,
        shape: &[usize],
        dtype: DType,
    ) -> Self {
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes,
            usage,
            mapped_at_creation: false,
        });
        Self {
            buffer: Arc::new(buffer),
            shape: shape.to_vec(),
            dtype,
        }
    }

    fn from_bytes(ctx: &GpuContext, bytes: &[u8], shape: &[usize], dtype: DType) -> Result<Self> {
        let padded = dtype.buffer_bytes(shape.iter().product());
        check_size(
            ctx,
            &format!("a {dtype:?} tensor of shape {shape:?}"),
            padded,
        )?;
        let mut data = bytes.to_vec();
        data.resize(padded as usize, 0);
        let buffer = ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &data,
                usage: usage(),
            });
        Ok(Self {
            buffer: Arc::new(buffer),
            shape: shape.to_vec(),
            dtype,
        })
    }

    fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
        let n: usize = shape.iter().product();
        if len != n {
            return Err(shape_error(
                op,
                format!("{len} values do not fill shape {shape:?} ({n} elements)"),
            ));
        }
        Ok(())
    }

    /// Upload f32 values.
    pub fn from_f32(ctx: &GpuContext, data: &[f32], shape: &[usize]) -> Result<Self> {
        Self::check_len("Tensor::from_f32", data.len(), shape)?;
        Self::from_bytes(ctx, bytemuck::cast_slice(data), shape, DType::F32)
    }

    /// Upload u32 values.
    pub fn from_u32(ctx: &GpuContext, data: &[u32], shape: &[usize]) -> Result<Self> {
        Self::check_len("Tensor::from_u32", data.len(), shape)?;
        Self::from_bytes(ctx, bytemuck::cast_slice(data), shape, DType::U32)
    }

    /// Upload bytes (packed four to a word on the GPU).
    pub fn from_u8(ctx: &GpuContext, data: &[u8], shape: &[usize]) -> Result<Self> {
        Self::check_len("Tensor::from_u8", data.len(), shape)?;
        Self::from_bytes(ctx, data, shape, DType::U8)
    }

    /// Overwrite the contents from the CPU (ordered before the next submission).
    pub fn write_f32(&self, ctx: &GpuContext, data: &[f32]) -> Result<()> {
        self.expect_dtype("Tensor::write_f32", DType::F32)?;
        Self::check_len("Tensor::write_f32", data.len(), &self.shape)?;
        ctx.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Overwrite the contents from the CPU (ordered before the next submission).
    pub fn write_u32(&self, ctx: &GpuContext, data: &[u32]) -> Result<()> {
        self.expect_dtype("Tensor::write_u32", DType::U32)?;
        Self::check_len("Tensor::write_u32", data.len(), &self.shape)?;
        ctx.queue
            .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Download the raw bytes of the buffer (blocks until the GPU is done).
    pub fn read_bytes(&self, ctx: &GpuContext) -> Result<Vec<u8>> {
        let size = self.buffer.size();
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = ctx.encoder();
        encoder.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, size);
        ctx.queue.submit(Some(encoder.finish()));
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait();
        rx.recv()
            .map_err(|e| TensorError::Readback(e.to_string()))?
            .map_err(|e| TensorError::Readback(e.to_string()))?;
        let data = staging
            .get_mapped_range(..)
            .map_err(|e| TensorError::Readback(e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// Download as f32.
    pub fn to_f32(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.expect_dtype("Tensor::to_f32", DType::F32)?;
        let bytes = self.read_bytes(ctx)?;
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes)[..self.len()].to_vec())
    }

    /// Download as u32.
    pub fn to_u32(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        self.expect_dtype("Tensor::to_u32", DType::U32)?;
        let bytes = self.read_bytes(ctx)?;
        Ok(bytemuck::cast_slice::<u8, u32>(&bytes)[..self.len()].to_vec())
    }

    /// Download as bytes.
    pub fn to_u8(&self, ctx: &GpuContext) -> Result<Vec<u8>> {
        self.expect_dtype("Tensor::to_u8", DType::U8)?;
        let mut bytes = self.read_bytes(ctx)?;
        bytes.truncate(self.len());
        Ok(bytes)
    }

    /// The same buffer seen with another shape of the same element count. No copy.
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(shape_error(
                "Tensor::reshape",
                format!(
                    "cannot view shape {:?} ({} elements) as {shape:?} ({n} elements)",
                    self.shape,
                    self.len()
                ),
            ));
        }
        Ok(Self {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
        })
    }

    /// Error unless the tensor has `dtype`.
    pub fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(shape_error(
                op,
                format!(
                    "expected a {dtype:?} tensor, got {:?} of shape {:?}",
                    self.dtype, self.shape
                ),
            ));
        }
        Ok(())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// True when both tensors view the same GPU buffer.
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    /// The whole buffer as a binding resource.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.buffer.as_entire_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ctx;

    #[test]
    fn upload_download_round_trips_every_dtype() {
        let ctx = ctx();
        let f = Tensor::from_f32(ctx, &[1.5, -2.0, 3.25], &[3]).unwrap();
        assert_eq!(f.to_f32(ctx).unwrap(), vec![1.5, -2.0, 3.25]);
        let u = Tensor::from_u32(ctx, &[7, 0, u32::MAX], &[3, 1]).unwrap();
        assert_eq!(u.to_u32(ctx).unwrap(), vec![7, 0, u32::MAX]);
        let bytes: Vec<u8> = (0..=254).collect();
        let b = Tensor::from_u8(ctx, &bytes, &[5, 51]).unwrap();
        assert_eq!(b.to_u8(ctx).unwrap(), bytes);
    }

    #[test]
    fn reshape_shares_the_buffer_and_checks_the_count() {
        let ctx = ctx();
        let t = Tensor::from_f32(ctx, &[1.0; 12], &[3, 4]).unwrap();
        let v = t.reshape(&[2, 6]).unwrap();
        assert!(v.same_buffer(&t));
        assert_eq!(v.shape(), &[2, 6]);
        let err = t.reshape(&[5, 2]).unwrap_err().to_string();
        assert!(err.contains("[3, 4]") && err.contains("[5, 2]"), "{err}");
    }

    #[test]
    fn wrong_length_and_oversized_tensors_are_refused() {
        let ctx = ctx();
        let err = Tensor::from_f32(ctx, &[1.0; 5], &[2, 3]).unwrap_err();
        assert!(err.to_string().contains("[2, 3]"), "{err}");
        let too_many = (ctx.max_binding_bytes() / 4 + 1) as usize;
        let err = Tensor::zeros(ctx, &[too_many], DType::F32).unwrap_err();
        assert!(matches!(err, TensorError::TooLarge { .. }), "{err}");
        let over_a_block = (UNIFORM_BLOCK_BYTES / 4 + 1) as usize;
        let err = Tensor::zeros_uniform_block(ctx, &[over_a_block], DType::F32).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("uniform block") && text.contains("65536"),
            "{text}"
        );
    }

    #[test]
    fn a_uniform_block_tensor_holds_its_values_in_a_whole_block() {
        let ctx = ctx();
        let t = Tensor::zeros_uniform_block(ctx, &[3], DType::F32).unwrap();
        assert_eq!(t.to_f32(ctx).unwrap(), vec![0.0; 3]);
        t.write_f32(ctx, &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(t.to_f32(ctx).unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(t.buffer().size(), UNIFORM_BLOCK_BYTES);
    }

    #[test]
    fn write_replaces_contents() {
        let ctx = ctx();
        let t = Tensor::zeros(ctx, &[4], DType::F32).unwrap();
        t.write_f32(ctx, &[4.0, 3.0, 2.0, 1.0]).unwrap();
        assert_eq!(t.to_f32(ctx).unwrap(), vec![4.0, 3.0, 2.0, 1.0]);
        assert!(t.write_f32(ctx, &[1.0]).is_err());
    }
}
