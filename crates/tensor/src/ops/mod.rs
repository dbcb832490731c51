//! One module per kernel family in `shaders/`: launchers, CPU reference, tests.

pub mod fill;
