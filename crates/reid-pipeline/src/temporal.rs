//! A learned temporal aggregator (`reid temporal`'s `<name>.bpk`) applied to the tracker's
//! tracklets: one embedding per followed person from the frame embeddings the tracklet kept
//! ([`reid_core::Tracklet::frame_embeddings`]), in place of the quality-weighted mean.

use burn::tensor::{Device, Tensor, TensorData};
use reid_core::embedding::unit;
use reid_core::Tracklet;
pub use reid_model::temporal::is_aggregator_file;
use reid_model::temporal::{from_burnpack_bytes, TemporalConfig, TemporalKind, TemporalNet};
use reid_model::ModelError;

/// An aggregator on a device, checked against the image network whose embeddings it reads.
#[derive(Debug)]
pub struct TrackletAggregator {
    net: TemporalNet,
    config: TemporalConfig,
    device: Device,
}

/// Frames aggregated per chunk (a tracklet keeps at most 64, so one chunk).
const CHUNK: usize = 256;

impl TrackletAggregator {
    /// Loads an aggregator file for an image network of `embedding_dim`-wide embeddings.
    pub fn from_burnpack(
        bytes: &[u8],
        device: Device,
        embedding_dim: usize,
    ) -> Result<Self, ModelError> {
        let (net, config, _) = from_burnpack_bytes(bytes, &device)?;
        if config.d_input != embedding_dim {
            return Err(ModelError::Weights(format!(
                "the aggregator reads {}-wide frame embeddings, the image network gives {embedding_dim}: use an aggregator trained on this network's embeddings",
                config.d_input
            )));
        }
        Ok(Self {
            net,
            config,
            device,
        })
    }

    /// Which aggregator it is.
    pub fn kind(&self) -> TemporalKind {
        self.config.kind
    }

    /// Width of the image-network embeddings it reads.
    pub fn d_input(&self) -> usize {
        self.config.d_input
    }

    /// Its learned parameters.
    pub fn learned_params(&self) -> usize {
        self.net.learned_params()
    }

    /// Width of the tracklet embeddings it gives.
    pub fn embedding_dim(&self) -> usize {
        self.config.d_output()
    }

    /// The L2-normalised embedding of `frames` (each one image-network embedding, in time
    /// order); `None` when there are none.
    pub async fn embed(&self, frames: &[Vec<f32>]) -> Result<Option<Vec<f32>>, ModelError> {
        if frames.is_empty() {
            return Ok(None);
        }
        let d = self.config.d_input;
        let x = Tensor::<2>::from_data(
            TensorData::new(self.flatten(frames, "frame")?, [frames.len(), d]),
            &self.device,
        );
        let e = self
            .net
            .embed_tracklet(x, CHUNK)
            .map_err(|e| ModelError::Weights(e.to_string()))?;
        Ok(unit(&read(e).await?))
    }

    /// Single pictures as one-frame tracklets, all in one pass: each one's L2-normalised
    /// embedding (`None` for a zero one), in order. Equal to [`Self::embed`] of each alone.
    pub async fn embed_pictures(
        &self,
        pictures: &[Vec<f32>],
    ) -> Result<Vec<Option<Vec<f32>>>, ModelError> {
        if pictures.is_empty() {
            return Ok(Vec::new());
        }
        let d = self.config.d_input;
        let x = Tensor::<3>::from_data(
            TensorData::new(self.flatten(pictures, "picture")?, [pictures.len(), 1, d]),
            &self.device,
        );
        let v = read(self.net.forward(x).embedding).await?;
        Ok(v.chunks(self.embedding_dim()).map(unit).collect())
    }

    /// `rows` end to end, each checked to be as wide as the aggregator reads.
    fn flatten(&self, rows: &[Vec<f32>], what: &str) -> Result<Vec<f32>, ModelError> {
        let d = self.config.d_input;
        if let Some(bad) = rows.iter().find(|f| f.len() != d) {
            return Err(ModelError::Weights(format!(
                "a {}-wide {what} embedding for an aggregator of {d}",
                bad.len()
            )));
        }
        Ok(rows.iter().flatten().copied().collect())
    }

    /// A tracklet's embedding through the aggregator (`None` without frame embeddings).
    pub async fn embed_tracklet(
        &self,
        tracklet: &Tracklet,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        self.embed(tracklet.frame_embeddings()).await
    }
}

/// A tensor's values, read back from the device.
async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, ModelError> {
    t.into_data_async()
        .await
        .map_err(|e| ModelError::Device(format!("{e:?}")))?
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| ModelError::Device(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(kind: TemporalKind, d: usize) -> Vec<u8> {
        let config = TemporalConfig::new(kind, d);
        let net = config.init(&Device::flex());
        reid_model::temporal::to_burnpack_bytes(&net, &config, &Vec::new()).unwrap()
    }

    #[test]
    fn an_aggregator_for_other_embeddings_is_refused_by_width() {
        let message =
            TrackletAggregator::from_burnpack(&file(TemporalKind::Gru, 8), Device::flex(), 1280)
                .unwrap_err()
                .to_string();
        assert!(
            message.contains("8-wide") && message.contains("1280"),
            "{message}"
        );
    }

    #[test]
    fn aggregator_files_are_told_from_image_networks_and_junk() {
        assert!(is_aggregator_file(&file(TemporalKind::Mean, 8)));
        assert!(!is_aggregator_file(b"not a burnpack file"));
        assert!(!is_aggregator_file(&[]));
    }

    #[test]
    fn tracklet_embeddings_are_unit_length_and_empty_tracklets_have_none() {
        let aggregator =
            TrackletAggregator::from_burnpack(&file(TemporalKind::Attention, 4), Device::flex(), 4)
                .unwrap();
        assert_eq!(aggregator.kind(), TemporalKind::Attention);
        let frames = vec![vec![1.0, 0.0, 0.0, 0.0], vec![0.0, 1.0, 0.5, 0.0]];
        let e = pollster::block_on(aggregator.embed(&frames))
            .unwrap()
            .unwrap();
        assert!((e.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        assert_eq!(pollster::block_on(aggregator.embed(&[])).unwrap(), None);
        assert!(pollster::block_on(aggregator.embed(&[vec![1.0; 3]])).is_err());
    }

    #[test]
    fn pictures_in_one_pass_equal_one_frame_tracklets_one_at_a_time() {
        for kind in TemporalKind::ALL {
            let aggregator =
                TrackletAggregator::from_burnpack(&file(kind, 4), Device::flex(), 4).unwrap();
            let pictures = vec![
                vec![1.0, 0.0, 0.0, 0.0],
                vec![0.0, 1.0, 0.5, 0.0],
                vec![0.2, -0.3, 0.4, 0.9],
            ];
            let together = pollster::block_on(aggregator.embed_pictures(&pictures)).unwrap();
            assert_eq!(together.len(), 3);
            for (picture, batched) in pictures.iter().zip(&together) {
                let alone = pollster::block_on(aggregator.embed(std::slice::from_ref(picture)))
                    .unwrap()
                    .unwrap();
                let batched = batched.as_ref().unwrap();
                let diff = alone
                    .iter()
                    .zip(batched)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                assert!(diff < 1e-5, "{}: {diff}", kind.name());
            }
            assert!(pollster::block_on(aggregator.embed_pictures(&[vec![1.0; 3]])).is_err());
        }
    }
}
