//! optim kernels (shaders/optim.wgsl): launchers, CPU reference, tests.
