//! Temporal aggregators for video ReID: one feature per tracklet from its frames' features
//! `[batch, T, d]`. Each is a burn module:
//!
//! - temporal average pooling (the mean over T);
//! - temporal attention: a score per frame from a small two-layer network, a softmax over T, the
//!   weighted sum;
//! - GRU and LSTM, whose outputs at every step are averaged (Gao and Nevatia 2018, "RNN");
//! - a light temporal convolution: a depthwise 3-tap convolution over T with a residual ReLU
//!   branch, then the mean.
//!
//! A BNNeck follows, as in the image network: the feature before it is what a triplet loss sees,
//! the one after it is the embedding. Gao and Nevatia score frames from the CNN's feature map;
//! here every aggregator reads the image network's per-frame embeddings, so any image model can be
//! given one without retraining it. [`TemporalNet::embed_tracklet`] runs a tracklet of any length
//! a chunk of frames at a time, with the same result as one pass over all of them.

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Gru, GruConfig, Linear, LinearConfig, LstmConfig, LstmState,
    PaddingConfig1d,
};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor};
use burn_store::BurnpackStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ModelError;

/// Which aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemporalKind {
    Mean,
    Attention,
    Gru,
    Lstm,
    Conv,
}

impl TemporalKind {
    /// Every aggregator, in the order results are reported.
    pub const ALL: [Self; 5] = [
        Self::Mean,
        Self::Attention,
        Self::Gru,
        Self::Lstm,
        Self::Conv,
    ];

    /// The name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Attention => "attention",
            Self::Gru => "gru",
            Self::Lstm => "lstm",
            Self::Conv => "conv",
        }
    }

    /// What it is, in words.
    pub fn label(self) -> &'static str {
        match self {
            Self::Mean => "temporal average pooling",
            Self::Attention => "temporal attention",
            Self::Gru => "GRU, outputs averaged",
            Self::Lstm => "LSTM, outputs averaged",
            Self::Conv => "temporal convolution (depthwise, 3 frames), then the mean",
        }
    }

    /// The aggregator named `name` ([`TemporalKind::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the result ignores the order of the frames.
    pub fn order_invariant(self) -> bool {
        matches!(self, Self::Mean | Self::Attention)
    }
}

/// An aggregator's shape. Saved beside its weights (JSON), like [`crate::ReidNetConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemporalConfig {
    pub kind: TemporalKind,
    /// Width of the per-frame features (the image network's embedding).
    pub d_input: usize,
    /// Width of the recurrent state (GRU, LSTM) or of the attention's hidden layer.
    pub d_hidden: usize,
}

impl TemporalConfig {
    /// `kind` over `d_input`-wide frame features, with a 512-wide state or hidden layer.
    pub fn new(kind: TemporalKind, d_input: usize) -> Self {
        Self {
            kind,
            d_input,
            d_hidden: 512,
        }
    }

    /// Width of the tracklet feature it gives.
    pub fn d_output(&self) -> usize {
        match self.kind {
            TemporalKind::Gru | TemporalKind::Lstm => self.d_hidden,
            _ => self.d_input,
        }
    }

    /// A freshly initialised aggregator (its neck has identity statistics).
    pub fn init(&self, device: &Device) -> TemporalNet {
        let (d, h) = (self.d_input, self.d_hidden);
        let mut net = TemporalNet {
            attention: None,
            gru: None,
            lstm: None,
            conv: None,
            neck: BatchNormConfig::new(self.d_output()).init(device),
        };
        match self.kind {
            TemporalKind::Mean => {}
            TemporalKind::Attention => {
                net.attention = Some(TemporalAttention {
                    hidden: LinearConfig::new(d, h).init(device),
                    score: LinearConfig::new(h, 1).init(device),
                })
            }
            TemporalKind::Gru => net.gru = Some(GruConfig::new(d, h, true).init(device)),
            TemporalKind::Lstm => {
                net.lstm = Some(
                    LstmConfig::new(d, h, true)
                        .with_batch_first(true)
                        .init(device),
                )
            }
            TemporalKind::Conv => {
                net.conv = Some(
                    Conv1dConfig::new(d, d, 3)
                        .with_groups(d)
                        .with_padding(PaddingConfig1d::Explicit(1, 1))
                        .init(device),
                )
            }
        }
        net
    }
}

/// Per-frame scores: `Linear(d, h)`, ReLU, `Linear(h, 1)`.
#[derive(Module, Debug)]
pub struct TemporalAttention {
    pub hidden: Linear,
    pub score: Linear,
}

impl TemporalAttention {
    /// `[batch, T, d] -> [batch, T, 1]`, before the softmax.
    pub fn scores(&self, frames: Tensor<3>) -> Tensor<3> {
        self.score.forward(relu(self.hidden.forward(frames)))
    }
}

