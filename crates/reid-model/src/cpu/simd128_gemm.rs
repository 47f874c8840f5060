//! The matrix product of the wasm build's 1x1 convolutions and im2col rows:
//! `out[p][j] (+)= sum_k input[p][k] * weight[k][j]`.
//!
//! The `gemm` crate's SIMD128 kernel holds a 12 x 4 tile: 12 accumulators plus its operands need
//! all sixteen vector registers that browsers' engines map wasm's onto on x86-64, one of which
//! V8 keeps as its own scratch register, so (we think; the machine code was not read) the tile
//! spills. This kernel holds 2 pixels x 16 output channels (eight accumulators, four weight
//! vectors, one broadcast input value), the shape onnxruntime-web's MLAS uses. In Node.js 20 on
//! a Xeon, a scratch copy of it ran the OSNet and ResNet shapes at 17 to 22 G multiply-adds a
//! second, where the `gemm` crate's ran them at 12 to 15; `crates/wasm-profile` times whole
//! networks.
//!
//! The weights are packed once, when the network is folded, into panels of 16 columns
//! (zero-padded), `k` major, so each step of the sum reads one contiguous 64-byte row. The sum runs over blocks of [`KC`] input
//! channels and [`MC`] pixels, so a panel stays in L1 and the pixels' rows in L2.
//!
//! Each product is a separate multiply and add (SIMD128 has no fused one), as in the `gemm`
//! crate's kernel. The same code compiles natively on four-float arrays, so its tiling, tails and
//! accumulation are unit-tested there.

/// Output channels per panel: four vectors of four.
const NR: usize = 16;
/// Input channels summed per block.
const KC: usize = 256;
/// Pixels per block.
const MC: usize = 128;

#[cfg(target_arch = "wasm32")]
mod lanes {
    use core::arch::wasm32::*;

    pub(super) type V = v128;

    #[inline(always)]
    pub(super) fn zero() -> V {
        f32x4_splat(0.0)
    }

    /// # Safety
    /// `p` points at four readable floats.
    #[inline(always)]
    pub(super) unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller's contract; wasm's loads need no alignment.
        unsafe { v128_load(p.cast()) }
    }

    /// # Safety
    /// `p` points at a readable float.
    #[inline(always)]
    pub(super) unsafe fn splat(p: *const f32) -> V {
        // SAFETY: the caller's contract.
        unsafe { v128_load32_splat(p.cast()) }
    }

    #[inline(always)]
    pub(super) fn madd(acc: V, x: V, w: V) -> V {
        f32x4_add(acc, f32x4_mul(x, w))
    }

    #[inline(always)]
    pub(super) fn add(a: V, b: V) -> V {
        f32x4_add(a, b)
    }

    #[inline(always)]
    pub(super) fn to_array(v: V) -> [f32; 4] {
        [
            f32x4_extract_lane::<0>(v),
            f32x4_extract_lane::<1>(v),
            f32x4_extract_lane::<2>(v),
            f32x4_extract_lane::<3>(v),
        ]
    }

    /// # Safety
    /// `p` points at four writable floats.
    #[inline(always)]
    pub(super) unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller's contract.
        unsafe { v128_store(p.cast(), v) }
    }
}

/// The same operations on plain arrays, with the same rounding (a product, then a sum), for the
/// native unit tests.
#[cfg(not(target_arch = "wasm32"))]
mod lanes {
    pub(super) type V = [f32; 4];

    #[inline(always)]
    pub(super) fn zero() -> V {
        [0.0; 4]
    }

    #[inline(always)]
    pub(super) unsafe fn load(p: *const f32) -> V {
        // SAFETY: the caller's contract: four readable floats.
        unsafe { p.cast::<V>().read_unaligned() }
    }

    #[inline(always)]
    pub(super) unsafe fn splat(p: *const f32) -> V {
        // SAFETY: the caller's contract: one readable float.
        [unsafe { p.read() }; 4]
    }

    #[inline(always)]
    pub(super) fn madd(acc: V, x: V, w: V) -> V {
        std::array::from_fn(|i| acc[i] + x[i] * w[i])
    }

    #[inline(always)]
    pub(super) fn add(a: V, b: V) -> V {
        std::array::from_fn(|i| a[i] + b[i])
    }

