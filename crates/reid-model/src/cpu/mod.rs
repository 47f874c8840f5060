//! The network rewritten for inference on the CPU, natively and in wasm. At load time each
//! BatchNorm is folded into the convolution before it (and the BNNeck into one scale and shift),
//! weights are laid out for the kernels (1x1 convolutions as `[cin, cout]` matrices for the
//! `gemm` crate, depthwise taps as `[9, channels]`), and activations run channels-last with
//! bias and ReLU6 fused into each kernel. Images of a batch run on all cores, each thread
//! reusing its own buffers. Results equal [`ReidNet::forward`]'s up to float rounding (the
//! parity tests hold both to PyTorch within 1e-4).

mod kernels;

use kernels::Buf;

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;

use crate::backbone::mobilenet_v2::ConvBnAct;
use crate::explain::{FeatureMap, Head};
use crate::network::{Backbone, ReidNet};
use crate::preprocess::{InputSpec, RgbImage};
use crate::ModelError;

/// A 1x1 convolution with its BatchNorm folded in.
#[derive(Debug, Clone)]
struct Pointwise {
    /// `[cin, cout]`, row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
    relu6: bool,
}

/// A 3x3 depthwise convolution (padding 1) with its BatchNorm folded in; always ReLU6.
#[derive(Debug, Clone)]
struct Depthwise {
    /// `[9, channels]`: tap `ky * 3 + kx`, then channel.
    weight: Vec<f32>,
    bias: Vec<f32>,
    stride: usize,
}

#[derive(Debug, Clone)]
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// [`ReidNet`] folded for CPU inference.
#[derive(Debug, Clone)]
pub struct CpuNet {
    /// The 3x3 stride-2 stem as a matrix over im2col rows: `[27, 32]`.
    stem: Pointwise,
    blocks: Vec<Block>,
    last: Pointwise,
    /// Pooling and the BNNeck.
    head: Head,
    input: InputSpec,
    /// `input`'s normalised value of each network channel for each 8-bit level, as
    /// [`InputSpec::normalise`] gives it (a gray pixel of that level has it in every channel,
    /// whatever the channel order).
    levels: [[f32; 256]; 3],
    /// Buffers of earlier calls, one set per thread that ran them, taken again by the next
    /// call, which then neither allocates nor zero-fills them (a video in the page embeds a few
    /// crops a frame, call after call).
    spare: Spares,
}

/// The scratch buffers [`CpuNet`] keeps between calls. A clone starts empty.
#[derive(Default)]
struct Spares(std::sync::Mutex<Vec<Scratch>>);

impl Spares {
    fn take(&self) -> Scratch {
        self.lock().pop().unwrap_or_default()
    }

    fn give(&self, scratch: Scratch) {
        self.lock().push(scratch);
    }

    /// The list, even after a thread panicked holding it (a list of buffers cannot be left
    /// half-updated).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Scratch>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for Spares {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for Spares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} spare scratch sets", self.lock().len())
    }
}

/// Pooled features and L2-normalised embeddings of a batch, row-major `[batch, dim]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuOutput {
    /// Globally pooled backbone features.
    pub pooled: Vec<f32>,
    /// BNNeck output, L2-normalised.
    pub embeddings: Vec<f32>,
    /// Width of each row.
    pub dim: usize,
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// `gamma / sqrt(var + eps)` and `beta - mean * that`, in f64 before rounding.
pub(crate) fn bn_affine(bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let gamma = values(bn.gamma.val());
    let beta = values(bn.beta.val());
    let mean = values(bn.running_mean.value());
    let var = values(bn.running_var.value());
    let scale: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(&g, &v)| f64::from(g) / (f64::from(v) + bn.epsilon).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| (f64::from(b) - f64::from(m) * s) as f32)
        .collect();
    (scale.iter().map(|&s| s as f32).collect(), shift)
}

/// A convolution with its BatchNorm folded in: weight `[cout, cin/groups, k, k]` (in `dims`),
/// and bias.
struct Folded {
    weight: Vec<f32>,
    bias: Vec<f32>,
    dims: [usize; 4],
}

