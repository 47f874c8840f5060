//! The CPU kernels of the folded network, on one image in channels-last layout (`[pixels,
//! channels]`, row-major): 1x1 convolutions as matrix products on the `gemm` crate, a direct
//! 3x3 depthwise convolution vectorised across channels, and im2col for the 3x3 stem. Bias and
//! ReLU6 are fused into each kernel's output pass.

/// A reusable activation buffer: it grows to the largest size asked for and is never cleared,
/// so a thread running image after image neither allocates nor zero-fills again. Every kernel
/// writes all of the span it asks for before reading it.
#[derive(Debug, Default)]
pub(crate) struct Buf {
    data: Vec<f32>,
    len: usize,
}

impl Buf {
    /// The first `len` values, to be overwritten.
    pub(crate) fn take(&mut self, len: usize) -> &mut [f32] {
        if self.data.len() < len {
            self.data.resize(len, 0.0);
        }
        self.len = len;
        &mut self.data[..len]
    }

    /// The values last written.
    pub(crate) fn get(&self) -> &[f32] {
        &self.data[..self.len]
    }

    /// The values last written, to be changed in place.
    pub(crate) fn get_mut(&mut self) -> &mut [f32] {
        &mut self.data[..self.len]
    }
}

/// `out[p][j] (+)= bias[j] + sum_k input[p][k] * weight[k][j]`, then ReLU6 when asked.
/// `weight` is `[cin, cout]` row-major. When `accumulate`, `out` already holds `[pixels, cout]`
/// values (a residual) that the result is added to; otherwise it is overwritten.
pub(crate) fn pointwise(
    input: &[f32],
    pixels: usize,
    weight: &[f32],
    bias: &[f32],
    relu6: bool,
    accumulate: bool,
    out: &mut Buf,
) {
    let cout = bias.len();
    let cin = weight.len() / cout;
    assert_eq!(
        input.len(),
        pixels * cin,
        "pointwise input of the wrong size"
    );
    let out = if accumulate {
        let out = out.get_mut();
        assert_eq!(out.len(), pixels * cout, "residual of the wrong size");
        for row in out.chunks_exact_mut(cout) {
            for (o, b) in row.iter_mut().zip(bias) {
                *o += b;
            }
        }
        out
    } else {
        out.take(pixels * cout)
    };
    if pixels > 0 {
        // SAFETY: `out` is pixels x cout (row stride cout), `input` pixels x cin (row stride
        // cin), `weight` cin x cout (row stride cout): all lengths were checked above, and `out`
        // is a unique borrow that overlaps neither input.
        unsafe {
            gemm::gemm(
                pixels,
                cout,
                cin,
                out.as_mut_ptr(),
                1,
                cout as isize,
                accumulate,
                input.as_ptr(),
                1,
                cin as isize,
                weight.as_ptr(),
                1,
                cout as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
    // One pass adds the bias (unless the residual already carried it) and applies ReLU6.
    match (accumulate, relu6) {
        (true, false) => {}
        (true, true) => clamp6(out),
        (false, relu6) => {
            for row in out.chunks_exact_mut(cout) {
                for (o, b) in row.iter_mut().zip(bias) {
                    *o = if relu6 {
                        (*o + b).clamp(0.0, 6.0)
                    } else {
                        *o + b
                    };
                }
            }
        }
    }
}

fn clamp6(values: &mut [f32]) {
    for v in values {
        *v = v.clamp(0.0, 6.0);
    }
}

/// 3x3 depthwise convolution, padding 1, then ReLU6: `input` is `[h, w, c]`, `weight` is
/// `[9, c]` (tap-major), the result `[h_out, w_out, c]`. Returns `(h_out, w_out)`.
pub(crate) fn depthwise3x3(
    input: &[f32],
    [h, w]: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut Buf,
) -> [usize; 2] {
    let c = bias.len();
    assert_eq!(input.len(), h * w * c, "depthwise input of the wrong size");
    assert_eq!(weight.len(), 9 * c, "depthwise weight of the wrong size");
    let (ho, wo) = ((h + 2 - 3) / stride + 1, (w + 2 - 3) / stride + 1);
    let out = out.take(ho * wo * c);
    dispatch_depthwise(input, [h, w], stride, weight, bias, out, [ho, wo]);
    [ho, wo]
}

#[cfg(target_arch = "x86_64")]
fn dispatch_depthwise(
    input: &[f32],
    hw: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_hw: [usize; 2],
) {
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        unsafe { depthwise_avx512(input, hw, stride, weight, bias, out, out_hw) }
    } else if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        unsafe { depthwise_avx2(input, hw, stride, weight, bias, out, out_hw) }
    } else {
        depthwise_body(input, hw, stride, weight, bias, out, out_hw)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn depthwise_avx512(
    input: &[f32],
    hw: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_hw: [usize; 2],
) {
    depthwise_body(input, hw, stride, weight, bias, out, out_hw)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn depthwise_avx2(
    input: &[f32],
    hw: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_hw: [usize; 2],
) {
    depthwise_body(input, hw, stride, weight, bias, out, out_hw)
}

#[cfg(target_arch = "wasm32")]
fn dispatch_depthwise(
    input: &[f32],
    hw: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_hw: [usize; 2],
) {
    // SAFETY: simd128 is not detected at run time in wasm: a browser without it refuses the
    // whole module at load (the `gemm` crate's kernels in the same module need it too), so the
    // code never runs where the feature is missing.
    unsafe { depthwise_simd128(input, hw, stride, weight, bias, out, out_hw) }
}

#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn depthwise_simd128(
    input: &[f32],
    hw: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_hw: [usize; 2],
) {
    depthwise_body(input, hw, stride, weight, bias, out, out_hw)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "wasm32")))]
