//! `reid train`: trains a ReID network from a recipe (`--config FILE`, flags override it) into a
//! run folder, resumable after an interruption with `--resume`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::train::config::{Neck, TrainConfig};
use crate::train::{self, RunOptions};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The recipe (TOML); without it the bag-of-tricks defaults apply (see configs/).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The run's folder: checkpoint, metrics.csv, curve.png, and at the end model.bpk and model.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its saved recipe applies; --epochs may extend it).
    #[arg(long)]
    resume: bool,
    /// Training data: a Market-1501-layout root (bounding_box_train/; also DukeMTMC-reID, CUHK03-NP), an MSMT17 root, or a folder identity/[camera/]*.jpg.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Starting weights (a reid model file, e.g. from `reid import`); `none` starts from random
    /// weights.
    #[arg(long, value_name = "FILE")]
    init: Option<PathBuf>,
    /// The network: mobilenet_v2, mobilenetv2_x1_0 (torchreid's), osnet_x1_0, osnet_x0_75,
    /// osnet_x0_5, osnet_x0_25, osnet_ain_x1_0 .. osnet_ain_x0_25, resnet50, resnet50_ibn_a
    /// (the starting weights must be this
    /// network).
    #[arg(long, value_name = "NAME")]
    backbone: Option<String>,
    /// Stride of a ResNet's last stage (1 or 2).
    #[arg(long, value_name = "N")]
    last_stride: Option<usize>,
    /// Epochs (each shows every identity once).
    #[arg(long)]
    epochs: Option<usize>,
    /// Identities per batch.
    #[arg(long)]
    p: Option<usize>,
    /// Images per identity in a batch.
    #[arg(long)]
    k: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Weight of the identity loss (0: off).
    #[arg(long, value_name = "W")]
    id_loss: Option<f64>,
    /// Weight of the batch-hard triplet loss (0: off).
    #[arg(long, value_name = "W")]
    triplet_loss: Option<f64>,
    /// Weight of the center loss (0: off).
    #[arg(long, value_name = "W")]
    center_loss: Option<f64>,
    /// Weight of the pairwise circle loss (0: off).
    #[arg(long, value_name = "W")]
    circle_loss: Option<f64>,
    /// Weight of the contrastive (verification) loss on pairs (0: off).
    #[arg(long, value_name = "W")]
    contrastive_loss: Option<f64>,
    /// Weight of the attribute head's loss (0: off; needs DATA/attributes.json).
    #[arg(long, value_name = "W")]
    attribute_loss: Option<f64>,
    /// BNNeck between the triplet and the identity loss, or none.
    #[arg(long, value_enum)]
    neck: Option<NeckArg>,
    /// Global pooling: average, or GeM (generalised mean, learned exponent).
    #[arg(long, value_enum)]
    pooling: Option<PoolingArg>,
    /// Input size, HEIGHTxWIDTH (e.g. 128x64 while iterating).
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    size: Option<(usize, usize)>,
    /// Leading backbone stages kept frozen (1: the stem; 1 + n: the stem and n blocks).
    #[arg(long, value_name = "N")]
    freeze: Option<usize>,
    /// Seed of the batches, augmentations and new layers.
    #[arg(long)]
    seed: Option<u64>,
    /// Where to train.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
    /// Stop after this many epochs of this invocation (resume later with --resume).
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NeckArg {
    Bnneck,
    None,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PoolingArg {
    Avg,
    Gem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// burn's `flex` backend on every core.
    Cpu,
    /// burn's wgpu backend (Vulkan; build with `--features wgpu`).
    Wgpu,
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not HEIGHTxWIDTH, e.g. 256x128"))?;
    let number = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}` is not HEIGHTxWIDTH, e.g. 256x128"))
    };
    Ok((number(h)?, number(w)?))
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let mut config = if args.resume {
        if args.config.is_some() {
            anyhow::bail!(
                "--resume continues with the recipe saved in the checkpoint: leave out --config"
            );
        }
        train::checkpoint::read_recipe(&args.out)?.0
    } else if let Some(path) = &args.config {
        TrainConfig::from_file(path)?
    } else {
        TrainConfig::default()
    };
    if args.resume
        && (args.data.is_some()
            || args.init.is_some()
            || args.lr.is_some()
            || args.size.is_some()
            || args.backbone.is_some()
            || args.last_stride.is_some())
    {
        anyhow::bail!("--resume keeps the run's recipe: only --epochs may change it");
    }
    apply_overrides(&mut config, &args);
    let (device, hardware) = device(args.device)?;
    let options = RunOptions {
        out: args.out.clone(),
        device,
        hardware,
        resume: args.resume,
        progress: !args.quiet,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        stop_after: args.stop_after,
    };
    let outcome = train::train(&config, &options)?;
    match outcome.model {
        Some(model) => println!(
            "trained {} epoch{} ({} images, {:.2} h); model: {}",
            outcome.progress.epochs_done,
            if outcome.progress.epochs_done == 1 {
                ""
            } else {
                "s"
            },
            outcome.progress.images_seen,
            outcome.progress.seconds / 3600.0,
            model.display()
        ),
        None => println!(
            "stopped after epoch {} of {}; continue with: reid train --out {} --resume",
            outcome.progress.epochs_done,
            config.epochs,
            args.out.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn apply_overrides(config: &mut TrainConfig, args: &TrainArgs) {
    if let Some(v) = &args.data {
        config.data.root = v.clone();
    }
    if let Some(v) = &args.init {
        config.model.init = if v.as_os_str() == "none" {
            PathBuf::new()
        } else {
            v.clone()
        };
    }
    if let Some(v) = &args.backbone {
        config.model.backbone = v.clone();
    }
    if let Some(v) = args.last_stride {
        config.model.last_stride = v;
    }
    if let Some(v) = args.epochs {
        config.epochs = v;
    }
    if let Some(v) = args.p {
        config.p = v;
    }
    if let Some(v) = args.k {
        config.k = v;
    }
    if let Some(v) = args.lr {
        config.optim.lr = v;
    }
    if let Some(v) = args.id_loss {
        config.loss.id = v;
    }
    if let Some(v) = args.triplet_loss {
        config.loss.triplet = v;
    }
    if let Some(v) = args.center_loss {
        config.loss.center = v;
    }
    if let Some(v) = args.circle_loss {
        config.loss.circle = v;
    }
    if let Some(v) = args.contrastive_loss {
        config.loss.contrastive = v;
    }
    if let Some(v) = args.attribute_loss {
        config.loss.attribute = v;
    }
    if let Some(v) = args.neck {
        config.model.neck = match v {
            NeckArg::Bnneck => Neck::Bnneck,
            NeckArg::None => Neck::None,
        };
    }
    if let Some(v) = args.pooling {
        config.model.pooling = match v {
            PoolingArg::Avg => reid_model::Pooling::Avg,
            PoolingArg::Gem => reid_model::Pooling::Gem,
        };
    }
    if let Some((h, w)) = args.size {
        config.model.height = h;
        config.model.width = w;
    }
    if let Some(v) = args.freeze {
        config.model.freeze = v;
    }
    if let Some(v) = args.seed {
        config.seed = v;
    }
}

pub fn device(which: DeviceArg) -> anyhow::Result<(burn::tensor::Device, String)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    match which {
        DeviceArg::Cpu => Ok((
            burn::tensor::Device::flex().autodiff(),
            format!("CPU with {threads} cores, burn flex backend on every core"),
        )),
        #[cfg(feature = "wgpu")]
        DeviceArg::Wgpu => Ok((
            burn::tensor::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff(),
            "GPU through burn's wgpu backend".to_string(),
        )),
        #[cfg(not(feature = "wgpu"))]
        DeviceArg::Wgpu => anyhow::bail!(
            "this reid was built without wgpu: build it with `cargo build --release -p reid-train --features wgpu`"
        ),
    }
}
