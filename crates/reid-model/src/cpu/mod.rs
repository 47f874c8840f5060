//! The network rewritten for inference on the CPU, natively and in wasm: MobileNetV2
//! ([`mobilenet`]), bottleneck ResNets ([`resnet`]) and OSNet ([`osnet`]). At load time each
//! BatchNorm is folded into the convolution before it (and the BNNeck into one scale and
//! shift), weights are laid out for the kernels (1x1 convolutions as `[cin, cout]` matrices,
//! larger ones as matrices over im2col rows, both row-major for the `gemm` crate natively and
//! packed in panels for `simd128_gemm` in wasm; depthwise taps as `[9, channels]`), and
//! activations run channels-last with bias and activation fused into each
//! kernel. Images of a batch run on all cores, each thread reusing its own buffers. Results
//! equal [`ReidNet::forward`]'s up to float rounding (the parity tests hold both to PyTorch
//! within 1e-4, or three times PyTorch's own float32 error where its reference has more, as
//! for trained OSNets).

mod kernels;
mod mobilenet;
mod osnet;
mod resnet;
#[cfg(any(target_arch = "wasm32", test))]
mod simd128_gemm;

use kernels::{Act, Buf};

use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;

use crate::explain::{FeatureMap, Head};
use crate::network::{Backbone, ReidNet};
use crate::preprocess::{InputSpec, RgbImage};
use crate::ModelError;

/// A convolution with its BatchNorm folded in, as a matrix over pixels (a 1x1) or im2col rows.
#[derive(Debug, Clone)]
struct Pointwise {
    /// `[cin * k * k, cout]`, laid out by [`kernels::layout`] for the matrix product.
    weight: Vec<f32>,
    bias: Vec<f32>,
    act: Act,
}

impl Pointwise {
    /// From the `[cin * k * k, cout]` row-major matrix (`cout` is `bias.len()`).
    fn new(weight: Vec<f32>, bias: Vec<f32>, act: Act) -> Self {
        Self {
            weight: kernels::layout(weight, bias.len()),
            bias,
            act,
        }
    }

    fn cout(&self) -> usize {
        self.bias.len()
    }

    /// Rows of the matrix: input channels (times taps).
    fn cin(&self) -> usize {
        kernels::rows(&self.weight, self.cout())
    }

    /// The matrix, `[cin, cout]` row-major.
    fn row_major(&self) -> Vec<f32> {
        kernels::row_major(&self.weight, self.cout())
    }

    /// The product on `pixels` rows of `input` into `out` (`[pixels, cout]`), added to what
    /// `out` holds when `accumulate` (see [`kernels::pointwise`]).
    fn run(&self, input: &[f32], pixels: usize, accumulate: bool, out: &mut [f32]) {
        kernels::pointwise(
            input,
            pixels,
            &self.weight,
            &self.bias,
            self.act,
            accumulate,
            out,
        );
    }
}

/// The folded backbones.
#[derive(Debug, Clone)]
enum Folded {
    MobileNetV2(mobilenet::MobileNet),
    ResNet(resnet::FoldedResNet),
    OsNet(osnet::FoldedOsNet),
}

/// [`ReidNet`] folded for CPU inference.
#[derive(Debug, Clone)]
pub struct CpuNet {
    backbone: Folded,
    /// Pooling, the embedding layer if any, and the BNNeck.
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
    /// Globally pooled backbone features, through the embedding layer when there is one (as
    /// [`ReidNet::pooled`] gives them).
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
struct FoldedConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    dims: [usize; 4],
}

/// The convolution's weight scaled per output channel by the BatchNorm (if any), and the
/// folded bias (the convolution's own, or zeros, without a BatchNorm).
fn fold(conv: &Conv2d, bn: Option<&BatchNorm>) -> Result<FoldedConv, ModelError> {
    let dims = conv.weight.val().dims();
    let (scale, shift) = match bn {
        Some(bn) => bn_affine(bn),
        None => (vec![1.0; dims[0]], vec![0.0; dims[0]]),
    };
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
    Ok(FoldedConv { weight, bias, dims })
}

