//! A bottleneck ResNet folded for the CPU (torchvision's and torchreid's ResNet-50, fast-reid's
//! without IBN or non-local blocks): the 7x7 stem and each 3x3 as im2col and a matrix product,
//! the 1x1s as matrix products, BatchNorms folded in, ReLU fused into each output pass, and
//! the shortcut summed inside the last product of each block.

use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};

use super::kernels::{self, Act, Window};
use super::{check, matrix, Pointwise, Scratch};
use crate::backbone::resnet::{self, ResNet};
use crate::ModelError;

/// A convolution as a matrix over im2col rows (or pixels, for a 1x1), and its window.
#[derive(Debug, Clone)]
struct Conv {
    matrix: Pointwise,
    window: Window,
}

impl Conv {
    fn fold(conv: &Conv2d, bn: &BatchNorm, kernel: usize, act: Act) -> Result<Self, ModelError> {
        check(conv, kernel, false)?;
        Ok(Self {
            matrix: matrix(conv, Some(bn), act)?,
            window: Window {
                size: kernel,
                stride: conv.stride[0],
                pad: (kernel - 1) / 2,
            },
        })
    }

    fn cout(&self) -> usize {
        self.matrix.cout()
    }
}

/// The 7x7 stem convolution (on the 3 colour channels) and its max pool, as the ResNets and
/// OSNet begin.
#[derive(Debug, Clone)]
pub(super) struct Stem {
    conv: Conv,
    pool: Window,
    /// The pool's output size is rounded up (fast-reid's stem).
    pool_ceil: bool,
}

impl Stem {
    pub(super) fn fold(
        conv: &Conv2d,
        bn: &BatchNorm,
        act: Act,
        max_pool: &MaxPool2d,
    ) -> Result<Self, ModelError> {
        let conv = Conv::fold(conv, bn, 7, act)?;
        if conv.matrix.cin() != 7 * 7 * 3 {
            return Err(ModelError::Weights("the stem must take 3 channels".into()));
        }
        let (pool, pool_ceil) = pool(max_pool)?;
        Ok(Self {
            conv,
            pool,
            pool_ceil,
        })
    }

    /// Channels of its output.
    pub(super) fn cout(&self) -> usize {
        self.conv.cout()
    }

    /// Output height and width for an `[h, w]` input.
    pub(super) fn out_size(&self, size: [usize; 2]) -> [usize; 2] {
        size.map(|n| self.pool.pooled(self.conv.window.out(n), self.pool_ceil))
    }

    /// The stem on `n` images in `scratch.image` (`[n, h, w, 3]`), into `scratch.cur`. Returns
    /// `[h_out, w_out]`.
    pub(super) fn forward(&self, s: &mut Scratch, n: usize, [h, w]: [usize; 2]) -> [usize; 2] {
        let [sh, sw] = conv(&self.conv, &s.image, [n, h, w, 3], &mut s.a, &mut s.b);
        kernels::max_pool(
            s.b.get(),
            [n, sh, sw, self.cout()],
            self.pool,
            self.pool_ceil,
            &mut s.cur,
        )
    }
}

#[derive(Debug, Clone)]
struct Bottleneck {
    /// 1x1, ReLU.
    reduce: Conv,
    /// 3x3 with the block's stride, ReLU.
    conv: Conv,
    /// 1x1 to the block's output, summed with the shortcut, then ReLU.
    expand: Conv,
    /// The shortcut's 1x1 projection (with the block's stride) where the shape changes.
    shortcut: Option<Conv>,
}

/// [`ResNet`] folded.
#[derive(Debug, Clone)]
pub(super) struct FoldedResNet {
    stem: Stem,
    blocks: Vec<Bottleneck>,
}