fn dispatch_depthwise(
    input: &[f32],
    hw: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_hw: [usize; 2],
) {
    depthwise_body(input, hw, stride, weight, bias, out, out_hw)
}

/// The loop nest of [`depthwise3x3`], compiled once per instruction set by its callers: the
/// innermost loop runs along the channels, which are contiguous in input, weight and output.
#[inline(always)]
fn depthwise_body(
    input: &[f32],
    [h, w]: [usize; 2],
    stride: usize,
    weight: &[f32],
    bias: &[f32],
    out: &mut [f32],
    [ho, wo]: [usize; 2],
) {
    let c = bias.len();
    for oy in 0..ho {
        // The rows and columns of the 3x3 window that fall inside the image.
        let rows: [Option<usize>; 3] =
            std::array::from_fn(|ky| (oy * stride + ky).checked_sub(1).filter(|&y| y < h));
        for ox in 0..wo {
            let cols: [Option<usize>; 3] =
                std::array::from_fn(|kx| (ox * stride + kx).checked_sub(1).filter(|&x| x < w));
            // Where each tap inside the image reads its pixel and its weights.
            let mut taps = [(0usize, 0usize); 9];
            let mut n = 0;
            for (ky, iy) in rows.iter().enumerate() {
                for (kx, ix) in cols.iter().enumerate() {
                    if let (Some(iy), Some(ix)) = (iy, ix) {
                        taps[n] = ((iy * w + ix) * c, (ky * 3 + kx) * c);
                        n += 1;
                    }
                }
            }
            let taps = &taps[..n];
            let dst = &mut out[(oy * wo + ox) * c..][..c];
            // 64 channels at a time (four independent sums per tap, so the additions overlap),
            // then 16, then one by one.
            let mut c0 = 0;
            while c0 + 64 <= c {
                channel_block::<64>(input, weight, bias, taps, c0, dst);
                c0 += 64;
            }
            while c0 + 16 <= c {
                channel_block::<16>(input, weight, bias, taps, c0, dst);
                c0 += 16;
            }
            while c0 < c {
                channel_block::<1>(input, weight, bias, taps, c0, dst);
                c0 += 1;
            }
        }
    }
}

/// Channels `c0..c0 + N` of one output pixel: bias plus the taps, then ReLU6.
#[inline(always)]
fn channel_block<const N: usize>(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    taps: &[(usize, usize)],
    c0: usize,
    dst: &mut [f32],
) {
    let mut acc: [f32; N] = bias[c0..c0 + N].try_into().expect("N channels");
    for &(src, tap) in taps {
        let x = &input[src + c0..][..N];
        let k = &weight[tap + c0..][..N];
        for l in 0..N {
            acc[l] += x[l] * k[l];
        }
    }
    for (d, a) in dst[c0..c0 + N].iter_mut().zip(acc) {
        *d = a.clamp(0.0, 6.0);
    }
}

