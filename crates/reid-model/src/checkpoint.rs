//! Reading the peers' PyTorch checkpoints (native only, feature `pytorch`): what torchreid and
//! fast-reid share. Either saves a plain state dict (`torch.save(model.state_dict())`) or a dict
//! that wraps it: torchreid's engine `{'state_dict': ..., 'epoch': ..., 'optimizer': ...}`,
//! fast-reid's Checkpointer `{'model': ..., 'optimizer': ..., 'scheduler': ..., 'epoch': ...}`;
//! a model trained under `nn.DataParallel` prefixes every key with `module.`.
//!
//! [`read_state_dict`] unwraps any of these; [`load_mapped`] renames the keys with one
//! architecture's table, loads the network and refuses a file whose tensors are missing,
//! misshaped or left over (a file of another architecture), naming the first offender.

use std::path::Path;

use burn::tensor::{Bytes, DType, Device};
use burn_store::burn_pack::Tensor as PackTensor;
use burn_store::pytorch_reader::{PickleValue, PytorchReader};
use burn_store::{bridge, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter};

use crate::{ModelError, ReidNet, ReidNetConfig};

/// A network read from a peer's checkpoint, and what the reading found.
#[derive(Debug)]
pub struct Imported {
    /// The network.
    pub net: ReidNet,
    /// Its configuration, the peer's preprocessing included.
    pub config: ReidNetConfig,
    /// How the file wraps the state dict, in words.
    pub wrapper: String,
    /// Tensors of the file the network does not use, by the state dict's name for them
    /// (without `module.`).
    pub ignored: Vec<String>,
    /// Identities of the training classifier, when the file has one.
    pub classes: Option<usize>,
    /// The checkpoint's `epoch` entry, when it has one.
    pub epoch: Option<i64>,
}

/// A state dict taken out of its wrapper.
pub(crate) struct StateDict {
    /// The tensors, named as the state dict names them (`module.` prefixes kept), read lazily.
    pub tensors: Vec<PackTensor>,
    /// How the file wraps them, in words.
    pub wrapper: String,
    /// Whether every key starts with `module.`.
    pub data_parallel: bool,
    /// The wrapper's `epoch` entry.
    pub epoch: Option<i64>,
}

impl StateDict {
    /// The tensor the state dict names `key` (without `module.`).
    pub fn get(&self, key: &str) -> Option<&PackTensor> {
        let module = if self.data_parallel { "module." } else { "" };
        let full = format!("{module}{key}");
        self.tensors.iter().find(|t| t.name == full)
    }

    /// The shape of the tensor the state dict names `key` (without `module.`).
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.get(key).map(|t| t.shape.as_slice())
    }

    /// Named f32 tensors held in memory (`(key, shape, values)`), as a plain state dict holds
    /// them: weights made by a formula on both sides of a parity test go through the same key
    /// table and checks as a file's.
    pub fn from_memory(tensors: Vec<(String, Vec<usize>, Vec<f32>)>) -> Self {
        let tensors = tensors
            .into_iter()
            .map(|(key, shape, values)| {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                PackTensor::new(key, DType::F32, shape, None, Bytes::from_bytes_vec(bytes))
            })
            .collect();
        Self {
            tensors,
            wrapper: "tensors in memory".to_string(),
            data_parallel: false,
            epoch: None,
        }
    }
}

