//! The distillation driver.
