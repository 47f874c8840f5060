//! The assembled ReID network: backbone -> global pooling (average or GeM) -> optional embedding
//! layer (Linear, BatchNorm1d, ReLU) -> BNNeck -> L2 normalisation.
//! Its configuration is a small serialisable value that travels inside the weight file (the
//! model card), so a file always brings the shape and the preprocessing it needs.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::backbone::{MobileNetV2, MobileNetV2Config, OsNet, OsNetWidth, ResNet, ResNetConfig};
use crate::head::{BnNeck, BnNeckConfig, FcEmbed, Gem};
use crate::InputSpec;

/// Which backbone a network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    /// MobileNetV2 1.0, torchvision layout, 1280-d output.
    #[serde(alias = "mobilenet_v2")]
    MobileNetV2,
    /// torchreid's `mobilenetv2_x1_0`: MobileNetV2 1.0 whose first block keeps a 1x1
    /// expansion, 1280-d output.
    #[serde(rename = "mobilenetv2_x1_0")]
    MobileNetV2Torchreid,
    /// OSNet x1.0, torchreid layout, 512-d output.
    #[serde(rename = "osnet_x1_0")]
    OsNetX1_0,
    /// OSNet x0.75, 384-d output.
    #[serde(rename = "osnet_x0_75")]
    OsNetX0_75,
    /// OSNet x0.5, 256-d output.
    #[serde(rename = "osnet_x0_5")]
    OsNetX0_5,
    /// OSNet x0.25, 128-d output.
    #[serde(rename = "osnet_x0_25")]
    OsNetX0_25,
    /// OSNet-AIN x1.0 (instance normalisation in the stem and in five blocks), 512-d output.
    #[serde(rename = "osnet_ain_x1_0")]
    OsNetAinX1_0,
    /// OSNet-AIN x0.75, 384-d output.
    #[serde(rename = "osnet_ain_x0_75")]
    OsNetAinX0_75,
    /// OSNet-AIN x0.5, 256-d output.
    #[serde(rename = "osnet_ain_x0_5")]
    OsNetAinX0_5,
    /// OSNet-AIN x0.25, 128-d output.
    #[serde(rename = "osnet_ain_x0_25")]
    OsNetAinX0_25,
    /// A bottleneck ResNet (ResNet-50: 3, 4, 6, 3 blocks), torchvision layout, 2048-d output.
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
}

impl BackboneKind {
    /// The OSNet width, for the OSNet and OSNet-AIN kinds.
    pub fn osnet_width(self) -> Option<OsNetWidth> {
        match self {
            Self::MobileNetV2 | Self::MobileNetV2Torchreid | Self::ResNet(_) => None,
            Self::OsNetX1_0 | Self::OsNetAinX1_0 => Some(OsNetWidth::X1_0),
            Self::OsNetX0_75 | Self::OsNetAinX0_75 => Some(OsNetWidth::X0_75),
            Self::OsNetX0_5 | Self::OsNetAinX0_5 => Some(OsNetWidth::X0_5),
            Self::OsNetX0_25 | Self::OsNetAinX0_25 => Some(OsNetWidth::X0_25),
        }
    }

    /// Whether the kind is an OSNet-AIN.
    pub fn is_osnet_ain(self) -> bool {
        matches!(
            self,
            Self::OsNetAinX1_0 | Self::OsNetAinX0_75 | Self::OsNetAinX0_5 | Self::OsNetAinX0_25
        )
    }

    /// The network's name for people.
    pub fn label(self) -> String {
        match self {
            Self::MobileNetV2 => "MobileNetV2".into(),
            Self::MobileNetV2Torchreid => "MobileNetV2 (torchreid's)".into(),
            Self::OsNetX1_0 => "OSNet x1.0".into(),
            Self::OsNetX0_75 => "OSNet x0.75".into(),
            Self::OsNetX0_5 => "OSNet x0.5".into(),
            Self::OsNetX0_25 => "OSNet x0.25".into(),
            Self::OsNetAinX1_0 => "OSNet-AIN x1.0".into(),
            Self::OsNetAinX0_75 => "OSNet-AIN x0.75".into(),
            Self::OsNetAinX0_5 => "OSNet-AIN x0.5".into(),
            Self::OsNetAinX0_25 => "OSNet-AIN x0.25".into(),
            Self::ResNet(c) => {
                let depth = 3 * c.layers.iter().sum::<usize>() + 2;
                let ibn = if c.ibn_a { "-IBN-a" } else { "" };
                let stride = if c.last_stride == 1 {
                    ", last stride 1"
                } else {
                    ""
                };
                let non_local = if c.non_local.iter().any(|&n| n > 0) {
                    ", non-local"
                } else {
                    ""
                };
                format!("ResNet-{depth}{ibn}{stride}{non_local}")
            }
        }
    }

