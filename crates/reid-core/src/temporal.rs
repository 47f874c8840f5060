//! Non-learned temporal pooling: one feature per tracklet from its frames' features, by the mean
//! or a quality-weighted mean. Video ReID (MARS-style) then evaluates tracklet features with the
//! same protocol as images ([`crate::evaluate`]). Learned aggregators (attention, RNNs) live in
//! `reid-model`.

use crate::features::{FeatureError, FeatureMatrix};

/// Why frames cannot be pooled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolingError {
    #[error("{frames} frames but {labels} tracklet labels")]
    LabelCount { frames: usize, labels: usize },
    #[error("{frames} frames but {weights} weights")]
    WeightCount { frames: usize, weights: usize },
    #[error("tracklet {0} has no frames (tracklet labels must be 0..n without gaps)")]
    EmptyTracklet(usize),
    #[error("frame {frame} has a negative or non-finite weight ({weight})")]
    BadWeight { frame: usize, weight: f32 },
    #[error("the frames of tracklet {0} all have weight 0")]
    ZeroWeight(usize),
    #[error(transparent)]
    Features(#[from] FeatureError),
}

/// Pools `frames` (one row per frame) into one row per tracklet. `tracklet[f]` is frame `f`'s
/// tracklet, numbered from 0 without gaps; `weights` (e.g. detection quality) default to 1.
pub fn pool_tracklets(
    frames: &FeatureMatrix,
    tracklet: &[usize],
    weights: Option<&[f32]>,
) -> Result<FeatureMatrix, PoolingError> {
    if tracklet.len() != frames.rows() {
        return Err(PoolingError::LabelCount {
            frames: frames.rows(),
            labels: tracklet.len(),
        });
    }
    if let Some(w) = weights {
        if w.len() != frames.rows() {
            return Err(PoolingError::WeightCount {
                frames: frames.rows(),
                weights: w.len(),
            });
        }
        if let Some((frame, &weight)) = w
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(PoolingError::BadWeight { frame, weight });
        }
    }
    let count = tracklet.iter().max().map_or(0, |m| m + 1);
    let dim = frames.dim();
    let mut sums = vec![0f64; count * dim];
    let mut totals = vec![0f64; count];
    let mut seen = vec![false; count];
    for (f, &t) in tracklet.iter().enumerate() {
        let w = weights.map_or(1.0, |w| f64::from(w[f]));
        seen[t] = true;
        totals[t] += w;
        for (s, &v) in sums[t * dim..(t + 1) * dim].iter_mut().zip(frames.row(f)) {
            *s += w * f64::from(v);
        }
    }
    if let Some(t) = seen.iter().position(|s| !s) {
        return Err(PoolingError::EmptyTracklet(t));
    }
    if let Some(t) = totals.iter().position(|&w| w == 0.0) {
        return Err(PoolingError::ZeroWeight(t));
    }
    let data = sums
        .chunks(dim)
        .zip(&totals)
        .flat_map(|(row, total)| row.iter().map(move |s| (s / total) as f32))
        .collect();
    Ok(FeatureMatrix::new(data, dim)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> FeatureMatrix {
        FeatureMatrix::new(vec![1.0, 0.0, 3.0, 2.0, 0.0, 4.0], 2).unwrap()
    }

    #[test]
    fn mean_and_weighted_mean_per_tracklet_in_any_frame_order() {
        let pooled = pool_tracklets(&frames(), &[1, 0, 1], None).unwrap();
        assert_eq!(pooled.row(0), &[3.0, 2.0]);
        assert_eq!(pooled.row(1), &[0.5, 2.0]);
        let weighted = pool_tracklets(&frames(), &[0, 0, 0], Some(&[1.0, 0.0, 3.0])).unwrap();
        assert_eq!(weighted.row(0), &[0.25, 3.0]);
    }

    #[test]
    fn one_frame_tracklets_are_their_frame() {
        assert_eq!(
            pool_tracklets(&frames(), &[0, 1, 2], None).unwrap(),
            frames()
        );
    }

    #[test]
    fn empty_tracklets_bad_weights_and_miscounts_are_errors() {
        assert_eq!(
            pool_tracklets(&frames(), &[0, 2, 2], None),
            Err(PoolingError::EmptyTracklet(1))
        );
        assert!(matches!(
            pool_tracklets(&frames(), &[0, 0], None),
            Err(PoolingError::LabelCount { .. })
        ));
        assert!(matches!(
            pool_tracklets(&frames(), &[0, 0, 0], Some(&[1.0, f32::NAN, 1.0])),
            Err(PoolingError::BadWeight { frame: 1, .. })
        ));
        assert_eq!(
            pool_tracklets(&frames(), &[0, 1, 1], Some(&[0.0, 1.0, 1.0])),
            Err(PoolingError::ZeroWeight(0))
        );
    }
}
