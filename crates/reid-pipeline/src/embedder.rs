//! Image bytes to embeddings. Each input is decoded on its own, so a corrupt file fails alone;
//! decoded crops are embedded in batches of at most `max_batch` to bound memory. On the CPU the
//! network runs folded (`reid_model::cpu`, about ten times faster than burn's CPU backend); on
//! any other device it runs as burn modules.

use burn::tensor::Device;
use reid_core::Embedding;
use reid_model::cpu::CpuNet;
use reid_model::explain::{FeatureMap, Head, Heat, PairExplanation};
use reid_model::weights::from_burnpack_bytes;
use reid_model::{decode_image, preprocess, ModelError, ReidNet, ReidNetConfig, RgbImage};

/// Why an image could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The input or the model file is unusable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The network produced something that is not an embedding (NaN, wrong size).
    #[error("the network produced an invalid embedding: {0}")]
    Invalid(String),
}

/// A loaded ReID network on a device, ready to embed crops.
#[derive(Debug)]
pub struct Embedder {
    net: ReidNet,
    /// The network folded for the CPU, when the device is burn's CPU backend.
    cpu: Option<CpuNet>,
    config: ReidNetConfig,
    device: Device,
    max_batch: usize,
}

impl Embedder {
    /// Loads a burnpack model file onto `device`. `max_batch` bounds the crops run at once.
    pub fn from_burnpack(
        bytes: &[u8],
        device: Device,
        max_batch: usize,
    ) -> Result<Self, EmbedError> {
        let (net, config) = from_burnpack_bytes(bytes, &device)?;
        Ok(Self::new(net, config, device, max_batch))
    }

    /// Wraps an already built network. On burn's CPU backend it is also folded for the CPU
    /// path, which then does the work.
    pub fn new(net: ReidNet, config: ReidNetConfig, device: Device, max_batch: usize) -> Self {
        let cpu = (device == Device::flex())
            .then(|| CpuNet::new(&net, config.input.clone()).ok())
            .flatten();
        Self {
            net,
            cpu,
            config,
            device,
            max_batch: max_batch.max(1),
        }
    }

    /// The network's configuration (input size, normalisation, backbone).
    pub fn config(&self) -> &ReidNetConfig {
        &self.config
    }

    /// The device the network runs on (a gallery searched next to it lives there too).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether embedding runs on the folded CPU path rather than burn modules.
    pub fn uses_cpu_path(&self) -> bool {
        self.cpu.is_some()
    }

    /// Width of the embeddings this model produces.
    pub fn embedding_dim(&self) -> usize {
        self.net.embedding_dim()
    }

