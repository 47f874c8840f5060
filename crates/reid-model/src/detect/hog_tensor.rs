//! The HOG people detector of [`super::hog`] as burn tensor operations, so that its heavy
//! stages run on whatever device burn runs on: the GPU through WebGPU in the browser.
//!
//! Per pyramid level, on the CPU: OpenCV's fixed-point resize (exact integers, cheap) and the
//! square roots of the samples (OpenCV's table), laid out as three colour planes padded by
//! reflection. On the device, all as tensor operations:
//! - centred differences, the channel of largest magnitude (blue first of equal ones, as
//!   OpenCV), OpenCV's polynomial `atan2`, the split between the two nearest of 9 bins: nine
//!   planes of votes;
//! - the block histograms as one grouped 16x16 convolution of stride 8 (9 groups, 4 outputs
//!   each: the 2x2 cells), whose kernel is the bilinear-times-Gaussian weight of each pixel in
//!   each cell (the weights [`super::hog`] applies in two passes);
//! - L2-Hys over each block's 36 values;
//! - every window's score as one convolution of the block grid with the SVM's weights laid out
//!   as a 15x7 kernel of 36 channels (dilated when the grid is finer than 8 pixels), plus the
//!   bias.
//!
//! Only the score maps come back, awaited (so the browser's worker never blocks on the GPU);
//! every level is queued before the first is read back. Hits, grouping and cutting to the image
//! are [`super::hog`]'s own. The numbers are the CPU path's up to float rounding (sums in
//! another order, the device's own divisions and square roots): window scores agree to about
//! 1e-5, and the boxes are the same unless a window scores within that of the threshold.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;

use super::hog::{
    axis_weights, fast_atan2_constants, gcd, group_and_cut, level_hits, level_image, pyramid,
    reflect_101, Detection, HogDetector, HogParams, WindowScore, BINS, BLOCK, BLOCKS, BLOCK_LEN,
    BLOCK_STRIDE, WINDOW,
};
use crate::ModelError;

/// OpenCV's HOG people detector ready to run on one burn device.
#[derive(Debug, Clone)]
pub struct HogOnDevice {
    device: Device,
    /// `[36, 1, 16, 16]`: output channel `bin * 4 + cell` (cells column by column) weighs each
    /// pixel of a block's votes in `bin` into `cell`.
    block_kernel: Tensor<4>,
    /// `[1, 36, 15, 7]`: the SVM's weight of each block value of a window (channels as the
    /// histograms'), blocks down then across.
    svm_kernel: Tensor<4>,
    bias: Tensor<1>,
    /// `[9, 1, 1]`: 0 to 8, to spread each pixel's votes into the bins' planes.
    bins: Tensor<3>,
}

/// A pyramid level's window scores, queued on the device.
struct QueuedLevel {
    scale: f64,
    stride: usize,
    padding: usize,
    scores: Tensor<4>,
}

impl HogOnDevice {
    /// `detector`'s weights laid out as convolution kernels on `device`.
    pub fn new(detector: &HogDetector, device: &Device) -> Self {
        let axes = axis_weights();
        let mut block = vec![0.0f32; BLOCK_LEN * BLOCK * BLOCK];
        for bin in 0..BINS {
            for cx in 0..2 {
                for cy in 0..2 {
                    let out = bin * 4 + cx * 2 + cy;
                    for py in 0..BLOCK {
                        for px in 0..BLOCK {
                            block[(out * BLOCK + py) * BLOCK + px] = axes[py][cy] * axes[px][cx];
                        }
                    }
                }
            }
        }
        let (weights, bias) = detector.svm();
        let (across, down) = BLOCKS;
        let mut svm = vec![0.0f32; BLOCK_LEN * down * across];
        for bx in 0..across {
            for by in 0..down {
                for cell in 0..4 {
                    for bin in 0..BINS {
                        let from = (bx * down + by) * BLOCK_LEN + cell * BINS + bin;
                        let channel = bin * 4 + cell;
                        svm[(channel * down + by) * across + bx] = weights[from];
                    }
                }
            }
        }
        let bins: Vec<f32> = (0..BINS).map(|b| b as f32).collect();
        Self {
            device: device.clone(),
            block_kernel: Tensor::from_data(
                TensorData::new(block, [BLOCK_LEN, 1, BLOCK, BLOCK]),
                device,
            ),
            svm_kernel: Tensor::from_data(
                TensorData::new(svm, [1, BLOCK_LEN, down, across]),
                device,
            ),
            bias: Tensor::from_data(TensorData::new(vec![bias], [1]), device),
            bins: Tensor::from_data(TensorData::new(bins, [BINS, 1, 1]), device),
        }
    }

