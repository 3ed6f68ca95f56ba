//! Built-in model architectures with deterministic random weights.

mod resnet18;

pub use resnet18::{ResNet18Config, resnet18};
