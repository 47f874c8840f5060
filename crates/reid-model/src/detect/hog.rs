//! The HOG + linear SVM people detector (Dalal and Triggs 2005) computed as OpenCV 4's
//! `cv::HOGDescriptor` computes it, with the coefficients of its default 64x128 people detector
//! (`HOGDescriptor::getDefaultPeopleDetector()`, carried as data in `opencv_people_64x128.txt`
//! with its provenance), so that its window scores and detections can be checked against
//! OpenCV's own.
//!
//! What OpenCV does, step by step, and so what this does:
//! - gradients on the image padded by reflection (`BORDER_REFLECT_101`), each pixel's square root
//!   first (`gammaCorrection`), centred differences `[-1, 0, 1]`; of the three colour channels the
//!   one with the largest magnitude (of equal ones blue, then green, then red: OpenCV's BGR
//!   order); the orientation by OpenCV's polynomial `atan2` (`cv::fastAtan2`), unsigned
//!   (0-180 degrees), split between the two nearest of 9 bins;
//! - 16x16 blocks every 8 pixels, each of 2x2 cells of 8x8 pixels; each pixel votes into the
//!   cells around it with bilinear weights times a Gaussian over the block (sigma 4);
//! - each block's 36 values normalised by L2-Hys (L2 with OpenCV's `0.1 * 36` added to the norm,
//!   clipped at 0.2, L2 again with 1e-3 added);
//! - a 64x128 window's descriptor is its 7 x 15 blocks, columns of blocks first (3,780 values);
//!   its score is the SVM's dot product plus the bias (the 3,781st value);
//! - several scales: the image shrunk by 1.05 per level (OpenCV's fixed-point bilinear resize,
//!   `INTER_LINEAR_EXACT`) while a window still fits, windows every 8 pixels, hits mapped back
//!   to the image, then grouped (`HOGDescriptor::groupRectangles`: clusters of similar boxes,
//!   their mean box and best score, clusters of `group_threshold` boxes or fewer dropped), and
//!   cut to the image.
//!
//! How it is made fast without changing a number: each colour channel's square roots are kept
//! as a plane padded once, so the gradient loops read contiguous memory; a block's histogram is
//! built in two passes, since the bilinear and Gaussian weights factor along the two axes
//! (each pixel row's votes into a block column's two cells, shared by the blocks above and
//! below, then the block's 16 rows weighted into its cells); the resize sums exact integers,
//! rows first. A level's work is compiled for AVX2 (found at run time) and for wasm's simd128.
//!
//! All of it runs on the CPU, pyramid levels on every core (one after another in the browser's
//! worker, which has one thread). [`super::hog_tensor`] is the same detector as burn tensor
//! operations, for the GPU.

use std::borrow::Cow;
use std::sync::OnceLock;

use image::RgbImage;
use reid_core::BBox;
use serde::Serialize;

/// Defines a function that runs `$body` (an `#[inline(always)]` function of the same
/// arguments) compiled for the widest vector instructions at hand: AVX2 and FMA on x86-64 when
/// the CPU has them (found at run time), simd128 in wasm (which a browser checks when it loads
/// the module: the CPU network's kernels need it too). The loops of the body are then
/// vectorised by the compiler; no arithmetic changes (Rust fuses no multiply-add on its own),
/// so every path gives the same numbers.
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn wide($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: this CPU has the instructions `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            #[cfg(target_arch = "wasm32")]
            {
                #[target_feature(enable = "simd128")]
                fn wide($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                return wide($($arg),*);
            }
            #[allow(unreachable_code)]
            $body($($arg),*)
        }
    };
}

/// Window size, pixels (width, height).
pub const WINDOW: (usize, usize) = (64, 128);
pub(crate) const CELL: usize = 8;
pub(crate) const BLOCK: usize = 16;
pub(crate) const BLOCK_STRIDE: usize = 8;
pub(crate) const BINS: usize = 9;
/// Values in one block's histogram (2 x 2 cells of 9 bins).
pub(crate) const BLOCK_LEN: usize = 4 * BINS;
/// Blocks across and down a window.
pub(crate) const BLOCKS: (usize, usize) = (
    (WINDOW.0 - BLOCK) / BLOCK_STRIDE + 1,
    (WINDOW.1 - BLOCK) / BLOCK_STRIDE + 1,
);
/// Length of a window's descriptor (3,780).
pub const DESCRIPTOR_LEN: usize = BLOCKS.0 * BLOCKS.1 * BLOCK_LEN;

/// OpenCV's default people detector: 3,780 weights, then the bias.
const OPENCV_PEOPLE: &str = include_str!("opencv_people_64x128.txt");

/// A linear SVM over HOG descriptors of 64x128 windows.
#[derive(Debug, Clone)]
pub struct HogDetector {
    weights: Vec<f32>,
    bias: f32,
}

/// How [`HogDetector::detect`] searches an image (OpenCV's `detectMultiScale` arguments).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HogParams {
    /// Windows with a score below this are not hits (OpenCV's `hitThreshold`).
    pub hit_threshold: f64,
    /// Step between windows, pixels (a multiple of 8 keeps one block grid per level).
    pub stride: usize,
    /// Pixels of reflected border around each level's image, so that people cut by the frame's
    /// edge can still fill a window (rounded up to the block grid).
    pub padding: usize,
    /// Ratio between successive pyramid levels (> 1).
    pub scale: f64,
    /// Most pyramid levels.
    pub levels: usize,
    /// A group of this many hits or fewer is dropped (OpenCV's `groupThreshold`; 0 keeps every
    /// hit ungrouped).
    pub group_threshold: usize,
}

impl Default for HogParams {
    /// OpenCV's defaults, with 8-pixel padding.
    fn default() -> Self {
        Self {
            hit_threshold: 0.0,
            stride: 8,
            padding: 8,
            scale: 1.05,
            levels: 64,
            group_threshold: 2,
        }
    }
}

/// A box in integer pixels, as OpenCV's `cv::Rect` (it may reach outside the image by the
/// padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: i32,
    pub h: i32,
}

impl Rect {
    /// The same box as the tracker and the evaluation take it.
    pub fn bbox(&self) -> BBox {
        BBox::new(self.x as f32, self.y as f32, self.w as f32, self.h as f32)
    }
}

/// A detected person: the box and the SVM score (a group's best). Serialised flat:
/// `{"x", "y", "w", "h", "score"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    #[serde(flatten)]
    pub rect: Rect,
    pub score: f64,
}

/// One window's score at one scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowScore {
    /// Top-left corner in the (unpadded) image's pixels; negative inside the padding.
    pub x: i32,
    pub y: i32,
    pub score: f64,
}