    /// The device it runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Every window's score on `image` at its own scale, as
    /// [`HogDetector::window_scores`] gives them.
    pub async fn window_scores(
        &self,
        image: &RgbImage,
        stride: usize,
        padding: usize,
    ) -> Result<Vec<WindowScore>, ModelError> {
        match self.queue(image, 1.0, stride, padding) {
            Some(level) => read_back(level).await,
            None => Ok(Vec::new()),
        }
    }

    /// People in `image` at every scale, grouped, each box cut to the image, as
    /// [`HogDetector::detect`] finds them.
    pub async fn detect(
        &self,
        image: &RgbImage,
        params: &HogParams,
    ) -> Result<Vec<Detection>, ModelError> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        // Every level queued first: the device works on one while the CPU shrinks the next.
        let mut queued = Vec::new();
        for scale in pyramid(w, h, params.scale, params.levels) {
            let pixels = level_image(image, scale);
            queued.extend(self.queue(&pixels, scale, params.stride, params.padding));
        }
        let mut hits = Vec::new();
        for level in queued {
            let scale = level.scale;
            let scores = read_back(level).await?;
            hits.extend(level_hits(&scores, scale, params.hit_threshold));
        }
        Ok(group_and_cut(hits, params, image.width(), image.height()))
    }

    /// Queues the window scores of one level (`image`, already shrunk by `scale`); `None` when
    /// no window fits.
    fn queue(
        &self,
        image: &RgbImage,
        scale: f64,
        stride: usize,
        padding: usize,
    ) -> Option<QueuedLevel> {
        let stride = stride.max(1);
        let grid = gcd(stride, BLOCK_STRIDE);
        let padding = padding.div_ceil(grid) * grid;
        let (iw, ih) = (image.width() as usize, image.height() as usize);
        let (width, height) = (iw + 2 * padding, ih + 2 * padding);
        if iw == 0 || ih == 0 || width < WINDOW.0 || height < WINDOW.1 {
            return None;
        }
        let planes = root_planes(image, padding);
        let planes = Tensor::<3>::from_data(
            TensorData::new(planes, [3, height + 2, width + 2]),
            &self.device,
        );
        let votes = self.votes(planes, width, height);
        let hist = conv2d(
            votes.unsqueeze::<4>(),
            self.block_kernel.clone(),
            None,
            ConvOptions::new([grid, grid], [0, 0], [1, 1], BINS),
        );
        let hist = l2_hys(hist);
        let spacing = BLOCK_STRIDE / grid;
        let scores = conv2d(
            hist,
            self.svm_kernel.clone(),
            Some(self.bias.clone()),
            ConvOptions::new(
                [stride / grid, stride / grid],
                [0, 0],
                [spacing, spacing],
                1,
            ),
        );
        Some(QueuedLevel {
            scale,
            stride,
            padding,
            scores,
        })
    }

    /// Each pixel's two votes spread into the planes of their bins: `[9, height, width]` from
    /// the padded planes of square roots `[3, height + 2, width + 2]` (red, green, blue).
    fn votes(&self, planes: Tensor<3>, width: usize, height: usize) -> Tensor<3> {
        let (w, h) = (width, height);
        let dx = planes.clone().slice([0..3, 1..h + 1, 2..w + 2])
            - planes.clone().slice([0..3, 1..h + 1, 0..w]);
        let dy =
            planes.clone().slice([0..3, 2..h + 2, 1..w + 1]) - planes.slice([0..3, 0..h, 1..w + 1]);
        let magnitude = dx.clone() * dx.clone() + dy.clone() * dy.clone();
        let channel = |t: &Tensor<3>, c: usize| t.clone().slice([c..c + 1, 0..h, 0..w]);
        // Blue first, then green, then red, each taken only when strictly larger: of equal
        // magnitudes OpenCV keeps blue, then green (its BGR order).
        let (mut gx, mut gy, mut best) = (channel(&dx, 2), channel(&dy, 2), channel(&magnitude, 2));
        for c in [1, 0] {
            let m = channel(&magnitude, c);
            let take = m.clone().greater(best.clone());
            gx = gx.mask_where(take.clone(), channel(&dx, c));
            gy = gy.mask_where(take.clone(), channel(&dy, c));
            best = best.mask_where(take, m);
        }
        let magnitude = best.sqrt();
        let angle_scale = (BINS as f64 / std::f64::consts::PI) as f32;
        let to_radians = (std::f64::consts::PI / 180.0) as f32;
        let angle = fast_atan2_degrees(gy, gx)
            .mul_scalar(to_radians)
            .mul_scalar(angle_scale)
            .sub_scalar(0.5);
        let bin = angle.clone().floor();
        let frac = angle - bin.clone();
        let bin = bin.clone().mask_where(
            bin.clone().lower_elem(0.0),
            bin.clone().add_scalar(BINS as f32),
        );
        let bin = bin.clone().mask_where(
            bin.clone().greater_equal_elem(BINS as f32),
            bin.sub_scalar(BINS as f32),
        );
        let next = bin.clone().add_scalar(1.0);
        let next = next
            .clone()
            .mask_where(next.clone().equal_elem(BINS as f32), next.zeros_like());
        let vote0 = magnitude.clone() * frac.clone().neg().add_scalar(1.0);
        let vote1 = magnitude * frac;
        let shape = [BINS, h, w];
        let bins = self.bins.clone().expand(shape);
        let in_bin = |b: Tensor<3>| b.expand(shape).equal(bins.clone()).float();
        in_bin(bin) * vote0.expand(shape) + in_bin(next) * vote1.expand(shape)
    }
}

