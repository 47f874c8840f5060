//! An embedding layer after pooling: Linear, BatchNorm1d, ReLU (torchreid's `fc` built from
//! `fc_dims`, which OSNet uses with one 512-wide layer). Its output is the feature torchreid
//! evaluates with.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// Linear + BatchNorm1d + ReLU.
#[derive(Module, Debug)]
pub struct FcEmbed {
    /// `[in, out]` with bias (torchreid: `fc.0`).
    pub linear: Linear,
    /// Over the `out` features (torchreid: `fc.1`).
    pub bn: BatchNorm,
}

impl FcEmbed {
    /// A fresh layer from `inputs` to `outputs` features.
    pub fn new(inputs: usize, outputs: usize, device: &Device) -> Self {
        Self {
            linear: LinearConfig::new(inputs, outputs).init(device),
            bn: BatchNormConfig::new(outputs).init(device),
        }
    }

    /// `[batch, inputs] -> [batch, outputs]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        relu(self.bn.forward(self.linear.forward(x)))
    }

    /// Width of the output.
    pub fn out_features(&self) -> usize {
        self.bn.gamma.dims()[0]
    }

    /// Key remapping from torchreid's `fc.0` / `fc.1` to ours under `prefix`.
    pub fn torchreid_key_map(prefix: &str) -> Vec<(String, String)> {
        vec![
            (r"^fc\.0\.".to_string(), format!("{prefix}linear.")),
            (r"^fc\.1\.".to_string(), format!("{prefix}bn.")),
        ]
    }
}
