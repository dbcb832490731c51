//! `Dispatch`: one prepared kernel launch (pipeline, bind group, grid) that can be recorded
//! into any number of command encoders. Launchers build these once; training steps replay them.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::context::{GpuContext, ShaderSource};
use crate::tensor::Tensor;

/// Largest workgroup count per grid dimension that every WebGPU adapter accepts.
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// A prepared kernel launch.
#[derive(Debug)]
pub struct Dispatch {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    params: Option<wgpu::Buffer>,
}

/// One binding of a dispatch: a tensor or a uniform block of parameters.
pub enum Binding<'a> {
    Tensor(&'a Tensor),
    Buffer(&'a wgpu::Buffer),
    Texture(&'a wgpu::TextureView),
}

impl Dispatch {
    /// Prepare a launch of `entry` in `shader`. `bindings` are `(binding index, resource)` in
    /// group 0; `params`, if given, is uploaded as a uniform buffer at binding `params_binding`.
    pub fn new(
        ctx: &GpuContext,
        shader: &ShaderSource,
        entry: &'static str,
        constants: &[(&str, f64)],
        bindings: &[(u32, Binding<'_>)],
        params: Option<(u32, &[u8])>,
        groups: [u32; 3],
    ) -> Self {
        let pipeline = ctx.pipeline(shader, entry, constants);
        let params_buffer = params.map(|(_, bytes)| {
            ctx.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("params"),
                    contents: bytes,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                })
        });
        let mut entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|(binding, resource)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: match resource {
                    Binding::Tensor(t) => t.binding(),
                    Binding::Buffer(b) => b.as_entire_binding(),
                    Binding::Texture(view) => wgpu::BindingResource::TextureView(view),
                },
            })
            .collect();
        if let (Some((binding, _)), Some(buffer)) = (params, params_buffer.as_ref()) {
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: buffer.as_entire_binding(),
            });
        }
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Self {
            pipeline,
            bind_group,
            groups,
            params: params_buffer,
        }
    }

    /// Record this launch into an open compute pass.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.groups.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }

    /// Record this launch in a compute pass of its own.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        self.record(&mut pass);
    }

    /// Replace the uniform parameters (e.g. a step counter or seed) before the next submission.
    /// `bytes` must have the size the dispatch was created with.
    pub fn update_params(&self, ctx: &GpuContext, bytes: &[u8]) {
        let buffer = self
            .params
            .as_ref()
            .expect("update_params on a dispatch without parameters");
        assert_eq!(buffer.size(), bytes.len() as u64, "parameter block size");
        ctx.queue.write_buffer(buffer, 0, bytes);
    }

    /// The grid this dispatch launches.
    pub fn groups(&self) -> [u32; 3] {
        self.groups
    }
}

/// Record several dispatches, in order, into one compute pass.
pub fn record_all<'a>(
    encoder: &mut wgpu::CommandEncoder,
    dispatches: impl IntoIterator<Item = &'a Dispatch>,
) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// A 2-D grid covering `n_groups` workgroups: x up to [`MAX_GROUPS_PER_DIM`], the rest in y.
/// Shaders recover the linear workgroup index as `wid.x + wid.y * num_workgroups.x`
/// and must skip indices past their element count.
pub fn grid_1d(n_groups: u32) -> [u32; 3] {
    if n_groups <= MAX_GROUPS_PER_DIM {
        [n_groups, 1, 1]
    } else {
        [MAX_GROUPS_PER_DIM, n_groups.div_ceil(MAX_GROUPS_PER_DIM), 1]
    }
}

/// Workgroups needed for `n` items at `per_group` items each.
pub fn groups_for(n: usize, per_group: usize) -> u32 {
    u32::try_from(n.div_ceil(per_group)).expect("grid larger than u32")
}
