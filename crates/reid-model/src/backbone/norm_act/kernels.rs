//! The fused operation's loops over plain slices of a `[batch, channels, rest]` activation
//! (row-major, `rest` the spatial size): per-channel sums run over channels in parallel, the
//! element-wise passes over rows (one image's channel) in parallel. Inner loops keep `LANES`
//! partial sums and clamp with `f32::clamp` (comparisons), so the compiler vectorises them; a NaN stays NaN.

use rayon::prelude::*;

use crate::backbone::cpu_train::by_rows;

/// Partial sums per row: wide enough for two AVX-512 registers.
const LANES: usize = 16;

/// `sum(term(i))` over a row's indices, `term` computing `K` values at once, in `LANES`
/// partial sums each.
#[inline(always)]
// `lane` indexes the `K` accumulators at once, the layout the compiler vectorises.
#[allow(clippy::needless_range_loop)]
fn lane_sums<const K: usize>(len: usize, term: impl Fn(usize) -> [f32; K]) -> [f32; K] {
    let mut lanes = [[0.0f32; LANES]; K];
    let whole = len / LANES * LANES;
    for start in (0..whole).step_by(LANES) {
        for lane in 0..LANES {
            let values = term(start + lane);
            for k in 0..K {
                lanes[k][lane] += values[k];
            }
        }
    }
    let mut sums = [0.0f32; K];
    for k in 0..K {
        sums[k] = lanes[k].iter().sum();
    }
    for i in whole..len {
        let values = term(i);
        for k in 0..K {
            sums[k] += values[k];
        }
    }
    sums
}

/// The rows of channel `c`: one per image.
fn channel_rows(
    x: &[f32],
    channels: usize,
    rest: usize,
    c: usize,
) -> impl Iterator<Item = &[f32]> + '_ {
    x.chunks_exact(channels * rest)
        .map(move |image| &image[c * rest..][..rest])
}

/// Per channel: the mean and the biased variance over batch and space. Two passes (the
/// variance about the mean, not from the mean of squares); each row's sum is added in f64.
pub fn statistics(x: &[f32], channels: usize, rest: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (x.len() / channels.max(1)) as f64;
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let mut sum = 0.0f64;
            for row in channel_rows(x, channels, rest, c) {
                sum += lane_sums(row.len(), |i| [row[i]])[0] as f64;
            }
            let mean = (sum / count) as f32;
            let mut squares = 0.0f64;
            for row in channel_rows(x, channels, rest, c) {
                let [s] = lane_sums(row.len(), |i| {
                    let d = row[i] - mean;
                    [d * d]
                });
                squares += s as f64;
            }
            (mean, (squares / count) as f32)
        })
        .unzip()
}

/// `clamp(x * scale[c] + shift[c])` for every value of channel `c`.
pub fn normalise(
    x: &[f32],
    channels: usize,
    rest: usize,
    (scale, shift): (&[f32], &[f32]),
    bounds: (f32, f32),
) -> Vec<f32> {
    by_rows(x.len(), rest, |row, out| {
        let c = row % channels;
        let (scale, shift) = (scale[c], shift[c]);
        let (low, high) = bounds;
        let x = &x[row * rest..][..rest];
        assert_eq!(out.len(), x.len());
        for (o, &v) in out.iter_mut().zip(x) {
            // `f32::clamp` compares (a NaN stays NaN); the bounds are never NaN and low <= high.
            o.write((v * scale + shift).clamp(low, high));
        }
    })
}

/// The upstream gradient where the clamp passes it (its output strictly inside the bounds,
/// as PyTorch's `hardtanh` backward), zero elsewhere.
#[inline(always)]
fn passed(dy: f32, y: f32, (low, high): (f32, f32)) -> f32 {
    if y > low && y < high {
        dy
    } else {
        0.0
    }
}

