//! Backbones: networks that turn a normalised image batch into a feature map.

pub mod mobilenet_v2;

pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config, TorchLayout};
