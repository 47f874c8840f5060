//! The CPU kernels of the folded network, on activations in channels-last layout (`[pixels,
//! channels]` row-major, the pixels of one image or of several one after another: `[n, h, w,
//! c]`): 1x1 convolutions as matrix products (the `gemm` crate natively, [`super::simd128_gemm`]
//! in wasm), a direct 3x3 depthwise convolution vectorised across channels, im2col for the other
//! convolutions, max and average pooling. Bias and the activation are fused into each kernel's output pass.

/// The activation fused into a kernel's output pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// None: the output is the sum itself.
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

/// A reusable activation buffer: it grows to the largest size asked for and is never cleared,
/// so a thread running image after image neither allocates nor zero-fills again. A kernel
/// writes all of the span it asks for before reading it, unless it adds onto what the caller
/// left there (a residual, OSNet's sum of gated streams), which `take` of the same length
/// keeps.
#[derive(Debug, Default)]
pub(crate) struct Buf {
    data: Vec<f32>,
    len: usize,
}

impl Buf {
    /// The first `len` values, as last left (overwritten or added to by the caller).
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
}

/// A `[cin, cout]` row-major matrix laid out for [`pointwise`]: as it is natively (the `gemm`
/// crate reads it in place), in panels of columns in wasm ([`super::simd128_gemm::pack`]), done
/// once when the network is folded.
pub(crate) fn layout(weight: Vec<f32>, cout: usize) -> Vec<f32> {
    #[cfg(target_arch = "wasm32")]
    {
        super::simd128_gemm::pack(&weight, cout)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = cout;
        weight
    }
}

/// The rows (`cin`) of a matrix of `cout` columns laid out by [`layout`].
pub(crate) fn rows(weight: &[f32], cout: usize) -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        super::simd128_gemm::rows(weight, cout)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        weight.len() / cout.max(1)
    }
}

/// A matrix laid out by [`layout`], back in `[cin, cout]` row-major order.
pub(crate) fn row_major(weight: &[f32], cout: usize) -> Vec<f32> {
    #[cfg(target_arch = "wasm32")]
    {
        super::simd128_gemm::unpack(weight, cout)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = cout;
        weight.to_vec()
    }
}

/// `out[p][j] (+)= bias[j] + sum_k input[p][k] * weight[k][j]`, then the activation.
/// `weight` is `[cin, cout]`, laid out by [`layout`]; `out` is `[pixels, cout]`. When
/// `accumulate`, `out` already holds values (a residual) that the result is added to; otherwise
/// it is overwritten.
pub(crate) fn pointwise(
    input: &[f32],
    pixels: usize,
    weight: &[f32],
    bias: &[f32],
    act: Act,
    accumulate: bool,
    out: &mut [f32],
) {
    let cin = rows(weight, bias.len());
    assert_eq!(
        input.len(),
        pixels * cin,
        "pointwise input of the wrong size"
    );
    pointwise_rows(input, cin, pixels, weight, bias, act, accumulate, out);
}