/// im2col for a 3x3 convolution with padding 1: `input` `[h, w, c]` to rows of `9 * c` values
/// (tap-major, then channel), one row per output pixel; zeros where a tap falls outside.
pub(crate) fn im2col3x3(
    input: &[f32],
    [h, w, c]: [usize; 3],
    stride: usize,
    out: &mut Buf,
) -> [usize; 2] {
    let (ho, wo) = ((h + 2 - 3) / stride + 1, (w + 2 - 3) / stride + 1);
    let out = out.take(ho * wo * 9 * c);
    for oy in 0..ho {
        for ox in 0..wo {
            let row = &mut out[(oy * wo + ox) * 9 * c..][..9 * c];
            for ky in 0..3 {
                let iy = (oy * stride + ky).checked_sub(1).filter(|&y| y < h);
                for kx in 0..3 {
                    let ix = (ox * stride + kx).checked_sub(1).filter(|&x| x < w);
                    let dst = &mut row[(ky * 3 + kx) * c..][..c];
                    match (iy, ix) {
                        (Some(iy), Some(ix)) => {
                            dst.copy_from_slice(&input[(iy * w + ix) * c..][..c])
                        }
                        _ => dst.fill(0.0),
                    }
                }
            }
        }
    }
    [ho, wo]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A direct 3x3 convolution with padding 1 on `[h, w, cin]`, weight `[cout][ky][kx][cin]`
    /// (or depthwise with `[ky][kx][c]` when `depthwise`), without activation.
    fn naive3x3(
        input: &[f32],
        [h, w, cin]: [usize; 3],
        stride: usize,
        weight: &[f32],
        cout: usize,
        depthwise: bool,
    ) -> Vec<f32> {
        let (ho, wo) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
        let mut out = vec![0f32; ho * wo * cout];
        for oy in 0..ho {
            for ox in 0..wo {
                for o in 0..cout {
                    let mut acc = 0f32;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (
                                (oy * stride + ky) as isize - 1,
                                (ox * stride + kx) as isize - 1,
                            );
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let px = &input[(iy as usize * w + ix as usize) * cin..][..cin];
                            if depthwise {
                                acc += px[o] * weight[(ky * 3 + kx) * cout + o];
                            } else {
                                for i in 0..cin {
                                    acc += px[i] * weight[((o * 3 + ky) * 3 + kx) * cin + i];
                                }
                            }
                        }
                    }
                    out[(oy * wo + ox) * cout + o] = acc;
                }
            }
        }
        out
    }

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 2003.0 - 0.5) * 2.0)
            .collect()
    }

    #[test]
    fn depthwise_equals_the_direct_convolution_at_both_strides_and_odd_sizes() {
        for (h, w, c, stride) in [(7, 5, 19, 1), (8, 6, 33, 2), (9, 3, 16, 2), (1, 1, 4, 1)] {
            let input = values(h * w * c, 1);
            let weight = values(9 * c, 2);
            let bias = vec![0.0; c];
            // A buffer left dirty by a larger earlier use must not leak into the result.
            let mut out = Buf::default();
            out.take(4096).fill(f32::NAN);
            let [ho, wo] = depthwise3x3(&input, [h, w], stride, &weight, &bias, &mut out);
            let want = naive3x3(&input, [h, w, c], stride, &weight, c, true);
            assert_eq!(out.get().len(), ho * wo * c);
            for (a, b) in out.get().iter().zip(&want) {
                assert!(
                    (a - b.clamp(0.0, 6.0)).abs() < 1e-5,
                    "{a} vs {b} at {h}x{w}x{c}/{stride}"
                );
            }
        }
    }

    #[test]
    fn im2col_and_a_matrix_product_equal_the_direct_convolution() {
        let (h, w, cin, cout) = (9, 6, 3, 5);
        let input = values(h * w * cin, 3);
        let weight = values(cout * 9 * cin, 4); // [cout][ky][kx][cin]
        let mut transposed = vec![0f32; 9 * cin * cout]; // [ky][kx][cin][cout]
        for o in 0..cout {
            for k in 0..9 * cin {
                transposed[k * cout + o] = weight[o * 9 * cin + k];
            }
        }
        // Buffers left dirty by a larger earlier use must not leak into the result.
        let mut cols = Buf::default();
        cols.take(4096).fill(f32::NAN);
        let [ho, wo] = im2col3x3(&input, [h, w, cin], 2, &mut cols);
        let mut out = Buf::default();
        out.take(4096).fill(f32::NAN);
        pointwise(
            cols.get(),
            ho * wo,
            &transposed,
            &vec![0.5; cout],
            false,
            false,
            &mut out,
        );
        let want = naive3x3(&input, [h, w, cin], 2, &weight, cout, false);
        assert_eq!(out.get().len(), want.len());
        for (a, b) in out.get().iter().zip(&want) {
            assert!((a - (b + 0.5)).abs() < 1e-5, "{a} vs {}", b + 0.5);
        }
    }

    #[test]
    fn pointwise_adds_onto_a_residual_and_clamps() {
        let input = vec![1.0, 2.0, 3.0, 4.0]; // 2 pixels x 2 channels
        let weight = vec![1.0, 0.0, 10.0, 0.0, 1.0, -10.0]; // [2, 3]
        let bias = vec![0.0, 1.0, 0.0];
        let mut out = Buf::default();
        out.take(6)
            .copy_from_slice(&[100.0, 100.0, 100.0, 0.0, 0.0, 0.0]);
        pointwise(&input, 2, &weight, &bias, false, true, &mut out);
        assert_eq!(out.get(), [101.0, 103.0, 90.0, 3.0, 5.0, -10.0]);
        pointwise(&input, 2, &weight, &bias, true, false, &mut out);
        assert_eq!(out.get(), [1.0, 3.0, 0.0, 3.0, 5.0, 0.0]);
    }
}
