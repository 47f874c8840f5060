//! Heads: what turns a backbone's feature map into the ReID embedding (pooling, an embedding layer, BNNeck), and the
//! training-only identity classifier and class centres.

pub mod bnneck;
pub mod classifier;
pub mod fc;
pub mod gem;

pub use bnneck::{BnNeck, BnNeckConfig};
pub use classifier::{Centers, Classifier, ClassifierConfig};
pub use fc::FcEmbed;
pub use gem::Gem;
