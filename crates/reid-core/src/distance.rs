//! Similarities between embeddings. Cosine similarity is computed from the raw vectors (it does
//! not assume they are normalised), accumulated in `f64` so that a matrix computed here is a
//! trustworthy reference for the browser's and the peers' numbers.

use crate::Embedding;

/// Cosine similarity of two vectors of the same length, in `[-1, 1]`.
///
/// Returns 0 when either vector is all zeros (no direction to compare).
///
/// # Panics
/// When the lengths differ: that is a programming error, not user input.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(
        a.len(),
        b.len(),
        "cosine similarity of vectors of different lengths"
    );
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0) as f32
}

/// The symmetric matrix of pairwise cosine similarities, row-major, `n x n`.
pub fn cosine_similarity_matrix(embeddings: &[Embedding]) -> Vec<Vec<f32>> {
    let n = embeddings.len();
    let mut m = vec![vec![0f32; n]; n];
    for i in 0..n {
        for j in i..n {
            let s = cosine_similarity(embeddings[i].values(), embeddings[j].values());
            m[i][j] = s;
            m[j][i] = s;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_opposite_vectors() {
        assert!((cosine_similarity(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-7);
        assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        assert!((cosine_similarity(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-7);
    }

    #[test]
    fn zero_vector_has_zero_similarity() {
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn matrix_is_symmetric_with_unit_diagonal() {
        let e = |v: Vec<f32>| Embedding::new(v).unwrap();
        let m =
            cosine_similarity_matrix(&[e(vec![1.0, 0.0]), e(vec![1.0, 1.0]), e(vec![0.0, 2.0])]);
        for (i, row) in m.iter().enumerate() {
            assert!((row[i] - 1.0).abs() < 1e-6);
            for (j, &v) in row.iter().enumerate() {
                assert_eq!(v, m[j][i]);
            }
        }
        assert!((m[0][1] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }
}
