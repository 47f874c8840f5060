//! The identity classifier of representation learning: a bias-free linear layer from the
//! (BNNeck-normalised) feature to one logit per training identity, initialised from N(0, 0.001²)
//! as the bag-of-tricks baseline does. It exists only while training: the exported model is the
//! backbone and the neck, so a file's size does not depend on how many people it was trained on.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

/// A classifier over `classes` identities from `channels`-wide features.
#[derive(Config, Debug)]
pub struct ClassifierConfig {
    /// Width of the feature.
    pub channels: usize,
    /// Number of training identities.
    pub classes: usize,
}

/// `logits = feature · Wᵀ`.
#[derive(Module, Debug)]
pub struct Classifier {
    /// `[classes, channels]`.
    pub weight: Param<Tensor<2>>,
}

impl ClassifierConfig {
    /// Weights drawn from N(0, 0.001²).
    pub fn init(&self, device: &Device) -> Classifier {
        let weight = Tensor::random(
            [self.classes, self.channels],
            Distribution::Normal(0.0, 0.001),
            device,
        );
        Classifier {
            weight: Param::from_tensor(weight),
        }
    }
}

impl Classifier {
    /// `[batch, channels] -> [batch, classes]`
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        features.matmul(self.weight.val().transpose())
    }

    /// Number of identities it tells apart.
    pub fn classes(&self) -> usize {
        self.weight.dims()[0]
    }
}

/// The learnable class centres of the center loss (Wen et al. 2016), `[classes, channels]`,
/// drawn from N(0, 1) as torchreid and the bag-of-tricks code do.
#[derive(Module, Debug)]
pub struct Centers {
    /// One centre per identity.
    pub centers: Param<Tensor<2>>,
}

impl ClassifierConfig {
    /// Class centres for the center loss.
    pub fn init_centers(&self, device: &Device) -> Centers {
        let centers = Tensor::random(
            [self.classes, self.channels],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        Centers {
            centers: Param::from_tensor(centers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_have_one_column_per_identity() {
        let device = Device::flex();
        let head = ClassifierConfig::new(8, 5).init(&device);
        let x = Tensor::<2>::ones([3, 8], &device);
        assert_eq!(head.forward(x).dims(), [3, 5]);
        assert_eq!(head.classes(), 5);
    }
}
