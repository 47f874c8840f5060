//! A depthwise convolution's three loops over plain slices: forward, the input's gradient
//! (planes in parallel) and the weight's gradient (channels in parallel). A plane is one
//! image's channel, row-major. Each loop walks the kernel's taps outside and a row's columns
//! inside, so at stride 1 the inner loop is a contiguous multiply-add the compiler vectorises.

use rayon::prelude::*;
use std::ops::Range;

use crate::backbone::cpu_train::by_rows;

/// A depthwise convolution's shapes: one filter per channel, no dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Input plane `[h, w]`.
    pub input: [usize; 2],
    /// Kernel `[h, w]`.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding `[top, left]`.
    pub pad: [usize; 2],
    /// Output plane `[h, w]`.
    pub output: [usize; 2],
}

impl Geometry {
    /// The geometry of an input plane, or `None` when the kernel (with padding `[top, left,
    /// bottom, right]`) does not fit.
    pub fn new(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        [top, left, bottom, right]: [usize; 4],
    ) -> Option<Self> {
        let size = |i: usize, before: usize, after: usize, k: usize, s: usize| {
            (i + before + after)
                .checked_sub(k)
                .filter(|_| s > 0 && k > 0)
                .map(|span| span / s + 1)
        };
        Some(Self {
            input,
            kernel,
            stride,
            pad: [top, left],
            output: [
                size(input[0], top, bottom, kernel[0], stride[0])?,
                size(input[1], left, right, kernel[1], stride[1])?,
            ],
        })
    }

    fn input_len(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn output_len(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// The input row that output row `oy` reads through kernel row `ky`, if inside.
    fn input_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky)
            .checked_sub(self.pad[0])
            .filter(|&iy| iy < self.input[0])
    }

    /// The output columns whose input column through kernel column `kx` is inside, and the
    /// first of those input columns.
    fn columns(&self, kx: usize) -> (Range<usize>, usize) {
        let (w, s, left) = (self.input[1], self.stride[1], self.pad[1]);
        // Input column of output column `ox`: ox * s + kx - left, in [0, w).
        let first = left.saturating_sub(kx).div_ceil(s);
        let end = if w + left > kx {
            ((w - 1 + left - kx) / s + 1).min(self.output[1])
        } else {
            0
        };
        let first = first.min(end);
        (first..end, (first * s + kx).saturating_sub(left))
    }

    /// For every tap `(ky, kx)` and output row `oy` with its input row inside: `visit(tap
    /// index, input row, output row, output columns, first input column)`.
    fn taps(&self, mut visit: impl FnMut(usize, usize, usize, Range<usize>, usize)) {
        for ky in 0..self.kernel[0] {
            for kx in 0..self.kernel[1] {
                let (columns, first) = self.columns(kx);
                if columns.is_empty() {
                    continue;
                }
                for oy in 0..self.output[0] {
                    if let Some(iy) = self.input_row(oy, ky) {
                        visit(ky * self.kernel[1] + kx, iy, oy, columns.clone(), first);
                    }
                }
            }
        }
    }
}

/// `[batch, channels, out_h, out_w]` from `x` (`[batch, channels, h, w]`) and `weight`
/// (`[channels, 1, kh, kw]`).
pub fn forward(x: &[f32], weight: &[f32], channels: usize, g: &Geometry) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let planes = x.len() / g.input_len().max(1);
    let (w, ow, s) = (g.input[1], g.output[1], g.stride[1]);
    by_rows(planes * g.output_len(), g.output_len(), |plane, out| {
        let x = &x[plane * g.input_len()..][..g.input_len()];
        let weight = &weight[plane % channels * taps..][..taps];
        let out = zeroed(out);
        g.taps(|tap, iy, oy, columns, first| {
            let k = weight[tap];
            let input = &x[iy * w..][..w];
            let row = &mut out[oy * ow..][..ow];
            add_scaled(&mut row[columns], Strided(&input[first..], s), k);
        });
    })
}

