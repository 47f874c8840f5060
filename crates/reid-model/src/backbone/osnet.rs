//! OSNet, the omni-scale network (Zhou et al. ICCV 2019), in torchreid's layout
//! (`torchreid/reid/models/osnet.py`, widths x1.0, x0.75, x0.5, x0.25; BatchNorm everywhere),
//! and OSNet-AIN (Zhou et al. TPAMI 2021, `osnet_ain.py`), the same network with instance
//! normalisation where its architecture search put it: in the stem, and inside the residual
//! branch of the first two blocks of stage 1, the second of stage 2 and the first of stage 3
//! (whose last 1x1 projection then has no BatchNorm). It generalises better to unseen domains.
//!
//! A 7x7 stem (stride 2) and a 3x3 max pool, three stages of two omni-scale blocks (the first two
//! stages end in a 1x1 conv and a 2x2 average pool), and a 1x1 conv: output stride 16, so a
//! 256x128 crop gives a 16x8 map. Each block runs four streams of 1, 2, 3 and 4 lightweight 3x3
//! convolutions (1x1 then depthwise 3x3) over a quarter of its channels, mixes them with one
//! shared channel gate, projects back and adds the (projected) input.
//!
//! The parameter names are torchreid's, so its state dicts load with a short key table
//! ([`torchreid_key_map`]); torchreid's `fc` embedding layer lives in the assembled network
//! ([`crate::head::FcEmbed`]).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, InstanceNorm, InstanceNormConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::depthwise;
use super::norm_act::{self, Activation};

/// The widths torchreid names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsNetWidth {
    /// `osnet_x1_0`: channels 64, 256, 384, 512.
    #[serde(rename = "x1_0")]
    X1_0,
    /// `osnet_x0_75`: channels 48, 192, 288, 384.
    #[serde(rename = "x0_75")]
    X0_75,
    /// `osnet_x0_5`: channels 32, 128, 192, 256.
    #[serde(rename = "x0_5")]
    X0_5,
    /// `osnet_x0_25`: channels 16, 64, 96, 128.
    #[serde(rename = "x0_25")]
    X0_25,
}

impl OsNetWidth {
    /// Channels after the stem and after each of the three stages.
    pub fn channels(self) -> [usize; 4] {
        match self {
            Self::X1_0 => [64, 256, 384, 512],
            Self::X0_75 => [48, 192, 288, 384],
            Self::X0_5 => [32, 128, 192, 256],
            Self::X0_25 => [16, 64, 96, 128],
        }
    }

    /// torchreid's name of the network at this width.
    pub fn torchreid_name(self) -> &'static str {
        match self {
            Self::X1_0 => "osnet_x1_0",
            Self::X0_75 => "osnet_x0_75",
            Self::X0_5 => "osnet_x0_5",
            Self::X0_25 => "osnet_x0_25",
        }
    }
}

fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    groups: usize,
    device: &Device,
) -> Conv2d {
    let pad = (kernel - 1) / 2;
    Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// A convolution without bias, a BatchNorm or an affine InstanceNorm (or neither), with or
/// without ReLU (torchreid's `ConvLayer`, `Conv1x1` and `Conv1x1Linear`).
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its BatchNorm.
    pub bn: Option<BatchNorm>,
    /// Its InstanceNorm, in OSNet-AIN's stem.
    pub inorm: Option<InstanceNorm>,
    /// Whether ReLU follows.
    pub relu: bool,
}

/// The normalisation after a [`ConvBn`]'s convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Norm {
    Batch,
    Instance,
    None,
}

impl ConvBn {
    fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        relu: bool,
        device: &Device,
    ) -> Self {
        Self::with_norm(channels, kernel, stride, relu, Norm::Batch, device)
    }

    fn with_norm(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        relu: bool,
        norm: Norm,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(channels, kernel, stride, 1, device),
            bn: (norm == Norm::Batch).then(|| BatchNormConfig::new(channels[1]).init(device)),
            inorm: (norm == Norm::Instance)
                .then(|| InstanceNormConfig::new(channels[1]).init(device)),
            relu,
        }
    }

    /// `[batch, in, h, w] -> [batch, out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.conv.forward(x);
        if let Some(bn) = &self.bn {
            let activation = if self.relu {
                Activation::Relu
            } else {
                Activation::Linear
            };
            return norm_act::forward(bn, x, activation);
        }
        if let Some(inorm) = &self.inorm {
            x = inorm.forward(x);
        }
        if self.relu {
            relu(x)
        } else {
            x
        }
    }
}

