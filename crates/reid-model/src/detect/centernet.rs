//! A small single-class, anchor-free CNN people detector in the manner of CenterNet (Zhou et
//! al. 2019, "Objects as Points") on the ImageNet MobileNetV2 backbone.
//!
//! - Backbone: MobileNetV2's stem and its first 13 inverted residual blocks (up to the 96-channel
//!   stage, output stride 16); the stride-32 stages and the last 1x1 convolution are not used.
//! - Neck: the stride-16 map (96 channels) upsampled twice by repetition and added to the
//!   stride-8 map (32 channels), each through a 1x1 convolution to `head_channels`; a 3x3
//!   convolution and ReLU.
//! - Heads (1x1 convolutions at stride 8): a person-centre heatmap (one logit per cell, its bias
//!   starting at a prior of 0.1), the box size as `ln(size / 8)` (width, height), and the
//!   centre's offset within its cell (x, y).
//! - Loss ([`CenterNet::loss`]): CenterNet's penalty-reduced focal loss on the heatmap, whose
//!   targets are Gaussians around each centre (radius from the box size), and L1 on size and
//!   offset at the centre cells, each divided by the number of people.
//! - Decoding ([`decode`]): cells that are the largest of their 3x3 neighbourhood and above the
//!   score threshold, at most 100, boxes from size and offset mapped back to the frame, then a
//!   greedy non-maximum suppression at IoU 0.5 (tall people's centres can make two peaks).
//!
//! The frame is resized (bilinear) to the network's input size, any multiple of 16. The same
//! module runs on any burn device; [`CenterNetDetector`] runs it on one picture at a time.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::{log_sigmoid, relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use burn_store::{BurnpackStore, HalfPrecisionAdapter};
use image::RgbImage;
use reid_core::BBox;

use super::hog::{Detection, Rect};
use crate::backbone::mobilenet_v2::{ConvBnAct, InvertedResidual, MobileNetV2};
use crate::preprocess::InputSpec;
use crate::ModelError;

/// Burnpack metadata key holding a detector's [`CenterNetConfig`] as JSON (a ReID model has
/// [`crate::weights::CONFIG_KEY`] instead, so neither loads as the other).
pub const DETECTOR_CONFIG_KEY: &str = "reid.detector";

/// Output stride of the heads.
pub const STRIDE: usize = 8;
/// Blocks of MobileNetV2 used: through the 96-channel stage (output stride 16).
const BLOCKS: usize = 13;
/// Blocks through the 32-channel stage (output stride 8).
const BLOCKS_STRIDE8: usize = 6;
/// At most this many people per frame.
const MAX_PEOPLE: usize = 100;
/// Boxes overlapping a better one by more than this are dropped.
const NMS_IOU: f64 = 0.5;

/// The detector's shape.
#[derive(Config, Debug, PartialEq)]
pub struct CenterNetConfig {
    /// Network input width, pixels (a multiple of 16).
    #[config(default = 448)]
    pub width: usize,
    /// Network input height, pixels (a multiple of 16).
    #[config(default = 256)]
    pub height: usize,
    /// Channels of the neck and heads.
    #[config(default = 64)]
    pub head_channels: usize,
}