/// [`pointwise`] on input rows `row_stride` values apart, each row's first `cin` values read
/// (one slice of channels of a wider activation).
#[allow(clippy::too_many_arguments)]
pub(crate) fn pointwise_rows(
    input: &[f32],
    row_stride: usize,
    pixels: usize,
    weight: &[f32],
    bias: &[f32],
    act: Act,
    accumulate: bool,
    out: &mut [f32],
) {
    let cout = bias.len();
    let cin = rows(weight, cout);
    assert!(
        row_stride >= cin && (pixels == 0 || input.len() >= (pixels - 1) * row_stride + cin),
        "pointwise input of the wrong size"
    );
    assert_eq!(
        out.len(),
        pixels * cout,
        "pointwise output of the wrong size"
    );
    // In wasm, a kernel of our own that suits SIMD128's registers better (see its module).
    #[cfg(target_arch = "wasm32")]
    super::simd128_gemm::matmul(input, row_stride, pixels, weight, cout, accumulate, out);
    #[cfg(not(target_arch = "wasm32"))]
    if pixels > 0 {
        // SAFETY: `out` is pixels x cout (row stride cout), `input` pixels x cin (row stride
        // `row_stride`), `weight` cin x cout (row stride cout): all lengths were checked above,
        // and `out` is a unique borrow that overlaps neither input.
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
                row_stride as isize,
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
    // One pass adds the bias and applies the activation, unless it would change nothing (a
    // linear 1x1 without bias, as in OSNet's lightweight convolutions).
    if act != Act::Linear || bias.iter().any(|&b| b != 0.0) {
        finish(out, bias, act);
    }
}

/// Defines `$name`, which runs `$body` (an `#[inline(always)]` function of the same arguments)
/// compiled for the widest vector instructions the CPU has: AVX-512 or AVX2 (with FMA) on
/// x86-64, chosen at run time; SIMD128 in wasm. LLVM vectorises the loops of each copy for its
/// own registers.
macro_rules! widest_simd {
    ($(#[$doc:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $body:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            // simd128 is not detected at run time in wasm (Rust lets a wasm target feature be
            // called safely): a browser without it refuses the whole module at load, as the
            // `gemm` crate's kernels in the same module need it too.
            #[cfg(target_arch = "wasm32")]
            {
                #[target_feature(enable = "simd128")]
                fn simd128($($arg: $ty),*) {
                    $body($($arg),*)
                }
                return simd128($($arg),*);
            }
            #[allow(unreachable_code)]
            $body($($arg),*)
        }
    };
}

widest_simd! {
    /// The output pass of [`pointwise`]: adds the bias to each `[cout]` row of `out` and
    /// applies the activation.
    fn finish(out: &mut [f32], bias: &[f32], act: Act) => finish_body
}

widest_simd! {
    /// Adds `pixels` rows of `y` (`stride` values apart, each row's first `sum.len()` values
    /// read) onto `sum`, channel by channel, in f64.
    pub(crate) fn channel_sums(y: &[f32], stride: usize, pixels: usize, sum: &mut [f64]) => channel_sums_body
}

#[inline(always)]
fn channel_sums_body(y: &[f32], stride: usize, pixels: usize, sum: &mut [f64]) {
    let c = sum.len();
    for p in 0..pixels {
        for (s, v) in sum.iter_mut().zip(&y[p * stride..][..c]) {
            *s += f64::from(*v);
        }
    }
}

widest_simd! {
    /// Each `[c]` row of `acc` (`c` is `gate.len()`) gets the matching row of `y` (`stride`
    /// values apart, each row's first `c` values read) times `gate`, channel by channel: added
    /// to it, or in its place when `first`.
    pub(crate) fn gated(y: &[f32], stride: usize, gate: &[f32], acc: &mut [f32], first: bool) => gated_body
}

#[inline(always)]
fn gated_body(y: &[f32], stride: usize, gate: &[f32], acc: &mut [f32], first: bool) {
    for (p, a) in acc.chunks_exact_mut(gate.len().max(1)).enumerate() {
        let px = &y[p * stride..][..gate.len()];
        if first {
            for ((a, v), g) in a.iter_mut().zip(px).zip(gate) {
                *a = v * g;
            }
        } else {
            for ((a, v), g) in a.iter_mut().zip(px).zip(gate) {
                *a += v * g;
            }
        }
    }
}

#[inline(always)]
fn finish_body(out: &mut [f32], bias: &[f32], act: Act) {
    // One loop per activation, so that each compiles to straight vector code.
    match act {
        Act::Linear => finish_with(out, bias, |v| v),
        Act::Relu => finish_with(out, bias, relu),
        Act::Relu6 => finish_with(out, bias, |v| v.clamp(0.0, 6.0)),
    }
}

#[inline(always)]
fn finish_with(out: &mut [f32], bias: &[f32], act: impl Fn(f32) -> f32) {
    for row in out.chunks_exact_mut(bias.len()) {
        for (o, b) in row.iter_mut().zip(bias) {
            *o = act(*o + b);
        }
    }
}

/// Which part of a 3x3 depthwise convolution (padding 1) one call computes: output rows
/// `rows[0]..rows[1]` of an `[h, w]` input, from a strip of input rows that starts at global
/// row `first_in` and holds every row those outputs read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Strip {
    pub h: usize,
    pub w: usize,
    pub stride: usize,
    pub first_in: usize,
    pub rows: [usize; 2],
}

