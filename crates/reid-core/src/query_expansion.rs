//! Query expansion (Chum et al. 2007; alpha-QE of Radenovic et al. 2018), as fast-reid's `aqe`
//! computes it: every sample of queries + gallery is replaced by the mean of its `k` most
//! cosine-similar samples (itself included), each weighted by `similarity^alpha`; `alpha = 0`
//! is average query expansion. Repeated `times` times; the result is not re-normalised.

use crate::distance::top_k_inner_product;
use crate::features::{FeatureError, FeatureMatrix};

/// Query expansion parameters (fast-reid's defaults: 1 time, k = 10, alpha = 3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryExpansion {
    pub times: usize,
    pub k: usize,
    pub alpha: f32,
}

impl Default for QueryExpansion {
    fn default() -> Self {
        Self {
            times: 1,
            k: 10,
            alpha: 3.0,
        }
    }
}

/// Expands query and gallery features together; returns the new (query, gallery).
pub fn query_expansion(
    query: &FeatureMatrix,
    gallery: &FeatureMatrix,
    qe: QueryExpansion,
) -> Result<(FeatureMatrix, FeatureMatrix), FeatureError> {
    if query.dim() != gallery.dim() {
        return Err(FeatureError::DimMismatch {
            query: query.dim(),
            gallery: gallery.dim(),
        });
    }
    let dim = query.dim();
    let mut data = query.as_slice().to_vec();
    data.extend_from_slice(gallery.as_slice());
    let mut all = FeatureMatrix::new(data, dim)?;
    for _ in 0..qe.times {
        let unit = all.l2_normalized();
        let neighbours = top_k_inner_product(&unit, &unit, qe.k)?;
        let mut next = vec![0f32; all.as_slice().len()];
        for (row, hits) in next.chunks_mut(dim).zip(&neighbours) {
            for hit in hits {
                let w = hit.score.powf(qe.alpha);
                for (o, v) in row.iter_mut().zip(all.row(hit.index)) {
                    *o += v * w;
                }
            }
            row.iter_mut().for_each(|o| *o /= hits.len() as f32);
        }
        all = FeatureMatrix::new(next, dim)?;
    }
    let split = query.rows() * dim;
    Ok((
        FeatureMatrix::new(all.as_slice()[..split].to_vec(), dim)?,
        FeatureMatrix::new(all.as_slice()[split..].to_vec(), dim)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_expansion_with_k_one_is_the_identity() {
        let q = FeatureMatrix::new(vec![1.0, 2.0], 2).unwrap();
        let g = FeatureMatrix::new(vec![3.0, -1.0, 0.5, 0.5], 2).unwrap();
        let qe = QueryExpansion {
            times: 2,
            k: 1,
            alpha: 0.0,
        };
        let (q2, g2) = query_expansion(&q, &g, qe).unwrap();
        assert_eq!((q2, g2), (q, g));
    }
}