/// The input's gradient (`[batch, channels, h, w]`) from the output's.
pub fn input_gradient(dy: &[f32], weight: &[f32], channels: usize, g: &Geometry) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let planes = dy.len() / g.output_len().max(1);
    let (w, ow, s) = (g.input[1], g.output[1], g.stride[1]);
    by_rows(planes * g.input_len(), g.input_len(), |plane, dx| {
        let dy = &dy[plane * g.output_len()..][..g.output_len()];
        let weight = &weight[plane % channels * taps..][..taps];
        let dx = zeroed(dx);
        g.taps(|tap, iy, oy, columns, first| {
            let k = weight[tap];
            let grad = &dy[oy * ow..][..ow];
            let row = &mut dx[iy * w..][..w];
            add_scaled_strided(&mut row[first..], s, &grad[columns], k);
        });
    })
}

/// The weight's gradient (`[channels, 1, kh, kw]`): per tap, the sum over the batch of the
/// output's gradient against the input the tap saw. Per channel and tap the products are
/// added column by column into one row of partial sums, then the row is summed.
pub fn weight_gradient(x: &[f32], dy: &[f32], channels: usize, g: &Geometry) -> Vec<f32> {
    let taps = g.kernel[0] * g.kernel[1];
    let (w, ow, s) = (g.input[1], g.output[1], g.stride[1]);
    let batch = x.len() / (channels * g.input_len()).max(1);
    (0..channels)
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut partial = vec![0.0f32; taps * ow];
            for n in 0..batch {
                let plane = n * channels + c;
                let x = &x[plane * g.input_len()..][..g.input_len()];
                let dy = &dy[plane * g.output_len()..][..g.output_len()];
                g.taps(|tap, iy, oy, columns, first| {
                    let input = &x[iy * w..][..w];
                    let grad = &dy[oy * ow..][..ow];
                    let sums = &mut partial[tap * ow..][..ow];
                    add_products(
                        &mut sums[columns.clone()],
                        &grad[columns],
                        Strided(&input[first..], s),
                    );
                });
            }
            partial
                .chunks_exact(ow.max(1))
                .map(|row| row.iter().map(|&v| v as f64).sum::<f64>() as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every `step`-th value of a slice, from its first.
struct Strided<'a>(&'a [f32], usize);

impl Strided<'_> {
    /// The first `n` values as a slice when the step is 1, else the values `n` steps cover.
    fn covering(&self, n: usize) -> &[f32] {
        let Strided(values, step) = *self;
        if n == 0 {
            &[]
        } else {
            &values[..(n - 1) * step + 1]
        }
    }
}

// The three loops below branch on the step: at 1 they zip plain slices, which the compiler
// vectorises (`step_by` keeps it from doing so); at 2 they index.

/// `dst[j] += k * src[j * step]`.
#[inline(always)]
fn add_scaled(dst: &mut [f32], src: Strided, k: f32) {
    let src_values = src.covering(dst.len());
    if src.1 == 1 {
        for (d, &v) in dst.iter_mut().zip(src_values) {
            *d += k * v;
        }
    } else {
        for (j, d) in dst.iter_mut().enumerate() {
            *d += k * src_values[j * src.1];
        }
    }
}

/// `dst[j * step] += k * src[j]`.
#[inline(always)]
fn add_scaled_strided(dst: &mut [f32], step: usize, src: &[f32], k: f32) {
    if src.is_empty() {
        return;
    }
    let dst = &mut dst[..(src.len() - 1) * step + 1];
    if step == 1 {
        for (d, &v) in dst.iter_mut().zip(src) {
            *d += k * v;
        }
    } else {
        for (j, &v) in src.iter().enumerate() {
            dst[j * step] += k * v;
        }
    }
}

/// `sums[j] += a[j] * b[j * step]`.
#[inline(always)]
fn add_products(sums: &mut [f32], a: &[f32], b: Strided) {
    let b_values = b.covering(sums.len());
    let a = &a[..sums.len()];
    if b.1 == 1 {
        for ((s, &x), &y) in sums.iter_mut().zip(a).zip(b_values) {
            *s += x * y;
        }
    } else {
        for (j, (s, &x)) in sums.iter_mut().zip(a).enumerate() {
            *s += x * b_values[j * b.1];
        }
    }
}

