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
//! fast-reid's ResNet (`fastreid/modeling/backbones/resnet.py`) differs in two ways: its stem's
//! max pool has no padding and rounds its output size up (ceil mode), and its AGW and SBS
//! configurations insert non-local blocks (Wang et al. 2018) after the last blocks of stages 2
//! and 3 ([`NonLocal`]).
//!
//! Field names are torchvision's, so state dicts load with a short key table
//! ([`torchreid_key_map`], [`fastreid_key_map`]).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, InstanceNorm, InstanceNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::norm_act::{self, Activation};

/// The shape of a bottleneck ResNet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Blocks per stage (ResNet-50: 3, 4, 6, 3).
    pub layers: [usize; 4],
    /// Stride of the last stage: 2 as in ImageNet classification, 1 for ReID.
    pub last_stride: usize,
    /// IBN-a blocks in the first three stages.
    pub ibn_a: bool,
    /// The stem's max pool (files written before it existed: torchvision's).
    #[serde(default)]
    pub stem_pool: StemPool,
    /// Non-local blocks after the last blocks of each stage (fast-reid's ResNet-50 with
    /// non-local: 0, 2, 3, 0).
    #[serde(default, skip_serializing_if = "no_non_local")]
    pub non_local: [usize; 4],
}

fn no_non_local(counts: &[usize; 4]) -> bool {
    counts.iter().all(|&n| n == 0)
}

/// The stem's 3x3, stride-2 max pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StemPool {
    /// Padding 1, output size rounded down (torchvision, torchreid).
    #[default]
    Padded,
    /// No padding, output size rounded up (fast-reid's `ceil_mode=True`).
    Ceil,
}

impl ResNetConfig {
    /// ResNet-50 with the given last stride.
    pub fn resnet50(last_stride: usize, ibn_a: bool) -> Self {
        Self {
            layers: [3, 4, 6, 3],
            last_stride,
            ibn_a,
            stem_pool: StemPool::Padded,
            non_local: [0; 4],
        }
    }

    /// fast-reid's ResNet-50 (its stem pool; last stride 1 in every ReID configuration), with
    /// non-local blocks after stages 2 and 3 when `non_local` (AGW, SBS).
    pub fn fastreid_resnet50(ibn_a: bool, non_local: bool) -> Self {
        Self {
            stem_pool: StemPool::Ceil,
            non_local: if non_local { [0, 2, 3, 0] } else { [0; 4] },
            ..Self::resnet50(1, ibn_a)
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
        let pool = MaxPool2dConfig::new([3, 3]).with_strides([2, 2]);
        let maxpool = match self.stem_pool {
            StemPool::Padded => pool.with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)),
            StemPool::Ceil => pool.with_ceil_mode(true),
        }
        .init();
        let non_local = (0..4)
            .map(|i| {
                (0..self.non_local[i])
                    .map(|_| NonLocal::new(256 << i, device))
                    .collect()
            })
            .collect();
        ResNet {
            conv1: conv([3, 64], 7, 2, device),
            bn1: BatchNormConfig::new(64).init(device),
            maxpool,
            layer1,
            layer2,
            layer3,
            layer4,
            non_local,
        }
    }
}

/// fast-reid's non-local block (`fastreid/layers/non_local.py`, the dot-product form): `x + BN(W(f(x) g(x)))` with `f = theta(x)^T phi(x) / N` over the `N`
/// positions. fast-reid's reduction computes `reduc_ratio // reduc_ratio`, so its inner width
/// is 1 channel; ours is whatever the weights say.
#[derive(Module, Debug)]
pub struct NonLocal {
    /// 1x1 to the inner width (with bias).
    pub g: Conv2d,
    /// 1x1 to the inner width (with bias).
    pub theta: Conv2d,
    /// 1x1 to the inner width (with bias).
    pub phi: Conv2d,
    /// 1x1 back to the block's width (fast-reid: `W.0`).
    pub w_conv: Conv2d,
    /// Its BatchNorm (`W.1`, initialised to zero so a new block is the identity).
    pub w_bn: BatchNorm,
}

impl NonLocal {
    fn new(channels: usize, device: &Device) -> Self {
        let inner = 1;
        let one = |from, to| Conv2dConfig::new([from, to], [1, 1]).init(device);
        let mut w_bn = BatchNormConfig::new(channels).init(device);
        w_bn.gamma = Param::from_tensor(Tensor::zeros([channels], device));
        Self {
            g: one(channels, inner),
            theta: one(channels, inner),
            phi: one(channels, inner),
            w_conv: one(inner, channels),
            w_bn,
        }
    }

