//! reduce kernels (shaders/reduce.wgsl): launchers, CPU reference, tests.
