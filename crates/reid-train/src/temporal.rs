//! Video ReID on tracklets (`reid temporal`): per-frame features from a frozen image network,
//! temporal aggregators ([`reid_model::temporal`]) trained on them, and the video protocol's
//! evaluation with every frame of every tracklet.
//!
//! Training follows the video ReID recipe of Gao and Nevatia (2018) on top of fixed frame
//! features: restricted random sampling (each tracklet cut into T equal stretches, one random
//! frame from each), P x K batches of tracklets, and ID (label-smoothed cross-entropy after the
//! neck) + TriHard (before it) losses on the aggregated feature. The image network is not
//! retrained: its embeddings are computed once, on the folded CPU path, and cached in the run
//! folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use burn::module::Module;
use burn::optim::{decay::WeightDecayConfig, AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reid_core::{distance_matrix, evaluate, FeatureMatrix, Labels, Metric, Protocol, RankMetrics};
use reid_data::sampler::PkSampler;
use reid_data::video::{VideoDataset, VideoTracklet};
use reid_model::head::{Classifier, ClassifierConfig};
use reid_model::loss::{batch_hard_triplet_loss, cross_entropy_label_smooth, TripletMargin};
use reid_model::temporal::{TemporalConfig, TemporalKind, TemporalNet};
use reid_pipeline::Embedder;
use serde::{Deserialize, Serialize};

/// The frame features of a dataset: one row per readable frame.
pub struct FrameFeatures {
    pub matrix: FeatureMatrix,
    /// Row of each readable frame.
    pub rows: HashMap<PathBuf, usize>,
    /// Frames that could not be read or decoded, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// What the cache beside `frames.npy` says about it.
#[derive(Serialize, Deserialize, PartialEq)]
struct CacheIndex {
    /// SHA-256 of the image network's file.
    model_sha256: String,
    /// SHA-256 over each frame's path, size and modification time: a frame replaced since the
    /// cache was written invalidates it.
    frames_stamp: String,
    /// The frame of each row.
    frames: Vec<PathBuf>,
    /// Frames that could not be used, and why.
    unreadable: Vec<(PathBuf, String)>,
}

/// SHA-256 over each frame's path, size and modification time (a missing frame hashes its path
/// alone, so it is found unreadable again rather than read from a stale cache).
fn frames_stamp(frames: &[PathBuf]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for frame in frames {
        hash.update(frame.as_os_str().as_encoded_bytes());
        if let Ok(meta) = std::fs::metadata(frame) {
            hash.update(meta.len().to_le_bytes());
            let since = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            hash.update(since.map_or(0, |d| d.as_nanos()).to_le_bytes());
        }
        hash.update([0]);
    }
    crate::cmd::hex(&hash.finalize())
}

/// Frames embedded per batch (bounds memory: decoded pictures of one batch at a time).
const BATCH: usize = 256;

/// Embeds every frame of `dataset` with `embedder`, or reads the cache in `cache_dir` when it
/// holds exactly these frames from the same model file. `progress` is told frames done so far.
pub fn frame_features(
    dataset: &VideoDataset,
    embedder: &Embedder,
    model_sha256: &str,
    cache_dir: &Path,
    progress: &dyn Fn(usize, usize),
) -> anyhow::Result<FrameFeatures> {
    let mut wanted: Vec<PathBuf> = [&dataset.train, &dataset.query, &dataset.gallery]
        .iter()
        .flat_map(|s| s.iter())
        .flat_map(|t| t.frames.iter().cloned())
        .collect();
    wanted.sort();
    wanted.dedup();
    let stamp = frames_stamp(&wanted);
    let (npy, index_path) = (cache_dir.join("frames.npy"), cache_dir.join("frames.json"));
    if let (Ok(bytes), Ok(index)) = (std::fs::read(&npy), std::fs::read(&index_path)) {
        if let Ok(index) = serde_json::from_slice::<CacheIndex>(&index) {
            let mut listed: Vec<PathBuf> = index
                .frames
                .iter()
                .chain(index.unreadable.iter().map(|(p, _)| p))
                .cloned()
                .collect();
            listed.sort();
            if index.model_sha256 == model_sha256 && index.frames_stamp == stamp && listed == wanted
            {
                let matrix = FeatureMatrix::from_npy(&bytes)
                    .with_context(|| format!("the cached features {}", npy.display()))?;
                if matrix.rows() == index.frames.len() {
                    let rows = index.frames.into_iter().enumerate().map(|(i, p)| (p, i));
                    return Ok(FrameFeatures {
                        matrix,
                        rows: rows.collect(),
                        unreadable: index.unreadable,
                    });
                }
            }
        }
    }
    let mut data = Vec::new();
    let (mut frames, mut unreadable) = (Vec::new(), Vec::new());
    let mut dim = embedder.embedding_dim();
    for (b, batch) in wanted.chunks(BATCH).enumerate() {
        let mut images = Vec::with_capacity(batch.len());
        for path in batch {
            match crate::cmd::read_picture(path) {
                Ok(image) => {
                    images.push(image);
                    frames.push(path.clone());
                }
                Err(why) => unreadable.push((path.clone(), why)),
            }
        }
        let embeddings = pollster::block_on(embedder.embed_images(&images))?;
        for e in embeddings {
            dim = e.values().len();
            data.extend_from_slice(e.values());
        }
        progress((b * BATCH + batch.len()).min(wanted.len()), wanted.len());
    }
    let matrix = FeatureMatrix::new(data, dim)?;
    std::fs::create_dir_all(cache_dir)?;
    std::fs::write(&npy, matrix.to_npy())
        .with_context(|| format!("cannot write {}", npy.display()))?;
    let index = CacheIndex {
        model_sha256: model_sha256.to_string(),
        frames_stamp: stamp,
        frames,
        unreadable,
    };
    std::fs::write(&index_path, serde_json::to_vec(&index)?)
        .with_context(|| format!("cannot write {}", index_path.display()))?;
    Ok(FrameFeatures {
        matrix,
        rows: index
            .frames
            .into_iter()
            .enumerate()
            .map(|(i, p)| (p, i))
            .collect(),
        unreadable: index.unreadable,
    })
}

/// A tracklet as rows of the frame features (its readable frames, in order).
#[derive(Debug, Clone)]
pub struct Rows {
    pub pid: i64,
    pub camera: u32,
    pub rows: Vec<usize>,
}

/// The tracklets of one split that kept at least one readable frame, and how many did not.
pub fn rows_of(tracklets: &[VideoTracklet], features: &FrameFeatures) -> (Vec<Rows>, usize) {
    let mut dropped = 0;
    let kept = tracklets
        .iter()
        .filter_map(|t| {
            let rows: Vec<usize> = t
                .frames
                .iter()
                .filter_map(|f| features.rows.get(f).copied())
                .collect();
            if rows.is_empty() {
                dropped += 1;
                return None;
            }
            Some(Rows {
                pid: t.pid,
                camera: t.camera,
                rows,
            })
        })
        .collect();
    (kept, dropped)
}

/// Restricted random sampling: `t` stretches of (nearly) equal length, one random frame from
/// each, in order. A tracklet shorter than `t` repeats frames (each stretch then holds one).
pub fn restricted_random_sample(frames: usize, t: usize, rng: &mut impl Rng) -> Vec<usize> {
    assert!(frames > 0 && t > 0, "a tracklet and a sample have frames");
    (0..t)
        .map(|i| {
            let start = i * frames / t;
            let end = ((i + 1) * frames / t).max(start + 1);
            rng.random_range(start..end)
        })
        .collect()
}

/// A training recipe for the aggregators.
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// Frames sampled per tracklet (T).
    pub frames: usize,
    pub p: usize,
    pub k: usize,
    pub epochs: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Width of the recurrent state and of the attention's hidden layer.
    pub hidden: usize,
    pub margin: f32,
    pub label_smoothing: f32,
    pub seed: u64,
}

/// An aggregator being trained: it and the training-only identity classifier.
#[derive(Module, Debug)]
struct TrainTemporal {
    net: TemporalNet,
    classifier: Classifier,
}

/// One trained aggregator and how it did.
pub struct Trained {
    pub net: TemporalNet,
    pub config: TemporalConfig,
    /// Mean losses of the last epoch: (ID, TriHard).
    pub last_losses: (f64, f64),
    pub seconds: f64,
}

/// Trains `kind` on the `train` tracklets.
pub fn train_aggregator(
    kind: TemporalKind,
    train: &[Rows],
    features: &FeatureMatrix,
    recipe: &Recipe,
    device: &Device,
    epoch_done: &dyn Fn(usize, f64, f64),
) -> anyhow::Result<Trained> {
    let started = Instant::now();
    let d = features.dim();
    // Identities numbered from 0 in the order they come.
    let mut classes: HashMap<i64, i64> = HashMap::new();
    let labels: Vec<i64> = train
        .iter()
        .map(|t| {
            let next = classes.len() as i64;
            *classes.entry(t.pid).or_insert(next)
        })
        .collect();
    let sampler = PkSampler::new(&labels, recipe.p, recipe.k, recipe.seed)?;
    device.seed(recipe.seed);
    let config = TemporalConfig {
        kind,
        d_input: d,
        d_hidden: recipe.hidden,
    };
    let mut model = TrainTemporal {
        net: config.init(device),
        classifier: ClassifierConfig::new(config.d_output(), classes.len()).init(device),
    };
    let mut optim = AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(Some(WeightDecayConfig::new(recipe.weight_decay as f32)))
        .init();
    let mut rng = ChaCha8Rng::seed_from_u64(recipe.seed ^ 0x7e3a);
    let mut last = (0.0, 0.0);
    for epoch in 0..recipe.epochs {
        // Step decay: a tenth of the rate for the last third.
        let lr = if epoch >= recipe.epochs * 2 / 3 {
            recipe.lr / 10.0
        } else {
            recipe.lr
        };
        let (mut id_sum, mut tri_sum, mut steps) = (0.0, 0.0, 0usize);
        for batch in sampler.epoch(epoch as u64) {
            let n = batch.len();
            let mut values = Vec::with_capacity(n * recipe.frames * d);
            for &i in &batch {
                let rows = &train[i].rows;
                for f in restricted_random_sample(rows.len(), recipe.frames, &mut rng) {
                    values.extend_from_slice(features.row(rows[f]));
                }
            }
            let input =
                Tensor::<3>::from_data(TensorData::new(values, [n, recipe.frames, d]), device);
            let targets: Vec<i64> = batch.iter().map(|&i| labels[i]).collect();
            let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [n]), device);
            let out = model.net.forward(input);
            let logits = model.classifier.forward(out.embedding);
            let id = cross_entropy_label_smooth(logits, targets.clone(), recipe.label_smoothing);
            let tri =
                batch_hard_triplet_loss(out.pooled, targets, TripletMargin::Hard(recipe.margin));
            let parts = Tensor::cat(vec![id.clone().detach(), tri.clone().detach()], 0)
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if parts.iter().any(|v| !v.is_finite()) {
                bail!(
                    "{}: the loss became {parts:?} at epoch {}: lower --lr",
                    kind.name(),
                    epoch + 1
                );
            }
            let grads = GradientsParams::from_grads((id + tri).backward(), &model);
            model = optim.step(lr, model, grads);
            id_sum += f64::from(parts[0]);
            tri_sum += f64::from(parts[1]);
            steps += 1;
        }
        last = (id_sum / steps.max(1) as f64, tri_sum / steps.max(1) as f64);
        epoch_done(epoch + 1, last.0, last.1);
    }
    Ok(Trained {
        net: model.net.valid(),
        config,
        last_losses: last,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Tracklets embedded per forward pass when they have the same length.
const EVAL_BATCH: usize = 64;
/// Frames per chunk of a tracklet too long for one pass.
pub const EVAL_CHUNK: usize = 256;

/// Every tracklet's embedding from all its frames (equal-length tracklets in batches; longer
/// than [`EVAL_CHUNK`] a chunk at a time). `net` must be in validation mode on a plain device.
pub fn embed_tracklets(
    net: &TemporalNet,
    tracklets: &[Rows],
    features: &FeatureMatrix,
    device: &Device,
) -> anyhow::Result<FeatureMatrix> {
    let d = features.dim();
    let mut out: Vec<Option<Vec<f32>>> = vec![None; tracklets.len()];
    let mut by_length: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for (i, t) in tracklets.iter().enumerate() {
        by_length.entry(t.rows.len()).or_default().push(i);
    }
    let gather = |rows: &[usize]| -> Vec<f32> {
        rows.iter()
            .flat_map(|&r| features.row(r).iter().copied())
            .collect()
    };
    let read = |t: Tensor<2>| -> anyhow::Result<Vec<f32>> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))
    };
    for (len, members) in by_length {
        if len > EVAL_CHUNK {
            for &i in &members {
                let x = Tensor::<2>::from_data(
                    TensorData::new(gather(&tracklets[i].rows), [len, d]),
                    device,
                );
                let e = net.embed_tracklet(x, EVAL_CHUNK)?;
                let w = e.dims()[0];
                out[i] = Some(read(e.reshape([1, w]))?);
            }
            continue;
        }
        for group in members.chunks(EVAL_BATCH) {
            let values: Vec<f32> = group
                .iter()
                .flat_map(|&i| gather(&tracklets[i].rows))
                .collect();
            let x = Tensor::<3>::from_data(TensorData::new(values, [group.len(), len, d]), device);
            let e = net.forward(x).embedding;
            let w = e.dims()[1];
            for (row, &i) in read(e)?.chunks(w).zip(group) {
                out[i] = Some(row.to_vec());
            }
        }
    }
    let width = out.first().and_then(|r| r.as_ref()).map_or(0, Vec::len);
    let data: Vec<f32> = out.into_iter().flatten().flatten().collect();
    Ok(FeatureMatrix::new(data, width.max(1))?)
}