    #[inline(always)]
    pub(super) fn to_array(v: V) -> [f32; 4] {
        v
    }

    #[inline(always)]
    pub(super) unsafe fn store(p: *mut f32, v: V) {
        // SAFETY: the caller's contract: four writable floats.
        unsafe { p.cast::<V>().write_unaligned(v) }
    }
}

use lanes::V;

/// `out` (`[pixels, cout]`, row-major) `(+)=` `input` (`pixels` rows of `cin` values,
/// `row_stride` apart) times the `[cin, cout]` matrix that [`pack`] made `packed`. When
/// `accumulate`, the product is added to what `out` holds; otherwise it overwrites it. The caller
/// checks the sizes.
pub(super) fn matmul(
    input: &[f32],
    row_stride: usize,
    pixels: usize,
    packed: &[f32],
    cout: usize,
    accumulate: bool,
    out: &mut [f32],
) {
    if cout == 0 {
        assert!(out.is_empty(), "matrix product of the wrong sizes");
        return;
    }
    let cin = rows(packed, cout);
    assert!(
        row_stride >= cin
            && (pixels == 0 || input.len() >= (pixels - 1) * row_stride + cin)
            && out.len() == pixels * cout
            && packed.len() == cin * cout.div_ceil(NR) * NR,
        "matrix product of the wrong sizes"
    );
    if pixels == 0 {
        return;
    }
    if cin == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    blocks(
        input,
        row_stride,
        pixels,
        packed,
        [cin, cout],
        accumulate,
        out,
    );
}

/// Packs `weight` (`[cin, cout]`, row-major) into `cout / NR` panels (rounded up) of `[cin, NR]`,
/// the last one's missing columns zero.
pub(super) fn pack(weight: &[f32], cout: usize) -> Vec<f32> {
    let cin = weight.len() / cout.max(1);
    let panels = cout.div_ceil(NR);
    let mut packed = vec![0.0; panels * cin * NR];
    if cin > 0 {
        for (j, panel) in packed.chunks_exact_mut(cin * NR).enumerate() {
            let cols = NR.min(cout - j * NR);
            for (k, row) in panel.chunks_exact_mut(NR).enumerate() {
                row[..cols].copy_from_slice(&weight[k * cout + j * NR..][..cols]);
            }
        }
    }
    packed
}

/// The rows (`cin`) of a matrix of `cout` columns that [`pack`] made `packed`.
pub(super) fn rows(packed: &[f32], cout: usize) -> usize {
    packed.len() / (cout.div_ceil(NR) * NR).max(1)
}

/// [`pack`] undone: the `[cin, cout]` row-major matrix.
pub(super) fn unpack(packed: &[f32], cout: usize) -> Vec<f32> {
    let cin = rows(packed, cout);
    let mut weight = vec![0.0; cin * cout];
    for k in 0..cin {
        for j in 0..cout {
            weight[k * cout + j] = packed[((j / NR) * cin + k) * NR + j % NR];
        }
    }
    weight
}

/// The blocked loops over input channels, pixels and panels, around [`tile`]. Not inlined
/// into its caller: inlined, OSNet and ResNet-50 ran about 18% slower in Node.js 20 (13.4
/// against 16.3 crops/s, 4.95 against 6.0, `crates/wasm-profile`).
#[inline(never)]
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn blocks(
    input: &[f32],
    row_stride: usize,
    pixels: usize,
    packed: &[f32],
    [cin, cout]: [usize; 2],
    accumulate: bool,
    out: &mut [f32],
) {
    let panels = cout.div_ceil(NR);
    for k0 in (0..cin).step_by(KC) {
        let kc = KC.min(cin - k0);
        // The first block overwrites `out` unless the caller accumulates; later ones add.
        let add = accumulate || k0 > 0;
        for p0 in (0..pixels).step_by(MC) {
            let p1 = (p0 + MC).min(pixels);
            for j in 0..panels {
                let at = Tile {
                    k0,
                    kc,
                    c0: j * NR,
                    cols: NR.min(cout - j * NR),
                    add,
                };
                let panel = &packed[(j * cin + k0) * NR..][..kc * NR];
                let mut p = p0;
                while p + 2 <= p1 {
                    tile::<2>(input, row_stride, p, panel, out, cout, at);
                    p += 2;
                }
                if p < p1 {
                    tile::<1>(input, row_stride, p, panel, out, cout, at);
                }
            }
        }
    }
}