/// The slice, zeroed (so written in full).
fn zeroed(values: &mut [std::mem::MaybeUninit<f32>]) -> &mut [f32] {
    for v in values.iter_mut() {
        v.write(0.0);
    }
    // SAFETY: every value was just written; `MaybeUninit<f32>` has `f32`'s layout.
    unsafe { &mut *(values as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written out directly, in f64: `[batch, channels, out_h, out_w]`.
    fn reference(x: &[f32], weight: &[f32], channels: usize, g: &Geometry) -> Vec<f64> {
        let [h, w] = g.input;
        let [kh, kw] = g.kernel;
        let [oh, ow] = g.output;
        let planes = x.len() / (h * w);
        let mut out = vec![0.0f64; planes * oh * ow];
        for p in 0..planes {
            let c = p % channels;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0.0f64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * g.stride[0] + ky) as isize - g.pad[0] as isize;
                            let ix = (ox * g.stride[1] + kx) as isize - g.pad[1] as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                sum += weight[c * kh * kw + ky * kw + kx] as f64
                                    * x[p * h * w + iy as usize * w + ix as usize] as f64;
                            }
                        }
                    }
                    out[p * oh * ow + oy * ow + ox] = sum;
                }
            }
        }
        out
    }

    fn wave(len: usize, step: f32) -> Vec<f32> {
        (0..len).map(|i| (i as f32 * step).sin()).collect()
    }

    /// Geometries of MobileNetV2 (3x3, padding 1, strides 1 and 2, even and odd planes), a
    /// 5x5 one with uneven padding, and planes narrower than the kernel.
    fn geometries() -> Vec<Geometry> {
        [
            ([7, 9], [3, 3], [1, 1], [1, 1, 1, 1]),
            ([8, 6], [3, 3], [2, 2], [1, 1, 1, 1]),
            ([7, 5], [3, 3], [2, 2], [1, 1, 1, 1]),
            ([9, 11], [5, 5], [2, 1], [2, 1, 0, 3]),
            ([2, 1], [3, 3], [1, 1], [1, 1, 1, 1]),
        ]
        .into_iter()
        .map(|(input, kernel, stride, pad)| Geometry::new(input, kernel, stride, pad).unwrap())
        .collect()
    }

    #[test]
    fn forward_and_both_gradients_match_the_convolution_written_out() {
        let (batch, channels) = (2, 3);
        for g in geometries() {
            let taps = g.kernel[0] * g.kernel[1];
            let x = wave(batch * channels * g.input_len(), 0.37);
            let weight = wave(channels * taps, 0.91);
            let dy = wave(batch * channels * g.output_len(), 0.53);
            let close = |got: &[f32], want: &[f64], what: &str| {
                assert_eq!(got.len(), want.len(), "{what} {g:?}");
                for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
                    assert!(
                        (a as f64 - b).abs() < 1e-5,
                        "{what}[{i}] {g:?}: {a} against {b}"
                    );
                }
            };
            close(
                &forward(&x, &weight, channels, &g),
                &reference(&x, &weight, channels, &g),
                "output",
            );
            // The loss sum(dy * conv(x, weight)) is linear in each: its gradient for an input
            // value (or a weight) is the loss of a unit input (or weight) there.
            let loss = |x: &[f32], weight: &[f32]| -> f64 {
                reference(x, weight, channels, &g)
                    .iter()
                    .zip(&dy)
                    .map(|(y, &d)| y * d as f64)
                    .sum()
            };
            let unit = |len: usize, i: usize| {
                let mut v = vec![0.0f32; len];
                v[i] = 1.0;
                v
            };
            let want_dx: Vec<f64> = (0..x.len())
                .map(|i| loss(&unit(x.len(), i), &weight))
                .collect();
            let want_dw: Vec<f64> = (0..weight.len())
                .map(|i| loss(&x, &unit(weight.len(), i)))
                .collect();
            close(
                &input_gradient(&dy, &weight, channels, &g),
                &want_dx,
                "input gradient",
            );
            close(
                &weight_gradient(&x, &dy, channels, &g),
                &want_dw,
                "weight gradient",
            );
        }
    }

    #[test]
    fn geometry_matches_burns_output_size_and_rejects_what_does_not_fit() {
        let g = Geometry::new([256, 128], [3, 3], [2, 2], [1, 1, 1, 1]).unwrap();
        assert_eq!(g.output, [128, 64]);
        let g = Geometry::new([8, 4], [3, 3], [1, 1], [1, 1, 1, 1]).unwrap();
        assert_eq!(g.output, [8, 4]);
        assert!(Geometry::new([1, 1], [3, 3], [1, 1], [0, 0, 0, 0]).is_none());
        assert!(Geometry::new([4, 4], [3, 3], [0, 1], [1, 1, 1, 1]).is_none());
    }
}