/// The plain mean of each tracklet's frame features (the image model, no temporal training).
pub fn mean_of_frames(
    tracklets: &[Rows],
    features: &FeatureMatrix,
) -> anyhow::Result<FeatureMatrix> {
    let d = features.dim();
    let mut data = Vec::with_capacity(tracklets.len() * d);
    for t in tracklets {
        let mut sum = vec![0f64; d];
        for &r in &t.rows {
            for (s, v) in sum.iter_mut().zip(features.row(r)) {
                *s += f64::from(*v);
            }
        }
        data.extend(sum.iter().map(|s| (s / t.rows.len() as f64) as f32));
    }
    Ok(FeatureMatrix::new(data, d)?)
}

/// Rank-k, mAP and mINP of query tracklets against gallery tracklets (cosine distance,
/// Market-1501's protocol: same identity in the same camera is left out, identity -1 is junk).
pub fn evaluate_tracklets(
    query: &FeatureMatrix,
    query_rows: &[Rows],
    gallery: &FeatureMatrix,
    gallery_rows: &[Rows],
) -> anyhow::Result<RankMetrics> {
    let labels = |rows: &[Rows]| -> (Vec<i64>, Vec<i64>) {
        rows.iter().map(|t| (t.pid, i64::from(t.camera))).unzip()
    };
    let (qp, qc) = labels(query_rows);
    let (gp, gc) = labels(gallery_rows);
    let distances = distance_matrix(query, gallery, Metric::Cosine)?;
    Ok(evaluate(
        &distances,
        Labels {
            pids: &qp,
            camids: &qc,
        },
        Labels {
            pids: &gp,
            camids: &gc,
        },
        &Protocol::market1501(),
    )?)
}

