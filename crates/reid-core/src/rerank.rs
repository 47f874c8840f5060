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
        let ip = dot(self.all.row(i), self.all.row(j));
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

/// Indices of the `k` smallest values, nearest first (ties: lower index first).
fn nearest(row: &[f32], k: usize) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    let k = k.min(row.len());
    let cmp = |a: &u32, b: &u32| row[*a as usize].total_cmp(&row[*b as usize]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

/// A contiguous block of samples whose neighbours one thread finds.
struct RowsJob<'a> {
    start: usize,
    ranks: &'a mut [Vec<u32>],
    maxes: &'a mut [f32],
}

fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return std::thread::available_parallelism().map_or(1, |n| n.get());
    #[cfg(target_arch = "wasm32")]
    return 1;
}

/// Runs `f` on each job, on a thread each natively, in turn in the browser.
fn run_jobs<J: Send>(jobs: &mut [J], f: impl Fn(&mut J) + Sync) {
    #[cfg(not(target_arch = "wasm32"))]
    std::thread::scope(|s| {
        for job in jobs.iter_mut() {
            let f = &f;
            s.spawn(move || f(job));
        }
    });
    #[cfg(target_arch = "wasm32")]
    jobs.iter_mut().for_each(f);
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

    // 1. Nearest neighbours of every sample, and the normalised query rows (the output's base),
    //    on all cores natively.
    let per_row = |i: usize, row: &mut Vec<f32>| {
        row.clear();
        row.extend((0..n).map(|j| rows.squared(i, j)));
        let max = normalise(row);
        (nearest(row, keep), max)
    };
    let mut ranks = vec![Vec::new(); n];
    let mut row_max = vec![0f32; n];
    let mut query_rows = vec![0f32; nq * n];
    {
        let chunk = n.div_ceil(threads()).max(1);
        let mut jobs: Vec<RowsJob> = ranks
            .chunks_mut(chunk)
            .zip(row_max.chunks_mut(chunk))
            .enumerate()
            .map(|(c, (ranks, maxes))| RowsJob {
                start: c * chunk,
                ranks,
                maxes,
            })
            .collect();
        let query_out = std::sync::Mutex::new(&mut query_rows);
        run_jobs(&mut jobs, |job| {
            let mut row = Vec::with_capacity(n);
            for (offset, (rank, max)) in job.ranks.iter_mut().zip(job.maxes.iter_mut()).enumerate()
            {
                let i = job.start + offset;
                (*rank, *max) = per_row(i, &mut row);
                if i < nq {
                    let mut out = query_out.lock().expect("no thread panics holding it");
                    out[i * n..(i + 1) * n].copy_from_slice(&row);
                }
            }
        });
    }

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