impl CenterNetConfig {
    /// Checks the input size.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.width == 0
            || self.height == 0
            || !self.width.is_multiple_of(16)
            || !self.height.is_multiple_of(16)
        {
            return Err(ModelError::Weights(format!(
                "the detector's input size must be multiples of 16, not {}x{}",
                self.width, self.height
            )));
        }
        if self.head_channels == 0 {
            return Err(ModelError::Weights("head_channels must be above 0".into()));
        }
        Ok(())
    }

    /// The heads' map size (width, height).
    pub fn map_size(&self) -> (usize, usize) {
        (self.width / STRIDE, self.height / STRIDE)
    }

    /// How a frame becomes the network's input: resized bilinearly to the input size, RGB in
    /// 0-1, ImageNet statistics (as the backbone was trained).
    pub fn input_spec(&self) -> InputSpec {
        InputSpec {
            height: self.height,
            width: self.width,
            ..InputSpec::default()
        }
    }

    /// A detector with fresh heads on `backbone`'s first 13 blocks.
    pub fn init_from(&self, backbone: MobileNetV2, device: &Device) -> CenterNet {
        let MobileNetV2 {
            stem, mut blocks, ..
        } = backbone;
        blocks.truncate(BLOCKS);
        let c = self.head_channels;
        let conv1 = |inp: usize, out: usize| Conv2dConfig::new([inp, out], [1, 1]).init(device);
        let mut heatmap = conv1(c, 1);
        // Prior of 0.1 per cell, so the focal loss starts small (CenterNet's -2.19).
        heatmap.bias = Some(Param::from_tensor(Tensor::<1>::full(
            [1],
            -(0.9f32 / 0.1).ln(),
            device,
        )));
        CenterNet {
            stem,
            blocks,
            lateral8: conv1(32, c),
            lateral16: conv1(96, c),
            smooth: Conv2dConfig::new([c, c], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            heatmap,
            size: conv1(c, 2),
            offset: conv1(c, 2),
        }
    }

    /// A detector with random weights throughout (for tests; train from ImageNet weights).
    pub fn init(&self, device: &Device) -> CenterNet {
        let backbone = crate::backbone::mobilenet_v2::MobileNetV2Config::new().init(device);
        self.init_from(backbone, device)
    }
}

/// The detector network.
#[derive(Module, Debug)]
pub struct CenterNet {
    /// MobileNetV2's 3x3 stem.
    pub stem: ConvBnAct,
    /// MobileNetV2's first 13 inverted residual blocks.
    pub blocks: Vec<InvertedResidual>,
    /// Stride-8 map (32 channels) to the neck.
    pub lateral8: Conv2d,
    /// Stride-16 map (96 channels) to the neck.
    pub lateral16: Conv2d,
    /// 3x3 convolution over the summed maps.
    pub smooth: Conv2d,
    /// Person-centre logits.
    pub heatmap: Conv2d,
    /// `ln(width / 8)`, `ln(height / 8)` of the box centred there (input pixels).
    pub size: Conv2d,
    /// The centre's position within its cell, `[0, 1)` in x and y.
    pub offset: Conv2d,
}

/// The heads' maps for a batch, each `[batch, channels, height / 8, width / 8]`.
pub struct CenterNetOutput {
    /// One logit per cell.
    pub heatmap: Tensor<4>,
    /// Two channels: log width and log height over the stride.
    pub size: Tensor<4>,
    /// Two channels: x and y offset within the cell.
    pub offset: Tensor<4>,
}

/// Targets of one batch, laid out as the heads' maps (`[batch, c, h, w]` flattened).
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub batch: usize,
    pub map: (usize, usize),
    /// Gaussian bumps, 1 at each centre cell.
    pub heatmap: Vec<f32>,
    /// 1 where the focal loss counts a cell, 0 inside boxes of people who are ignored.
    pub weight: Vec<f32>,
    /// 1 at each centre cell.
    pub centre: Vec<f32>,
    /// Two channels: the centre cells' `ln(size / 8)`.
    pub size: Vec<f32>,
    /// Two channels: the centre cells' offsets.
    pub offset: Vec<f32>,
    /// People whose centre is marked.
    pub people: usize,
}

/// One person's box in one picture, in the network's input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetBox {
    pub bbox: BBox,
    /// Too small or too hidden to be asked for: neither found nor missed.
    pub ignore: bool,
}