impl HogDetector {
    /// OpenCV's default 64x128 people detector (trained on INRIA Person by OpenCV).
    pub fn opencv_people() -> &'static HogDetector {
        static DETECTOR: OnceLock<HogDetector> = OnceLock::new();
        DETECTOR.get_or_init(|| {
            let values: Vec<f32> = OPENCV_PEOPLE
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| {
                    l.trim()
                        .parse()
                        .expect("the carried coefficients are numbers")
                })
                .collect();
            assert_eq!(values.len(), DESCRIPTOR_LEN + 1, "3,780 weights and a bias");
            HogDetector::new(values[..DESCRIPTOR_LEN].to_vec(), values[DESCRIPTOR_LEN])
        })
    }

    /// A detector from its `DESCRIPTOR_LEN` weights and bias.
    ///
    /// # Panics
    /// If `weights` does not have [`DESCRIPTOR_LEN`] values.
    pub fn new(weights: Vec<f32>, bias: f32) -> Self {
        assert_eq!(weights.len(), DESCRIPTOR_LEN);
        Self { weights, bias }
    }

    /// Every window's score on `image` at its own scale: windows every `stride` pixels over the
    /// image padded by `padding` (OpenCV's `HOGDescriptor::detect` with a threshold that keeps
    /// them all), in row order. Empty when the padded image is smaller than a window.
    pub fn window_scores(
        &self,
        image: &RgbImage,
        stride: usize,
        padding: usize,
    ) -> Vec<WindowScore> {
        window_scores(&self.weights, self.bias, image, stride, padding)
    }

    /// People in `image` at every scale, grouped, each box cut to the image (OpenCV's
    /// `detectMultiScale`).
    pub fn detect(&self, image: &RgbImage, params: &HogParams) -> Vec<Detection> {
        let hits = self.hits(image, params);
        group_and_cut(hits, params, image.width(), image.height())
    }

    /// The SVM's 3,780 weights (a window's descriptor order) and its bias.
    pub fn svm(&self) -> (&[f32], f32) {
        (&self.weights, self.bias)
    }

    /// Every window at or above the threshold at every pyramid level, in image pixels, before
    /// grouping.
    pub fn hits(&self, image: &RgbImage, params: &HogParams) -> Vec<Detection> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        // One pyramid level per task, on every core natively (in turn on wasm).
        let mut levels: Vec<(f64, Vec<Detection>)> = pyramid(w, h, params.scale, params.levels)
            .into_iter()
            .map(|scale| (scale, Vec::new()))
            .collect();
        reid_core::parallel::for_each_chunk_mut(&mut levels, 1, |_, level| {
            let (scale, hits) = &mut level[0];
            let pixels = level_image(image, *scale);
            let scores = self.window_scores(&pixels, params.stride, params.padding);
            *hits = level_hits(&scores, *scale, params.hit_threshold);
        });
        levels.into_iter().flat_map(|(_, hits)| hits).collect()
    }
}

/// `image` shrunk by `scale` as OpenCV's pyramid shrinks it (itself, borrowed, at its own size).
pub(crate) fn level_image(image: &RgbImage, scale: f64) -> Cow<'_, RgbImage> {
    let (w, h) = (image.width(), image.height());
    let size = (round(f64::from(w) / scale), round(f64::from(h) / scale));
    if size == (w as i32, h as i32) {
        Cow::Borrowed(image)
    } else {
        Cow::Owned(resize_linear_exact(image, size.0 as u32, size.1 as u32))
    }
}

/// The windows of one pyramid level (shrunk by `scale`) scoring at least `threshold`, as boxes
/// in the image's pixels.
pub(crate) fn level_hits(scores: &[WindowScore], scale: f64, threshold: f64) -> Vec<Detection> {
    let win = (
        round(WINDOW.0 as f64 * scale),
        round(WINDOW.1 as f64 * scale),
    );
    scores
        .iter()
        .filter(|s| s.score >= threshold)
        .map(|s| Detection {
            rect: Rect {
                x: round(f64::from(s.x) * scale),
                y: round(f64::from(s.y) * scale),
                w: win.0,
                h: win.1,
            },
            score: s.score,
        })
        .collect()
}

