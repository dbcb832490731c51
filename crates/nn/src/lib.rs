//! Layers, models, optimizers and checkpoints.
