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
    /// Mean of each loss of [`net::PARTS`] (the first six) over the epoch's batches.
    pub losses: [f64; 6],
    /// Share of images whose identity the classifier got right.
    pub id_accuracy: f64,
    /// Share of attribute labels the attribute head got right.
    pub attribute_accuracy: f64,
    pub images_per_second: f64,
}

/// What a finished (or stopped) run leaves.
pub struct Outcome {
    pub progress: Progress,
    /// The exported model, when every epoch of the recipe is done.
    pub model: Option<PathBuf>,
}

const CSV_HEADER: &str = "epoch,lr,id_loss,triplet_loss,center_loss,circle_loss,contrastive_loss,attribute_loss,id_accuracy,attribute_accuracy,images_per_second\n";

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

    let mut net_config = ReidNetConfig {
        backbone: config.backbone_kind()?,
        input: spec.clone(),
        pooling: config.model.pooling,
        ..ReidNetConfig::default()
    };
    let reid_net = if config.model.init.as_os_str().is_empty() {
        net_config.init(device)
    } else {
        let bytes = crate::cmd::read_model(&config.model.init)?;
        let (mut net, init_config) = reid_model::weights::from_burnpack_bytes(&bytes, device)
            .with_context(|| format!("starting weights {}", config.model.init.display()))?;
        anyhow::ensure!(
            init_config.backbone == net_config.backbone,
            "the starting weights {} are {} weights, the recipe trains {}: set model.backbone (and model.last_stride) to match, or start from random weights with --init none",
            config.model.init.display(),
            init_config.backbone.label(),
            net_config.backbone.label()
        );
        // An embedding layer the starting network has (torchreid's OSNet fc) is kept.
        net_config.fc = init_config.fc;
        // The recipe's pooling, whatever the starting file used (GeM starts afresh at p = 3).
        net.gem = match (config.model.pooling, net.gem) {
            (reid_model::Pooling::Gem, Some(gem)) => Some(gem),
            (reid_model::Pooling::Gem, None) => Some(reid_model::head::Gem::new(3.0, device)),
            (reid_model::Pooling::Avg, _) => None,
        };
        net
    };
    // New layers draw from burn's generator: seed it so a run is repeatable.
    device.seed(config.seed);
    let attributes = if config.loss.attribute > 0.0 {
        Some(Arc::new(data.attribute_targets(&config.data.root)?))
    } else {
        None
    };
    let attribute_width = attributes.as_ref().map_or(0, |a| a[0].len());
    let mut net = TrainNet::new(
        reid_net,
        data.classes(),
        attribute_width,
        &config.loss,
        device,
    )
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
        let header = std::fs::read_to_string(out.join("metrics.csv")).unwrap_or_default();
        if !header.starts_with(CSV_HEADER) {
            bail!(
                "{}: its metrics.csv has other columns than this version of reid writes; the run cannot be resumed here",
                out.display()
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
        let mut sums = [0.0f64; net::PARTS.len()];
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
            let attribute_targets = attributes.as_ref().map(|table| {
                let rows: Vec<f32> = labels
                    .iter()
                    .flat_map(|&l| table[l as usize].iter().copied())
                    .collect();
                Tensor::<2>::from_data(TensorData::new(rows, [n, attribute_width]), device)
            });
            let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
            let losses = net.losses(
                images,
                targets,
                attribute_targets,
                &config.loss,
                config.model.neck,
            );
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
            let mut message = describe_losses(&loss_means(&sums, step + 1), 3);
            if config.loss.id > 0.0 {
                message += &format!(", id acc {:.1}%", 100.0 * sums[6] / shown as f64);
            }
            bar.set_message(message);
            bar.inc(1);
        }
        loader
            .join()
            .map_err(|_| anyhow::anyhow!("the batch loader failed"))?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let row = EpochRow {
            epoch: epoch + 1,
            lr,
            losses: loss_means(&sums, steps.max(1)),
            id_accuracy: sums[6] / shown.max(1) as f64,
            attribute_accuracy: sums[7] / shown.max(1) as f64,
            images_per_second: shown as f64 / seconds,
        };
        progress.epochs_done = epoch + 1;
        progress.images_seen += shown as u64;
        progress.seconds += seconds;
        append_row(out, &row)?;
        checkpoint::save(out, &net, &optim, config, &progress)?;
        let mut accuracies = String::new();
        if config.loss.id > 0.0 {
            accuracies += &format!(", id accuracy {:.1}%", 100.0 * row.id_accuracy);
        }
        if attributes.is_some() {
            accuracies += &format!(
                ", attribute accuracy {:.1}%",
                100.0 * row.attribute_accuracy
            );
        }
        eprintln!(
            "epoch {}/{}: lr {:.2e}, {}{accuracies}, {:.1} img/s",
            row.epoch,
            config.epochs,
            row.lr,
            describe_losses(&row.losses, 4),
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

/// The mean of each loss of [`net::PARTS`] (its first six columns) over `batches` batches.
fn loss_means(sums: &[f64; net::PARTS.len()], batches: usize) -> [f64; 6] {
    std::array::from_fn(|i| sums[i] / batches as f64)
}

/// "id 1.234, triplet 0.567" for the losses that act (those with a non-zero mean).
fn describe_losses(means: &[f64; 6], decimals: usize) -> String {
    net::PARTS
        .iter()
        .zip(means)
        .filter(|(_, v)| **v != 0.0)
        .map(|(name, v)| format!("{} {v:.decimals$}", name.trim_end_matches("_loss")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A progress bar over an epoch's `steps` batches (hidden when `show` is false).
pub(crate) fn epoch_bar(show: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
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
    let losses: Vec<String> = row.losses.iter().map(|v| format!("{v:.6}")).collect();
    writeln!(
        file,
        "{},{:.6e},{},{:.6},{:.6},{:.2}",
        row.epoch,
        row.lr,
        losses.join(","),
        row.id_accuracy,
        row.attribute_accuracy,
        row.images_per_second
    )?;
    Ok(())
}

/// Redraws `curve.png` from every row of `metrics.csv` (so a resumed run's curve is whole):
/// the losses that act and the accuracies.
fn draw_curve(out: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(out.join("metrics.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|line| {
            line.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let series = [
        ("id_loss", "identity loss"),
        ("triplet_loss", "triplet loss"),
        ("center_loss", "center loss"),
        ("circle_loss", "circle loss"),
        ("contrastive_loss", "contrastive loss"),
        ("attribute_loss", "attribute loss"),
        ("id_accuracy", "identity accuracy"),
        ("attribute_accuracy", "attribute accuracy"),
    ]
    .into_iter()
    .filter_map(|(column, name)| {
        let i = header.iter().position(|h| *h == column)?;
        let values: Vec<f64> = rows
            .iter()
            .map(|r| r.get(i).copied().unwrap_or(f64::NAN))
            .collect();
        // A loss or head that does not act stays at 0: leave it off the plot.
        values
            .iter()
            .any(|v| *v != 0.0)
            .then_some(crate::report::Series { name, values })
    })
    .collect::<Vec<_>>();
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
    let bytes = reid_model::weights::to_burnpack_bytes(
        &net.net,
        net_config,
        &metadata,
        reid_model::weights::Precision::F16,
    )?;
    let path = options.out.join("model.bpk");
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::write(options.out.join("model.json"), card_text + "\n")?;
    Ok(path)
}

pub use reid_model::weights::CARD_KEY;
