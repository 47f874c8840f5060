//! MobileNetV2 folded for the CPU: its stem as im2col and a matrix product, then each inverted
//! residual block strip of output rows by strip (expansion, depthwise, projection), so that
//! the expanded activations pass through the cache, not through memory.

use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;

use super::kernels::{self, Act, Window};
use super::{check, matrix, one_by_one, Pointwise, Scratch};
use crate::backbone::mobilenet_v2::{ConvBnAct, MobileNetV2};
use crate::ModelError;

/// A 3x3 depthwise convolution (padding 1) with its BatchNorm folded in, and its activation.
#[derive(Debug, Clone)]
pub(super) struct Depthwise {
    /// `[9, channels]`: tap `ky * 3 + kx`, then channel.
    weight: Vec<f32>,
    bias: Vec<f32>,
    pub(super) stride: usize,
    act: Act,
}

impl Depthwise {
    /// `conv`, which must be a 3x3 depthwise convolution, and `bn` folded, followed by `act`.
    pub(super) fn fold(conv: &Conv2d, bn: &BatchNorm, act: Act) -> Result<Self, ModelError> {
        check(conv, 3, true)?;
        let folded = super::fold(conv, Some(bn))?;
        let c = folded.dims[0];
        let mut t = vec![0f32; 9 * c];
        for ch in 0..c {
            for k in 0..9 {
                t[k * c + ch] = folded.weight[ch * 9 + k];
            }
        }
        Ok(Self {
            weight: t,
            bias: folded.bias,
            stride: conv.stride[0],
            act,
        })
    }

    pub(super) fn channels(&self) -> usize {
        self.bias.len()
    }

    /// `parts` side by side: one convolution over all their channels, in order. They must share
    /// stride and activation.
    pub(super) fn concat(parts: &[&Self]) -> Self {
        let first = parts[0];
        assert!(
            parts
                .iter()
                .all(|p| p.stride == first.stride && p.act == first.act),
            "depthwise convolutions of different strides or activations side by side"
        );
        let weight = (0..9)
            .flat_map(|k| {
                parts
                    .iter()
                    .flat_map(move |p| p.weight[k * p.channels()..][..p.channels()].iter().copied())
            })
            .collect();
        Self {
            weight,
            bias: parts.iter().flat_map(|p| p.bias.iter().copied()).collect(),
            stride: first.stride,
            act: first.act,
        }
    }

    /// The output rows `strip` names, from `input` (see [`kernels::depthwise3x3`]).
    pub(super) fn run(&self, input: &[f32], strip: kernels::Strip, out: &mut [f32]) {
        kernels::depthwise3x3(input, strip, &self.weight, &self.bias, self.act, out);
    }
}

#[derive(Debug, Clone)]
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// [`MobileNetV2`] folded.
#[derive(Debug, Clone)]
pub(super) struct MobileNet {
    /// The 3x3 stride-2 stem as a matrix over im2col rows: `[27, 32]`.
    stem: Pointwise,
    blocks: Vec<Block>,
    last: Pointwise,
}

fn act(layer: &ConvBnAct) -> Act {
    if layer.relu6 {
        Act::Relu6
    } else {
        Act::Linear
    }
}

pub(super) fn depthwise(layer: &ConvBnAct) -> Result<Depthwise, ModelError> {
    if !layer.relu6 {
        return Err(ModelError::Weights(
            "the CPU path expects ReLU6 after a depthwise convolution".into(),
        ));
    }
    Depthwise::fold(&layer.conv, &layer.bn, Act::Relu6)
}

fn pointwise(layer: &ConvBnAct) -> Result<Pointwise, ModelError> {
    one_by_one(&layer.conv, Some(&layer.bn), act(layer))
}

/// About how many bytes of expanded activations one strip of a block holds: with the strip's
/// depthwise output and the block's input and output rows it stays in a core's L2 cache, so
/// the three convolutions of a block pass their intermediate results through the cache, not
/// through memory.
const STRIP_BYTES: usize = 1024 * 1024;

