//! Heads: what turns a backbone's feature map into the ReID embedding, and the training-only
//! identity classifier and class centres.

pub mod bnneck;
pub mod classifier;

pub use bnneck::{BnNeck, BnNeckConfig};
pub use classifier::{Centers, Classifier, ClassifierConfig};
