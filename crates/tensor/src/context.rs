//! The GPU context: adapter choice, device with the adapter's own limits, a pipeline cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Result, TensorError};

/// How to choose the adapter. Environment variables (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`)
/// are read by [`ContextOptions::from_env`]; fields set from code win over them.
#[derive(Clone, Debug, Default)]
pub struct ContextOptions {
    /// Backends to look at; `None` means all that this build supports.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name, e.g. `"llvmpipe"` or `"nvidia"`.
    pub adapter_name: Option<String>,
}

impl ContextOptions {
    /// Options from `WGPU_BACKEND` (comma list: vulkan, metal, dx12, gl) and `WGPU_ADAPTER_NAME`.
    pub fn from_env() -> Self {
        Self {
            backends: wgpu::Backends::from_env(),
            adapter_name: std::env::var("WGPU_ADAPTER_NAME")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }
}

/// What the chosen adapter is, for reports and logs.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// True for software rasterizers such as Mesa's lavapipe (llvmpipe).
    pub is_cpu: bool,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.backend, self.device_type)
    }
}

/// A compiled compute pipeline is identified by its shader, entry point and override constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(String, u64)>,
}

/// One GPU device and queue, plus caches. Cheap to share behind an `Arc`.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::Adapter,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub summary: AdapterSummary,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    stand_ins: Mutex<HashMap<wgpu::TextureFormat, wgpu::TextureView>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.summary)
            .finish()
    }
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU",
        wgpu::DeviceType::Other => "other",
    }
}

/// Real GPUs first; a software adapter only when nothing else is there.
fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The most preferred adapter on `options.backends` whose name matches
/// `options.adapter_name`.
async fn choose_adapter(options: &ContextOptions) -> Result<wgpu::Adapter> {
    // GL rarely offers compute shaders; the primary backends are Vulkan, Metal and DX12.
    let backends = options.backends.unwrap_or(wgpu::Backends::PRIMARY);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let mut adapters = instance.enumerate_adapters(backends).await;
    if let Some(filter) = &options.adapter_name {
        let seen: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let needle = filter.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
        if adapters.is_empty() {
            return Err(TensorError::NoAdapter {
                detail: format!(
                    " whose name contains {filter:?} (adapters present: {})",
                    if seen.is_empty() {
                        "none".to_string()
                    } else {
                        seen.join(", ")
                    }
                ),
            });
        }
    }
    adapters.sort_by_key(|a| preference(a.get_info().device_type));
    adapters.into_iter().next().ok_or(TensorError::NoAdapter {
        detail: String::new(),
    })
}

impl AdapterSummary {
    fn of(info: &wgpu::AdapterInfo) -> Self {
        Self {
            is_cpu: info.device_type == wgpu::DeviceType::Cpu
                || info.name.to_lowercase().contains("llvmpipe"),
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: device_type_name(info.device_type).to_string(),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

impl GpuContext {
    /// Open the adapter chosen by the environment (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`).
    pub fn new() -> Result<Self> {
        Self::with_options(ContextOptions::from_env())
    }

    /// Open an adapter chosen by `options`.
    pub fn with_options(options: ContextOptions) -> Result<Self> {
        pollster::block_on(Self::open(options))
    }

    async fn open(options: ContextOptions) -> Result<Self> {
        let adapter = choose_adapter(&options).await?;
        let info = adapter.get_info();
        // The adapter's own limits, not the conservative defaults: large buffers need them.
        let limits = adapter.limits();
        let wanted = wgpu::Features::SHADER_F16
            | wgpu::Features::SUBGROUP
            | wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let features = adapter.features() & wanted;
        let device_desc = wgpu::DeviceDescriptor {
            label: Some("darkknowledge"),
            required_features: features,
            required_limits: limits.clone(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) = adapter
            .request_device(&device_desc)
            .await
            .map_err(|source| TensorError::Device {
                adapter: info.name.clone(),
                cause: source,
            })?;
        Ok(Self {
            device,
            queue,
            adapter,
            limits,
            features,
            summary: AdapterSummary::of(&info),
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            stand_ins: Mutex::new(HashMap::new()),
        })
    }

    /// The largest storage buffer one binding may cover on this adapter.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// A compute pipeline for `entry` of `shader`, compiled once per set of override constants.
    ///
    /// `shader.name` must be unique per WGSL source (the cache key).
    pub fn pipeline(
        &self,
        shader: &ShaderSource,
        entry: &'static str,
        constants: &[(&str, f64)],
    ) -> Arc<wgpu::ComputePipeline> {
        let key = PipelineKey {
            shader: shader.name,
            entry,
            constants: constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        };
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(shader.name)
                .or_insert_with(|| {
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(shader.name),
                            source: wgpu::ShaderSource::Wgsl(wgsl_for_naga(shader.wgsl)),
                        })
                })
                .clone()
        };
        let pipeline = Arc::new(self.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            },
        ));
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        pipeline
    }

    /// A zeroed 2-D `[width, height]` texture of `format` that kernels may read, write as a
    /// storage texture, and copy from.
    pub fn texture_2d(
        &self,
        label: &str,
        format: wgpu::TextureFormat,
        [width, height]: [usize; 2],
    ) -> wgpu::TextureView {
        let texture = self.device.create_texture(&wgpu::TextureDescriptor {
            label: Some(label),
            size: wgpu::Extent3d {
                width: width as u32,
                height: height as u32,
                depth_or_array_layers: 1,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING
                | wgpu::TextureUsages::STORAGE_BINDING
                | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        texture.create_view(&wgpu::TextureViewDescriptor::default())
    }

    /// A zeroed 1 x 1 texture of `format`, made once per context, for texture bindings that a
    /// kernel's override constants leave unread (WebGPU needs every binding of a layout).
    pub fn stand_in_texture(&self, format: wgpu::TextureFormat) -> wgpu::TextureView {
        let mut stand_ins = self.stand_ins.lock().unwrap();
        stand_ins
            .entry(format)
            .or_insert_with(|| self.texture_2d("stand-in", format, [1, 1]))
            .clone()
    }

    /// Submit one encoder's work and block until the GPU has finished it.
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) {
        self.queue.submit(Some(encoder.finish()));
        self.wait();
    }

    /// Block until all submitted work is done.
    pub fn wait(&self) {
        // A poll error here means the device was lost; nothing sensible can continue.
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("GPU device lost while waiting for work");
    }

    /// A fresh command encoder.
    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }
}

