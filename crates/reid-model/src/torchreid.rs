//! Reading torchreid checkpoints (native only, feature `pytorch`).
//!
//! torchreid saves either a plain state dict (`torch.save(model.state_dict())`) or, from its
//! engine, `{'state_dict': ..., 'epoch': ..., 'rank1': ..., 'optimizer': ...}`
//! (`torchreid.utils.save_checkpoint`, file names `model.pth.tar-N`); a model trained under
//! `nn.DataParallel` prefixes every key with `module.`. [`import_torchreid`] accepts all of
//! these (and fast-reid's `{'model': ...}` wrapper), maps the keys onto our network with one
//! table per architecture, and says what it left out: the training classifier, BatchNorm's
//! step counters, anything else outside the network.
//!
//! The feature is the one torchreid evaluates with: for OSNet and `resnet50_fc512`, the output
//! of the `fc` embedding layer (Linear, BatchNorm1d, ReLU); for `resnet50`, `resnet50_ibn_a` and
//! `mobilenetv2_x1_0`, the pooled map. Our BNNeck after it keeps identity statistics, so
//! the embedding is that feature, L2-normalised.

use std::path::Path;

use burn::tensor::{Bytes, DType, Device};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::pytorch_reader::{PickleValue, PytorchReader};
use burn_store::{bridge, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter};

use crate::backbone::{mobilenet_v2, osnet, resnet, ResNetConfig};
use crate::head::FcEmbed;
use crate::network::BackboneKind;
use crate::{ModelError, ReidNet, ReidNetConfig};

/// A network read from a torchreid checkpoint, and what the reading found.
#[derive(Debug)]
pub struct Imported {
    /// The network, BNNeck with identity statistics.
    pub net: ReidNet,
    /// Its configuration (torchreid's preprocessing: 256x128, RGB, 0-1, ImageNet mean and std).
    pub config: ReidNetConfig,
    /// How the file wraps the state dict, in words.
    pub wrapper: String,
    /// Tensors of the file the network does not use, by our name for them.
    pub ignored: Vec<String>,
    /// Identities of the training classifier, when the file has one.
    pub classes: Option<usize>,
    /// The checkpoint's `epoch` entry, when it has one.
    pub epoch: Option<i64>,
}

/// The torchreid architectures we read, by torchreid's name.
pub const ARCHITECTURES: [&str; 8] = [
    "osnet_x1_0",
    "osnet_x0_75",
    "osnet_x0_5",
    "osnet_x0_25",
    "resnet50",
    "resnet50_fc512",
    "resnet50_ibn_a",
    "mobilenetv2_x1_0",
];

/// Our configuration of torchreid's architecture `name`, or `None` if we do not have it.
pub fn config_of(name: &str) -> Option<ReidNetConfig> {
    let resnet = |last_stride, ibn_a, fc| ReidNetConfig {
        backbone: BackboneKind::ResNet(ResNetConfig::resnet50(last_stride, ibn_a)),
        fc,
        ..ReidNetConfig::default()
    };
    match name {
        "resnet50" => return Some(resnet(2, false, None)),
        "resnet50_fc512" => return Some(resnet(1, false, Some(512))),
        "resnet50_ibn_a" => return Some(resnet(2, true, None)),
        "mobilenetv2_x1_0" => {
            return Some(ReidNetConfig {
                backbone: BackboneKind::MobileNetV2Torchreid,
                ..ReidNetConfig::default()
            })
        }
        _ => {}
    }
    let width = [
        osnet::OsNetWidth::X1_0,
        osnet::OsNetWidth::X0_75,
        osnet::OsNetWidth::X0_5,
        osnet::OsNetWidth::X0_25,
    ]
    .into_iter()
    .find(|w| w.torchreid_name() == name)?;
    Some(ReidNetConfig {
        backbone: BackboneKind::osnet(width),
        fc: Some(512),
        ..ReidNetConfig::default()
    })
}

/// Reads torchreid's architecture `arch` (one of [`ARCHITECTURES`]) from the checkpoint at
/// `path`. Every tensor of the network must be in the file with its shape; otherwise the error
/// names the first one that is not.
pub fn import_torchreid(path: &Path, arch: &str, device: &Device) -> Result<Imported, ModelError> {
    let config = config_of(arch).ok_or_else(|| {
        ModelError::Weights(format!(
            "torchreid architecture `{arch}` is not supported; supported: {}",
            ARCHITECTURES.join(", ")
        ))
    })?;
    import_torchreid_as(path, arch, config, device)
}

