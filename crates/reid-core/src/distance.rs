//! Similarities between embeddings. Cosine similarity is computed from the raw vectors (it does
//! not assume they are normalised), accumulated in `f64` so that a matrix computed here is a
//! trustworthy reference for the browser's and the peers' numbers.

use serde::{Deserialize, Serialize};

use crate::features::{FeatureError, FeatureMatrix};
use crate::gemm::inner_products;
use crate::parallel::{fold_tasks, for_each_chunk_mut};
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

fn same_dim(q: &FeatureMatrix, g: &FeatureMatrix) -> Result<(), FeatureError> {
    if q.dim() != g.dim() {
        return Err(FeatureError::DimMismatch {
            query: q.dim(),
            gallery: g.dim(),
        });
    }
    Ok(())
}

/// Query rows per block of the distance matrix (one matrix product each).
const QUERY_BLOCK: usize = 64;
/// Gallery rows scored per matrix product in top-k search: the block of scores stays in cache.
const GALLERY_BLOCK: usize = 2048;

/// The `queries x gallery` distance matrix, row-major (smaller is closer); blocked matrix
/// products on all cores natively.
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
    let (ng, dim) = (g.rows(), g.dim());
    let g_norms: Vec<f32> = (0..ng).map(|j| dot(g.row(j), g.row(j))).collect();
    let mut out = vec![0f32; q.rows() * ng];
    if ng == 0 {
        return Ok(out);
    }
    for_each_chunk_mut(&mut out, QUERY_BLOCK * ng, |block, chunk| {
        let first = block * QUERY_BLOCK;
        let rows = chunk.len() / ng;
        let a = &q.as_slice()[first * dim..(first + rows) * dim];
        inner_products(a, g.as_slice(), dim, chunk);
        for (r, row) in chunk.chunks_mut(ng).enumerate() {
            let qi = q.row(first + r);
            let q_norm = dot(qi, qi);
            for (d, g_norm) in row.iter_mut().zip(&g_norms) {
                *d = match metric {
                    Metric::Cosine => 1.0 - *d,
                    Metric::SquaredEuclidean => q_norm + g_norm - 2.0 * *d,
                };
            }
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

impl Hit {
    /// The result order: higher score first, then lower gallery index.
    fn better(&self, other: &Hit) -> bool {
        self.score > other.score || (self.score == other.score && self.index < other.index)
    }
}

/// The best `k` hits seen so far, kept sorted best first.
#[derive(Clone)]
struct Best {
    k: usize,
    hits: Vec<Hit>,
}

impl Best {
    fn new(k: usize) -> Self {
        Self {
            k,
            hits: Vec::with_capacity(k + 1),
        }
    }

    /// Offers one candidate; cheap when it does not beat the current worst.
    #[inline]
    fn offer(&mut self, hit: Hit) {
        if self.hits.len() == self.k && !hit.better(&self.hits[self.k - 1]) {
            return;
        }
        let at = self.hits.partition_point(|h| h.better(&hit));
        self.hits.insert(at, hit);
        self.hits.truncate(self.k);
    }

    /// A score below which nothing can enter (`-inf` until full).
    fn floor(&self) -> f32 {
        if self.hits.len() == self.k {
            self.hits[self.k - 1].score
        } else {
            f32::NEG_INFINITY
        }
    }
}

/// For each query, the `k` gallery rows with the highest inner product, best first (ties:
/// lower gallery index first). With L2-normalised features the score is the cosine similarity.
///
/// Exact search: the gallery is cut into blocks that threads take in turn; each block is scored
/// against all queries with one matrix product and only scores above a query's current k-th
/// best are looked at further. Each thread's partial lists are merged at the end.
pub fn top_k_inner_product(
    query: &FeatureMatrix,
    gallery: &FeatureMatrix,
    k: usize,
) -> Result<Vec<Vec<Hit>>, FeatureError> {
    same_dim(query, gallery)?;
    let k = k.min(gallery.rows());
    let (nq, ng, dim) = (query.rows(), gallery.rows(), query.dim());
    if k == 0 || nq == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    let query_block = nq.min(256);
    let states = fold_tasks(
        ng.div_ceil(GALLERY_BLOCK),
        || {
            (
                vec![Best::new(k); nq],
                vec![0f32; query_block * GALLERY_BLOCK],
            )
        },
        |(best, scores), block| {
            let g_first = block * GALLERY_BLOCK;
            let g_rows = GALLERY_BLOCK.min(ng - g_first);
            let b = &gallery.as_slice()[g_first * dim..(g_first + g_rows) * dim];
            for q_first in (0..nq).step_by(query_block) {
                let q_rows = query_block.min(nq - q_first);
                let a = &query.as_slice()[q_first * dim..(q_first + q_rows) * dim];
                let scores = &mut scores[..q_rows * g_rows];
                inner_products(a, b, dim, scores);
                for (r, row) in scores.chunks(g_rows).enumerate() {
                    let best = &mut best[q_first + r];
                    let mut floor = best.floor();
                    for (j, &score) in row.iter().enumerate() {
                        if score >= floor {
                            best.offer(Hit {
                                index: g_first + j,
                                score,
                            });
                            floor = best.floor();
                        }
                    }
                }
            }
        },
    );
    let mut states = states.into_iter().map(|(best, _)| best);
    let mut merged = states.next().unwrap_or_default();
    for other in states {
        for (into, from) in merged.iter_mut().zip(other) {
            from.hits.into_iter().for_each(|h| into.offer(h));
        }
    }
    Ok(merged.into_iter().map(|b| b.hits).collect())
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
    fn top_k_over_many_blocks_with_ties_equals_a_full_sort() {
        // 5000 gallery rows in 3 blocks, each a copy of one of 40 rows: every score is tied
        // many times over, across blocks that different threads score.
        let q = features(300, 16, 5).l2_normalized();
        let base = features(40, 16, 6).l2_normalized();
        let mut data = Vec::new();
        for j in 0..5000 {
            data.extend_from_slice(base.row((j * 7) % 40));
        }
        let g = FeatureMatrix::new(data, 16).unwrap();
        let hits = top_k_inner_product(&q, &g, 150).unwrap();
        let scores = distance_matrix(&q, &g, Metric::Cosine).unwrap();
        for (i, row) in hits.iter().enumerate() {
            let mut all: Vec<usize> = (0..5000).collect();
            let s = |j: usize| 1.0 - scores[i * 5000 + j];
            all.sort_by(|&a, &b| s(b).total_cmp(&s(a)).then(a.cmp(&b)));
            let got: Vec<usize> = row.iter().map(|h| h.index).collect();
            assert_eq!(got, all[..150], "query {i}");
        }
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