    /// `[batch, channels, h, w]` to the same shape. The product is taken as
    /// `theta (phi^T g) / N`, the same value as fast-reid's `(theta phi^T / N) g` without the
    /// `N x N` matrix.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [batch, _, h, w] = x.dims();
        let n = h * w;
        let inner = self.g.weight.dims()[0];
        let flat = |conv: &Conv2d| conv.forward(x.clone()).reshape([batch, inner, n]);
        let g = flat(&self.g).swap_dims(1, 2); // [batch, n, inner]
        let theta = flat(&self.theta).swap_dims(1, 2); // [batch, n, inner]
        let phi = flat(&self.phi); // [batch, inner, n]
        let y = theta.matmul(phi.matmul(g)) / n as f32; // [batch, n, inner]
        let y = y.swap_dims(1, 2).reshape([batch, inner, h, w]);
        self.w_bn.forward(self.w_conv.forward(y)) + x
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
            (Some(bn), _) => norm_act::forward(bn, y, Activation::Relu),
            (None, Some(ibn)) => relu(ibn.forward(y)),
            (None, None) => relu(y),
        };
        let y = norm_act::forward(&self.bn2, self.conv2.forward(y), Activation::Relu);
        let y = norm_act::forward(&self.bn3, self.conv3.forward(y), Activation::Linear);
        let identity = match &self.downsample {
            Some(d) => norm_act::forward(&d.bn, d.conv.forward(x), Activation::Linear),
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
    /// Per stage, the non-local blocks after its last blocks (fast-reid: `NL_1` .. `NL_4`).
    pub non_local: Vec<Vec<NonLocal>>,
}

impl ResNet {
    /// `[batch, 3, h, w] -> [batch, 2048, h / 32, w / 32]` (`h / 16` with a last stride of 1).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = norm_act::forward(&self.bn1, self.conv1.forward(x), Activation::Relu);
        let mut x = self.maxpool.forward(x);
        let stages = [&self.layer1, &self.layer2, &self.layer3, &self.layer4];
        for (i, blocks) in stages.into_iter().enumerate() {
            // fast-reid puts stage i's k non-local blocks after its last k blocks, in order.
            let non_local = self.non_local.get(i).map_or(&[][..], Vec::as_slice);
            let first_nl = blocks.len().saturating_sub(non_local.len());
            for (b, block) in blocks.iter().enumerate() {
                x = block.forward(x);
                if let Some(nl) = b.checked_sub(first_nl).and_then(|k| non_local.get(k)) {
                    x = nl.forward(x);
                }
            }
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

/// Key remapping from fast-reid's Baseline state dict (`backbone.` + its ResNet's names) to
/// our parameter names under `prefix`, as regex pairs applied in order.
pub fn fastreid_key_map(prefix: &str) -> Vec<(String, String)> {
    let mut map = vec![
        (r"^backbone\.".to_string(), String::new()),
        (
            r"^(NL_\d\.\d+)\.W\.0\.".to_string(),
            "$1.w_conv.".to_string(),
        ),
        (r"^(NL_\d\.\d+)\.W\.1\.".to_string(), "$1.w_bn.".to_string()),
    ];
    map.extend((1..=4).map(|stage| {
        (
            format!(r"^NL_{stage}\."),
            format!("{prefix}non_local.{}.", stage - 1),
        )
    }));
    map.extend(torchreid_key_map(prefix));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_last_stride_of_one_keeps_a_16x8_map() {
        let device = Device::flex();
        let small = ResNetConfig {
            layers: [1, 1, 1, 1],
            ..ResNetConfig::resnet50(1, true)
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
    fn fastreids_stem_pool_rounds_up_and_a_new_non_local_block_is_the_identity() {
        let device = Device::flex();
        let net = ResNetConfig {
            layers: [1, 1, 1, 1],
            ..ResNetConfig::fastreid_resnet50(false, false)
        }
        .init(&device);
        // No padding, rounded up: ceil((131 - 3) / 2) + 1 = 65 rows (torchvision's padded pool
        // gives 66) and ceil((64 - 3) / 2) + 1 = 32 columns.
        let pooled = net
            .maxpool
            .forward(Tensor::zeros([1, 64, 131, 64], &device));
        assert_eq!(pooled.dims(), [1, 64, 65, 32]);
        let block = NonLocal::new(8, &device);
        let x = Tensor::<4>::random(
            [2, 8, 5, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let y: Vec<f32> = block.forward(x.clone()).into_data().try_to_vec().unwrap();
        assert_eq!(y, x.into_data().try_to_vec::<f32>().unwrap());
    }

    #[test]
    fn parameter_counts_match_torchvision() {
        // torchvision's resnet50 without `fc`: 23,508,032 parameters and 26,560 BatchNorm
        // channels (a running mean and variance each, which burn counts too).
        let net = ResNetConfig::resnet50(2, false).init(&Device::flex());
        assert_eq!(net.num_params(), 23_508_032 + 2 * 26_560);
    }
}