impl Strip {
    /// The whole image at once.
    pub(crate) fn whole([h, w]: [usize; 2], stride: usize) -> Self {
        let mut strip = Self {
            h,
            w,
            stride,
            first_in: 0,
            rows: [0, 0],
        };
        strip.rows[1] = strip.out_size()[0];
        strip
    }

    /// Output height and width of the whole convolution.
    pub(crate) fn out_size(&self) -> [usize; 2] {
        [
            (self.h - 1) / self.stride + 1,
            (self.w - 1) / self.stride + 1,
        ]
    }

    /// The input rows `[first, end)` that output rows `rows` read.
    pub(crate) fn input_rows(h: usize, stride: usize, [r0, r1]: [usize; 2]) -> [usize; 2] {
        [
            (r0 * stride).saturating_sub(1),
            ((r1 - 1) * stride + 2).min(h),
        ]
    }
}

/// 3x3 depthwise convolution, padding 1, then `act`, on the output rows `strip` names: `input`
/// holds input rows `strip.first_in..` as `[rows, w, c]`, `weight` is `[9, c]` (tap-major), and
/// `out` receives `[rows[1] - rows[0], w_out, c]`.
pub(crate) fn depthwise3x3(
    input: &[f32],
    strip: Strip,
    weight: &[f32],
    bias: &[f32],
    act: Act,
    out: &mut [f32],
) {
    let c = bias.len();
    let [_, wo] = strip.out_size();
    let [first, end] = Strip::input_rows(strip.h, strip.stride, strip.rows);
    assert!(
        strip.first_in <= first && input.len() >= (end - strip.first_in) * strip.w * c,
        "depthwise input strip does not hold the rows it needs"
    );
    assert_eq!(weight.len(), 9 * c, "depthwise weight of the wrong size");
    assert_eq!(
        out.len(),
        (strip.rows[1] - strip.rows[0]) * wo * c,
        "depthwise output of the wrong size"
    );
    dispatch_depthwise(input, strip, weight, bias, act, out);
}

widest_simd! {
    /// [`depthwise_body`] for the CPU's vector instructions.
    fn dispatch_depthwise(
        input: &[f32],
        strip: Strip,
        weight: &[f32],
        bias: &[f32],
        act: Act,
        out: &mut [f32],
    ) => depthwise_body
}

/// The loop nest of [`depthwise3x3`], compiled once per instruction set by its callers: the
/// innermost loop runs along the channels, which are contiguous in input, weight and output.
#[inline(always)]
fn depthwise_body(
    input: &[f32],
    strip: Strip,
    weight: &[f32],
    bias: &[f32],
    act: Act,
    out: &mut [f32],
) {
    let Strip {
        h,
        w,
        stride,
        first_in,
        rows: [r0, r1],
    } = strip;
    let c = bias.len();
    let [_, wo] = strip.out_size();
    for oy in r0..r1 {
        // The rows (within the strip) and columns of the 3x3 window inside the image.
        let rows: [Option<usize>; 3] = std::array::from_fn(|ky| {
            (oy * stride + ky)
                .checked_sub(1)
                .filter(|&y| y < h)
                .map(|y| y - first_in)
        });
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
            let dst = &mut out[((oy - r0) * wo + ox) * c..][..c];
            // 64 channels at a time (four independent sums per tap, so the additions overlap),
            // then 16, then one by one.
            let mut c0 = 0;
            while c0 + 64 <= c {
                channel_block::<64>(input, weight, bias, act, taps, c0, dst);
                c0 += 64;
            }
            while c0 + 16 <= c {
                channel_block::<16>(input, weight, bias, act, taps, c0, dst);
                c0 += 16;
            }
            while c0 < c {
                channel_block::<1>(input, weight, bias, act, taps, c0, dst);
                c0 += 1;
            }
        }
    }
}