/// OpenCV's `cv::fastAtan2` in degrees (0 to 360) of each (`x`, `y`), the same operations as
/// [`super::hog`]'s.
fn fast_atan2_degrees(y: Tensor<3>, x: Tensor<3>) -> Tensor<3> {
    let [p1, p3, p5, p7, eps] = fast_atan2_constants();
    let (ax, ay) = (x.clone().abs(), y.clone().abs());
    let steep = ax.clone().lower(ay.clone());
    let lo = ay.clone().mask_where(steep.clone(), ax.clone());
    let hi = ax.mask_where(steep.clone(), ay);
    let c = lo / hi.add_scalar(eps);
    let c2 = c.clone() * c.clone();
    let a = ((((c2.clone().mul_scalar(p7).add_scalar(p5)) * c2.clone()).add_scalar(p3) * c2)
        .add_scalar(p1))
        * c;
    let a = a.clone().mask_where(steep, a.neg().add_scalar(90.0));
    let a = a
        .clone()
        .mask_where(x.lower_elem(0.0), a.neg().add_scalar(180.0));
    a.clone()
        .mask_where(y.lower_elem(0.0), a.neg().add_scalar(360.0))
}

/// OpenCV's L2-Hys over each block's 36 values (the channels of `[1, 36, down, across]`).
fn l2_hys(hist: Tensor<4>) -> Tensor<4> {
    let norm = (hist.clone() * hist.clone()).sum_dim(1).sqrt();
    let scale = norm.add_scalar(BLOCK_LEN as f32 * 0.1).recip();
    let clipped = (hist * scale).clamp_max(0.2);
    let norm = (clipped.clone() * clipped.clone()).sum_dim(1).sqrt();
    clipped * norm.add_scalar(1e-3).recip()
}