impl Block {
    /// Reads `s.cur` (`[h, w, cin]`), writes `s.next` (`[h_out, w_out, cout]`), strip of output
    /// rows by strip: expansion of just the input rows the strip needs, depthwise, projection
    /// (plus the input, for a residual block). Returns `[h_out, w_out]`.
    fn forward(&self, s: &mut Scratch, [h, w]: [usize; 2]) -> [usize; 2] {
        let d = &self.depthwise;
        let p = &self.project;
        let hidden = d.channels();
        let cout = p.bias.len();
        let whole = kernels::Strip::whole([h, w], d.stride);
        let [ho, wo] = whole.out_size();
        let rows_in_budget = STRIP_BYTES / (w * hidden * 4).max(1) / d.stride;
        let rows_per_strip = rows_in_budget.clamp(1, ho);
        let cur = s.cur.get();
        let cin = cur.len() / (h * w);
        let next = s.next.take(ho * wo * cout);
        for r0 in (0..ho).step_by(rows_per_strip) {
            let rows = [r0, (r0 + rows_per_strip).min(ho)];
            let [first, end] = kernels::Strip::input_rows(h, d.stride, rows);
            let input = &cur[first * w * cin..end * w * cin];
            let expanded = match &self.expand {
                Some(e) => {
                    let pixels = (end - first) * w;
                    e.run(input, pixels, false, s.a.take(pixels * hidden));
                    s.a.get()
                }
                None => input,
            };
            let strip = kernels::Strip {
                first_in: first,
                rows,
                ..whole
            };
            let pixels = (rows[1] - rows[0]) * wo;
            let dw = s.b.take(pixels * hidden);
            d.run(expanded, strip, dw);
            let out = &mut next[rows[0] * wo * cout..rows[1] * wo * cout];
            if self.residual {
                out.copy_from_slice(&cur[rows[0] * wo * cout..rows[1] * wo * cout]);
            }
            p.run(dw, pixels, self.residual, out);
        }
        [ho, wo]
    }
}

impl MobileNet {
    pub(super) fn fold(backbone: &MobileNetV2) -> Result<Self, ModelError> {
        check(&backbone.stem.conv, 3, false)?;
        if backbone.stem.conv.weight.val().dims()[1] != 3 {
            return Err(ModelError::Weights("the stem must take 3 channels".into()));
        }
        let stem = matrix(
            &backbone.stem.conv,
            Some(&backbone.stem.bn),
            act(&backbone.stem),
        )?;
        let blocks = backbone
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    expand: b.expand.as_ref().map(pointwise).transpose()?,
                    depthwise: depthwise(&b.depthwise)?,
                    project: pointwise(&b.project)?,
                    residual: b.residual,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let last = pointwise(&backbone.last)?;
        Ok(Self { stem, blocks, last })
    }

    /// Channels of the feature map.
    pub(super) fn channels(&self) -> usize {
        self.last.bias.len()
    }

    /// The backbone on `scratch.image` (`[h, w, 3]`): its feature map is left in `scratch.a`,
    /// `[h_out, w_out, channels]`. Returns `[h_out, w_out]`.
    pub(super) fn forward(&self, s: &mut Scratch, [h, w]: [usize; 2]) -> [usize; 2] {
        let stem = Window {
            size: 3,
            stride: 2,
            pad: 1,
        };
        let [mut h, mut w] = kernels::im2col(&s.image, [1, h, w, 3], stem, &mut s.a);
        let out = s.cur.take(h * w * self.stem.cout());
        self.stem.run(s.a.get(), h * w, false, out);
        for block in &self.blocks {
            [h, w] = block.forward(s, [h, w]);
            std::mem::swap(&mut s.cur, &mut s.next);
        }
        let out = s.a.take(h * w * self.last.cout());
        self.last.run(s.cur.get(), h * w, false, out);
        [h, w]
    }
}
