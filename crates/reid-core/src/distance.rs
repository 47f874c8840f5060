//! Similarities between embeddings. Cosine similarity is computed from the raw vectors (it does
//! not assume they are normalised), accumulated in `f64` so that a matrix computed here is a
//! trustworthy reference for the browser's and the peers' numbers.

use serde::{Deserialize, Serialize};

use crate::features::{FeatureError, FeatureMatrix};
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

/// How gallery samples are compared with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `1 - cos(q, g)`.
    Cosine,
    /// `|q|^2 + |g|^2 - 2 q.g` (torchreid's `euclidean_squared_distance`).
    SquaredEuclidean,
}

/// Dot product with eight accumulators, so the compiler vectorises it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Runs `f(query_index, output_row)` over the rows of `out` (width `cols`), on all cores
/// natively and on one in the browser.
fn for_each_row<T: Send>(out: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rows = out.len() / cols.max(1);
        let per = rows.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (chunk_index, chunk) in out.chunks_mut(per * cols).enumerate() {
                let f = &f;
                s.spawn(move || {
                    for (i, row) in chunk.chunks_mut(cols).enumerate() {
                        f(chunk_index * per + i, row);
                    }
                });
            }
        });
    }
    #[cfg(target_arch = "wasm32")]
    for (i, row) in out.chunks_mut(cols).enumerate() {
        f(i, row);
    }
}

fn same_dim(q: &FeatureMatrix, g: &FeatureMatrix) -> Result<(), FeatureError> {
    if q.dim() != g.dim() {
        return Err(FeatureError::DimMismatch {
            query: q.dim(),
            gallery: g.dim(),
        });
    }
    Ok(())
}

/// The `queries x gallery` distance matrix, row-major (smaller is closer).
pub fn distance_matrix(
    query: &FeatureMatrix,
    gallery: &FeatureMatrix,
    metric: Metric,
) -> Result<Vec<f32>, FeatureError> {
    same_dim(query, gallery)?;
    let (q, g) = match metric {
        Metric::Cosine => (query.l2_normalized(), gallery.l2_normalized()),
        Metric::SquaredEuclidean => (query.clone(), gallery.clone()),
    };
    let g_norms: Vec<f32> = (0..g.rows()).map(|j| dot(g.row(j), g.row(j))).collect();
    let mut out = vec![0f32; q.rows() * g.rows()];
    for_each_row(&mut out, g.rows(), |i, row| {
        let qi = q.row(i);
        let q_norm = dot(qi, qi);
        for (j, d) in row.iter_mut().enumerate() {
            let ip = dot(qi, g.row(j));
            *d = match metric {
                Metric::Cosine => 1.0 - ip,
                Metric::SquaredEuclidean => q_norm + g_norms[j] - 2.0 * ip,
            };
        }
    });
    Ok(out)
}

/// One search result: a gallery row and its score (higher is more similar).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub index: usize,
    pub score: f32,
}

/// For each query, the `k` gallery rows with the highest inner product, best first (ties:
/// lower gallery index first). With L2-normalised features the score is the cosine similarity.
/// Exact search, on all cores natively.
pub fn top_k_inner_product(
    query: &FeatureMatrix,
    gallery: &FeatureMatrix,
    k: usize,
) -> Result<Vec<Vec<Hit>>, FeatureError> {
    same_dim(query, gallery)?;
    let k = k.min(gallery.rows());
    if k == 0 {
        return Ok(vec![Vec::new(); query.rows()]);
    }
    let mut out = vec![
        Hit {
            index: 0,
            score: 0.0
        };
        query.rows() * k
    ];
    for_each_row(&mut out, k, |i, row| {
        row.copy_from_slice(&top_k_one(query.row(i), gallery, k));
    });
    Ok(out.chunks(k).map(<[Hit]>::to_vec).collect())
}

fn top_k_one(q: &[f32], gallery: &FeatureMatrix, k: usize) -> Vec<Hit> {
    // `best` is kept sorted, best first; a candidate enters only if it beats the worst.
    let mut best: Vec<Hit> = Vec::with_capacity(k + 1);
    for j in 0..gallery.rows() {
        let score = dot(q, gallery.row(j));
        if best.len() == k && score <= best[k - 1].score {
            continue;
        }
        let at = best.partition_point(|h| h.score >= score);
        best.insert(at, Hit { index: j, score });
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod matrix_tests {
    use super::*;

    fn features(rows: usize, dim: usize, seed: u32) -> FeatureMatrix {
        let mut x = seed;
        let data = (0..rows * dim)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        FeatureMatrix::new(data, dim).unwrap()
    }

    #[test]
    fn distance_matrices_match_the_definitions() {
        let (q, g) = (features(7, 13, 1), features(31, 13, 2));
        let cos = distance_matrix(&q, &g, Metric::Cosine).unwrap();
        let euc = distance_matrix(&q, &g, Metric::SquaredEuclidean).unwrap();
        for i in 0..7 {
            for j in 0..31 {
                let want_cos = 1.0 - cosine_similarity(q.row(i), g.row(j));
                let want_euc: f32 = q
                    .row(i)
                    .iter()
                    .zip(g.row(j))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                assert!((cos[i * 31 + j] - want_cos).abs() < 1e-5);
                assert!((euc[i * 31 + j] - want_euc).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn top_k_equals_a_full_sort() {
        let (q, g) = (
            features(9, 32, 3).l2_normalized(),
            features(500, 32, 4).l2_normalized(),
        );
        let hits = top_k_inner_product(&q, &g, 10).unwrap();
        for (i, row) in hits.iter().enumerate() {
            let mut all: Vec<(usize, f32)> =
                (0..500).map(|j| (j, dot(q.row(i), g.row(j)))).collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let want: Vec<usize> = all[..10].iter().map(|h| h.0).collect();
            let got: Vec<usize> = row.iter().map(|h| h.index).collect();
            assert_eq!(got, want);
        }
        assert_eq!(top_k_inner_product(&q, &g, 1000).unwrap()[0].len(), 500);
    }

    #[test]
    fn mismatched_dimensions_are_an_error() {
        let err =
            distance_matrix(&features(2, 4, 1), &features(2, 5, 1), Metric::Cosine).unwrap_err();
        assert_eq!(
            err,
            FeatureError::DimMismatch {
                query: 4,
                gallery: 5
            }
        );
        assert!(top_k_inner_product(&features(2, 4, 1), &features(2, 5, 1), 3).is_err());
    }
}