/// A queued level's scores, read back, with each window's place in the unpadded image.
async fn read_back(level: QueuedLevel) -> Result<Vec<WindowScore>, ModelError> {
    let [_, _, down, across] = level.scores.dims();
    let values = level
        .scores
        .into_data_async()
        .await
        .map_err(|e| ModelError::Device(format!("{e:?}")))?
        .try_to_vec::<f32>()
        .map_err(|e| ModelError::Device(format!("{e:?}")))?;
    let (stride, padding) = (level.stride as i32, level.padding as i32);
    Ok((0..down)
        .flat_map(|y| (0..across).map(move |x| (x, y)))
        .zip(values)
        .map(|((x, y), score)| WindowScore {
            x: x as i32 * stride - padding,
            y: y as i32 * stride - padding,
            score: f64::from(score),
        })
        .collect())
}

/// The square roots of `image`'s samples (OpenCV's gamma table) as three planes (red, green,
/// blue), each padded by `padding` pixels and one more (for the centred differences) by
/// reflection (`BORDER_REFLECT_101`).
fn root_planes(image: &RgbImage, padding: usize) -> Vec<f32> {
    let (iw, ih) = (image.width() as usize, image.height() as usize);
    let (pw, ph) = (iw + 2 * padding + 2, ih + 2 * padding + 2);
    let shift = padding as isize + 1;
    let xmap: Vec<usize> = (0..pw as isize)
        .map(|x| reflect_101(x - shift, iw))
        .collect();
    let roots: Vec<f32> = (0..=255u8).map(|v| f32::from(v).sqrt()).collect();
    let src = image.as_raw();
    let mut planes = vec![0.0f32; 3 * pw * ph];
    for y in 0..ph {
        let sy = reflect_101(y as isize - shift, ih);
        let line = &src[sy * iw * 3..(sy + 1) * iw * 3];
        for c in 0..3 {
            let out = &mut planes[(c * ph + y) * pw..][..pw];
            for (o, &sx) in out.iter_mut().zip(&xmap) {
                *o = roots[usize::from(line[sx * 3 + c])];
            }
        }
    }
    planes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        Device::flex()
    }

    /// A picture with edges at every angle and a dark figure, deterministic.
    fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let ring = ((fx - 60.0).hypot(fy - 70.0) / 6.0).sin();
            let figure = (x as i32 - 90).abs() < 14 && (y as i32 - 80).abs() < 50;
            let noise = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503) ^ seed) % 23;
            let base = if figure { 40.0 } else { 140.0 + 60.0 * ring };
            let v = (base + noise as f32).clamp(0.0, 255.0) as u8;
            image::Rgb([v, v.wrapping_add((x % 7) as u8 * 9), 255 - v / 2])
        })
    }

    #[test]
    fn window_scores_are_the_cpu_paths() {
        let hog = HogDetector::opencv_people();
        let on_device = HogOnDevice::new(hog, &device());
        for (stride, padding) in [(8, 8), (16, 0), (4, 6)] {
            let image = scene(150, 170, stride as u32);
            let cpu = hog.window_scores(&image, stride, padding);
            let ours =
                pollster::block_on(on_device.window_scores(&image, stride, padding)).unwrap();
            assert_eq!(ours.len(), cpu.len(), "stride {stride}");
            assert!(!cpu.is_empty());
            for (a, b) in ours.iter().zip(&cpu) {
                assert_eq!((a.x, a.y), (b.x, b.y));
                assert!((a.score - b.score).abs() < 1e-5, "{a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn pictures_smaller_than_a_window_have_no_windows_and_no_people() {
        let hog = HogDetector::opencv_people();
        let on_device = HogOnDevice::new(hog, &device());
        for (w, h) in [(40, 200), (200, 100), (1, 1)] {
            let small = scene(w, h, 1);
            let found = pollster::block_on(on_device.detect(&small, &HogParams::default()));
            assert_eq!(found.unwrap(), hog.detect(&small, &HogParams::default()));
            for padding in [0, 8] {
                let scores = pollster::block_on(on_device.window_scores(&small, 8, padding));
                assert_eq!(scores.unwrap(), hog.window_scores(&small, 8, padding));
            }
        }
    }
}