fn block(b: &resnet::Bottleneck) -> Result<Bottleneck, ModelError> {
    let bn1 = match (&b.bn1, &b.ibn1) {
        (Some(bn1), _) => bn1,
        (None, Some(_)) => {
            return Err(ModelError::Weights(
                "the folded CPU path has no kernel for IBN-a's instance normalisation".into(),
            ))
        }
        (None, None) => {
            return Err(ModelError::Weights(
                "the CPU path expects a normalisation after a bottleneck's first convolution"
                    .into(),
            ))
        }
    };
    let stride = b.conv2.stride[0];
    let shortcut = b
        .downsample
        .as_ref()
        .map(|d| Conv::fold(&d.conv, &d.bn, 1, Act::Linear))
        .transpose()?;
    let block = Bottleneck {
        reduce: Conv::fold(&b.conv1, bn1, 1, Act::Relu)?,
        conv: Conv::fold(&b.conv2, &b.bn2, 3, Act::Relu)?,
        expand: Conv::fold(&b.conv3, &b.bn3, 1, Act::Relu)?,
        shortcut,
    };
    let strides = [
        block.reduce.window.stride,
        block.expand.window.stride,
        block.shortcut.as_ref().map_or(stride, |s| s.window.stride),
    ];
    let cin = block.reduce.matrix.cin();
    if block.shortcut.is_none() && (stride != 1 || cin != block.expand.cout()) {
        return Err(ModelError::Weights(format!(
            "a bottleneck from {cin} to {} channels (stride {stride}) without a projection",
            block.expand.cout()
        )));
    }
    if strides != [1, 1, stride] {
        return Err(ModelError::Weights(format!(
            "a bottleneck whose 3x3 has stride {stride} and whose 1x1s have strides {strides:?}"
        )));
    }
    Ok(block)
}

/// The stem's max pool: its window and whether it rounds up.
fn pool(p: &MaxPool2d) -> Result<(Window, bool), ModelError> {
    let pad = match p.padding {
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Explicit(a, b, c, d) if a == b && b == c && c == d => Some(a),
        _ => None,
    };
    match pad {
        Some(pad)
            if p.kernel_size[0] == p.kernel_size[1]
                && p.stride[0] == p.stride[1]
                && p.dilation == [1, 1] =>
        {
            Ok((
                Window {
                    size: p.kernel_size[0],
                    stride: p.stride[0],
                    pad,
                },
                p.ceil_mode,
            ))
        }
        _ => Err(ModelError::Weights(format!(
            "the CPU path has no kernel for a {:?} max pool (stride {:?}, padding {:?})",
            p.kernel_size, p.stride, p.padding
        ))),
    }
}