/// Hits grouped as `params` says ([`group_rectangles`] with OpenCV's eps 0.2), each box cut to
/// the `width` x `height` image (boxes left with no area are dropped).
pub(crate) fn group_and_cut(
    hits: Vec<Detection>,
    params: &HogParams,
    width: u32,
    height: u32,
) -> Vec<Detection> {
    let grouped = if params.group_threshold == 0 {
        hits
    } else {
        group_rectangles(&hits, params.group_threshold, 0.2)
    };
    let (w, h) = (width as i32, height as i32);
    grouped
        .into_iter()
        .filter_map(|d| {
            let r = d.rect;
            let (x0, y0) = (r.x.max(0), r.y.max(0));
            let (x1, y1) = ((r.x + r.w).min(w), (r.y + r.h).min(h));
            (x1 > x0 && y1 > y0).then_some(Detection {
                rect: Rect {
                    x: x0,
                    y: y0,
                    w: x1 - x0,
                    h: y1 - y0,
                },
                score: d.score,
            })
        })
        .collect()
}

simd_dispatch! {
    /// [`HogDetector::window_scores`] for an SVM's weights and bias.
    fn window_scores(
        weights: &[f32],
        bias: f32,
        image: &RgbImage,
        stride: usize,
        padding: usize,
    ) -> Vec<WindowScore> = window_scores_body
}

#[inline(always)]
fn window_scores_body(
    weights: &[f32],
    bias: f32,
    image: &RgbImage,
    stride: usize,
    padding: usize,
) -> Vec<WindowScore> {
    let stride = stride.max(1);
    let grid = gcd(stride, BLOCK_STRIDE);
    let padding = padding.div_ceil(grid) * grid;
    let gradients = Gradients::new(image, padding);
    let (pw, ph) = (gradients.width, gradients.height);
    if pw < WINDOW.0 || ph < WINDOW.1 {
        return Vec::new();
    }
    let blocks = BlockGrid::new(&gradients, grid);
    // The SVM's weights block by block, in the descriptor's order (columns of blocks first).
    let (weights, _) = weights.as_chunks::<BLOCK_LEN>();
    // In the grid's steps (no division a block): a block's step within a window, and the
    // grid's width.
    let (block_step, across) = (BLOCK_STRIDE / grid, blocks.across);
    let mut out = Vec::new();
    for y in (0..=ph - WINDOW.1).step_by(stride) {
        let top = y / grid;
        for x in (0..=pw - WINDOW.0).step_by(stride) {
            let left = x / grid;
            let mut s = f64::from(bias);
            let mut w = weights.iter();
            for bx in 0..BLOCKS.0 {
                let column = &blocks.hists[left + bx * block_step..];
                for by in 0..BLOCKS.1 {
                    let hist = &column[(top + by * block_step) * across];
                    s += f64::from(dot(hist, w.next().expect("3,780 weights")));
                }
            }
            out.push(WindowScore {
                x: x as i32 - padding as i32,
                y: y as i32 - padding as i32,
                score: s,
            });
        }
    }
    out
}

/// The HOG descriptor of the window whose top-left corner is at (`x`, `y`) in `image`, with
/// gradients taken over the whole image (OpenCV's `HOGDescriptor::compute` at one location,
/// no padding).
///
/// # Panics
/// If the window does not fit in the image.
pub fn descriptor(image: &RgbImage, x: usize, y: usize) -> Vec<f32> {
    assert!(
        x + WINDOW.0 <= image.width() as usize && y + WINDOW.1 <= image.height() as usize,
        "the window must fit in the image"
    );
    let gradients = Gradients::new(image, 0);
    let mut out = Vec::with_capacity(DESCRIPTOR_LEN);
    for bx in 0..BLOCKS.0 {
        for by in 0..BLOCKS.1 {
            out.extend_from_slice(&block_histogram(
                &gradients,
                x + bx * BLOCK_STRIDE,
                y + by * BLOCK_STRIDE,
            ));
        }
    }
    out
}

/// The scales of the pyramid: 1, `step`, `step`², ... while a window still fits the shrunk
/// image, at most `levels` (at least one).
pub(crate) fn pyramid(w: usize, h: usize, step: f64, levels: usize) -> Vec<f64> {
    let mut scales = Vec::new();
    let mut scale = 1.0;
    while scales.len() < levels.max(1) {
        if round(w as f64 / scale) < WINDOW.0 as i32
            || round(h as f64 / scale) < WINDOW.1 as i32
            || step <= 1.0
        {
            break;
        }
        scales.push(scale);
        scale *= step;
    }
    if scales.is_empty() {
        scales.push(1.0);
    }
    scales
}

/// Per pixel of the padded image: the two orientation bins it votes into and its two votes
/// (the magnitude split between them).
struct Gradients {
    width: usize,
    height: usize,
    /// The lower bin of each pixel and its vote; the upper bin (the next, 8 wrapping to 0) and
    /// its vote.
    bin0: Vec<u8>,
    bin1: Vec<u8>,
    vote0: Vec<f32>,
    vote1: Vec<f32>,
}

