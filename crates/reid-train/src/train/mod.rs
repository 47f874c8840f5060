//! `reid train`: representation and metric learning on P x K batches, with burn's autodiff and
//! optimizers on any burn device (the `flex` CPU, CUDA, wgpu).
//!
//! A run lives in one folder: `checkpoint/` (rolling, resumable), `metrics.csv` (one row per
//! epoch), `curve.png`, and at the end `model.bpk` (the exported network with its model card)
//! and `model.json` (the card for people). The loop is our own rather than burn's `Learner`:
//! P x K sampling, per-step learning rates and the checkpoint layout are simpler to state here
//! than to fit into its dataloader and callbacks.

pub mod augment;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod net;
pub mod schedule;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use anyhow::{bail, Context};
use burn::optim::{
    decay::WeightDecayConfig, momentum::MomentumConfig, AdamConfig, GradientsParams,
    ModuleOptimizer, SgdConfig,
};
use burn::tensor::{Device, Int, Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use reid_data::sampler::PkSampler;
use reid_model::{InputSpec, ReidNetConfig};

use self::checkpoint::Progress;
use self::config::{Optimizer, TrainConfig};
use self::data::TrainSet;
use self::net::TrainNet;

/// Where and how a run goes (what is not part of the recipe).
pub struct RunOptions {
    /// The run's folder.
    pub out: PathBuf,
    /// Where the network trains (an autodiff device).
    pub device: Device,
    /// A words-and-numbers description of the device, for the model card.
    pub hardware: String,
    /// Continue from `out`'s checkpoint.
    pub resume: bool,
    /// Draw a progress bar.
    pub progress: bool,
    /// The command line, for the model card.
    pub command: String,
    /// Stop after this many epochs of this invocation (the checkpoint stays resumable).
    pub stop_after: Option<usize>,
}

/// One epoch's averages, as written to `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub epoch: usize,
    pub lr: f64,
    pub id_loss: f64,
    pub triplet_loss: f64,
    pub center_loss: f64,
    pub id_accuracy: f64,
    pub images_per_second: f64,
}

/// What a finished (or stopped) run leaves.
pub struct Outcome {
    pub progress: Progress,
    /// The exported model, when every epoch of the recipe is done.
    pub model: Option<PathBuf>,
}

const CSV_HEADER: &str =
    "epoch,lr,id_loss,triplet_loss,center_loss,id_accuracy,images_per_second\n";