/// An aggregator and its neck. Exactly one of the optional parts is set, except for temporal
/// average pooling, which has none.
#[derive(Module, Debug)]
pub struct TemporalNet {
    pub attention: Option<TemporalAttention>,
    pub gru: Option<Gru>,
    pub lstm: Option<burn::nn::Lstm>,
    pub conv: Option<Conv1d>,
    /// BatchNorm between the pooled feature and the embedding.
    pub neck: BatchNorm,
}

/// What a forward pass gives.
#[derive(Debug, Clone)]
pub struct TemporalOutput {
    /// `[batch, d_out]`: the aggregated feature (before the neck; the triplet loss's).
    pub pooled: Tensor<2>,
    /// `[batch, d_out]`: after the neck (the embedding; the classifier's input).
    pub embedding: Tensor<2>,
}

/// Why a tracklet has no embedding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemporalError {
    #[error("a tracklet with no frames has no feature")]
    NoFrames,
    #[error("the frame features are {got} wide, the aggregator takes {want}")]
    Width { got: usize, want: usize },
    #[error("a chunk of {0} frames: it must be 1 to {MAX_CHUNK}")]
    Chunk(usize),
}

/// Frames a chunk of [`TemporalNet::embed_tracklet`] may hold at most.
pub const MAX_CHUNK: usize = 4096;

impl TemporalNet {
    /// Which aggregator this is.
    pub fn kind(&self) -> TemporalKind {
        if self.attention.is_some() {
            TemporalKind::Attention
        } else if self.gru.is_some() {
            TemporalKind::Gru
        } else if self.lstm.is_some() {
            TemporalKind::Lstm
        } else if self.conv.is_some() {
            TemporalKind::Conv
        } else {
            TemporalKind::Mean
        }
    }

    /// `[batch, T, d]` frame features (T >= 1) to the tracklet features.
    pub fn forward(&self, frames: Tensor<3>) -> TemporalOutput {
        let pooled = self.pool(frames);
        TemporalOutput {
            embedding: self.neck.forward(pooled.clone()),
            pooled,
        }
    }

    /// `[batch, T, d] -> [batch, d_out]`, before the neck.
    pub fn pool(&self, frames: Tensor<3>) -> Tensor<2> {
        let [batch, _, d] = frames.dims();
        if let Some(attention) = &self.attention {
            let weights = softmax(attention.scores(frames.clone()), 1);
            return (frames * weights).sum_dim(1).reshape([batch, d]);
        }
        if let Some(gru) = &self.gru {
            let out = gru.forward(frames, None);
            let h = out.dims()[2];
            return out.mean_dim(1).reshape([batch, h]);
        }
        if let Some(lstm) = &self.lstm {
            let (out, _) = lstm.forward(frames, None);
            let h = out.dims()[2];
            return out.mean_dim(1).reshape([batch, h]);
        }
        if let Some(conv) = &self.conv {
            let x = frames.swap_dims(1, 2); // [batch, d, T]
            let y = relu(conv.forward(x.clone())) + x;
            return y.mean_dim(2).reshape([batch, d]);
        }
        frames.mean_dim(1).reshape([batch, d])
    }

    /// One tracklet's embedding `[d_out]` from all of its frame features `[T, d]`, `chunk`
    /// frames at a time (at most [`MAX_CHUNK`]), so the work's memory is bounded by the chunk
    /// however long the tracklet is. The result equals [`TemporalNet::forward`] over the whole
    /// tracklet: the mean sums chunk by chunk, attention takes its softmax over all the scores,
    /// the recurrent networks carry their state from chunk to chunk, and the convolution sees one
    /// frame of each neighbouring chunk.
    pub fn embed_tracklet(
        &self,
        frames: Tensor<2>,
        chunk: usize,
    ) -> Result<Tensor<1>, TemporalError> {
        let [t, d] = frames.dims();
        if t == 0 {
            return Err(TemporalError::NoFrames);
        }
        let want = self.d_input();
        if d != want {
            return Err(TemporalError::Width { got: d, want });
        }
        if chunk == 0 || chunk > MAX_CHUNK {
            return Err(TemporalError::Chunk(chunk));
        }
        let spans: Vec<(usize, usize)> = (0..t)
            .step_by(chunk)
            .map(|s| (s, (s + chunk).min(t)))
            .collect();
        let part = |s: usize, e: usize| frames.clone().slice(s..e).unsqueeze_dim::<3>(0);
        let pooled: Tensor<1> = if let Some(attention) = &self.attention {
            let scores: Vec<Tensor<1>> = spans
                .iter()
                .map(|&(s, e)| attention.scores(part(s, e)).reshape([e - s]))
                .collect();
            let weights = softmax(Tensor::cat(scores, 0), 0);
            sum_tensors(spans.iter().map(|&(s, e)| {
                let w = weights.clone().slice(s..e).reshape([e - s, 1]);
                (frames.clone().slice(s..e) * w).sum_dim(0).reshape([d])
            }))
        } else if let Some(gru) = &self.gru {
            let mut state: Option<Tensor<2>> = None;
            let mut sums = Vec::with_capacity(spans.len());
            for &(s, e) in &spans {
                let out = gru.forward(part(s, e), state.take()); // [1, n, h]
                let h = out.dims()[2];
                state = Some(out.clone().slice([0..1, e - s - 1..e - s]).reshape([1, h]));
                sums.push(out.sum_dim(1).reshape([h]));
            }
            sum_tensors(sums) / t as f32
        } else if let Some(lstm) = &self.lstm {
            let mut state: Option<LstmState<2>> = None;
            let mut sums = Vec::with_capacity(spans.len());
            for &(s, e) in &spans {
                let (out, next) = lstm.forward(part(s, e), state.take());
                let h = out.dims()[2];
                state = Some(next);
                sums.push(out.sum_dim(1).reshape([h]));
            }
            sum_tensors(sums) / t as f32
        } else if let Some(conv) = &self.conv {
            sum_tensors(spans.iter().map(|&(s, e)| {
                // One frame of halo each side: the convolution's zero padding then falls only at
                // the tracklet's true ends, as in one pass over all frames.
                let (hs, he) = (s.saturating_sub(1), (e + 1).min(t));
                let x = frames
                    .clone()
                    .slice(hs..he)
                    .transpose()
                    .unsqueeze_dim::<3>(0); // [1, d, n]
                let y = relu(conv.forward(x.clone())) + x;
                let inner = y.slice([0..1, 0..d, s - hs..s - hs + (e - s)]);
                inner.sum_dim(2).reshape([d])
            })) / t as f32
        } else {
            sum_tensors(
                spans
                    .iter()
                    .map(|&(s, e)| frames.clone().slice(s..e).sum_dim(0).reshape([d])),
            ) / t as f32
        };
        let out = pooled.dims()[0];
        Ok(self.neck.forward(pooled.reshape([1, out])).reshape([out]))
    }