impl Gradients {
    #[inline(always)]
    fn new(image: &RgbImage, padding: usize) -> Self {
        let (iw, ih) = (image.width() as usize, image.height() as usize);
        let (width, height) = (iw + 2 * padding, ih + 2 * padding);
        // Columns and rows of the source pixel of each padded position, one beyond each side.
        let xmap: Vec<usize> = (-1..=width as isize)
            .map(|x| reflect_101(x - padding as isize, iw))
            .collect();
        let ymap: Vec<usize> = (-1..=height as isize)
            .map(|y| reflect_101(y - padding as isize, ih))
            .collect();
        // Square roots of every sample (OpenCV's gamma table), one plane per channel, padded by
        // reflection one beyond each side: every later read is contiguous, so the loops below
        // run in SIMD lanes.
        let stride = width + 2;
        let mut planes = [
            vec![0.0f32; stride * (height + 2)],
            vec![0.0f32; stride * (height + 2)],
            vec![0.0f32; stride * (height + 2)],
        ];
        let src = image.as_raw();
        // Source column 0 lands at `first`; the columns either side are reflections.
        let first = padding + 1;
        let table = square_roots();
        let mut roots = [vec![0.0f32; iw], vec![0.0f32; iw], vec![0.0f32; iw]];
        for (py, &sy) in ymap.iter().enumerate() {
            let line = &src[sy * iw * 3..(sy + 1) * iw * 3];
            let [r, g, b] = &mut roots;
            for (((px, r), g), b) in line.chunks_exact(3).zip(r).zip(g).zip(b) {
                (*r, *g, *b) = (
                    table[usize::from(px[0])],
                    table[usize::from(px[1])],
                    table[usize::from(px[2])],
                );
            }
            for (plane, roots) in planes.iter_mut().zip(&roots) {
                let out = &mut plane[py * stride..(py + 1) * stride];
                out[first..first + iw].copy_from_slice(roots);
                for x in (0..first).chain(first + iw..stride) {
                    out[x] = roots[xmap[x]];
                }
            }
        }
        let angle_scale = (BINS as f64 / std::f64::consts::PI) as f32;
        let to_radians = (std::f64::consts::PI / 180.0) as f32;
        let n = width * height;
        let (mut bin0, mut bin1) = (vec![0u8; n], vec![0u8; n]);
        let (mut vote0, mut vote1) = (vec![0.0f32; n], vec![0.0f32; n]);
        for y in 0..height {
            // Centred differences of one channel along the row: left, right, up, down of each x.
            let diffs = |c: usize| {
                let plane: &[f32] = &planes[c];
                let row = &plane[(y + 1) * stride..(y + 2) * stride];
                let up = &plane[y * stride + 1..][..width];
                let down = &plane[(y + 2) * stride + 1..][..width];
                (&row[..width], &row[2..], up, down)
            };
            let (r_l, r_r, r_u, r_d) = diffs(0);
            let (g_l, g_r, g_u, g_d) = diffs(1);
            let (b_l, b_r, b_u, b_d) = diffs(2);
            let span = y * width..(y + 1) * width;
            let (b0, b1) = (&mut bin0[span.clone()], &mut bin1[span.clone()]);
            let (v0, v1) = (&mut vote0[span.clone()], &mut vote1[span]);
            for x in 0..width {
                // The channel with the largest gradient; blue first: of equal magnitudes
                // OpenCV keeps blue, then green (its BGR order).
                let (mut dx, mut dy) = (b_r[x] - b_l[x], b_d[x] - b_u[x]);
                let mut best = dx * dx + dy * dy;
                let (ex, ey) = (g_r[x] - g_l[x], g_d[x] - g_u[x]);
                let m = ex * ex + ey * ey;
                let take = m > best;
                dx = if take { ex } else { dx };
                dy = if take { ey } else { dy };
                best = if take { m } else { best };
                let (ex, ey) = (r_r[x] - r_l[x], r_d[x] - r_u[x]);
                let m = ex * ex + ey * ey;
                let take = m > best;
                dx = if take { ex } else { dx };
                dy = if take { ey } else { dy };
                best = if take { m } else { best };
                let mag = best.sqrt();
                let angle = fast_atan2_degrees(dy, dx) * to_radians * angle_scale - 0.5;
                // The angle is in [-0.5, 18): truncating it plus one floors it, without a call
                // to `floorf` where the target lacks a rounding instruction.
                let bin = (angle + 1.0) as i32 - 1;
                let frac = angle - bin as f32;
                let bin = bin + BINS as i32 * (i32::from(bin < 0) - i32::from(bin >= BINS as i32));
                b0[x] = bin as u8;
                b1[x] = if bin == BINS as i32 - 1 {
                    0
                } else {
                    bin as u8 + 1
                };
                v0[x] = mag * (1.0 - frac);
                v1[x] = mag * frac;
            }
        }
        Self {
            width,
            height,
            bin0,
            bin1,
            vote0,
            vote1,
        }
    }
}

/// The square root of every 8-bit sample: exactly the values of OpenCV's gamma table (both
/// correctly rounded), looked up rather than computed for every sample of every level.
fn square_roots() -> &'static [f32; 256] {
    static TABLE: OnceLock<[f32; 256]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|i| (i as f32).sqrt()))
}