/// A WGSL source with a unique name, as embedded from `shaders/`.
#[derive(Clone, Copy, Debug)]
pub struct ShaderSource {
    pub name: &'static str,
    pub wgsl: &'static str,
}

/// The directive the WGSL specification requires in a module that uses subgroup builtins.
pub const ENABLE_SUBGROUPS: &str = "enable subgroups;";

/// Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid or not set" as an error on
/// machines without a desktop session (CI, servers), which reads like a failure. Where the
/// variable is unset, point it at a private folder for this process and its children.
///
/// Call it first thing in `main`, before any other thread exists (it sets an environment
/// variable).
pub fn ensure_runtime_dir() {
    if cfg!(not(unix)) || std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("darkknowledge-runtime-{user}"));
    if std::fs::create_dir_all(&dir).is_err() || !private(&dir) {
        return;
    }
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
}

/// Makes `dir` readable by its owner only, as the runtime folder must be.
#[cfg(unix)]
fn private(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).is_ok()
}

#[cfg(not(unix))]
fn private(_: &std::path::Path) -> bool {
    false
}

/// `wgsl` as wgpu 30 compiles it. Its naga does not implement the `subgroups`
/// enable-extension yet: it refuses the directive and takes the builtins from the device
/// feature instead. So the `enable subgroups;` line, which the shader files keep for the
/// specification and for Tint (browsers), is blanked here; line numbers stay the same.
pub fn wgsl_for_naga(wgsl: &str) -> std::borrow::Cow<'_, str> {
    let is_directive = |line: &str| line.trim() == ENABLE_SUBGROUPS;
    if !wgsl.lines().any(is_directive) {
        return wgsl.into();
    }
    wgsl.lines()
        .map(|line| if is_directive(line) { "" } else { line })
        .collect::<Vec<_>>()
        .join("\n")
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_textures_are_made_once_per_format() {
        let ctx = crate::testing::ctx();
        let rgba = wgpu::TextureFormat::Rgba32Float;
        let r = wgpu::TextureFormat::R32Float;
        assert_eq!(ctx.stand_in_texture(rgba), ctx.stand_in_texture(rgba));
        assert_ne!(ctx.stand_in_texture(rgba), ctx.stand_in_texture(r));
        assert_eq!(ctx.stand_in_texture(r).texture().size().width, 1);
    }

    #[test]
    fn an_adapter_name_that_matches_nothing_says_what_to_install() {
        let err = GpuContext::with_options(ContextOptions {
            backends: None,
            adapter_name: Some("no-such-adapter-xyz".into()),
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("no-such-adapter-xyz"), "{err}");
        assert!(err.contains("mesa-vulkan-drivers"), "{err}");
    }

    #[test]
    fn the_subgroups_directive_is_blanked_for_naga_only() {
        let source = "// header\nenable subgroups;\n@compute @workgroup_size(8)\nfn main(@builtin(subgroup_invocation_id) lane: u32) {\n    _ = subgroupBroadcast(f32(lane), 0u);\n}\n";
        // When naga learns the directive, this fails: then drop wgsl_for_naga.
        let refused = naga::front::wgsl::parse_str(source).unwrap_err();
        assert!(
            refused
                .message()
                .contains("`subgroups` enable-extension is not yet supported"),
            "{}",
            refused.message()
        );
        let blanked = wgsl_for_naga(source);
        assert_eq!(blanked.lines().count(), source.lines().count());
        assert!(!blanked.contains("enable"), "{blanked}");
        let module = naga::front::wgsl::parse_str(&blanked).unwrap();
        assert_eq!(module.entry_points[0].name, "main");
        let plain = "@compute @workgroup_size(1)\nfn main() {}\n";
        assert!(matches!(
            wgsl_for_naga(plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn the_shared_context_reports_its_adapter() {
        let ctx = crate::testing::ctx();
        assert!(!ctx.summary.name.is_empty());
        assert!(ctx.max_binding_bytes() >= 128 << 20 || ctx.summary.is_cpu);
        let text = ctx.summary.to_string();
        assert!(text.contains(&ctx.summary.backend), "{text}");
    }
}
