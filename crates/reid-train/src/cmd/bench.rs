//! `reid bench`: measurements, not tests. Each prints one line with its throughput so that
//! `cargo xtask bench` can put ours beside the peers' on the same data.
//!
//! - `embed`: embedding throughput of the model on the CPU backend (random 256x128 crops);
//! - `train`: training throughput (forward, backward and an Adam step) of the bag-of-tricks
//!   recipe (ID with label smoothing + TriHard + BNNeck) on random P x K batches;
//! - `search DIR`: exact top-k by inner product of `DIR/query.npy` against `DIR/gallery.npy`;
//! - `rerank DIR`: k-reciprocal re-ranking (squared Euclidean) of `DIR/query.npy` and
//!   `DIR/gallery.npy`;
//! - `eval DIR`: the Market-1501 protocol on `DIR/distmat.npy` with labels from
//!   `DIR/query_labels.npy` and `DIR/gallery_labels.npy` (rows of pid, camid).
//!
//! Each line ends with the process's peak resident memory (loaded data included), so that a
//! run per task compares memory with the peers' too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use reid_core::{
    evaluate, k_reciprocal_rerank, top_k_inner_product, FeatureMatrix, Labels, Metric, Protocol,
    RerankParams,
};
use reid_model::cpu::CpuNet;
use reid_model::weights::from_burnpack_bytes;
use reid_model::ReidNetConfig;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Embedding throughput (crops/s) on the CPU backend.
    Embed(EmbedArgs),
    /// Training throughput (images/s, forward + backward + optimizer step) on the CPU backend.
    Train(TrainBenchArgs),
    /// Exact top-k search (queries/s) over saved features.
    Search(SearchArgs),
    /// k-reciprocal re-ranking time over saved features.
    Rerank(DataArgs),
    /// Market-1501 evaluation time over a saved distance matrix.
    Eval(DataArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Model file; without it a randomly initialised network of the default shape is timed.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed forward passes (after one warm-up pass).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Which inference paths to time (both: side by side in one run).
    #[arg(long, value_enum, default_value_t = EmbedPath::Both)]
    path: EmbedPath,
}

/// The inference paths `reid bench embed` can time.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedPath {
    /// burn's flex backend running the network's modules.
    Burn,
    /// The network folded for the CPU (`reid_model::cpu`).
    Cpu,
    /// Both, one after the other.
    Both,
}

#[derive(Args, Debug)]
pub struct TrainBenchArgs {
    /// Starting weights; without them a randomly initialised network (the speed is the same).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Identities per batch.
    #[arg(long, default_value_t = 16)]
    p: usize,
    /// Images per identity (the batch is P x K).
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// Identities the classifier separates (Market-1501's training set has 751).
    #[arg(long, default_value_t = 751)]
    classes: usize,
    /// Leading backbone stages kept frozen, as in a recipe's `model.freeze`.
    #[arg(long, default_value_t = 0)]
    freeze: usize,
    /// Timed steps (after one warm-up step).
    #[arg(long, default_value_t = 3)]
    iters: usize,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Folder with query.npy and gallery.npy (float32 rows).
    data: PathBuf,
    /// Results per query.
    #[arg(long, default_value_t = 100)]
    k: usize,
}

#[derive(Args, Debug)]
pub struct DataArgs {
    /// Folder with the benchmark's .npy files.
    data: PathBuf,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BenchCommand::Embed(a) => embed(a),
        BenchCommand::Train(a) => train_step(a),
        BenchCommand::Search(a) => search(a),
        BenchCommand::Rerank(a) => rerank(a),
        BenchCommand::Eval(a) => eval(a),
    }?;
    Ok(ExitCode::SUCCESS)
}

fn npy(dir: &Path, name: &str) -> anyhow::Result<FeatureMatrix> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    FeatureMatrix::from_npy(&bytes).with_context(|| path.display().to_string())
}

fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let device = burn::tensor::Device::flex();
    let (net, config) = match &args.model {
        Some(path) => from_burnpack_bytes(&super::read_model(path)?, &device)?,
        None => {
            let config = ReidNetConfig::default();
            (config.init(&device), config)
        }
    };
    let shape = [args.batch, 3, config.input.height, config.input.width];
    let input = burn::tensor::Tensor::<4>::random(
        shape,
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut run_once = || -> anyhow::Result<()> {
        let out = net.forward(input.clone()).embedding;
        out.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    };
    // One warm-up pass, then `iters` timed passes of `pass`; prints the rate as one line.
    let time = |name: &str, pass: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<()> {
        pass()?;
        let start = Instant::now();
        for _ in 0..args.iters {
            pass()?;
        }
        let seconds = start.elapsed().as_secs_f64();
        let rate = (args.batch * args.iters) as f64 / seconds;
        println!(
            "reid embed ({name}): {rate:.1} crops/s (batch {}, {}x{}, {} passes in {:.2} s) crops/s={rate:.2}",
            args.batch, config.input.height, config.input.width, args.iters, seconds
        );
        Ok(())
    };
    if args.path != EmbedPath::Cpu {
        time("burn flex, CPU", &mut run_once)?;
    }
    if args.path != EmbedPath::Burn {
        // The same network folded for the CPU (reid_model::cpu), on the same input. A network
        // it has no kernels for is an error when only that path was asked for.
        let cpu = match CpuNet::new(&net, config.input.clone()) {
            Ok(cpu) => cpu,
            Err(e) if args.path == EmbedPath::Both => {
                println!("reid embed (folded CPU path): not timed, {e}");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let values: Vec<f32> = input.clone().into_data().iter::<f32>().collect();
        let size = [config.input.height, config.input.width];
        time("folded CPU path, all cores", &mut || {
            std::hint::black_box(cpu.forward_nchw(&values, args.batch, size));
            Ok(())
        })?;
    }
    Ok(())
}

fn train_step(args: TrainBenchArgs) -> anyhow::Result<()> {
    use crate::train::config::TrainConfig;
    use crate::train::net::TrainNet;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Int, Tensor, TensorData};

    let device = burn::tensor::Device::flex().autodiff();
    let (net, config) = match &args.model {
        Some(path) => from_burnpack_bytes(&super::read_model(path)?, &device)?,
        None => {
            let config = ReidNetConfig::default();
            (config.init(&device), config)
        }
    };
    anyhow::ensure!(
        args.p >= 2 && args.k >= 1 && args.classes >= args.p,
        "a P x K batch needs P >= 2 identities, K >= 1 and at least P classes"
    );
    let recipe = TrainConfig::default();
    let mut net =
        TrainNet::new(net, args.classes, 0, &recipe.loss, &device).freeze_leading(args.freeze);
    let mut optim = AdamConfig::new().init();
    let batch = args.p * args.k;
    let [h, w] = [config.input.height, config.input.width];
    let images = Tensor::<4>::random(
        [batch, 3, h, w],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let labels: Vec<i64> = (0..batch).map(|i| (i / args.k) as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    // One warm-up step, then `iters` timed steps.
    let mut start = Instant::now();
    for i in 0..=args.iters {
        if i == 1 {
            start = Instant::now();
        }
        let losses = net.losses(
            images.clone(),
            labels.clone(),
            None,
            &recipe.loss,
            recipe.model.neck,
        );
        let grads = GradientsParams::from_grads(losses.total.backward(), &net);
        net = optim.step(3.5e-4, net, grads);
        // Reading the losses back waits for the step to finish.
        losses
            .parts
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = (batch * args.iters) as f64 / seconds;
    println!(
        "reid train (burn flex, CPU; ID + TriHard + BNNeck, Adam, {} stages frozen): {rate:.1} img/s (batch {}x{}, {h}x{w}, {} steps in {:.2} s; {}) img/s={rate:.2}",
        args.freeze,
        args.p,
        args.k,
        args.iters,
        seconds,
        peak_memory()
    );
    Ok(())
}

fn search(args: SearchArgs) -> anyhow::Result<()> {
    let (q, g) = (
        npy(&args.data, "query.npy")?,
        npy(&args.data, "gallery.npy")?,
    );
    let start = Instant::now();
    let hits = top_k_inner_product(&q, &g, args.k)?;
    let seconds = start.elapsed().as_secs_f64();
    let checksum: f64 = hits.iter().flatten().map(|h| f64::from(h.score)).sum();
    println!(
        "reid search (exact inner product, all cores): top-{} of {} queries over {} x {} in {:.3} s (score sum {checksum:.3}; {})",
        args.k,
        q.rows(),
        g.rows(),
        g.dim(),
        seconds,
        peak_memory()
    );
    Ok(())
}

fn rerank(args: DataArgs) -> anyhow::Result<()> {
    let q = npy(&args.data, "query.npy")?;
    let g = npy(&args.data, "gallery.npy")?;
    let start = Instant::now();
    let d = k_reciprocal_rerank(&q, &g, Metric::SquaredEuclidean, RerankParams::default())?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "reid rerank (k-reciprocal, sparse): {} x {} at {}-d in {:.2} s (distance sum {:.3}; {})",
        q.rows(),
        g.rows(),
        q.dim(),
        seconds,
        d.iter().map(|v| f64::from(*v)).sum::<f64>(),
        peak_memory()
    );
    Ok(())
}

fn eval(args: DataArgs) -> anyhow::Result<()> {
    let d = npy(&args.data, "distmat.npy")?;
    let labels = |name: &str| -> anyhow::Result<(Vec<i64>, Vec<i64>)> {
        let m = npy(&args.data, name)?;
        Ok((0..m.rows())
            .map(|i| (m.row(i)[0] as i64, m.row(i)[1] as i64))
            .unzip())
    };
    let ((qp, qc), (gp, gc)) = (labels("query_labels.npy")?, labels("gallery_labels.npy")?);
    let start = Instant::now();
    let m = evaluate(
        d.as_slice(),
        Labels {
            pids: &qp,
            camids: &qc,
        },
        Labels {
            pids: &gp,
            camids: &gc,
        },
        &Protocol {
            max_rank: 50,
            junk_pid: None,
            single_gallery_shot: None,
        },
    )?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "reid eval (Market-1501 protocol): {} x {} in {:.3} s (mAP {:.6}; {})",
        qp.len(),
        gp.len(),
        seconds,
        m.map,
        peak_memory()
    );
    Ok(())
}

/// "peak memory X GB" from the kernel's high-water mark of this process (Linux), or a note
/// that it is unknown elsewhere.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("peak memory {:.2} GB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "peak memory unknown".into())
}
