//! Reading torchreid checkpoints (native only, feature `pytorch`).
//!
//! torchreid saves either a plain state dict (`torch.save(model.state_dict())`) or, from its
//! engine, `{'state_dict': ..., 'epoch': ..., 'rank1': ..., 'optimizer': ...}`
//! (`torchreid.utils.save_checkpoint`, file names `model.pth.tar-N`); a model trained under
//! `nn.DataParallel` prefixes every key with `module.`. [`import_torchreid`] accepts all of
//! these ([`crate::checkpoint`]), maps the keys onto our network with one table per
//! architecture, and says what it left out: the training classifier and BatchNorm's step
//! counters. Any other tensor the network does not have is refused (another architecture).
//!
//! The feature is the one torchreid evaluates with: for OSNet, OSNet-AIN and `resnet50_fc512`, the output
//! of the `fc` embedding layer (Linear, BatchNorm1d, ReLU); for `resnet50`, `resnet50_ibn_a` and
//! `mobilenetv2_x1_0`, the pooled map. Our BNNeck after it keeps identity statistics, so
//! the embedding is that feature, L2-normalised.

use std::path::Path;

use burn::tensor::Device;

use crate::backbone::{mobilenet_v2, osnet, resnet, ResNetConfig};
use crate::checkpoint::{at, load_mapped, read_state_dict, Imported, Mapping, StateDict};
use crate::head::FcEmbed;
use crate::network::BackboneKind;
use crate::{ModelError, ReidNetConfig};

/// The torchreid architectures we read, by torchreid's name.
pub const ARCHITECTURES: [&str; 12] = [
    "osnet_x1_0",
    "osnet_x0_75",
    "osnet_x0_5",
    "osnet_x0_25",
    "osnet_ain_x1_0",
    "osnet_ain_x0_75",
    "osnet_ain_x0_5",
    "osnet_ain_x0_25",
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
    let (plain, ain) = match name.strip_prefix("osnet_ain_") {
        Some(width) => (format!("osnet_{width}"), true),
        None => (name.to_string(), false),
    };
    let width = [
        osnet::OsNetWidth::X1_0,
        osnet::OsNetWidth::X0_75,
        osnet::OsNetWidth::X0_5,
        osnet::OsNetWidth::X0_25,
    ]
    .into_iter()
    .find(|w| w.torchreid_name() == plain)?;
    Some(ReidNetConfig {
        backbone: if ain {
            BackboneKind::osnet_ain(width)
        } else {
            BackboneKind::osnet(width)
        },
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
    let dict = read_state_dict(
        path,
        "torch.save(model.state_dict()) or torchreid's save_checkpoint",
    )?;
    import(dict, arch, config, device).map_err(|e| at(path, &e))
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
    import(StateDict::from_memory(tensors), arch, config, device).map_err(ModelError::Weights)
}

/// Maps torchreid's keys onto the network of `config` and loads them. Every tensor of the
/// network but the BNNeck (which keeps identity statistics) must be there with its shape.
fn import(
    dict: StateDict,
    arch: &str,
    config: ReidNetConfig,
    device: &Device,
) -> Result<Imported, String> {
    let mut patterns = match config.backbone {
        BackboneKind::ResNet(_) => resnet::torchreid_key_map("backbone."),
        BackboneKind::MobileNetV2Torchreid => mobilenet_v2::torchreid_key_map("backbone."),
        BackboneKind::MobileNetV2 => {
            return Err(
                "torchvision's MobileNetV2 is not a torchreid network: import it with --from torchvision"
                    .into(),
            );
        }
        kind if kind.is_osnet_ain() => osnet::torchreid_ain_key_map("backbone."),
        _ => osnet::torchreid_key_map("backbone."),
    };
    patterns.extend(FcEmbed::torchreid_key_map("fc."));
    let classes = dict.shape("classifier.weight").map(|shape| shape[0]);
    let wrapper = dict.wrapper.clone();
    let epoch = dict.epoch;
    let (net, ignored) = load_mapped(
        dict,
        &config,
        Mapping {
            what: &format!("torchreid {arch}"),
            patterns,
            optional: &|path| path.starts_with("neck."),
            ignorable: &|key| {
                key.starts_with("classifier.") || key.ends_with("num_batches_tracked")
            },
        },
        device,
    )?;
    Ok(Imported {
        net,
        config,
        wrapper,
        ignored,
        classes,
        epoch,
    })
}
