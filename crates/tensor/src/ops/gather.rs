//! gather kernels (shaders/gather.wgsl): launchers, CPU reference, tests.
