//! Heads: what turns a backbone's feature map into the ReID embedding.

pub mod bnneck;

pub use bnneck::{BnNeck, BnNeckConfig};