/// `max(v, 0)`, written as a comparison. `f32::max` is IEEE's maxNum, which ignores a NaN;
/// wasm's `f32.max` propagates it, so in wasm `f32::max` compiles to a call of `fmaxf` for each
/// value, never vectorised (a fifth of OSNet's time there). A comparison compiles to a vector
/// select (`f32x4.pmax` in wasm, `maxps` natively). A NaN stays NaN.
#[inline(always)]
pub(crate) fn relu(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        v
    }
}

/// The larger of `a` and `b` as a comparison, for the reason [`relu`] gives: `a` when `b` is
/// not larger (a NaN `a` stays).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// `a * b + c`: fused into one rounding natively (every CPU the dispatch picks a vector body
/// for has FMA), two in wasm, whose SIMD128 has no fused instruction (`mul_add` there would
/// call a software `fmaf`).
#[inline(always)]
fn madd(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        a * b + c
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        a.mul_add(b, c)
    }
}

/// Channels `c0..c0 + N` of one output pixel: bias plus the taps, then the activation.
#[inline(always)]
fn channel_block<const N: usize>(
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    act: Act,
    taps: &[(usize, usize)],
    c0: usize,
    dst: &mut [f32],
) {
    let mut acc: [f32; N] = bias[c0..c0 + N].try_into().expect("N channels");
    for &(src, tap) in taps {
        let x = &input[src + c0..][..N];
        let k = &weight[tap + c0..][..N];
        for l in 0..N {
            acc[l] = madd(x[l], k[l], acc[l]);
        }
    }
    // Indexed, not `zip(acc)`: iterating the array by value moved it through the stack, and
    // reading it back in other widths stalled the stores' forwarding (17% of this kernel's
    // samples at 16 channels).
    let dst: &mut [f32; N] = (&mut dst[c0..c0 + N]).try_into().expect("N channels");
    // One loop per activation, each straight vector code.
    match act {
        Act::Linear => dst.copy_from_slice(&acc),
        Act::Relu => {
            for l in 0..N {
                dst[l] = relu(acc[l]);
            }
        }
        Act::Relu6 => {
            for l in 0..N {
                dst[l] = acc[l].clamp(0.0, 6.0);
            }
        }
    }
}

/// A square convolution or pooling window: its side, stride, and padding on every side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub size: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Window {
    /// Output length along a side of `n` (rounded down, as PyTorch's convolutions round it).
    pub(crate) fn out(&self, n: usize) -> usize {
        (n + 2 * self.pad).saturating_sub(self.size) / self.stride + 1
    }

    /// Output length along a side of `n` for pooling, rounded up when `ceil` (PyTorch's
    /// `ceil_mode`, where the last window must still start inside the image or its leading
    /// padding).
    pub(crate) fn pooled(&self, n: usize, ceil: bool) -> usize {
        if !ceil {
            return self.out(n);
        }
        let out = (n + 2 * self.pad)
            .saturating_sub(self.size)
            .div_ceil(self.stride)
            + 1;
        if (out - 1) * self.stride >= n + self.pad {
            out - 1
        } else {
            out
        }
    }

    /// The input index tap `k` of output `o` reads along a side of `n`, if inside.
    fn tap(&self, o: usize, k: usize, n: usize) -> Option<usize> {
        (o * self.stride + k)
            .checked_sub(self.pad)
            .filter(|&i| i < n)
    }
}

/// The image, row and column of output pixel `p` of images `[.., h_out, w_out]`.
fn pixel(p: usize, [ho, wo]: [usize; 2]) -> [usize; 3] {
    let (image, q) = (p / (ho * wo), p % (ho * wo));
    [image, q / wo, q % wo]
}

/// im2col: `input` `[n, h, w, c]` (`n` images) to one row of `size * size * c` values per
/// output pixel (tap-major, then channel), zeros where a tap falls outside its image. Returns
/// `[h_out, w_out]`. A 1x1 window of stride 2 gives the pixels a strided 1x1 convolution reads.
pub(crate) fn im2col(input: &[f32], shape: [usize; 4], win: Window, out: &mut Buf) -> [usize; 2] {
    let [n, h, w, _] = shape;
    let pixels = n * win.out(h) * win.out(w);
    im2col_rows(input, shape, win, 0..pixels, out)
}