    /// The OSNet kind of a width.
    pub fn osnet(width: OsNetWidth) -> Self {
        match width {
            OsNetWidth::X1_0 => Self::OsNetX1_0,
            OsNetWidth::X0_75 => Self::OsNetX0_75,
            OsNetWidth::X0_5 => Self::OsNetX0_5,
            OsNetWidth::X0_25 => Self::OsNetX0_25,
        }
    }

    /// The OSNet-AIN kind of a width.
    pub fn osnet_ain(width: OsNetWidth) -> Self {
        match width {
            OsNetWidth::X1_0 => Self::OsNetAinX1_0,
            OsNetWidth::X0_75 => Self::OsNetAinX0_75,
            OsNetWidth::X0_5 => Self::OsNetAinX0_5,
            OsNetWidth::X0_25 => Self::OsNetAinX0_25,
        }
    }
}

/// A backbone network. Stored files name the variant in their keys
/// (`backbone.MobileNetV2.stem...`); files written before OSNet existed lack it and are read by
/// matching paths without variant names ([`crate::weights::from_burnpack_bytes`]).
// One per network, never in a collection: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Backbone {
    /// MobileNetV2 (output stride 32).
    MobileNetV2(MobileNetV2),
    /// OSNet (output stride 16).
    OsNet(OsNet),
    /// A bottleneck ResNet (output stride 32, or 16 with a last stride of 1).
    ResNet(ResNet),
}

impl Backbone {
    /// `[batch, 3, h, w]` to the feature map.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::MobileNetV2(net) => net.forward(x),
            Self::OsNet(net) => net.forward(x),
            Self::ResNet(net) => net.forward(x),
        }
    }

    /// Channels of the feature map.
    pub fn out_channels(&self) -> usize {
        match self {
            Self::MobileNetV2(net) => net.out_channels(),
            Self::OsNet(net) => net.out_channels(),
            Self::ResNet(net) => net.out_channels(),
        }
    }
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
    /// Width of an embedding layer (Linear, BatchNorm1d, ReLU) after pooling, as torchreid's
    /// OSNet has (`fc_dims`); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fc: Option<usize>,
    /// Input size and normalisation.
    pub input: InputSpec,
}

impl Default for ReidNetConfig {
    fn default() -> Self {
        Self {
            backbone: BackboneKind::MobileNetV2,
            pooling: Pooling::Avg,
            fc: None,
            input: InputSpec::default(),
        }
    }
}

/// Backbone + pooling + embedding layer + BNNeck.
#[derive(Module, Debug)]
pub struct ReidNet {
    /// Image batch to feature map.
    pub backbone: Backbone,
    /// GeM pooling; average pooling when absent.
    pub gem: Option<Gem>,
    /// The embedding layer after pooling, when the configuration has one.
    pub fc: Option<FcEmbed>,
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
            BackboneKind::MobileNetV2 => {
                Backbone::MobileNetV2(MobileNetV2Config::new().init(device))
            }
            BackboneKind::MobileNetV2Torchreid => Backbone::MobileNetV2(
                MobileNetV2Config::new()
                    .with_expand_first(true)
                    .init(device),
            ),
            BackboneKind::ResNet(config) => Backbone::ResNet(config.init(device)),
            kind => {
                let width = kind.osnet_width().expect("every other kind is an OSNet");
                Backbone::OsNet(if kind.is_osnet_ain() {
                    OsNet::ain(width, device)
                } else {
                    OsNet::new(width, device)
                })
            }
        };
        let gem = (self.pooling == Pooling::Gem).then(|| Gem::new(3.0, device));
        let fc = self
            .fc
            .map(|width| FcEmbed::new(backbone.out_channels(), width, device));
        let width = fc
            .as_ref()
            .map_or(backbone.out_channels(), FcEmbed::out_features);
        let neck = BnNeckConfig::new(width).init(device);
        ReidNet {
            backbone,
            gem,
            fc,
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

    /// `[batch, 3, h, w]` normalised images to globally pooled backbone features (through the
    /// embedding layer when there is one) `[batch, channels]`, before the neck: what training's
    /// triplet loss sees, and the feature torchreid evaluates with.
    pub fn pooled(&self, images: Tensor<4>) -> Tensor<2> {
        let map = self.backbone.forward(images);
        let pooled = match &self.gem {
            Some(gem) => gem.forward(map),
            None => {
                let [batch, channels, _, _] = map.dims();
                map.mean_dim(3).mean_dim(2).reshape([batch, channels])
            }
        };
        match &self.fc {
            Some(fc) => fc.forward(pooled),
            None => pooled,
        }
    }

    /// Width of the embedding.
    pub fn embedding_dim(&self) -> usize {
        self.neck.bn.gamma.dims()[0]
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