/// [`import_torchreid`] into the network `config` describes (`arch` names it in messages).
fn import_torchreid_as(
    path: &Path,
    arch: &str,
    config: ReidNetConfig,
    device: &Device,
) -> Result<Imported, ModelError> {
    let at = |e: &dyn std::fmt::Display| ModelError::Weights(format!("{}: {e}", path.display()));
    let reader = PytorchReader::new(path).map_err(|e| {
        at(&format!(
            "not a readable PyTorch checkpoint ({e}); a file saved with torch.save(model.state_dict()) or torchreid's save_checkpoint is expected"
        ))
    })?;
    let keys = reader.keys();
    if keys.is_empty() {
        return Err(at(&"the checkpoint holds no tensors"));
    }
    let (top, mut wrapper) = if keys.iter().any(|k| k.starts_with("state_dict.")) {
        (
            Some("state_dict"),
            "torchreid checkpoint ({'state_dict': ...})".to_string(),
        )
    } else if keys.iter().any(|k| k.starts_with("model.")) {
        (
            Some("model"),
            "checkpoint with a {'model': ...} wrapper".to_string(),
        )
    } else {
        (None, "plain state dict".to_string())
    };
    let inner: Vec<&str> = keys
        .iter()
        .filter_map(|k| match top {
            Some(top) => k.strip_prefix(top).and_then(|k| k.strip_prefix('.')),
            None => Some(k.as_str()),
        })
        .collect();
    let data_parallel = inner.iter().all(|k| k.starts_with("module."));
    if data_parallel {
        wrapper.push_str(", `module.` prefixes (DataParallel)");
    }
    let classes = reader
        .get(&full_key(top, data_parallel, "classifier.weight"))
        .map(|t| t.shape()[0]);
    let epoch = match top {
        Some(_) => match PytorchReader::read_pickle_data(path, None) {
            Ok(PickleValue::Dict(root)) => match root.get("epoch") {
                Some(PickleValue::Int(epoch)) => Some(*epoch),
                _ => None,
            },
            _ => None,
        },
        None => None,
    };
    // The tensors under the wrapper, named as the state dict names them (read lazily: only
    // those the network takes are ever read from the file).
    let tensors: Vec<PackTensor> = reader
        .into_tensors()
        .into_iter()
        .filter_map(|(key, tensor)| {
            let inner = match top {
                Some(top) => key.strip_prefix(top)?.strip_prefix('.')?.to_string(),
                None => key,
            };
            let mut tensor = bridge::from_pytorch(tensor);
            tensor.name = inner;
            Some(tensor)
        })
        .collect();
    let (net, ignored) = load(tensors, data_parallel, arch, &config, device).map_err(|e| at(&e))?;
    Ok(Imported {
        net,
        config,
        wrapper,
        ignored,
        classes,
        epoch,
    })
}

/// [`import_torchreid`] from named f32 tensors as a torchreid state dict holds them
/// (`(key, shape, values)`, no wrapper, no `module.` prefix) instead of a file: weights made by a
/// formula on both sides of a parity test go through the same key table and checks as a
/// checkpoint's.
pub fn import_torchreid_tensors(
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    arch: &str,
    config: ReidNetConfig,
    device: &Device,
) -> Result<Imported, ModelError> {
    let classes = tensors
        .iter()
        .find(|(key, _, _)| key == "classifier.weight")
        .map(|(_, shape, _)| shape[0]);
    let tensors = tensors
        .into_iter()
        .map(|(key, shape, values)| {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            PackTensor::new(key, DType::F32, shape, None, Bytes::from_bytes_vec(bytes))
        })
        .collect();
    let (net, ignored) =
        load(tensors, false, arch, &config, device).map_err(ModelError::Weights)?;
    Ok(Imported {
        net,
        config,
        wrapper: "tensors in memory".to_string(),
        ignored,
        classes,
        epoch: None,
    })
}

/// Maps torchreid's keys onto the network of `config` and loads them: the network and the
/// tensors it did not use. Every tensor of the network (but the BNNeck) must be there with its
/// shape.
fn load(
    tensors: Vec<PackTensor>,
    data_parallel: bool,
    arch: &str,
    config: &ReidNetConfig,
    device: &Device,
) -> Result<(ReidNet, Vec<String>), String> {
    let backbone_map = match config.backbone {
        BackboneKind::ResNet(_) => resnet::torchreid_key_map("backbone."),
        BackboneKind::MobileNetV2Torchreid => mobilenet_v2::torchreid_key_map("backbone."),
        BackboneKind::MobileNetV2 => {
            return Err(
                "torchvision's MobileNetV2 is not a torchreid network: import it with --from torchvision"
                    .into(),
            );
        }
        _ => osnet::torchreid_key_map("backbone."),
    };
    let mut patterns: Vec<(String, String)> = Vec::new();
    if data_parallel {
        patterns.push((r"^module\.".into(), String::new()));
    }
    patterns.extend(backbone_map);
    patterns.extend(FcEmbed::torchreid_key_map("fc."));
    let remapper = KeyRemapper::from_patterns(patterns).map_err(|e| e.to_string())?;
    let (tensors, _) = remapper.remap(tensors);
    let mut net = config.init(device);
    let result = net.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(error) = result.errors.first() {
        return Err(format!(
            "not a torchreid {arch} checkpoint: {error}{}",
            more(result.errors.len())
        ));
    }
    let missing: Vec<&str> = result
        .missing
        .iter()
        .map(|(path, _)| path.as_str())
        .filter(|p| !p.starts_with("neck."))
        .collect();
    if let Some(first) = missing.first() {
        let unused: Vec<&String> = result
            .unused
            .iter()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .take(3)
            .collect();
        return Err(format!(
            "not a torchreid {arch} checkpoint: {} of the network's tensors are missing, the first is `{first}`; the file's unused tensors include {unused:?}",
            missing.len()
        ));
    }
    Ok((net, result.unused))
}

fn full_key(top: Option<&str>, data_parallel: bool, key: &str) -> String {
    let module = if data_parallel { "module." } else { "" };
    match top {
        Some(top) => format!("{top}.{module}{key}"),
        None => format!("{module}{key}"),
    }
}

fn more(count: usize) -> String {
    if count > 1 {
        format!(" (and {} more)", count - 1)
    } else {
        String::new()
    }
}

/// A short account of the tensors an import left out, for people.
pub fn describe_ignored(ignored: &[String]) -> String {
    let counters = ignored
        .iter()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .count();
    let mut parts: Vec<String> = ignored
        .iter()
        .filter(|k| !k.ends_with("num_batches_tracked"))
        .take(6)
        .cloned()
        .collect();
    let others = ignored.len() - counters - parts.len();
    if others > 0 {
        parts.push(format!("{others} more"));
    }
    if counters > 0 {
        parts.push(format!("{counters} BatchNorm step counters"));
    }
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(", ")
    }
}