impl CenterNet {
    /// `[batch, 3, h, w]` (normalised pixels) to the heads' maps.
    pub fn forward(&self, x: Tensor<4>) -> CenterNetOutput {
        let mut x = self.stem.forward(x);
        let mut stride8 = None;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(x);
            if i + 1 == BLOCKS_STRIDE8 {
                stride8 = Some(x.clone());
            }
        }
        let stride8 = stride8.expect("the detector has its stride-8 blocks");
        let up = upsample2(self.lateral16.forward(x));
        let y = relu(self.smooth.forward(self.lateral8.forward(stride8) + up));
        CenterNetOutput {
            heatmap: self.heatmap.forward(y.clone()),
            size: self.size.forward(y.clone()),
            offset: self.offset.forward(y),
        }
    }

    /// The training loss `(total, [heatmap, size, offset])` of a batch against `targets`:
    /// CenterNet's focal loss (alpha 2, beta 4) plus L1 on size and offset at the centres (size
    /// weighted by `size_weight`), each over the number of people (at least 1).
    pub fn loss(
        &self,
        out: &CenterNetOutput,
        targets: &Targets,
        size_weight: f32,
    ) -> (Tensor<1>, Tensor<1>) {
        let device = out.heatmap.device();
        let (w, h) = targets.map;
        let n = targets.batch;
        let map = |values: &[f32], c: usize| {
            Tensor::<4>::from_data(TensorData::new(values.to_vec(), [n, c, h, w]), &device)
        };
        let gaussian = map(&targets.heatmap, 1);
        let weight = map(&targets.weight, 1);
        let centre = map(&targets.centre, 1);
        let people = targets.people.max(1) as f32;
        let logits = out.heatmap.clone();
        let p = sigmoid(logits.clone()).clamp(1e-4, 1.0 - 1e-4);
        // log p and log(1 - p), stable from the logits.
        let log_p = log_sigmoid(logits.clone()).clamp_min(1e-4f32.ln());
        let log_q = log_sigmoid(logits.neg()).clamp_min(1e-4f32.ln());
        let q = p.clone().neg().add_scalar(1.0);
        let positive = log_p * q.clone() * q * centre.clone();
        let far = gaussian.neg().add_scalar(1.0).powi_scalar(4);
        let negative =
            log_q * p.clone() * p * far * (centre.clone().neg().add_scalar(1.0)) * weight;
        let focal = (positive + negative).sum().neg().div_scalar(people);
        let l1 = |pred: Tensor<4>, target: &[f32]| {
            (pred - map(target, 2))
                .abs()
                .mul(centre.clone().repeat_dim(1, 2))
                .sum()
                .div_scalar(people)
        };
        let size = l1(out.size.clone(), &targets.size);
        let offset = l1(out.offset.clone(), &targets.offset);
        let total = focal.clone() + size.clone().mul_scalar(size_weight) + offset.clone();
        let parts = Tensor::cat(vec![focal, size, offset], 0).detach();
        (total, parts)
    }
}

/// `[n, c, h, w] -> [n, c, 2h, 2w]`, each value repeated over a 2x2 square (differentiable).
fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

/// The Gaussian radius CenterNet gives a box of `w` x `h` map cells: the largest shift of a
/// corner that keeps a box of the same size at IoU 0.7 or more with it (Law and Deng's three
/// cases), at least 0.
pub fn gaussian_radius(w: f32, h: f32) -> f32 {
    let min_overlap = 0.7f32;
    let (a1, b1, c1) = (
        1.0,
        h + w,
        w * h * (1.0 - min_overlap) / (1.0 + min_overlap),
    );
    let r1 = (b1 + (b1 * b1 - 4.0 * a1 * c1).sqrt()) / 2.0;
    let (a2, b2, c2) = (4.0, 2.0 * (h + w), (1.0 - min_overlap) * w * h);
    let r2 = (b2 + (b2 * b2 - 4.0 * a2 * c2).sqrt()) / 2.0;
    let (a3, b3, c3) = (
        4.0 * min_overlap,
        -2.0 * min_overlap * (h + w),
        (min_overlap - 1.0) * w * h,
    );
    let r3 = (b3 + (b3 * b3 - 4.0 * a3 * c3).sqrt()) / 2.0;
    r1.min(r2).min(r3).max(0.0)
}