/// Milliseconds to aggregate one tracklet of `frames` frames (the frame features given), the
/// median over `repeats` runs, one tracklet at a time as the pipeline does.
pub fn time_per_tracklet(
    net: &TemporalNet,
    d: usize,
    frames: usize,
    repeats: usize,
    device: &Device,
) -> f64 {
    let x = Tensor::<2>::from_data(
        TensorData::new(
            (0..frames * d)
                .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
                .collect::<Vec<f32>>(),
            [frames, d],
        ),
        device,
    );
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            let e = net
                .embed_tracklet(x.clone(), EVAL_CHUNK)
                .expect("frames of the aggregator's width");
            let _ = e.into_data();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_random_sampling_takes_one_frame_from_each_stretch_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (frames, t) in [(16, 4), (17, 4), (5, 8), (1, 4), (4, 4), (100, 8)] {
            for _ in 0..50 {
                let s = restricted_random_sample(frames, t, &mut rng);
                assert_eq!(s.len(), t);
                assert!(s.iter().all(|&f| f < frames), "{frames} {t} {s:?}");
                assert!(s.windows(2).all(|w| w[0] <= w[1]), "in order: {s:?}");
                if frames >= t {
                    for (i, &f) in s.iter().enumerate() {
                        assert!(f >= i * frames / t && f < (i + 1) * frames / t, "{s:?}");
                    }
                }
            }
        }
        // Every frame of a stretch can be drawn.
        let seen: std::collections::BTreeSet<usize> = (0..200)
            .map(|_| restricted_random_sample(16, 4, &mut rng)[1])
            .collect();
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    }
}