/// The convolution's weight scaled per output channel by the BatchNorm, and the folded bias.
fn fold(conv: &Conv2d, bn: &BatchNorm) -> Result<Folded, ModelError> {
    let dims = conv.weight.val().dims();
    let (scale, shift) = bn_affine(bn);
    if scale.len() != dims[0] {
        return Err(ModelError::Weights(format!(
            "a BatchNorm of {} channels follows a convolution of {}",
            scale.len(),
            dims[0]
        )));
    }
    let mut weight = values(conv.weight.val());
    let per_out = weight.len() / dims[0];
    for (row, s) in weight.chunks_mut(per_out).zip(&scale) {
        row.iter_mut().for_each(|w| *w *= s);
    }
    let mut bias = shift;
    if let Some(b) = &conv.bias {
        for ((o, b), s) in bias.iter_mut().zip(values(b.val())).zip(&scale) {
            *o += b * s;
        }
    }
    Ok(Folded { weight, bias, dims })
}

fn check(layer: &ConvBnAct, kernel: usize, groups_are_channels: bool) -> Result<(), ModelError> {
    let conv = &layer.conv;
    let pad = (kernel - 1) / 2;
    let ok = conv.kernel_size == [kernel, kernel]
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && matches!(conv.padding, PaddingConfig2d::Explicit(a, b, c, d) if [a, b, c, d] == [pad; 4])
        && if groups_are_channels {
            // Depthwise: one input channel per group and as many groups as channels.
            let [out, per_group, ..] = conv.weight.val().dims();
            per_group == 1 && conv.groups == out
        } else {
            conv.groups == 1
        };
    if ok {
        Ok(())
    } else {
        Err(ModelError::Weights(format!(
            "the CPU path has no kernel for a {:?} convolution (stride {:?}, groups {}, padding {:?})",
            conv.kernel_size, conv.stride, conv.groups, conv.padding
        )))
    }
}

/// A 1x1 convolution (or the stem's 3x3 over im2col rows) as a `[cin * k * k, cout]` matrix,
/// inputs ordered tap-major then channel, as [`kernels::im2col3x3`] lays them out.
fn matrix(layer: &ConvBnAct) -> Result<Pointwise, ModelError> {
    let Folded {
        weight,
        bias,
        dims: [cout, cin, kh, kw],
    } = fold(&layer.conv, &layer.bn)?;
    let rows = cin * kh * kw;
    let mut t = vec![0f32; rows * cout];
    for o in 0..cout {
        for i in 0..cin {
            for k in 0..kh * kw {
                t[(k * cin + i) * cout + o] = weight[(o * cin + i) * kh * kw + k];
            }
        }
    }
    Ok(Pointwise {
        weight: t,
        bias,
        relu6: layer.relu6,
    })
}

fn depthwise(layer: &ConvBnAct) -> Result<Depthwise, ModelError> {
    check(layer, 3, true)?;
    if !layer.relu6 {
        return Err(ModelError::Weights(
            "the CPU path expects ReLU6 after a depthwise convolution".into(),
        ));
    }
    let Folded {
        weight,
        bias,
        dims: [c, ..],
    } = fold(&layer.conv, &layer.bn)?;
    let mut t = vec![0f32; 9 * c];
    for ch in 0..c {
        for k in 0..9 {
            t[k * c + ch] = weight[ch * 9 + k];
        }
    }
    Ok(Depthwise {
        weight: t,
        bias,
        stride: layer.conv.stride[0],
    })
}

fn pointwise(layer: &ConvBnAct) -> Result<Pointwise, ModelError> {
    check(layer, 1, false)?;
    if layer.conv.stride != [1, 1] {
        return Err(ModelError::Weights("a strided 1x1 convolution".into()));
    }
    matrix(layer)
}

/// One thread's buffers, reused from image to image.
#[derive(Default)]
struct Scratch {
    image: Vec<f32>,
    /// A block's input.
    cur: Buf,
    /// A block's output.
    next: Buf,
    /// A strip of the expanded activations (or the stem's im2col rows).
    a: Buf,
    /// A strip of the depthwise output.
    b: Buf,
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
        let hidden = d.bias.len();
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
                    let out = s.a.take(pixels * hidden);
                    kernels::pointwise(input, pixels, &e.weight, &e.bias, true, false, out);
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
            kernels::depthwise3x3(expanded, strip, &d.weight, &d.bias, dw);
            let out = &mut next[rows[0] * wo * cout..rows[1] * wo * cout];
            if self.residual {
                out.copy_from_slice(&cur[rows[0] * wo * cout..rows[1] * wo * cout]);
            }
            kernels::pointwise(dw, pixels, &p.weight, &p.bias, false, self.residual, out);
        }
        [ho, wo]
    }
}