/// torchreid's `LightConv3x3`: 1x1 convolution (linear), depthwise 3x3, BatchNorm, ReLU.
#[derive(Module, Debug)]
pub struct LightConv3x3 {
    /// Pointwise, no bias, no normalisation.
    pub conv1: Conv2d,
    /// Depthwise 3x3.
    pub conv2: Conv2d,
    /// BatchNorm after the depthwise convolution.
    pub bn: BatchNorm,
}

impl LightConv3x3 {
    fn new(channels: usize, device: &Device) -> Self {
        Self {
            conv1: conv([channels, channels], 1, 1, 1, device),
            conv2: conv([channels, channels], 3, 1, channels, device),
            bn: BatchNormConfig::new(channels).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = depthwise::forward(&self.conv2, self.conv1.forward(x));
        norm_act::forward(&self.bn, x, Activation::Relu)
    }
}

/// torchreid's `ChannelGate`: global average pool, 1x1 conv to a sixteenth of the channels,
/// ReLU, 1x1 conv back, sigmoid; the input scaled channel by channel.
#[derive(Module, Debug)]
pub struct ChannelGate {
    /// Squeeze (with bias).
    pub fc1: Conv2d,
    /// Excite (with bias).
    pub fc2: Conv2d,
}

impl ChannelGate {
    fn new(channels: usize, device: &Device) -> Self {
        let hidden = (channels / 16).max(1);
        Self {
            fc1: Conv2dConfig::new([channels, hidden], [1, 1]).init(device),
            fc2: Conv2dConfig::new([hidden, channels], [1, 1]).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [batch, channels, _, _] = x.dims();
        let pooled = x.clone().mean_dim(3).mean_dim(2);
        let gate = sigmoid(self.fc2.forward(relu(self.fc1.forward(pooled))));
        x * gate.reshape([batch, channels, 1, 1])
    }
}

/// torchreid's `OSBlock`: four streams of 1..4 lightweight convolutions behind a 1x1 reduction,
/// one shared gate, a linear 1x1 projection, and the (projected) input added before a ReLU.
#[derive(Module, Debug)]
pub struct OsBlock {
    /// 1x1 to a quarter of the output channels.
    pub conv1: ConvBn,
    /// One lightweight convolution (receptive field 3).
    pub conv2a: LightConv3x3,
    /// Two in a row (5).
    pub conv2b: Vec<LightConv3x3>,
    /// Three (7).
    pub conv2c: Vec<LightConv3x3>,
    /// Four (9).
    pub conv2d: Vec<LightConv3x3>,
    /// The gate shared by the four streams.
    pub gate: ChannelGate,
    /// Linear 1x1 projection to the output channels (without BatchNorm in OSNet-AIN's
    /// instance-normalised blocks).
    pub conv3: ConvBn,
    /// OSNet-AIN's affine InstanceNorm of the projection, before the input is added
    /// (torchreid's `OSBlockINin.IN`).
    pub inorm: Option<InstanceNorm>,
    /// Linear 1x1 projection of the input when the widths differ.
    pub downsample: Option<ConvBn>,
}

impl OsBlock {
    fn new(inp: usize, out: usize, instance_norm: bool, device: &Device) -> Self {
        let mid = out / 4;
        let conv3_norm = if instance_norm {
            Norm::None
        } else {
            Norm::Batch
        };
        let stream = |n: usize| (0..n).map(|_| LightConv3x3::new(mid, device)).collect();
        Self {
            conv1: ConvBn::new([inp, mid], 1, 1, true, device),
            conv2a: LightConv3x3::new(mid, device),
            conv2b: stream(2),
            conv2c: stream(3),
            conv2d: stream(4),
            gate: ChannelGate::new(mid, device),
            conv3: ConvBn::with_norm([mid, out], 1, 1, false, conv3_norm, device),
            inorm: instance_norm.then(|| InstanceNormConfig::new(out).init(device)),
            downsample: (inp != out).then(|| ConvBn::new([inp, out], 1, 1, false, device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x1 = self.conv1.forward(x.clone());
        let chain =
            |layers: &[LightConv3x3]| layers.iter().fold(x1.clone(), |y, layer| layer.forward(y));
        let x2 = self.gate.forward(self.conv2a.forward(x1.clone()))
            + self.gate.forward(chain(&self.conv2b))
            + self.gate.forward(chain(&self.conv2c))
            + self.gate.forward(chain(&self.conv2d));
        let mut x3 = self.conv3.forward(x2);
        if let Some(inorm) = &self.inorm {
            x3 = inorm.forward(x3);
        }
        let identity = match &self.downsample {
            Some(downsample) => downsample.forward(x),
            None => x,
        };
        relu(x3 + identity)
    }
}

/// Two omni-scale blocks and, in the first two stages, a 1x1 conv and a 2x2 average pool.
#[derive(Module, Debug)]
pub struct OsStage {
    /// The blocks (torchreid: `convN.0`, `convN.1`).
    pub blocks: Vec<OsBlock>,
    /// The transition (torchreid: `convN.2.0`), absent in the last stage.
    pub transition: Option<ConvBn>,
    /// The 2x2 average pool after the transition.
    pub pool: Option<AvgPool2d>,
}

impl OsStage {
    fn new(
        inp: usize,
        out: usize,
        reduce: bool,
        instance_norm: [bool; 2],
        device: &Device,
    ) -> Self {
        Self {
            blocks: vec![
                OsBlock::new(inp, out, instance_norm[0], device),
                OsBlock::new(out, out, instance_norm[1], device),
            ],
            transition: reduce.then(|| ConvBn::new([out, out], 1, 1, true, device)),
            pool: reduce.then(|| AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init()),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.blocks.iter().fold(x, |x, block| block.forward(x));
        if let Some(transition) = &self.transition {
            x = transition.forward(x);
        }
        match &self.pool {
            Some(pool) => pool.forward(x),
            None => x,
        }
    }
}

/// OSNet's feature extractor (torchreid's `featuremaps`).
#[derive(Module, Debug)]
pub struct OsNet {
    /// 7x7 conv, stride 2, 3 -> channels[0].
    pub conv1: ConvBn,
    /// 3x3 max pool, stride 2.
    pub maxpool: MaxPool2d,
    /// Stage 1 (with transition).
    pub conv2: OsStage,
    /// Stage 2 (with transition).
    pub conv3: OsStage,
    /// Stage 3.
    pub conv4: OsStage,
    /// Final 1x1 conv.
    pub conv5: ConvBn,
}

impl OsNet {
    /// Builds OSNet at `width` with freshly initialised weights on `device`.
    pub fn new(width: OsNetWidth, device: &Device) -> Self {
        Self::build(width, false, device)
    }

    /// Builds OSNet-AIN at `width` (torchreid's `osnet_ain_*`).
    pub fn ain(width: OsNetWidth, device: &Device) -> Self {
        Self::build(width, true, device)
    }

    fn build(width: OsNetWidth, ain: bool, device: &Device) -> Self {
        let c = width.channels();
        // Which blocks of each stage normalise by instance (osnet_ain_x1_0's `blocks`).
        let ins = |stage: [bool; 2]| if ain { stage } else { [false; 2] };
        let stem_norm = if ain { Norm::Instance } else { Norm::Batch };
        Self {
            conv1: ConvBn::with_norm([3, c[0]], 7, 2, true, stem_norm, device),
            maxpool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            conv2: OsStage::new(c[0], c[1], true, ins([true, true]), device),
            conv3: OsStage::new(c[1], c[2], true, ins([false, true]), device),
            conv4: OsStage::new(c[2], c[3], false, ins([true, false]), device),
            conv5: ConvBn::new([c[3], c[3]], 1, 1, true, device),
        }
    }

    /// `[batch, 3, h, w] -> [batch, channels[3], h / 16, w / 16]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.maxpool.forward(self.conv1.forward(x));
        let x = self.conv2.forward(x);
        let x = self.conv3.forward(x);
        let x = self.conv4.forward(x);
        self.conv5.forward(x)
    }

    /// Number of output channels.
    pub fn out_channels(&self) -> usize {
        self.conv5.conv.weight.dims()[0]
    }
}

/// Key remapping from torchreid's OSNet state dict to our parameter names under `prefix`, as
/// regex pairs. Everything but the stages' block lists and transitions already has
/// torchreid's name.
pub fn torchreid_key_map(prefix: &str) -> Vec<(String, String)> {
    vec![
        (
            r"^(conv[23])\.2\.0\.".to_string(),
            format!("{prefix}$1.transition."),
        ),
        (
            r"^(conv[234])\.([01])\.".to_string(),
            format!("{prefix}$1.blocks.$2."),
        ),
        (r"^(conv[15])\.".to_string(), format!("{prefix}$1.")),
    ]
}

/// [`torchreid_key_map`] for OSNet-AIN, whose streams are lists (`conv2.T.layers.K`), whose
/// transitions are `pool2.0` and `pool3.0`, and whose instance norms are named `IN` (and `bn` in
/// the stem).
pub fn torchreid_ain_key_map(prefix: &str) -> Vec<(String, String)> {
    let mut map: Vec<(String, String)> = vec![
        (
            r"^pool([23])\.0\.".into(),
            format!("{prefix}conv$1.transition."),
        ),
        (r"\.conv2\.0\.layers\.0\.".into(), ".conv2a.".into()),
        (r"\.conv2\.1\.layers\.".into(), ".conv2b.".into()),
        (r"\.conv2\.2\.layers\.".into(), ".conv2c.".into()),
        (r"\.conv2\.3\.layers\.".into(), ".conv2d.".into()),
        // burn-store's PyTorch adapter renames weight/bias of BatchNorm only.
        (r"\.IN\.weight$".into(), ".inorm.gamma".into()),
        (r"\.IN\.bias$".into(), ".inorm.beta".into()),
        (r"^conv1\.bn\.weight$".into(), "conv1.inorm.gamma".into()),
        (r"^conv1\.bn\.bias$".into(), "conv1.inorm.beta".into()),
    ];
    map.extend(torchreid_key_map(prefix));
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_256x128_crop_gives_a_16x8_map() {
        let device = Device::flex();
        let net = OsNet::new(OsNetWidth::X0_25, &device);
        let out = net.forward(Tensor::zeros([1, 3, 256, 128], &device));
        assert_eq!(out.dims(), [1, 128, 16, 8]);
    }

    #[test]
    fn parameter_counts_match_torchreid() {
        // The parameters of torchreid 0.2.5's networks without `fc` and `classifier`, plus their
        // BatchNorm running means and variances, which burn counts too.
        let device = Device::flex();
        for (width, params, running) in [
            (OsNetWidth::X1_0, 1_905_828, 22_016),
            (OsNetWidth::X0_75, 1_087_610, 16_512),
            (OsNetWidth::X0_5, 497_426, 11_008),
            (OsNetWidth::X0_25, 134_792, 5_504),
        ] {
            let net = OsNet::new(width, &device);
            assert_eq!(net.num_params(), params + running, "{width:?}");
        }
        // OSNet-AIN x1.0: its InstanceNorms have no running statistics, and five projections
        // lose their BatchNorm.
        let ain = OsNet::ain(OsNetWidth::X1_0, &device);
        assert_eq!(ain.num_params(), AIN_X1_0_PARAMS + AIN_X1_0_RUNNING);
    }

    /// torchreid 0.2.5's osnet_ain_x1_0 without `fc` and `classifier`, and its BatchNorm
    /// channels twice (a running mean and variance each).
    const AIN_X1_0_PARAMS: usize = 1_905_828;
    const AIN_X1_0_RUNNING: usize = 2 * 9_536;
}
