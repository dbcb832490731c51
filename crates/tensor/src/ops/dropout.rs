//! dropout kernels (shaders/dropout.wgsl): launchers, CPU reference, tests.
