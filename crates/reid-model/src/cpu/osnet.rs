//! OSNet folded for the CPU (torchreid's `osnet_x1_0` to `osnet_x0_25`, BatchNorm throughout):
//! the 7x7 stem as im2col and a matrix product, every 1x1 as a matrix product, each lightweight
//! 3x3 as its linear 1x1 and then the depthwise kernel with BatchNorm and ReLU fused, the channel
//! gate as two small matrix-vector products per stream and image, and each block's projection
//! summed onto its shortcut inside the product. OSNet-AIN's instance norms have no kernel.

use burn::nn::conv::Conv2d;
use burn::nn::pool::AvgPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};

use super::kernels::{self, Act, Buf, Strip};
use super::mobilenet::Depthwise;
use super::resnet::Stem;
use super::{check, one_by_one, Pointwise, Scratch};
use crate::backbone::osnet::{ChannelGate, ConvBn, LightConv3x3, OsBlock, OsNet, OsStage};
use crate::ModelError;

/// The BatchNorm of `layer`; OSNet-AIN's instance norms are refused.
fn batch_norm(layer: &ConvBn) -> Result<&BatchNorm, ModelError> {
    match (&layer.bn, &layer.inorm) {
        (Some(bn), None) => Ok(bn),
        (_, Some(_)) => Err(instance_norm()),
        (None, None) => Err(ModelError::Weights(
            "the CPU path expects a BatchNorm after each of OSNet's convolutions".into(),
        )),
    }
}

fn instance_norm() -> ModelError {
    ModelError::Weights(
        "the folded CPU path has no kernel for OSNet-AIN's instance normalisation".into(),
    )
}

/// ReLU if `layer` has one.
fn act(layer: &ConvBn) -> Act {
    if layer.relu {
        Act::Relu
    } else {
        Act::Linear
    }
}

/// A 1x1 [`ConvBn`].
fn conv_bn(layer: &ConvBn) -> Result<Pointwise, ModelError> {
    one_by_one(&layer.conv, Some(batch_norm(layer)?), act(layer))
}

/// torchreid's `LightConv3x3`: a linear 1x1, then the depthwise 3x3 with BatchNorm and ReLU.
#[derive(Debug, Clone)]
struct Light {
    pointwise: Pointwise,
    depthwise: Depthwise,
}

impl Light {
    fn fold(layer: &LightConv3x3) -> Result<Self, ModelError> {
        let depthwise = Depthwise::fold(&layer.conv2, &layer.bn, Act::Relu)?;
        if depthwise.stride != 1 {
            return Err(ModelError::Weights(
                "the CPU path expects OSNet's depthwise convolutions to have stride 1".into(),
            ));
        }
        Ok(Self {
            pointwise: one_by_one(&layer.conv1, None, Act::Linear)?,
            depthwise,
        })
    }

    /// `lights` side by side, all reading the same input: one matrix product with all their
    /// output columns, and one depthwise convolution over all their channels.
    fn concat(lights: &[&Light]) -> Self {
        let matrices: Vec<Vec<f32>> = lights.iter().map(|l| l.pointwise.row_major()).collect();
        let cin = lights[0].pointwise.cin();
        let weight = (0..cin)
            .flat_map(|row| {
                lights.iter().zip(&matrices).flat_map(move |(l, m)| {
                    let cout = l.pointwise.cout();
                    m[row * cout..][..cout].iter().copied()
                })
            })
            .collect();
        let bias = lights
            .iter()
            .flat_map(|l| l.pointwise.bias.iter().copied())
            .collect();
        Self {
            pointwise: Pointwise::new(weight, bias, Act::Linear),
            depthwise: Depthwise::concat(&lights.iter().map(|l| &l.depthwise).collect::<Vec<_>>()),
        }
    }

    /// The 1x1 on `pixels` input rows `stride` values apart, into `out`.
    fn pointwise(&self, input: &[f32], stride: usize, pixels: usize, out: &mut Buf) {
        let p = &self.pointwise;
        let out = out.take(pixels * p.bias.len());
        kernels::pointwise_rows(input, stride, pixels, &p.weight, &p.bias, p.act, false, out);
    }