/// Where a tile sits: input channels `k0..k0 + kc`, output channels `c0..c0 + cols` (`cols <=
/// NR`), and whether it adds onto `out`.
#[derive(Clone, Copy)]
struct Tile {
    k0: usize,
    kc: usize,
    c0: usize,
    cols: usize,
    add: bool,
}

/// Pixels `p..p + R` of the tile `at`: the sum in registers, then written to or added onto
/// `out`.
#[inline(always)]
fn tile<const R: usize>(
    input: &[f32],
    row_stride: usize,
    p: usize,
    panel: &[f32],
    out: &mut [f32],
    cout: usize,
    Tile {
        k0,
        kc,
        c0,
        cols,
        add,
    }: Tile,
) {
    // Bounds the raw reads below: the last row's channels and the panel's `kc` rows.
    assert!(input.len() >= (p + R - 1) * row_stride + k0 + kc && panel.len() >= kc * NR);
    let mut acc = [[lanes::zero(); NR / 4]; R];
    let rows: [*const f32; R] =
        std::array::from_fn(|r| input[(p + r) * row_stride + k0..].as_ptr());
    let mut w = panel.as_ptr();
    for k in 0..kc {
        // SAFETY: `k < kc`: row `r`'s value `k` lies inside `input` and the panel's row `k`
        // inside `panel` (asserted above).
        unsafe {
            let wv: [V; NR / 4] = std::array::from_fn(|v| lanes::load(w.add(4 * v)));
            for r in 0..R {
                let x = lanes::splat(rows[r].add(k));
                for v in 0..NR / 4 {
                    acc[r][v] = lanes::madd(acc[r][v], x, wv[v]);
                }
            }
            w = w.add(NR);
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let row = &mut out[(p + r) * cout + c0..][..cols];
        if cols == NR {
            for (v, &sum) in acc.iter().enumerate() {
                let dst = row[4 * v..][..4].as_mut_ptr();
                // SAFETY: `dst` is four floats of `row`.
                unsafe {
                    let sum = if add {
                        lanes::add(lanes::load(dst), sum)
                    } else {
                        sum
                    };
                    lanes::store(dst, sum);
                }
            }
        } else {
            for (v, &sum) in acc.iter().enumerate() {
                let sum = lanes::to_array(sum);
                for (i, dst) in row.iter_mut().skip(4 * v).take(4).enumerate() {
                    *dst = if add { *dst + sum[i] } else { sum[i] };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    /// Every tail: pixels odd and even, output channels under, at and over a panel, input
    /// channels over one block of `KC`, rows wider than their channels, and accumulation.
    #[test]
    fn matches_a_plain_product() {
        for (pixels, cin, cout, stride) in [
            (1, 1, 1, 1),
            (5, 3, 7, 3),
            (2, 16, 16, 20),
            (131, 300, 33, 300),
            (260, 520, 48, 530),
            (4, 8, 0, 8),
        ] {
            let input = values(pixels * stride, 1);
            let weight = values(cin * cout, 2);
            let packed = pack(&weight, cout);
            assert_eq!(rows(&packed, cout), if cout == 0 { 0 } else { cin });
            assert_eq!(
                unpack(&packed, cout),
                if cout == 0 { vec![] } else { weight.clone() }
            );
            for accumulate in [false, true] {
                let start = values(pixels * cout, 3);
                let mut out = start.clone();
                matmul(&input, stride, pixels, &packed, cout, accumulate, &mut out);
                for p in 0..pixels {
                    for j in 0..cout {
                        let sum: f64 = (0..cin)
                            .map(|k| input[p * stride + k] as f64 * weight[k * cout + j] as f64)
                            .sum();
                        let want = sum
                            + if accumulate {
                                start[p * cout + j] as f64
                            } else {
                                0.0
                            };
                        let got = out[p * cout + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                            "{pixels}x{cin}x{cout} pixel {p} channel {j}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