impl CpuNet {
    /// Folds `net` (any weights, on any device: they are read back once) for the CPU.
    /// Only MobileNetV2 without an embedding layer is folded; other networks run as burn
    /// modules.
    pub fn new(net: &ReidNet, input: InputSpec) -> Result<Self, ModelError> {
        let Backbone::MobileNetV2(backbone) = &net.backbone else {
            return Err(ModelError::Weights(
                "the folded CPU path runs MobileNetV2 only".into(),
            ));
        };
        if net.fc.is_some() {
            return Err(ModelError::Weights(
                "the folded CPU path has no embedding layer".into(),
            ));
        }
        check(&backbone.stem, 3, false)?;
        if backbone.stem.conv.weight.val().dims()[1] != 3 {
            return Err(ModelError::Weights("the stem must take 3 channels".into()));
        }
        let stem = matrix(&backbone.stem)?;
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
        Ok(Self {
            stem,
            blocks,
            last,
            head: Head::of(net),
            levels: std::array::from_fn(|c| {
                std::array::from_fn(|v| input.normalise([v as f32; 3], c))
            }),
            input,
            spare: Spares::default(),
        })
    }

    /// Width of the embedding.
    pub fn dim(&self) -> usize {
        self.head.dim()
    }

    /// Pooling and the BNNeck, which [`crate::explain`] splits over image regions.
    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Resizes and normalises each image (as [`crate::preprocess`] does) and runs the network.
    pub fn embed(&self, images: &[RgbImage]) -> CpuOutput {
        self.run(images.len(), |i, scratch| self.load(&images[i], scratch))
    }

    /// The backbone's feature map of each image (resized and normalised as for [`Self::embed`]),
    /// channels-last.
    pub fn feature_maps(&self, images: &[RgbImage]) -> Vec<FeatureMap> {
        let mut scratch = self.spare.take();
        let maps = images
            .iter()
            .map(|image| {
                let size = self.load(image, &mut scratch);
                let [height, width] = self.backbone(&mut scratch, size);
                FeatureMap {
                    height,
                    width,
                    channels: self.last.bias.len(),
                    values: scratch.a.get().to_vec(),
                }
            })
            .collect();
        self.spare.give(scratch);
        maps
    }

    /// Puts `image`, resized and normalised, channels-last into `scratch.image`.
    fn load(&self, image: &RgbImage, scratch: &mut Scratch) -> [usize; 2] {
        let spec = &self.input;
        let resized = spec.resize(image);
        let from: [usize; 3] = std::array::from_fn(|c| spec.channels.source(c));
        let rgb = resized.as_raw();
        scratch.image.resize(rgb.len(), 0.0);
        for (dst, px) in scratch.image.chunks_exact_mut(3).zip(rgb.chunks_exact(3)) {
            for c in 0..3 {
                dst[c] = self.levels[c][usize::from(px[from[c]])];
            }
        }
        [spec.height, spec.width]
    }

    /// Runs the network on already normalised images, `[batch, 3, height, width]` row-major
    /// (the layout [`crate::preprocess`] gives burn).
    pub fn forward_nchw(&self, values: &[f32], batch: usize, [h, w]: [usize; 2]) -> CpuOutput {
        assert_eq!(values.len(), batch * 3 * h * w, "input of the wrong size");
        self.run(batch, |i, scratch| {
            let (r, rest) = values[i * 3 * h * w..][..3 * h * w].split_at(h * w);
            let (g, b) = rest.split_at(h * w);
            scratch.image.resize(3 * h * w, 0.0);
            for (dst, ((r, g), b)) in scratch
                .image
                .chunks_exact_mut(3)
                .zip(r.iter().zip(g).zip(b))
            {
                dst.copy_from_slice(&[*r, *g, *b]);
            }
            [h, w]
        })
    }