/// The training targets of a batch: per picture, its people's boxes in input pixels
/// (`width` x `height`). Centres outside the picture are left out.
pub fn targets(people: &[Vec<TargetBox>], config: &CenterNetConfig) -> Targets {
    let (w, h) = config.map_size();
    let n = people.len();
    let cells = w * h;
    let mut t = Targets {
        batch: n,
        map: (w, h),
        heatmap: vec![0.0; n * cells],
        weight: vec![1.0; n * cells],
        centre: vec![0.0; n * cells],
        size: vec![0.0; n * 2 * cells],
        offset: vec![0.0; n * 2 * cells],
        people: 0,
    };
    let s = STRIDE as f32;
    for (i, boxes) in people.iter().enumerate() {
        let heat = &mut t.heatmap[i * cells..(i + 1) * cells];
        let weight = &mut t.weight[i * cells..(i + 1) * cells];
        // Ignored people first: their cells are neither positive nor negative.
        for b in boxes.iter().filter(|b| b.ignore) {
            let x0 = ((b.bbox.x / s).floor().max(0.0) as usize).min(w);
            let y0 = ((b.bbox.y / s).floor().max(0.0) as usize).min(h);
            let x1 = (((b.bbox.x + b.bbox.w) / s).ceil().max(0.0) as usize).min(w);
            let y1 = (((b.bbox.y + b.bbox.h) / s).ceil().max(0.0) as usize).min(h);
            // A box of negative size (a damaged ground-truth row) covers nothing.
            for y in y0..y1.max(y0) {
                weight[y * w + x0..y * w + x1.max(x0)].fill(0.0);
            }
        }
        for b in boxes.iter().filter(|b| !b.ignore) {
            let (bw, bh) = (b.bbox.w / s, b.bbox.h / s);
            if !(bw > 0.0 && bh > 0.0) {
                continue;
            }
            let cx = (b.bbox.x + b.bbox.w / 2.0) / s;
            let cy = (b.bbox.y + b.bbox.h / 2.0) / s;
            if !(cx >= 0.0 && cy >= 0.0 && cx < w as f32 && cy < h as f32) {
                continue;
            }
            let (ix, iy) = (cx.floor() as usize, cy.floor() as usize);
            let radius = gaussian_radius(bw.ceil(), bh.ceil()).floor() as i64;
            let sigma = (2 * radius + 1) as f32 / 6.0;
            for dy in -radius..=radius {
                for dx in -radius..=radius {
                    let (x, y) = (ix as i64 + dx, iy as i64 + dy);
                    if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
                        continue;
                    }
                    let g = (-((dx * dx + dy * dy) as f32) / (2.0 * sigma * sigma)).exp();
                    let cell = &mut heat[y as usize * w + x as usize];
                    *cell = cell.max(g);
                }
            }
            let at = iy * w + ix;
            heat[at] = 1.0;
            weight[at] = 1.0;
            if t.centre[i * cells + at] == 0.0 {
                t.people += 1;
            }
            t.centre[i * cells + at] = 1.0;
            let base = i * 2 * cells;
            t.size[base + at] = bw.ln();
            t.size[base + cells + at] = bh.ln();
            t.offset[base + at] = cx - ix as f32;
            t.offset[base + cells + at] = cy - iy as f32;
        }
    }
    t
}

/// The people in one picture's maps (`heatmap` logits `[h * w]`, `size` and `offset`
/// `[2 * h * w]`, as the heads give them): peaks of their 3x3 neighbourhood scoring at least
/// `min_score` (a probability), at most 100, best first, each box scaled by `scale` (frame
/// pixels per input pixel, x and y), then non-maximum suppression at IoU 0.5.
pub fn decode(
    heatmap: &[f32],
    size: &[f32],
    offset: &[f32],
    map: (usize, usize),
    scale: (f32, f32),
    min_score: f32,
) -> Vec<Detection> {
    let (w, h) = map;
    let cells = w * h;
    let mut peaks = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = heatmap[y * w + x];
            let mut best = true;
            'around: for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    if heatmap[ny * w + nx] > v {
                        best = false;
                        break 'around;
                    }
                }
            }
            let score = 1.0 / (1.0 + (-v).exp());
            if best && score >= min_score && score.is_finite() {
                peaks.push((score, y * w + x));
            }
        }
    }
    peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
    peaks.truncate(MAX_PEOPLE);
    let s = STRIDE as f32;
    let mut kept: Vec<(BBox, f32)> = Vec::new();
    for (score, at) in peaks {
        let (x, y) = ((at % w) as f32, (at / w) as f32);
        let cx = (x + offset[at]) * s;
        let cy = (y + offset[cells + at]) * s;
        let bw = size[at].clamp(-8.0, 8.0).exp() * s;
        let bh = size[cells + at].clamp(-8.0, 8.0).exp() * s;
        let bbox = BBox::new(
            (cx - bw / 2.0) * scale.0,
            (cy - bh / 2.0) * scale.1,
            bw * scale.0,
            bh * scale.1,
        );
        if kept.iter().all(|(k, _)| k.iou(&bbox) <= NMS_IOU) {
            kept.push((bbox, score));
        }
    }
    kept.into_iter()
        .map(|(b, score)| Detection {
            rect: Rect {
                x: b.x.round() as i32,
                y: b.y.round() as i32,
                w: b.w.round().max(1.0) as i32,
                h: b.h.round().max(1.0) as i32,
            },
            score: f64::from(score),
        })
        .collect()
}