/// Trains (or resumes) a run.
pub fn train(config: &TrainConfig, options: &RunOptions) -> anyhow::Result<Outcome> {
    config.validate()?;
    let out = &options.out;
    if checkpoint::exists(out) && !options.resume {
        bail!(
            "{} already holds a training run: pass --resume to continue it, or choose another --out",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let device = &options.device;
    let spec = InputSpec {
        height: config.model.height,
        width: config.model.width,
        ..InputSpec::default()
    };
    let data = Arc::new(
        TrainSet::load(&config.data.root, spec.height, spec.width)
            .with_context(|| format!("training data {}", config.data.root.display()))?,
    );
    let sampler = PkSampler::new(&data.labels, config.p, config.k, config.seed)?;
    let steps = sampler.batches_per_epoch();

    let net_config = ReidNetConfig {
        input: spec.clone(),
        ..ReidNetConfig::default()
    };
    let reid_net = if config.model.init.as_os_str().is_empty() {
        net_config.init(device)
    } else {
        let bytes = crate::cmd::read_model(&config.model.init)?;
        let (net, _) = reid_model::weights::from_burnpack_bytes(&bytes, device)
            .with_context(|| format!("starting weights {}", config.model.init.display()))?;
        net
    };
    // New layers draw from burn's generator: seed it so a run is repeatable.
    device.seed(config.seed);
    let mut net = TrainNet::new(reid_net, data.classes(), &config.loss, device)
        .freeze_leading(config.model.freeze);
    let mut optim = optimizer(config);
    let mut progress = Progress {
        epochs_done: 0,
        images_seen: 0,
        seconds: 0.0,
        classes: data.classes(),
    };
    if options.resume {
        let (_, saved) = checkpoint::read_recipe(out)?;
        if saved.classes != data.classes() {
            bail!(
                "{}: the checkpoint was trained on {} identities, the data now has {}: train into a new --out folder",
                out.display(),
                saved.classes,
                data.classes()
            );
        }
        (net, optim) = checkpoint::load(out, net, optim)?;
        progress = saved;
    } else {
        std::fs::write(out.join("metrics.csv"), CSV_HEADER)?;
    }

    let first = progress.epochs_done;
    let last = match options.stop_after {
        Some(n) => (first + n).min(config.epochs),
        None => config.epochs,
    };
    for epoch in first..last {
        let started = Instant::now();
        let bar = epoch_bar(options.progress, steps, epoch, config.epochs);
        let mut sums = [0.0f64; 4];
        let mut lr = 0.0;
        let mut shown = 0usize;
        let batches = sampler.epoch(epoch as u64);
        let (sender, receiver) = mpsc::sync_channel::<(Vec<f32>, Vec<i64>)>(3);
        // Batches are made on other threads while the network works on the previous one.
        let loader = {
            let (data, spec, config) = (Arc::clone(&data), spec.clone(), config.clone());
            std::thread::spawn(move || {
                for (b, batch) in batches.iter().enumerate() {
                    let made = make_batch(&data, &spec, &config, epoch as u64, b, batch);
                    if sender.send(made).is_err() {
                        break;
                    }
                }
            })
        };
        for (step, (pixels, labels)) in receiver.iter().enumerate() {
            lr = schedule::learning_rate(&config.optim, config.epochs, epoch, step, steps);
            let n = labels.len();
            let images = Tensor::<4>::from_data(
                TensorData::new(pixels, [n, 3, spec.height, spec.width]),
                device,
            );
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
            let losses = net.losses(images, targets, &config.loss, config.model.neck);
            let grads = GradientsParams::from_grads(losses.total.backward(), &net);
            net = optim.step(lr, net, grads);
            let parts = losses
                .parts
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            if parts.iter().any(|v| !v.is_finite()) {
                bail!(
                    "the loss became {:?} at epoch {} step {step}: lower optim.lr (the last checkpoint is from before this epoch)",
                    parts,
                    epoch + 1
                );
            }
            for (s, v) in sums.iter_mut().zip(&parts) {
                *s += f64::from(*v);
            }
            shown += n;
            bar.set_message(format!(
                "id {:.3} tri {:.3} acc {:.1}%",
                sums[0] / (step + 1) as f64,
                sums[1] / (step + 1) as f64,
                100.0 * sums[3] / shown as f64
            ));
            bar.inc(1);
        }
        loader
            .join()
            .map_err(|_| anyhow::anyhow!("the batch loader failed"))?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let batches_run = steps.max(1) as f64;
        let row = EpochRow {
            epoch: epoch + 1,
            lr,
            id_loss: sums[0] / batches_run,
            triplet_loss: sums[1] / batches_run,
            center_loss: sums[2] / batches_run,
            id_accuracy: sums[3] / shown.max(1) as f64,
            images_per_second: shown as f64 / seconds,
        };
        progress.epochs_done = epoch + 1;
        progress.images_seen += shown as u64;
        progress.seconds += seconds;
        append_row(out, &row)?;
        checkpoint::save(out, &net, &optim, config, &progress)?;
        eprintln!(
            "epoch {}/{}: lr {:.2e}, id loss {:.4}, triplet {:.4}, center {:.4}, id accuracy {:.1}%, {:.1} img/s",
            row.epoch,
            config.epochs,
            row.lr,
            row.id_loss,
            row.triplet_loss,
            row.center_loss,
            100.0 * row.id_accuracy,
            row.images_per_second
        );
        draw_curve(out)?;
    }
    let model = if progress.epochs_done >= config.epochs {
        Some(export(
            config,
            options,
            &net,
            &net_config,
            &data,
            &progress,
        )?)
    } else {
        None
    };
    Ok(Outcome { progress, model })
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let o = &config.optim;
    let decay = (o.weight_decay > 0.0).then(|| WeightDecayConfig::new(o.weight_decay as f32));
    let clip = o
        .clip_grad_norm
        .map(|n| burn::grad_clipping::GradientClippingConfig::Norm(n as f32));
    match o.optimizer {
        Optimizer::Adam => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(decay)
            .with_grad_clipping(clip)
            .init(),
        Optimizer::Sgd => SgdConfig::new()
            .with_weight_decay(decay)
            .with_momentum(Some(MomentumConfig::new().with_momentum(o.momentum)))
            .with_gradient_clipping(clip)
            .init(),
    }
}

/// The augmented, normalised pixels and labels of one batch (images in parallel).
fn make_batch(
    data: &TrainSet,
    spec: &InputSpec,
    config: &TrainConfig,
    epoch: u64,
    batch: usize,
    indices: &[usize],
) -> (Vec<f32>, Vec<i64>) {
    let size = 3 * spec.height * spec.width;
    let mut pixels = vec![0.0f32; indices.len() * size];
    reid_core::parallel::for_each_chunk_mut(&mut pixels, size, |slot, out| {
        let mut rng = augment::slot_rng(config.seed, epoch, batch, slot);
        augment::augment_into(
            &data.images[indices[slot]],
            spec,
            &config.augment,
            &mut rng,
            out,
        );
    });
    let labels = indices.iter().map(|&i| data.labels[i] as i64).collect();
    (pixels, labels)
}

fn epoch_bar(show: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} batches {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {}/{}", epoch + 1, epochs));
    bar
}

fn append_row(out: &Path, row: &EpochRow) -> anyhow::Result<()> {
    let path = out.join("metrics.csv");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(
        file,
        "{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.2}",
        row.epoch,
        row.lr,
        row.id_loss,
        row.triplet_loss,
        row.center_loss,
        row.id_accuracy,
        row.images_per_second
    )?;
    Ok(())
}

/// Redraws `curve.png` from every row of `metrics.csv` (so a resumed run's curve is whole).
fn draw_curve(out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(out.join("metrics.csv"))?;
    let columns: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|line| {
            line.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let column = |i: usize| columns.iter().map(|r: &Vec<f64>| r[i]).collect::<Vec<_>>();
    let series = [
        crate::report::Series {
            name: "identity loss",
            values: column(2),
        },
        crate::report::Series {
            name: "triplet loss",
            values: column(3),
        },
        crate::report::Series {
            name: "identity accuracy",
            values: column(5),
        },
    ];
    let canvas = crate::report::training_curve(&series, &format!("training: {}", out.display()));
    crate::report::save_png(&canvas, &out.join("curve.png"))
}

/// Writes `model.bpk` (f16 weights, the card in its metadata) and `model.json`.
fn export(
    config: &TrainConfig,
    options: &RunOptions,
    net: &TrainNet,
    net_config: &ReidNetConfig,
    data: &TrainSet,
    progress: &Progress,
) -> anyhow::Result<PathBuf> {
    let card = serde_json::json!({
        "architecture": net_config,
        "training": {
            "data": config.data.root.display().to_string(),
            "images": data.len(),
            "identities": data.classes(),
            "recipe": config,
            "epochs": progress.epochs_done,
            "images_seen": progress.images_seen,
            "wall_clock_hours": progress.seconds / 3600.0,
            "hardware": options.hardware,
            "command": options.command,
        },
    });
    let card_text = serde_json::to_string_pretty(&card)?;
    let metadata = vec![(CARD_KEY.to_string(), card_text.clone())];
    let bytes = reid_model::weights::to_burnpack_bytes(&net.net, net_config, &metadata)?;
    let path = options.out.join("model.bpk");
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::write(options.out.join("model.json"), card_text + "\n")?;
    Ok(path)
}

pub use reid_model::weights::CARD_KEY;