    /// Runs image `i` of `batch` on a thread's scratch, after `load` has put it channels-last
    /// into `scratch.image` (returning its size).
    fn run(
        &self,
        batch: usize,
        load: impl Fn(usize, &mut Scratch) -> [usize; 2] + Sync,
    ) -> CpuOutput {
        let dim = self.dim();
        let states = reid_core::parallel::fold_tasks(
            batch,
            || (self.spare.take(), Vec::new()),
            |(scratch, done): &mut (Scratch, Vec<(usize, Vec<f32>)>), i| {
                let size = load(i, scratch);
                done.push((i, self.forward_one(scratch, size)));
            },
        );
        let mut pooled = vec![0f32; batch * dim];
        for (scratch, done) in states {
            self.spare.give(scratch);
            for (i, row) in done {
                pooled[i * dim..][..dim].copy_from_slice(&row);
            }
        }
        let embeddings = pooled
            .chunks(dim.max(1))
            .flat_map(|row| self.head.embed(row))
            .collect();
        CpuOutput {
            pooled,
            embeddings,
            dim,
        }
    }

    /// The backbone on `scratch.image` (`[h, w, 3]`): its feature map is left in `scratch.a`,
    /// `[h_out, w_out, channels]`. Returns `[h_out, w_out]`.
    fn backbone(&self, s: &mut Scratch, [h, w]: [usize; 2]) -> [usize; 2] {
        let [mut h, mut w] = kernels::im2col3x3::<3>(&s.image, [h, w], 2, &mut s.a);
        let stem = &self.stem;
        let out = s.cur.take(h * w * stem.bias.len());
        kernels::pointwise(s.a.get(), h * w, &stem.weight, &stem.bias, true, false, out);
        for block in &self.blocks {
            [h, w] = block.forward(s, [h, w]);
            std::mem::swap(&mut s.cur, &mut s.next);
        }
        let l = &self.last;
        let out = s.a.take(h * w * l.bias.len());
        kernels::pointwise(s.cur.get(), h * w, &l.weight, &l.bias, l.relu6, false, out);
        [h, w]
    }