    /// The depthwise convolution of each of the `n` images of `[h, w]` in `input`, into `out`.
    fn depthwise(&self, input: &[f32], n: usize, [h, w]: [usize; 2], out: &mut Buf) {
        let image = (h * w * self.depthwise.channels()).max(1);
        let out = out.take(n * image);
        for (x, o) in input.chunks_exact(image).zip(out.chunks_exact_mut(image)) {
            self.depthwise.run(x, Strip::whole([h, w], 1), o);
        }
    }
}

/// torchreid's `ChannelGate`: global average, `fc1` (`[hidden, channels]`) and ReLU, `fc2`
/// (`[channels, hidden]`) and sigmoid, each with its bias.
#[derive(Debug, Clone)]
struct Gate {
    fc1: Vec<f32>,
    b1: Vec<f32>,
    fc2: Vec<f32>,
    b2: Vec<f32>,
}

impl Gate {
    fn fold(gate: &ChannelGate) -> Result<Self, ModelError> {
        let plain = |conv: &Conv2d| {
            check(conv, 1, false)?;
            super::fold(conv, None).map(|f| (f.weight, f.bias, f.dims))
        };
        let (fc1, b1, [hidden, channels, ..]) = plain(&gate.fc1)?;
        let (fc2, b2, dims) = plain(&gate.fc2)?;
        if dims[..2] != [channels, hidden] {
            return Err(ModelError::Weights(format!(
                "a channel gate from {channels} to {hidden} channels and back to {} from {}",
                dims[0], dims[1]
            )));
        }
        Ok(Self { fc1, b1, fc2, b2 })
    }