/// OpenCV's `BORDER_REFLECT_101` index into `0..len` (`gfedcb|abcdefgh|gfedcba`).
pub(crate) fn reflect_101(i: isize, len: usize) -> usize {
    let len = len as isize;
    if len == 1 {
        return 0;
    }
    let mut i = i;
    loop {
        if i < 0 {
            i = -i;
        } else if i >= len {
            i = 2 * len - 2 - i;
        } else {
            return i as usize;
        }
    }
}

/// A block's dot product with its weights, in four float lanes (as OpenCV's SIMD sums it): lane
/// k sums the products of elements k, k + 4, ...; the lanes are then added as
/// (0 + 1) + (2 + 3). Written with the target's vector instructions where it has them: the
/// compiler vectorises the plain loop into two-lane halves with shuffles.
#[inline(always)]
fn dot(a: &[f32; BLOCK_LEN], b: &[f32; BLOCK_LEN]) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        use core::arch::wasm32::{
            f32x4_add, f32x4_extract_lane, f32x4_mul, f32x4_splat, v128_load,
        };
        let mut acc = f32x4_splat(0.0);
        for k in (0..BLOCK_LEN).step_by(4) {
            // SAFETY: k + 4 <= 36 for both arrays; v128_load reads unaligned.
            let (x, y) = unsafe {
                (
                    v128_load(a.as_ptr().add(k).cast()),
                    v128_load(b.as_ptr().add(k).cast()),
                )
            };
            acc = f32x4_add(acc, f32x4_mul(x, y));
        }
        (f32x4_extract_lane::<0>(acc) + f32x4_extract_lane::<1>(acc))
            + (f32x4_extract_lane::<2>(acc) + f32x4_extract_lane::<3>(acc))
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_add_ps, _mm_loadu_ps, _mm_mul_ps, _mm_setzero_ps, _mm_storeu_ps,
        };
        // SAFETY: SSE is part of x86-64; k + 4 <= 36 for both arrays; the loads are unaligned.
        let lanes = unsafe {
            let mut acc = _mm_setzero_ps();
            for k in (0..BLOCK_LEN).step_by(4) {
                let (x, y) = (
                    _mm_loadu_ps(a.as_ptr().add(k)),
                    _mm_loadu_ps(b.as_ptr().add(k)),
                );
                acc = _mm_add_ps(acc, _mm_mul_ps(x, y));
            }
            let mut lanes = [0.0f32; 4];
            _mm_storeu_ps(lanes.as_mut_ptr(), acc);
            lanes
        };
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
    }
    #[cfg(not(any(
        all(target_arch = "wasm32", target_feature = "simd128"),
        target_arch = "x86_64"
    )))]
    {
        let mut lanes = [0.0f32; 4];
        for (a, b) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
            for k in 0..4 {
                lanes[k] += a[k] * b[k];
            }
        }
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
    }
}

/// `cv::fastAtan2`: the angle of (x, y) in degrees, 0 to 360, by OpenCV's 7th-order polynomial
/// (about 0.01 degrees from the true angle).
#[inline(always)]
fn fast_atan2_degrees(y: f32, x: f32) -> f32 {
    #[allow(non_snake_case)]
    let [P1, P3, P5, P7, eps] = fast_atan2_constants();
    let (ax, ay) = (x.abs(), y.abs());
    // The smaller and the larger side. Non-negative floats order as their bits: integer minimum
    // and maximum, not `f32::min` (a call to `fminf` in wasm) nor a comparison (from which the
    // compiler divides both ways and picks a quotient after: two divisions a pixel).
    let (bx, by) = (ax.to_bits(), ay.to_bits());
    let (lo, hi) = (f32::from_bits(bx.min(by)), f32::from_bits(bx.max(by)));
    let c = lo / (hi + eps);
    let c2 = c * c;
    let a = (((P7 * c2 + P5) * c2 + P3) * c2 + P1) * c;
    let a = if ax < ay { 90.0 - a } else { a };
    let a = if x < 0.0 { 180.0 - a } else { a };
    if y < 0.0 {
        360.0 - a
    } else {
        a
    }
}

/// `cv::fastAtan2`'s polynomial coefficients in degrees (of c, c^3, c^5, c^7) and the epsilon
/// added to the larger side.
#[allow(non_snake_case)]
#[inline(always)]
pub(crate) const fn fast_atan2_constants() -> [f32; 5] {
    const DEG: f32 = (180.0 / std::f64::consts::PI) as f32;
    [
        0.999_787_84 * DEG,
        -0.325_808_4 * DEG,
        0.155_578_65 * DEG,
        -0.044_326_556 * DEG,
        f64::EPSILON as f32,
    ]
}

/// Values one pixel row gives a block: its two columns of cells, 9 bins each (left, right).
const ROW_LEN: usize = 2 * BINS;

/// A block's weights along one axis: for each of its 16 pixels, the weight of its vote in the
/// first and in the second cell along that axis (bilinear between the cells' centres times the
/// block's Gaussian along the axis; 0 where the pixel does not reach the cell). The weight of a
/// pixel's vote in a cell is the product of the two axes' weights: OpenCV's bilinear weights and
/// Gaussian (sigma 4) both factor so.
pub(crate) type AxisWeights = [[f32; 2]; BLOCK];

