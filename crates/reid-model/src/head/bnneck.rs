//! BNNeck (Luo et al. 2019, "Bag of Tricks"): a BatchNorm between the pooled feature (where a
//! triplet loss acts) and the classifier (where the ID loss acts). At inference the feature after
//! the BatchNorm is the embedding. Its bias is frozen at zero in the paper; it is kept as a
//! parameter here so imported necks load unchanged.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

/// BNNeck over a `channels`-wide pooled feature.
#[derive(Config, Debug)]
pub struct BnNeckConfig {
    /// Width of the pooled feature.
    pub channels: usize,
}

/// A BatchNorm over pooled features.
#[derive(Module, Debug)]
pub struct BnNeck {
    /// Normalisation of shape `[channels]` (gamma, beta, running mean and variance).
    pub bn: BatchNorm,
}

impl BnNeckConfig {
    /// A neck whose statistics are the identity (mean 0, variance 1, gamma 1, beta 0).
    pub fn init(&self, device: &Device) -> BnNeck {
        BnNeck {
            bn: BatchNormConfig::new(self.channels).init(device),
        }
    }
}

impl BnNeck {
    /// `[batch, channels] -> [batch, channels]`
    pub fn forward(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.bn.forward(pooled)
    }
}