/// Reads the checkpoint at `path` and takes the state dict out of its wrapper. `saved_by`
/// says in the refusal how such a file is made.
pub(crate) fn read_state_dict(path: &Path, saved_by: &str) -> Result<StateDict, ModelError> {
    let reader = PytorchReader::new(path).map_err(|e| {
        at(
            path,
            &format!(
                "not a readable PyTorch checkpoint ({e}); a file saved with {saved_by} is expected"
            ),
        )
    })?;
    let keys = reader.keys();
    if keys.is_empty() {
        return Err(at(path, &"the checkpoint holds no tensors"));
    }
    let (top, mut wrapper) = if keys.iter().any(|k| k.starts_with("state_dict.")) {
        (
            Some("state_dict"),
            "checkpoint with a {'state_dict': ...} wrapper".to_string(),
        )
    } else if keys.iter().any(|k| k.starts_with("model.")) {
        (
            Some("model"),
            "checkpoint with a {'model': ...} wrapper".to_string(),
        )
    } else {
        (None, "plain state dict".to_string())
    };
    let inner = |key: String| -> Option<String> {
        match top {
            Some(top) => Some(key.strip_prefix(top)?.strip_prefix('.')?.to_string()),
            None => Some(key),
        }
    };
    let data_parallel = keys
        .iter()
        .filter_map(|k| inner(k.clone()))
        .all(|k| k.starts_with("module."));
    if data_parallel {
        wrapper.push_str(", `module.` prefixes (DataParallel)");
    }
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
    let tensors = reader
        .into_tensors()
        .into_iter()
        .filter_map(|(key, tensor)| {
            let name = inner(key)?;
            let mut tensor = bridge::from_pytorch(tensor);
            tensor.name = name;
            Some(tensor)
        })
        .collect();
    Ok(StateDict {
        tensors,
        wrapper,
        data_parallel,
        epoch,
    })
}

/// The error for the file at `path`.
pub(crate) fn at(path: &Path, e: &dyn std::fmt::Display) -> ModelError {
    ModelError::Weights(format!("{}: {e}", path.display()))
}

/// What a key table needs to know about a state dict's leftovers.
pub(crate) struct Mapping<'a> {
    /// The peer and architecture, for messages (`"torchreid osnet_x0_25"`).
    pub what: &'a str,
    /// Regex pairs from the state dict's keys (without `module.`) to our parameter paths,
    /// applied in order.
    pub patterns: Vec<(String, String)>,
    /// Paths of our network the file need not have (they keep their initial values).
    pub optional: &'a dyn Fn(&str) -> bool,
    /// Keys of the file the network may leave out (training-only tensors).
    pub ignorable: &'a dyn Fn(&str) -> bool,
}

/// Builds the network of `config` and loads `dict` into it through `mapping`: the network and
/// the tensors it did not use. Every tensor of the network but the optional ones must be there
/// with its shape, and every tensor of the file but the ignorable ones must be used.
pub(crate) fn load_mapped(
    dict: StateDict,
    config: &ReidNetConfig,
    mapping: Mapping<'_>,
    device: &Device,
) -> Result<(ReidNet, Vec<String>), String> {
    let what = mapping.what;
    let mut patterns: Vec<(String, String)> = Vec::new();
    if dict.data_parallel {
        patterns.push((r"^module\.".into(), String::new()));
    }
    patterns.extend(mapping.patterns);
    let remapper = KeyRemapper::from_patterns(patterns).map_err(|e| e.to_string())?;
    // Leftovers are named as the file names them.
    let (tensors, renames) = remapper.remap(dict.tensors);
    let originals: std::collections::HashMap<&str, &str> = renames
        .iter()
        .map(|(new, old)| (new.as_str(), old.as_str()))
        .collect();
    let original_of =
        |ours: &str| -> String { originals.get(ours).copied().unwrap_or(ours).to_string() };
    let mut net = config.init(device);
    let result = net.apply(tensors, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    if let Some(error) = result.errors.first() {
        return Err(format!(
            "not a {what} checkpoint: {error}{}",
            more(result.errors.len())
        ));
    }
    let unused: Vec<String> = result
        .unused
        .iter()
        .map(|k| strip_module(&original_of(k)).to_string())
        .collect();
    let missing: Vec<&str> = result
        .missing
        .iter()
        .map(|(path, _)| path.as_str())
        .filter(|p| !(mapping.optional)(p))
        .collect();
    let strays: Vec<&String> = unused.iter().filter(|k| !(mapping.ignorable)(k)).collect();
    if let Some(first) = missing.first() {
        return Err(format!(
            "not a {what} checkpoint: {} of the network's tensors are missing, the first is `{first}`; the file's unused tensors include {:?}",
            missing.len(),
            strays.iter().take(3).collect::<Vec<_>>()
        ));
    }
    if let Some(first) = strays.first() {
        return Err(format!(
            "not a {what} checkpoint: the file has {} tensors this network does not have, the first is `{first}` (a checkpoint of another architecture?)",
            strays.len()
        ));
    }
    Ok((net, unused))
}

fn strip_module(key: &str) -> &str {
    key.strip_prefix("module.").unwrap_or(key)
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