/// [`im2col`]'s rows for output pixels `pixels` only (counted across the `n` images), so that
/// a product can run on a slice of them while the rows are still in the cache.
pub(crate) fn im2col_rows(
    input: &[f32],
    shape: [usize; 4],
    win: Window,
    pixels: std::ops::Range<usize>,
    out: &mut Buf,
) -> [usize; 2] {
    let [n, h, w, c] = shape;
    assert!(c > 0, "im2col of an image without channels");
    assert_eq!(input.len(), n * h * w * c, "im2col input of the wrong size");
    let [ho, wo] = [win.out(h), win.out(w)];
    assert!(
        pixels.start <= pixels.end && pixels.end <= n * ho * wo,
        "im2col of pixels outside the output"
    );
    let taps = win.size * win.size;
    let rows = out.take(pixels.len() * taps * c);
    for (p, row) in pixels.zip(rows.chunks_exact_mut(taps * c)) {
        let [image, oy, ox] = pixel(p, [ho, wo]);
        let input = &input[image * h * w * c..][..h * w * c];
        // The taps of a window row that fall inside the image read neighbouring pixels, which
        // lie side by side in channels-last memory: one copy per window row.
        let first = win.pad.saturating_sub(ox * win.stride).min(win.size);
        let end = (w + win.pad)
            .saturating_sub(ox * win.stride)
            .clamp(first, win.size);
        for (ky, dst) in row.chunks_exact_mut(win.size * c).enumerate() {
            match win.tap(oy, ky, h) {
                Some(iy) if first < end => {
                    let ix = ox * win.stride + first - win.pad;
                    dst[..first * c].fill(0.0);
                    dst[first * c..end * c]
                        .copy_from_slice(&input[(iy * w + ix) * c..][..(end - first) * c]);
                    dst[end * c..].fill(0.0);
                }
                _ => dst.fill(0.0),
            }
        }
    }
    [ho, wo]
}

/// Max pooling of `input` `[n, h, w, c]` over `win`, rounding the output size up when `ceil`;
/// taps outside the image are left out (PyTorch pads with minus infinity). Returns `[h_out,
/// w_out]`.
pub(crate) fn max_pool(
    input: &[f32],
    shape: [usize; 4],
    win: Window,
    ceil: bool,
    out: &mut Buf,
) -> [usize; 2] {
    let [_, h, w, c] = shape;
    let size = [win.pooled(h, ceil), win.pooled(w, ceil)];
    pool(input, shape, size, out, |image, [oy, ox], dst| {
        dst.fill(f32::NEG_INFINITY);
        for ky in 0..win.size {
            let Some(iy) = win.tap(oy, ky, h) else {
                continue;
            };
            for kx in 0..win.size {
                let Some(ix) = win.tap(ox, kx, w) else {
                    continue;
                };
                for (d, x) in dst.iter_mut().zip(&image[(iy * w + ix) * c..][..c]) {
                    *d = larger(*d, *x);
                }
            }
        }
    })
}

/// Average pooling of `input` `[n, h, w, c]` over `size x size` windows of stride `size`
/// without padding, the output size rounded down (PyTorch's `avg_pool2d(x, size)`). Returns
/// `[h_out, w_out]`.
pub(crate) fn avg_pool(input: &[f32], shape: [usize; 4], size: usize, out: &mut Buf) -> [usize; 2] {
    let [_, h, w, c] = shape;
    let divisor = (size * size) as f32;
    pool(
        input,
        shape,
        [h / size, w / size],
        out,
        |image, [oy, ox], dst| {
            dst.fill(0.0);
            for iy in oy * size..(oy + 1) * size {
                for ix in ox * size..(ox + 1) * size {
                    for (d, x) in dst.iter_mut().zip(&image[(iy * w + ix) * c..][..c]) {
                        *d += x;
                    }
                }
            }
            dst.iter_mut().for_each(|d| *d /= divisor);
        },
    )
}

