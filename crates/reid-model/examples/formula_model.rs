//! Writes a model file whose weights come from the parity tests' formula, for the browser's
//! parity tests with networks too large to commit (a ResNet-50 is about 94 MB):
//!
//! ```text
//! cargo run --release -p reid-model --example formula_model -- torchreid resnet50 OUT.bpk
//! ```
//!
//! The tensors named by `tests/fixtures/{torchreid,fastreid}/ARCH.keys.json` get the formula's
//! values (`tests/common/mod.rs`, mirrored in the fixture scripts) and go through the same
//! import as a checkpoint would; the model card says the weights are a formula's.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::ExitCode;

use burn::tensor::Device;
use reid_model::weights::{to_burnpack_bytes, Precision, CARD_KEY};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [peer, arch, out] = &args[..] else {
        eprintln!("usage: formula_model torchreid|fastreid ARCH OUT.bpk");
        return ExitCode::FAILURE;
    };
    match write(peer, arch, Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("formula_model: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(peer: &str, arch: &str, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let tensors = common::formula_tensors(&fixtures.join(peer).join(format!("{arch}.keys.json")));
    let device = Device::flex();
    let imported = match peer {
        "torchreid" => {
            let config = reid_model::torchreid::config_of(arch).ok_or("unknown torchreid arch")?;
            reid_model::torchreid::import_torchreid_tensors(tensors, arch, config, &device)?
        }
        "fastreid" => reid_model::fastreid::import_fastreid_tensors(tensors, arch, &device)?,
        _ => return Err(format!("unknown peer {peer}").into()),
    };
    let card = serde_json::json!({
        "architecture": imported.config,
        "source": {"framework": peer, "arch": arch, "file": format!("{arch}.keys.json")},
        "feature": "the peer's test-time feature, L2-normalised",
        "weights": "f32, from the parity tests' formula (not trained)",
        "training": {"data": "formula weights for parity tests", "for_reid": false},
    });
    let metadata = vec![(CARD_KEY.to_string(), serde_json::to_string(&card)?)];
    let bytes = to_burnpack_bytes(&imported.net, &imported.config, &metadata, Precision::F32)?;
    std::fs::write(out, bytes)?;
    println!("wrote {} ({arch} with formula weights)", out.display());
    Ok(())
}
