//! k-reciprocal re-ranking (Zhong et al., CVPR 2017), as torchreid's and fast-reid's
//! `re_ranking` compute it, but sparse: it keeps each sample's few nearest neighbours and its
//! sparse k-reciprocal weight vector instead of dense `N x N` matrices (N = queries + gallery),
//! so memory grows with N, not N squared (apart from the `queries x N` rows the output is made
//! from). The pairwise distances are computed once per pair of blocks with matrix products,
//! using the matrix's symmetry; at Market-1501 scale (19,281 x 2048-d) that is 4 s and 0.8 GB
//! here against fast-reid's 77 s and 8.3 GB (`cargo xtask bench`).
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
use crate::parallel::fold_tasks;

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

/// One sample's `k` nearest samples so far (smallest squared distance first, ties: lower
/// index first) and the largest squared distance seen in its row.
#[derive(Clone)]
struct Neighbours {
    nearest: Vec<(f32, u32)>,
    max: f32,
}

impl Neighbours {
    fn new(k: usize) -> Self {
        Self {
            nearest: Vec::with_capacity(k + 1),
            max: f32::MIN,
        }
    }

    /// Offers sample `j` at squared distance `d`; only values below the current k-th nearest
    /// are looked at twice.
    #[inline]
    fn offer(&mut self, k: usize, d: f32, j: u32) {
        self.max = self.max.max(d);
        if self.nearest.len() == k {
            let (worst, worst_j) = self.nearest[k - 1];
            if d > worst || (d == worst && j > worst_j) {
                return;
            }
        }
        let at = self
            .nearest
            .partition_point(|&(w, i)| w < d || (w == d && i < j));
        self.nearest.insert(at, (d, j));
        self.nearest.truncate(k);
    }

    /// The divisor that normalises the row: its maximum, or 1 when that is not positive.
    fn divisor(&self) -> f32 {
        if self.max > 0.0 {
            self.max
        } else {
            1.0
        }
    }
}

/// Samples per block of the pairwise distance matrix (one matrix product per pair of blocks).
const BLOCK: usize = 256;

/// Pass 1: every sample's nearest neighbours and row maximum, and the squared distances of the
/// query rows (not yet normalised). The distance matrix is symmetric, so only its blocks on and
/// above the diagonal are computed, each with one matrix product, and each serves the rows of
/// both its blocks. Threads take block pairs in turn and keep their own neighbour lists, merged
/// at the end.
fn pass_one(rows: &Rows, nq: usize, keep: usize) -> (Vec<Neighbours>, Vec<f32>) {
    let (n, dim) = (rows.all.rows(), rows.all.dim());
    let blocks = n.div_ceil(BLOCK);
    let pairs: Vec<(usize, usize)> = (0..blocks)
        .flat_map(|i| (i..blocks).map(move |j| (i, j)))
        .collect();
    let mut query_rows = vec![0f32; nq * n];
    let query_blocks: Vec<std::sync::Mutex<&mut [f32]>> = query_rows
        .chunks_mut(BLOCK * n)
        .map(std::sync::Mutex::new)
        .collect();
    let block_of = |b: usize| {
        let first = b * BLOCK;
        let len = BLOCK.min(n - first);
        (
            first,
            len,
            &rows.all.as_slice()[first * dim..(first + len) * dim],
        )
    };
    let states = fold_tasks(
        pairs.len(),
        || (vec![Neighbours::new(keep); n], vec![0f32; BLOCK * BLOCK]),
        |(found, d), task| {
            let (bi, bj) = pairs[task];
            let ((fi, li, ai), (fj, lj, aj)) = (block_of(bi), block_of(bj));
            let d = &mut d[..li * lj];
            inner_products(ai, aj, dim, d);
            for (r, row) in d.chunks_mut(lj).enumerate() {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = rows.squared_from_inner(fi + r, fj + c, *v);
                }
            }
            for (r, row) in d.chunks(lj).enumerate() {
                let i = fi + r;
                for (c, &v) in row.iter().enumerate() {
                    found[i].offer(keep, v, (fj + c) as u32);
                }
            }
            if bi != bj {
                for c in 0..lj {
                    let j = fj + c;
                    for r in 0..li {
                        found[j].offer(keep, d[r * lj + c], (fi + r) as u32);
                    }
                }
            }
            let lock = |b: usize| query_blocks[b].lock().unwrap_or_else(|e| e.into_inner());
            if fi < nq {
                let mut out = lock(bi);
                for (r, row) in d.chunks(lj).enumerate().filter(|(r, _)| fi + r < nq) {
                    out[r * n + fj..r * n + fj + lj].copy_from_slice(row);
                }
            }
            if bi != bj && fj < nq {
                let mut out = lock(bj);
                for c in (0..lj).filter(|c| fj + c < nq) {
                    for r in 0..li {
                        out[c * n + fi + r] = d[r * lj + c];
                    }
                }
            }
        },
    );
    drop(query_blocks);
    let mut states = states.into_iter().map(|(found, _)| found);
    let mut found = states.next().unwrap_or_default();
    for other in states {
        for (into, from) in found.iter_mut().zip(other) {
            into.max = into.max.max(from.max);
            for (d, j) in from.nearest {
                into.offer(keep, d, j);
            }
        }
    }
    for (i, row) in query_rows.chunks_mut(n).enumerate() {
        let divisor = found[i].divisor();
        row.iter_mut().for_each(|v| *v /= divisor);
    }
    (found, query_rows)
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

    // 1. Nearest neighbours of every sample, and the normalised query rows (the output's base).
    let (found, query_rows) = pass_one(&rows, nq, keep);
    let (ranks, row_max): (Vec<Vec<u32>>, Vec<f32>) = found
        .into_iter()
        .map(|f| {
            let divisor = f.divisor();
            (f.nearest.into_iter().map(|(_, j)| j).collect(), divisor)
        })
        .unzip();

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
    fn blocked_pass_one_equals_the_dense_definition() {
        // 700 samples = 3 blocks, queries spanning two of them; a small lattice of values
        // makes many distances tie.
        let (n, nq, dim, keep) = (700, 300, 8, 21);
        let data: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 5) as f32).collect();
        let all = FeatureMatrix::new(data, dim).unwrap();
        for metric in [Metric::SquaredEuclidean, Metric::Cosine] {
            let all = match metric {
                Metric::Cosine => all.l2_normalized(),
                Metric::SquaredEuclidean => all.clone(),
            };
            let rows = Rows {
                norms: (0..n).map(|i| dot(all.row(i), all.row(i))).collect(),
                all: &all,
                metric,
            };
            let (found, query_rows) = pass_one(&rows, nq, keep);
            for i in 0..n {
                let row: Vec<f32> = (0..n).map(|j| rows.squared(i, j)).collect();
                let max = row.iter().copied().fold(f32::MIN, f32::max);
                assert_eq!(found[i].max, max, "row {i}");
                let mut order: Vec<u32> = (0..n as u32).collect();
                order.sort_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]).then(a.cmp(&b)));
                let got: Vec<u32> = found[i].nearest.iter().map(|&(_, j)| j).collect();
                // Equal up to ties between values the matrix product rounds differently.
                for (g, w) in got.iter().zip(&order[..keep]) {
                    assert!(
                        (row[*g as usize] - row[*w as usize]).abs() <= 1e-5,
                        "row {i}"
                    );
                }
                if i < nq {
                    for j in 0..n {
                        let want = row[j] / found[i].divisor();
                        assert!((query_rows[i * n + j] - want).abs() <= 1e-5, "({i}, {j})");
                    }
                }
            }
        }
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