/// A trained detector, ready to find people in pictures.
pub struct CenterNetDetector {
    pub net: CenterNet,
    pub config: CenterNetConfig,
    /// Boxes scoring below this probability are not people.
    pub min_score: f32,
    device: Device,
}

impl CenterNetDetector {
    /// Reads a detector file (written by `reid train-detector`) onto `device`. A ReID model, a
    /// damaged file or one whose tensors do not fit are refused, saying which.
    pub fn from_burnpack(bytes: &[u8], device: Device) -> Result<Self, ModelError> {
        let (net, config) = from_burnpack_bytes(bytes, &device)?;
        Ok(Self {
            net,
            config,
            min_score: 0.3,
            device,
        })
    }

    /// The people in `image`, best first.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, ModelError> {
        if image.width() == 0 || image.height() == 0 {
            return Ok(Vec::new());
        }
        let spec = self.config.input_spec();
        let x = crate::preprocess::preprocess(std::slice::from_ref(image), &spec, &self.device);
        let out = self.net.forward(x);
        let read = |t: Tensor<4>| {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| ModelError::Weights(format!("reading the detector's maps: {e:?}")))
        };
        let heatmap = read(out.heatmap)?;
        let size = read(out.size)?;
        let offset = read(out.offset)?;
        let scale = (
            image.width() as f32 / self.config.width as f32,
            image.height() as f32 / self.config.height as f32,
        );
        Ok(decode(
            &heatmap,
            &size,
            &offset,
            self.config.map_size(),
            scale,
            self.min_score,
        ))
    }
}

/// Writes a detector and its configuration (and `metadata`, e.g. the model card) as burnpack
/// bytes, convolution weights in f16 (BatchNorm in f32).
pub fn to_burnpack_bytes(
    net: &CenterNet,
    config: &CenterNetConfig,
    metadata: &crate::weights::Metadata,
) -> Result<Vec<u8>, ModelError> {
    let store = BurnpackStore::from_bytes(None).with_to_adapter(HalfPrecisionAdapter::new());
    crate::weights::module_to_burnpack(net, store, DETECTOR_CONFIG_KEY, config, metadata)
}

