//! `reid export`: turns a finished training run into the file the browser and `reid` load: the
//! network (f16 convolutions, f32 BatchNorm) with its model card in the burnpack metadata
//! (architecture, input, training data and recipe, epochs, images seen, wall-clock time,
//! hardware, the training command, and metrics measured now on the datasets named with `--eval`,
//! each with the command that reproduces it), and the same card as JSON beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::train::{checkpoint, CARD_KEY};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A finished `reid train` run folder (holding model.bpk, model.json and checkpoint/).
    run: PathBuf,
    /// The model file to write; its card goes to the same name with `.json`.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Measure and record Rank-k/mAP/mINP on a Market-1501 root: NAME=DIR (repeatable).
    #[arg(long, value_name = "NAME=DIR")]
    eval: Vec<String>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let model_path = args.run.join("model.bpk");
    let card_path = args.run.join("model.json");
    if !model_path.is_file() || !card_path.is_file() {
        bail!(
            "{}: not a finished training run (model.bpk and model.json are written after the last epoch; resume it with `reid train --out {} --resume`)",
            args.run.display(),
            args.run.display()
        );
    }
    let bytes = super::read_model(&model_path)?;
    let (config, metadata) = reid_model::weights::read_burnpack_metadata(&bytes)?;
    if !metadata.contains_key(CARD_KEY) {
        bail!("{}: the file carries no model card", model_path.display());
    }
    let mut card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&card_path)
            .with_context(|| format!("cannot read {}", card_path.display()))?,
    )
    .with_context(|| format!("{}: damaged model card", card_path.display()))?;
    // The recipe as the run saved it (TOML), so the card's numbers are the ones written.
    let (recipe, progress) = checkpoint::read_recipe(&args.run)?;
    card["training"]["recipe"] = serde_json::to_value(&recipe)?;
    card["training"]["epochs"] = progress.epochs_done.into();
    let mut metrics = Vec::new();
    for spec in &args.eval {
        let (name, root) = spec
            .split_once('=')
            .with_context(|| format!("--eval {spec}: expected NAME=DIR"))?;
        let root = Path::new(root);
        eprintln!("measuring on {name} ({})", root.display());
        let m = super::eval::dataset_metrics(root, &model_path)
            .with_context(|| format!("evaluating on {}", root.display()))?;
        let round = |v: f64| (v * 1e4).round() / 1e4;
        metrics.push(serde_json::json!({
            "data": name,
            "queries": m.valid_queries,
            "rank1": m.rank(1).map(round),
            "rank5": m.rank(5).map(round),
            "rank10": m.rank(10).map(round),
            "map": round(m.map),
            "minp": round(m.minp),
            "command": format!("reid eval --dataset {} --model {}", root.display(), args.out.display()),
        }));
        println!(
            "{name}: Rank-1 {:.2}%  mAP {:.2}%  mINP {:.2}%",
            100.0 * m.rank(1).unwrap_or(0.0),
            100.0 * m.map,
            100.0 * m.minp
        );
    }
    card["metrics"] = metrics.into();
    let text = serde_json::to_string_pretty(&card)?;
    let device = burn::tensor::Device::flex();
    let (net, _) = reid_model::weights::from_burnpack_bytes(&bytes, &device)?;
    let mut extra: reid_model::weights::Metadata = metadata
        .into_iter()
        .filter(|(k, _)| k != reid_model::weights::CONFIG_KEY && k != CARD_KEY)
        .collect();
    extra.push((CARD_KEY.to_string(), text.clone()));
    let out_bytes = reid_model::weights::to_burnpack_bytes(
        &net,
        &config,
        &extra,
        reid_model::weights::Precision::F16,
    )?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, out_bytes)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let json = args.out.with_extension("json");
    std::fs::write(&json, text + "\n")?;
    println!("wrote {} and {}", args.out.display(), json.display());
    Ok(ExitCode::SUCCESS)
}
