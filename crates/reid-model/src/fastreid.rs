//! Reading fast-reid checkpoints (native only, feature `pytorch`).
//!
//! fast-reid's `Baseline` is a ResNet backbone (`backbone.*`) and an `EmbeddingHead`
//! (`heads.*`): global pooling (`pool_layer`), a BNNeck (`bottleneck.0`, a BatchNorm whose bias
//! is frozen) and the training classifier (`weight`). Its Checkpointer saves
//! `{'model': state_dict, 'optimizer': ..., 'scheduler': ..., 'epoch': ...}` (`model_final.pth`,
//! `model_best.pth`); [`crate::checkpoint`] unwraps it.
//!
//! The architectures are fast-reid's Market-1501 configurations over ResNet-50 (`configs/
//! Market1501/*.yml`), by their file names:
//! - `bagtricks_R50`: average pooling (Luo et al.'s "bag of tricks");
//! - `AGW_R50`: non-local blocks and GeM pooling with a fixed exponent of 3 (Ye et al.);
//! - `sbs_R50`: non-local blocks and GeM with a learned exponent, trained and tested at 384x128
//!   ("stronger baseline");
//! - each with `-ibn` for the IBN-a backbone.
//!
//! The feature is fast-reid's at evaluation: the BNNeck's output (`EmbeddingHead.forward` when
//! not training), here L2-normalised as fast-reid's evaluator does for cosine distances. The
//! preprocessing is fast-reid's: resized with Pillow's bicubic filter (its test transform,
//! `T.Resize(SIZE_TEST, interpolation=3)`), RGB in 0-255 minus `MODEL.PIXEL_MEAN`, over `PIXEL_STD`
//! (ImageNet's statistics times 255); a file that stores `pixel_mean` / `pixel_std` (older
//! fast-reid kept them in the state dict) brings its own.

use std::path::Path;

use burn::tensor::Device;
use burn_store::bridge;

use crate::backbone::{resnet, ResNetConfig};
use crate::checkpoint::{at, load_mapped, read_state_dict, Imported, Mapping, StateDict};
use crate::network::BackboneKind;
use crate::preprocess::{ChannelOrder, Interpolation, PixelRange};
use crate::{InputSpec, ModelError, Pooling, ReidNetConfig};

/// The fast-reid configurations we read, by the name of their file in `configs/Market1501/`.
pub const ARCHITECTURES: [&str; 6] = [
    "bagtricks_R50",
    "bagtricks_R50-ibn",
    "AGW_R50",
    "AGW_R50-ibn",
    "sbs_R50",
    "sbs_R50-ibn",
];

/// How a fast-reid configuration pools the feature map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    /// `GlobalAvgPool`.
    Avg,
    /// `GeneralizedMeanPooling`: exponent 3, not a parameter.
    GemFixed,
    /// `GeneralizedMeanPoolingP`: a learned exponent (`heads.pool_layer.p`).
    GemLearned,
}

fn preset(arch: &str) -> Option<(ReidNetConfig, Pool)> {
    let (method, ibn) = match arch.strip_suffix("-ibn") {
        Some(method) => (method, true),
        None => (arch, false),
    };
    let (non_local, pool, height) = match method {
        "bagtricks_R50" => (false, Pool::Avg, 256),
        "AGW_R50" => (true, Pool::GemFixed, 256),
        "sbs_R50" => (true, Pool::GemLearned, 384),
        _ => return None,
    };
    let config = ReidNetConfig {
        backbone: BackboneKind::ResNet(ResNetConfig::fastreid_resnet50(ibn, non_local)),
        pooling: if pool == Pool::Avg {
            Pooling::Avg
        } else {
            Pooling::Gem
        },
        fc: None,
        input: InputSpec {
            height,
            width: 128,
            channels: ChannelOrder::Rgb,
            range: PixelRange::Byte,
            interpolation: Interpolation::Bicubic,
            mean: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
            std: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
        },
    };
    Some((config, pool))
}

/// Our configuration of fast-reid's configuration `arch` (before the file is read), or `None`
/// if we do not have it.
pub fn config_of(arch: &str) -> Option<ReidNetConfig> {
    preset(arch).map(|(config, _)| config)
}