/// A pooling of `input` `[n, h, w, c]` to `[n, h_out, w_out, c]` in `out`: `window(image,
/// [oy, ox], dst)` writes the `c` values of each output pixel from its image's `[h, w, c]`
/// values. Returns `[h_out, w_out]`.
fn pool(
    input: &[f32],
    [n, h, w, c]: [usize; 4],
    [ho, wo]: [usize; 2],
    out: &mut Buf,
    window: impl Fn(&[f32], [usize; 2], &mut [f32]),
) -> [usize; 2] {
    assert_eq!(input.len(), n * h * w * c, "pool input of the wrong size");
    let out = out.take(n * ho * wo * c);
    for (p, dst) in out.chunks_exact_mut(c.max(1)).enumerate() {
        let [image, oy, ox] = pixel(p, [ho, wo]);
        window(&input[image * h * w * c..][..h * w * c], [oy, ox], dst);
    }
    [ho, wo]
}

#[cfg(test)]
pub(super) mod tests {
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

    /// `n` values in [-1, 1), spread by `seed`.
    pub(in crate::cpu) fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 2003.0 - 0.5) * 2.0)
            .collect()
    }

    #[test]
    fn depthwise_equals_the_direct_convolution_at_both_strides_and_odd_sizes() {
        let sizes = [
            (7, 5, 19, 1),
            (8, 6, 33, 2),
            (9, 3, 144, 2),
            (1, 1, 4, 1),
            (5, 14, 40, 1),
            (3, 2, 16, 1),
        ];
        for (h, w, c, stride) in sizes {
            let input = values(h * w * c, 1);
            let weight = values(9 * c, 2);
            let bias = values(c, 5);
            let strip = Strip::whole([h, w], stride);
            let [ho, wo] = strip.out_size();
            let want = naive3x3(&input, [h, w, c], stride, &weight, c, true);
            type Reference = fn(f32) -> f32;
            let activations: [(Act, Reference); 3] = [
                (Act::Linear, |v| v),
                (Act::Relu, |v| v.max(0.0)),
                (Act::Relu6, |v| v.clamp(0.0, 6.0)),
            ];
            let mut out = vec![f32::NAN; ho * wo * c];
            for (act, f) in activations {
                depthwise3x3(&input, strip, &weight, &bias, act, &mut out);
                for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                    let b = b + bias[i % c];
                    assert!(
                        (a - f(b)).abs() < 1e-5,
                        "{a} vs {b} at {h}x{w}x{c}/{stride}, {act:?}"
                    );
                }
            }
            // The same, strip by strip, each from only the input rows it needs.
            for rows_per_strip in 1..=ho {
                let mut strips = vec![f32::NAN; ho * wo * c];
                for r0 in (0..ho).step_by(rows_per_strip) {
                    let rows = [r0, (r0 + rows_per_strip).min(ho)];
                    let [first, end] = Strip::input_rows(h, stride, rows);
                    let part = Strip {
                        first_in: first,
                        rows,
                        ..strip
                    };
                    depthwise3x3(
                        &input[first * w * c..end * w * c],
                        part,
                        &weight,
                        &bias,
                        Act::Relu6,
                        &mut strips[rows[0] * wo * c..rows[1] * wo * c],
                    );
                }
                assert_eq!(strips, out, "{rows_per_strip} rows per strip");
            }
        }
    }

    /// A direct convolution of `[h, w, cin]` over `win`, weight `[cout][ky][kx][cin]`, without
    /// bias or activation.
    fn naive(
        input: &[f32],
        [h, w, cin]: [usize; 3],
        win: Window,
        weight: &[f32],
        cout: usize,
    ) -> Vec<f32> {
        let (k, s, p) = (win.size as isize, win.stride as isize, win.pad as isize);
        let (ho, wo) = (win.out(h), win.out(w));
        let mut out = vec![0f32; ho * wo * cout];
        for oy in 0..ho as isize {
            for ox in 0..wo as isize {
                for o in 0..cout {
                    let mut acc = 0f32;
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = (oy * s + ky - p, ox * s + kx - p);
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let px = &input[(iy as usize * w + ix as usize) * cin..][..cin];
                            let taps = &weight[((o as isize * k + ky) * k + kx) as usize * cin..];
                            acc += px.iter().zip(taps).map(|(x, t)| x * t).sum::<f32>();
                        }
                    }
                    out[(oy as usize * wo + ox as usize) * cout + o] = acc;
                }
            }
        }
        out
    }

    #[test]
    fn im2col_rows_of_a_slice_equal_those_rows_of_the_whole() {
        let shape = [2, 5, 4, 3];
        let win = Window {
            size: 3,
            stride: 1,
            pad: 1,
        };
        let input = values(shape.iter().product(), 5);
        let mut whole = Buf::default();
        let [ho, wo] = im2col(&input, shape, win, &mut whole);
        let row = 9 * shape[3];
        let pixels = 2 * ho * wo;
        for range in [0..pixels, 0..7, 7..pixels, 13..29, 20..20] {
            let mut part = Buf::default();
            part.take(4096).fill(f32::NAN);
            assert_eq!(
                im2col_rows(&input, shape, win, range.clone(), &mut part),
                [ho, wo]
            );
            assert_eq!(part.get(), &whole.get()[range.start * row..range.end * row]);
        }
    }

    #[test]
    fn im2col_and_a_matrix_product_equal_the_direct_convolution() {
        // The stems (3 channels: 3x3 stride 2, 7x7 stride 2 padding 3), a strided 3x3 over
        // more channels, and a 1x1 with stride 2 (a projected shortcut).
        let cases = [
            (9, 6, 3, 5, (3, 2, 1)),
            (13, 8, 3, 4, (7, 2, 3)),
            (7, 5, 6, 3, (3, 2, 1)),
            (6, 4, 10, 7, (3, 1, 1)),
            (7, 5, 6, 3, (1, 2, 0)),
            // Windows wider than the image.
            (5, 2, 2, 3, (3, 1, 1)),
            (4, 2, 3, 2, (7, 2, 3)),
        ];
        for (h, w, cin, cout, (size, stride, pad)) in cases {
            let win = Window { size, stride, pad };
            let input = values(h * w * cin, 3);
            let taps = size * size * cin;
            let weight = values(cout * taps, 4); // [cout][ky][kx][cin]
            let mut transposed = vec![0f32; taps * cout]; // [ky][kx][cin][cout]
            for o in 0..cout {
                for k in 0..taps {
                    transposed[k * cout + o] = weight[o * taps + k];
                }
            }
            // Buffers left dirty by a larger earlier use must not leak into the result.
            let mut cols = Buf::default();
            cols.take(8192).fill(f32::NAN);
            let [ho, wo] = im2col(&input, [1, h, w, cin], win, &mut cols);
            assert_eq!([ho, wo], [win.out(h), win.out(w)]);
            let mut out = vec![f32::NAN; ho * wo * cout];
            let bias = vec![0.5; cout];
            pointwise(
                cols.get(),
                ho * wo,
                &layout(transposed, cout),
                &bias,
                Act::Linear,
                false,
                &mut out,
            );
            let want = naive(&input, [h, w, cin], win, &weight, cout);
            assert_eq!(out.len(), want.len());
            for (a, b) in out.iter().zip(&want) {
                assert!((a - (b + 0.5)).abs() < 1e-5, "{a} vs {} ({win:?})", b + 0.5);
            }
        }
    }

    /// PyTorch's `max_pool2d` written plainly: windows from `o * stride - pad`, taps outside
    /// skipped, and its output size rule.
    fn naive_max_pool(input: &[f32], [h, w, c]: [usize; 3], win: Window, ceil: bool) -> Vec<f32> {
        let size = |n: usize| {
            let span = (n + 2 * win.pad - win.size) as f64 / win.stride as f64;
            let mut out = if ceil { span.ceil() } else { span.floor() } as usize + 1;
            if ceil && (out - 1) * win.stride >= n + win.pad {
                out -= 1;
            }
            out
        };
        let (ho, wo) = (size(h), size(w));
        let mut out = vec![f32::NEG_INFINITY; ho * wo * c];
        for oy in 0..ho {
            for ox in 0..wo {
                for ky in 0..win.size {
                    for kx in 0..win.size {
                        let (iy, ix) = (oy * win.stride + ky, ox * win.stride + kx);
                        if iy < win.pad || ix < win.pad || iy - win.pad >= h || ix - win.pad >= w {
                            continue;
                        }
                        for ch in 0..c {
                            let v = input[((iy - win.pad) * w + ix - win.pad) * c + ch];
                            let o = &mut out[(oy * wo + ox) * c + ch];
                            *o = o.max(v);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn max_pool_equals_pytorchs_in_floor_and_ceil_mode() {
        // torchvision's stem pool (padding 1, floor) and fast-reid's (no padding, ceil), on
        // even and odd sizes; the ceil cases include a last window hanging over the edge.
        for (h, w) in [(8, 6), (7, 5), (9, 4), (2, 3)] {
            for (pad, ceil) in [(1, false), (0, true), (0, false), (1, true)] {
                let c = 5;
                let win = Window {
                    size: 3,
                    stride: 2,
                    pad,
                };
                if h + 2 * pad < 3 || w + 2 * pad < 3 {
                    continue;
                }
                let input = values(h * w * c, 7);
                let mut out = Buf::default();
                out.take(1000).fill(f32::NAN);
                let [ho, wo] = max_pool(&input, [1, h, w, c], win, ceil, &mut out);
                let want = naive_max_pool(&input, [h, w, c], win, ceil);
                assert_eq!(ho * wo * c, want.len(), "{h}x{w} pad {pad} ceil {ceil}");
                assert_eq!(out.get(), want, "{h}x{w} pad {pad} ceil {ceil}");
            }
        }
        // 8 with no padding: floor gives 3 windows, ceil a fourth over the edge.
        let win = Window {
            size: 3,
            stride: 2,
            pad: 0,
        };
        assert_eq!([win.pooled(8, false), win.pooled(8, true)], [3, 4]);
    }

    #[test]
    fn average_pool_of_two_images_equals_the_mean_of_each_window() {
        // OSNet's 2x2 transitions, on even and odd sizes (the last row or column left out).
        for (h, w) in [(8, 6), (7, 5), (2, 3)] {
            let (n, c) = (2, 6);
            let input = values(n * h * w * c, 3);
            let mut out = Buf::default();
            let [ho, wo] = avg_pool(&input, [n, h, w, c], 2, &mut out);
            assert_eq!([ho, wo], [h / 2, w / 2]);
            for (i, got) in out.get().iter().enumerate() {
                let (image, oy, ox, ch) = (i / (ho * wo * c), i / (wo * c) % ho, i / c % wo, i % c);
                let at = |y: usize, x: usize| input[((image * h + y) * w + x) * c + ch];
                let want = (at(2 * oy, 2 * ox)
                    + at(2 * oy, 2 * ox + 1)
                    + at(2 * oy + 1, 2 * ox)
                    + at(2 * oy + 1, 2 * ox + 1))
                    / 4.0;
                assert!((got - want).abs() < 1e-6, "{h}x{w} at {i}: {got} vs {want}");
            }
        }
    }

    #[test]
    fn pointwise_adds_onto_a_residual_and_clamps() {
        let input = vec![1.0, 2.0, 3.0, 4.0]; // 2 pixels x 2 channels
        let weight = layout(vec![1.0, 0.0, 10.0, 0.0, 1.0, -10.0], 3); // [2, 3]
        let bias = vec![0.0, 1.0, 0.0];
        let mut out = vec![100.0, 100.0, 100.0, 0.0, 0.0, 0.0];
        pointwise(&input, 2, &weight, &bias, Act::Linear, true, &mut out);
        assert_eq!(out, [101.0, 103.0, 90.0, 3.0, 5.0, -10.0]);
        pointwise(&input, 2, &weight, &bias, Act::Relu6, false, &mut out);
        assert_eq!(out, [1.0, 3.0, 0.0, 3.0, 5.0, 0.0]);
    }
}
