//! One module per kernel family in `shaders/`: launchers, CPU reference, tests.

pub mod ceiling;
pub mod conv2d;
pub mod dropout;
pub mod elementwise;
pub mod fill;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod maxpool;
pub mod optim;
pub mod reduce;
pub mod softmax;
pub mod texture;
