//! k-reciprocal re-ranking (Zhong et al., CVPR 2017), as torchreid's and fast-reid's
//! `re_ranking` compute it, but sparse: it keeps each sample's few nearest neighbours and its
//! sparse k-reciprocal weight vector instead of dense `N x N` matrices (N = queries + gallery),
//! so memory grows with N, not N squared.
//!
//! For every sample of queries + gallery:
//! 1. distances to all others, squared and divided by the row's maximum (`original_dist`);
//! 2. its k1-reciprocal neighbours R(i): the k1+1 nearest that also have i among their k1+1
//!    nearest, expanded by any neighbour's R(c, k1/2) that shares more than 2/3 of itself with
//!    R(i);
//! 3. a weight vector V(i) over R(i): `exp(-d)`, normalised to sum 1; then local query
//!    expansion: V(i) is replaced by the mean of V over its k2 nearest neighbours;
//! 4. the Jaccard distance between V(q) and V(g): `1 - sum(min) / (2 - sum(min))`.
//!
//! The final distance is `(1 - lambda) * jaccard + lambda * original_dist`.

use crate::distance::{dot, Metric};
use crate::features::{FeatureError, FeatureMatrix};
use crate::gemm::inner_products;
use crate::parallel::for_each_chunk_mut;

/// Re-ranking parameters; the paper's are the default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RerankParams {
    // k1: reciprocal neighbourhood size; k2: local query expansion size; lambda: weight of the
    // original distance in the final one.
    pub k1: usize,
    pub k2: usize,
    pub lambda: f32,
}

impl Default for RerankParams {
    fn default() -> Self {
        Self {
            k1: 20,
            k2: 6,
            lambda: 0.3,
        }
    }
}

/// A sparse vector: sorted indices and their values.
#[derive(Debug, Clone, Default)]
struct Sparse {
    index: Vec<u32>,
    value: Vec<f32>,
}

struct Rows<'a> {
    all: &'a FeatureMatrix,
    norms: Vec<f32>,
    metric: Metric,
}

impl Rows<'_> {
    /// The squared distance between samples `i` and `j` (before normalisation).
    fn squared(&self, i: usize, j: usize) -> f32 {
        self.squared_from_inner(i, j, dot(self.all.row(i), self.all.row(j)))
    }

    /// The same from the inner product `ip` of the two samples.
    #[inline]
    fn squared_from_inner(&self, i: usize, j: usize, ip: f32) -> f32 {
        let d = match self.metric {
            Metric::Cosine => 1.0 - ip,
            Metric::SquaredEuclidean => self.norms[i] + self.norms[j] - 2.0 * ip,
        };
        d * d
    }
}

/// Divides a row by its maximum (when positive) and returns the divisor.
fn normalise(row: &mut [f32]) -> f32 {
    let max = row.iter().copied().fold(f32::MIN, f32::max);
    let divisor = if max > 0.0 { max } else { 1.0 };
    row.iter_mut().for_each(|v| *v /= divisor);
    divisor
}

/// Indices of the `k` smallest values, nearest first (ties: lower index first): one pass that
/// only looks twice at values below the current k-th smallest.
fn nearest(row: &[f32], k: usize) -> Vec<u32> {
    let k = k.min(row.len());
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return Vec::new();
    }
    let mut ceiling = f32::INFINITY;
    for (j, &v) in row.iter().enumerate() {
        if best.len() == k && v >= ceiling {
            continue;
        }
        let at = best.partition_point(|&(w, _)| w <= v);
        best.insert(at, (v, j as u32));
        best.truncate(k);
        if best.len() == k {
            ceiling = best[k - 1].0;
        }
    }
    best.into_iter().map(|(_, j)| j).collect()
}

/// Rows of the pairwise distance matrix per block (one matrix product each).
const ROW_BLOCK: usize = 32;

/// One sample's nearest neighbours and the maximum of its distance row.
#[derive(Clone, Default)]
struct Neighbours {
    ranks: Vec<u32>,
    max: f32,
}

fn reciprocal(ranks: &[Vec<u32>], i: usize, k: usize) -> Vec<u32> {
    ranks[i][..k.min(ranks[i].len())]
        .iter()
        .copied()
        .filter(|&c| ranks[c as usize][..k.min(ranks[c as usize].len())].contains(&(i as u32)))
        .collect()
}

