//! matmul kernels (shaders/matmul.wgsl): launchers, CPU reference, tests.
