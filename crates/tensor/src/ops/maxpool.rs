//! maxpool kernels (shaders/maxpool.wgsl): launchers, CPU reference, tests.