impl FoldedResNet {
    pub(super) fn fold(net: &ResNet) -> Result<Self, ModelError> {
        if net.non_local.iter().any(|n| !n.is_empty()) {
            return Err(ModelError::Weights(
                "the folded CPU path has no kernel for non-local blocks".into(),
            ));
        }
        let stem = Stem::fold(&net.conv1, &net.bn1, Act::Relu, &net.maxpool)?;
        let blocks = [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
            .into_iter()
            .flatten()
            .map(block)
            .collect::<Result<_, _>>()?;
        Ok(Self { stem, blocks })
    }

    /// Channels of the feature map.
    pub(super) fn channels(&self) -> usize {
        self.blocks
            .last()
            .map_or(self.stem.cout(), |b| b.expand.cout())
    }

    /// The backbone on `n` images in `scratch.image` (`[n, h, w, 3]`): their feature maps are
    /// left in `scratch.a`, `[n, h_out, w_out, channels]`. Returns `[h_out, w_out]`.
    pub(super) fn forward(&self, s: &mut Scratch, n: usize, [h, w]: [usize; 2]) -> [usize; 2] {
        let [mut h, mut w] = self.stem.forward(s, n, [h, w]);
        for block in &self.blocks {
            [h, w] = block.forward(s, n, [h, w]);
            std::mem::swap(&mut s.cur, &mut s.next);
        }
        std::mem::swap(&mut s.cur, &mut s.a);
        [h, w]
    }
}

/// `c` on `input` (`[n, h, w, cin]`) into `out`, through `cols` for anything but a 1x1 of
/// stride 1. Returns `[h_out, w_out]`.
fn conv(
    c: &Conv,
    input: &[f32],
    shape: [usize; 4],
    cols: &mut kernels::Buf,
    out: &mut kernels::Buf,
) -> [usize; 2] {
    let [n, h, w, cin] = shape;
    let [ho, wo] = [c.window.out(h), c.window.out(w)];
    let pixels = n * ho * wo;
    let out = out.take(pixels * c.cout());
    if c.window.size == 1 && c.window.stride == 1 {
        c.matrix.run(input, pixels, false, out);
        return [ho, wo];
    }
    // The im2col rows of a slice of pixels at a time, each slice's product run while its rows
    // are still in the cache: the rows of all pixels at once (nine times the input for a 3x3)
    // would go out to memory and come back. Slices keep to at least `IM2COL_PIXELS`, since the
    // `gemm` crate packs the weights again for each product.
    let row = c.window.size * c.window.size * cin;
    let slice = (IM2COL_SLICE / row.max(1)).max(IM2COL_PIXELS);
    for (start, out) in (0..pixels)
        .step_by(slice)
        .zip(out.chunks_mut(slice * c.cout()))
    {
        let end = (start + slice).min(pixels);
        kernels::im2col_rows(input, shape, c.window, start..end, cols);
        c.matrix.run(cols.get(), end - start, false, out);
    }
    [ho, wo]
}

/// How many im2col values [`conv`] writes before each matrix product: 1 MB, half an L2 cache
/// of 2 MB per core. ResNet-50, batch 16 on 2 cores, alternating runs: 50.1 and 48.9 crops/s
/// for all rows at once, 50.6 and 51.3 with slices of 1 MB, 52.3 and 55.1 with slices of 1 MB
/// but at least [`IM2COL_PIXELS`] pixels, 51.9 and 51.4 with slices of 2 MB.
const IM2COL_SLICE: usize = 1 << 18;

/// The fewest pixels in a slice of [`conv`]'s im2col rows (512 gave 50.6 and 53.3 crops/s).
const IM2COL_PIXELS: usize = 256;

impl Bottleneck {
    /// Reads `s.cur` (`[n, h, w, cin]`), writes `s.next` (`[n, h_out, w_out, cout]`). Returns
    /// `[h_out, w_out]`.
    fn forward(&self, s: &mut Scratch, n: usize, [h, w]: [usize; 2]) -> [usize; 2] {
        let cur = s.cur.get();
        let cin = cur.len() / (n * h * w);
        conv(&self.reduce, cur, [n, h, w, cin], &mut s.a, &mut s.b);
        let planes = self.reduce.cout();
        let [ho, wo] = conv(&self.conv, s.b.get(), [n, h, w, planes], &mut s.a, &mut s.c);
        // The projected shortcut goes into `next` first; the expansion adds onto it. An
        // identity shortcut is the input itself: the expansion adds onto `cur`, which then
        // changes places with `next`.
        match &self.shortcut {
            Some(shortcut) => {
                conv(shortcut, cur, [n, h, w, cin], &mut s.a, &mut s.next);
            }
            None => std::mem::swap(&mut s.cur, &mut s.next),
        }
        let pixels = n * ho * wo;
        let out = s.next.take(pixels * self.expand.cout());
        self.expand.matrix.run(s.c.get(), pixels, true, out);
        [ho, wo]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::kernels::tests::values;

    /// A 3x3 over enough pixels to take two slices of im2col rows equals the product over all
    /// rows at once, bias and ReLU included.
    #[test]
    fn a_convolution_in_slices_equals_one_over_all_rows() {
        let (cin, cout, [h, w]) = (64, 24, [24, 24]);
        let window = Window {
            size: 3,
            stride: 1,
            pad: 1,
        };
        let row = 9 * cin;
        assert!(
            h * w > (IM2COL_SLICE / row).max(IM2COL_PIXELS),
            "one slice only"
        );
        let c = Conv {
            matrix: Pointwise::new(values(row * cout, 1), values(cout, 2), Act::Relu),
            window,
        };
        let input = values(h * w * cin, 3);
        let (mut cols, mut out) = Default::default();
        assert_eq!(
            conv(&c, &input, [1, h, w, cin], &mut cols, &mut out),
            [h, w]
        );
        let mut whole = kernels::Buf::default();
        kernels::im2col(&input, [1, h, w, cin], window, &mut whole);
        let mut want = vec![0.0; h * w * cout];
        c.matrix.run(whole.get(), h * w, false, &mut want);
        // The `gemm` crate may block the sum differently for fewer pixels.
        for (a, b) in out.get().iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert_eq!(out.get().len(), want.len());
        assert!(want.iter().any(|&v| v > 0.0) && want.contains(&0.0));
    }
}
