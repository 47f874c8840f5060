//! The assembled ReID network: backbone -> global pooling (average or GeM) -> BNNeck -> L2
//! normalisation.
//! Its configuration is a small serialisable value that travels inside the weight file (the
//! model card), so a file always brings the shape and the preprocessing it needs.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::backbone::{MobileNetV2, MobileNetV2Config};
use crate::head::{BnNeck, BnNeckConfig, Gem};
use crate::InputSpec;

/// Which backbone a network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// MobileNetV2 1.0, torchvision layout, 1280-d output.
    MobileNetV2,
}

/// How the backbone's feature map becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Global average pooling.
    #[default]
    Avg,
    /// Generalised-mean pooling with a learned exponent ([`Gem`]).
    Gem,
}

/// How to build a network and feed it: serialised into every weight file we write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReidNetConfig {
    /// The feature extractor.
    pub backbone: BackboneKind,
    /// The global pooling (files written before it existed pool by average).
    #[serde(default)]
    pub pooling: Pooling,
    /// Input size and normalisation.
    pub input: InputSpec,
}

impl Default for ReidNetConfig {
    fn default() -> Self {
        Self {
            backbone: BackboneKind::MobileNetV2,
            pooling: Pooling::Avg,
            input: InputSpec::default(),
        }
    }
}

/// Backbone + pooling + BNNeck.
#[derive(Module, Debug)]
pub struct ReidNet {
    /// Image batch to feature map.
    pub backbone: MobileNetV2,
    /// GeM pooling; average pooling when absent.
    pub gem: Option<Gem>,
    /// Pooled feature to embedding.
    pub neck: BnNeck,
}

/// What the network gives for a batch.
#[derive(Debug, Clone)]
pub struct ReidOutput {
    /// Globally pooled backbone features, `[batch, channels]` (where a triplet loss acts).
    pub pooled: Tensor<2>,
    /// BNNeck output, L2-normalised: the embedding used for retrieval, `[batch, channels]`.
    pub embedding: Tensor<2>,
}

impl ReidNetConfig {
    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> ReidNet {
        let backbone = match self.backbone {
            BackboneKind::MobileNetV2 => MobileNetV2Config::new().init(device),
        };
        let neck = BnNeckConfig::new(backbone.out_channels()).init(device);
        let gem = (self.pooling == Pooling::Gem).then(|| Gem::new(3.0, device));
        ReidNet {
            backbone,
            gem,
            neck,
        }
    }
}

impl ReidNet {
    /// `[batch, 3, h, w]` normalised images to pooled features and embeddings.
    pub fn forward(&self, images: Tensor<4>) -> ReidOutput {
        let pooled = self.pooled(images);
        let embedding = l2_normalize(self.neck.forward(pooled.clone()));
        ReidOutput { pooled, embedding }
    }

    /// `[batch, 3, h, w]` normalised images to globally pooled backbone features
    /// `[batch, channels]`, before the neck (what training's triplet loss sees).
    pub fn pooled(&self, images: Tensor<4>) -> Tensor<2> {
        let map = self.backbone.forward(images);
        if let Some(gem) = &self.gem {
            return gem.forward(map);
        }
        let [batch, channels, _, _] = map.dims();
        map.mean_dim(3).mean_dim(2).reshape([batch, channels])
    }

    /// Width of the embedding.
    pub fn embedding_dim(&self) -> usize {
        self.backbone.out_channels()
    }
}

/// Divides each row by its L2 norm (rows of zeros stay zeros).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn embeddings_have_unit_norm_and_the_backbone_width() {
        let device = Device::flex();
        let net = ReidNetConfig::default().init(&device);
        let images = Tensor::<4>::random(
            [2, 3, 64, 32],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let out = net.forward(images);
        assert_eq!(out.embedding.dims(), [2, 1280]);
        let norms: Vec<f32> = out
            .embedding
            .powi_scalar(2)
            .sum_dim(1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        for n in norms {
            assert!((n - 1.0).abs() < 1e-5, "squared norm {n}");
        }
    }

    #[test]
    fn l2_normalize_leaves_zero_rows_at_zero() {
        let device = Device::flex();
        let x = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 3.0, 4.0], [2, 2]),
            &device,
        );
        let v: Vec<f32> = l2_normalize(x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(v, vec![0.0, 0.0, 0.6, 0.8]);
    }
}
