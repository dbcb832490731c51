//! softmax kernels (shaders/softmax.wgsl): launchers, CPU reference, tests.