/// Reads fast-reid's configuration `arch` (one of [`ARCHITECTURES`]) from the checkpoint at
/// `path`. Every tensor of the network must be in the file with its shape and every tensor of
/// the file but the classifier must be used; otherwise the error names the first offender.
pub fn import_fastreid(path: &Path, arch: &str, device: &Device) -> Result<Imported, ModelError> {
    let dict = read_state_dict(
        path,
        "fast-reid's Checkpointer (model_final.pth) or torch.save(model.state_dict())",
    )?;
    import(dict, arch, device).map_err(|e| at(path, &e))
}

/// [`import_fastreid`] from named f32 tensors as fast-reid's state dict holds them
/// (`(key, shape, values)`), for parity tests whose weights come from a formula.
pub fn import_fastreid_tensors(
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    arch: &str,
    device: &Device,
) -> Result<Imported, ModelError> {
    import(StateDict::from_memory(tensors), arch, device).map_err(ModelError::Weights)
}

fn import(dict: StateDict, arch: &str, device: &Device) -> Result<Imported, String> {
    let (mut config, pool) = preset(arch).ok_or_else(|| {
        format!(
            "fast-reid architecture `{arch}` is not supported; supported: {}",
            ARCHITECTURES.join(", ")
        )
    })?;
    if let Some(shape) = dict.shape("heads.bottleneck.0.weight") {
        if shape.len() == 4 {
            return Err(format!(
                "this fast-reid model has an embedding layer (MODEL.HEADS.EMBEDDING_DIM = {}) before its BNNeck, which we do not read yet",
                shape[0]
            ));
        }
    }
    if let Some(mean) = stored_vector(&dict, "pixel_mean")? {
        config.input.mean = mean;
    }
    if let Some(std) = stored_vector(&dict, "pixel_std")? {
        config.input.std = std;
    }
    let classes = dict
        .shape("heads.weight")
        .or_else(|| dict.shape("heads.classifier.weight"))
        .map(|shape| shape[0]);
    let wrapper = dict.wrapper.clone();
    // fast-reid counts epochs from 0; the file of epoch N holds N + 1 epochs of training.
    let epoch = dict.epoch.map(|e| e + 1);
    let mut patterns = resnet::fastreid_key_map("backbone.");
    patterns.push((r"^heads\.pool_layer\.p$".into(), "gem.p".into()));
    patterns.push((r"^heads\.bottleneck\.0\.".into(), "neck.bn.".into()));
    let (net, mut ignored) = load_mapped(
        dict,
        &config,
        Mapping {
            what: &format!("fast-reid {arch}"),
            patterns,
            // A fixed exponent is not in the file: ours keeps its initial 3.
            optional: &|path| pool == Pool::GemFixed && path.starts_with("gem."),
            ignorable: &|key| {
                key == "heads.weight"
                    || key.starts_with("heads.classifier.")
                    || key == "pixel_mean"
                    || key == "pixel_std"
                    || key.ends_with("num_batches_tracked")
            },
        },
        device,
    )?;
    // The stored normalisation went into the model card, not out of the model.
    ignored.retain(|key| key != "pixel_mean" && key != "pixel_std");
    Ok(Imported {
        net,
        config,
        wrapper,
        ignored,
        classes,
        epoch,
    })
}

/// A 3-value buffer such as `pixel_mean` (`[1, 3, 1, 1]`), when the state dict has it.
fn stored_vector(dict: &StateDict, key: &str) -> Result<Option<[f32; 3]>, String> {
    let Some(tensor) = dict.get(key) else {
        return Ok(None);
    };
    let values: Vec<f32> = bridge::to_data(tensor)
        .map_err(|e| format!("`{key}` cannot be read: {e}"))?
        .convert::<f32>()
        .try_to_vec()
        .map_err(|e| format!("`{key}` cannot be read: {e:?}"))?;
    match values[..] {
        [a, b, c] => Ok(Some([a, b, c])),
        _ => Err(format!(
            "`{key}` holds {} values; the three channels' are expected",
            values.len()
        )),
    }
}
