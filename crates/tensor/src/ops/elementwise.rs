//! elementwise kernels (shaders/elementwise.wgsl): launchers, CPU reference, tests.
