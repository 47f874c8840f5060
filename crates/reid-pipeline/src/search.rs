//! Ranked search over a gallery held on the compute device: a matrix product of the queries with
//! the gallery and a top-k on the device, so that only `k` results per query are read back
//! (WebGPU in the browser, burn's CPU backend natively). `reid_core::top_k_inner_product` is the
//! exact CPU reference this is tested against.
//!
//! The gallery is kept in chunks and the queries are scored a block at a time, so no buffer
//! exceeds [`MAX_BUFFER_VALUES`]: WebGPU's default limit on one storage buffer is 128 MiB.

use burn::tensor::{Device, Int, Tensor, TensorData};
use reid_core::{FeatureMatrix, Hit};

/// The most `f32` values in one device buffer (64 MiB).
pub const MAX_BUFFER_VALUES: usize = 16 << 20;

/// Why a search could not run.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the gallery is empty")]
    EmptyGallery,
    #[error("query features are {query}-d but the gallery's are {gallery}-d")]
    DimMismatch { query: usize, gallery: usize },
    #[error("the device failed during search: {0}")]
    Device(String),
}

/// A gallery of embeddings on a device.
#[derive(Debug)]
pub struct GallerySearch {
    /// Gallery chunks (rows x dim) and the index of each chunk's first row.
    chunks: Vec<(usize, Tensor<2>)>,
    rows: usize,
    dim: usize,
    max_values: usize,
    device: Device,
}

impl GallerySearch {
    /// Uploads `gallery` (one embedding per row; L2-normalised rows give cosine scores).
    pub fn new(gallery: &FeatureMatrix, device: &Device) -> Result<Self, SearchError> {
        Self::with_buffer_limit(gallery, device, MAX_BUFFER_VALUES)
    }

    /// The same with a smaller buffer limit (tests use it to exercise the chunking).
    pub fn with_buffer_limit(
        gallery: &FeatureMatrix,
        device: &Device,
        max_values: usize,
    ) -> Result<Self, SearchError> {
        let (rows, dim) = (gallery.rows(), gallery.dim());
        if rows == 0 || dim == 0 {
            return Err(SearchError::EmptyGallery);
        }
        let chunk_rows = (max_values / dim).max(1);
        let chunks = (0..rows)
            .step_by(chunk_rows)
            .map(|first| {
                let n = chunk_rows.min(rows - first);
                let values = gallery.as_slice()[first * dim..(first + n) * dim].to_vec();
                (
                    first,
                    Tensor::from_data(TensorData::new(values, [n, dim]), device),
                )
            })
            .collect();
        Ok(Self {
            chunks,
            rows,
            dim,
            max_values,
            device: device.clone(),
        })
    }

    /// Gallery rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Always false: an empty gallery is refused at construction.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// For each query, the `k` gallery rows with the highest inner product, best first. Ties are
    /// ordered by gallery index; which of several rows tied at the k-th score is kept is the
    /// device's choice.
    pub async fn top_k(
        &self,
        queries: &FeatureMatrix,
        k: usize,
    ) -> Result<Vec<Vec<Hit>>, SearchError> {
        if queries.dim() != self.dim {
            return Err(SearchError::DimMismatch {
                query: queries.dim(),
                gallery: self.dim,
            });
        }
        let k = k.min(self.rows);
        let mut out: Vec<Vec<Hit>> = vec![Vec::with_capacity(k); queries.rows()];
        if k == 0 {
            return Ok(out);
        }
        let device_err = |e| SearchError::Device(format!("{e:?}"));
        for (first, chunk) in &self.chunks {
            let [chunk_rows, _] = chunk.dims();
            let kc = k.min(chunk_rows);
            // Scores of a block of queries against this chunk fit one buffer.
            let block = (self.max_values / chunk_rows).max(1);
            for q_first in (0..queries.rows()).step_by(block) {
                let qn = block.min(queries.rows() - q_first);
                let values =
                    queries.as_slice()[q_first * self.dim..(q_first + qn) * self.dim].to_vec();
                let q: Tensor<2> =
                    Tensor::from_data(TensorData::new(values, [qn, self.dim]), &self.device);
                let scores = q.matmul(chunk.clone().transpose());
                let (top, index): (Tensor<2>, Tensor<2, Int>) = scores.topk_with_indices(kc, 1);
                let top = top.into_data_async().await.map_err(device_err)?;
                let index = index.into_data_async().await.map_err(device_err)?;
                let top: Vec<f32> = top
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| SearchError::Device(format!("{e:?}")))?;
                let index: Vec<i64> = index
                    .convert::<i64>()
                    .try_into_vec::<i64>()
                    .map_err(|e| SearchError::Device(format!("{e:?}")))?;
                for (r, (scores, indices)) in top.chunks(kc).zip(index.chunks(kc)).enumerate() {
                    out[q_first + r].extend(scores.iter().zip(indices).map(|(&score, &j)| Hit {
                        index: first + j as usize,
                        score,
                    }));
                }
            }
        }
        for hits in &mut out {
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
            hits.truncate(k);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(rows: usize, dim: usize, seed: u32) -> FeatureMatrix {
        let mut x = seed;
        let data = (0..rows * dim)
            .map(|_| {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect();
        FeatureMatrix::new(data, dim).unwrap().l2_normalized()
    }

    fn same_as_reference(search: &GallerySearch, q: &FeatureMatrix, g: &FeatureMatrix, k: usize) {
        let got = pollster::block_on(search.top_k(q, k)).unwrap();
        let want = reid_core::top_k_inner_product(q, g, k).unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(&want).enumerate() {
            let ia: Vec<usize> = a.iter().map(|h| h.index).collect();
            let ib: Vec<usize> = b.iter().map(|h| h.index).collect();
            assert_eq!(ia, ib, "query {i}");
            for (x, y) in a.iter().zip(b) {
                assert!((x.score - y.score).abs() < 1e-5, "query {i}");
            }
        }
    }

    #[test]
    fn equals_the_exact_cpu_search_whole_and_in_chunks() {
        let device = Device::flex();
        let (q, g) = (features(37, 24, 1), features(1000, 24, 2));
        let whole = GallerySearch::new(&g, &device).unwrap();
        same_as_reference(&whole, &q, &g, 10);
        // 24-d rows, 2400 values per buffer: 100-row chunks, 24-query blocks.
        let chunked = GallerySearch::with_buffer_limit(&g, &device, 2400).unwrap();
        assert_eq!(chunked.chunks.len(), 10);
        same_as_reference(&chunked, &q, &g, 10);
        same_as_reference(&chunked, &q, &g, 150);
        // k beyond the gallery returns the whole gallery, ranked.
        let small = features(7, 24, 3);
        let s = GallerySearch::with_buffer_limit(&small, &device, 48).unwrap();
        same_as_reference(&s, &q, &small, 20);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let device = Device::flex();
        let empty = FeatureMatrix::new(vec![], 4).unwrap();
        assert!(matches!(
            GallerySearch::new(&empty, &device),
            Err(SearchError::EmptyGallery)
        ));
        let g = GallerySearch::new(&features(5, 4, 1), &device).unwrap();
        let err = pollster::block_on(g.top_k(&features(2, 3, 1), 2)).unwrap_err();
        assert!(matches!(
            err,
            SearchError::DimMismatch {
                query: 3,
                gallery: 4
            }
        ));
    }
}