    /// Width of the frame features it takes.
    /// Parameters learned in training: burn's count less the neck's running mean and variance,
    /// which are statistics, not weights.
    pub fn learned_params(&self) -> usize {
        self.num_params() - 2 * self.neck.gamma.dims()[0]
    }

    pub fn d_input(&self) -> usize {
        if let Some(a) = &self.attention {
            a.hidden.weight.dims()[0]
        } else if let Some(g) = &self.gru {
            g.update_gate.input_transform.weight.dims()[0]
        } else if let Some(l) = &self.lstm {
            l.input_gate.input_transform.weight.dims()[0]
        } else {
            // Mean and the depthwise convolution keep the width.
            self.neck.gamma.dims()[0]
        }
    }
}

/// Burnpack metadata key holding an aggregator's [`TemporalConfig`] as JSON.
pub const TEMPORAL_CONFIG_KEY: &str = "reid.temporal";

/// Whether `bytes` are a temporal aggregator's file (not an image network's, nor junk).
pub fn is_aggregator_file(bytes: &[u8]) -> bool {
    crate::weights::burnpack_metadata(bytes).is_ok_and(|m| m.contains_key(TEMPORAL_CONFIG_KEY))
}

/// Serialises an aggregator (f32) with its configuration and `metadata` into burnpack bytes.
pub fn to_burnpack_bytes(
    net: &TemporalNet,
    config: &TemporalConfig,
    metadata: &crate::weights::Metadata,
) -> Result<Vec<u8>, ModelError> {
    crate::weights::module_to_burnpack(
        net,
        BurnpackStore::from_bytes(None),
        TEMPORAL_CONFIG_KEY,
        config,
        metadata,
    )
}

/// Reads an aggregator written by [`to_burnpack_bytes`]: every tensor must be there with its
/// shape, and nothing else. An image network's file is refused by name.
pub fn from_burnpack_bytes(
    bytes: &[u8],
    device: &Device,
) -> Result<(TemporalNet, TemporalConfig, BTreeMap<String, String>), ModelError> {
    let metadata = crate::weights::burnpack_metadata(bytes)?;
    let json = metadata.get(TEMPORAL_CONFIG_KEY).ok_or_else(|| {
        if metadata.contains_key(crate::weights::CONFIG_KEY) {
            ModelError::Weights(
                "this is an image network, not a temporal aggregator (write one with reid temporal)"
                    .into(),
            )
        } else {
            ModelError::Weights(format!(
                "the burnpack file has no `{TEMPORAL_CONFIG_KEY}` entry: it is not a temporal aggregator"
            ))
        }
    })?;
    let config: TemporalConfig = serde_json::from_str(json)
        .map_err(|e| ModelError::Weights(format!("unreadable `{TEMPORAL_CONFIG_KEY}`: {e}")))?;
    let mut net = config.init(device);
    crate::weights::apply_exactly(&mut net, bytes, "aggregator")?;
    Ok((net, config, metadata))
}

fn sum_tensors(parts: impl IntoIterator<Item = Tensor<1>>) -> Tensor<1> {
    parts
        .into_iter()
        .reduce(|a, b| a + b)
        .expect("a tracklet has at least one chunk")
}

#[cfg(test)]
mod tests;
