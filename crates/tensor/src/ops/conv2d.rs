//! conv2d kernels (shaders/conv2d.wgsl): launchers, CPU reference, tests.
