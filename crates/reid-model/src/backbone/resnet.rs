//! ResNet with bottleneck blocks (He et al. 2016) in torchvision's and torchreid's layout
//! (`torchreid/reid/models/resnet.py`, `resnet_ibn_a.py`): a 7x7 stem (stride 2) and a 3x3 max
//! pool, four stages of bottlenecks (1x1, 3x3 carrying the stride, 1x1 to four times the
//! width; a projected shortcut where the shape changes). ResNet-50 has 3, 4, 6 and 3 blocks.
//!
//! Two ReID variants: a last stride of 1 (Luo et al.'s "bag of tricks": the last stage keeps
//! the 16x8 map of a 256x128 crop instead of 8x4), and IBN-a (Pan et al. 2018): in the first
//! three stages, the first BatchNorm of each block normalises half its channels per instance
//! (InstanceNorm, affine) and the other half by batch.
//!
//! Field names are torchvision's, so state dicts load with a short key table
//! ([`torchreid_key_map`]).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, InstanceNorm, InstanceNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// The shape of a bottleneck ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Blocks per stage (ResNet-50: 3, 4, 6, 3).
    pub layers: [usize; 4],
    /// Stride of the last stage: 2 as in ImageNet classification, 1 for ReID.
    pub last_stride: usize,
    /// IBN-a blocks in the first three stages.
    pub ibn_a: bool,
}

