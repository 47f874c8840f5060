//! `reid temporal DATA --out DIR`: trains temporal aggregators (temporal average pooling,
//! attention, GRU, LSTM, temporal convolution) on a video dataset's tracklets over a fixed image
//! network's frame embeddings, and compares them with the image model's plain mean of frames on
//! the dataset's query and gallery tracklets. The run folder gets each aggregator as a burnpack
//! with its card (`<name>.bpk`), `results.json`, `results.md` and the frame features' cache.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use burn::tensor::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reid_core::RankMetrics;
use reid_model::temporal::{to_burnpack_bytes, TemporalKind};
use reid_model::weights::CARD_KEY;
use reid_pipeline::Embedder;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::temporal::{
    embed_tracklets, evaluate_tracklets, frame_features, mean_of_frames, rows_of,
    time_per_tracklet, train_aggregator, Recipe,
};

/// Length of the tracklet the cost column is timed on.
const TIMED_FRAMES: usize = 16;

#[derive(Args, Debug)]
pub struct TemporalArgs {
    /// A video dataset: the synthetic world's video output (`reid synth --preset mars`), MARS,
    /// iLIDS-VID or PRID2011.
    pub data: PathBuf,
    /// The image network whose frame embeddings the aggregators read (it is not retrained).
    #[arg(long, default_value = super::DEFAULT_MODEL)]
    pub model: PathBuf,
    /// Run folder: `<aggregator>.bpk`, `results.json`, `results.md`, the frame features.
    #[arg(long)]
    pub out: PathBuf,
    /// Aggregators to train, comma-separated: mean, attention, gru, lstm, conv.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mean,attention,gru,lstm,conv"
    )]
    pub aggregators: Vec<String>,
    /// Frames sampled from each tracklet per training step (restricted random sampling).
    #[arg(long, default_value_t = 4)]
    pub frames: usize,
    /// Identities per batch.
    #[arg(long, default_value_t = 16)]
    pub p: usize,
    /// Tracklets per identity in a batch.
    #[arg(long, default_value_t = 4)]
    pub k: usize,
    /// Epochs, each one P x K batch per P training identities (every identity once).
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// Adam's learning rate (a tenth of it for the last third of the epochs).
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Width of the GRU's and LSTM's state and of the attention's hidden layer.
    #[arg(long, default_value_t = 512)]
    pub hidden: usize,
    /// Seed of the training and of the split of datasets that ship none (PRID2011, iLIDS-VID
    /// without its split file; there it picks the split file's row).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// One row of the comparison.
#[derive(Serialize)]
struct Row {
    aggregator: String,
    label: String,
    rank1: f64,
    rank5: f64,
    map: f64,
    minp: f64,
    /// Learned parameters beyond the image network (the neck's weights included, not its
    /// running statistics).
    parameters: usize,
    /// Median milliseconds to aggregate one tracklet of [`TIMED_FRAMES`] frame features.
    ms_per_tracklet: Option<f64>,
    train_seconds: Option<f64>,
    file: Option<PathBuf>,
}

