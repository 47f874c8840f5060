//! Inner products of two row-major `f32` matrices on the `gemm` crate's blocked SIMD kernels
//! (AVX-512/AVX2 natively, simd128 in the browser), one thread per call: callers split the work.

/// `out[i * n + j] = a_i . b_j`, where `a` has `m` rows and `b` has `n` rows, both `dim` wide
/// and row-major.
///
/// # Panics
/// When the slice lengths do not fit `dim` and `out` (a programming error).
pub(crate) fn inner_products(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    if dim == 0 {
        out.fill(0.0);
        return;
    }
    assert!(
        a.len().is_multiple_of(dim) && b.len().is_multiple_of(dim),
        "ragged matrix"
    );
    let (m, n) = (a.len() / dim, b.len() / dim);
    assert_eq!(out.len(), m * n, "output of the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    let (dim_s, n_s) = (dim as isize, n as isize);
    // SAFETY: `a` is m x dim (row stride dim), `b` read as dim x n (column stride dim), `out` is
    // m x n (row stride n); the lengths were checked above and the regions do not overlap
    // (`out` is a unique borrow).
    unsafe {
        gemm::gemm(
            m,
            n,
            dim,
            out.as_mut_ptr(),
            1,
            n_s,
            false,
            a.as_ptr(),
            1,
            dim_s,
            b.as_ptr(),
            dim_s,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_naive_product_on_ragged_sizes() {
        let dim = 37;
        let a: Vec<f32> = (0..13 * dim).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..29 * dim).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        let mut out = vec![f32::NAN; 13 * 29];
        inner_products(&a, &b, dim, &mut out);
        for i in 0..13 {
            for j in 0..29 {
                let want: f32 = (0..dim).map(|p| a[i * dim + p] * b[j * dim + p]).sum();
                assert_eq!(out[i * 29 + j], want, "({i}, {j})");
            }
        }
    }

    #[test]
    fn empty_sides_and_zero_width() {
        let mut out = vec![];
        inner_products(&[], &[1.0, 2.0], 2, &mut out);
        let mut out = vec![5.0; 6];
        inner_products(&[], &[], 0, &mut out);
        assert_eq!(out, vec![0.0; 6]);
    }
}