    /// Embeds decoded crops, in batches. Results are in input order.
    pub async fn embed_images(&self, images: &[RgbImage]) -> Result<Vec<Embedding>, EmbedError> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.max_batch) {
            if let Some(cpu) = &self.cpu {
                let result = cpu.embed(chunk);
                for row in result.embeddings.chunks(result.dim) {
                    out.push(
                        Embedding::new(row.to_vec())
                            .map_err(|e| EmbedError::Invalid(e.to_string()))?,
                    );
                }
                continue;
            }
            let input = preprocess(chunk, &self.config.input, &self.device);
            let embedding = self.net.forward(input).embedding;
            let [_, dim] = embedding.dims();
            let data = embedding
                .into_data_async()
                .await
                .map_err(|e| ModelError::Device(format!("{e:?}")))?;
            let values: Vec<f32> = data
                .try_to_vec::<f32>()
                .map_err(|e| ModelError::Device(format!("{e:?}")))?;
            for row in values.chunks(dim) {
                out.push(
                    Embedding::new(row.to_vec()).map_err(|e| EmbedError::Invalid(e.to_string()))?,
                );
            }
        }
        Ok(out)
    }

    /// Splits the similarity of two pictures over the regions of each ([`reid_model::explain`]):
    /// the network as it embeds them, up to its last feature map, then the head in closed form.
    pub async fn explain_pair(
        &self,
        first: RgbImage,
        second: RgbImage,
    ) -> Result<PairExplanation, EmbedError> {
        let pair = [first, second];
        let (head, maps) = match &self.cpu {
            Some(cpu) => (cpu.head().clone(), cpu.feature_maps(&pair)),
            None => {
                let head = Head::of(&self.net);
                let input = preprocess(&pair, &self.config.input, &self.device);
                let map = self.net.backbone.forward(input).permute([0, 2, 3, 1]);
                let [_, height, width, channels] = map.dims();
                let values: Vec<f32> = map
                    .into_data_async()
                    .await
                    .map_err(|e| ModelError::Device(format!("{e:?}")))?
                    .try_to_vec::<f32>()
                    .map_err(|e| ModelError::Device(format!("{e:?}")))?;
                let maps = values
                    .chunks(height * width * channels)
                    .map(|v| FeatureMap {
                        height,
                        width,
                        channels,
                        values: v.to_vec(),
                    })
                    .collect();
                (head, maps)
            }
        };
        let [a, b] = &maps[..] else {
            return Err(EmbedError::Invalid("two feature maps expected".into()));
        };
        let pair = head.explain(a, b)?;
        let finite = |h: &Heat| h.values.iter().all(|v| v.is_finite());
        if !pair.similarity.is_finite() || !finite(&pair.first) || !finite(&pair.second) {
            return Err(EmbedError::Invalid(
                "the similarity map is not finite".into(),
            ));
        }
        Ok(pair)
    }

    /// Decodes and embeds each file; a file that fails does not stop the others.
    pub async fn embed_files(&self, files: &[&[u8]]) -> Vec<Result<Embedding, EmbedError>> {
        // Decoded images move into one batch list; each file keeps only its decoding outcome.
        let mut images = Vec::with_capacity(files.len());
        let outcomes: Vec<Result<(), ModelError>> = files
            .iter()
            .map(|bytes| decode_image(bytes).map(|image| images.push(image)))
            .collect();
        let mut embeddings = match self.embed_images(&images).await {
            Ok(e) => e.into_iter(),
            Err(e) => {
                let message = e.to_string();
                return outcomes
                    .into_iter()
                    .map(|r| match r {
                        Ok(()) => Err(EmbedError::Invalid(message.clone())),
                        Err(e) => Err(e.into()),
                    })
                    .collect();
            }
        };
        outcomes
            .into_iter()
            .map(|r| match r {
                Ok(()) => Ok(embeddings.next().expect("one embedding per decoded image")),
                Err(e) => Err(e.into()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reid_model::weights::{to_burnpack_bytes, Precision};

    fn embedder() -> Embedder {
        let device = Device::flex();
        let config = ReidNetConfig::default();
        let net = config.init(&device);
        let bytes = to_burnpack_bytes(&net, &config, &vec![], Precision::F16).unwrap();
        Embedder::from_burnpack(&bytes, device, 2).unwrap()
    }

    #[test]
    fn the_cpu_backend_runs_the_folded_network() {
        // Its equality with burn's modules is tested in reid-model (random statistics), against
        // PyTorch in reid-model's parity tests, and against burn on WebGPU in the browser tests.
        assert!(embedder().uses_cpu_path());
    }

    fn png(width: u32, height: u32, shade: u8) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([shade, (x * 3) as u8, (y * 2) as u8])
        });
        let mut bytes = Vec::new();
        image
            .write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
        bytes
    }

    #[test]
    fn a_pair_s_map_sums_to_the_similarity_of_its_embeddings_on_both_paths() {
        let cpu = embedder();
        // The same weights as burn modules.
        let burn = Embedder {
            net: cpu.net.clone(),
            cpu: None,
            config: cpu.config.clone(),
            device: cpu.device.clone(),
            max_batch: 2,
        };
        assert!(!burn.uses_cpu_path());
        let decode = |bytes: &[u8]| reid_model::decode_image(bytes).unwrap();
        let (a, b) = (decode(&png(40, 90, 10)), decode(&png(64, 128, 200)));
        let embedded = pollster::block_on(cpu.embed_images(&[a.clone(), b.clone()])).unwrap();
        let cosine = reid_core::cosine_similarity(embedded[0].values(), embedded[1].values());
        for embedder in [&cpu, &burn] {
            let pair = pollster::block_on(embedder.explain_pair(a.clone(), b.clone())).unwrap();
            assert!(
                (pair.similarity - cosine).abs() < 1e-4,
                "{} against {cosine}",
                pair.similarity
            );
            for heat in [&pair.first, &pair.second] {
                // 256x128 at output stride 32.
                assert_eq!((heat.height, heat.width), (8, 4));
                let sum: f32 = heat.values.iter().sum();
                assert!(
                    (sum - pair.similarity).abs() < 1e-4,
                    "{sum} against {}",
                    pair.similarity
                );
            }
        }
    }

    #[test]
    fn a_bad_file_fails_alone_and_the_others_are_embedded_in_order() {
        let embedder = embedder();
        let (a, b, c) = (png(40, 90, 10), png(50, 100, 200), png(64, 128, 90));
        let files: Vec<&[u8]> = vec![&a, b"not an image", &b, &[], &c];
        let results = pollster::block_on(embedder.embed_files(&files));
        assert_eq!(results.len(), 5);
        assert!(results[0].is_ok() && results[2].is_ok() && results[4].is_ok());
        assert!(matches!(
            results[1],
            Err(EmbedError::Model(ModelError::NotAnImage))
        ));
        assert!(matches!(
            results[3],
            Err(EmbedError::Model(ModelError::EmptyFile))
        ));
        // Batching (max 2) must not change results: embed the third image alone and compare.
        let alone = pollster::block_on(embedder.embed_files(&[&c]));
        let (x, y) = (results[4].as_ref().unwrap(), alone[0].as_ref().unwrap());
        assert!(reid_core::cosine_similarity(x.values(), y.values()) > 0.99999);
    }
}