/// A frozen layer's input gradient: `dy * scale[c]` where the clamp passes it.
pub fn scaled_gradient(
    (y, dy): (&[f32], &[f32]),
    channels: usize,
    rest: usize,
    scale: &[f32],
    bounds: (f32, f32),
) -> Vec<f32> {
    by_rows(y.len(), rest, |row, dx| {
        let k = scale[row % channels];
        let at = row * rest;
        let (y, dy) = (&y[at..][..rest], &dy[at..][..rest]);
        assert_eq!(dx.len(), y.len());
        for ((d, &y), &dy) in dx.iter_mut().zip(y).zip(dy) {
            d.write(passed(dy, y, bounds) * k);
        }
    })
}

/// Per channel: `sum(g)` and `sum(g * (x - mean))`, `g` the gradient reaching the
/// normalisation (`dy` through the clamp). The first is beta's gradient; the second times
/// `1 / std` is gamma's.
pub fn gradient_sums(
    (x, y, dy): (&[f32], &[f32], &[f32]),
    channels: usize,
    rest: usize,
    mean: &[f32],
    bounds: (f32, f32),
) -> (Vec<f32>, Vec<f32>) {
    (0..channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let (mut sum, mut dot) = (0.0f64, 0.0f64);
            let rows = channel_rows(x, channels, rest, c)
                .zip(channel_rows(y, channels, rest, c))
                .zip(channel_rows(dy, channels, rest, c));
            for ((x, y), dy) in rows {
                let (y, dy) = (&y[..x.len()], &dy[..x.len()]);
                let [s, d] = lane_sums(x.len(), |i| {
                    let g = passed(dy[i], y[i], bounds);
                    [g, g * (x[i] - m)]
                });
                sum += s as f64;
                dot += d as f64;
            }
            (sum as f32, dot as f32)
        })
        .unzip()
}

/// The input's gradient: `gamma / std * (g - mean(g) - xhat * mean(g * xhat))` per channel,
/// `xhat` the normalised input. `sums` are `gradient_sums`' results.
pub struct InputGradient<'a> {
    pub gamma: &'a [f32],
    pub mean: &'a [f32],
    pub inv_std: &'a [f32],
    pub sums: (&'a [f32], &'a [f32]),
}