    /// `acc` (`[n, pixels, channels]`, overwritten when `first`, else added to) receives `y`
    /// scaled channel by channel by the gate of `y`, image by image. `y` holds the same pixels
    /// as rows `stride` values apart, each row's first `channels` values read.
    fn apply(&self, y: &[f32], stride: usize, pixels: usize, acc: &mut [f32], first: bool) {
        let c = self.b2.len();
        // Summed in f64: up to 2048 pixels a channel at 256x128.
        let mut sum = vec![0f64; c];
        let mut mean = vec![0f32; c];
        let mut hidden = self.b1.clone();
        let mut gate = vec![0f32; c];
        for (image, acc) in acc.chunks_exact_mut((pixels * c).max(1)).enumerate() {
            let y = &y[image * pixels * stride..];
            sum.fill(0.0);
            kernels::channel_sums(y, stride, pixels, &mut sum);
            for (m, s) in mean.iter_mut().zip(&sum) {
                *m = (s / pixels as f64) as f32;
            }
            for ((h, row), b) in hidden
                .iter_mut()
                .zip(self.fc1.chunks_exact(c))
                .zip(&self.b1)
            {
                *h = kernels::relu(b + dot(row, &mean));
            }
            for ((g, row), b) in gate
                .iter_mut()
                .zip(self.fc2.chunks_exact(self.b1.len()))
                .zip(&self.b2)
            {
                *g = 1.0 / (1.0 + (-(b + dot(row, &hidden))).exp());
            }
            kernels::gated(y, stride, &gate, acc, first);
        }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

/// torchreid's `OSBlock`.
#[derive(Debug, Clone)]
struct Block {
    /// 1x1 to a quarter of the output channels, ReLU.
    reduce: Pointwise,
    /// The first lightweight convolution of each of the four streams, side by side: they all
    /// read the reduced input, so they run as one matrix product and one depthwise pass.
    first: Light,
    /// The further lightweight convolutions of each stream: none, 1, 2 and 3.
    rest: [Vec<Light>; 4],
    gate: Gate,
    /// Linear 1x1 to the output channels, summed with the shortcut, then ReLU.
    project: Pointwise,
    /// The shortcut's linear 1x1 projection where the widths differ.
    shortcut: Option<Pointwise>,
}

impl Block {
    fn fold(b: &OsBlock) -> Result<Self, ModelError> {
        if b.inorm.is_some() {
            return Err(instance_norm());
        }
        let stream = |layers: &[LightConv3x3]| {
            let lights = layers
                .iter()
                .map(Light::fold)
                .collect::<Result<Vec<_>, _>>()?;
            if lights.is_empty() {
                return Err(ModelError::Weights(
                    "an omni-scale block with an empty stream".into(),
                ));
            }
            Ok(lights)
        };
        let streams = [
            stream(std::slice::from_ref(&b.conv2a))?,
            stream(&b.conv2b)?,
            stream(&b.conv2c)?,
            stream(&b.conv2d)?,
        ];
        let first = Light::concat(&streams.each_ref().map(|s| &s[0]));
        let block = Self {
            reduce: conv_bn(&b.conv1)?,
            first,
            rest: streams.map(|s| s[1..].to_vec()),
            gate: Gate::fold(&b.gate)?,
            // The ReLU comes after the shortcut is added (`accumulate` in the kernel).
            project: one_by_one(&b.conv3.conv, Some(batch_norm(&b.conv3)?), Act::Relu)?,
            shortcut: b.downsample.as_ref().map(conv_bn).transpose()?,
        };
        let cin = block.reduce.cin();
        let mid = block.reduce.bias.len();
        let cout = block.project.bias.len();
        if block.first.depthwise.channels() != 4 * mid || block.first.pointwise.cin() != mid {
            return Err(ModelError::Weights(format!(
                "an omni-scale block of {mid} channels whose streams have {} in all, from {}",
                block.first.depthwise.channels(),
                block.first.pointwise.cin()
            )));
        }
        // Each further lightweight convolution of a stream keeps its width, and the gate
        // scales that many channels: anything else would not fit the kernels' buffers.
        let widths = block.rest.iter().flatten().map(|light| {
            [
                light.pointwise.cin(),
                light.pointwise.cout(),
                light.depthwise.channels(),
            ]
        });
        for width in widths {
            if width != [mid; 3] {
                return Err(ModelError::Weights(format!(
                    "an omni-scale block of {mid} channels with a lightweight convolution from \
                     {} to {} channels (depthwise over {})",
                    width[0], width[1], width[2]
                )));
            }
        }
        if block.gate.b2.len() != mid {
            return Err(ModelError::Weights(format!(
                "an omni-scale block of {mid} channels whose channel gate scales {}",
                block.gate.b2.len()
            )));
        }
        if b.conv3.relu || (block.shortcut.is_none() && cin != cout) {
            return Err(ModelError::Weights(format!(
                "an omni-scale block from {cin} to {cout} channels without a linear projection"
            )));
        }
        Ok(block)
    }

    /// Reads `s.cur` (`[n, h, w, cin]`), writes `s.next` (`[n, h, w, cout]`); uses `s.b` (the
    /// reduced input, then the four streams' first outputs side by side), `s.a` (a
    /// lightweight convolution's 1x1 output), `s.c` (a stream's output) and `s.d` (the gated
    /// sum of the streams).
    fn forward(&self, s: &mut Scratch, n: usize, [h, w]: [usize; 2]) {
        let pixels = n * h * w;
        let cur = s.cur.get();
        let mid = self.reduce.cout();
        let wide = 4 * mid;
        self.reduce.run(cur, pixels, false, s.b.take(pixels * mid));
        self.first.pointwise(s.b.get(), mid, pixels, &mut s.a);
        self.first.depthwise(s.a.get(), n, [h, w], &mut s.b);
        for (i, rest) in self.rest.iter().enumerate() {
            // Stream `i`'s first output: channels `i * mid..` of each row of `s.b`.
            let first = &s.b.get()[i * mid..];
            let mut stride = wide;
            for (k, light) in rest.iter().enumerate() {
                let input = if k == 0 { first } else { s.c.get() };
                light.pointwise(input, stride, pixels, &mut s.a);
                light.depthwise(s.a.get(), n, [h, w], &mut s.c);
                stride = mid;
            }
            let y = if rest.is_empty() { first } else { s.c.get() };
            // `take` of the same length keeps what the earlier streams left.
            self.gate
                .apply(y, stride, h * w, s.d.take(pixels * mid), i == 0);
        }
        match &self.shortcut {
            Some(p) => p.run(cur, pixels, false, s.next.take(pixels * p.cout())),
            None => s.next.take(cur.len()).copy_from_slice(cur),
        }
        let out = s.next.take(pixels * self.project.cout());
        self.project.run(s.d.get(), pixels, true, out);
    }
}

/// Two blocks, and in the first two stages a 1x1 transition and a 2x2 average pool.
#[derive(Debug, Clone)]
struct Stage {
    blocks: Vec<Block>,
    transition: Option<Pointwise>,
    /// The average pool's window side (and stride).
    pool: Option<usize>,
}

/// The side of `pool`'s window, if the CPU path has its kernel: square, its stride equal to
/// its side, no padding, rounding down.
fn avg_pool(pool: &AvgPool2d) -> Result<usize, ModelError> {
    let [k, l] = pool.kernel_size;
    let unpadded = match pool.padding {
        PaddingConfig2d::Valid => true,
        PaddingConfig2d::Explicit(a, b, c, d) => [a, b, c, d] == [0; 4],
        _ => false,
    };
    if k == l && pool.stride == [k, k] && unpadded && !pool.ceil_mode {
        Ok(k)
    } else {
        Err(ModelError::Weights(format!(
            "the CPU path has no kernel for a {:?} average pool (stride {:?}, padding {:?})",
            pool.kernel_size, pool.stride, pool.padding
        )))
    }
}

impl Stage {
    fn fold(stage: &OsStage) -> Result<Self, ModelError> {
        Ok(Self {
            blocks: stage
                .blocks
                .iter()
                .map(Block::fold)
                .collect::<Result<_, _>>()?,
            transition: stage.transition.as_ref().map(conv_bn).transpose()?,
            pool: stage.pool.as_ref().map(avg_pool).transpose()?,
        })
    }
}

/// [`OsNet`] folded.
#[derive(Debug, Clone)]
pub(super) struct FoldedOsNet {
    stem: Stem,
    stages: Vec<Stage>,
    last: Pointwise,
}

impl FoldedOsNet {
    pub(super) fn fold(net: &OsNet) -> Result<Self, ModelError> {
        let c = &net.conv1;
        let stem = Stem::fold(&c.conv, batch_norm(c)?, act(c), &net.maxpool)?;
        let stages = [&net.conv2, &net.conv3, &net.conv4]
            .into_iter()
            .map(Stage::fold)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            stem,
            stages,
            last: conv_bn(&net.conv5)?,
        })
    }