fn check(args: &TemporalArgs) -> anyhow::Result<Vec<TemporalKind>> {
    let mut kinds = Vec::new();
    for name in &args.aggregators {
        let kind = TemporalKind::from_name(name.trim()).with_context(|| {
            let known: Vec<&str> = TemporalKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown aggregator `{name}`: choose from {}",
                known.join(", ")
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if !(1..=64).contains(&args.frames) {
        bail!(
            "--frames {}: sample 1 to 64 frames per tracklet",
            args.frames
        );
    }
    if args.p < 2 || args.k < 1 {
        bail!(
            "--p {} --k {}: a batch needs at least 2 identities and 1 tracklet each",
            args.p,
            args.k
        );
    }
    if args.epochs == 0 {
        bail!("--epochs 0: train at least one epoch");
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!(
            "--lr {}: the learning rate must be a positive number",
            args.lr
        );
    }
    if !(1..=4096).contains(&args.hidden) {
        bail!("--hidden {}: choose 1 to 4096", args.hidden);
    }
    Ok(kinds)
}

fn percent(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

pub fn run(args: TemporalArgs) -> anyhow::Result<ExitCode> {
    let kinds = check(&args)?;
    let dataset = reid_data::video::open(&args.data, args.seed)?;
    if dataset.query.is_empty() || dataset.gallery.is_empty() {
        bail!(
            "{}: no query or no gallery tracklets to evaluate on",
            args.data.display()
        );
    }
    let model_bytes = super::read_model(&args.model)?;
    let model_sha = super::hex(&Sha256::digest(&model_bytes));
    let cpu = Device::flex();
    let embedder = Embedder::from_burnpack(&model_bytes, cpu.clone(), 64)
        .with_context(|| format!("the image network {}", args.model.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    eprintln!(
        "{} ({}): {} training, {} query and {} gallery tracklets, {} frames",
        args.data.display(),
        dataset.layout.name(),
        dataset.train.len(),
        dataset.query.len(),
        dataset.gallery.len(),
        dataset.frames()
    );
    let bar = ProgressBar::new(dataset.frames() as u64).with_style(
        ProgressStyle::with_template("frame features [{bar:40}] {pos}/{len}, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let features = frame_features(&dataset, &embedder, &model_sha, &args.out, &|done, all| {
        bar.set_length(all as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let mut status = ExitCode::SUCCESS;
    if !features.unreadable.is_empty() {
        let (path, why) = &features.unreadable[0];
        eprintln!(
            "warning: {} of the frames could not be used and are left out, e.g. {}: {why}",
            features.unreadable.len(),
            path.display()
        );
        status = ExitCode::from(1);
    }
    let (train, dropped_train) = rows_of(&dataset.train, &features);
    let (query, dropped_query) = rows_of(&dataset.query, &features);
    let (gallery, dropped_gallery) = rows_of(&dataset.gallery, &features);
    let dropped = dropped_train + dropped_query + dropped_gallery;
    if dropped > 0 {
        eprintln!(
            "warning: {dropped} tracklets have no readable frame and are left out ({dropped_train} training, {dropped_query} query, {dropped_gallery} gallery)"
        );
    }
    if query.is_empty() || gallery.is_empty() {
        bail!("no query or no gallery tracklet has a readable frame");
    }
    let matrix = &features.matrix;

    let mut rows = Vec::new();
    let baseline = evaluate_tracklets(
        &mean_of_frames(&query, matrix)?,
        &query,
        &mean_of_frames(&gallery, matrix)?,
        &gallery,
    )?;
    rows.push(row(
        "image",
        "image model, mean of frame features",
        &baseline,
        0,
        None,
        None,
        None,
    ));
    eprintln!(
        "image model, mean of frames: Rank-1 {}%, mAP {}%",
        percent(baseline.cmc[0]),
        percent(baseline.map)
    );
    let recipe = Recipe {
        frames: args.frames,
        p: args.p,
        k: args.k,
        epochs: args.epochs,
        lr: args.lr,
        weight_decay: 5e-4,
        hidden: args.hidden,
        margin: 0.3,
        label_smoothing: 0.1,
        seed: args.seed,
    };
    let command: Vec<String> = std::env::args().collect();
    let training = cpu.clone().autodiff();
    for kind in kinds {
        let bar = ProgressBar::new(args.epochs as u64).with_style(
            ProgressStyle::with_template("{prefix} [{bar:40}] epoch {pos}/{len} {msg}")
                .expect("valid template"),
        );
        bar.set_prefix(kind.name());
        let trained = train_aggregator(kind, &train, matrix, &recipe, &training, &|_, id, tri| {
            bar.set_message(format!("id {id:.3}, triplet {tri:.3}"));
            bar.inc(1);
        })?;
        bar.finish_and_clear();
        let net = &trained.net;
        let metrics = evaluate_tracklets(
            &embed_tracklets(net, &query, matrix, &cpu)?,
            &query,
            &embed_tracklets(net, &gallery, matrix, &cpu)?,
            &gallery,
        )?;
        let ms = time_per_tracklet(net, matrix.dim(), TIMED_FRAMES, 31, &cpu);
        let file = args.out.join(format!("{}.bpk", kind.name()));
        let card = serde_json::json!({
            "aggregator": trained.config,
            "description": kind.label(),
            "frame_model": {
                "file": args.model.display().to_string(),
                "sha256": model_sha,
                "provenance": reid_model::weights::provenance(&model_bytes),
            },
            "training": {
                "data": args.data.display().to_string(),
                "layout": dataset.layout.name(),
                "tracklets": train.len(),
                "recipe": recipe,
                "wall_clock_seconds": trained.seconds,
                "last_epoch_losses": {"id": trained.last_losses.0, "triplet": trained.last_losses.1},
                "command": command.join(" "),
            },
            "metrics": {
                "protocol": "query tracklets against gallery tracklets, every frame, cosine distance; Market-1501's rules",
                "rank1": metrics.cmc[0],
                "rank5": metrics.rank(5),
                "map": metrics.map,
                "minp": metrics.minp,
            },
        });
        let bytes = to_burnpack_bytes(
            net,
            &trained.config,
            &vec![(CARD_KEY.to_string(), serde_json::to_string_pretty(&card)?)],
        )?;
        std::fs::write(&file, bytes).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!(
            "{}: Rank-1 {}%, mAP {}% ({:.0} s of training)",
            kind.label(),
            percent(metrics.cmc[0]),
            percent(metrics.map),
            trained.seconds
        );
        rows.push(row(
            kind.name(),
            kind.label(),
            &metrics,
            net.learned_params(),
            Some(ms),
            Some(trained.seconds),
            Some(file),
        ));
    }

    let table = markdown(&rows, &args);
    std::fs::write(args.out.join("results.md"), &table)?;
    let json = serde_json::json!({
        "data": args.data.display().to_string(),
        "layout": dataset.layout.name(),
        "image_model": args.model.display().to_string(),
        "tracklets": {"train": train.len(), "query": query.len(), "gallery": gallery.len()},
        "unreadable_frames": features.unreadable.len(),
        "recipe": recipe,
        "timed_tracklet_frames": TIMED_FRAMES,
        "results": rows,
    });
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{table}");
    }
    Ok(status)
}

fn row(
    name: &str,
    label: &str,
    m: &RankMetrics,
    parameters: usize,
    ms_per_tracklet: Option<f64>,
    train_seconds: Option<f64>,
    file: Option<PathBuf>,
) -> Row {
    Row {
        aggregator: name.to_string(),
        label: label.to_string(),
        rank1: m.cmc[0],
        rank5: m.rank(5).unwrap_or(1.0),
        map: m.map,
        minp: m.minp,
        parameters,
        ms_per_tracklet,
        train_seconds,
        file,
    }
}

fn markdown(rows: &[Row], args: &TemporalArgs) -> String {
    let mut out = format!(
        "| tracklet feature | Rank-1 | Rank-5 | mAP | mINP | learned parameters | ms per {TIMED_FRAMES}-frame tracklet | training |\n|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        out += &format!(
            "| {} | {}% | {}% | {}% | {}% | {} | {} | {} |\n",
            r.label,
            percent(r.rank1),
            percent(r.rank5),
            percent(r.map),
            percent(r.minp),
            r.parameters,
            r.ms_per_tracklet
                .map_or("-".into(), |ms| format!("{ms:.2}")),
            r.train_seconds.map_or("-".into(), |s| format!("{s:.0} s")),
        );
    }
    out += &format!(
        "\nT = {} frames per training tracklet, P x K = {} x {}, {} epoch{}, hidden {}, seed {}.\n",
        args.frames,
        args.p,
        args.k,
        args.epochs,
        if args.epochs == 1 { "" } else { "s" },
        args.hidden,
        args.seed
    );
    out
}
