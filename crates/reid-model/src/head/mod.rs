//! Heads: what turns a backbone's feature map into the ReID embedding (pooling, BNNeck), and the
//! training-only identity classifier and class centres.

pub mod bnneck;
pub mod classifier;
pub mod gem;

pub use bnneck::{BnNeck, BnNeckConfig};
pub use classifier::{Centers, Classifier, ClassifierConfig};
pub use gem::Gem;