    /// Channels of the feature map.
    pub(super) fn channels(&self) -> usize {
        self.last.bias.len()
    }

    /// Height and width of the feature map of an `[h, w]` input.
    pub(super) fn out_size(&self, size: [usize; 2]) -> [usize; 2] {
        self.stages
            .iter()
            .filter_map(|stage| stage.pool)
            .fold(self.stem.out_size(size), |size, window| {
                size.map(|n| n / window)
            })
    }

    /// The backbone on `n` images in `scratch.image` (`[n, h, w, 3]`): their feature maps are
    /// left in `scratch.a`, `[n, h_out, w_out, channels]`. Returns `[h_out, w_out]`.
    pub(super) fn forward(&self, s: &mut Scratch, n: usize, [h, w]: [usize; 2]) -> [usize; 2] {
        let [mut h, mut w] = self.stem.forward(s, n, [h, w]);
        for stage in &self.stages {
            for block in &stage.blocks {
                block.forward(s, n, [h, w]);
                std::mem::swap(&mut s.cur, &mut s.next);
            }
            if let Some(t) = &stage.transition {
                t.run(
                    s.cur.get(),
                    n * h * w,
                    false,
                    s.next.take(n * h * w * t.cout()),
                );
                std::mem::swap(&mut s.cur, &mut s.next);
            }
            if let Some(size) = stage.pool {
                let c = s.cur.get().len() / (n * h * w).max(1);
                [h, w] = kernels::avg_pool(s.cur.get(), [n, h, w, c], size, &mut s.next);
                std::mem::swap(&mut s.cur, &mut s.next);
            }
        }
        let out = s.a.take(n * h * w * self.last.cout());
        self.last.run(s.cur.get(), n * h * w, false, out);
        [h, w]
    }
}