    /// The backbone and global (average or GeM) pooling on `scratch.image` (`[h, w, 3]`).
    fn forward_one(&self, s: &mut Scratch, size: [usize; 2]) -> Vec<f32> {
        self.backbone(s, size);
        self.head.pool(s.a.get(), self.last.bias.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ReidNetConfig;
    use crate::preprocess;
    use burn::module::{Module, Param};
    use burn::tensor::{Device, Distribution};

    /// A network whose BatchNorms have non-trivial statistics, so folding is really tested.
    fn net(device: &Device) -> ReidNet {
        let net = ReidNetConfig::default().init(device);
        let mut k = 0u64;
        net.map(&mut RandomStats { k: &mut k, device })
    }

    struct RandomStats<'a> {
        k: &'a mut u64,
        device: &'a Device,
    }

    impl burn::module::ModuleMapper for RandomStats<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            *self.k += 1;
            let shape = param.val().dims();
            if D == 1 {
                // gamma, beta, running statistics: values around 1 (all positive, so a variance
                // stays valid).
                let t = Tensor::<D>::random(shape, Distribution::Uniform(0.5, 1.5), self.device);
                Param::initialized(param.id, t)
            } else {
                param
            }
        }
    }

    #[test]
    fn the_folded_network_equals_the_burn_network() {
        let device = Device::flex();
        folded_equals_burn(net(&device), &device);
    }

    #[test]
    fn the_folded_network_with_gem_pooling_equals_the_burn_network() {
        let device = Device::flex();
        let mut net = net(&device);
        net.gem = Some(crate::head::Gem::new(3.0, &device));
        folded_equals_burn(net, &device);
    }

    fn folded_equals_burn(net: ReidNet, device: &Device) {
        let device = device.clone();
        let spec = InputSpec::default();
        let images: Vec<RgbImage> = (0..3)
            .map(|s| {
                RgbImage::from_fn(50 + 10 * s, 120, |x, y| {
                    image::Rgb([(x * 5 + s * 40) as u8, (y * 2) as u8, ((x * y) % 251) as u8])
                })
            })
            .collect();
        // The statistics really are not the identity's (mean 0, variance 1).
        let Backbone::MobileNetV2(backbone) = &net.backbone else {
            unreachable!("the default network is a MobileNetV2")
        };
        let mean = values(backbone.blocks[3].depthwise.bn.running_mean.value());
        assert!(
            mean.iter().all(|&m| m >= 0.5),
            "running mean {:?}",
            &mean[..4]
        );
        let want = net.forward(preprocess(&images, &spec, &device));
        let cpu = CpuNet::new(&net, spec.clone()).unwrap();
        let got = cpu.embed(&images);
        let pooled: Vec<f32> = values(want.pooled);
        let embedding: Vec<f32> = values(want.embedding);
        assert_eq!(got.dim, 1280);
        let diff = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        let scale = pooled.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            diff(&got.pooled, &pooled) <= 1e-4 * scale.max(1.0),
            "pooled differ by {} (largest value {scale})",
            diff(&got.pooled, &pooled)
        );
        assert!(diff(&got.embeddings, &embedding) < 1e-5);

        // The feature maps: the head on them gives the embeddings exactly, and they are burn's
        // backbone output (channels-last).
        let maps = cpu.feature_maps(&images);
        for (i, map) in maps.iter().enumerate() {
            assert_eq!(
                cpu.head().embedding(map),
                got.embeddings[i * 1280..][..1280]
            );
        }
        let burn_maps = values(
            net.backbone
                .forward(preprocess(&images, &spec, &device))
                .permute([0, 2, 3, 1]),
        );
        let cpu_maps: Vec<f32> = maps.iter().flat_map(|m| m.values.clone()).collect();
        assert_eq!(
            (maps[0].height, maps[0].width, maps[0].channels),
            (8, 4, 1280)
        );
        let scale = burn_maps.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(diff(&cpu_maps, &burn_maps) <= 1e-4 * scale.max(1.0));
    }

    #[test]
    fn an_image_is_loaded_as_the_spec_normalises_each_pixel_in_either_channel_order() {
        use crate::preprocess::{ChannelOrder, PixelRange};
        let device = Device::flex();
        let net = net(&device);
        let image = RgbImage::from_fn(7, 13, |x, y| {
            image::Rgb([(x * 37 + y) as u8, 255 - (y * 19) as u8, (x * y * 5) as u8])
        });
        for channels in [ChannelOrder::Rgb, ChannelOrder::Bgr] {
            for range in [PixelRange::Unit, PixelRange::Byte] {
                let spec = InputSpec {
                    channels,
                    range,
                    height: 16,
                    width: 8,
                    ..InputSpec::default()
                };
                let cpu = CpuNet::new(&net, spec.clone()).unwrap();
                let mut scratch = Scratch::default();
                assert_eq!(cpu.load(&image, &mut scratch), [16, 8]);
                let want: Vec<f32> = spec
                    .resize(&image)
                    .as_raw()
                    .chunks_exact(3)
                    .flat_map(|px| (0..3).map(|c| spec.normalise_pixel(px, c)))
                    .collect();
                assert_eq!(scratch.image, want, "{channels:?} {range:?}");
                // The same pixels handed over as burn's NCHW tensor give the same network output.
                let mut nchw = vec![0f32; want.len()];
                for (p, px) in want.chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        nchw[c * 16 * 8 + p] = px[c];
                    }
                }
                let from_pixels = cpu.embed(std::slice::from_ref(&image));
                assert_eq!(cpu.forward_nchw(&nchw, 1, [16, 8]), from_pixels);
            }
        }
    }

    #[test]
    fn layers_without_a_kernel_are_refused_in_words() {
        use burn::nn::conv::Conv2dConfig;
        use burn::nn::BatchNormConfig;
        let device = Device::flex();
        let layer = |groups: usize, kernel: usize| ConvBnAct {
            conv: Conv2dConfig::new([8, 8], [kernel, kernel])
                .with_groups(groups)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(&device),
            bn: BatchNormConfig::new(8).init(&device),
            relu6: true,
        };
        assert!(depthwise(&layer(8, 3)).is_ok());
        // A grouped convolution that is not depthwise, and a 5x5 one.
        for bad in [layer(2, 3), layer(8, 5)] {
            let err = depthwise(&bad).unwrap_err().to_string();
            assert!(err.contains("no kernel"), "{err}");
        }
    }

    #[test]
    fn a_batch_gives_each_image_what_it_gets_alone() {
        let device = Device::flex();
        let cpu = CpuNet::new(&net(&device), InputSpec::default()).unwrap();
        let images: Vec<RgbImage> = (0..5)
            .map(|s| RgbImage::from_fn(64, 128, |x, y| image::Rgb([(x * s) as u8, y as u8, 9])))
            .collect();
        let all = cpu.embed(&images);
        for (i, image) in images.iter().enumerate() {
            let alone = cpu.embed(std::slice::from_ref(image));
            assert_eq!(alone.embeddings, all.embeddings[i * 1280..][..1280]);
        }
        assert!(cpu.embed(&[]).embeddings.is_empty());
    }
}