impl ResNetConfig {
    /// ResNet-50 with the given last stride.
    pub fn resnet50(last_stride: usize, ibn_a: bool) -> Self {
        Self {
            layers: [3, 4, 6, 3],
            last_stride,
            ibn_a,
        }
    }

    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> ResNet {
        let mut inplanes = 64;
        let mut stage = |i: usize, planes: usize, stride: usize| {
            let ibn = self.ibn_a && i < 3;
            let blocks: Vec<Bottleneck> = (0..self.layers[i])
                .map(|b| {
                    let block = Bottleneck::new(
                        inplanes,
                        planes,
                        if b == 0 { stride } else { 1 },
                        ibn,
                        device,
                    );
                    inplanes = planes * 4;
                    block
                })
                .collect();
            blocks
        };
        let layer1 = stage(0, 64, 1);
        let layer2 = stage(1, 128, 2);
        let layer3 = stage(2, 256, 2);
        let layer4 = stage(3, 512, self.last_stride);
        ResNet {
            conv1: conv([3, 64], 7, 2, device),
            bn1: BatchNormConfig::new(64).init(device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

fn conv(channels: [usize; 2], kernel: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = (kernel - 1) / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// IBN-a's first normalisation: InstanceNorm over the first half of the channels, BatchNorm
/// over the rest (torchreid: `bn1.IN`, `bn1.BN`).
#[derive(Module, Debug)]
pub struct Ibn {
    /// Affine InstanceNorm over `channels / 2` channels.
    pub inorm: InstanceNorm,
    /// BatchNorm over the other channels.
    pub bnorm: BatchNorm,
}

impl Ibn {
    fn new(channels: usize, device: &Device) -> Self {
        let half = channels / 2;
        Self {
            inorm: InstanceNormConfig::new(half).init(device),
            bnorm: BatchNormConfig::new(channels - half).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let channels = x.dims()[1];
        let half = self
            .inorm
            .gamma
            .as_ref()
            .map_or(channels / 2, |g| g.dims()[0]);
        let a = self.inorm.forward(x.clone().narrow(1, 0, half));
        let b = self.bnorm.forward(x.narrow(1, half, channels - half));
        Tensor::cat(vec![a, b], 1)
    }
}

/// A strided 1x1 projection of the shortcut and its BatchNorm (torchvision: `downsample.0`,
/// `downsample.1`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// The projection.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: BatchNorm,
}

/// A bottleneck block: 1x1 reduce, 3x3 (with the stride), 1x1 expand to four times `planes`.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1x1 to `planes`.
    pub conv1: Conv2d,
    /// Its BatchNorm (absent in IBN-a blocks).
    pub bn1: Option<BatchNorm>,
    /// IBN-a's normalisation in its place.
    pub ibn1: Option<Ibn>,
    /// 3x3, carrying the block's stride.
    pub conv2: Conv2d,
    /// Its BatchNorm.
    pub bn2: BatchNorm,
    /// 1x1 to `4 * planes`.
    pub conv3: Conv2d,
    /// Its BatchNorm.
    pub bn3: BatchNorm,
    /// The shortcut's projection where the shape changes.
    pub downsample: Option<Downsample>,
}

impl Bottleneck {
    fn new(inplanes: usize, planes: usize, stride: usize, ibn: bool, device: &Device) -> Self {
        let out = planes * 4;
        Self {
            conv1: conv([inplanes, planes], 1, 1, device),
            bn1: (!ibn).then(|| BatchNormConfig::new(planes).init(device)),
            ibn1: ibn.then(|| Ibn::new(planes, device)),
            conv2: conv([planes, planes], 3, stride, device),
            bn2: BatchNormConfig::new(planes).init(device),
            conv3: conv([planes, out], 1, 1, device),
            bn3: BatchNormConfig::new(out).init(device),
            downsample: (stride != 1 || inplanes != out).then(|| Downsample {
                conv: conv([inplanes, out], 1, stride, device),
                bn: BatchNormConfig::new(out).init(device),
            }),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = self.conv1.forward(x.clone());
        let y = match (&self.bn1, &self.ibn1) {
            (Some(bn), _) => bn.forward(y),
            (None, Some(ibn)) => ibn.forward(y),
            (None, None) => y,
        };
        let y = relu(self.bn2.forward(self.conv2.forward(relu(y))));
        let y = self.bn3.forward(self.conv3.forward(y));
        let identity = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x)),
            None => x,
        };
        relu(y + identity)
    }
}

/// A bottleneck ResNet's feature extractor (torchreid's `featuremaps`).
#[derive(Module, Debug)]
pub struct ResNet {
    /// 7x7 stem, stride 2.
    pub conv1: Conv2d,
    /// Its BatchNorm.
    pub bn1: BatchNorm,
    /// 3x3 max pool, stride 2.
    pub maxpool: MaxPool2d,
    /// Stage 1 (256 channels, stride 1).
    pub layer1: Vec<Bottleneck>,
    /// Stage 2 (512, stride 2).
    pub layer2: Vec<Bottleneck>,
    /// Stage 3 (1024, stride 2).
    pub layer3: Vec<Bottleneck>,
    /// Stage 4 (2048, the last stride).
    pub layer4: Vec<Bottleneck>,
}

impl ResNet {
    /// `[batch, 3, h, w] -> [batch, 2048, h / 32, w / 32]` (`h / 16` with a last stride of 1).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let mut x = self.maxpool.forward(x);
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        x
    }

    /// Number of output channels.
    pub fn out_channels(&self) -> usize {
        self.layer4.last().map_or(2048, |b| b.bn3.gamma.dims()[0])
    }
}

/// Key remapping from torchvision's / torchreid's ResNet state dict to our parameter names
/// under `prefix`, as regex pairs.
pub fn torchreid_key_map(prefix: &str) -> Vec<(String, String)> {
    vec![
        (
            r"^(layer\d\.\d+)\.downsample\.0\.".to_string(),
            format!("{prefix}$1.downsample.conv."),
        ),
        (
            r"^(layer\d\.\d+)\.downsample\.1\.".to_string(),
            format!("{prefix}$1.downsample.bn."),
        ),
        // burn-store's PyTorch adapter renames weight/bias of BatchNorm only.
        (
            r"^(layer\d\.\d+)\.bn1\.IN\.weight$".to_string(),
            format!("{prefix}$1.ibn1.inorm.gamma"),
        ),
        (
            r"^(layer\d\.\d+)\.bn1\.IN\.bias$".to_string(),
            format!("{prefix}$1.ibn1.inorm.beta"),
        ),
        (
            r"^(layer\d\.\d+)\.bn1\.BN\.".to_string(),
            format!("{prefix}$1.ibn1.bnorm."),
        ),
        (
            r"^(conv1|bn1|layer\d)\.".to_string(),
            format!("{prefix}$1."),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_stride_of_one_keeps_a_16x8_map() {
        let device = Device::flex();
        let small = ResNetConfig {
            layers: [1, 1, 1, 1],
            last_stride: 1,
            ibn_a: true,
        };
        let net = small.init(&device);
        let out = net.forward(Tensor::zeros([1, 3, 256, 128], &device));
        assert_eq!(out.dims(), [1, 2048, 16, 8]);
        let net = ResNetConfig {
            last_stride: 2,
            ..small
        }
        .init(&device);
        let out = net.forward(Tensor::zeros([1, 3, 256, 128], &device));
        assert_eq!(out.dims(), [1, 2048, 8, 4]);
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        // torchvision's resnet50 without `fc`: 23,508,032 parameters and 26,560 BatchNorm
        // channels (a running mean and variance each, which burn counts too).
        let net = ResNetConfig::resnet50(2, false).init(&Device::flex());
        assert_eq!(net.num_params(), 23_508_032 + 2 * 26_560);
    }
}