/// Pixels at each end of a block (along either axis) that reach one of its two cells only:
/// their weight in the other cell is 0 (the first quarter reaches only the first cell, the
/// last quarter only the second).
const ONE_CELL: usize = CELL / 2;

pub(crate) fn axis_weights() -> &'static AxisWeights {
    static TABLE: OnceLock<AxisWeights> = OnceLock::new();
    TABLE.get_or_init(|| {
        let sigma = (BLOCK + BLOCK) as f32 / 8.0;
        let scale = 1.0 / (sigma * sigma * 2.0);
        let half = BLOCK as f32 * 0.5;
        let mut table = [[0.0f32; 2]; BLOCK];
        for (i, weights) in table.iter_mut().enumerate() {
            let d = i as f32 - half;
            let gauss = (-(d * d) * scale).exp();
            let c = (i as f32 + 0.5) / CELL as f32 - 0.5;
            let c0 = c.floor();
            let f = c - c0;
            for (k, w) in [(c0 as i32, 1.0 - f), (c0 as i32 + 1, f)] {
                if (0..2).contains(&k) {
                    weights[k as usize] = gauss * w;
                }
            }
        }
        table
    })
}

/// The votes of the 16 pixels from (`x`, `y`) along one row of the padded image into a block's
/// two columns of cells (the first pass of a block's histogram; a block column shares it with
/// the blocks above and below).
#[inline(always)]
fn row_votes(g: &Gradients, axes: &AxisWeights, x: usize, y: usize) -> [f32; ROW_LEN] {
    let mut votes = [0.0f32; ROW_LEN];
    let base = y * g.width + x;
    let (bin0, bin1) = (&g.bin0[base..][..BLOCK], &g.bin1[base..][..BLOCK]);
    let (vote0, vote1) = (&g.vote0[base..][..BLOCK], &g.vote1[base..][..BLOCK]);
    // The zero weights of the pixels that reach one cell only are skipped (adding +0 to a sum
    // of non-negative votes changes no bit).
    for j in 0..BLOCK {
        let [w0, w1] = axes[j];
        let (b0, b1) = (usize::from(bin0[j]), usize::from(bin1[j]));
        let (v0, v1) = (vote0[j], vote1[j]);
        if j < BLOCK - ONE_CELL {
            votes[b0] += w0 * v0;
            votes[b1] += w0 * v1;
        }
        if j >= ONE_CELL {
            votes[BINS + b0] += w1 * v0;
            votes[BINS + b1] += w1 * v1;
        }
    }
    votes
}

/// A block's L2-Hys-normalised histogram from its 16 rows' votes (`rows(i)`, top row first):
/// the rows weighted into the two rows of cells, in OpenCV's order (cells column by column).
#[inline(always)]
fn block_from_rows<'a>(
    axes: &AxisWeights,
    rows: impl Fn(usize) -> &'a [f32; ROW_LEN],
) -> [f32; BLOCK_LEN] {
    let mut cells = [[0.0f32; ROW_LEN]; 2];
    // As in `row_votes`, the zero weights of the rows that reach one cell only are skipped.
    for (i, &[w0, w1]) in axes.iter().enumerate() {
        let row = rows(i);
        if i < BLOCK - ONE_CELL {
            for k in 0..ROW_LEN {
                cells[0][k] += w0 * row[k];
            }
        }
        if i >= ONE_CELL {
            for k in 0..ROW_LEN {
                cells[1][k] += w1 * row[k];
            }
        }
    }
    let mut hist = [0.0f32; BLOCK_LEN];
    for cx in 0..2 {
        for (cy, cells) in cells.iter().enumerate() {
            hist[(cx * 2 + cy) * BINS..][..BINS].copy_from_slice(&cells[cx * BINS..][..BINS]);
        }
    }
    normalise_l2_hys(&mut hist);
    hist
}

/// The L2-Hys-normalised histogram of the block whose top-left pixel is (`x`, `y`) of the
/// padded image (the same operations as [`BlockGrid`], so the same numbers).
fn block_histogram(g: &Gradients, x: usize, y: usize) -> [f32; BLOCK_LEN] {
    let axes = axis_weights();
    let rows: [[f32; ROW_LEN]; BLOCK] = std::array::from_fn(|i| row_votes(g, axes, x, y + i));
    block_from_rows(axes, |i| &rows[i])
}

/// OpenCV's L2-Hys: divide by the norm plus `0.1 * len`, clip at 0.2, divide by the norm plus
/// 1e-3.
#[inline(always)]
fn normalise_l2_hys(hist: &mut [f32]) {
    let sum: f32 = hist.iter().map(|v| v * v).sum();
    let scale = 1.0 / (sum.sqrt() + hist.len() as f32 * 0.1);
    let mut sum = 0.0f32;
    for v in hist.iter_mut() {
        let v1 = *v * scale;
        // A comparison, not `f32::min` (a call to `fminf` in wasm); no value is NaN.
        *v = if v1 > 0.2 { 0.2 } else { v1 };
        sum += *v * *v;
    }
    let scale = 1.0 / (sum.sqrt() + 1e-3);
    for v in hist.iter_mut() {
        *v *= scale;
    }
}

