//! loss kernels (shaders/loss.wgsl): launchers, CPU reference, tests.