/// Re-ranked `queries x gallery` distances (row-major) for features compared with `metric`.
pub fn k_reciprocal_rerank(
    query: &FeatureMatrix,
    gallery: &FeatureMatrix,
    metric: Metric,
    params: RerankParams,
) -> Result<Vec<f32>, FeatureError> {
    if query.dim() != gallery.dim() {
        return Err(FeatureError::DimMismatch {
            query: query.dim(),
            gallery: gallery.dim(),
        });
    }
    let (nq, ng) = (query.rows(), gallery.rows());
    let n = nq + ng;
    let mut data = query.as_slice().to_vec();
    data.extend_from_slice(gallery.as_slice());
    let all = FeatureMatrix::new(data, query.dim())?;
    let all = match metric {
        Metric::Cosine => all.l2_normalized(),
        Metric::SquaredEuclidean => all,
    };
    let rows = Rows {
        norms: (0..n).map(|i| dot(all.row(i), all.row(i))).collect(),
        all: &all,
        metric,
    };
    let k1 = params.k1;
    let half = ((k1 as f64) / 2.0).round_ties_even() as usize;
    let keep = (k1 + 1).max(params.k2);

    // 1. Nearest neighbours of every sample, and the normalised query rows (the output's
    //    base): blocks of rows against all samples with one matrix product, on all cores.
    let mut found = vec![Neighbours::default(); n];
    let mut query_rows = vec![0f32; nq * n];
    {
        let query_out = std::sync::Mutex::new(&mut query_rows);
        let dim = all.dim();
        for_each_chunk_mut(&mut found, ROW_BLOCK, |block, out| {
            let first = block * ROW_BLOCK;
            let a = &all.as_slice()[first * dim..(first + out.len()) * dim];
            let mut d = vec![0f32; out.len() * n];
            inner_products(a, all.as_slice(), dim, &mut d);
            for (r, (row, found)) in d.chunks_mut(n).zip(out.iter_mut()).enumerate() {
                let i = first + r;
                for (j, v) in row.iter_mut().enumerate() {
                    *v = rows.squared_from_inner(i, j, *v);
                }
                found.max = normalise(row);
                found.ranks = nearest(row, keep);
                if i < nq {
                    let mut q = query_out.lock().unwrap_or_else(|e| e.into_inner());
                    q[i * n..(i + 1) * n].copy_from_slice(row);
                }
            }
        });
    }
    let (ranks, row_max): (Vec<Vec<u32>>, Vec<f32>) =
        found.into_iter().map(|f| (f.ranks, f.max)).unzip();

    // 2-3. Sparse k-reciprocal weights.
    let mut v: Vec<Sparse> = Vec::with_capacity(n);
    for (i, &max) in row_max.iter().enumerate() {
        let r = reciprocal(&ranks, i, k1 + 1);
        let mut expanded = r.clone();
        for &c in &r {
            let rc = reciprocal(&ranks, c as usize, half + 1);
            let shared = rc.iter().filter(|x| r.contains(x)).count();
            if shared as f64 > 2.0 / 3.0 * rc.len() as f64 {
                expanded.extend_from_slice(&rc);
            }
        }
        expanded.sort_unstable();
        expanded.dedup();
        let weights: Vec<f32> = expanded
            .iter()
            .map(|&j| (-rows.squared(i, j as usize) / max).exp())
            .collect();
        let total: f32 = weights.iter().sum();
        v.push(Sparse {
            index: expanded,
            value: weights.iter().map(|w| w / total).collect(),
        });
    }
    if params.k2 > 1 {
        let mut dense = vec![0f32; n];
        let mut expanded = Vec::with_capacity(n);
        for i in 0..n {
            let neighbours = &ranks[i][..params.k2.min(ranks[i].len())];
            let mut touched: Vec<u32> = Vec::new();
            for &r in neighbours {
                let s = &v[r as usize];
                for (&j, &x) in s.index.iter().zip(&s.value) {
                    if dense[j as usize] == 0.0 {
                        touched.push(j);
                    }
                    dense[j as usize] += x;
                }
            }
            touched.sort_unstable();
            let value = touched
                .iter()
                .map(|&j| std::mem::take(&mut dense[j as usize]) / neighbours.len() as f32)
                .collect();
            expanded.push(Sparse {
                index: touched,
                value,
            });
        }
        v = expanded;
    }

    // 4. Jaccard distances through an inverted index (column -> rows holding it).
    let mut inverted: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
    for (r, s) in v.iter().enumerate() {
        for (&j, &x) in s.index.iter().zip(&s.value) {
            if x != 0.0 {
                inverted[j as usize].push((r as u32, x));
            }
        }
    }
    let mut out = vec![0f32; nq * ng];
    let mut shared = vec![0f32; n];
    for i in 0..nq {
        shared.iter_mut().for_each(|s| *s = 0.0);
        for (&j, &x) in v[i].index.iter().zip(&v[i].value) {
            if x == 0.0 {
                continue;
            }
            for &(r, y) in &inverted[j as usize] {
                shared[r as usize] += x.min(y);
            }
        }
        for g in 0..ng {
            let s = shared[nq + g];
            let jaccard = 1.0 - s / (2.0 - s);
            out[i * ng + g] =
                jaccard * (1.0 - params.lambda) + query_rows[i * n + nq + g] * params.lambda;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_dimensions_are_an_error() {
        let q = FeatureMatrix::new(vec![0.0; 4], 4).unwrap();
        let g = FeatureMatrix::new(vec![0.0; 6], 3).unwrap();
        let err = k_reciprocal_rerank(&q, &g, Metric::Cosine, RerankParams::default());
        assert!(matches!(err, Err(FeatureError::DimMismatch { .. })));
    }

    #[test]
    fn lambda_one_keeps_the_normalised_original_order() {
        let q = FeatureMatrix::new(vec![0.0, 0.0], 2).unwrap();
        let g = FeatureMatrix::new(vec![1.0, 0.0, 3.0, 0.0, 2.0, 0.0], 2).unwrap();
        let params = RerankParams {
            k1: 2,
            k2: 1,
            lambda: 1.0,
        };
        let d = k_reciprocal_rerank(&q, &g, Metric::SquaredEuclidean, params).unwrap();
        assert!(d[0] < d[2] && d[2] < d[1], "{d:?}");
    }
}