/// Whether the CPU path has a kernel for `conv`: square, `kernel` wide, padded to keep the size
/// (before its stride), not dilated, and either dense or depthwise as asked.
fn check(conv: &Conv2d, kernel: usize, groups_are_channels: bool) -> Result<(), ModelError> {
    let pad = (kernel - 1) / 2;
    let ok = conv.kernel_size == [kernel, kernel]
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && match conv.padding {
            PaddingConfig2d::Explicit(a, b, c, d) => [a, b, c, d] == [pad; 4],
            PaddingConfig2d::Valid => pad == 0,
            _ => false,
        }
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

/// A dense convolution and its BatchNorm (if any) as a `[cin * k * k, cout]` matrix, inputs
/// ordered tap-major then channel, as [`kernels::im2col`] lays them out, followed by `act`.
fn matrix(conv: &Conv2d, bn: Option<&BatchNorm>, act: Act) -> Result<Pointwise, ModelError> {
    let FoldedConv {
        weight,
        bias,
        dims: [cout, cin, kh, kw],
    } = fold(conv, bn)?;
    let rows = cin * kh * kw;
    let mut t = vec![0f32; rows * cout];
    for o in 0..cout {
        for i in 0..cin {
            for k in 0..kh * kw {
                t[(k * cin + i) * cout + o] = weight[(o * cin + i) * kh * kw + k];
            }
        }
    }
    Ok(Pointwise::new(t, bias, act))
}

/// A 1x1 convolution of stride 1 and its BatchNorm (if any) as a `[cin, cout]` matrix.
fn one_by_one(conv: &Conv2d, bn: Option<&BatchNorm>, act: Act) -> Result<Pointwise, ModelError> {
    check(conv, 1, false)?;
    if conv.stride != [1, 1] {
        return Err(ModelError::Weights("a strided 1x1 convolution".into()));
    }
    matrix(conv, bn, act)
}

/// One thread's buffers, reused from image to image.
#[derive(Default)]
struct Scratch {
    /// The input, channels-last: one image, or a group of them.
    image: Vec<f32>,
    /// Where a group's images are put together, image after image, before it is swapped into
    /// `image` (it then holds the last image alone, and the next group is put together in it).
    group: Vec<f32>,
    /// A block's input.
    cur: Buf,
    /// A block's output.
    next: Buf,
    /// A strip of MobileNetV2's expanded activations, im2col rows, or the 1x1 output of an
    /// OSNet lightweight convolution; the feature map at the end.
    a: Buf,
    /// A strip of the depthwise output, a bottleneck's reduced input, or an OSNet block's
    /// reduced input and then its four streams' first outputs side by side.
    b: Buf,
    /// A bottleneck's 3x3 output, or an OSNet stream's output.
    c: Buf,
    /// The gated sum of an OSNet block's streams.
    d: Buf,
}

impl CpuNet {
    /// Folds `net` (any weights, on any device: they are read back once) for the CPU.
    /// MobileNetV2, bottleneck ResNets without IBN-a or non-local blocks, and OSNet without
    /// instance norms are folded; other networks run as burn modules.
    pub fn new(net: &ReidNet, input: InputSpec) -> Result<Self, ModelError> {
        let backbone = match &net.backbone {
            Backbone::MobileNetV2(b) => Folded::MobileNetV2(mobilenet::MobileNet::fold(b)?),
            Backbone::ResNet(b) => Folded::ResNet(resnet::FoldedResNet::fold(b)?),
            Backbone::OsNet(b) => {
                let folded = osnet::FoldedOsNet::fold(b)?;
                // Its unpadded average pools leave nothing of a small enough input.
                if folded.out_size([input.height, input.width]).contains(&0) {
                    return Err(ModelError::Weights(format!(
                        "a {}x{} input leaves no pixels after OSNet's pools",
                        input.height, input.width
                    )));
                }
                Folded::OsNet(folded)
            }
        };
        Ok(Self {
            backbone,
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

    /// Pooling, the embedding layer if any and the BNNeck, which [`crate::explain`] splits over
    /// image regions.
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
                let [height, width] = self.backbone(&mut scratch, 1, size);
                FeatureMap {
                    height,
                    width,
                    channels: self.channels(),
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

    /// Runs the `batch` images `load(i, scratch)` puts channels-last into `scratch.image`
    /// (returning their size, the same for all), in groups of [`Self::group`].
    fn run(
        &self,
        batch: usize,
        load: impl Fn(usize, &mut Scratch) -> [usize; 2] + Sync,
    ) -> CpuOutput {
        self.run_grouped(batch, self.group(batch), load)
    }

    /// [`Self::run`] with `group` images per task: each thread takes the next group, loads its
    /// images one by one and runs them through the network together.
    fn run_grouped(
        &self,
        batch: usize,
        group: usize,
        load: impl Fn(usize, &mut Scratch) -> [usize; 2] + Sync,
    ) -> CpuOutput {
        let dim = self.dim();
        let group = group.max(1);
        let states = reid_core::parallel::fold_tasks(
            batch.div_ceil(group),
            || (self.spare.take(), Vec::new()),
            |(scratch, done): &mut (Scratch, Vec<(usize, Vec<f32>)>), task| {
                let images = task * group..((task + 1) * group).min(batch);
                let n = images.len();
                let size = if n == 1 {
                    load(images.start, scratch)
                } else {
                    // The group's images one after another in `scratch.image`.
                    let mut all = std::mem::take(&mut scratch.group);
                    all.clear();
                    let mut size = [0; 2];
                    for i in images.clone() {
                        size = load(i, scratch);
                        all.extend_from_slice(&scratch.image);
                    }
                    scratch.group = std::mem::replace(&mut scratch.image, all);
                    size
                };
                done.extend(images.zip(self.forward_group(scratch, n, size)));
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
            .flat_map(|row| self.head.neck(row.to_vec()))
            .collect();
        CpuOutput {
            pooled,
            embeddings,
            dim,
        }
    }

    /// Channels of the backbone's feature map.
    fn channels(&self) -> usize {
        match &self.backbone {
            Folded::MobileNetV2(b) => b.channels(),
            Folded::ResNet(b) => b.channels(),
            Folded::OsNet(b) => b.channels(),
        }
    }

    /// How many images of a batch of `batch` each thread runs through the network together.
    /// ResNet's later stages have few pixels per image and large weights: one matrix product
    /// over the pixels of several images reads each weight once for all of them (1.02x to 1.15x
    /// for groups of 4 against single images, ResNet-50, batch 16 on 2 cores). Groups stay
    /// small enough to give every thread one. In wasm, whose matrix products read weights packed
    /// in advance (`simd128_gemm`), groups of 4 gave no gain (6.2 to 6.5 crops/s against 6.4 to
    /// 6.6 for single images, ResNet-50 in `crates/wasm-profile`), and ResNet-50's buffers take
    /// about 50 MB at 256x128 for 4 images against about 12 MB for one: one image at a time
    /// there. OSNet x1.0 ran fastest one image at a time (113 crops/s against 105 to 108
    /// in groups of 4, batch 16 on 2 cores): its products are small and its activations then
    /// stay in the cache.
    fn group(&self, batch: usize) -> usize {
        const MOST: usize = 4;
        match &self.backbone {
            Folded::MobileNetV2(_) | Folded::OsNet(_) => 1,
            Folded::ResNet(_) if cfg!(target_arch = "wasm32") => 1,
            Folded::ResNet(_) => batch
                .div_ceil(reid_core::parallel::workers())
                .clamp(1, MOST),
        }
    }

    /// The backbone on `n` images in `scratch.image` (`[n, h, w, 3]`): their feature maps are
    /// left in `scratch.a`, `[n, h_out, w_out, channels]`. Returns `[h_out, w_out]`.
    fn backbone(&self, s: &mut Scratch, n: usize, size: [usize; 2]) -> [usize; 2] {
        match &self.backbone {
            Folded::MobileNetV2(b) => {
                assert_eq!(n, 1, "MobileNetV2 runs one image at a time");
                b.forward(s, size)
            }
            Folded::ResNet(b) => b.forward(s, n, size),
            Folded::OsNet(b) => b.forward(s, n, size),
        }
    }

    /// The backbone, global (average or GeM) pooling and the embedding layer if any on `n`
    /// images in `scratch.image` (`[n, h, w, 3]`): one row per image.
    fn forward_group(&self, s: &mut Scratch, n: usize, size: [usize; 2]) -> Vec<Vec<f32>> {
        let [h, w] = self.backbone(s, n, size);
        let channels = self.channels();
        s.a.get()
            .chunks_exact((h * w * channels).max(1))
            .map(|map| self.head.features(&self.head.pool(map, channels)))
            .collect()
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
        with_random_stats(ReidNetConfig::default().init(device), device)
    }

    fn with_random_stats(net: ReidNet, device: &Device) -> ReidNet {
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
        let net = net(&device);
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
        folded_equals_burn(net, InputSpec::default(), &device);
    }

    #[test]
    fn a_folded_resnet_equals_the_burn_network_with_either_stem_pool_and_an_embedding_layer() {
        use crate::backbone::resnet::StemPool;
        let device = Device::flex();
        // torchvision's pool and last stride 2; fast-reid's pool, last stride 1 and an
        // embedding layer (as torchreid's `resnet50_fc512`). Two blocks in the second stage, so
        // one bottleneck keeps its input as the shortcut.
        for (stem_pool, last_stride, fc) in
            [(StemPool::Padded, 2, None), (StemPool::Ceil, 1, Some(24))]
        {
            let (net, input) = small_resnet(stem_pool, last_stride, fc, &device);
            folded_equals_burn(net, input, &device);
        }
    }

    /// OSNet x0.25 with an embedding layer (as torchreid's) on `[96, 40]` crops: the second
    /// 2x2 average pool then meets an odd width (12x5 to 6x2).
    fn small_osnet(device: &Device) -> (ReidNet, InputSpec) {
        let backbone = crate::network::BackboneKind::OsNetX0_25;
        small_net(backbone, Some(32), [96, 40], device)
    }

    /// `backbone` with an embedding layer of `fc` (if any) on `[height, width]` crops, with
    /// random BatchNorm statistics.
    fn small_net(
        backbone: crate::network::BackboneKind,
        fc: Option<usize>,
        [height, width]: [usize; 2],
        device: &Device,
    ) -> (ReidNet, InputSpec) {
        let input = InputSpec {
            height,
            width,
            ..InputSpec::default()
        };
        let config = ReidNetConfig {
            backbone,
            fc,
            input: input.clone(),
            ..ReidNetConfig::default()
        };
        (with_random_stats(config.init(device), device), input)
    }

    #[test]
    fn a_folded_osnet_equals_the_burn_network() {
        let device = Device::flex();
        let (net, input) = small_osnet(&device);
        let cpu = CpuNet::new(&net, input.clone()).unwrap();
        let Folded::OsNet(folded) = &cpu.backbone else {
            unreachable!("an OSNet folds as one")
        };
        // 96x40: the stem and its pool to 24x10, the average pools to 12x5 and 6x2.
        assert_eq!(folded.out_size([96, 40]), [6, 2]);
        // 12 columns end as 6, 3, 1 and then none: refused, not a map of no pixels.
        let tiny = InputSpec {
            height: 40,
            width: 12,
            ..input.clone()
        };
        let err = CpuNet::new(&net, tiny).unwrap_err().to_string();
        assert!(err.contains("40x12 input leaves no pixels"), "{err}");
        folded_equals_burn(net, input, &device);
    }

    #[test]
    fn networks_without_kernels_are_refused_in_words() {
        use crate::backbone::resnet::ResNetConfig;
        use crate::network::BackboneKind;
        let device = Device::flex();
        for (backbone, want) in [
            (
                BackboneKind::OsNetAinX0_25,
                "OSNet-AIN's instance normalisation",
            ),
            (
                BackboneKind::ResNet(ResNetConfig::resnet50(1, true)),
                "IBN-a",
            ),
            (
                BackboneKind::ResNet(ResNetConfig::fastreid_resnet50(false, true)),
                "non-local",
            ),
        ] {
            let config = ReidNetConfig {
                backbone,
                ..ReidNetConfig::default()
            };
            let err = CpuNet::new(&config.init(&device), InputSpec::default()).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
    }

    /// An OSNet whose channel gate or further lightweight convolution does not match its
    /// block's width (a file whose tensors burn loaded without checking shapes) is refused
    /// when folded, not left to panic in a kernel.
    #[test]
    fn an_osnet_block_of_mismatched_widths_is_refused_in_words() {
        use crate::backbone::osnet::LightConv3x3;
        use burn::nn::conv::Conv2dConfig;
        use burn::nn::BatchNormConfig;
        let device = Device::flex();
        let (net, spec) = small_osnet(&device);
        assert!(CpuNet::new(&net, spec.clone()).is_ok());
        fn first_block(net: &mut ReidNet) -> &mut crate::backbone::osnet::OsBlock {
            match &mut net.backbone {
                Backbone::OsNet(os) => &mut os.conv2.blocks[0],
                _ => unreachable!("an OSNet"),
            }
        }

        let mut wide_gate = net.clone();
        let gate = &mut first_block(&mut wide_gate).gate;
        let [hidden, mid, ..] = gate.fc1.weight.dims();
        gate.fc1 = Conv2dConfig::new([mid + 1, hidden], [1, 1]).init(&device);
        gate.fc2 = Conv2dConfig::new([hidden, mid + 1], [1, 1]).init(&device);
        let err = CpuNet::new(&wide_gate, spec.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains("channel gate scales"), "{err}");

        let mut wide_light = net;
        let wide = mid + 2;
        first_block(&mut wide_light).conv2b[1] = LightConv3x3 {
            conv1: Conv2dConfig::new([mid, wide], [1, 1])
                .with_bias(false)
                .init(&device),
            conv2: Conv2dConfig::new([wide, wide], [3, 3])
                .with_groups(wide)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(&device),
            bn: BatchNormConfig::new(wide).init(&device),
        };
        let err = CpuNet::new(&wide_light, spec).unwrap_err().to_string();
        assert!(err.contains("lightweight convolution from"), "{err}");
    }

    #[test]
    fn the_folded_network_with_gem_pooling_equals_the_burn_network() {
        let device = Device::flex();
        let mut net = net(&device);
        net.gem = Some(crate::head::Gem::new(3.0, &device));
        folded_equals_burn(net, InputSpec::default(), &device);
    }

    fn folded_equals_burn(net: ReidNet, spec: InputSpec, device: &Device) {
        let device = device.clone();
        let images: Vec<RgbImage> = (0..3)
            .map(|s| {
                RgbImage::from_fn(50 + 10 * s, 120, |x, y| {
                    image::Rgb([(x * 5 + s * 40) as u8, (y * 2) as u8, ((x * y) % 251) as u8])
                })
            })
            .collect();
        let want = net.forward(preprocess(&images, &spec, &device));
        let cpu = CpuNet::new(&net, spec.clone()).unwrap();
        let got = cpu.embed(&images);
        let pooled: Vec<f32> = values(want.pooled);
        let embedding: Vec<f32> = values(want.embedding);
        let dim = net.embedding_dim();
        assert_eq!(got.dim, dim);
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
        assert!(
            diff(&got.embeddings, &embedding) < 1e-5,
            "embeddings differ by {}",
            diff(&got.embeddings, &embedding)
        );

        // The feature maps: the head on them gives the embeddings exactly, and they are burn's
        // backbone output (channels-last).
        let maps = cpu.feature_maps(&images);
        for (i, map) in maps.iter().enumerate() {
            // One image at a time here, in groups in `embed` for a ResNet: the matrix products
            // may then sum in another order.
            let d = diff(
                &cpu.head().embedding(map),
                &got.embeddings[i * dim..][..dim],
            );
            assert!(d < 1e-6, "image {i}: the head on its map differs by {d}");
        }
        let burn_maps = net.backbone.forward(preprocess(&images, &spec, &device));
        let [_, channels, height, width] = burn_maps.dims();
        let burn_maps = values(burn_maps.permute([0, 2, 3, 1]));
        let cpu_maps: Vec<f32> = maps.iter().flat_map(|m| m.values.clone()).collect();
        assert_eq!(
            (maps[0].height, maps[0].width, maps[0].channels),
            (height, width, channels)
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
        use crate::backbone::mobilenet_v2::ConvBnAct;
        use mobilenet::depthwise;
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

    /// A small ResNet (two blocks in its second stage) on `[96, 48]` crops.
    fn small_resnet(
        stem_pool: crate::backbone::resnet::StemPool,
        last_stride: usize,
        fc: Option<usize>,
        device: &Device,
    ) -> (ReidNet, InputSpec) {
        use crate::backbone::resnet::ResNetConfig;
        let resnet = ResNetConfig {
            layers: [1, 2, 1, 1],
            stem_pool,
            ..ResNetConfig::resnet50(last_stride, false)
        };
        let backbone = crate::network::BackboneKind::ResNet(resnet);
        small_net(backbone, fc, [96, 48], device)
    }

    #[test]
    fn a_batch_gives_each_image_what_it_gets_alone() {
        let device = Device::flex();
        let resnet = small_resnet(Default::default(), 2, None, &device);
        // ResNets run images in groups, MobileNetV2 and OSNet one by one; every group size
        // gives each image what it gets alone, whatever the machine's core count.
        let nets = [
            (net(&device), InputSpec::default()),
            resnet,
            small_osnet(&device),
        ];
        for (net, spec) in nets {
            let cpu = CpuNet::new(&net, spec).unwrap();
            let dim = cpu.dim();
            let images: Vec<RgbImage> = (0..5)
                .map(|s| RgbImage::from_fn(64, 128, |x, y| image::Rgb([(x * s) as u8, y as u8, 9])))
                .collect();
            let alone: Vec<CpuOutput> = images
                .iter()
                .map(|image| cpu.embed(std::slice::from_ref(image)))
                .collect();
            let groups: &[usize] = match cpu.backbone {
                Folded::MobileNetV2(_) => &[1],
                Folded::ResNet(_) | Folded::OsNet(_) => &[1, 2, 3, 4],
            };
            for &group in groups {
                let all = cpu.run_grouped(images.len(), group, |i, s| cpu.load(&images[i], s));
                for (i, alone) in alone.iter().enumerate() {
                    let diff = alone
                        .embeddings
                        .iter()
                        .zip(&all.embeddings[i * dim..][..dim])
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(diff < 1e-6, "image {i} in groups of {group}: {diff}");
                }
            }
            assert_eq!(cpu.embed(&images).embeddings.len(), images.len() * dim);
            assert!(cpu.embed(&[]).embeddings.is_empty());
        }
    }
}