/// Builds a detector from burnpack bytes on `device`; every tensor must be there and fit.
pub fn from_burnpack_bytes(
    bytes: &[u8],
    device: &Device,
) -> Result<(CenterNet, CenterNetConfig), ModelError> {
    let metadata = crate::weights::burnpack_metadata(bytes)?;
    let Some(json) = metadata.get(DETECTOR_CONFIG_KEY) else {
        return Err(ModelError::Weights(
            if metadata.contains_key(crate::weights::CONFIG_KEY) {
                "this is a ReID model, not a detector (train one with `reid train-detector`)".into()
            } else {
                format!("the file has no `{DETECTOR_CONFIG_KEY}` entry: it is not a reid detector")
            },
        ));
    };
    let config: CenterNetConfig = serde_json::from_str(json)
        .map_err(|e| ModelError::Weights(format!("unreadable `{DETECTOR_CONFIG_KEY}`: {e}")))?;
    config.validate()?;
    let mut net = config.init(device);
    crate::weights::apply_exactly(&mut net, bytes, "detector")?;
    Ok((net, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    #[test]
    fn maps_are_at_stride_8() {
        let config = CenterNetConfig::new().with_width(64).with_height(48);
        let net = config.init(&device());
        let out = net.forward(Tensor::<4>::zeros([2, 3, 48, 64], &device()));
        assert_eq!(out.heatmap.dims(), [2, 1, 6, 8]);
        assert_eq!(out.size.dims(), [2, 2, 6, 8]);
        assert_eq!(out.offset.dims(), [2, 2, 6, 8]);
    }

    #[test]
    fn upsampling_repeats_each_value_over_a_square() {
        let x = Tensor::<4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]),
            &device(),
        );
        let y: Vec<f32> = upsample2(x).into_data().try_into_vec().unwrap();
        assert_eq!(
            y,
            [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]
        );
    }

    #[test]
    fn targets_mark_the_centre_size_and_offset() {
        let config = CenterNetConfig::new().with_width(128).with_height(128);
        let person = TargetBox {
            bbox: BBox::new(20.0, 10.0, 24.0, 80.0),
            ignore: false,
        };
        let hidden = TargetBox {
            bbox: BBox::new(96.0, 96.0, 16.0, 16.0),
            ignore: true,
        };
        let t = targets(&[vec![person, hidden]], &config);
        let (w, h) = t.map;
        assert_eq!((w, h), (16, 16));
        assert_eq!(t.people, 1);
        // Centre (32, 50) is cell (4, 6), offset (0, 0.25).
        let at = 6 * w + 4;
        assert_eq!(t.heatmap[at], 1.0);
        assert_eq!(t.centre.iter().sum::<f32>(), 1.0);
        assert!((t.size[at] - 3.0f32.ln()).abs() < 1e-6);
        assert!((t.size[w * h + at] - 10.0f32.ln()).abs() < 1e-6);
        assert_eq!(t.offset[at], 0.0);
        assert!((t.offset[w * h + at] - 0.25).abs() < 1e-6);
        // The bump falls off around the centre, and the ignored box weighs nothing.
        assert!(t.heatmap[at + 1] > 0.0 && t.heatmap[at + 1] < 1.0);
        assert_eq!(t.weight[12 * w + 12], 0.0);
        assert_eq!(t.weight[0], 1.0);
        // Boxes of negative, zero or non-number size, or outside the picture, mark nothing.
        let odd = [
            BBox::new(60.0, 60.0, -30.0, -40.0),
            BBox::new(60.0, 60.0, 0.0, 0.0),
            BBox::new(f32::NAN, 10.0, 20.0, 20.0),
            BBox::new(500.0, -300.0, 20.0, 20.0),
        ];
        for bbox in odd {
            for ignore in [false, true] {
                let t = targets(&[vec![TargetBox { bbox, ignore }]], &config);
                assert_eq!(t.people, 0, "{bbox:?}");
                assert!(t.heatmap.iter().all(|&v| v == 0.0), "{bbox:?}");
            }
        }
    }

    #[test]
    fn decoding_the_targets_gives_the_boxes_back() {
        let config = CenterNetConfig::new().with_width(128).with_height(128);
        let people = vec![
            TargetBox {
                bbox: BBox::new(20.0, 10.0, 24.0, 80.0),
                ignore: false,
            },
            TargetBox {
                bbox: BBox::new(70.0, 30.0, 30.0, 90.0),
                ignore: false,
            },
        ];
        let t = targets(std::slice::from_ref(&people), &config);
        // Probabilities to logits, so that decoding sees what a perfect network would give.
        let logits: Vec<f32> = t
            .heatmap
            .iter()
            .map(|&p| {
                let p = p.clamp(1e-6, 1.0 - 1e-6);
                (p / (1.0 - p)).ln()
            })
            .collect();
        let found = decode(&logits, &t.size, &t.offset, t.map, (2.0, 0.5), 0.5);
        assert_eq!(found.len(), 2);
        for (d, p) in found.iter().zip([&people[0], &people[1]]) {
            let want = BBox::new(
                p.bbox.x * 2.0,
                p.bbox.y * 0.5,
                p.bbox.w * 2.0,
                p.bbox.h * 0.5,
            );
            assert!(d.rect.bbox().iou(&want) > 0.95, "{d:?} vs {want:?}");
        }
        // Nothing above an impossible threshold.
        assert!(decode(&logits, &t.size, &t.offset, t.map, (1.0, 1.0), 1.1).is_empty());
    }

    #[test]
    fn the_loss_is_small_for_the_right_maps_and_large_for_wrong_ones() {
        let device = device();
        let config = CenterNetConfig::new().with_width(64).with_height(64);
        let people = vec![vec![TargetBox {
            bbox: BBox::new(10.0, 8.0, 16.0, 40.0),
            ignore: false,
        }]];
        let t = targets(&people, &config);
        let (w, h) = t.map;
        let map = |v: Vec<f32>, c: usize| {
            Tensor::<4>::from_data(TensorData::new(v, [1, c, h, w]), &device)
        };
        let logit = |p: f32| {
            let p = p.clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        };
        let net = config.init(&device);
        let loss = |heat: Vec<f32>, size: Vec<f32>| {
            let out = CenterNetOutput {
                heatmap: map(heat, 1),
                size: map(size, 2),
                offset: map(t.offset.clone(), 2),
            };
            let (total, parts) = net.loss(&out, &t, 0.1);
            let total = total
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap()[0];
            let parts = parts
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
            (total, parts)
        };
        let right = t.heatmap.iter().map(|&p| logit(p)).collect::<Vec<_>>();
        let (good, parts) = loss(right, t.size.clone());
        assert!(
            good < 0.01 && parts[1] == 0.0 && parts[2] == 0.0,
            "{good} {parts:?}"
        );
        // Everything a person: every negative cell pays.
        let (bad, parts) = loss(vec![logit(0.9); w * h], t.size.clone());
        assert!(bad > 10.0 && parts[0] == bad, "{bad} {parts:?}");
        // The right heatmap and a box twice too big: L1 of ln 2 per side, weighted 0.1.
        let big = t
            .size
            .iter()
            .map(|&v| if v != 0.0 { v + 2f32.ln() } else { 0.0 })
            .collect();
        let (_, parts) = loss(t.heatmap.iter().map(|&p| logit(p)).collect(), big);
        assert!((parts[1] - 2.0 * 2f32.ln()).abs() < 1e-4, "{parts:?}");
    }

    #[test]
    fn gradients_reach_the_backbone() {
        let device = Device::flex().autodiff();
        let config = CenterNetConfig::new()
            .with_width(64)
            .with_height(64)
            .with_head_channels(8);
        let net = config.init(&device);
        let people = vec![vec![TargetBox {
            bbox: BBox::new(10.0, 8.0, 16.0, 40.0),
            ignore: false,
        }]];
        let t = targets(&people, &config);
        let images = Tensor::<4>::ones([1, 3, 64, 64], &device);
        let (total, _) = net.loss(&net.forward(images), &t, 0.1);
        let grads = total.backward();
        let g = net
            .stem
            .conv
            .weight
            .grad(&grads)
            .expect("the stem has a gradient");
        let g: Vec<f32> = g.into_data().convert::<f32>().try_into_vec().unwrap();
        assert!(g.iter().all(|v| v.is_finite()) && g.iter().any(|v| *v != 0.0));
    }

    #[test]
    fn a_detector_file_round_trips_and_a_reid_model_is_refused() {
        let config = CenterNetConfig::new().with_width(64).with_height(48);
        let net = config.init(&device());
        let bytes = to_burnpack_bytes(&net, &config, &vec![]).unwrap();
        let (back, back_config) = from_burnpack_bytes(&bytes, &device()).unwrap();
        assert_eq!(back_config, config);
        let x = Tensor::<4>::ones([1, 3, 48, 64], &device());
        let a: Vec<f32> = net
            .forward(x.clone())
            .heatmap
            .into_data()
            .try_into_vec()
            .unwrap();
        let b: Vec<f32> = back.forward(x).heatmap.into_data().try_into_vec().unwrap();
        for (a, b) in a.iter().zip(&b) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}"); // f16 weights
        }
        let reid = crate::ReidNetConfig::default().init(&device());
        let reid_bytes = crate::weights::to_burnpack_bytes(
            &reid,
            &crate::ReidNetConfig::default(),
            &vec![],
            crate::weights::Precision::F16,
        )
        .unwrap();
        let err = from_burnpack_bytes(&reid_bytes, &device())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ReID model, not a detector"), "{err}");
        let err = from_burnpack_bytes(&bytes[..bytes.len() / 2], &device())
            .err()
            .unwrap()
            .to_string();
        assert!(!err.is_empty());
        let err = from_burnpack_bytes(b"not a model", &device())
            .err()
            .unwrap()
            .to_string();
        assert!(!err.is_empty());
    }

    #[test]
    fn radius_grows_with_the_box() {
        assert!(gaussian_radius(2.0, 6.0) < gaussian_radius(4.0, 12.0));
        assert!(gaussian_radius(0.0, 0.0) >= 0.0);
    }
}