impl InputGradient<'_> {
    pub fn compute(
        &self,
        (x, y, dy): (&[f32], &[f32], &[f32]),
        channels: usize,
        rest: usize,
        bounds: (f32, f32),
    ) -> Vec<f32> {
        let count = (x.len() / channels.max(1)) as f32;
        by_rows(x.len(), rest, |row, dx| {
            let c = row % channels;
            let (m, inv_std) = (self.mean[c], self.inv_std[c]);
            let scale = self.gamma[c] * inv_std;
            let mean_grad = self.sums.0[c] / count;
            // mean(g * xhat) = sum(g * (x - mean)) / std / count, times xhat's 1 / std.
            let projection = self.sums.1[c] / count * inv_std * inv_std;
            let at = row * rest;
            let (x, y, dy) = (&x[at..][..rest], &y[at..][..rest], &dy[at..][..rest]);
            assert_eq!(dx.len(), x.len());
            for (i, d) in dx.iter_mut().enumerate() {
                let g = passed(dy[i], y[i], bounds);
                d.write(scale * (g - mean_grad - (x[i] - m) * projection));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 images x 5 channels x 37 values (more than two lanes' widths plus a tail).
    fn activation() -> Vec<f32> {
        (0..3 * 5 * 37)
            .map(|i| (i as f32 * 0.61).sin() * 3.0 + (i / 37 % 5) as f32)
            .collect()
    }

    fn reference_statistics(x: &[f32], channels: usize, rest: usize) -> (Vec<f64>, Vec<f64>) {
        (0..channels)
            .map(|c| {
                let values: Vec<f64> = channel_rows(x, channels, rest, c)
                    .flatten()
                    .map(|&v| v as f64)
                    .collect();
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let variance =
                    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
                (mean, variance)
            })
            .unzip()
    }

    #[test]
    fn statistics_are_the_mean_and_biased_variance_per_channel() {
        let x = activation();
        let (mean, variance) = statistics(&x, 5, 37);
        let (want_mean, want_variance) = reference_statistics(&x, 5, 37);
        for c in 0..5 {
            assert!((mean[c] as f64 - want_mean[c]).abs() < 1e-6, "mean {c}");
            assert!(
                (variance[c] as f64 - want_variance[c]).abs() < 1e-5,
                "variance {c}"
            );
        }
    }

    #[test]
    fn normalise_clamps_and_keeps_nan() {
        let mut x = activation();
        x[40] = f32::NAN;
        let (scale, shift) = (vec![2.0; 5], vec![1.0; 5]);
        let y = normalise(&x, 5, 37, (&scale, &shift), (0.0, 6.0));
        assert_eq!(y.len(), x.len());
        for (i, (&y, &x)) in y.iter().zip(&x).enumerate() {
            if i == 40 {
                assert!(y.is_nan());
            } else {
                assert_eq!(y, (x * 2.0 + 1.0).clamp(0.0, 6.0), "at {i}");
            }
        }
    }

    /// The input gradient against central differences of the loss `sum(w * clamp(bn(x)))`,
    /// in f64.
    #[test]
    fn the_input_gradient_is_the_loss_derivative() {
        let (channels, rest) = (5, 37);
        let x = activation();
        let weights: Vec<f32> = (0..x.len()).map(|i| (i as f32 * 0.29).cos()).collect();
        let gamma = [1.5f32, -0.7, 2.0, 0.3, 1.0];
        let beta = [0.5f32, 1.0, -1.0, 2.0, 3.0];
        let bounds = (0.0, 6.0);
        let loss = |x: &[f64]| -> f64 {
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let (mean, variance) = reference_statistics(&x32, channels, rest);
            let mut total = 0.0;
            for (i, &v) in x.iter().enumerate() {
                let c = i / rest % channels;
                let z =
                    gamma[c] as f64 * (v - mean[c]) / (variance[c] + 1e-5).sqrt() + beta[c] as f64;
                total += weights[i] as f64 * z.clamp(0.0, 6.0);
            }
            total
        };
        let (mean, variance) = statistics(&x, channels, rest);
        let inv_std: Vec<f32> = variance.iter().map(|v| 1.0 / (v + 1e-5).sqrt()).collect();
        let scale: Vec<f32> = (0..channels).map(|c| gamma[c] * inv_std[c]).collect();
        let shift: Vec<f32> = (0..channels)
            .map(|c| beta[c] - mean[c] * scale[c])
            .collect();
        let y = normalise(&x, channels, rest, (&scale, &shift), bounds);
        let sums = gradient_sums((&x, &y, &weights), channels, rest, &mean, bounds);
        let dx = InputGradient {
            gamma: &gamma,
            mean: &mean,
            inv_std: &inv_std,
            sums: (&sums.0, &sums.1),
        }
        .compute((&x, &y, &weights), channels, rest, bounds);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let h = 1e-3;
        let mut checked = 0;
        for i in (0..x.len()).step_by(7) {
            // Away from the clamp's kinks, where the difference quotient is not the derivative.
            let z = y[i];
            if (z - 0.0).abs() < 0.05 || (z - 6.0).abs() < 0.05 {
                continue;
            }
            let (mut up, mut down) = (x64.clone(), x64.clone());
            up[i] += h;
            down[i] -= h;
            let numeric = (loss(&up) - loss(&down)) / (2.0 * h);
            assert!(
                (dx[i] as f64 - numeric).abs() < 2e-3 * numeric.abs().max(1.0),
                "d loss / d x[{i}]: {} against {numeric}",
                dx[i]
            );
            checked += 1;
        }
        assert!(checked > 50, "{checked} checked");
    }
}