/// Block histograms of a padded image on a grid of `step` pixels, computed once and shared by
/// every window that holds them; row after row of the grid, `across` a row.
struct BlockGrid {
    across: usize,
    hists: Vec<[f32; BLOCK_LEN]>,
}

impl BlockGrid {
    #[inline(always)]
    fn new(g: &Gradients, step: usize) -> Self {
        let across = (g.width - BLOCK) / step + 1;
        let down = (g.height - BLOCK) / step + 1;
        let axes = axis_weights();
        // Each pixel row's votes for every block column, once: each is shared by two blocks of
        // the column (more when `step` is below 8).
        let height = (down - 1) * step + BLOCK;
        let mut rows = Vec::with_capacity(height * across);
        for y in 0..height {
            for bx in 0..across {
                rows.push(row_votes(g, axes, bx * step, y));
            }
        }
        let mut hists = Vec::with_capacity(across * down);
        for by in 0..down {
            for bx in 0..across {
                hists.push(block_from_rows(axes, |i| {
                    &rows[(by * step + i) * across + bx]
                }));
            }
        }
        Self { across, hists }
    }
}

/// OpenCV's `cvRound`: to the nearest integer, halves to even.
pub(crate) fn round(v: f64) -> i32 {
    v.round_ties_even() as i32
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

simd_dispatch! {
    /// OpenCV's `resize(..., INTER_LINEAR_EXACT)` of an 8-bit image: bilinear with
    /// coefficients in 1/256ths (rounded halves to even), sums kept exact, the result rounded
    /// once.
    pub fn resize_linear_exact(image: &RgbImage, width: u32, height: u32) -> RgbImage =
        resize_linear_exact_body
}

#[inline(always)]
fn resize_linear_exact_body(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = (image.width() as usize, image.height() as usize);
    let taps = |src: usize, dst: u32| -> Vec<(usize, usize, u32, u32)> {
        let scale = src as f64 / f64::from(dst);
        (0..dst)
            .map(|d| {
                let f = (f64::from(d) + 0.5) * scale - 0.5;
                let s = f.floor();
                let frac = f - s;
                let s = s as isize;
                if s < 0 {
                    (0, 0, 256, 0)
                } else if s as usize >= src - 1 {
                    (src - 1, src - 1, 256, 0)
                } else {
                    let w1 = (frac * 256.0).round_ties_even() as u32;
                    let w0 = ((1.0 - frac) * 256.0).round_ties_even() as u32;
                    (s as usize, s as usize + 1, w0, w1)
                }
            })
            .collect()
    };
    let xs = taps(sw, width);
    let ys = taps(sh, height);
    let src = image.as_raw();
    let mut out = RgbImage::new(width, height);
    let dst: &mut [u8] = &mut out;
    // Each output row: the vertical pass over the source row's samples (contiguous, so in
    // SIMD lanes; values times 256), then the horizontal pass. The sums are exact integers, so
    // their order changes nothing.
    let row_len = width as usize * 3;
    let mut column = vec![0u32; sw * 3];
    for (line, &(y0, y1, w0, w1)) in dst.chunks_exact_mut(row_len).zip(&ys) {
        let (a, b) = (&src[y0 * sw * 3..][..sw * 3], &src[y1 * sw * 3..][..sw * 3]);
        for ((v, &a), &b) in column.iter_mut().zip(a).zip(b) {
            *v = w0 * u32::from(a) + w1 * u32::from(b);
        }
        for (out, &(x0, x1, w0, w1)) in line.chunks_exact_mut(3).zip(&xs) {
            for c in 0..3 {
                // At most 256 * (256 * 255): the sum fits 32 bits.
                let sum = w0 * column[x0 * 3 + c] + w1 * column[x1 * 3 + c];
                out[c] = ((sum + (1 << 15)) >> 16).min(255) as u8;
            }
        }
    }
    out
}

/// OpenCV's `HOGDescriptor::groupRectangles`: boxes are joined (transitively) when their
/// corners are within `eps` times their mean smaller side; each cluster of more than
/// `threshold` boxes gives its mean box (rounded) and best score, unless it lies inside a
/// larger cluster's box (with `eps` slack) that has more boxes (more than 3, or it has fewer than
/// 3).
pub fn group_rectangles(hits: &[Detection], threshold: usize, eps: f64) -> Vec<Detection> {
    let n = hits.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let similar = |a: &Rect, b: &Rect| {
        let delta = eps * f64::from(a.w.min(b.w) + a.h.min(b.h)) * 0.5;
        f64::from((a.x - b.x).abs()) <= delta
            && f64::from((a.y - b.y).abs()) <= delta
            && f64::from((a.x + a.w - b.x - b.w).abs()) <= delta
            && f64::from((a.y + a.h - b.y - b.h).abs()) <= delta
    };
    for i in 0..n {
        for j in i + 1..n {
            if similar(&hits[i].rect, &hits[j].rect) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    // Classes numbered by their first member, as `cv::partition` numbers them.
    let mut label = vec![usize::MAX; n];
    let mut classes: Vec<(f64, f64, f64, f64, usize, f64)> = Vec::new();
    for (i, hit) in hits.iter().enumerate() {
        let root = find(&mut parent, i);
        if label[root] == usize::MAX {
            label[root] = classes.len();
            classes.push((0.0, 0.0, 0.0, 0.0, 0, f64::MIN));
        }
        let c = &mut classes[label[root]];
        let r = hit.rect;
        c.0 += f64::from(r.x);
        c.1 += f64::from(r.y);
        c.2 += f64::from(r.w);
        c.3 += f64::from(r.h);
        c.4 += 1;
        c.5 = c.5.max(hit.score);
    }
    let boxes: Vec<(Rect, usize, f64)> = classes
        .iter()
        .map(|&(x, y, w, h, count, score)| {
            let s = 1.0 / count as f64;
            (
                Rect {
                    x: round(x * s),
                    y: round(y * s),
                    w: round(w * s),
                    h: round(h * s),
                },
                count,
                score,
            )
        })
        .collect();
    let mut out = Vec::new();
    for (i, &(r1, n1, score)) in boxes.iter().enumerate() {
        if n1 <= threshold {
            continue;
        }
        let inside_larger = boxes.iter().enumerate().any(|(j, &(r2, n2, _))| {
            if j == i || n2 <= threshold {
                return false;
            }
            let dx = round(f64::from(r2.w) * eps);
            let dy = round(f64::from(r2.h) * eps);
            r1.x >= r2.x - dx
                && r1.y >= r2.y - dy
                && r1.x + r1.w <= r2.x + r2.w + dx
                && r1.y + r1.h <= r2.y + r2.h + dy
                && (n2 > n1.max(3) || n1 < 3)
        });
        if !inside_larger {
            out.push(Detection { rect: r1, score });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_carried_detector_has_opencvs_size_and_bias() {
        let d = HogDetector::opencv_people();
        assert_eq!(d.weights.len(), 3780);
        assert!((d.bias - -6.665_791_5).abs() < 1e-6, "bias {}", d.bias);
    }

    #[test]
    fn fast_atan2_is_within_a_hundredth_of_a_degree() {
        for k in 0..720 {
            let t = (k as f64 + 0.25) / 2.0;
            let (y, x) = (t.to_radians().sin() as f32, t.to_radians().cos() as f32);
            let a = f64::from(fast_atan2_degrees(y, x));
            assert!((a - t).abs() < 0.01, "{t}: {a}");
        }
    }

    #[test]
    fn the_first_and_last_quarters_of_a_block_reach_one_cell_only() {
        // `row_votes` and `block_from_rows` skip these zero weights.
        for (j, &[w0, w1]) in axis_weights().iter().enumerate() {
            assert_eq!(w0 == 0.0, j >= BLOCK - ONE_CELL, "pixel {j}");
            assert_eq!(w1 == 0.0, j < ONE_CELL, "pixel {j}");
        }
    }

    #[test]
    fn reflect_101_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..8).map(|i| reflect_101(i, 5)).collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn a_flat_image_has_an_empty_descriptor_and_scores_the_bias() {
        let image = RgbImage::from_pixel(64, 128, image::Rgb([90, 120, 30]));
        assert!(descriptor(&image, 0, 0).iter().all(|&v| v == 0.0));
        let scores = HogDetector::opencv_people().window_scores(&image, 8, 0);
        assert_eq!(scores.len(), 1);
        assert!((scores[0].score - -6.665_791_5).abs() < 1e-6);
    }

    #[test]
    fn blocks_are_unit_length_after_l2_hys() {
        let image = RgbImage::from_fn(80, 140, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 3 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        });
        let d = descriptor(&image, 8, 4);
        assert_eq!(d.len(), DESCRIPTOR_LEN);
        for block in d.chunks(BLOCK_LEN) {
            let norm: f32 = block.iter().map(|v| v * v).sum::<f32>().sqrt();
            // Unit length but for the 1e-3 added to the norm.
            assert!((0.99..=1.0).contains(&norm), "norm {norm}");
        }
    }

    #[test]
    fn the_pyramid_stops_before_a_window_no_longer_fits() {
        let scales = pyramid(128, 256, 1.05, 64);
        let last = *scales.last().unwrap();
        assert!(round(128.0 / last) >= 64 && round(256.0 / last) >= 128);
        assert!(round(128.0 / (last * 1.05)) < 64 || round(256.0 / (last * 1.05)) < 128);
        assert_eq!(pyramid(10, 10, 1.05, 64), [1.0]);
    }

    #[test]
    fn resizing_to_the_same_size_changes_nothing() {
        let image = RgbImage::from_fn(9, 7, |x, y| image::Rgb([(x * 20) as u8, (y * 30) as u8, 7]));
        assert_eq!(resize_linear_exact(&image, 9, 7), image);
    }

    #[test]
    fn grouping_keeps_clusters_of_more_than_the_threshold() {
        let hit = |x, y, score| Detection {
            rect: Rect {
                x,
                y,
                w: 64,
                h: 128,
            },
            score,
        };
        let hits = [
            hit(100, 100, 0.5),
            hit(104, 100, 1.5),
            hit(100, 108, 0.2),
            hit(400, 50, 3.0),
            hit(404, 50, 2.0),
        ];
        let groups = group_rectangles(&hits, 2, 0.2);
        assert_eq!(
            groups,
            [Detection {
                rect: Rect {
                    x: 101,
                    y: 103,
                    w: 64,
                    h: 128
                },
                score: 1.5
            }]
        );
        assert_eq!(group_rectangles(&hits, 1, 0.2).len(), 2);
    }
}
