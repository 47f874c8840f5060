//! `reid-model` owns every network of the product, written once with burn's `Module` and run
//! unchanged natively (training, evaluation) and in the browser (WebGPU or the `flex` CPU
//! backend): backbones, heads, the assembled ReID network, the temporal aggregators of video ReID
//! (`temporal`: pooling, attention, GRU, LSTM, temporal convolution over frame features), the
//! image preprocessing both homes share, loading/saving weights (burnpack, PyTorch
//! checkpoints), the training losses, and the split of a pair's similarity over image regions
//! (`explain`).
//!
//! It does not own the end-to-end job (that is `reid-pipeline`) nor any UI. Model code carries
//! no backend type: the `Device` passed to `init` decides where it runs.

pub mod backbone;
pub mod baseline;
#[cfg(feature = "pytorch")]
pub mod checkpoint;
pub mod cpu;
pub mod detect;
pub mod error;
pub mod explain;
#[cfg(feature = "pytorch")]
pub mod fastreid;
pub mod head;
pub mod loss;
pub mod network;
pub mod preprocess;
pub mod temporal;
#[cfg(feature = "pytorch")]
pub mod torchreid;
pub mod weights;

pub use error::ModelError;
pub use network::{Pooling, ReidNet, ReidNetConfig, ReidOutput};
pub use preprocess::{
    decode_image, preprocess, resize_bilinear_pil, resize_pil, InputSpec, Interpolation, RgbImage,
};
