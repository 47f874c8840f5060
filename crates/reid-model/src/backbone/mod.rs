//! Backbones: networks that turn a normalised image batch into a feature map.

#[cfg(feature = "cpu-train")]
mod cpu_train;
pub mod depthwise;
pub mod mobilenet_v2;
pub mod norm_act;
pub mod osnet;
pub mod resnet;

pub use mobilenet_v2::{MobileNetV2, MobileNetV2Config, TorchLayout};
pub use osnet::{OsNet, OsNetWidth};
pub use resnet::{ResNet, ResNetConfig};
